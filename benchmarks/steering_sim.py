"""Steering quality: success of the simulation policy alone vs steered by a critic.

Reads the ``results.json`` of ``vgps eval`` runs (``base``, ``k10``, ``k50``... under
``--eval-dir``), which used the same seeds, and writes benchmarks/results/steering_sim.md
and .json: per task the success rate with its 95% Wilson interval, and the change vs base.

    python benchmarks/steering_sim.py --eval-dir out/sim_critic/eval
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="provenance of the critic, printed under the "
                        "command (data, training run)")
    args = parser.parse_args(argv)
    runs = {p.parent.name: json.loads(p.read_text())
            for p in sorted(args.eval_dir.glob("*/results.json"))}
    if "base" not in runs:
        print(f"no base run under {args.eval_dir}", file=sys.stderr)
        return 2
    names = ["base", *sorted((n for n in runs if n != "base"), key=lambda n: (len(n), n))]
    seeds = {n: _setting(args.eval_dir / n / "results.md", "seed") for n in names}
    if len(set(seeds.values())) != 1 or "?" in seeds.values():
        print(f"the runs must share one master seed, found {seeds}", file=sys.stderr)
        return 2
    tasks = sorted(runs["base"])
    header = "| task | " + " | ".join(names) + " |"
    lines = ["# Steering quality in simulation", "",
             f"Command: `python benchmarks/steering_sim.py --eval-dir {args.eval_dir}` (the last "
             "step of `scripts/train_sim_critic.sh`; each run's `vgps eval` command is in its "
             "results.md).",
             "", *([args.note, ""] if args.note else []),
             "Success rate (95% Wilson interval) over the same seeds; `kN` = steered with the "
             "critic listed below, K = N candidates, beta = 0.", "", header,
             "|---|" + "---:|" * len(names)]
    totals = {n: [0, 0] for n in names}
    for task in tasks:
        cells = []
        for name in names:
            r = runs[name].get(task)
            if r is None:
                cells.append("–")
                continue
            lo, hi = r["ci95"]
            totals[name][0] += r["successes"]
            totals[name][1] += r["episodes"]
            cells.append(f"{r['success_rate']:.2f} ({lo:.2f}–{hi:.2f})")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    mean = {n: (s / e if e else float("nan")) for n, (s, e) in totals.items()}
    lines.append("| **all** | " + " | ".join(f"**{mean[n]:.2f}**" for n in names) + " |")
    base = mean["base"]
    lines.append("")
    critics = {}
    for name in names[1:]:
        rel = (mean[name] - base) / base * 100 if base else float("nan")
        better = [t for t in tasks if t in runs[name]
                  and runs[name][t]["success_rate"] > runs["base"][t]["success_rate"]]
        critic = critics[name] = _setting(args.eval_dir / name / "results.md", "critic")
        lines.append(f"- {name}: {mean[name]:.3f} vs base {base:.3f} ({rel:+.1f}% relative); "
                     f"better than base on {len(better)} of {len(tasks)} tasks; critic {critic}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "steering_sim.md").write_text("\n".join(lines) + "\n")
    (args.out / "steering_sim.json").write_text(json.dumps(
        {"runs": runs, "mean_success": mean, "critics": critics,
         "seed": int(seeds["base"])}, indent=2) + "\n")
    print("\n".join(lines))
    return 0


def _setting(results_md: Path, key: str) -> str:
    """The ``- key: value`` line of a ``vgps eval`` results.md (``?`` when absent)."""
    if results_md.is_file():
        for line in results_md.read_text().splitlines():
            if line.startswith(f"- {key}: "):
                return line.split(": ", 1)[1]
    return "?"


if __name__ == "__main__":
    sys.exit(main())
