"""The numbers of an evaluation: per-task success with a Wilson interval, and the markdown table.

Usage::

    task_results(7, 10)    # {"episodes": 10, "successes": 7, "success_rate": 0.7, "ci95": [...]}
    wilson_interval(7, 10)                                        # (0.3968, 0.8922)
    text = results_markdown({"carrot_on_plate": task_results(7, 10)}, {"K": 10})
"""

from __future__ import annotations

import math
from typing import Any


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % for the default z).

    Args:
        successes: number of successes, 0..n.
        n: number of trials, > 0.
        z: normal quantile.

    Returns:
        ``(low, high)`` within [0, 1].
    """
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes}/{n}")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def task_results(successes: int, episodes: int) -> dict[str, Any]:
    """``{"episodes", "successes", "success_rate", "ci95": [lo, hi]}`` of one task."""
    lo, hi = wilson_interval(successes, episodes)
    return {"episodes": episodes, "successes": successes,
            "success_rate": round(successes / episodes, 4), "ci95": [round(lo, 4), round(hi, 4)]}


def results_markdown(results: dict[str, dict[str, Any]], settings: dict[str, Any],
                     command: str | None = None) -> str:
    """A markdown table of per-task results, followed by the settings."""
    lines = ["# V-GPS simulation evaluation", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += ["| task | episodes | successes | rate | 95% CI |", "|---|---:|---:|---:|---|"]
    total = [0, 0]
    for task, r in results.items():
        lo, hi = r["ci95"]
        lines.append(f"| {task} | {r['episodes']} | {r['successes']} | "
                     f"{r['success_rate']:.2f} | [{lo:.2f}, {hi:.2f}] |")
        total[0] += r["episodes"]
        total[1] += r["successes"]
    if len(results) > 1:
        lo, hi = wilson_interval(total[1], total[0])
        lines.append(f"| **all** | {total[0]} | {total[1]} | {total[1] / total[0]:.2f} | "
                     f"[{lo:.2f}, {hi:.2f}] |")
    lines += ["", "Settings:", ""]
    lines += [f"- {key}: {value if value is not None else '-'}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"
