"""What a ``vgps up --record`` bag holds about each control step, read for replay.

Pass 1 of a replay (no camera frames): every ``/vgps/scored`` message with the ``/vgps/selected``
decision for its stamp, the selector's beta then, the newest ``/joint_states`` stamped at or
before the frame and the episode it belongs to (``/vgps/episode``); plus the run information
``vgps up --record`` keeps in the bag's ``metadata.yaml`` and the critic it names.

Usage::

    from vgps.bags import BagReader
    reader = BagReader("out/bags/run1")
    steps, episodes, duplicates = collect_steps(reader)
    run_info = load_run_info("out/bags/run1")
    critic_path, explicit = resolve_critic("out/bags/run1", None, run_info)
"""

from __future__ import annotations

import bisect
import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CAMERA", "DECIDED", "EPISODE", "JOINTS", "RUN_INFO", "SCORED", "SELECTED",
           "RecordedStep", "collect_steps", "load_run_info", "resolve_critic"]

RUN_INFO = "metadata.yaml"  # its custom_data names the run's critic (vgps up --record)
DECIDED = ("argmax", "softmax")  # recorded reasons that are a choice among scored candidates
SCORED, SELECTED, CAMERA = "/vgps/scored", "/vgps/selected", "/camera/image_raw"
EPISODE, JOINTS = "/vgps/episode", "/joint_states"


@dataclasses.dataclass
class RecordedStep:
    """One recorded step's messages (matched by the source image stamp)."""

    stamp_ns: int
    log_time_ns: int
    scored: Any  # vgps_interfaces/ScoredCandidates
    episode: int | None
    selected: Any = None  # the executed decision for this stamp (or another one, or None)
    beta: float = 0.0  # the selector's beta then (the decision's, else the latest before)
    joints: Any = None  # the newest JointState stamped at or before the frame


def load_run_info(bag: str | os.PathLike) -> dict[str, Any] | None:
    """What ``vgps up --record`` stored about the run in the bag's ``metadata.yaml``
    (``custom_data``: ``vgps.critic``, ``vgps.robot``, ...), as ``{"critic": PATH, "arguments":
    {"robot": ...}}``; None when the bag (directory, or a bare ``.mcap`` file's directory) has no
    ``metadata.yaml``.

    Raises:
        ValueError: ``metadata.yaml`` exists but is unreadable.
    """
    path = Path(bag)
    path = (path if path.is_dir() else path.parent) / RUN_INFO
    if not path.is_file():
        return None
    try:
        info = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        custom = (info.get("rosbag2_bagfile_information") or {}).get("custom_data") or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); pass --critic explicitly") from None
    if not isinstance(custom, dict):
        raise ValueError(f"{path}: custom_data is not a mapping; pass --critic explicitly")
    arguments = {k.removeprefix("vgps."): v for k, v in custom.items()
                 if k.startswith("vgps.") and k != "vgps.critic"}
    return {"critic": custom.get("vgps.critic"), "arguments": arguments}


def resolve_critic(bag: str | os.PathLike, critic: str | os.PathLike | None,
                   run_info: dict[str, Any] | None,
                   recorded_ids: list[str] | None = None) -> tuple[Path, bool]:
    """The critic checkpoint to replay with and whether it was given explicitly.

    Without ``critic``, the ``"critic"`` of ``metadata.yaml`` (relative paths: to the working
    directory, else to the bag directory). ``recorded_ids`` (the bag's ``critic_id`` s) only
    make the error message more helpful.

    Raises:
        ValueError: no critic given and none recorded in ``metadata.yaml``.
    """
    if critic is not None:
        return Path(critic), True
    bag_dir = Path(bag) if Path(bag).is_dir() else Path(bag).parent
    recorded = (run_info or {}).get("critic")
    if not recorded or not isinstance(recorded, str):
        why = (f"{bag_dir / RUN_INFO} does not exist" if run_info is None
               else f"{bag_dir / RUN_INFO} names no critic (custom_data vgps.critic)")
        live = f" ({', '.join(recorded_ids)})" if recorded_ids else ""
        raise ValueError(f"which critic? {why}; pass --critic PATH (the checkpoint that was "
                         f"live{live}, or another one to compare against)")
    path = Path(recorded).expanduser()
    if not path.is_absolute() and not path.exists() and (bag_dir / path).exists():
        path = bag_dir / path
    return path, False


def collect_steps(reader: Any) -> tuple[list[RecordedStep], dict[int, dict[str, Any]], int]:
    """Pass 1 (no frames): every ScoredCandidates with its decision and joints, the episodes.

    Args:
        reader: a :class:`vgps.bags.BagReader` of the bag.

    Returns:
        ``(steps in log-time order, {episode: info}, number of duplicate scored stamps)``;
        an episode's info holds ``episode``, ``task``, ``instruction`` and, from its latest
        EpisodeStatus, ``last_event``, ``success`` and ``steps``.
    """
    from vgps_ros.conversions import stamp_to_ns

    steps: dict[int, RecordedStep] = {}
    selected: dict[int, list[Any]] = {}
    joints: list[tuple[int, Any]] = []
    episodes: dict[int, dict[str, Any]] = {}
    duplicates = 0
    current: int | None = None
    items = sorted(reader.messages([SCORED, SELECTED, EPISODE, JOINTS]),
                   key=lambda m: m.log_time_ns)
    for item in items:
        msg = item.message
        if item.topic == EPISODE:
            current = int(msg.episode)
            ep = episodes.setdefault(current, {"episode": current, "task": msg.task,
                                               "instruction": msg.instruction})
            ep.update(last_event=msg.event, success=bool(msg.success), steps=int(msg.step))
        elif item.topic == SCORED:
            stamp = stamp_to_ns(msg.header.stamp)
            if stamp in steps:
                duplicates += 1
            else:
                steps[stamp] = RecordedStep(stamp, item.log_time_ns, msg, current)
        elif item.topic == SELECTED:
            selected.setdefault(stamp_to_ns(msg.header.stamp), []).append(msg)
        elif item.topic == JOINTS:
            joints.append((stamp_to_ns(msg.header.stamp), msg))
    joints.sort(key=lambda pair: pair[0])
    joint_stamps = [s for s, _ in joints]
    ordered = sorted(steps.values(), key=lambda s: s.log_time_ns)
    beta = 0.0
    for step in ordered:
        decisions = selected.get(step.stamp_ns, [])
        decided = [d for d in decisions if d.reason in DECIDED]
        step.selected = (decided or decisions or [None])[0]
        beta = float(step.selected.beta) if step.selected is not None else beta
        step.beta = beta
        before = bisect.bisect_right(joint_stamps, step.stamp_ns)  # the arm has not moved since
        step.joints = joints[before - 1][1] if before else None
    return ordered, episodes, duplicates
