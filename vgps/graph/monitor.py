"""The launcher's monitor node: progress, per-step Q statistics, step latency, episode outcomes.

Listens to the graph like any other node (no shortcut into the processes):

* step latency = receipt of ``vgps/selected`` minus receipt of the ``vgps/candidates`` with the
  same stamp (candidates published -> action selected, both seen by this process);
* Q statistics of each executed step from the ``vgps/scored`` message with that stamp;
* episode outcomes from ``vgps/episode``; the camera frames of episode 0 for a video.

The matching by stamp and the statistics are :class:`vgps.monitoring.tracker.StepTracker`, the
same one ``vgps monitor`` uses; this module only subscribes, converts messages and prints.

Anything in the ROS domain can publish on these topics, and ``vgps up`` exits on the episode count
it hears, so the monitor trusts little:

* every callback is total: bad values become NaN statistics or refused events, and a last-resort
  guard counts and reports any exception instead of letting it end rclpy's executor thread (which
  would silently stop the monitor while the graph runs on);
* episode events count only when published by an endpoint of the node named ``arm_driver`` (its
  publisher GID, learnt from the ROS graph) and when they follow started -> ended for that episode
  (a strict tracker); an outcome whose steps disagree with the executed decisions heard is
  flagged. Without DDS security a node name is not a credential: a forger that names itself
  ``arm_driver`` passes the identity check (only the ordering checks remain); it stops forgers
  with any other node name;
* printed strings from messages are cut short and stripped of control characters.

What was refused or flagged is counted in ``summary()["anomalies"]`` (one warning line each time a
count reaches 1, 10, 100, ...).

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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sensor_msgs.msg import Image

from vgps.monitoring.tracker import MAX_RECORDS, StepRecord, StepTracker
from vgps_interfaces.msg import ActionCandidates, EpisodeStatus, ScoredCandidates, SelectedAction
from vgps_ros import qos
from vgps_ros.conversions import image_from_msg, stamp_to_ns
from vgps_ros.trust import gid_bytes

MAX_FRAMES = 5000  # camera frames kept for the video of episode 0
ARM_DRIVER = "arm_driver"  # the graph's node whose episode events count
UNKNOWN_NODE = "_NODE_NAME_UNKNOWN_"  # rmw's name of an endpoint whose node is not known yet
IDENTIFY_TRIES, IDENTIFY_WAIT_S = 5, 0.05  # a new publisher's node name may lag its first data
MAX_PUBLISHERS = 1024  # publisher GIDs remembered with their node name
MAX_TEXT = 80  # characters of a message's string printed


class GraphMonitor:
    """Subscribes to the graph's topics on ``node`` and keeps what ``vgps up`` reports.

    The matching and statistics are a :class:`~vgps.monitoring.tracker.StepTracker`
    (``self.tracker``); this class converts messages into its inputs and prints progress.

    Args:
        node: an rclpy node owned by the caller (spun by the caller).
        video: keep the camera frames of episode 0.
        echo: where progress lines go (``print``; None to stay quiet).
        episode_publisher: the node name whose episode events count (None: any publisher; also
            when ``node`` has no ROS graph API, e.g. a test double).
    """

    def __init__(self, node: Any, video: bool = False,
                 echo: Callable[[str], None] | None = print,
                 episode_publisher: str | None = ARM_DRIVER):
        self.node = node
        self.echo = echo
        self.tracker = StepTracker(strict_episodes=True)
        self.anomalies: collections.Counter[str] = collections.Counter()
        # publisher GID on the episode topic -> its node's name ("": not in the ROS graph)
        self._publishers: dict[bytes, str] = {}
        self._episode_publisher = (episode_publisher
                                   if hasattr(node, "get_publishers_info_by_topic") else None)
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
        # rclpy passes the message info (publisher GID) to a callback of two arguments.
        sub(EpisodeStatus, qos.EPISODE, self._on_episode if self._episode_publisher is None
            else self._on_episode_with_info, qos.COMMAND)
        if video:
            sub(Image, qos.CAMERA, self._on_image, qos.SENSOR)

    @property
    def episode(self) -> int:
        """The episode that last started (-1 before the first)."""
        return self.tracker.episode

    # -- callbacks (each total: see _guard) ------------------------------------------------------
    def _on_candidates(self, msg: ActionCandidates) -> None:
        with self._guard("candidates"), self._lock:
            self.tracker.candidates(stamp_to_ns(msg.header.stamp), time.monotonic())

    def _on_scored(self, msg: ScoredCandidates) -> None:
        with self._guard("scored"):
            q = np.asarray(msg.q_values, np.float32)  # any length; statistics of finite ones
            with self._lock:
                self.tracker.scored(stamp_to_ns(msg.header.stamp), q, msg.encode_ms,
                                    msg.score_ms, msg.pre_encoded, msg.critic_id)

    def _on_selected(self, msg: SelectedAction) -> None:
        with self._guard("selected"):
            self._selected(msg)

    def _selected(self, msg: SelectedAction) -> None:
        now = time.monotonic()
        with self._lock:
            record = self.tracker.selected(stamp_to_ns(msg.header.stamp), now, msg.step,
                                           msg.index, msg.reason)
            episode = self.tracker.episode
        if record.executing:
            self._say(_step_line(record, msg, episode))
        elif episode >= 0 and now - self._last_note > 1.0:  # quiet while starting up
            self._last_note = now
            self._say(f"  [{_clean(msg.reason)}] {_clean(msg.detail)}")

    def _on_episode_with_info(self, msg: EpisodeStatus, message_info: Any) -> None:
        """An episode event with rclpy's message info: counts only from ``episode_publisher``."""
        with self._guard("episode"):
            gid = gid_bytes(message_info.get("publisher_gid") if isinstance(message_info, dict)
                       else None)
            if gid is None:  # this rmw does not say who published: nothing to check against
                self._warn("unidentified_episode_events",
                           "an episode event without its publisher's identity was accepted")
            else:
                name = self._publisher_node(gid)
                if name != self._episode_publisher:
                    self._warn("foreign_episode_events",
                               f"ignored an episode event ({_clean(msg.event)!r}, episode "
                               f"{msg.episode}) from node {name or 'unknown'!r}, not "
                               f"{self._episode_publisher!r}")
                    return
            self._episode(msg)

    def _on_episode(self, msg: EpisodeStatus) -> None:
        """An episode event from any publisher (no ROS graph to identify it)."""
        with self._guard("episode"):
            self._episode(msg)

    def _episode(self, msg: EpisodeStatus) -> None:
        with self._lock:
            record = self.tracker.episode_event(msg.episode, msg.task, msg.instruction,
                                                msg.step, msg.event, msg.success)
            if record.accepted:
                self.events.append(msg)
            if record.ended and record.episode == 0:
                self._video_done = True
        if not record.accepted:
            self._warn("unexpected_episode_events",
                       f"ignored episode {record.episode} event {_clean(record.event)!r}: "
                       f"{record.problem}")
        elif record.event == EpisodeStatus.EVENT_STARTED:
            self._say(f"episode {record.episode} started: {_clean(record.task)} "
                      f"({_clean(record.instruction)!r})")
        elif record.ended:
            self._say(f"episode {record.episode} {record.event.upper()} after {record.step} "
                      f"steps (success={record.success})")
            if record.steps_disagree:
                self._warn("episode_step_mismatches",
                           f"episode {record.episode} reports {record.step} steps, the monitor "
                           f"heard {record.seen_steps} executed decisions")

    def _on_image(self, msg: Image) -> None:
        with self._guard("image"):
            if self.episode != 0 or self._video_done or len(self.frames) >= MAX_FRAMES:
                return
            with contextlib.suppress(ValueError):
                self.frames.append(image_from_msg(msg))

    # -- trust ------------------------------------------------------------------------------------
    def _publisher_node(self, gid: bytes) -> str | None:
        """The node name of the episode topic's publisher ``gid`` (None: not in the ROS graph).

        Learnt from ``get_publishers_info_by_topic`` and remembered. A new GID refreshes it a few
        times briefly, because a publisher's node name may reach this process just after its
        first message; a GID that stayed unknown refreshes it once per message, without waiting
        (a flood from outside the ROS graph cannot stall the monitor).
        """
        known = self._publishers.get(gid)
        if known:
            return known
        for attempt in range(1 if known == "" else IDENTIFY_TRIES):
            if attempt:
                time.sleep(IDENTIFY_WAIT_S)
            if len(self._publishers) > MAX_PUBLISHERS:
                self._publishers.clear()
            for info in self.node.get_publishers_info_by_topic(qos.EPISODE):
                key = gid_bytes(info.endpoint_gid)
                if key is not None and info.node_name and info.node_name != UNKNOWN_NODE:
                    self._publishers[key] = info.node_name
            if self._publishers.get(gid):
                return self._publishers[gid]
        self._publishers[gid] = ""  # unknown: asked again at its next message
        return None

    @contextlib.contextmanager
    def _guard(self, topic: str) -> Iterator[None]:
        """The last resort of a callback: an exception is counted and reported, never raised.

        A raise out of a subscription callback ends rclpy's executor thread, i.e. the monitor,
        while the graph keeps running and ``vgps up`` waits for episodes it can no longer hear.
        """
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - whatever a message did, the monitor goes on
            self._warn("callback_errors", f"the monitor's {topic} callback failed: "
                                          f"{type(exc).__name__}: {_clean(str(exc))}")

    # -- results ----------------------------------------------------------------------------------
    def episodes_done(self) -> int:
        with self._lock:
            return self.tracker.episodes_done

    def summary(self) -> dict[str, Any]:
        """``{"episodes": [...], "step_latency_ms": {"p50", "p95", "n"}, "decisions": {reason:
        count} of the control steps, "idle_holds": watchdog holds with no step pending,
        "anomalies": {kind: count}}``; anomalies are the refused or flagged messages
        (``foreign_episode_events``, ``unexpected_episode_events``,
        ``unidentified_episode_events``, ``episode_step_mismatches``, ``callback_errors``)."""
        with self._lock:
            return {**self.tracker.summary(), "anomalies": dict(self.anomalies)}

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
            with contextlib.suppress(Exception):  # e.g. a closed or non-UTF-8 stdout
                self.echo(line)

    def _warn(self, kind: str, text: str) -> None:
        """Counts one anomaly of ``kind``; warns at the 1st, 10th, 100th, ... (a flood stays
        a few lines)."""
        with self._lock:
            self.anomalies[kind] += 1
            n = self.anomalies[kind]
        if n == 10 ** (len(str(n)) - 1):
            self._say(f"warning: {text} ({kind}: {n} so far)")


def _clean(text: Any, limit: int = MAX_TEXT) -> str:
    """A message's string fit to print: printable characters only, at most ``limit``."""
    out = "".join(c if c.isprintable() else "?" for c in str(text)[:limit])
    return out + "..." if len(str(text)) > limit else out


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
    return (f"  ep {max(episode, 0)} step {msg.step:4d} {_clean(msg.reason):8s} "
            f"k={msg.k} beta={msg.beta:g}{sel}{margin}{stats} | {record.latency_ms:.1f} ms")
