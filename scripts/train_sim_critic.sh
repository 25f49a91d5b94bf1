#!/usr/bin/env bash
# Reproduce the shipped simulation critic end to end; every stage resumes where it stopped.
#
#   scripts/train_sim_critic.sh [WORK_DIR]      (default: out/sim_critic)
#
# 1. collect episodes of the simulation policy in the MuJoCo scene (mixed success)
# 2. write them as the RLDS dataset vgps_sim
# 3. train the `sim` config with Cal-QL (resumes from the last checkpoint)
# 4. export the critic to models/sim_critic
# 5. evaluate the policy alone and steered (K = 10 and 50, beta = 0)
# Environment knobs: EPISODES (per task), STEPS, EVAL_EPISODES, SEED.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-out/sim_critic}
EPISODES=${EPISODES:-150}
STEPS=${STEPS:-8000}
EVAL_EPISODES=${EVAL_EPISODES:-100}
SEED=${SEED:-0}
VENV=${VENV:-.venv}
export MUJOCO_GL=${MUJOCO_GL:-egl} TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$WORK"

echo "== 1. collect $EPISODES episodes per task"
if [ ! -f "$WORK/episodes/.done" ]; then
  "$VENV/bin/vgps" collect --task all --episodes "$EPISODES" --policy sim --image-size 64 \
    --seed "$SEED" --out "$WORK/episodes"
  touch "$WORK/episodes/.done"
fi

echo "== 2. RLDS dataset"
if [ ! -f "$WORK/rlds/vgps_sim/1.0.0/dataset_info.json" ]; then
  rm -rf "$WORK/rlds/vgps_sim"
  "$VENV/bin/vgps-train" sim-dataset "$WORK/episodes" --data-dir "$WORK/rlds"
fi

echo "== 3. train ($STEPS steps; resumes)"
"$VENV/bin/vgps-train" --config sim --data-dir "$WORK/rlds" --run-dir "$WORK/run" \
  --set steps="$STEPS" --set seed="$SEED"

echo "== 4. export"
"$VENV/bin/vgps-train" export "$WORK/run" --out models/sim_critic --name sim-critic --force

echo "== 5. evaluate"
"$VENV/bin/vgps" eval --task all --episodes "$EVAL_EPISODES" --policy sim --seed 1000 \
  --out "$WORK/eval/base"
for K in 10 50; do
  "$VENV/bin/vgps" eval --task all --episodes "$EVAL_EPISODES" --policy sim --seed 1000 \
    --critic models/sim_critic --k "$K" --beta 0 --out "$WORK/eval/k$K"
done
"$VENV/bin/python" benchmarks/steering_sim.py --eval-dir "$WORK/eval"
