#!/usr/bin/env bash
# Reproduce the simulation critic end to end; every stage resumes where it stopped.
#
#   scripts/train_sim_critic.sh [WORK_DIR]      (default: out/sim_critic)
#
# Round 1 learns from the simulation policy alone; round 2 adds the robot's own experience
# under steering, so the critic sees what happens after the actions it prefers:
# 1. collect episodes of the simulation policy in the MuJoCo scene (mixed success)
# 2. write them as the RLDS dataset vgps_sim and train the `sim` config (round 1)
# 3. collect as many episodes again, steered by the round-1 critic (K = 10, beta = 0)
# 4. train the `sim` config from scratch on both collections (round 2) and export it
# 5. evaluate the policy alone and steered (K = 10 and 50, beta = 0) -> steering_sim.md
# Environment knobs: EPISODES (per task and round), STEPS, EVAL_EPISODES, SEED, OUT_CRITIC,
# IMAGE_SIZE (camera and critic, square; the sim preset's 64 unless set).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-out/sim_critic}
EPISODES=${EPISODES:-150}
STEPS=${STEPS:-8000}
EVAL_EPISODES=${EVAL_EPISODES:-100}
SEED=${SEED:-0}
IMAGE_SIZE=${IMAGE_SIZE:-64}
SIZE_SET=(--set "critic.image_size=[$IMAGE_SIZE,$IMAGE_SIZE]"
          --set "data.image_size=[$IMAGE_SIZE,$IMAGE_SIZE]")
OUT_CRITIC=${OUT_CRITIC:-$WORK/critic}
VENV=${VENV:-.venv}
export MUJOCO_GL=${MUJOCO_GL:-egl} TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$WORK"

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

echo "== 2. round 1: RLDS + train ($STEPS steps; resumes)"
dataset "$WORK/episodes/base" "$WORK/rlds_round1"
"$VENV/bin/vgps-train" --config sim --data-dir "$WORK/rlds_round1" --run-dir "$WORK/run_round1" \
  --set steps="$STEPS" --set seed="$SEED" "${SIZE_SET[@]}"
"$VENV/bin/vgps-train" export "$WORK/run_round1" --out "$WORK/critic_round1" \
  --name sim-critic-round1 --force

echo "== 3. collect $EPISODES episodes per task steered by the round-1 critic"
collect "$WORK/episodes/round1_k10" "$((SEED + 5000))" --critic "$WORK/critic_round1" \
  --k 10 --beta 0

echo "== 4. round 2: RLDS of both collections + train ($STEPS steps; resumes) + export"
dataset "$WORK/episodes" "$WORK/rlds_round2"
"$VENV/bin/vgps-train" --config sim --data-dir "$WORK/rlds_round2" --run-dir "$WORK/run_round2" \
  --set steps="$STEPS" --set seed="$SEED" "${SIZE_SET[@]}"
"$VENV/bin/vgps-train" export "$WORK/run_round2" --out "$OUT_CRITIC" --name sim-critic --force

echo "== 5. evaluate"
"$VENV/bin/vgps" eval --task all --episodes "$EVAL_EPISODES" --policy sim --seed 1000 \
  --image-size "$IMAGE_SIZE" --out "$WORK/eval/base"
for K in 10 50; do
  "$VENV/bin/vgps" eval --task all --episodes "$EVAL_EPISODES" --policy sim --seed 1000 \
    --image-size "$IMAGE_SIZE" --critic "$OUT_CRITIC" --k "$K" --beta 0 --out "$WORK/eval/k$K"
done
"$VENV/bin/python" benchmarks/steering_sim.py --eval-dir "$WORK/eval"
echo "critic: $OUT_CRITIC (copy it to models/sim_critic once steering_sim.md shows it helps)"
