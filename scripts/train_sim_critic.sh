#!/usr/bin/env bash
# Reproduce the simulation critic end to end; every stage resumes where it stopped.
#
#   scripts/train_sim_critic.sh [WORK_DIR]      (default: out/sim_critic)
#
# The critic learns first from the simulation policy alone, then, round after round, from the
# robot's own experience under steering, so it sees what follows the actions it prefers (and
# unlearns the ones that go wrong):
# 1. collect episodes of the simulation policy in the MuJoCo scene (mixed success)
# 2. for round r = 1 .. ROUNDS:
#    a. write every episode collected so far as the RLDS dataset vgps_sim, train the `sim`
#       config from scratch on it and export the critic
#    b. unless r is the last round, collect as many episodes again steered by that critic,
#       once for each K in STEER_KS (beta = 0)
# 3. the shipped critic is the deep ensemble of the last ENSEMBLE rounds' critics (the mean of
#    Q over every head of every member; see vgps_critic.ensemble): their errors are partly
#    independent, and the argmax over many candidates is what those errors mislead.
#    ENSEMBLE=1 ships the last critic alone (min over its two heads).
# 4. evaluate the policy alone and steered by that critic (K = 10 and 50, beta = 0) on seeds
#    no collection used -> benchmarks/steering_sim.py
# Environment knobs: EPISODES (per task and collection), ROUNDS, STEER_KS, STEPS, ENSEMBLE,
# HEAD_REDUCTION (mean | min over each member's heads), EVAL_EPISODES, SEED, OUT_CRITIC,
# IMAGE_SIZE (camera and critic, square; the sim preset's 64).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-out/sim_critic}
EPISODES=${EPISODES:-150}
ROUNDS=${ROUNDS:-3}
STEER_KS=${STEER_KS:-10 50}
STEPS=${STEPS:-10000}
ENSEMBLE=${ENSEMBLE:-3}
HEAD_REDUCTION=${HEAD_REDUCTION:-mean}
EVAL_EPISODES=${EVAL_EPISODES:-100}
SEED=${SEED:-0}
IMAGE_SIZE=${IMAGE_SIZE:-64}
SIZE_SET=(--set "critic.image_size=[$IMAGE_SIZE,$IMAGE_SIZE]"
          --set "data.image_size=[$IMAGE_SIZE,$IMAGE_SIZE]")
OUT_CRITIC=${OUT_CRITIC:-$WORK/critic}
VENV=${VENV:-.venv}
export MUJOCO_GL=${MUJOCO_GL:-egl} TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$WORK"
if ((ENSEMBLE < 1 || ENSEMBLE > ROUNDS)); then
  echo "ENSEMBLE=$ENSEMBLE must be between 1 and ROUNDS=$ROUNDS" >&2
  exit 2
fi

collect() {  # collect DIR SEED [steering options...]
  local dir=$1 seed=$2
  shift 2
  if [ ! -f "$dir/.done" ]; then
    rm -rf "$dir"
    "$VENV/bin/vgps" collect --task all --episodes "$EPISODES" --policy sim --image-size "$IMAGE_SIZE" \
      --seed "$seed" --out "$dir" "$@"
    touch "$dir/.done"
  fi
}

dataset() {  # dataset EPISODES_DIR RLDS_DIR
  if [ ! -f "$2/vgps_sim/1.0.0/dataset_info.json" ]; then
    rm -rf "$2/vgps_sim"
    "$VENV/bin/vgps-train" sim-dataset "$1" --data-dir "$2"
  fi
}

echo "== 1. collect $EPISODES episodes per task (the policy alone)"
collect "$WORK/episodes/base" "$SEED"

for ((r = 1; r <= ROUNDS; r++)); do
  echo "== 2. round $r of $ROUNDS: RLDS of every collection so far + train ($STEPS steps; resumes)"
  # Each round's dataset is written once, from the collections that exist when it is first
  # built (the base one and the earlier rounds'); a resumed run reuses it.
  dataset "$WORK/episodes" "$WORK/rlds_round$r"
  "$VENV/bin/vgps-train" --config sim --data-dir "$WORK/rlds_round$r" --run-dir "$WORK/run_round$r" \
    --set steps="$STEPS" --set seed="$((SEED + r - 1))" "${SIZE_SET[@]}"
  "$VENV/bin/vgps-train" export "$WORK/run_round$r" --out "$WORK/critic_round$r" \
    --name "sim-critic-round$r" --force
  if ((r < ROUNDS)); then
    for K in $STEER_KS; do
      echo "== 2. round $r: collect $EPISODES episodes per task steered by its critic (K = $K)"
      collect "$WORK/episodes/round${r}_k$K" "$((SEED + 10000 * r + K))" \
        --critic "$WORK/critic_round$r" --k "$K" --beta 0
    done
  fi
done
if ((ENSEMBLE > 1)); then
  echo "== 3. ensemble of rounds $((ROUNDS - ENSEMBLE + 1)) .. $ROUNDS -> $OUT_CRITIC"
  members=()
  for ((r = ROUNDS - ENSEMBLE + 1; r <= ROUNDS; r++)); do members+=("$WORK/critic_round$r"); done
  "$VENV/bin/vgps" critic ensemble "${members[@]}" --out "$OUT_CRITIC" --name sim-critic \
    --head-reduction "$HEAD_REDUCTION" --force
else
  "$VENV/bin/vgps-train" export "$WORK/run_round$ROUNDS" --out "$OUT_CRITIC" --name sim-critic \
    --force
fi

echo "== 4. evaluate (seed 1000: no collection above uses it)"
"$VENV/bin/vgps" eval --task all --episodes "$EVAL_EPISODES" --policy sim --seed 1000 \
  --image-size "$IMAGE_SIZE" --out "$WORK/eval/base"
for K in 10 50; do
  "$VENV/bin/vgps" eval --task all --episodes "$EVAL_EPISODES" --policy sim --seed 1000 \
    --image-size "$IMAGE_SIZE" --critic "$OUT_CRITIC" --k "$K" --beta 0 --out "$WORK/eval/k$K"
done
"$VENV/bin/python" benchmarks/steering_sim.py --eval-dir "$WORK/eval"
echo "critic: $OUT_CRITIC (copy it to models/sim_critic once steering_sim.md shows it helps)"
