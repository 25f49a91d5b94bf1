"""``vgps critic ...``: inspect, create and import critic checkpoints.

    vgps critic info models/sim_critic
    vgps critic init --config sim --seed 0 --out out/critic
    vgps critic ensemble run_a/critic run_b/critic --name sim-critic --out out/ensemble
    vgps critic import-vgps checkpoint_500000 --action-bounds bridge --out out/released
    vgps critic compare out/critic_r5 models/sim_critic --sim-eval all --episodes 50 --k 10 \
        --k 50 --bags out/bags/heldout_* --promote

Each command parses its arguments and calls one ``vgps_critic`` function
(:func:`~vgps_critic.loading.describe`, :func:`~vgps_critic.random_critic.save_random_critic`,
:func:`~vgps_critic.ensemble.save_ensemble`, :func:`~vgps_critic.import_vgps.import_vgps`);
``compare`` calls :func:`vgps.flywheel.compare.compare` and exits 0 when the new critic is (or
would be) promoted, 1 when refused, 2 on errors.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    critic = subparsers.add_parser("critic", help="inspect, create and import critic checkpoints")
    sub = critic.add_subparsers(dest="critic_command", required=True)

    imp = sub.add_parser(
        "import-vgps", help="convert a checkpoint written by the paper's V-GPS code",
        description="Convert a V-GPS release checkpoint (flax msgpack of the whole agent) into a "
                    "vgps critic checkpoint (card + orbax params) of its target critic.")
    imp.add_argument("src", help="checkpoint file, checkpoint_<step> directory, or its parent")
    imp.add_argument("--out", required=True, help="destination checkpoint directory")
    imp.add_argument("--action-bounds", required=True, metavar="SPEC",
                     help="per-dimension bounds the critic was trained with: 'bridge', "
                          "'fractal', 'identity' (callers pass actions already in [-1, 1]), or "
                          'JSON {"min": [...], "max": [...]} inline or in a file')
    imp.add_argument("--image-size", type=int, default=256,
                     help="image size the critic was trained on (the release: 256)")
    imp.add_argument("--params", choices=("target", "online"), default="target",
                     help="which critic parameters to export (deployment uses target)")
    imp.add_argument("--name", default=None, help="critic name recorded in the card")
    imp.add_argument("--force", action="store_true", help="replace --out if it exists")
    imp.set_defaults(func=_import_vgps)

    info = sub.add_parser("info", help="print a checkpoint's card after validating it")
    info.add_argument("path")
    info.add_argument("--no-verify", action="store_true", help="skip the parameter hash check")
    info.set_defaults(func=_info)

    ens = sub.add_parser(
        "ensemble", help="combine trained critics into one deep ensemble (mean or min of their Q)",
        description="Copy two or more critic checkpoints into an ensemble directory that "
                    "vgps_critic.load opens as one critic whose Q is the mean (--reduction min: "
                    "the minimum) over members of each member's Q (its heads reduced by "
                    "--head-reduction).")
    ens.add_argument("members", nargs="+", help="critic checkpoint directories (two or more)")
    ens.add_argument("--out", required=True, help="destination ensemble directory")
    ens.add_argument("--name", required=True, help="ensemble name recorded in its card")
    ens.add_argument("--head-reduction", choices=("min", "mean"), default="min",
                     help="how each member's heads are reduced before the mean over members: "
                          "min (the V-GPS rule for one critic) or mean (mean of every head)")
    ens.add_argument("--reduction", choices=("mean", "min"), default="mean",
                     help="how the members are combined: mean (a deep ensemble) or min (a "
                          "candidate scores what the member that likes it least gives it: a "
                          "fine-tune's members beside its parent's, a guarded promotion)")
    ens.add_argument("--notes", default=None, metavar="JSON",
                     help="free-form record for the card (lineage, evaluation): a JSON file")
    ens.add_argument("--force", action="store_true", help="replace --out if it exists")
    ens.set_defaults(func=_ensemble)

    interp = sub.add_parser(
        "interpolate", help="blend a fine-tuned critic with its parent in weight space",
        description="Write (1 - w) * OLD + w * NEW, parameter by parameter (WiSE-FT): NEW must "
                    "be fine-tuned from OLD (same architecture, action space and language "
                    "encoder); ensembles are blended member by member.")
    interp.add_argument("new", help="the fine-tuned critic (or ensemble)")
    interp.add_argument("old", help="the critic it was fine-tuned from (or ensemble)")
    interp.add_argument("--weight", type=float, required=True,
                        help="w in [0, 1]: 1 is NEW, 0 is OLD")
    interp.add_argument("--out", required=True, help="destination directory")
    interp.add_argument("--name", default=None, help="name for the card (default: NEW's)")
    interp.add_argument("--force", action="store_true", help="replace --out if it exists")
    interp.set_defaults(func=_interpolate)

    init = sub.add_parser("init", help="write a randomly initialised critic (tests, benchmarks)")
    init.add_argument("--config", default="sim", help="architecture preset: paper | sim | tiny")
    init.add_argument("--language-encoder", default=None,
                      help="encoder name (default: muse for 512-d presets, else minilm-l6-v2)")
    init.add_argument("--action-bounds", default="bridge")
    init.add_argument("--seed", type=int, default=0)
    init.add_argument("--out", required=True)
    init.add_argument("--force", action="store_true")
    init.set_defaults(func=_init)

    add_compare_parser(sub)


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    """``vgps critic compare NEW OLD``."""
    from vgps.flywheel.compare import DEFAULT_SEED

    cmp = sub.add_parser(
        "compare", help="compare a new critic with the deployed one; promote only with evidence",
        description="Compare NEW with the deployed OLD critic in simulation (both on identical "
                    "episode seeds, per task and K: success with Wilson 95% intervals, paired "
                    "difference with a bootstrap 95% interval) and/or offline on held-out bags "
                    "(ranking AUC, agreement with interventions, changed choices). Promote only "
                    "when NEW is not worse with 95% confidence in every condition. Exit code: "
                    "0 promoted (or would be), 1 refused, 2 error.")
    cmp.add_argument("new", help="the candidate critic checkpoint directory")
    cmp.add_argument("old",
                     help="the deployed critic checkpoint directory (replaced on promotion)")
    cmp.add_argument("--bags", nargs="+", default=[], metavar="BAG",
                     help="held-out bags recorded by `vgps up --record` (labels beside them)")
    cmp.add_argument("--sim-eval", default=None, metavar="TASKS",
                     help="simulate these tasks: 'all' or a comma-separated list")
    cmp.add_argument("--episodes", type=int, default=50, help="episodes per task and K")
    cmp.add_argument("--k", type=int, action="append", default=None,
                     help="candidates per step; repeat for several conditions (default 10)")
    cmp.add_argument("--seed", type=int, default=DEFAULT_SEED,
                     help="master seed of the simulated episodes: one no training round used "
                          f"(default {DEFAULT_SEED})")
    cmp.add_argument("--image-size", type=int, default=256, help="rendered camera size (px)")
    cmp.add_argument("--policy", default="sim", help="in-process policy or ws://host:port")
    cmp.add_argument("--margin", type=float, default=0.05,
                     help="non-inferiority margin: refuse unless new - old >= -MARGIN with 95%% "
                          "confidence (default 0.05: 5 points of success rate; 0 asks the new "
                          "critic to lose no paired episode it cannot make up for)")
    cmp.add_argument("--promote", action="store_true",
                     help="when promoted: move OLD to OLD.prev-<id> and copy NEW to OLD's path")
    cmp.add_argument("--report", default=None, metavar="DIR",
                     help="report directory (default: <NEW>.compare beside NEW)")
    cmp.add_argument("--quiet", action="store_true", help="no progress bars")
    cmp.set_defaults(func=_compare)


def _import_vgps(args: argparse.Namespace) -> int:
    from vgps_critic.import_vgps import import_vgps, parse_action_bounds

    card = import_vgps(args.src, args.out, parse_action_bounds(args.action_bounds),
                       image_size=args.image_size, which=args.params, name=args.name,
                       overwrite=args.force)
    cfg = card.config
    print(f"wrote {args.out}: {card.critic_id}, {card.param_count:,} parameters, stages "
          f"{list(cfg.stage_sizes)} x {cfg.num_filters} filters, {cfg.ensemble_size} members, "
          f"language {card.language_encoder} ({cfg.language_dim}-d), image "
          f"{cfg.image_size[0]}x{cfg.image_size[1]}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from vgps_critic.loading import describe

    json.dump(describe(args.path, verify=not args.no_verify), sys.stdout, indent=2)
    print()
    return 0


def _ensemble(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vgps_critic.ensemble import save_ensemble

    if len(args.members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(args.members)}")
    notes = json.loads(Path(args.notes).read_text()) if args.notes else None
    card = save_ensemble(args.out, args.members, args.name, head_reduction=args.head_reduction,
                         notes=notes, overwrite=args.force, reduction=args.reduction)
    print(f"wrote {args.out}: {card.critic_id}, {len(card.member_cards)} members "
          f"({', '.join(c.critic_id for c in card.member_cards)})")
    return 0


def _interpolate(args: argparse.Namespace) -> int:
    from vgps_critic.interpolate import interpolate

    out = interpolate(args.new, args.old, args.weight, args.out, name=args.name,
                      overwrite=args.force)
    print(f"wrote {args.out}: {out['critic_id']} = {1 - args.weight:g} x {args.old} + "
          f"{args.weight:g} x {args.new}")
    return 0


def _init(args: argparse.Namespace) -> int:
    from vgps_critic.random_critic import save_random_critic

    card = save_random_critic(args.out, preset=args.config,
                              language_encoder=args.language_encoder,
                              action_bounds=args.action_bounds, seed=args.seed,
                              overwrite=args.force)
    print(f"wrote {args.out}: {card.critic_id}, {card.param_count:,} parameters")
    return 0


def _compare(args: argparse.Namespace) -> int:
    import shlex

    from vgps.flywheel.compare import CompareConfig, compare

    tasks: tuple[str, ...] = ()
    if args.sim_eval is not None:
        from vgps_widowx.sim import TASKS

        names = [t.strip() for t in args.sim_eval.split(",") if t.strip()]
        tasks = tuple(TASKS) if names == ["all"] else tuple(names)
        if not tasks:
            raise ValueError(f"--sim-eval {args.sim_eval!r}: name tasks or 'all'")
    config = CompareConfig(new=args.new, old=args.old, bags=tuple(args.bags), sim_tasks=tasks,
                           episodes=args.episodes, ks=tuple(args.k or (10,)), seed=args.seed,
                           image_size=args.image_size, policy=args.policy, margin=args.margin,
                           promote=args.promote, report=args.report)
    command = ["vgps", "critic", "compare", args.new, args.old]
    if args.bags:
        command += ["--bags", *args.bags]
    if tasks:
        command += ["--sim-eval", ",".join(tasks), "--episodes", str(args.episodes),
                    *[f"--k={k}" for k in config.ks], "--seed", str(args.seed),
                    "--image-size", str(args.image_size), "--policy", args.policy]
    command += ["--margin", f"{args.margin:g}", *(["--promote"] if args.promote else []),
                "--report", str(config.report_dir)]
    result = compare(config, command=shlex.join(command), progress=not args.quiet)
    decision = result["decision"]
    print(("PROMOTE: " if decision["promote"] else "REFUSED: ") + decision["reason"])
    if result["promotion"]:
        moved = result["promotion"]
        print(f"promoted: {moved['deployed']} <- {args.new} ({moved['new_id']}); previous "
              f"{moved['old_id']} kept at {moved['previous']}")
    print(f"report: {result['report']}/report.md")
    return 0 if decision["promote"] else 1
