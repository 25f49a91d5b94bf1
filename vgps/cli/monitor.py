"""``vgps monitor``: a live terminal view of a running steering graph (see
:mod:`vgps.monitoring.terminal`).

    vgps monitor                       # until Ctrl-C, in the environment's ROS_DOMAIN_ID
    vgps monitor --duration 60
    vgps monitor --once --duration 3   # one snapshot after 3 s of listening
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    mon = subparsers.add_parser(
        "monitor", help="live terminal view of a running graph (Q, margin, latency, rate, "
                        "decisions, diagnostics)",
        description="Listen to a running steering graph (vgps up or ros2 launch, same "
                    "ROS_DOMAIN_ID) and show the episode, step, selected Q, margin, Q "
                    "statistics, latency, step rate, decisions by reason, each node's "
                    "diagnostics and sparklines of their recent history.")
    mon.add_argument("--duration", type=float, default=0.0, metavar="S",
                     help="exit after S seconds (default: until Ctrl-C; with --once: 2)")
    mon.add_argument("--once", action="store_true",
                     help="listen for --duration seconds, print one snapshot and exit")
    mon.add_argument("--history", type=int, default=40, metavar="N",
                     help="values per sparkline (default 40)")
    mon.add_argument("--refresh", type=float, default=4.0, metavar="HZ",
                     help="redraws per second (default 4)")
    mon.add_argument("--namespace", default="", help="the graph's ROS namespace (default: root)")
    mon.set_defaults(func=_monitor)


def _monitor(args: argparse.Namespace) -> int:
    from vgps.monitoring.terminal import MonitorConfig, run

    return run(MonitorConfig(duration_s=args.duration, once=args.once, history=args.history,
                             refresh_hz=args.refresh, namespace=args.namespace))
