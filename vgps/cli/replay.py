"""``vgps replay``: re-score a recorded run with a critic and report, or publish it onto topics.

    vgps replay out/bags/run1 --out out/replay                       # the recorded critic
    vgps replay out/bags/run1 --critic models/other --k 5 --out out/replay_other
    vgps replay out/bags/run1 --publish --rate 4                      # live topics, 4x speed
    vgps replay out/bags/run1 --publish --restamp --topics /camera/image_raw /vgps/candidates

With ``--out`` it writes ``OUT/replay.json`` and ``OUT/report.html`` (:mod:`vgps.replay.rescore`,
:mod:`vgps.replay.report`); with ``--publish`` it publishes the bag (:mod:`vgps.bags.publish`);
both may be given (analysis first).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    rep = subparsers.add_parser(
        "replay", help="re-score a recorded bag with a critic (report), or publish it on topics",
        description="Re-score every recorded step of a `vgps up --record` bag with a critic "
                    "(the recorded one by default, from BAG/metadata.yaml), redo the choice and "
                    "compare it with the executed one: OUT/replay.json and a self-contained "
                    "OUT/report.html. --publish sends the recorded messages to live topics.")
    rep.add_argument("bag", type=Path, help="bag directory (or .mcap file)")
    rep.add_argument("--critic", type=Path, default=None, metavar="PATH",
                     help="critic checkpoint (default: the one BAG/metadata.yaml names; another "
                          "one compares critics)")
    rep.add_argument("--k", type=int, default=None, metavar="K",
                     help="score only the first K candidates of each step (default: all)")
    rep.add_argument("--beta", type=float, default=None, metavar="B",
                     help="selection temperature (default: the recorded beta of each step)")
    rep.add_argument("--seed", type=int, default=0,
                     help="the selector's seed for beta > 0 (default 0, as configured)")
    rep.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="write replay.json and report.html here")
    rep.add_argument("--thumbnails", type=int, default=24, metavar="N",
                     help="frames drawn for changed steps in the report (default 24)")
    pub = rep.add_argument_group("publishing (--publish)")
    pub.add_argument("--publish", action="store_true",
                     help="publish the bag's messages onto live topics")
    pub.add_argument("--rate", type=float, default=1.0, metavar="R",
                     help="playback speed: recorded time x 1/R (default 1)")
    pub.add_argument("--topics", nargs="+", default=None, metavar="TOPIC",
                     help="recorded topics to publish (default: all)")
    pub.add_argument("--namespace", default="", help="namespace of the published topics")
    pub.add_argument("--restamp", action="store_true",
                     help="move header stamps to now (for nodes that reject old stamps)")
    pub.add_argument("--wait", type=float, default=2.0, metavar="S",
                     help="wait up to S seconds for subscribers before publishing (default 2)")
    rep.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    if args.out is None and not args.publish:
        raise ValueError("vgps replay: give --out DIR (re-score and report) and/or --publish")
    if args.out is not None:
        from vgps.replay.rescore import replay

        result = replay(args.bag, critic=args.critic, k=args.k, beta=args.beta, out=args.out,
                        seed=args.seed, max_thumbnails=args.thumbnails,
                        progress=sys.stderr.isatty())
        for problem in result.problems:
            print(f"bag problem: {problem}", file=sys.stderr)
        for note in result.notes:
            print(f"note: {note}")
        critic = result.critic
        if not critic.same_as_recorded:
            print(f"note: replaying with critic {critic.id}; the bag was scored by "
                  f"{', '.join(critic.recorded_ids) or 'no critic'}")
        agreement = "n/a" if result.agreement is None else f"{result.agreement:.1%}"
        diff = "n/a" if result.max_abs_q_diff is None else f"{result.max_abs_q_diff:.3g}"
        print(f"{result.steps} steps replayed ({len(result.skipped)} skipped), agreement "
              f"{agreement} ({len(result.changed_steps)} changed), max |dQ| {diff}")
        print(f"wrote {args.out / 'replay.json'} and {result.report}")
    if args.publish:
        from vgps.bags.publish import publish_bag

        try:
            done = publish_bag(args.bag, rate=args.rate, topics=args.topics,
                               namespace=args.namespace, restamp=args.restamp,
                               wait_s=args.wait, progress=sys.stderr.isatty())
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        print(f"published {sum(done['published'].values())} messages on "
              f"{len(done['published'])} topics in {done['duration_s']} s (rate {args.rate:g})")
        for topic, why in done["skipped_topics"].items():
            print(f"skipped {topic}: {why}", file=sys.stderr)
    return 0
