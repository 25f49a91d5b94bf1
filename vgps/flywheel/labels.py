"""A person's outcome labels for the episodes of a bag, in a sidecar file beside it.

Bags are never modified: the labels of ``out/bags/run1`` live in ``out/bags/run1.labels.json``::

    {"format": "vgps-labels/1", "bag": "run1",
     "episodes": {"<run_id>/0000": {"outcome": "success", "failed_at_step": null,
                                    "labelled_at": "2026-01-02T03:04:05+00:00"}}}

``outcome`` is one of :data:`OUTCOMES`; ``failed_at_step`` (failures only, optional) is the
``EpisodeStep.step`` where it went wrong. Writing is atomic (a temporary file renamed over the
old one) and keeps every other episode's label. :func:`episode_outcome` decides what an episode's
outcome is: a person's label wins, else what the robot knows (simulation).

Usage::

    save_label("out/bags/run1", episode.key, Label("failure", failed_at_step=42))
    labels = load_labels("out/bags/run1")            # {key: Label}; {} without a sidecar
    success, source = episode_outcome(episode, labels)   # (False, "person")
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vgps.flywheel.episodes import Episode

__all__ = ["FORMAT", "OUTCOMES", "SUFFIX", "Label", "LabelError", "episode_outcome",
           "labels_path", "load_labels", "save_label"]

FORMAT = "vgps-labels/1"
OUTCOMES = ("success", "failure", "skip")
SUFFIX = ".labels.json"


class LabelError(ValueError):
    """A label or a labels file is not valid; the message names the bad value."""


@dataclasses.dataclass(frozen=True)
class Label:
    """A person's verdict on one episode."""

    outcome: str  # success | failure | skip
    failed_at_step: int | None = None  # the step where it went wrong (failures only)
    labelled_at: str = ""  # ISO-8601; save_label fills it in when empty

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise LabelError(f"outcome={self.outcome!r} is not one of {list(OUTCOMES)}")
        step = self.failed_at_step
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise LabelError(f"failed_at_step={step!r} must be a step number >= 0 or None")
            if self.outcome != "failure":
                raise LabelError(f"failed_at_step={step} given for outcome {self.outcome!r}: "
                                 "only a failure has a step where it went wrong")
        if not isinstance(self.labelled_at, str):
            raise LabelError(f"labelled_at={self.labelled_at!r} must be an ISO-8601 string")

    def to_json(self) -> dict[str, Any]:
        """The sidecar's entry for this label."""
        return {"outcome": self.outcome, "failed_at_step": self.failed_at_step,
                "labelled_at": self.labelled_at}


def labels_path(bag: str | os.PathLike) -> Path:
    """The sidecar of a bag directory: ``<bag>.labels.json`` beside it (a path already ending in
    ``.labels.json`` is returned as it is)."""
    path = Path(bag)
    if not path.name:
        path = path.resolve()
    if path.name.endswith(SUFFIX):
        return path
    return path.parent / (path.name + SUFFIX)


def load_labels(path_or_bag: str | os.PathLike) -> dict[str, Label]:
    """The labels of a bag (or of a labels ``.json`` file): ``{episode key: Label}``; {} when
    absent.

    Raises:
        LabelError: the file exists but is not a valid ``vgps-labels/1`` file.
    """
    path = Path(path_or_bag)
    if not (path.suffix == ".json" and path.is_file()):
        path = labels_path(path)  # a bag: its sidecar
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelError(f"{path} is unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise LabelError(f"{path}: format {found!r} is not {FORMAT!r}")
    episodes = data.get("episodes")
    if not isinstance(episodes, dict):
        raise LabelError(f"{path}: 'episodes' must be a mapping of episode key -> label")
    labels: dict[str, Label] = {}
    for key, entry in episodes.items():
        if not isinstance(entry, dict):
            raise LabelError(f"{path}: the label of {key!r} is not a mapping: {entry!r}")
        try:
            labels[str(key)] = Label(entry.get("outcome"), entry.get("failed_at_step"),
                                     entry.get("labelled_at") or "")
        except LabelError as exc:
            raise LabelError(f"{path}: episode {key!r}: {exc}") from None
    return labels


def save_label(bag: str | os.PathLike, key: str, label: Label) -> Path:
    """Writes (or replaces) the label of one episode, keeping the others; atomic.

    Args:
        bag: the bag directory (or its sidecar path).
        key: the episode key (``Episode.key``).
        label: the verdict; an empty ``labelled_at`` is set to now (UTC).

    Returns:
        The sidecar's path.

    Raises:
        LabelError: the key is empty, or the existing sidecar is not valid (it is left alone).
    """
    if not isinstance(key, str) or not key.strip():
        raise LabelError(f"episode key {key!r} must be a non-empty string")
    if not isinstance(label, Label):
        raise LabelError(f"label must be a Label, not {type(label).__name__}")
    path = labels_path(bag)
    labels = load_labels(path)
    if not label.labelled_at:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        label = dataclasses.replace(label, labelled_at=now)
    labels[key] = label
    bag_name = path.name.removesuffix(SUFFIX)
    data = {"format": FORMAT, "bag": bag_name,
            "episodes": {k: v.to_json() for k, v in sorted(labels.items())}}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def episode_outcome(episode: Episode, labels: Mapping[str, Label]) -> tuple[bool | None, str]:
    """An episode's outcome and who says so.

    Returns:
        ``(success, source)``: a person's label wins (``"person"``); else what the robot knows,
        i.e. the simulator's verdict (``"robot"``); ``(None, "skip")`` when a person skipped it;
        ``(None, "none")`` when nobody knows.
    """
    label = labels.get(episode.key)
    if label is not None:
        if label.outcome == "skip":
            return None, "skip"
        return label.outcome == "success", "person"
    if episode.success is not None:
        return bool(episode.success), "robot"
    return None, "none"
