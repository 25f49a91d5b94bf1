"""The V-GPS selection rule: greedy argmax (beta = 0) or a sample from softmax(Q / beta).

Usage:
    choice = select(q, beta=0.0)                           # greedy, the real-robot setting
    choice = select(q, beta=0.1, key=jax.random.key(0))    # stochastic, explicit key
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class Selection:
    index: int  # chosen candidate
    q: float  # its Q-value
    probabilities: np.ndarray  # (K,) probability each candidate had of being chosen
    reason: str  # "argmax" or "softmax"
    margin: float  # Q of the best candidate minus Q of the second best (0 when K = 1)


def softmax_probabilities(q: np.ndarray, beta: float) -> np.ndarray:
    """softmax(Q / beta) computed stably in float64; beta = 0 puts all mass on the argmax."""
    q = validate_q(q).astype(np.float64)
    beta = validate_beta(beta)
    if beta == 0.0:
        probs = np.zeros_like(q)
        probs[int(np.argmax(q))] = 1.0
        return probs
    logits = (q - q.max()) / beta
    weights = np.exp(logits)
    return weights / weights.sum()


def select(q: np.ndarray, beta: float = 0.0, key: jax.Array | None = None) -> Selection:
    """Pick one of K candidates from their Q-values.

    Args:
        q: (K,) finite Q-values, K >= 1.
        beta: temperature; 0 -> greedy argmax (first index on ties), > 0 -> sample.
        key: a ``jax.random`` key, required when beta > 0.

    Returns:
        The ``Selection`` (index, its Q, the distribution it came from, the rule used).
    """
    q = validate_q(q)
    beta = validate_beta(beta)
    probs = softmax_probabilities(q, beta)
    if beta == 0.0:
        index, reason = int(np.argmax(q)), "argmax"
    else:
        if key is None:
            raise ValueError("beta > 0 samples from softmax(Q / beta) and needs an explicit key")
        # Gumbel-max on float64 logits: an exact sample from softmax(Q / beta).
        gumbel = np.asarray(jax.random.gumbel(key, q.shape), np.float64)
        index = int(np.argmax((q.astype(np.float64) - q.max()) / beta + gumbel))
        reason = "softmax"
    ordered = np.sort(q)[::-1]
    margin = float(ordered[0] - ordered[1]) if q.size > 1 else 0.0
    return Selection(index=index, q=float(q[index]), probabilities=probs, reason=reason,
                     margin=margin)


def validate_q(q: object) -> np.ndarray:
    q = np.asarray(q)
    if q.ndim != 1:
        raise ValueError(f"Q-values must be 1-D (K,), got shape {q.shape}")
    if q.size == 0:
        raise ValueError("K = 0: no candidates to select from")
    if q.dtype.kind not in "fiu":
        raise TypeError(f"Q-values must be numeric, got {q.dtype}")
    if not np.all(np.isfinite(q)):
        raise ValueError(f"Q-values contain NaN or inf at {np.flatnonzero(~np.isfinite(q))}")
    return q


def validate_beta(beta: object) -> float:
    try:
        value = float(beta)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"beta must be a number >= 0, got {beta!r}") from exc
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"beta must be finite and >= 0, got {value}")
    return value
