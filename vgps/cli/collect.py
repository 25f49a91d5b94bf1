"""``vgps collect``: record simulated episodes as ``.npz`` training data (no ROS).

    vgps collect --task all --episodes 100 --policy sim --out data/sim_rollouts

Calls :func:`vgps.evaluation.rollouts.collect`; the simulation options are ``vgps eval``'s.
"""

from __future__ import annotations

import argparse
import os

from vgps.cli.evaluate import add_sim_arguments, tasks


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    co = subparsers.add_parser(
        "collect", help="record simulated episodes as .npz files for critic training",
        description="Run simulated episodes and save each as OUT/episodes/<task>_<i>.npz "
                    "(images, states, actions, instruction, task, success, seed) plus "
                    "OUT/index.json.")
    add_sim_arguments(co, image_size=64)
    co.add_argument("--k", type=int, default=1, help="candidates per step (with --critic)")
    co.set_defaults(func=_collect)


def _collect(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is first imported
    from vgps.evaluation.rollouts import CollectConfig, collect

    config = CollectConfig(tasks=tasks(args.task), out=args.out, episodes=args.episodes,
                           policy=args.policy, k=args.k, critic=args.critic, beta=args.beta,
                           image_size=args.image_size, seed=args.seed,
                           instruction=args.instruction)
    index = collect(config)
    total = sum(s["episodes"] for s in index["summary"].values())
    wins = sum(s["successes"] for s in index["summary"].values())
    for task, s in index["summary"].items():
        print(f"{task:22s} {s['successes']:4d} / {s['episodes']:<4d} successes")
    print(f"wrote {total} episodes ({wins} successes, {total - wins} failures) to "
          f"{config.out / 'episodes'} and {config.out / 'index.json'}")
    return 0
