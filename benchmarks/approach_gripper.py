"""Does a critic keep the gripper open on the way to the object? Several critics, same states.

Definition. Episodes run in-process on ``vgps eval``'s code path (policy ``sim``, beta 0,
episode ``i`` seeded with :func:`~vgps.evaluation.runner.episode_seed`, the policy's noise from
``default_rng([episode seed, 1])``, 64 px), steered by the first ``--critic``; every critic
scores the same candidates at the same states. An *approach state* is one where the object is
not grasped, the gripper is open, and the K candidates include both kinds of gripper command
(open: action[6] >= 0.5, close: < 0.5). The scripted solver, stepped alongside on the
simulator's privileged state, says which is right there: keep it open (on the way) or close
(at the grasp). Per critic:

- ``open_higher``: on the way, the share of states where the mean Q of the open candidates is
  above that of the close ones;
- ``early_close``: on the way, the share of states where the critic's argmax closes;
- ``close_at_grasp``: at the grasp, the share where its argmax closes.

A fine-tuned critic that closes early grasps beside the object (round 3 of the flywheel found
this behind every fine-tune's loss on stack_blocks at K = 50). It takes about a minute, against
minutes of rollouts to see the same loss in success rates.

    MUJOCO_GL=egl python benchmarks/approach_gripper.py --task stack_blocks --k 50 \\
        --critic models/sim_critic --critic out/flywheel/round1/critic
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
IMAGE_SIZE = 64


def approach_states(steerers: dict[str, Any], task: str, k: int, episodes: int, seed: int,
                    progress: bool) -> list[dict[str, Any]]:
    """One row per approach state: ``{"seed", "step", "expert_closes", "close" (K bools),
    "q": {critic: K floats}}``; ``steerers`` maps each critic to its greedy
    :class:`~vgps_critic.steering.Steerer`, and the first one steers the episodes."""
    from tqdm import tqdm

    from vgps.evaluation.runner import episode_seed, in_process_policy
    from vgps_widowx.sim.env import SimEnvConfig, WidowXSimEnv
    from vgps_widowx.sim.scripted import ScriptedPolicy

    first, *others = steerers
    policy = in_process_policy("sim")
    env = WidowXSimEnv(SimEnvConfig(image_size=(IMAGE_SIZE, IMAGE_SIZE)))
    rows = []
    try:
        for i in tqdm(range(episodes), desc=f"{task} K={k}", disable=not progress):
            s = episode_seed(seed, task, i)
            obs, _ = env.reset(seed=s, options={"task": task})
            policy.reset()
            expert = ScriptedPolicy(task)
            rng = np.random.default_rng([s, 1])
            for step in range(env.max_steps):
                state = env.privileged_state()
                expert_closes = bool(expert.act(state)[6] < 0.5)
                chunks = policy.sample({**obs, "privileged": state}, env.instruction, k, rng)
                decision = steerers[first].choose(obs["image"], env.instruction, chunks, None)
                close = chunks[:, 0, 6] < 0.5
                if not state["object_grasped"] and state["gripper"] > 0.5 \
                        and 0 < int(close.sum()) < k:
                    scores = {first: decision.q_values}
                    scores.update({c: steerers[c].choose(obs["image"], env.instruction, chunks,
                                                         None).q_values for c in others})
                    q = {c: [float(v) for v in values] for c, values in scores.items()}
                    rows.append({"seed": int(s), "step": step, "expert_closes": expert_closes,
                                 "close": [bool(v) for v in close], "q": q})
                obs, _, terminated, truncated, _ = env.step(chunks[decision.index, 0])
                if terminated or truncated:
                    break
    finally:
        env.close()
    return rows


def summarize(rows: list[dict[str, Any]], critic: str) -> dict[str, Any]:
    """The three shares of the module docstring for one critic (None where no state counts)."""
    way = [r for r in rows if not r["expert_closes"]]
    grasp = [r for r in rows if r["expert_closes"]]

    def argmax_closes(r: dict[str, Any]) -> bool:
        return bool(r["close"][int(np.argmax(r["q"][critic]))])

    def open_higher(r: dict[str, Any]) -> bool:
        q, close = np.asarray(r["q"][critic]), np.asarray(r["close"])
        return bool(q[~close].mean() > q[close].mean())

    def share(items: list[dict[str, Any]], test: Any) -> float | None:
        return float(np.mean([test(r) for r in items])) if items else None

    return {"critic": critic, "on_the_way": len(way), "at_grasp": len(grasp),
            "open_higher": share(way, open_higher), "early_close": share(way, argmax_closes),
            "close_at_grasp": share(grasp, argmax_closes)}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def markdown(summaries: list[dict[str, Any]], ids: dict[str, str], settings: dict[str, Any],
             command: str) -> str:
    lines = ["# Approach states: does the critic keep the gripper open on the way?", "",
             f"Command: `{command}`", "",
             f"- task {settings['task']}, K = {settings['k']}, {settings['episodes']} episodes "
             f"(master seed {settings['seed']}), steered by the first critic; the same states "
             "for every critic",
             f"- {summaries[0]['on_the_way']} states on the way, {summaries[0]['at_grasp']} at "
             "the grasp (the scripted solver's call)", "",
             "| critic | open rated higher on the way | argmax closes on the way | "
             "argmax closes at the grasp |", "|---|---:|---:|---:|"]
    for s in summaries:
        lines.append(f"| `{ids[s['critic']]}` | {_pct(s['open_higher'])} | "
                     f"{_pct(s['early_close'])} | {_pct(s['close_at_grasp'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--critic", action="append", required=True,
                        help="critic checkpoint (repeatable; the first one steers)")
    parser.add_argument("--task", default="stack_blocks")
    parser.add_argument("--k", type=int, default=50, help="candidates per step")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=870000, help="master seed, as `vgps eval`")
    parser.add_argument("--out", type=Path, default=RESULTS / "approach_gripper",
                        help="writes <out>.md and <out>.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    from vgps_widowx.sim import TASKS

    if args.task not in TASKS:
        parser.error(f"--task {args.task!r}: choose from {', '.join(TASKS)}")
    if args.k < 2 or args.episodes < 1:
        parser.error("--k must be >= 2 and --episodes >= 1")
    for c in args.critic:
        if not (Path(c) / "card.json").is_file():
            parser.error(f"--critic {c}: no critic checkpoint there (card.json missing)")
    from vgps.evaluation.runner import load_steerer

    steerers = {c: load_steerer(c, 0.0) for c in args.critic}  # loaded once each
    ids = {c: st.critic.critic_id for c, st in steerers.items()}
    shown = sys.argv[1:] if argv is None else argv
    command = "MUJOCO_GL=egl python benchmarks/approach_gripper.py " + shlex.join(shown)
    rows = approach_states(steerers, args.task, args.k, args.episodes, args.seed,
                           not args.quiet)
    summaries = [summarize(rows, c) for c in args.critic]
    settings = {"task": args.task, "k": args.k, "episodes": args.episodes, "seed": args.seed}
    text = markdown(summaries, ids, settings, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    (args.out.parent / f"{args.out.name}.md").write_text(text)
    payload = {"command": command, "settings": settings,
               "critics": [{**s, "critic_id": ids[s["critic"]]} for s in summaries],
               "states": rows}
    (args.out.parent / f"{args.out.name}.json").write_text(json.dumps(payload) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
