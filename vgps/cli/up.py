"""``vgps up``: start the whole steering graph, one process per node, and watch it.

    vgps up critic:=models/sim_critic --task carrot_on_plate --episodes 2 --out out/up
    vgps up robot:=real policy:=octo-small-1.5 critic:=critics/vgps-release k:=50
    vgps up critic:=... --set arm_driver.image_size=64 --set selector_node.fallback=hold
    vgps up critic:=models/sim_critic --episodes 1 --record out/bags/run1

Launch arguments are ``name:=value`` as with ``ros2 launch vgps steer_widowx.launch.py`` (see
``vgps.graph.description``). ``--episodes N`` runs N episodes back to back, in simulation or
on the real arm, and exits (``0``: until Ctrl-C)
and ``--out DIR`` receives ``summary.json`` (episodes, step latency p50/p95), ``params.yaml``,
``processes.json``, node logs and, with ``--video``, ``episode_0.mp4``. ``--record DIR`` (or
``record:=DIR``) records the steering topics into a rosbag2 bag (MCAP) in ``DIR``
(:mod:`vgps.bags.recorder_node`; read it with :func:`vgps.bags.writer.read_bag`). The handler
calls :func:`vgps.graph.launcher.up` and prints its :class:`~vgps.graph.result.UpResult`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser(
        "up", help="start the ROS 2 steering graph (policy, critic, selector, arm driver)",
        description="Start every node of the steering graph as its own process (the same "
                    "executables and --ros-args that `ros2 launch vgps steer_widowx.launch.py` "
                    "uses), configure and activate them, print per-step progress and Q "
                    "statistics, and shut everything down cleanly.")
    up.add_argument("launch_arguments", nargs="*", metavar="name:=value",
                    help="launch arguments: robot, policy, critic, k, beta, task, instruction, "
                         "camera, record")
    up.add_argument("--task", default=None, help="sim task (same as task:=)")
    up.add_argument("--episodes", type=int, default=None,
                    help="run this many episodes, then exit (0: until Ctrl-C; default: "
                         "the parameter file's)")
    up.add_argument("--serve-policy", metavar="NAME", default="",
                    help="start `vgps-policy-server --policy NAME` on a free local port and "
                         "steer with it over the policy-server protocol (policy:= becomes its "
                         "URL), e.g. --serve-policy sim")
    up.add_argument("--serve-arg", dest="serve_args", action="append", default=[],
                    metavar="ARG", help="an argument of that server (repeatable), e.g. "
                                        "--serve-arg=--horizon --serve-arg=4")
    up.add_argument("--out", type=Path, default=None,
                    help="directory for summary.json, logs, params.yaml (default: a temp dir)")
    up.add_argument("--video", action="store_true", help="sim: write OUT/episode_0.mp4")
    up.add_argument("--record", type=Path, default=None, metavar="DIR",
                    help="record the steering topics into a rosbag2 bag (MCAP) in DIR, which "
                         "must not exist yet (same as record:=DIR)")
    up.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.PARAM=V",
                    help="override one parameter (repeatable)")
    up.add_argument("--params-file", type=Path, default=None,
                    help="parameter file to start from (default config/steer_widowx.yaml)")
    up.add_argument("--timeout", type=float, default=None, metavar="S",
                    help="give up after S seconds (exit code 3)")
    up.add_argument("--quiet", action="store_true", help="no per-step lines")
    up.set_defaults(func=_up)


def parse_launch_arguments(items: list[str]) -> dict[str, str]:
    """``["k:=10", ...]`` -> ``{"k": "10"}``."""
    out = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ValueError(f"launch argument {item!r}: write name:=value")
        out[name] = value
    return out


def parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["node.param=value", ...]`` -> ``{"node": {"param": value}}`` (YAML-typed values)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        node, dot, param = key.partition(".")
        if not sep or not dot or not node or not param:
            raise ValueError(f"--set {item!r}: write NODE.PARAM=VALUE")
        out.setdefault(node, {})[param] = yaml.safe_load(value) if value else ""
    return out


def _up(args: argparse.Namespace) -> int:
    from vgps.graph.launcher import UpConfig, up

    arguments = parse_launch_arguments(args.launch_arguments)
    if args.task:
        arguments["task"] = args.task
    if args.record:
        arguments["record"] = str(args.record)
    config = UpConfig(arguments=arguments, overrides=parse_sets(args.sets),
                      config=args.params_file, out=args.out, episodes=args.episodes,
                      video=args.video, timeout_s=args.timeout, quiet=args.quiet,
                      serve_policy=args.serve_policy, serve_args=tuple(args.serve_args))
    result = up(config)
    for ep in result.episodes:
        print(f"episode {ep.episode} ({ep.task}): "
              f"{'SUCCESS' if ep.success else 'failure'} in {ep.steps} steps")
    lat = result.step_latency_ms
    print(f"step latency (candidates -> selected): p50 {lat.p50} ms, p95 {lat.p95} ms "
          f"over {lat.n} steps; decisions {json.dumps(dict(result.decisions))} "
          f"(+{result.idle_holds} idle watchdog holds)")
    if args.out:
        print(f"wrote {args.out / 'summary.json'}"
              + (f" and {result.video}" if result.video else ""))
    bag = result.bag
    if bag is not None and bag.messages is not None:
        print(f"recorded {sum(bag.messages.values())} messages to {bag.path}"
              + (f" ({len(bag.problems)} problems)" if bag.problems else ""))
    return result.exit_code
