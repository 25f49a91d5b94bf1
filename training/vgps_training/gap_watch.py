"""A warning when a critic's conservative gap closes during training.

Cal-QL's conservative term keeps Q at actions the data never took below Q at the data's own
actions; ``cql_gap`` (logged by the Cal-QL agent) is the difference. A critic that steers by argmax
over candidates needs it positive: once it is negative, the argmax finds actions no data backs.
In simulation, a fine-tune of an already fine-tuned critic went from a gap of 2.9 to -0.15 and
its steering fell from 0.82 to 0.18 (``benchmarks/results/flywheel_sim_round2.md``), while its
validation metrics looked better than its parent's. The trainer feeds each logged ``cql_gap`` to
a :class:`GapWatch`, which warns once when the mean over the last ``window`` logs falls below
``threshold``.

Usage::

    watch = GapWatch()
    for step, metrics in logged:
        message = watch.update(step, metrics)   # the warning's text, the first time only
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping

log = logging.getLogger(__name__)


class GapWatch:
    """Watches the logged ``cql_gap``; warns once when its recent mean is below ``threshold``."""

    def __init__(self, window: int = 5, threshold: float = 0.0) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        self.window = window
        self.threshold = threshold
        self._recent: deque[float] = deque(maxlen=window)
        self.warned_at: int | None = None

    def update(self, step: int, metrics: Mapping[str, float]) -> str | None:
        """Record one log's metrics (no ``cql_gap``, as for IQL: ignored). Returns the warning
        the first time the mean of the last ``window`` gaps is below the threshold, else None."""
        gap = metrics.get("cql_gap")
        if gap is None or not math.isfinite(float(gap)):
            return None
        self._recent.append(float(gap))
        if self.warned_at is not None or len(self._recent) < self.window:
            return None
        mean = sum(self._recent) / len(self._recent)
        if mean >= self.threshold:
            return None
        self.warned_at = step
        message = (
            f"step {step}: the conservative gap (Q at the data's actions minus Q at others) "
            f"averaged {mean:.3f} over the last {self.window} logs, below {self.threshold}: "
            "the critic now values actions the data never took above the data's own, and an "
            "argmax over candidates will steer towards them. Compare it in closed loop before "
            "deploying it; a fine-tune of a fine-tuned critic is the usual cause (start from the "
            "original critic, or raise calql.anchor_weight or calql.cql_alpha).")
        log.warning(message)
        return message


__all__ = ["GapWatch"]
