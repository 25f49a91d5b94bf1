"""The ``vgps`` command. Each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import sys

from vgps import __version__
from vgps.cli import collect as collect_cmd
from vgps.cli import critic as critic_cmd
from vgps.cli import dataset as dataset_cmd
from vgps.cli import evaluate as eval_cmd
from vgps.cli import label as label_cmd
from vgps.cli import monitor as monitor_cmd
from vgps.cli import replay as replay_cmd
from vgps.cli import security as security_cmd
from vgps.cli import up as up_cmd


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vgps", description="Value-Guided Policy Steering for ROS 2 and the WidowX 250.")
    parser.add_argument("--version", action="version", version=f"vgps {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    critic_cmd.add_parser(sub)
    dataset_cmd.add_parser(sub)
    eval_cmd.add_parser(sub)
    collect_cmd.add_parser(sub)
    label_cmd.add_parser(sub)
    monitor_cmd.add_parser(sub)
    replay_cmd.add_parser(sub)
    security_cmd.add_parser(sub)
    up_cmd.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as exc:
        # Library errors carry a message meant for the user; no traceback for them.
        print(f"vgps: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
