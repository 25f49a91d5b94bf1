"""The offline part of ``vgps critic compare``: both critics re-score recorded episodes.

Each bag's episodes come from :func:`vgps.flywheel.episodes.read_episodes`, their outcomes from
:func:`vgps.flywheel.labels.episode_outcome` (a person's label, else the simulator's verdict).
At every executed step each critic scores, from the recorded camera frame, the step's recorded
candidates (their first actions) together with the executed action, exactly as the critic node
scores (:class:`vgps_critic.encode_cache.StampedEncoder`: the frame resized to the critic's size,
encoded once, the instruction of the episode). Three measures, each with its counts:

* **ranking** - the episode score is the *mean Q of the executed first actions* over the
  episode's scored steps; the AUC is the probability that a successful episode scores above a
  failed one (:func:`~vgps.flywheel.compare_stats.auc`), per critic, and ``AUC(new) - AUC(old)``
  with a stratified paired bootstrap interval;
* **agreement with interventions** - at the steps where a person or the corrector took over
  (and the candidates were recorded), the fraction where the critic ranks the executed
  intervention action strictly above its best policy candidate, per critic, and the paired
  difference with a bootstrap interval over those steps;
* **choices that change** - at decided steps (not interventions, K >= 2 recorded candidates)
  the fraction where ``argmax`` of the new critic's Q differs from the old critic's.

Usage::

    result = offline_comparison(new_scorer, old_scorer, ["out/bags/run1", "out/bags/run2"])
    result["auc"], result["interventions"], result["choices"]
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vgps.flywheel.compare_stats import (
    LEVEL,
    N_BOOT,
    auc,
    paired_auc_difference,
    paired_bootstrap_interval,
)

if TYPE_CHECKING:
    from vgps.flywheel.episodes import Episode
    from vgps_critic import Scorer

__all__ = ["EPISODE_SCORE", "StepScore", "offline_comparison", "offline_metrics",
           "score_episode"]

EPISODE_SCORE = "mean Q of the executed first actions over the episode's scored steps"


@dataclasses.dataclass(frozen=True)
class StepScore:
    """One critic's Q at one recorded step.

    Attributes:
        executed: Q of the executed first action.
        candidates: float32 (K,) Q of the recorded candidates' first actions (None: none
            recorded).
        intervened: the executed action was a person's or the corrector's.
    """

    executed: float
    candidates: np.ndarray | None
    intervened: bool


def score_episode(critic: Scorer, episode: Episode) -> list[StepScore | None]:
    """Scores every step of ``episode`` (None where its camera frame is missing).

    Args:
        critic: a critic or an ensemble.
        episode: an episode read with images.

    Returns:
        One entry per ``episode.steps`` entry.
    """
    from vgps_critic.encode_cache import StampedEncoder

    encoder = StampedEncoder(critic, max_entries=1)
    scores: list[StepScore | None] = []
    for i, step in enumerate(episode.steps):
        if step.image is None:
            scores.append(None)
            continue
        executed = np.asarray(step.action, np.float32).reshape(1, -1)
        cands = None if step.candidates is None or len(step.candidates) == 0 \
            else np.asarray(step.candidates, np.float32).reshape(len(step.candidates), -1)
        actions = executed if cands is None else np.concatenate([cands, executed])
        encoder.add_image(i, step.image)  # the critic node's path: resize, encode once
        q = np.asarray(encoder.score(i, episode.instruction, actions).q, np.float32)
        scores.append(StepScore(executed=float(q[-1]),
                                candidates=None if cands is None else q[:-1],
                                intervened=bool(step.intervened)))
    return scores


def offline_metrics(episodes: Sequence[tuple[bool | None, list[StepScore | None],
                                             list[StepScore | None]]],
                    level: float = LEVEL, n_boot: int = N_BOOT) -> dict[str, Any]:
    """The three offline measures from both critics' step scores.

    Args:
        episodes: per episode ``(success or None when unknown, new critic's step scores, old
            critic's step scores)``; the two lists are aligned step by step.
        level: confidence level of the intervals.
        n_boot: bootstrap resamples of the intervention interval.

    Returns:
        ``{"auc": ..., "interventions": ..., "choices": ...}``; a measure that cannot be
        computed is ``{"available": False, "why": ...}`` with its counts.
    """
    pos: dict[str, list[float]] = {"new": [], "old": []}
    neg: dict[str, list[float]] = {"new": [], "old": []}
    unknown = unscored = 0
    wins: dict[str, list[float]] = {"new": [], "old": []}
    decided = changed = 0
    for success, new_steps, old_steps in episodes:
        if len(new_steps) != len(old_steps):
            raise ValueError(f"offline_metrics: step scores differ in length "
                             f"({len(new_steps)} vs {len(old_steps)})")
        pairs = [(a, b) for a, b in zip(new_steps, old_steps) if a is not None and b is not None]
        for a, b in pairs:
            if a.candidates is None or b.candidates is None:
                continue
            if a.intervened:
                wins["new"].append(float(a.executed > float(np.max(a.candidates))))
                wins["old"].append(float(b.executed > float(np.max(b.candidates))))
            elif a.candidates.size >= 2:
                decided += 1
                changed += int(np.argmax(a.candidates) != np.argmax(b.candidates))
        if success is None:
            unknown += 1
            continue
        if not pairs:
            unscored += 1
            continue
        group = pos if success else neg
        group["new"].append(float(np.mean([a.executed for a, _ in pairs])))
        group["old"].append(float(np.mean([b.executed for _, b in pairs])))
    return {"auc": _auc_block(pos, neg, unknown, unscored, level),
            "interventions": _intervention_block(wins, level, n_boot),
            "choices": {"available": decided > 0, "decided_steps": decided, "changed": changed,
                        "fraction": changed / decided if decided else None,
                        **({} if decided else {"why": "no decided step with K >= 2 recorded "
                                                      "candidates and a frame"})}}


def _auc_block(pos: dict[str, list[float]], neg: dict[str, list[float]], unknown: int,
               unscored: int, level: float) -> dict[str, Any]:
    block: dict[str, Any] = {"score": EPISODE_SCORE, "successes": len(pos["new"]),
                             "failures": len(neg["new"]), "unknown_outcome": unknown,
                             "without_scored_steps": unscored}
    if not pos["new"] or not neg["new"]:
        return {**block, "available": False,
                "why": f"need successful and failed episodes with known outcomes, got "
                       f"{len(pos['new'])} and {len(neg['new'])}"}
    diff, lo, hi = paired_auc_difference(pos["new"], neg["new"], pos["old"], neg["old"], level)
    return {**block, "available": True, "new": auc(pos["new"], neg["new"]),
            "old": auc(pos["old"], neg["old"]), "difference": diff, "difference_ci95": [lo, hi],
            "episode_scores": {"new": {"success": pos["new"], "failure": neg["new"]},
                               "old": {"success": pos["old"], "failure": neg["old"]}}}


def _intervention_block(wins: dict[str, list[float]], level: float, n_boot: int
                        ) -> dict[str, Any]:
    n = len(wins["new"])
    if n == 0:
        return {"available": False, "steps": 0,
                "why": "no intervention step with recorded candidates and a frame"}
    new, old = np.asarray(wins["new"]), np.asarray(wins["old"])
    lo, hi = paired_bootstrap_interval(new - old, level=level, n_boot=n_boot)
    return {"available": True, "steps": n, "new_wins": int(new.sum()),
            "old_wins": int(old.sum()), "new": float(new.mean()), "old": float(old.mean()),
            "difference": float(new.mean() - old.mean()), "difference_ci95": [lo, hi]}


def offline_comparison(new: Scorer, old: Scorer, bags: Sequence[str | os.PathLike],
                       level: float = LEVEL, n_boot: int = N_BOOT,
                       progress: bool = True) -> dict[str, Any]:
    """Reads every bag's episodes and outcomes, scores them with both critics, measures.

    Args:
        new: the candidate critic (loaded).
        old: the deployed critic (loaded).
        bags: bag directories recorded by ``vgps up --record`` (held out from training).
        level: confidence level of the intervals.
        n_boot: bootstrap resamples.
        progress: show a tqdm bar over episodes.

    Returns:
        :func:`offline_metrics`'s result plus ``"bags"`` (path, run id, episodes, outcome
        sources, losses) and ``"episodes"`` (counts).

    Raises:
        ValueError: no bags given.
        vgps.bags.writer.BagError: a bag is unreadable.
    """
    from tqdm import tqdm

    from vgps.flywheel.episodes import read_episodes
    from vgps.flywheel.labels import episode_outcome, load_labels

    if not bags:
        raise ValueError("offline_comparison: no bags given")
    rows: list[tuple[bool | None, list[StepScore | None], list[StepScore | None]]] = []
    bag_info = []
    counts = {"total": 0, "success": 0, "failure": 0, "unknown": 0, "steps": 0,
              "steps_without_frame": 0}
    for bag in bags:
        read = read_episodes(bag, images=True)
        labels = load_labels(bag)
        sources: dict[str, int] = {}
        for ep in tqdm(read.episodes, desc=f"offline {os.path.basename(str(bag))}",
                       unit="ep", disable=not progress, dynamic_ncols=True):
            success, source = episode_outcome(ep, labels)
            sources[source] = sources.get(source, 0) + 1
            rows.append((success, score_episode(new, ep), score_episode(old, ep)))
            counts["total"] += 1
            counts["unknown" if success is None else "success" if success else "failure"] += 1
            counts["steps"] += len(ep.steps)
            counts["steps_without_frame"] += sum(s.image is None for s in ep.steps)
            for step in ep.steps:  # the frames are not needed any more
                step.image = None
        bag_info.append({"path": str(bag), "run_id": read.run_id,
                         "episodes": [ep.key for ep in read.episodes],
                         "outcome_sources": sources, "losses": list(read.losses)})
    return {**offline_metrics(rows, level, n_boot), "bags": bag_info, "episodes": counts}
