"""``vgps security init KEYSTORE``: an SROS2 keystore with one enclave per node of the graph.

    vgps security init keys/lab --domain-range 0-101
    vgps security init keys/lab --graph-args robot:=real camera:=/image_raw
    vgps up security:=keys/lab ...

The enclaves are ``/vgps/<node>`` for every node the graph can start (critic_node,
policy_node, selector_node, arm_driver, overlay_node, recorder) and ``/vgps/vgps_up`` (the
monitor of ``vgps up``); their permissions come from :mod:`vgps.security.permissions` for the
graph of ``--graph-args`` (launch arguments as with ``vgps up``). A keystore is never
overwritten: KEYSTORE must not exist or be empty.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    security = subparsers.add_parser(
        "security", help="SROS2 (DDS-Security): write a keystore for the graph",
        description="SROS2 for the steering graph (see `vgps security init --help`).")
    sub = security.add_subparsers(dest="security_command", required=True)
    init = sub.add_parser(
        "init", help="write a keystore in SROS2's layout, one enclave per node",
        description="Write a DDS-Security keystore in SROS2's layout: a CA, governance (access "
                    "control and encryption on every topic) and one enclave per node of the "
                    "graph, whose permissions let it publish and subscribe only its own topics.")
    init.add_argument("keystore", type=Path, help="new directory (must not exist or be empty)")
    init.add_argument("--domain-range", default="0-101", metavar="A-B",
                      help="ROS domain ids the keystore is valid for (default 0-101)")
    init.add_argument("--graph-args", nargs="*", default=[], metavar="name:=value",
                      help="launch arguments of the graph the permissions are for "
                           "(e.g. robot:=real camera:=/image_raw)")
    init.set_defaults(func=_init)


def parse_domain_range(text: str) -> tuple[int, int]:
    """``"A-B"`` (or ``"A"``) -> ``(A, B)``."""
    low, sep, high = text.strip().partition("-")
    try:
        return int(low), int(high if sep else low)
    except ValueError:
        raise ValueError(f"--domain-range {text!r}: write A-B, e.g. 0-101") from None


def _init(args: argparse.Namespace) -> int:
    from vgps.cli.up import parse_launch_arguments
    from vgps.graph.description import describe
    from vgps.security import enclave
    from vgps.security.keystore import write_keystore
    from vgps.security.permissions import grants

    domains = parse_domain_range(args.domain_range)
    graph = describe(parse_launch_arguments(args.graph_args))
    written = write_keystore(args.keystore,
                             {enclave(n): g for n, g in grants(graph).items()}, domains)
    print(f"keystore {args.keystore} (domains {domains[0]}-{domains[1]}), enclaves:")
    for name in written:
        print(f"  {name}")
    print(f"start the graph in it: vgps up security:={args.keystore} ...")
    return 0
