#!/usr/bin/env bash
# The experience flywheel in simulation: the critic learns from the robot's own steered runs,
# the policy is never touched. Every stage resumes where it stopped.
#
#   scripts/flywheel_sim.sh [WORK_DIR]      (default: out/flywheel)
#
# 0. the previous data, a sample of what the deployed critic was trained on, written as the RLDS
#    dataset vgps_sim (`vgps collect`, in bulk): EPISODES_BASE episodes per task of the
#    simulation policy alone, and STEERED_BASE episodes per task and K in DEPLOY_KS steered by
#    START, as most of its training data were (round 1 measured that this alone does not hold
#    stack_blocks at K = 50; the anchor, ANCHOR below, did most of that);
# 1. for round r = 1 .. ROUNDS:
#    a. deploy the current critic through the live ROS 2 graph (`vgps up`), recording a bag per
#       task and K, with the scripted corrector taking over when the arm heads into a known
#       failure (intervention:=sim); the simulator labels each episode's outcome;
#    b. `vgps dataset build` every bag so far into the deployment dataset vgps_deploy
#       (incremental: episodes are keyed by run id and never added twice);
#    c. fine-tune each member of START (INIT_FROM=start, the default) or of the deployed critic
#       (INIT_FROM=deployed) from its own weights (`vgps-train --config finetune --init-from`),
#       held to it by the anchor (calql.anchor_weight=ANCHOR, also at the data's motion with the
#       other gripper command when ANCHOR_FLIP=true; and, with CAND_ANCHOR > 0, at the
#       candidates the policy proposed at each recorded step, KL of softmax(Q / CAND_TEMP) or
#       squared Q at CAND_TEMP=0), on vgps_sim + DEPLOY_WEIGHT x vgps_deploy
#       (every round's bags so far); export (the card lists every simulated run behind the
#       data with its seed, `vgps dataset collections`), and rebuild the ensemble
#       (HEAD_REDUCTION). Round 2 in
#       simulation measured why START is the default: a fine-tune of a fine-tune starts with a
#       smaller conservative gap and spends the rest, and its steering collapsed
#       (benchmarks/results/flywheel_sim_round2.md);
#    d. `vgps critic compare NEW DEPLOYED --promote`: both critics on the same fresh seeds
#       (K = 10 and 50, beta = 0); the new one replaces the deployed one only when it is not worse
#       with 95 % confidence in every task and K (the old one is kept beside it).
# The deployed critic starts as a copy of START (default models/sim_critic) in WORK/deployed;
# models/ is never written here.
#
# Environment knobs: TASKS (comma list or all), ROUNDS, EPISODES_BASE, STEERED_BASE, EPISODES
# (per task, K and round, live graph), DEPLOY_KS, PERIOD (control_period_s of the live runs), STEPS (fine-tune),
# EVAL_EPISODES (0: no comparison), EVAL_KS, MARGIN, SEED, START, INIT_FROM, MEMBERS (comma list
# of member indices to fine-tune, or all; one member makes a single-network critic), DEPLOY
# (deployed, or last: from round 2 on, a trial of the last round's critic, promoted or not, so
# that the corrector's take-overs answer its own mistakes), ANCHOR,
# ANCHOR_FLIP, CAND_ANCHOR, CAND_TEMP, DEPLOY_WEIGHT, HEAD_REDUCTION, TRAIN_ARGS
# (more vgps-train options, e.g.
# "--set val_every=0" for a smoke run too small to hold episodes out).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-out/flywheel}
TASKS=${TASKS:-all}
ROUNDS=${ROUNDS:-3}
EPISODES_BASE=${EPISODES_BASE:-100}
STEERED_BASE=${STEERED_BASE:-100}
EPISODES=${EPISODES:-50}
DEPLOY_KS=${DEPLOY_KS:-10 50}
PERIOD=${PERIOD:-0.05}
STEPS=${STEPS:-2500}
INIT_FROM=${INIT_FROM:-start}
ANCHOR=${ANCHOR:-0.3}
ANCHOR_FLIP=${ANCHOR_FLIP:-false}
DEPLOY_WEIGHT=${DEPLOY_WEIGHT:-1}
CAND_ANCHOR=${CAND_ANCHOR:-0}
CAND_TEMP=${CAND_TEMP:-0.1}
MEMBERS=${MEMBERS:-all}
DEPLOY=${DEPLOY:-deployed}
HEAD_REDUCTION=${HEAD_REDUCTION:-min}
EVAL_EPISODES=${EVAL_EPISODES:-200}
EVAL_KS=${EVAL_KS:-10 50}
MARGIN=${MARGIN:-0.05}
SEED=${SEED:-40000}
START=${START:-models/sim_critic}
VENV=${VENV:-.venv}
IMAGE_SIZE=64
export MUJOCO_GL=${MUJOCO_GL:-egl} TF_CPP_MIN_LOG_LEVEL=2
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
case "$DEPLOY" in
  deployed | last) ;;
  *) echo "DEPLOY must be deployed or last, not '$DEPLOY'" >&2; exit 2 ;;
esac
case "$INIT_FROM" in
  start | deployed) ;;
  *) echo "INIT_FROM must be start or deployed, not '$INIT_FROM'" >&2; exit 2 ;;
esac
mkdir -p "$WORK"
if [ "$TASKS" = all ]; then
  TASK_LIST=$("$VENV/bin/python" -c "from vgps_widowx.sim.tasks import TASKS; print(' '.join(TASKS))")
else
  TASK_LIST=${TASKS//,/ }
fi
members_of() {  # the member directories of an ensemble, or the critic itself
  if [ -d "$1/members" ]; then ls -d "$1"/members/*/; else echo "$1"; fi
}

echo "== 0. previous data: $EPISODES_BASE episodes per task of the policy alone -> vgps_sim"
for task in $TASK_LIST; do
  if [ ! -f "$WORK/base/$task.done" ]; then
    rm -rf "$WORK/base/$task"
    "$VENV/bin/vgps" collect --task "$task" --episodes "$EPISODES_BASE" --policy sim \
      --image-size "$IMAGE_SIZE" --seed "$SEED" --out "$WORK/base/$task"
    touch "$WORK/base/$task.done"
  fi
done
echo "== 0. previous data: $STEERED_BASE episodes per task and K steered by $START -> vgps_sim"
i=0
for task in $TASK_LIST; do
  for K in $DEPLOY_KS; do
    i=$((i + 1))
    dir="$WORK/base/steered_k${K}_$task"
    if ((STEERED_BASE > 0)) && [ ! -f "$dir.done" ]; then
      rm -rf "$dir"
      "$VENV/bin/vgps" collect --task "$task" --episodes "$STEERED_BASE" --policy sim \
        --critic "$START" --k "$K" --beta 0 --image-size "$IMAGE_SIZE" \
        --seed "$((SEED + 20000 + 100 * i + K))" --out "$dir"
      touch "$dir.done"
    fi
  done
done
if [ ! -f "$WORK/rlds/vgps_sim/1.0.0/dataset_info.json" ]; then
  rm -rf "$WORK/rlds/vgps_sim"
  "$VENV/bin/vgps-train" sim-dataset "$WORK/base" --data-dir "$WORK/rlds"
fi
if [ ! -d "$WORK/deployed" ]; then
  cp -r "$START" "$WORK/deployed.tmp" && mv "$WORK/deployed.tmp" "$WORK/deployed"
fi

for ((r = 1; r <= ROUNDS; r++)); do
  R="$WORK/round$r"
  mkdir -p "$R/bags" "$R/up" "$R/done"
  live="$WORK/deployed"
  if [ "$DEPLOY" = last ] && ((r > 1)); then live="$WORK/round$((r - 1))/critic"; fi
  echo "== 1a. round $r: deploy $live on the live graph, recording (interventions on)"
  i=0
  for task in $TASK_LIST; do
    for K in $DEPLOY_KS; do
      i=$((i + 1))
      bag="$R/bags/${task}_k$K"
      if [ ! -f "$R/done/${task}_k$K" ]; then
        rm -rf "$bag" "$R/up/${task}_k$K"
        mkdir -p "$R/up/${task}_k$K"
        "$VENV/bin/vgps" up "critic:=$live" "task:=$task" "k:=$K" intervention:=sim \
          --episodes "$EPISODES" --record "$bag" --out "$R/up/${task}_k$K" --quiet \
          --set "arm_driver.control_period_s=$PERIOD" --set "arm_driver.image_size=$IMAGE_SIZE" \
          --set "arm_driver.seed=$((SEED + 1000 * r + 100 * i + K))"
        touch "$R/done/${task}_k$K"
      fi
    done
  done

  echo "== 1b. round $r: every bag so far -> vgps_deploy (incremental)"
  cand_build=() cand_train=()
  if [ "$CAND_ANCHOR" != 0 ]; then  # the candidates go into the dataset only when trained on
    cand_build=(--candidates)
    cand_train=(--set data.candidates=50 --set calql.candidate_anchor_weight="$CAND_ANCHOR"
                --set calql.candidate_anchor_temperature="$CAND_TEMP")
  fi
  "$VENV/bin/vgps" dataset build "$WORK"/round*/bags/* --out "$WORK/rlds" --name vgps_deploy \
    "${cand_build[@]}"

  if [ "$INIT_FROM" = start ]; then parent="$START"; else parent="$WORK/deployed"; fi
  echo "== 1c. round $r: fine-tune each member of $parent ($STEPS steps, anchor $ANCHOR)"
  if [ ! -f "$R/critic/card.json" ]; then
    exported=()
    m=-1
    for member in $(members_of "$parent"); do
      m=$((m + 1))
      if [ "$MEMBERS" != all ] && [[ ",$MEMBERS," != *",$m,"* ]]; then continue; fi
      run="$R/run_m$m"
      "$VENV/bin/vgps-train" --config finetune --data-dir "$WORK/rlds" --run-dir "$run" \
        --init-from "$member" --dataset vgps_sim/1.0.0:1 \
        --dataset "vgps_deploy/1.0.0:$DEPLOY_WEIGHT" \
        --set steps="$STEPS" --set seed="$((SEED + 10 * r + m))" \
        --set calql.anchor_weight="$ANCHOR" --set calql.anchor_flip_gripper="$ANCHOR_FLIP" \
        "${cand_train[@]}" \
        ${TRAIN_ARGS:-}
      # the simulated runs behind its data, with their seeds (compare refuses them)
      of_member=()
      if [ -d "$parent/members" ]; then of_member=(--parent-member "$m"); fi
      "$VENV/bin/vgps" dataset collections "$WORK"/base/*/ "$WORK"/round*/up/*/ \
        --parent "$parent" "${of_member[@]}" --out "$R/collections_m$m.json"
      "$VENV/bin/vgps-train" export "$run" --out "$R/member$m" --name "sim-critic-r$r-m$m" \
        --collections "$R/collections_m$m.json" --force
      exported+=("$R/member$m")
    done
    if ((${#exported[@]} == 0)); then
      echo "MEMBERS=$MEMBERS names no member of $parent" >&2
      exit 2
    fi
    if ((${#exported[@]} > 1)); then
      "$VENV/bin/vgps" critic ensemble "${exported[@]}" --out "$R/critic" --name sim-critic \
        --head-reduction "$HEAD_REDUCTION" --force
    else
      cp -r "${exported[0]}" "$R/critic"
    fi
  fi

  echo "== 1d. round $r: compare with the deployed critic on fresh seeds; promote if not worse"
  if ((EVAL_EPISODES == 0)); then
    echo "EVAL_EPISODES=0: no comparison (benchmarks/flywheel_sim.py measures the round's critic)"
  elif [ ! -f "$R/compare/report.json" ]; then
    ks=()
    for K in $EVAL_KS; do ks+=(--k "$K"); done
    set +e
    "$VENV/bin/vgps" critic compare "$R/critic" "$WORK/deployed" --sim-eval "$TASKS" \
      --episodes "$EVAL_EPISODES" "${ks[@]}" --seed "$((SEED + 500000 + r))" \
      --image-size "$IMAGE_SIZE" --margin "$MARGIN" --promote --report "$R/compare" --quiet
    code=$?
    set -e
    if ((code > 1)); then exit "$code"; fi
  fi
done
echo "deployed critic after $ROUNDS rounds: $WORK/deployed (reports: $WORK/round*/compare)"
