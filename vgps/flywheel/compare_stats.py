"""The interval math of ``vgps critic compare``: paired bootstrap intervals and ranking AUC.

Success of one critic in one episode is a 0/1 outcome; both critics run the same episode seeds,
so the comparison is *paired*: each episode gives one difference ``new - old`` in {-1, 0, 1}.
The 95 % interval of the mean difference is a **paired percentile bootstrap** over episodes
(resample the episodes with replacement, ``n_boot`` times, take the 2.5 % and 97.5 % quantiles
of the resampled mean differences; a fixed generator seed makes it reproducible). It keeps the
pairing (the between-episode variation both critics share cancels) and needs no normal
approximation. When every pair agrees, every resample is 0 and the interval is ``[0, 0]``:
identical behaviour is no evidence of a difference either way.

Each critic's own success rate gets the Wilson score interval
(:func:`vgps.evaluation.results.wilson_interval`).

Ranking: :func:`auc` is the Mann-Whitney probability that a successful episode's score exceeds a
failed one's (ties count one half); :func:`paired_auc_difference` bootstraps ``AUC(new) -
AUC(old)`` by resampling the successful and the failed episodes separately (stratified), both
critics' scores of an episode staying together.

Usage::

    lo, hi = paired_bootstrap_interval([1, 0, -1, 0, 0])     # 95 % interval of the mean
    auc([0.9, 0.4], [0.1, 0.4])                               # 0.875
    diff, lo, hi = paired_auc_difference(new_pos, new_neg, old_pos, old_neg)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vgps.evaluation.results import wilson_interval

__all__ = ["BOOTSTRAP_SEED", "LEVEL", "N_BOOT", "auc", "paired_auc_difference",
           "paired_bootstrap_interval", "wilson_interval"]

LEVEL = 0.95  # every interval of the comparison
N_BOOT = 10_000  # bootstrap resamples
BOOTSTRAP_SEED = 0  # the resampling generator's seed (the intervals are reproducible)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r}: must be in (0, 1)")


def _check_n_boot(n_boot: int) -> None:
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 100:
        raise ValueError(f"n_boot={n_boot!r}: need an integer >= 100")


def paired_bootstrap_interval(differences: Sequence[float] | np.ndarray, level: float = LEVEL,
                              n_boot: int = N_BOOT, seed: int = BOOTSTRAP_SEED
                              ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of paired differences.

    Args:
        differences: (N,) per-pair ``new - old`` (for success: values in {-1, 0, 1}).
        level: confidence level (0.95: the 2.5 % and 97.5 % quantiles).
        n_boot: resamples.
        seed: seed of the resampling generator.

    Returns:
        ``(low, high)`` of the mean difference.

    Raises:
        ValueError: no pairs, non-finite values, or a bad ``level``/``n_boot``.
    """
    d = np.asarray(differences, dtype=np.float64).reshape(-1)
    if d.size == 0:
        raise ValueError("paired_bootstrap_interval: no pairs (need at least one episode)")
    if not np.all(np.isfinite(d)):
        raise ValueError(f"paired_bootstrap_interval: non-finite differences {d.tolist()}")
    _check_level(level)
    _check_n_boot(n_boot)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(int(n_boot), d.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(lo), float(hi)


def auc(positive: Sequence[float] | np.ndarray, negative: Sequence[float] | np.ndarray
        ) -> float:
    """Mann-Whitney AUC: P(score of a positive > score of a negative), ties counting 1/2.

    Args:
        positive: (P,) scores of the successful episodes.
        negative: (N,) scores of the failed episodes.

    Returns:
        The AUC in [0, 1] (1: every success scores above every failure).

    Raises:
        ValueError: an empty group or a non-finite score.
    """
    pos = np.asarray(positive, dtype=np.float64).reshape(-1)
    neg = np.asarray(negative, dtype=np.float64).reshape(-1)
    if pos.size == 0 or neg.size == 0:
        raise ValueError(f"auc: need successes and failures, got {pos.size} and {neg.size}")
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(neg))):
        raise ValueError("auc: scores contain NaN or inf")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def paired_auc_difference(new_pos: Sequence[float] | np.ndarray,
                          new_neg: Sequence[float] | np.ndarray,
                          old_pos: Sequence[float] | np.ndarray,
                          old_neg: Sequence[float] | np.ndarray, level: float = LEVEL,
                          n_boot: int = 2_000, seed: int = BOOTSTRAP_SEED
                          ) -> tuple[float, float, float]:
    """``AUC(new) - AUC(old)`` on the same episodes, with a stratified paired bootstrap interval.

    Args:
        new_pos: (P,) the new critic's scores of the successful episodes.
        new_neg: (N,) the new critic's scores of the failed episodes.
        old_pos: (P,) the old critic's scores of the same successful episodes, same order.
        old_neg: (N,) the old critic's scores of the same failed episodes, same order.
        level: confidence level.
        n_boot: resamples (each draws P successes and N failures with replacement).
        seed: seed of the resampling generator.

    Returns:
        ``(difference, low, high)``.

    Raises:
        ValueError: empty groups, unequal pairing or non-finite scores.
    """
    arrays = [np.asarray(a, dtype=np.float64).reshape(-1)
              for a in (new_pos, new_neg, old_pos, old_neg)]
    npos, nneg, opos, oneg = arrays
    if npos.size != opos.size or nneg.size != oneg.size:
        raise ValueError(f"paired_auc_difference: the critics scored different episodes "
                         f"({npos.size}/{nneg.size} vs {opos.size}/{oneg.size})")
    diff = auc(npos, nneg) - auc(opos, oneg)
    _check_level(level)
    _check_n_boot(n_boot)
    rng = np.random.default_rng(seed)
    diffs = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        i = rng.integers(0, npos.size, npos.size)
        j = rng.integers(0, nneg.size, nneg.size)
        diffs[b] = auc(npos[i], nneg[j]) - auc(opos[i], oneg[j])
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(diffs, [tail, 1.0 - tail])
    return float(diff), float(lo), float(hi)
