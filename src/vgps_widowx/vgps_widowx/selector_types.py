"""The selector's settings, its decision record and the checks its messages must pass.

Pure numpy. :mod:`vgps_widowx.selector` holds the rules and re-exports the settings, the
decision and the constants, so callers import them from there.

Usage::

    config = SelectorConfig(k=10, beta=0.0, execute="first")
    chunks = check_candidates(candidates, config.action_dim)   # (K, H, A) float32 or Rejected
    q = check_q(q, chunks.shape[0])                            # (K,) float64 or Rejected
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

EXECUTE_MODES = ("first", "chunk", "ensemble")
FALLBACKS = ("hold", "policy_first")
REASONS = ("argmax", "softmax", "fallback", "hold", "rejected", "estop")


class Rejected(Exception):
    """A message failed a check; the text is the decision's detail (``"code: ..."``)."""


@dataclasses.dataclass(frozen=True)
class SelectorConfig:
    """Settings of :class:`~vgps_widowx.selector.Selector` (live-settable through
    ``dataclasses.replace``)."""

    k: int = 10  # expected candidates per step (paper: 50 on the real robot, 10 or 50 in sim)
    beta: float = 0.0  # 0 = greedy argmax (real-robot setting), > 0 = sample softmax(Q / beta)
    execute: str = "first"  # "first" action, whole "chunk", or Octo temporal "ensemble"
    max_age_s: float = 0.5  # reject stamps older than this (blocking 5 Hz control budget)
    max_future_s: float = 0.05  # reject stamps further than this ahead of now (clock skew)
    watchdog_timeout_s: float = 1.0  # no selection for this long -> a hold decision
    fallback: str = "hold"  # when scores are missing: "hold" still or "policy_first"
    ensemble_decay: float = 0.0  # Octo's exp weight k; 0 = uniform mean over predictions
    action_dim: int = 7  # A of the candidates (Bridge actions)
    seed: int = 0  # keys for beta > 0 when the caller passes none: fold_in(key(seed), step)
    max_step_jump: int = 1000  # a step further ahead of the last executed one is rejected

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("k", "action_dim", "max_step_jump"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}.{field}={value!r}: must be an integer >= 1")
            object.__setattr__(self, field, int(value))
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"{name}.seed={self.seed!r}: must be an integer")
        for field, positive in (
            ("beta", False),
            ("max_age_s", True),
            ("max_future_s", False),
            ("watchdog_timeout_s", True),
            ("ensemble_decay", False),
        ):
            value = getattr(self, field)
            ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value < 0 or (positive and value == 0):
                need = "> 0" if positive else ">= 0"
                raise ValueError(f"{name}.{field}={value!r}: must be a finite number {need}")
            object.__setattr__(self, field, float(value))
        if self.execute not in EXECUTE_MODES:
            raise ValueError(f"{name}.execute={self.execute!r}: choose from {EXECUTE_MODES}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"{name}.fallback={self.fallback!r}: choose from {FALLBACKS}")


@dataclasses.dataclass(frozen=True)
class Decision:
    """One selector outcome.

    Attributes:
        index: chosen candidate, -1 when none.
        actions: float32 (N, A) actions to execute in order; (0, A) when nothing moves.
        reason: one of ``REASONS``.
        detail: human-readable explanation; starts with a code for rejections
            (``"stale: ..."``, ``"duplicate_step: ..."``, ...).
        q: Q-value of the chosen candidate, NaN when none was scored.
        margin: best minus second-best Q (0 when K = 1), NaN when none was scored.
        k: the configured K at decision time.
        beta: the configured beta at decision time.
        step: the message's step counter, -1 when there was no (valid) one.
    """

    index: int
    actions: np.ndarray
    reason: str
    detail: str
    q: float
    margin: float
    k: int
    beta: float
    step: int

    @property
    def executes(self) -> bool:
        """Whether the decision carries actions to execute."""
        return self.actions.shape[0] > 0


def check_candidates(candidates: object, action_dim: int) -> np.ndarray:
    """Validated candidate chunks.

    Args:
        candidates: (K, H, A) or (K, A) candidate chunks with ``A = action_dim``.
        action_dim: A.

    Returns:
        (K, H, A) float32 copy.

    Raises:
        Rejected: not a finite real array of that shape, or overflowing float32.
    """
    arr = _real_array(candidates, "bad_candidates")
    if arr.ndim == 2:
        arr = arr[:, None, :]
    a = action_dim
    if arr.ndim != 3 or min(arr.shape[:2], default=0) < 1 or arr.shape[2] != a:
        raise Rejected(f"bad_candidates: need shape (K, H, {a}) or (K, {a}), got {arr.shape}")
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        raise Rejected(
            f"bad_candidates: NaN/inf in {len(bad)} entries, first at {bad[0].tolist()}"
        )
    if np.any(np.abs(arr) > np.finfo(np.float32).max):
        raise Rejected("bad_candidates: values overflow float32")
    return arr.astype(np.float32)


def _real_array(values: object, kind: str) -> np.ndarray:
    """``values`` as a float64 array, else :class:`Rejected` with ``kind`` (not real numbers)."""
    try:
        arr = np.asarray(values)
        if arr.dtype.kind not in "fiu":
            raise Rejected(f"{kind}: dtype {arr.dtype} is not real numbers")
        return arr.astype(np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise Rejected(f"{kind}: not a numeric array ({exc})") from None


def check_q(q: object, k: int) -> np.ndarray:
    """Validated Q-values: (K,) float64 copy of finite ``q``, else raises :class:`Rejected`."""
    arr = _real_array(q, "bad_q")
    if arr.shape != (k,):
        raise Rejected(f"bad_q: need shape ({k},) to match the candidates, got {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise Rejected(f"bad_q: NaN/inf at indices {bad.tolist()}")
    return arr
