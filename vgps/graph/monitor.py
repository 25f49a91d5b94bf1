"""The launcher's monitor node: progress, per-step Q statistics, step latency, episode outcomes.

Listens to the graph like any other node (no shortcut into the processes):

* step latency = receipt of ``vgps/selected`` minus receipt of the ``vgps/candidates`` with the
  same stamp (candidates published -> action selected, both seen by this process);
* Q statistics of each executed step from the ``vgps/scored`` message with that stamp;
* episode outcomes from ``vgps/episode``; the camera frames of episode 0 for a video.

Usage::

    monitor = GraphMonitor(node, video=True)
    ... spin node ...
    monitor.summary()    # {"episodes": [...], "step_latency_ms": {"p50", "p95"}, ...}
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sensor_msgs.msg import Image

from vgps_interfaces.msg import ActionCandidates, EpisodeStatus, ScoredCandidates, SelectedAction
from vgps_ros import qos
from vgps_ros.conversions import image_from_msg, stamp_to_ns

EXECUTING = ("argmax", "softmax", "fallback")
ENDED = ("succeeded", "failed", "timeout")
_KEEP = 64  # stamps remembered for matching


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (NaN for no values)."""
    return float(np.percentile(values, q)) if values else math.nan


class GraphMonitor:
    """Subscribes to the graph's topics on ``node`` and keeps what ``vgps up`` reports.

    Args:
        node: an rclpy node owned by the caller (spun by the caller).
        video: keep the camera frames of episode 0.
        echo: where progress lines go (``print``; None to stay quiet).
    """

    def __init__(self, node: Any, video: bool = False,
                 echo: Callable[[str], None] | None = print):
        self.node = node
        self.echo = echo
        self._lock = threading.Lock()
        self._candidates: OrderedDict[int, float] = OrderedDict()
        self._scored: OrderedDict[int, tuple[np.ndarray, ScoredCandidates]] = OrderedDict()
        self.latencies_ms: list[float] = []
        self.decisions: Counter[str] = Counter()  # per control step (with a source image)
        self.idle_holds = 0  # watchdog holds while no step is pending (start-up, resets)
        self.episodes: list[dict[str, Any]] = []
        self.events: list[EpisodeStatus] = []
        self.frames: list[np.ndarray] = []
        self.episode = -1
        self._video = video
        self._last_note = 0.0
        sub = node.create_subscription
        sub(ActionCandidates, qos.CANDIDATES, self._on_candidates, qos.COMMAND)
        sub(ScoredCandidates, qos.SCORED, self._on_scored, qos.COMMAND)
        sub(SelectedAction, qos.SELECTED, self._on_selected, qos.COMMAND)
        sub(EpisodeStatus, qos.EPISODE, self._on_episode, qos.COMMAND)
        if video:
            sub(Image, qos.CAMERA, self._on_image, qos.SENSOR)

    # -- callbacks --------------------------------------------------------------------------------
    def _on_candidates(self, msg: ActionCandidates) -> None:
        with self._lock:
            _remember(self._candidates, stamp_to_ns(msg.header.stamp), time.monotonic())

    def _on_scored(self, msg: ScoredCandidates) -> None:
        q = np.frombuffer(msg.q_values.tobytes(), np.float32)
        with self._lock:
            _remember(self._scored, stamp_to_ns(msg.header.stamp), (q, msg))

    def _on_selected(self, msg: SelectedAction) -> None:
        now = time.monotonic()
        stamp = stamp_to_ns(msg.header.stamp)
        with self._lock:
            if stamp == 0 and msg.reason == "hold":
                self.idle_holds += 1
            else:
                self.decisions[msg.reason] += 1
            sent = self._candidates.get(stamp)
            latency = (now - sent) * 1e3 if sent is not None else math.nan
            if msg.reason in EXECUTING and sent is not None:
                self.latencies_ms.append(latency)
            scored = self._scored.get(stamp)
        if msg.reason in EXECUTING:
            self._say(self._step_line(msg, scored, latency))
        elif self.episode >= 0 and now - self._last_note > 1.0:  # quiet while starting up
            self._last_note = now
            self._say(f"  [{msg.reason}] {msg.detail}")

    def _on_episode(self, msg: EpisodeStatus) -> None:
        with self._lock:
            self.events.append(msg)
            if msg.event == EpisodeStatus.EVENT_STARTED:
                self.episode = int(msg.episode)
            elif msg.event in ENDED:
                self.episodes.append({"episode": int(msg.episode), "task": msg.task,
                                      "success": bool(msg.success), "steps": int(msg.step),
                                      "outcome": msg.event})
        if msg.event == EpisodeStatus.EVENT_STARTED:
            self._say(f"episode {msg.episode} started: {msg.task} ({msg.instruction!r})")
        elif msg.event in ENDED:
            self._say(f"episode {msg.episode} {msg.event.upper()} after {msg.step} steps "
                      f"(success={msg.success})")

    def _on_image(self, msg: Image) -> None:
        if self.episode != 0 or any(e["episode"] == 0 for e in self.episodes):
            return
        with contextlib.suppress(ValueError):
            self.frames.append(image_from_msg(msg))

    # -- results ----------------------------------------------------------------------------------
    def episodes_done(self) -> int:
        with self._lock:
            return len(self.episodes)

    def summary(self) -> dict[str, Any]:
        """``{"episodes": [...], "step_latency_ms": {"p50", "p95", "n"}, "decisions": {reason:
        count} of the control steps, "idle_holds": watchdog holds with no step pending}``."""
        with self._lock:
            lat = list(self.latencies_ms)
            return {
                "episodes": [dict(e) for e in self.episodes],
                "step_latency_ms": {"p50": _round(percentile(lat, 50)),
                                    "p95": _round(percentile(lat, 95)), "n": len(lat)},
                "decisions": dict(self.decisions),
                "idle_holds": self.idle_holds,
            }

    def write_video(self, path: Path, fps: int = 5) -> Path | None:
        """Writes the frames of episode 0 as MP4 (imageio-ffmpeg); None without frames."""
        if not self.frames:
            return None
        import imageio.v2 as imageio

        path.parent.mkdir(parents=True, exist_ok=True)
        imageio.mimwrite(path, self.frames, fps=fps, macro_block_size=2, codec="libx264")
        return path

    # -- internals --------------------------------------------------------------------------------
    def _step_line(self, msg: SelectedAction, scored: Any, latency: float) -> str:
        stats = ""
        if scored is not None:
            q = scored[0]
            pre = "pre-encoded" if scored[1].pre_encoded else "encoded"
            stats = (f" Q max {q.max():+.3f} mean {q.mean():+.3f} std {q.std():.3f}"
                     f" | {pre} {scored[1].encode_ms:.1f} ms, scored {scored[1].score_ms:.1f} ms")
        sel = "" if math.isnan(msg.q_value) else f" sel {msg.q_value:+.3f}"
        margin = "" if math.isnan(msg.q_margin) else f" margin {msg.q_margin:.3f}"
        return (f"  ep {max(self.episode, 0)} step {msg.step:4d} {msg.reason:8s} "
                f"k={msg.k} beta={msg.beta:g}{sel}{margin}{stats} | {latency:.1f} ms")

    def _say(self, line: str) -> None:
        if self.echo is not None:
            self.echo(line)


def _remember(table: OrderedDict, key: int, value: Any) -> None:
    table[key] = value
    while len(table) > _KEEP:
        table.popitem(last=False)


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)
