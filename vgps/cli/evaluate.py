"""``vgps eval``: evaluate a policy, optionally steered by a critic, in the MuJoCo sim (no ROS).

    vgps eval --task all --episodes 50 --policy sim --out out/eval_base
    vgps eval --task carrot_on_plate --critic models/sim_critic --k 10 --out out/eval_vgps

Calls :func:`vgps.evaluation.runner.evaluate` and prints its table. ``vgps collect``
(:mod:`vgps.cli.collect`) takes the same simulation options (:func:`add_sim_arguments`).
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from vgps_policy_bridge.registry import IN_PROCESS

TASK_HELP = "task name, or 'all' for every task"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser(
        "eval", help="evaluate a policy (optionally steered by a critic) in the MuJoCo sim",
        description="Run simulated episodes in-process: the policy samples K candidate chunks "
                    "per step; with --critic the V-GPS steerer picks one (greedy for beta = 0), "
                    "without it the policy's own sample is executed (K = 1). Writes "
                    "results.json, results.md and episodes.jsonl to --out.")
    add_sim_arguments(ev, image_size=256)
    ev.add_argument("--k", type=int, default=None,
                    help="candidates per step with --critic (default 10); ignored without it")
    ev.add_argument("--video", action="store_true",
                    help="write the first episode of each task to OUT/videos/ (MP4, else GIF)")
    ev.set_defaults(func=_eval)


def add_sim_arguments(parser: argparse.ArgumentParser, image_size: int) -> None:
    """The options ``vgps eval`` and ``vgps collect`` share (tasks, policy, critic, seed, ...)."""
    parser.add_argument("--task", default="all", help=TASK_HELP)
    parser.add_argument("--episodes", type=int, default=50, help="episodes per task")
    parser.add_argument("--policy", default="sim",
                        help=f"in-process policy ({', '.join(IN_PROCESS)}) or a policy "
                             "server's ws://host:port (vgps-policy-server)")
    parser.add_argument("--critic", default=None, metavar="PATH",
                        help="critic checkpoint directory to steer with")
    parser.add_argument("--beta", type=float, default=0.0,
                        help="selection temperature: 0 = greedy argmax, > 0 = softmax(Q/beta)")
    parser.add_argument("--seed", type=int, default=0, help="master seed")
    parser.add_argument("--instruction", default=None, metavar="TEXT",
                        help="instruction given to policy and critic instead of the task's")
    parser.add_argument("--image-size", type=int, default=image_size,
                        help=f"rendered camera size in pixels (default {image_size})")
    parser.add_argument("--out", required=True, type=Path, help="output directory")


def tasks(name: str) -> tuple[str, ...]:
    """``--task``: one task name, or every task for ``all``."""
    from vgps_widowx.sim import TASKS

    return tuple(TASKS) if name == "all" else (name,)


def _command_line(args: argparse.Namespace) -> str:
    """The equivalent ``vgps eval`` command, recorded next to the results."""
    parts = ["vgps", "eval", "--task", args.task, "--episodes", str(args.episodes),
             "--policy", args.policy]
    if args.critic is not None:
        parts += ["--critic", args.critic, "--k", str(args.k or 10), "--beta", str(args.beta)]
    parts += ["--seed", str(args.seed), "--image-size", str(args.image_size)]
    if args.instruction is not None:
        parts += ["--instruction", args.instruction]
    if args.video:
        parts.append("--video")
    return shlex.join([*parts, "--out", str(args.out)])


def _eval(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is first imported
    from rich.console import Console
    from rich.table import Table

    from vgps.evaluation.runner import EvalConfig, evaluate

    config = EvalConfig(tasks=tasks(args.task), out=args.out, episodes=args.episodes,
                        policy=args.policy, critic=args.critic, k=args.k, beta=args.beta,
                        seed=args.seed, instruction=args.instruction, video=args.video,
                        image_size=args.image_size)
    console = Console(stderr=False)
    if args.critic is None and args.k not in (None, 1):
        console.print(f"note: no --critic, so the policy's own sample is executed (K = 1, "
                      f"--k {args.k} ignored)")
    results = evaluate(config, command=_command_line(args))
    table = Table(title=f"V-GPS sim evaluation (K = {config.candidates}, beta = {args.beta})")
    for column in ("task", "episodes", "successes", "rate", "95% CI"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for task, r in results.items():
        lo, hi = r["ci95"]
        table.add_row(task, str(r["episodes"]), str(r["successes"]),
                      f"{r['success_rate']:.2f}", f"[{lo:.2f}, {hi:.2f}]")
    console.print(table)
    console.print(f"wrote {config.out / 'results.json'}, results.md, episodes.jsonl")
    return 0
