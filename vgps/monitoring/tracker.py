"""One pure tracker of a running steering graph's steps, shared by every monitor.

``vgps monitor`` (:mod:`vgps.monitoring.terminal`) and ``vgps up``'s monitor node
(:class:`vgps.graph.monitor.GraphMonitor`) both hear ``vgps/candidates``, ``vgps/scored``,
``vgps/selected`` and ``vgps/episode``; they turn each message into plain values (stamps in
integer nanoseconds, arrival times in seconds, Q arrays) and hand them to a :class:`StepTracker`,
which matches the three messages of a control step by the source image's stamp and keeps:

* step latency: arrival of ``vgps/selected`` minus arrival of the ``vgps/candidates`` with the
  same stamp (candidates published -> action selected, both seen by the same process);
* step rate from consecutive candidate arrivals;
* Q statistics (K, max, mean, std over the finite values) of the ``vgps/scored`` with that stamp;
* decisions by reason (control steps; watchdog holds with no source image apart), the graph's
  step counter, episode outcomes, and the summary that ``vgps up`` writes to ``summary.json``.

With ``strict_episodes`` (``vgps up``, whose exit depends on the episode count) an episode event
must also make sense: an outcome counts only for an episode that started and has not ended yet,
a start only for an episode not seen before, and unknown events or negative numbers are refused
(counted in ``rejected_episode_events``). An outcome whose step count differs by more than
:data:`STEP_TOLERANCE` from the executed decisions heard during the episode still counts but is
flagged (``step_mismatches``): the two come from different processes, so only a lie or lost
messages make them disagree. ``vgps monitor`` only watches and stays lenient.

No ROS here. Memory is bounded (stamp caches of ``keep`` entries, at most ``max_records``
latencies and episodes), and bad input never raises: an empty or NaN Q array gives NaN
statistics, a stamp that never matches gives a NaN latency, arrivals may come in any order.
Not thread-safe: a caller that feeds it from a spin thread and reads it from another holds one
lock around both.

Usage::

    tracker = StepTracker()
    tracker.candidates(stamp_ns, now=time.monotonic())
    tracker.scored(stamp_ns, q_values, encode_ms=3.1, score_ms=1.2)
    record = tracker.selected(stamp_ns, now=time.monotonic(), step=7, index=2, reason="argmax")
    record.latency_ms, record.scores.q.max
    tracker.summary()   # {"episodes": [...], "step_latency_ms": {"p50", "p95", "n"}, ...}
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

EXECUTING = ("argmax", "softmax", "fallback", "intervention")  # decisions that move the arm
ENDED = ("succeeded", "failed", "timeout")  # episode events that end an episode
STARTED = "started"
EVENTS = (STARTED, "step", *ENDED)  # every event the arm driver publishes
STEP_TOLERANCE = 1  # executed decisions heard vs the outcome's steps: one may cross the start
KEEP = 64  # stamps remembered per cache for matching
MAX_RECORDS = 100_000  # latencies and ended episodes kept for the summary


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (NaN for no values)."""
    vals = list(values)
    return float(np.percentile(vals, q)) if vals else math.nan


@dataclasses.dataclass(frozen=True)
class QStats:
    """Statistics of one step's Q-values over its finite entries (NaN when there are none).

    Attributes:
        k: number of values, finite or not.
    """

    k: int = 0
    max: float = math.nan
    mean: float = math.nan
    std: float = math.nan

    @classmethod
    def of(cls, values: Any) -> QStats:
        """Statistics of ``values`` (any shape, flattened; unreadable input counts as empty).

        Args:
            values: the K Q-values, ``(K,)`` (an array or any iterable of numbers).

        Returns:
            The statistics; never raises.
        """
        try:
            q = np.asarray(values if isinstance(values, np.ndarray) else list(values),
                           dtype=np.float64).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            return cls()
        finite = q[np.isfinite(q)]
        if finite.size == 0:
            return cls(k=int(q.size))
        with np.errstate(over="ignore", invalid="ignore"):  # values near 1e308: inf, quietly
            return cls(k=int(q.size), max=float(finite.max()), mean=float(finite.mean()),
                       std=float(finite.std()))


@dataclasses.dataclass(frozen=True)
class Scores:
    """What ``vgps/scored`` said about one source image."""

    q: QStats
    encode_ms: float = math.nan
    score_ms: float = math.nan
    pre_encoded: bool = False
    critic_id: str = ""


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """One ``vgps/selected`` decision, matched with its candidates and scores.

    Attributes:
        latency_ms: candidates received -> this decision received (NaN: no candidates matched).
        scores: the matched ``vgps/scored`` (None: not heard, or not yet).
        first: the first decision heard for this stamp (a later one for the same image, e.g.
            after a watchdog fallback, has ``first`` False).
        idle: a watchdog hold with no source image (stamp 0), not a control step.
    """

    stamp_ns: int
    step: int
    index: int
    reason: str
    latency_ms: float
    scores: Scores | None
    first: bool
    idle: bool

    @property
    def executing(self) -> bool:
        """The decision moves the arm (argmax, softmax, fallback or intervention)."""
        return self.reason in EXECUTING


@dataclasses.dataclass(frozen=True)
class EpisodeRecord:
    """One ``vgps/episode`` event."""

    episode: int
    task: str
    instruction: str
    step: int
    event: str
    success: bool
    problem: str = ""  # why a strict tracker refused the event ("": accepted)
    seen_steps: int | None = None  # executed decisions heard in the episode (strict, ended)

    @property
    def accepted(self) -> bool:
        return not self.problem

    @property
    def ended(self) -> bool:
        """An accepted outcome (succeeded, failed, timeout)."""
        return self.accepted and self.event in ENDED

    @property
    def steps_disagree(self) -> bool:
        """The outcome's step count is not the executed decisions heard (beyond tolerance)."""
        return (self.seen_steps is not None
                and abs(self.step - self.seen_steps) > STEP_TOLERANCE)

    def outcome(self) -> dict[str, Any]:
        """The entry of ``summary()["episodes"]`` for an ended episode."""
        return {"episode": self.episode, "task": self.task, "success": self.success,
                "steps": self.step, "outcome": self.event}


class StepTracker:
    """Matches candidates -> scored -> selected by stamp and keeps the step statistics.

    Args:
        keep: stamps remembered per cache (candidates, scores, decided); older ones are
            forgotten first.
        max_records: latencies and ended episodes kept for :meth:`summary` (the newest).
        strict_episodes: refuse episode events that do not follow started -> ended (see the
            module docstring); for ``vgps up``, whose exit waits for the episode count.
    """

    def __init__(self, keep: int = KEEP, max_records: int = MAX_RECORDS,
                 strict_episodes: bool = False):
        if keep < 1 or max_records < 1:
            raise ValueError(f"StepTracker: keep={keep!r} and max_records={max_records!r} "
                             f"must be >= 1")
        self._keep = int(keep)
        self._candidates: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._scores: collections.OrderedDict[int, Scores] = collections.OrderedDict()
        self._decided: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._last_candidates = math.nan
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=max_records)
        self.decisions: collections.Counter[str] = collections.Counter()  # control steps
        self.idle_holds = 0  # watchdog holds while no step is pending (start-up, resets)
        self.step = -1  # the graph's step counter of the last executed decision
        self.episode = -1  # the episode that last started
        self.last_episode: EpisodeRecord | None = None
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.episodes: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_records)
        self.episodes_done = 0  # every ended episode, also those past max_records
        self._strict = bool(strict_episodes)
        self._max_records = int(max_records)
        # strict: running episode -> executed decisions heard before its start; ended episodes
        self._running: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._ended: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._executed = 0  # first executing decisions of a source image, all episodes
        self.rejected_episode_events: collections.Counter[str] = collections.Counter()
        self.step_mismatches = 0  # accepted outcomes whose steps disagree (strict)

    # -- inputs -----------------------------------------------------------------------------------
    def candidates(self, stamp_ns: Any, now: float) -> float:
        """``vgps/candidates`` for the image ``stamp_ns`` arrived at ``now`` (seconds).

        Returns:
            The step rate from the previous candidates' arrival (Hz; NaN for the first, or
            when the clock did not advance).
        """
        now = float(now)
        stamp = _stamp(stamp_ns)
        if stamp:
            _remember(self._candidates, stamp, now, self._keep)
        last, self._last_candidates = self._last_candidates, now
        return 1.0 / (now - last) if math.isfinite(last) and now > last else math.nan

    def scored(self, stamp_ns: Any, q_values: Any, encode_ms: float = math.nan,
               score_ms: float = math.nan, pre_encoded: bool = False,
               critic_id: str = "") -> Scores:
        """``vgps/scored`` for the image ``stamp_ns``.

        Args:
            q_values: the K Q-values, ``(K,)`` (empty or NaN entries are fine).

        Returns:
            What was kept for the stamp.
        """
        scores = Scores(QStats.of(q_values), _float(encode_ms), _float(score_ms),
                        bool(pre_encoded), str(critic_id))
        stamp = _stamp(stamp_ns)
        if stamp:
            _remember(self._scores, stamp, scores, self._keep)
        return scores

    def selected(self, stamp_ns: Any, now: float, step: Any = -1, index: Any = -1,
                 reason: str = "") -> StepRecord:
        """``vgps/selected`` for the image ``stamp_ns`` (0: no source image) arrived at ``now``.

        Returns:
            The decision matched with its candidates and scores.
        """
        stamp = _stamp(stamp_ns)
        reason = str(reason)
        idle = stamp == 0 and reason == "hold"
        if idle:
            self.idle_holds += 1
        else:
            self.decisions[reason] += 1
        sent = self._candidates.get(stamp) if stamp else None
        latency = (float(now) - sent) * 1e3 if sent is not None else math.nan
        first = bool(stamp) and stamp not in self._decided
        if stamp:
            _remember(self._decided, stamp, None, self._keep)
        record = StepRecord(stamp_ns=stamp, step=_int(step), index=_int(index), reason=reason,
                            latency_ms=latency, scores=self._scores.get(stamp) if stamp else None,
                            first=first, idle=idle)
        if record.executing:
            self.step = record.step
            if record.first:  # the arm driver executes one decision per image at most
                self._executed += 1
            if math.isfinite(latency):
                self.latencies_ms.append(latency)
        return record

    def episode_event(self, episode: Any, task: str, instruction: str, step: Any, event: str,
                      success: bool) -> EpisodeRecord:
        """A ``vgps/episode`` event (``started``, ``step``, ``succeeded``, ...).

        Returns:
            The event; with ``strict_episodes`` one that does not fit has ``problem`` set and
            changes nothing but ``rejected_episode_events``.
        """
        record = EpisodeRecord(episode=_int(episode), task=str(task),
                               instruction=str(instruction), step=_int(step), event=str(event),
                               success=bool(success))
        if self._strict:
            problem = self._episode_problem(record)
            if problem:
                self.rejected_episode_events[problem] += 1
                return dataclasses.replace(record, problem=problem)
            if record.event == STARTED:
                _remember(self._running, record.episode, self._executed, self._keep)
            elif record.event in ENDED:
                seen = self._executed - self._running.pop(record.episode)
                _remember(self._ended, record.episode, None, self._max_records)
                record = dataclasses.replace(record, seen_steps=seen)
                self.step_mismatches += int(record.steps_disagree)
        self.last_episode = record
        if record.event == STARTED:
            self.episode = record.episode
        elif record.ended:
            self.outcomes[record.event] += 1
            self.episodes.append(record.outcome())
            self.episodes_done += 1
        return record

    def _episode_problem(self, record: EpisodeRecord) -> str:
        """Why a strict tracker refuses ``record`` ("" when it fits)."""
        if record.event not in EVENTS:
            return "unknown event"
        if record.episode < 0 or record.step < 0:
            return "negative number"
        if record.event == STARTED:
            seen = record.episode in self._running or record.episode in self._ended
            return "started twice" if seen else ""
        if record.episode in self._running:
            return ""
        return "already ended" if record.episode in self._ended else "never started"

    # -- results ----------------------------------------------------------------------------------
    def all_decisions(self) -> collections.Counter[str]:
        """Decisions by reason, watchdog holds with no source image counted as ``hold``."""
        out = collections.Counter(self.decisions)
        if self.idle_holds:
            out["hold"] += self.idle_holds
        return out

    def summary(self) -> dict[str, Any]:
        """``{"episodes": [...], "step_latency_ms": {"p50", "p95", "n"}, "decisions": {reason:
        count} of the control steps, "idle_holds": watchdog holds with no step pending}``.

        Latencies are those of executed steps (argmax, softmax, fallback) whose candidates were
        heard; ``n`` counts them (the newest ``max_records``).
        """
        lat = list(self.latencies_ms)
        return {
            "episodes": [dict(e) for e in self.episodes],
            "step_latency_ms": {"p50": _round(percentile(lat, 50)),
                                "p95": _round(percentile(lat, 95)), "n": len(lat)},
            "decisions": dict(self.decisions),
            "idle_holds": self.idle_holds,
        }


def _remember(table: collections.OrderedDict, key: int, value: Any, keep: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > keep:
        table.popitem(last=False)


def _stamp(value: Any) -> int:
    """A stamp in integer nanoseconds; 0 (no source image, never matched) when unreadable."""
    try:
        stamp = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return stamp if stamp > 0 else 0


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return -1


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past 1e308
        return math.nan


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)
