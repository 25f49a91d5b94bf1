"""Does the flywheel's critic steer better than the one it started from? Both side by side.

Runs ``vgps critic compare NEW OLD`` (no promotion) on seeds no flywheel round used: every task,
K = 10 and 50, beta 0, both critics on identical episode seeds, success with Wilson 95 %
intervals and the paired difference with its bootstrap 95 % interval; then the release decision
at the place pose step by step for both (``benchmarks/release_decision.py``: carrot, K = 50,
30 episodes, seed 3000). Writes ``<out>.md`` (the table, the relative gains, the release rows
and the command) and ``<out>.json``.

    MUJOCO_GL=egl python benchmarks/flywheel_sim.py --new out/flywheel/round1/critic \\
        --old models/sim_critic --episodes 200

On a machine with cores to spare, run one part per K at once and merge them (the release
decision runs in the part that does not skip it):

    python benchmarks/flywheel_sim.py --new N --old O --k 10 --out out/part10 &
    python benchmarks/flywheel_sim.py --new N --old O --k 50 --skip-release --out out/part50
    python benchmarks/flywheel_sim.py --merge out/part10.json out/part50.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _release_module() -> Any:
    spec = importlib.util.spec_from_file_location("release_decision",
                                                  ROOT / "benchmarks" / "release_decision.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["release_decision"] = module  # its dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


def _rate(side: dict[str, Any]) -> str:
    lo, hi = side["ci95"]
    return f"{side['rate']:.2f} [{lo:.2f}, {hi:.2f}]"


def _gain(new: float, old: float) -> str:
    return f"{(new - old) / old:+.0%}" if old else "n/a"


def pool(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    """Every task of one K together: rates (Wilson) and the paired difference (bootstrap over
    the pooled episodes, rebuilt from the pair counts)."""
    from vgps.evaluation.results import wilson_interval
    from vgps.flywheel.compare_stats import paired_bootstrap_interval

    n = sum(c["episodes"] for c in conditions)
    out: dict[str, Any] = {"episodes": n}
    for side in ("new", "old"):
        wins = sum(c[side]["successes"] for c in conditions)
        out[side] = {"successes": wins, "rate": wins / n, "ci95": list(wilson_interval(wins, n))}
    pairs = {key: sum(c["pairs"][key] for c in conditions)
             for key in ("both", "new_only", "old_only", "neither")}
    diffs = [1.0] * pairs["new_only"] + [-1.0] * pairs["old_only"] + \
        [0.0] * (pairs["both"] + pairs["neither"])
    out["difference"] = out["new"]["rate"] - out["old"]["rate"]
    out["difference_ci95"] = list(paired_bootstrap_interval(diffs))
    return out


def markdown(result: dict[str, Any], release: list[dict[str, Any]], command: str) -> str:
    sim = result["sim"]
    ks = sorted({c["k"] for c in sim["conditions"]})
    lines = ["# The flywheel's critic against the critic it started from (simulation)", "",
             f"Command: `{command}`", "",
             f"- new: `{result['new']['id']}`; old: `{result['old']['id']}`",
             f"- {sim['conditions'][0]['episodes']} episodes per task and K, the same episode "
             f"seeds for both (master seed {result['settings'].get('seed')}, used by no "
             "flywheel round), beta 0, policy sim, 64 px",
             "- rates with Wilson 95 % intervals; new - old with a paired bootstrap 95 % "
             "interval", ""]
    header = "| task | " + " | ".join(f"old K={k} | new K={k} | new - old K={k}" for k in ks)
    lines += [header + " |", "|---" * (1 + 3 * len(ks)) + "|"]
    by = {(c["task"], c["k"]): c for c in sim["conditions"]}
    for task in dict.fromkeys(c["task"] for c in sim["conditions"]):
        cells = []
        for k in ks:
            c = by[(task, k)]
            lo, hi = c["difference_ci95"]
            cells += [_rate(c["old"]), _rate(c["new"]),
                      f"{c['difference']:+.2f} [{lo:+.2f}, {hi:+.2f}]"]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    cells = []
    for k in ks:
        pooled = pool([c for c in sim["conditions"] if c["k"] == k])
        lo, hi = pooled["difference_ci95"]
        cells += [_rate(pooled["old"]), _rate(pooled["new"]),
                  f"{pooled['difference']:+.2f} [{lo:+.2f}, {hi:+.2f}] "
                  f"({_gain(pooled['new']['rate'], pooled['old']['rate'])})"]
    lines += ["| all | " + " | ".join(cells) + " |", "",
              f"Decision of `vgps critic compare` at margin {result['settings']['margin']}: "
              f"{'PROMOTE' if result['decision']['promote'] else 'REFUSE'} - "
              f"{result['decision']['reason']}", ""]
    if not release:
        return "\n".join(lines)
    lines += ["## The release decision at the place pose (carrot, K = 50, 30 episodes, "
              "seed 3000)", "",
              "| critic | success | mixed release steps | chose hold | open mean Q higher |",
              "|---|---|---:|---|---:|"]
    for row in release:
        n = row["mixed_release_steps"]
        hold = (f"{row['chose_hold']} ({row['chose_hold_fraction']:.0%}) "
                f"[{row['chose_hold_ci95'][0]:.0%}, {row['chose_hold_ci95'][1]:.0%}]"
                if n else "-")
        higher = f"{row['open_q_higher_fraction']:.0%}" if n else "-"
        lines.append(f"| `{row['critic_id']}` | {row['success']['success_rate']:.2f} | {n} | "
                     f"{hold} | {higher} |")
    return "\n".join(lines) + "\n"


def merge(parts: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Runs of other K on the same critics and seeds as one result (decision taken again over
    every condition) and the release rows of the part that measured them."""
    from vgps.flywheel.compare import decide

    first = parts[0]
    for part in parts[1:]:
        for key in ("new", "old"):
            if part[key]["id"] != first[key]["id"]:
                raise ValueError(f"the parts compare other critics: {key} {part[key]['id']} "
                                 f"against {first[key]['id']}")
        for key in ("seed", "episodes", "margin", "sim_tasks"):
            if part["settings"].get(key) != first["settings"].get(key):
                raise ValueError(f"the parts differ in {key}: {part['settings'].get(key)!r} "
                                 f"against {first['settings'].get(key)!r}")
    conditions = [c for part in parts for c in part["sim"]["conditions"]]
    seen = [(c["task"], c["k"]) for c in conditions]
    if len(set(seen)) != len(seen):
        raise ValueError("the parts measure a condition twice")
    releases = [part["release_decision"] for part in parts if part["release_decision"]]
    if len(releases) > 1:
        raise ValueError("more than one part measured the release decision")
    settings = {**first["settings"], "k": sorted({c["k"] for c in conditions})}
    result = {"new": first["new"], "old": first["old"], "settings": settings,
              "sim": {"conditions": conditions, "pooled": pool(conditions)},
              "decision": decide(conditions, None, settings["margin"]).to_json()}
    return result, releases[0] if releases else []


def _write(out: Path, result: dict[str, Any], release: list[dict[str, Any]],
           command: str) -> str:
    text = markdown(result, release, command)
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{out.name}.md").write_text(text)
    payload = {"command": command, "new": result["new"], "old": result["old"],
               "settings": result["settings"], "sim": result["sim"],
               "decision": result["decision"], "release_decision": release}
    (out.parent / f"{out.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new", help="the flywheel's critic")
    parser.add_argument("--old", help="the critic it started from")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--k", type=int, action="append", default=None)
    parser.add_argument("--seed", type=int, default=900000, help="master seed (no round's)")
    parser.add_argument("--out", type=Path, default=RESULTS / "flywheel_sim")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--skip-release", action="store_true",
                        help="leave the release decision to another part (see --merge)")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                        help="combine parts (one per K) written by this script into --out")
    args = parser.parse_args(argv)
    from vgps.flywheel.compare import CompareConfig, compare
    from vgps_widowx.sim import TASKS

    shown = sys.argv[1:] if argv is None else argv
    command = "MUJOCO_GL=egl python benchmarks/flywheel_sim.py " + shlex.join(shown)
    if args.merge:
        parts = [json.loads(path.read_text()) for path in args.merge]
        result, release = merge(parts)
        command = "; ".join([*(part["command"] for part in parts), command])
        print(_write(args.out, result, release, command))
        return 0
    if not (args.new and args.old):
        parser.error("--new and --old are needed (or --merge)")
    with tempfile.TemporaryDirectory() as tmp:
        result = compare(CompareConfig(new=args.new, old=args.old, sim_tasks=tuple(TASKS),
                                       episodes=args.episodes, ks=tuple(args.k or (10, 50)),
                                       seed=args.seed, image_size=64, report=Path(tmp)),
                         command=command, progress=not args.quiet)
    release = []
    if not args.skip_release:
        release_decision = _release_module()
        release = [release_decision.run_critic(c, "carrot_on_plate", 50, 30, 3000,
                                               not args.quiet).summary()
                   for c in (args.old, args.new)]
    print(_write(args.out, result, release, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
