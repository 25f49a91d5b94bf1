"""The report of ``vgps critic compare``: ``report.md`` (tables, decision, why) + ``report.json``.

``report.json`` holds every number of :func:`vgps.flywheel.compare.compare`'s result;
``report.md`` shows them as tables with their 95 % intervals and counts, the decision with the
failing checks, the method and the command line.

Usage::

    write_report(result, Path("out/critic_r5.compare"))   # report.md, report.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["report_markdown", "write_report"]


def _ci(pair: list[float]) -> str:
    return f"[{pair[0]:.2f}, {pair[1]:.2f}]"


def _sim_row(c: dict[str, Any], check: str) -> str:
    p = c["pairs"]
    k = c["k"] if not isinstance(c["k"], list) else ",".join(map(str, c["k"]))
    return (f"| {c['task']} | {k} | {c['episodes']} | {c['new']['successes']} "
            f"({c['new']['rate']:.2f}) {_ci(c['new']['ci95'])} | {c['old']['successes']} "
            f"({c['old']['rate']:.2f}) {_ci(c['old']['ci95'])} | {p['both']} / {p['new_only']} "
            f"/ {p['old_only']} / {p['neither']} | {c['difference']:+.2f} "
            f"{_ci(c['difference_ci95'])} | {check} |")


def _sim_section(sim: dict[str, Any], checks: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["## Simulation: closed-loop success on identical seeds", "",
             "| task | K | episodes | new: successes (rate) 95 % CI | old: successes (rate) "
             "95 % CI | pairs both / new only / old only / neither | new - old 95 % CI | "
             "check |", "|---|---:|---:|---|---|---|---|---|"]
    for c in sim["conditions"]:
        check = checks.get(f"sim {c['task']} K={c['k']}")
        mark = "-" if check is None else ("pass" if check["passed"] else "**FAIL**")
        lines.append(_sim_row(c, mark))
    lines.append(_sim_row(sim["pooled"], "(reported)"))
    lines += ["", "Rates: Wilson score intervals. Difference: paired percentile bootstrap over "
              "episodes (each episode seed run once per critic). Decision per condition; the "
              "pooled row is for information.", ""]
    return lines


def _offline_section(off: dict[str, Any], checks: dict[str, dict[str, Any]]) -> list[str]:
    def mark(name: str) -> str:
        check = checks.get(name)
        return "-" if check is None else ("pass" if check["passed"] else "**FAIL**")

    eps = off["episodes"]
    lines = ["## Offline: held-out bags", "",
             f"Bags: {len(off['bags'])}; episodes {eps['total']} (success {eps['success']}, "
             f"failure {eps['failure']}, unknown {eps['unknown']}); executed steps "
             f"{eps['steps']} ({eps['steps_without_frame']} without a camera frame).", ""]
    a = off["auc"]
    lines += ["### Ranking of successful vs failed episodes", "",
              f"Episode score: {a['score']}. Episodes: {a['successes']} successful, "
              f"{a['failures']} failed, {a['unknown_outcome']} without a known outcome.", ""]
    if a["available"]:
        lines += ["| AUC new | AUC old | new - old 95 % CI | check |", "|---:|---:|---|---|",
                  f"| {a['new']:.3f} | {a['old']:.3f} | {a['difference']:+.3f} "
                  f"{_ci(a['difference_ci95'])} | {mark('offline AUC')} |", ""]
    else:
        lines += [f"Not available: {a['why']}.", ""]
    iv = off["interventions"]
    lines += ["### Agreement with interventions", ""]
    if iv["available"]:
        lines += ["Fraction of intervention steps where the critic ranks the executed "
                  "intervention action above its best policy candidate.", "",
                  "| steps | new | old | new - old 95 % CI | check |", "|---:|---|---|---|---|",
                  f"| {iv['steps']} | {iv['new_wins']} ({iv['new']:.2f}) | {iv['old_wins']} "
                  f"({iv['old']:.2f}) | {iv['difference']:+.2f} {_ci(iv['difference_ci95'])} "
                  f"| {mark('offline intervention agreement')} |", ""]
    else:
        lines += [f"Not available: {iv['why']}.", ""]
    ch = off["choices"]
    lines += ["### Choices that change", ""]
    if ch["available"]:
        lines += [f"argmax(new) != argmax(old) at {ch['changed']} of {ch['decided_steps']} "
                  f"decided steps ({ch['fraction']:.2f}); for information, not a check.", ""]
    else:
        lines += [f"Not available: {ch['why']}.", ""]
    losses = [f"- {b['path']}: {loss}" for b in off["bags"] for loss in b["losses"]]
    if losses:
        lines += ["What the bags lost:", "", *losses, ""]
    return lines


def report_markdown(result: dict[str, Any]) -> str:
    """``report.md``'s text from :func:`vgps.flywheel.compare.compare`'s result."""
    decision = result["decision"]
    checks = {c["name"]: c for c in decision["checks"]}
    s = result["settings"]
    verdict = "PROMOTE" if decision["promote"] else "REFUSED"
    lines = ["# Critic comparison", ""]
    if result.get("command"):
        lines += ["```", result["command"], "```", ""]
    lines += ["| | critic id | path |", "|---|---|---|",
              f"| new | `{result['new']['id']}` | {result['new']['path']} |",
              f"| old (deployed) | `{result['old']['id']}` | {result['old']['path']} |", "",
              f"## Decision: {verdict}", "", decision["reason"], ""]
    promotion = result.get("promotion")
    if promotion:
        lines += [f"Promoted: {promotion['deployed']} now holds `{promotion['new_id']}`; the "
                  f"previous critic `{promotion['old_id']}` moved to {promotion['previous']}.",
                  ""]
    elif decision["promote"]:
        lines += ["Would promote; files unchanged (pass --promote to move them).", ""]
    lines += [f"Rule: every check needs its tested value >= -margin (margin {s['margin']:g}). "
              "Simulation: the lower bound of the 95 % interval of new - old in every (task, K) "
              "condition. Offline: the point difference when the simulation also ran, else "
              "the lower bound.", ""]
    lines += [f"- {n}" for n in decision["notes"]]
    if decision["notes"]:
        lines.append("")
    if result.get("sim"):
        lines += _sim_section(result["sim"], checks)
        lines += [f"Settings: seed {s['seed']}, episodes {s['episodes']} per task and K, beta 0 "
                  f"(greedy), policy {s['policy']}, image {s['image_size']} px.", ""]
    if result.get("offline"):
        lines += _offline_section(result["offline"], checks)
    return "\n".join(lines) + "\n"


def write_report(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Writes ``out/report.md`` and ``out/report.json``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "report.md", out / "report.json"
    md.write_text(report_markdown(result), encoding="utf-8")
    js.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return md, js
