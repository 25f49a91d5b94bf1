"""What ``vgps up`` returns: a typed result whose ``to_json()`` is ``<out>/summary.json``.

``summary.json``::

    {"episodes": [{"episode", "task", "success", "steps", "outcome"}, ...],
     "step_latency_ms": {"p50", "p95", "n"}, "decisions": {reason: count}, "idle_holds": int,
     "arguments": {launch argument: value}, "exit_code": int, "ros_domain_id": int,
     "video": path or null (only with --video in sim),
     "bag": {"path", "messages": {topic: count}, "problems": [...]} or {"path", "error"}
            (only with --record),
     "anomalies": {kind: count} (only when the monitor refused or flagged messages, e.g.
                  "foreign_episode_events": episode events not from the graph's arm driver)}

Usage::

    result = up(config)
    [(ep.task, ep.success, ep.steps) for ep in result.episodes]
    result.step_latency_ms.p50, result.exit_code
    json.dumps(result.to_json(), indent=2)             # what summary.json holds
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class EpisodeOutcome:
    """One episode the arm driver reported as ended."""

    episode: int  # number since the driver started
    task: str
    success: bool
    steps: int  # control steps executed
    outcome: str  # succeeded | failed | timeout

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EpisodeOutcome:
        return cls(episode=int(data["episode"]), task=str(data["task"]),
                   success=bool(data["success"]), steps=int(data["steps"]),
                   outcome=str(data["outcome"]))

    def to_json(self) -> dict[str, Any]:
        return {"episode": self.episode, "task": self.task, "success": self.success,
                "steps": self.steps, "outcome": self.outcome}


@dataclasses.dataclass(frozen=True)
class StepLatency:
    """Candidates published -> action selected, over the executed control steps (ms)."""

    p50: float | None  # None: no step
    p95: float | None
    n: int  # steps measured

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepLatency:
        return cls(p50=data["p50"], p95=data["p95"], n=int(data["n"]))

    def to_json(self) -> dict[str, Any]:
        return {"p50": self.p50, "p95": self.p95, "n": self.n}


@dataclasses.dataclass(frozen=True)
class BagSummary:
    """What the recorded bag holds; ``error`` instead when it could not be read."""

    path: str
    messages: Mapping[str, int] | None = None  # messages per topic (None: unreadable)
    problems: tuple[str, ...] = ()
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "messages": dict(self.messages or {}),
                "problems": list(self.problems)}


@dataclasses.dataclass(frozen=True)
class UpResult:
    """The outcome of one ``vgps up`` run (see the module docstring for its JSON)."""

    episodes: tuple[EpisodeOutcome, ...]
    step_latency_ms: StepLatency
    decisions: Mapping[str, int]  # selector reason -> control steps
    idle_holds: int  # watchdog holds with no step pending
    arguments: Mapping[str, str]  # the resolved launch arguments
    exit_code: int  # 0 done, 2 start-up failed, 3 timeout, 4 arm driver died, 130 interrupted
    ros_domain_id: int
    video_requested: bool = False  # --video in sim: "video" is in the summary
    video: Path | None = None  # episode 0 as MP4 (None: no frames)
    bag: BagSummary | None = None  # --record: what the bag holds
    # messages the monitor refused or flagged, by kind (GraphMonitor.summary()["anomalies"])
    anomalies: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_monitor(cls, summary: Mapping[str, Any], **fields: Any) -> UpResult:
        """The result from the monitor's summary plus the launcher's own ``fields``."""
        return cls(episodes=tuple(EpisodeOutcome.from_json(e) for e in summary["episodes"]),
                   step_latency_ms=StepLatency.from_json(summary["step_latency_ms"]),
                   decisions=dict(summary["decisions"]), idle_holds=int(summary["idle_holds"]),
                   **{"anomalies": {str(k): int(v) for k, v in
                                    summary.get("anomalies", {}).items() if v}, **fields})

    def to_json(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        out: dict[str, Any] = {
            "episodes": [e.to_json() for e in self.episodes],
            "step_latency_ms": self.step_latency_ms.to_json(),
            "decisions": dict(self.decisions),
            "idle_holds": self.idle_holds,
            "arguments": dict(self.arguments),
            "exit_code": self.exit_code,
            "ros_domain_id": self.ros_domain_id,
        }
        if self.video_requested:
            out["video"] = str(self.video) if self.video else None
        if self.bag is not None:
            out["bag"] = self.bag.to_json()
        if any(self.anomalies.values()):
            out["anomalies"] = dict(self.anomalies)
        return out


def read_bag_summary(path: Path, echo: Callable[[str], None]) -> BagSummary:
    """What the recorded bag holds (messages per topic, problems), echoed in one line."""
    from vgps.bags import BagError, BagReader

    try:
        reader = BagReader(path)
    except BagError as exc:
        echo(f"warning: the bag could not be read: {exc}")
        return BagSummary(path=str(path), error=str(exc))
    counts = {name: topic.count for name, topic in reader.topics.items()}
    echo(f"bag {path}: {sum(counts.values())} messages on {len(counts)} topics"
         + (f"; problems: {'; '.join(reader.problems)}" if reader.problems else ""))
    return BagSummary(path=str(path), messages=counts, problems=tuple(reader.problems))
