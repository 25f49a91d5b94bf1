"""``vgps dataset build``: recorded bags -> the RLDS/TFDS deployment dataset vgps-train reads;
``vgps dataset collections``: the simulated runs behind a dataset, with their seeds.

    vgps dataset build out/bags/run1 out/bags/run2 --out data/rlds
    vgps dataset build out/bags/run3 --out data/rlds --candidates --image-size 128
    vgps dataset build out/bags/* --out data/rlds --labels reviewed.labels.json --name my_deploy
    vgps dataset collections out/flywheel/base/* out/flywheel/round*/up/* \
        --parent models/sim_critic_prev --parent-member 1 --out collections.json

Writes ``DIR/NAME/<version>/`` (default ``vgps_deploy/1.0.0``) and keeps the episode store it is
made from in ``DIR/NAME/episodes`` and ``DIR/NAME/index.json``; see :mod:`vgps.flywheel.dataset`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    top = subparsers.add_parser("dataset", help="build the deployment dataset from recorded bags",
                                description="Datasets made from `vgps up --record` bags.")
    sub = top.add_subparsers(dest="dataset_command", required=True)
    build = sub.add_parser(
        "build", help="bags -> RLDS/TFDS dataset (incremental: episodes keyed by id)",
        description="Add the episodes of recorded bags to an RLDS/TFDS dataset in "
                    "DIR/NAME/VERSION (the layout of bridge_dataset, plus interventions, stamps, "
                    "selection reasons, outcomes and, with --candidates, all K candidates with "
                    "their Q). Episodes already in the dataset are not added again; episodes "
                    "without a known outcome (label them with `vgps label`), skipped ones and "
                    "those a cut bag lost are left out and listed.")
    build.add_argument("bags", nargs="+", type=Path, metavar="BAG",
                       help="bag directories (vgps up --record)")
    build.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="dataset directory (the TFDS data_dir)")
    build.add_argument("--labels", type=Path, default=None, metavar="FILE",
                       help="a labels file (vgps-labels/1) overriding each bag's own "
                            "BAG.labels.json")
    build.add_argument("--name", default="vgps_deploy", help="dataset name (default vgps_deploy)")
    build.add_argument("--version", default="1.0.0", help="dataset version (default 1.0.0)")
    build.add_argument("--candidates", action="store_true",
                       help="also store all K candidates (first action) with their Q per step")
    build.add_argument("--image-size", type=int, default=None, metavar="N",
                       help="resize camera frames to NxN (default: as recorded)")
    build.set_defaults(func=_build)
    col = sub.add_parser(
        "collections", help="the simulated collections behind a critic's data, with their seeds",
        description="Read `vgps collect` and simulated `vgps up` output directories and write "
                    "the JSON list `vgps-train export --collections` puts in the card (master "
                    "seed, episodes, K, critic, tasks, bag and run id), so that `vgps critic "
                    "compare` refuses those seeds. --parent adds the collections the parent "
                    "critic's card lists.")
    col.add_argument("runs", nargs="*", type=Path, metavar="RUN",
                     help="`vgps collect --out` or `vgps up --out` directories")
    col.add_argument("--out", type=Path, required=True, metavar="FILE")
    col.add_argument("--parent", type=Path, default=None, metavar="CRITIC",
                     help="the critic the fine-tune started from (its card's collections)")
    col.add_argument("--parent-member", type=int, default=None, metavar="I",
                     help="with an ensemble --parent: the member it started from")
    col.set_defaults(func=_collections)


def _build(args: argparse.Namespace) -> int:
    from vgps.flywheel.dataset import build_dataset

    report = build_dataset(args.bags, args.out, name=args.name, version=args.version,
                           labels_file=args.labels, candidates=args.candidates,
                           image_size=args.image_size, progress=print)
    for line in report.skipped:
        print(f"left out {line}")
    for line in report.losses:
        print(f"loss: {line}")
    print(report.summary())
    if report.dataset is None:
        return 1
    print(f"dataset: {report.dataset}" + ("" if report.rewritten else " (unchanged)"))
    return 0


def _collections(args: argparse.Namespace) -> int:
    from vgps.flywheel.sim_collections import parent_records, run_records, write_collections

    if not args.runs and args.parent is None:
        raise ValueError("vgps dataset collections: give RUN directories, --parent, or both")
    records = run_records(args.runs)  # a ValueError is printed by vgps.cli.main, exit code 2
    if args.parent is not None:
        records += parent_records(args.parent, args.parent_member)
    path = write_collections(args.out, records)
    seeds = sorted({r["seed"] for r in records if isinstance(r.get("seed"), int)})
    print(f"wrote {path}: {len(records)} collections, "
          f"{sum(r.get('episodes', 0) for r in records)} episodes, {len(seeds)} seeds")
    return 0
