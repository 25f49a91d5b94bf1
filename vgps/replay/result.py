"""The typed result of a replay: per-step records, per-episode summaries, the whole run.

:func:`vgps.replay.rescore.replay` returns a :class:`ReplayResult`; its ``to_json()`` is what
``OUT/replay.json`` holds (strict JSON: NaN and inf become ``null``). The report
(:mod:`vgps.replay.report`) reads the result itself, plus the :class:`StepFrame` s of the changed
steps that it draws.

Usage::

    result = replay("out/bags/run1", out="out/replay")
    result.agreement, result.max_abs_q_diff, result.changed_steps
    [r.new_index for r in result.records]
    json.dumps(result.to_json())          # == the content of out/replay/replay.json
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["ChangedStep", "CriticInfo", "EpisodeSummary", "ReplayResult", "SkippedStep",
           "StepFrame", "StepRecord", "json_safe", "summarize_episodes"]


def json_safe(value: Any) -> Any:
    """NaN/inf -> None, numpy -> Python, tuples -> lists, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _as_json(obj: Any) -> dict[str, Any]:
    """A dataclass's fields in declaration order, JSON-safe."""
    return json_safe(dataclasses.asdict(obj))


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """One replayed step: what was recorded and what the replay chose.

    Attributes:
        episode: the episode it belongs to (None: before any EpisodeStatus).
        step: the control step counter of its candidates.
        stamp_ns: the source image stamp.
        k_recorded: recorded candidates; ``k``: candidates scored again (the first ``k``).
        beta: selection temperature used now; ``recorded_beta``: the executed decision's.
        recorded_critic: critic id in the recorded ScoredCandidates; ``same_critic``: it is the
            replaying critic's.
        q_recorded: (k_recorded,) recorded Q; ``q_new``: (k,) replayed Q.
        max_abs_q_diff: max |q_new - q_recorded[:k]|.
        same_candidates: all recorded candidates were scored again (``k == k_recorded``).
        recorded_index: executed candidate (-1: no choice among the scored candidates);
            ``recorded_reason``: the decision's reason (``missing`` without a decision);
            ``recorded_q``: its recorded Q (None without a choice).
        new_index, new_reason, new_q: the replayed choice, its rule and its Q.
        new_q_of_recorded: the replayed Q of the executed candidate (None: not scored again).
        agree: the replayed choice is the executed one (None: nothing to compare).
    """

    episode: int | None
    step: int
    stamp_ns: int
    k_recorded: int
    k: int
    beta: float
    recorded_beta: float | None
    recorded_critic: str
    same_critic: bool
    q_recorded: tuple[float, ...]
    q_new: tuple[float, ...]
    max_abs_q_diff: float
    same_candidates: bool
    recorded_index: int
    recorded_reason: str
    recorded_q: float | None
    new_index: int
    new_reason: str
    new_q: float
    new_q_of_recorded: float | None
    agree: bool | None

    def to_json(self) -> dict[str, Any]:
        return _as_json(self)


@dataclasses.dataclass(frozen=True)
class ChangedStep:
    """A step whose replayed choice differs from the executed one."""

    episode: int | None
    step: int
    stamp_ns: int
    recorded_index: int
    new_index: int

    def to_json(self) -> dict[str, Any]:
        return _as_json(self)


@dataclasses.dataclass(frozen=True)
class SkippedStep:
    """A recorded step that could not be replayed, and why (no frame, malformed candidates)."""

    episode: int | None
    step: int
    stamp_ns: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return _as_json(self)


@dataclasses.dataclass(frozen=True)
class EpisodeSummary:
    """Per episode: task, outcome (from its EpisodeStatus), replayed steps, agreement, mean Q."""

    episode: int
    task: str
    instruction: str
    outcome: str  # the last EpisodeStatus event ("unknown" without any)
    success: bool | None
    episode_steps: int | None
    replayed_steps: int
    agreement: float | None
    changed: int
    mean_recorded_q: float | None
    mean_new_q: float | None

    def to_json(self) -> dict[str, Any]:
        return _as_json(self)


@dataclasses.dataclass(frozen=True)
class CriticInfo:
    """The critic replayed with, and the ones the bag was scored by."""

    path: str
    id: str
    explicit: bool  # given by the caller (else: the one metadata.yaml names)
    recorded_ids: tuple[str, ...]
    same_as_recorded: bool

    def to_json(self) -> dict[str, Any]:
        return _as_json(self)


@dataclasses.dataclass(frozen=True)
class ReplayResult:
    """Everything a replay found (see :func:`vgps.replay.rescore.replay`).

    Attributes:
        bag: the replayed bag; ``vgps_version``, ``created`` (UTC, ISO 8601): provenance.
        critic: the critic replayed with.
        k, beta, seed: the replay's settings (None: as recorded).
        problems: what was unreadable in the bag; ``skipped``: steps not replayed;
            ``notes``: other remarks (duplicates, a clamped K, no end-effector positions).
        bag_counts: messages per topic; ``run_info``: what ``metadata.yaml`` says of the run.
        episodes: per-episode summaries; ``records``: per replayed step, in recorded order.
        elapsed_s: how long the replay took; ``report``: the written report.html (or None).
    """

    bag: str
    vgps_version: str
    created: str
    critic: CriticInfo
    k: int | None
    beta: float | None
    seed: int
    problems: tuple[str, ...]
    skipped: tuple[SkippedStep, ...]
    notes: tuple[str, ...]
    bag_counts: Mapping[str, int]
    run_info: Mapping[str, Any] | None
    episodes: tuple[EpisodeSummary, ...]
    records: tuple[StepRecord, ...]
    elapsed_s: float
    report: str | None

    @property
    def steps(self) -> int:
        """Replayed steps."""
        return len(self.records)

    @property
    def compared(self) -> int:
        """Replayed steps with a recorded choice to compare with."""
        return sum(1 for r in self.records if r.agree is not None)

    @property
    def agreement(self) -> float | None:
        """Fraction of compared steps whose replayed choice is the executed one (None: none)."""
        compared = [r.agree for r in self.records if r.agree is not None]
        return (sum(compared) / len(compared)) if compared else None

    @property
    def max_abs_q_diff(self) -> float | None:
        """Max |dQ| over steps scored by the same critic with the same candidates (None: none)."""
        comparable = [r.max_abs_q_diff for r in self.records
                      if r.same_critic and r.same_candidates]
        return max(comparable) if comparable else None

    @property
    def changed_steps(self) -> tuple[ChangedStep, ...]:
        """The steps whose choice changed, in recorded order."""
        return tuple(ChangedStep(r.episode, r.step, r.stamp_ns, r.recorded_index, r.new_index)
                     for r in self.records if r.agree is False)

    @property
    def recorded_k(self) -> list[int]:
        """The distinct recorded K, sorted."""
        return sorted({r.k_recorded for r in self.records})

    @property
    def recorded_beta(self) -> list[float]:
        """The distinct recorded betas, sorted."""
        return sorted({r.recorded_beta for r in self.records if r.recorded_beta is not None})

    def to_json(self) -> dict[str, Any]:
        """The content of ``replay.json`` (strict JSON types, keys in their documented order)."""
        return json_safe({
            "bag": self.bag, "vgps_version": self.vgps_version, "created": self.created,
            "steps": self.steps, "compared": self.compared, "agreement": self.agreement,
            "max_abs_q_diff": self.max_abs_q_diff,
            "changed_steps": [c.to_json() for c in self.changed_steps],
            "critic": self.critic.to_json(),
            "k": self.k, "beta": self.beta, "seed": self.seed,
            "recorded_k": self.recorded_k, "recorded_beta": self.recorded_beta,
            "problems": list(self.problems), "skipped": [s.to_json() for s in self.skipped],
            "notes": list(self.notes), "bag_counts": dict(self.bag_counts),
            "run_info": None if self.run_info is None else dict(self.run_info),
            "episodes": [e.to_json() for e in self.episodes],
            "records": [r.to_json() for r in self.records],
            "elapsed_s": self.elapsed_s, "report": self.report,
        })


@dataclasses.dataclass
class StepFrame:
    """What the report draws for one step: the frame with both choices.

    Attributes:
        record: index into ``ReplayResult.records``.
        frame: uint8 (H, W, 3) RGB camera frame of the step.
        ee_pos: (3,) end-effector position (m, base frame) or None when unknown.
        actions: (K_recorded, 7) first action of every recorded candidate.
        q_recorded: (K_recorded,) recorded Q-values; ``q_new``: (K,) replayed ones.
        recorded_index: executed candidate (-1: none); ``new_index``: the replayed choice.
    """

    record: int
    frame: np.ndarray
    ee_pos: np.ndarray | None
    actions: np.ndarray
    q_recorded: np.ndarray
    q_new: np.ndarray
    recorded_index: int
    new_index: int


def summarize_episodes(episodes: Mapping[int, Mapping[str, Any]],
                       records: Sequence[StepRecord]) -> tuple[EpisodeSummary, ...]:
    """Per episode (those with an EpisodeStatus and those of replayed steps), in order.

    Args:
        episodes: ``{episode: info}`` from :func:`vgps.replay.recorded.collect_steps`.
        records: the replayed steps.
    """
    numbers = sorted(set(episodes) | {r.episode for r in records if r.episode is not None})
    out = []
    for number in numbers:
        info = episodes.get(number, {})
        mine = [r for r in records if r.episode == number]
        compared = [r.agree for r in mine if r.agree is not None]
        recorded_q = [r.recorded_q for r in mine if r.recorded_q is not None]
        out.append(EpisodeSummary(
            episode=number, task=info.get("task", ""), instruction=info.get("instruction", ""),
            outcome=info.get("last_event", "unknown"), success=info.get("success"),
            episode_steps=info.get("steps"), replayed_steps=len(mine),
            agreement=sum(compared) / len(compared) if compared else None,
            changed=sum(1 for a in compared if not a),
            mean_recorded_q=float(np.mean(recorded_q)) if recorded_q else None,
            mean_new_q=float(np.mean([r.new_q for r in mine])) if mine else None))
    return tuple(out)
