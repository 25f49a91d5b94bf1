"""``vgps-train``: train a critic, or export a run as a deployable critic checkpoint.

    vgps-train --config sim --data-dir data/rlds --run-dir runs/sim
    vgps-train --config paper --data-dir /data/oxe --run-dir runs/paper --set steps=500000
    vgps-train --config finetune --data-dir data/rlds --run-dir runs/ft \
        --init-from models/sim_critic                         # vgps_sim + vgps_deploy
    vgps-train --config finetune --data-dir data/rlds --run-dir runs/ft2 \
        --init-from models/sim_critic_prev --init-member 1 --dataset vgps_sim/1.0.0:1 \
        --dataset /data/lab_runs/1.0.0:2                         # choose the mixture
    vgps-train export runs/sim --out models/sim_critic
    vgps-train sim-dataset data/episodes --data-dir data/rlds     # episodes -> RLDS vgps_sim
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vgps-train", description="Train a V-GPS critic.")
    parser.add_argument("--config", required=True,
                        help="preset: paper | sim | finetune | debug")
    parser.add_argument("--data-dir", required=True,
                        help="directory holding the RLDS datasets (<name>/<version>/)")
    parser.add_argument("--run-dir", required=True, help="checkpoints, logs; resumes if present")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a field, e.g. steps=100, "
                        "calql.cql_alpha=1.0, data.shuffle_buffer=1000 (repeatable)")
    parser.add_argument("--init-from", metavar="CRITIC", default=None,
                        help="continue from a deployed critic: a checkpoint directory, an "
                        "ensemble directory (with --init-member) or ENSEMBLE/members/I")
    parser.add_argument("--init-member", metavar="I", type=int, default=None,
                        help="the ensemble member of --init-from to continue")
    parser.add_argument("--dataset", dest="datasets", action="append", default=[],
                        metavar="PATH[:WEIGHT]", help="replace the preset's datasets: a TFDS "
                        "version directory (relative: under --data-dir) and its mixture weight "
                        "(default 1; repeatable)")
    parser.add_argument("--wandb", metavar="PROJECT", default=None, help="also log to W&B")
    parser.add_argument("--no-tensorboard", action="store_true")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="save and stop at this step (the run can be resumed later)")
    return parser


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vgps-train export",
                                     description="Export a run's critic for deployment.")
    parser.add_argument("run_dir")
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", default=None)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--collections", default=None, metavar="FILE",
                        help="JSON list of the simulated collections behind the data "
                             "({name, episodes, seed, ...} each), kept in the card so that "
                             "`vgps critic compare` refuses their seeds")
    return parser


def _sim_dataset_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vgps-train sim-dataset",
        description="Write `vgps collect` episodes as the RLDS dataset vgps_sim.")
    parser.add_argument("episodes_dir")
    parser.add_argument("--data-dir", required=True, help="writes <data-dir>/vgps_sim/<version>")
    parser.add_argument("--version", default="1.0.0")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if argv and argv[0] == "export":
            args = _export_parser().parse_args(argv[1:])
            from vgps_training.export import export

            collections = None
            if args.collections is not None:
                try:
                    collections = json.loads(Path(args.collections).read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError) as exc:
                    raise ValueError(f"--collections {args.collections}: {exc}") from exc
            card = export(args.run_dir, args.out, name=args.name, overwrite=args.force,
                          collections=collections)
            print(f"wrote {args.out}: {card.critic_id}, {card.param_count:,} parameters, "
                  f"language {card.language_encoder}")
            return 0
        if argv and argv[0] == "sim-dataset":
            args = _sim_dataset_parser().parse_args(argv[1:])
            from vgps_training.sim_dataset import write_sim_dataset

            path = write_sim_dataset(args.episodes_dir, args.data_dir, args.version)
            print(f"wrote {path}")
            return 0
        args = _train_parser().parse_args(argv)
        from vgps_training import distributed
        from vgps_training.config import apply_overrides, preset, with_datasets
        from vgps_training.trainer import train

        distributed.initialize()
        config = with_datasets(preset(args.config, args.data_dir), args.datasets, args.data_dir)
        if args.init_from is not None:
            args.overrides = [f"init_from={json.dumps(args.init_from)}", *args.overrides]
        if args.init_member is not None:
            args.overrides = [f"init_member={args.init_member}", *args.overrides]
        config = apply_overrides(config, args.overrides)
        metrics = train(config, args.run_dir, tensorboard=not args.no_tensorboard,
                        wandb_project=args.wandb, stop_after=args.stop_after)
        print(" ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
        return 0
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"vgps-train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
