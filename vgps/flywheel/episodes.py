"""The episodes of a ``vgps up --record`` bag, decision by decision.

An episode runs from its ``started`` to its ``succeeded``/``failed``/``timeout`` event on
``/vgps/episode``. Its steps are the *executed* decisions (``/vgps/selected`` with reason argmax,
softmax, fallback or intervention; holds, rejections and e-stops moved nothing) published while it
was open, each with what the bag holds about it, matched by the decision's source image stamp:
the camera frame of exactly that stamp, the executed actions (after the safety filter), the
candidates' first actions and their Q (``/vgps/scored``, else ``/vgps/candidates`` without Q) and
the newest joint positions stamped at or before the frame.

Episodes are keyed ``"<run_id>/<episode index, 4 digits>"``: the run id ``vgps up --record``
stores in ``metadata.yaml`` (``vgps.run_id``), else, for older bags, one derived from the bag
directory's name and its first message time. Damaged or cut bags are read as far as the bag
reader recovers them; an episode whose start or end is not in the bag has ``complete = False``,
and ``BagEpisodes.losses`` says, in words, what could not be recovered. Reading needs rclpy (the
messages are deserialised with it); importing this module does not.

Usage::

    bag = read_episodes("out/bags/run1")            # images=False: no camera frames
    bag.run_id, bag.losses
    for ep in bag.episodes:
        ep.key, ep.task, ep.success, ep.complete, len(ep.steps)
        ep.steps[0].image.shape, ep.steps[0].action   # (H, W, 3) uint8, (7,) float32
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["END_EVENTS", "EXECUTED", "BagEpisodes", "Episode", "EpisodeStep", "episode_key",
           "read_episodes"]

EXECUTED = ("argmax", "softmax", "fallback", "intervention")  # decisions that moved the arm
END_EVENTS = ("succeeded", "failed", "timeout")
SCORED, CANDIDATES, SELECTED = "/vgps/scored", "/vgps/candidates", "/vgps/selected"
EPISODE, JOINTS, CAMERA = "/vgps/episode", "/joint_states", "/camera/image_raw"


@dataclasses.dataclass
class EpisodeStep:
    """One executed decision and what the bag holds about it."""

    step: int  # SelectedAction.step
    stamp_ns: int  # the decision's source image stamp
    image: np.ndarray | None  # (H, W, 3) uint8 camera frame of the decision (None: not read/lost)
    actions: np.ndarray  # (n, 7) float32 executed actions (after the safety filter)
    reason: str  # argmax | softmax | fallback | intervention
    intervened: bool  # reason == "intervention"
    index: int  # chosen candidate (-1 for an intervention)
    q_selected: float  # SelectedAction.q_value (nan when none)
    candidates: np.ndarray | None  # (K, 7) float32 first action of each candidate chunk
    q_values: np.ndarray | None  # (K,) float32 as recorded
    joints: np.ndarray | None  # (J,) float32 joint positions at the frame

    @property
    def action(self) -> np.ndarray:
        """(7,) float32: the first executed action of the decision."""
        return self.actions[0]


@dataclasses.dataclass
class Episode:
    """One episode of a bag; ``key`` is unique across bags."""

    key: str  # "<run_id>/<episode index, 4 digits>"
    bag: Path
    run_id: str
    index: int  # EpisodeStatus.episode
    task: str
    instruction: str
    end_event: str | None  # succeeded | failed | timeout | None (the bag ends before)
    success: bool | None  # what the robot knows (sim), None when it does not
    steps: list[EpisodeStep]  # executed decisions only
    complete: bool  # both its start and its end are in the bag


@dataclasses.dataclass
class BagEpisodes:
    """The episodes of one bag and what could not be recovered from it."""

    bag: Path
    run_id: str
    episodes: list[Episode]
    losses: list[str]  # human-readable: what could not be recovered (cut bag, ...)


def episode_key(run_id: str, index: int) -> str:
    """``"<run_id>/<index, 4 digits>"``, the key of an episode across bags."""
    return f"{run_id}/{int(index):04d}"


def read_episodes(bag: str | os.PathLike, images: bool = True) -> BagEpisodes:
    """Reads the episodes of a bag (directory or ``.mcap`` file); see the module docstring.

    Args:
        bag: the bag directory (or one of its ``.mcap`` files).
        images: read the camera frame of each decision (False: ``EpisodeStep.image`` is None).

    Returns:
        The bag's episodes in the order they started, and its losses.

    Raises:
        vgps.bags.BagError: nothing at all is readable at ``bag``.
    """
    from vgps.bags import BagReader

    path = Path(bag)
    reader = BagReader(path)
    losses: list[str] = []
    run_id, robot = _run_info(path, reader, losses)
    robot_knows = robot is not None and robot != "real"
    builder = _Builder(path, run_id, robot_knows)
    items = sorted(reader.messages([SCORED, CANDIDATES, SELECTED, EPISODE, JOINTS]),
                   key=lambda m: m.log_time_ns)
    for item in items:
        builder.add(item.topic, item.message)
    episodes = builder.finish(losses)
    if images:
        _attach_images(reader, episodes, losses)
    losses[:0] = list(dict.fromkeys(reader.problems))
    return BagEpisodes(path, run_id, episodes, losses)


def _run_info(path: Path, reader: Any, losses: list[str]) -> tuple[str, str | None]:
    """The run id (recorded, else derived) and the robot kind (None when not recorded)."""
    from vgps.replay.recorded import load_run_info

    try:
        info = load_run_info(path)
    except ValueError as exc:
        losses.append(f"run information unreadable: {exc}")
        info = None
    arguments = (info or {}).get("arguments") or {}
    run_id = str(arguments.get("run_id") or "").strip()
    robot = arguments.get("robot")
    if not run_id:
        starts = [c.start_time for s in reader.scans for c in s.chunks]
        starts += [m.log_time for s in reader.scans for m in s.loose]
        first = min(starts) if starts else 0
        name = (path if path.is_dir() else path.parent).resolve().name
        run_id = hashlib.sha1(f"{name}:{first}".encode()).hexdigest()[:32]
    return run_id, (str(robot) if robot is not None else None)


@dataclasses.dataclass
class _Open:
    episode: Episode
    started: bool


class _Builder:
    """Segments the time-ordered messages into episodes and pairs decisions by stamp."""

    def __init__(self, bag: Path, run_id: str, robot_knows: bool):
        self.bag, self.run_id, self.robot_knows = bag, run_id, robot_knows
        self.episodes: list[Episode] = []
        self.open: _Open | None = None
        self.scored: dict[int, Any] = {}
        self.candidates: dict[int, Any] = {}
        self.joints: list[tuple[int, np.ndarray]] = []
        self.pending: list[tuple[Episode, Any]] = []  # (episode, SelectedAction)
        self.outside = 0
        self.incomplete: list[str] = []
        self.ended: set[int] = set()  # episode indices already closed

    def add(self, topic: str, msg: Any) -> None:
        from vgps_ros.conversions import stamp_to_ns

        if topic == EPISODE:
            self._event(msg)
        elif topic == SCORED:
            self.scored.setdefault(stamp_to_ns(msg.header.stamp), msg)
        elif topic == CANDIDATES:
            self.candidates.setdefault(stamp_to_ns(msg.header.stamp), msg)
        elif topic == JOINTS:
            self.joints.append((stamp_to_ns(msg.header.stamp),
                                np.asarray(msg.position, np.float32)))
        elif topic == SELECTED and msg.reason in EXECUTED:
            if self.open is None:
                self.outside += 1
            else:
                self.pending.append((self.open.episode, msg))

    def _event(self, msg: Any) -> None:
        index, event = int(msg.episode), str(msg.event)
        if index in self.ended:
            return  # a late or repeated status of an episode that has ended
        current = self.open
        if current is not None and current.episode.index != index:
            self._close(None)  # a new episode began before this one's end reached the bag
            current = None
        if current is None:
            episode = Episode(episode_key(self.run_id, index), self.bag, self.run_id, index,
                              str(msg.task), str(msg.instruction), None, None, [], False)
            self.episodes.append(episode)
            current = self.open = _Open(episode, started=event == "started")
            if not current.started:
                self.incomplete.append(f"episode {index}: its start is not in the bag "
                                       "(the bag begins during it or that part is lost)")
        if event in END_EVENTS:
            self._close(msg)

    def _close(self, end: Any) -> None:
        if self.open is None:
            return
        episode = self.open.episode
        self.ended.add(episode.index)
        if end is None:
            self.incomplete.append(f"episode {episode.index}: its end is not in the bag "
                                   "(cut bag or lost messages); left incomplete")
        else:
            episode.end_event = str(end.event)
            if end.event == "succeeded":
                episode.success = True
            elif self.robot_knows:
                episode.success = bool(end.success)
            episode.complete = self.open.started
        self.open = None

    def finish(self, losses: list[str]) -> list[Episode]:
        from vgps_ros.conversions import stamp_to_ns

        if self.open is not None:
            self._close(None)
        self.joints.sort(key=lambda pair: pair[0])
        joint_stamps = [s for s, _ in self.joints]
        unscored = malformed = 0
        for episode, msg in self.pending:
            stamp = stamp_to_ns(msg.header.stamp)
            flat, dim = np.asarray(msg.actions, np.float32), int(msg.action_dim) or 7
            if flat.size == 0 or flat.size % dim:
                malformed += flat.size > 0  # an empty one executed nothing after all
                continue
            actions = flat.reshape(-1, dim)
            candidates, q_values = self._candidates(stamp)
            unscored += candidates is None
            before = bisect.bisect_right(joint_stamps, stamp)
            episode.steps.append(EpisodeStep(
                step=int(msg.step), stamp_ns=stamp, image=None, actions=actions,
                reason=str(msg.reason), intervened=msg.reason == "intervention",
                index=int(msg.index), q_selected=float(msg.q_value), candidates=candidates,
                q_values=q_values, joints=self.joints[before - 1][1] if before else None))
        losses += self.incomplete
        if self.outside:
            losses.append(f"{self.outside} executed decisions outside any episode left out")
        if malformed:
            losses.append(f"{malformed} decisions whose actions do not fit action_dim left out")
        if unscored:
            losses.append(f"{unscored} decisions have no recorded candidates")
        return self.episodes

    def _candidates(self, stamp: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        scored = self.scored.get(stamp)
        cands = scored.candidates if scored is not None else self.candidates.get(stamp)
        if cands is None:
            return None, None
        k, horizon, dim = int(cands.k), int(cands.horizon), int(cands.action_dim)
        flat = np.asarray(cands.actions, np.float32)
        if k * horizon * dim != flat.size or k == 0:
            return None, None
        first = flat.reshape(k, horizon, dim)[:, 0].copy()
        if scored is None:
            return first, None
        q = np.asarray(scored.q_values, np.float32)
        return first, (q if q.shape == (k,) else None)


def _attach_images(reader: Any, episodes: list[Episode], losses: list[str]) -> None:
    """Sets each step's image to the camera frame of exactly its stamp."""
    from vgps_ros.conversions import image_from_msg, stamp_to_ns
    from vgps_ros.input_guard import MessageError

    wanted: dict[int, list[EpisodeStep]] = {}
    for episode in episodes:
        for step in episode.steps:
            wanted.setdefault(step.stamp_ns, []).append(step)
    bad = 0
    for item in reader.messages([CAMERA]):
        steps = wanted.get(stamp_to_ns(item.message.header.stamp))
        if not steps or steps[0].image is not None:
            continue
        try:
            image = image_from_msg(item.message)
        except MessageError:
            bad += 1
            continue
        for step in steps:
            step.image = image
    missing = sum(len(s) for s in wanted.values() if s[0].image is None)
    if missing:
        what = f" ({bad} frames not convertible)" if bad else ""
        losses.append(f"{missing} decisions have no camera frame in the bag{what}")
