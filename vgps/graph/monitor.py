"""The launcher's monitor node: progress, per-step Q statistics, step latency, episode outcomes.

Listens to the graph like any other node (no shortcut into the processes):

* step latency = receipt of ``vgps/selected`` minus receipt of the ``vgps/candidates`` with the
  same stamp (candidates published -> action selected, both seen by this process);
* Q statistics of each executed step from the ``vgps/scored`` message with that stamp;
* episode outcomes from ``vgps/episode``; the camera frames of episode 0 for a video.

The matching by stamp and the statistics are :class:`vgps.monitoring.tracker.StepTracker`, the
same one ``vgps monitor`` uses; this module only subscribes, converts messages and prints.

Usage::

    monitor = GraphMonitor(node, video=True)
    ... spin node ...
    monitor.summary()    # {"episodes": [...], "step_latency_ms": {"p50", "p95"}, ...}
"""

from __future__ import annotations

import collections
import contextlib
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sensor_msgs.msg import Image

from vgps.monitoring.tracker import MAX_RECORDS, StepRecord, StepTracker
from vgps_interfaces.msg import ActionCandidates, EpisodeStatus, ScoredCandidates, SelectedAction
from vgps_ros import qos
from vgps_ros.conversions import image_from_msg, stamp_to_ns

MAX_FRAMES = 5000  # camera frames kept for the video of episode 0


class GraphMonitor:
    """Subscribes to the graph's topics on ``node`` and keeps what ``vgps up`` reports.

    The matching and statistics are a :class:`~vgps.monitoring.tracker.StepTracker`
    (``self.tracker``); this class converts messages into its inputs and prints progress.

    Args:
        node: an rclpy node owned by the caller (spun by the caller).
        video: keep the camera frames of episode 0.
        echo: where progress lines go (``print``; None to stay quiet).
    """

    def __init__(self, node: Any, video: bool = False,
                 echo: Callable[[str], None] | None = print):
        self.node = node
        self.echo = echo
        self.tracker = StepTracker()
        self._lock = threading.Lock()
        self.events: collections.deque[EpisodeStatus] = collections.deque(maxlen=MAX_RECORDS)
        self.frames: list[np.ndarray] = []
        self._video = video
        self._video_done = False  # episode 0 ended: no more frames
        self._last_note = 0.0
        sub = node.create_subscription
        sub(ActionCandidates, qos.CANDIDATES, self._on_candidates, qos.COMMAND)
        sub(ScoredCandidates, qos.SCORED, self._on_scored, qos.COMMAND)
        sub(SelectedAction, qos.SELECTED, self._on_selected, qos.COMMAND)
        sub(EpisodeStatus, qos.EPISODE, self._on_episode, qos.COMMAND)
        if video:
            sub(Image, qos.CAMERA, self._on_image, qos.SENSOR)

    @property
    def episode(self) -> int:
        """The episode that last started (-1 before the first)."""
        return self.tracker.episode

    # -- callbacks --------------------------------------------------------------------------------
    def _on_candidates(self, msg: ActionCandidates) -> None:
        with self._lock:
            self.tracker.candidates(stamp_to_ns(msg.header.stamp), time.monotonic())

    def _on_scored(self, msg: ScoredCandidates) -> None:
        q = np.frombuffer(msg.q_values.tobytes(), np.float32)
        with self._lock:
            self.tracker.scored(stamp_to_ns(msg.header.stamp), q, msg.encode_ms, msg.score_ms,
                                msg.pre_encoded, msg.critic_id)

    def _on_selected(self, msg: SelectedAction) -> None:
        now = time.monotonic()
        with self._lock:
            record = self.tracker.selected(stamp_to_ns(msg.header.stamp), now, msg.step,
                                           msg.index, msg.reason)
            episode = self.tracker.episode
        if record.executing:
            self._say(_step_line(record, msg, episode))
        elif episode >= 0 and now - self._last_note > 1.0:  # quiet while starting up
            self._last_note = now
            self._say(f"  [{msg.reason}] {msg.detail}")

    def _on_episode(self, msg: EpisodeStatus) -> None:
        with self._lock:
            self.events.append(msg)
            record = self.tracker.episode_event(msg.episode, msg.task, msg.instruction,
                                                msg.step, msg.event, msg.success)
            if record.ended and record.episode == 0:
                self._video_done = True
        if record.event == EpisodeStatus.EVENT_STARTED:
            self._say(f"episode {msg.episode} started: {msg.task} ({msg.instruction!r})")
        elif record.ended:
            self._say(f"episode {msg.episode} {msg.event.upper()} after {msg.step} steps "
                      f"(success={msg.success})")

    def _on_image(self, msg: Image) -> None:
        if self.episode != 0 or self._video_done or len(self.frames) >= MAX_FRAMES:
            return
        with contextlib.suppress(ValueError):
            self.frames.append(image_from_msg(msg))

    # -- results ----------------------------------------------------------------------------------
    def episodes_done(self) -> int:
        with self._lock:
            return self.tracker.episodes_done

    def summary(self) -> dict[str, Any]:
        """``{"episodes": [...], "step_latency_ms": {"p50", "p95", "n"}, "decisions": {reason:
        count} of the control steps, "idle_holds": watchdog holds with no step pending}``."""
        with self._lock:
            return self.tracker.summary()

    def write_video(self, path: Path, fps: int = 5) -> Path | None:
        """Writes the frames of episode 0 as MP4 (imageio-ffmpeg); None without frames."""
        if not self.frames:
            return None
        import imageio.v2 as imageio

        path.parent.mkdir(parents=True, exist_ok=True)
        imageio.mimwrite(path, self.frames, fps=fps, macro_block_size=2, codec="libx264")
        return path

    def _say(self, line: str) -> None:
        if self.echo is not None:
            self.echo(line)


def _step_line(record: StepRecord, msg: SelectedAction, episode: int) -> str:
    """The progress line of one executed step."""
    stats = ""
    if record.scores is not None:
        s, q = record.scores, record.scores.q
        pre = "pre-encoded" if s.pre_encoded else "encoded"
        stats = (f" Q max {q.max:+.3f} mean {q.mean:+.3f} std {q.std:.3f}"
                 f" | {pre} {s.encode_ms:.1f} ms, scored {s.score_ms:.1f} ms")
    sel = "" if math.isnan(msg.q_value) else f" sel {msg.q_value:+.3f}"
    margin = "" if math.isnan(msg.q_margin) else f" margin {msg.q_margin:.3f}"
    return (f"  ep {max(episode, 0)} step {msg.step:4d} {msg.reason:8s} "
            f"k={msg.k} beta={msg.beta:g}{sel}{margin}{stats} | {record.latency_ms:.1f} ms")
