"""How steered episodes fail, by critic: the scripted corrector watching, never taking over.

Definition. Steered episodes run in-process on the same code path as ``vgps eval`` (policy
``sim``, :func:`~vgps.evaluation.runner.load_steerer` with beta 0, episode ``i`` seeded with
:func:`~vgps.evaluation.runner.episode_seed`, the policy's noise from
``default_rng([episode seed, 1])``, 64 px images). After every executed step the scripted
corrector (:class:`~vgps_widowx.sim.corrector.Corrector`, default thresholds) sees the
simulator's privileged state, exactly as it does with ``intervention:=sim``, but its action is
never executed: the episode stays the critic's. The first failure it would have taken over for
is the episode's *first alarm*:

- ``beside``: the gripper closed on nothing, low, beside the grasp point;
- ``early``: the gripper closed on nothing high above the grasp point, the object resting;
- ``hover``: the gripper stayed open at the grasp pose for more than a few steps;
- ``release``: the object was let go while carried away from the target;
- ``hold``: the object was held at the place pose for too long, or lifted back up from it;
- ``none``: no alarm.

Only the first alarm is meaningful: after it the corrector believes it is steering. An alarm is
not a failure (the policy often re-grasps by itself), so both successes and failures are
tabulated by first alarm. Several critics run on the same seeds, one row each.

    MUJOCO_GL=egl python benchmarks/failure_modes.py --task stack_blocks --k 50 \\
        --critic models/sim_critic --critic out/flywheel/round1/critic
"""

from __future__ import annotations

import argparse
import collections
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
IMAGE_SIZE = 64
ALARMS = ("beside", "early", "hover", "release", "hold", "none")


def run_critic(critic: str, task: str, k: int, episodes: int, seed: int,
               progress: bool) -> list[dict[str, Any]]:
    """One row per episode: ``{"seed", "success", "steps", "alarm", "alarm_step"}``."""
    from tqdm import tqdm

    from vgps.evaluation.runner import episode_seed, in_process_policy, load_steerer
    from vgps_widowx.sim.corrector import Corrector, CorrectorConfig
    from vgps_widowx.sim.env import SimEnvConfig, WidowXSimEnv

    steerer = load_steerer(critic, 0.0)
    policy = in_process_policy("sim")
    env = WidowXSimEnv(SimEnvConfig(image_size=(IMAGE_SIZE, IMAGE_SIZE)))
    rows = []
    try:
        for i in tqdm(range(episodes), desc=f"{Path(critic).name} {task} K={k}",
                      disable=not progress):
            s = episode_seed(seed, task, i)
            obs, info = env.reset(seed=s, options={"task": task})
            policy.reset()
            corrector = Corrector(CorrectorConfig())
            corrector.reset()
            rng = np.random.default_rng([s, 1])
            alarm, alarm_step, steps = "none", None, 0
            for step in range(env.max_steps):
                observation = {**obs, "privileged": env.privileged_state()}
                chunks = policy.sample(observation, env.instruction, k, rng)
                choice = steerer.choose(obs["image"], env.instruction, chunks, None).index
                obs, _, terminated, truncated, info = env.step(chunks[choice, 0])
                steps = step + 1
                event = corrector.step(env.privileged_state()).event
                if alarm == "none" and event.startswith("take_over:"):
                    alarm, alarm_step = event.split(":", 1)[1], step
                if terminated or truncated:
                    break
            rows.append({"seed": int(s), "success": bool(info["success"]), "steps": steps,
                         "alarm": alarm, "alarm_step": alarm_step})
    finally:
        env.close()
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Success count and, for successes and failures apart, the count of each first alarm."""
    by = {outcome: collections.Counter(r["alarm"] for r in rows if r["success"] is outcome)
          for outcome in (True, False)}
    return {"episodes": len(rows), "successes": sum(r["success"] for r in rows),
            "failures_by_alarm": {a: by[False][a] for a in ALARMS},
            "successes_by_alarm": {a: by[True][a] for a in ALARMS}}


def markdown(summaries: list[dict[str, Any]], settings: dict[str, Any], command: str) -> str:
    head = " | ".join(f"fail: {a}" for a in ALARMS)
    lines = [f"# How steered episodes fail: {settings['task']}, K = {settings['K']}", "",
             f"| critic | success | {head} | successes that had an alarm |",
             "|---|---:|" + "---:|" * len(ALARMS) + "---:|"]
    for s in summaries:
        fails = " | ".join(str(s["failures_by_alarm"][a]) for a in ALARMS)
        alarmed = s["episodes"] and sum(v for a, v in s["successes_by_alarm"].items()
                                        if a != "none")
        lines.append(f"| `{s['critic_id']}` ({s['critic']}) | {s['successes']}/{s['episodes']}"
                     f" | {fails} | {alarmed} |")
    lines += ["", "First alarm: the first failure the scripted corrector would have taken over "
              "for (it watched, it never steered). beside: closed on nothing beside the grasp "
              "point; early: closed on nothing high above it; hover: open at the grasp pose "
              "too long; release: let go while carrying; hold: held at the place pose too long.",
              "", f"Settings: {json.dumps(settings)}", "", "```", command, "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--critic", action="append", required=True,
                        help="critic checkpoint directory; repeat to compare critics")
    parser.add_argument("--task", default="stack_blocks")
    parser.add_argument("--k", type=int, default=50, help="candidates per step")
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=540001, help="master seed, as `vgps eval`")
    parser.add_argument("--out", type=Path, default=RESULTS / "failure_modes",
                        help="output path without suffix: writes <out>.md and <out>.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    from vgps_critic.loading import describe
    from vgps_widowx.sim import TASKS

    if args.task not in TASKS:
        parser.error(f"--task {args.task!r}: choose from {sorted(TASKS)}")
    if args.k < 1 or args.episodes < 1:
        parser.error("--k and --episodes must be >= 1")
    for critic in args.critic:
        if not Path(critic).is_dir():
            parser.error(f"--critic {critic!r}: no such checkpoint directory")
    shown = sys.argv[1:] if argv is None else argv
    command = "MUJOCO_GL=egl python benchmarks/failure_modes.py " + shlex.join(shown)
    settings = {"task": args.task, "K": args.k, "episodes": args.episodes, "seed": args.seed,
                "image_size": IMAGE_SIZE, "beta": 0.0, "policy": "sim"}
    summaries, episodes = [], []
    for critic in args.critic:
        info = describe(critic)
        critic_id = info.get("critic_id") or f"{info['name']}@{info['params']['sha256'][:12]}"
        rows = run_critic(critic, args.task, args.k, args.episodes, args.seed, not args.quiet)
        summaries.append({"critic": critic, "critic_id": critic_id, **summarize(rows)})
        episodes.append(rows)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(summaries, settings, command)
    (out.parent / f"{out.name}.md").write_text(text)
    payload = {"command": command, "settings": settings,
               "critics": [{**s, "episodes_detail": rows}
                           for s, rows in zip(summaries, episodes, strict=True)]}
    (out.parent / f"{out.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
