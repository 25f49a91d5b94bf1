"""Recorded bags -> an episode store -> the RLDS/TFDS deployment dataset (``vgps dataset build``).

Two stages, so that vgps itself never imports TensorFlow:

1. :func:`update_store` reads each bag's episodes (:mod:`vgps.flywheel.episodes`) and their
   outcomes (:mod:`vgps.flywheel.labels`: a person's label, else the simulator's verdict) into an
   episode store, ``DIR/NAME/episodes/<run_id>/<index>.npz`` plus ``DIR/NAME/index.json``.
   Episodes are keyed by id, so adding bags never duplicates one: a stored episode is skipped
   unless its outcome changed (then rewritten). Episodes labelled "skip", with an unknown outcome
   or not complete in the bag (cut) are left out and listed; a stored one that is now skipped is
   removed.
2. :func:`write_tfds` rewrites ``DIR/NAME/<version>/`` from the whole store by running the
   training tree's writer (``python -m vgps_training.deploy_dataset``) in a subprocess; it also
   writes ``vgps_dataset.json`` (counts, bags, losses, action statistics) beside the data.

Each stored episode holds, per executed decision: the camera frame as recorded, the first
executed action (after the safety filter), the source image stamp, the intervention flag, the
selection reason, the step number, Q of the chosen action and every candidate's first action with
its Q (``candidate_counts`` per step); and the instruction, task, outcome, its source and where
the episode went wrong.

Usage::

    report = build_dataset(["out/bags/run1", "out/bags/run2"], "data/rlds")
    report.summary()    # 'episodes: 5 added, 0 already present, ...'
    # -> data/rlds/vgps_deploy/1.0.0 (tfds.builder_from_directory)
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vgps.bags import BagError
from vgps.flywheel.episodes import Episode, read_episodes
from vgps.flywheel.labels import Label, episode_outcome, load_labels

__all__ = ["NAME", "STORE_FORMAT", "VERSION", "BuildReport", "build_dataset", "episode_arrays",
           "load_index", "update_store", "write_tfds"]

NAME = "vgps_deploy"
VERSION = "1.0.0"
STORE_FORMAT = "vgps-episode-store/1"
INDEX = "index.json"
WRITER = "vgps_training.deploy_dataset"


@dataclasses.dataclass
class BuildReport:
    """What one build did; every list holds episode keys unless said otherwise."""

    store: Path
    added: list[str] = dataclasses.field(default_factory=list)
    present: list[str] = dataclasses.field(default_factory=list)  # already stored, unchanged
    updated: list[str] = dataclasses.field(default_factory=list)  # outcome changed: rewritten
    removed: list[str] = dataclasses.field(default_factory=list)  # stored, now skipped
    skipped: list[str] = dataclasses.field(default_factory=list)  # "key: why" (left out)
    losses: list[str] = dataclasses.field(default_factory=list)  # "bag: what was lost"
    dataset: Path | None = None  # the TFDS version directory, once written
    rewritten: bool = False  # whether the TFDS directory was (re)written by this build

    def summary(self) -> str:
        """One line: episodes added / already present / updated / removed / skipped, losses."""
        return (f"episodes: {len(self.added)} added, {len(self.present)} already present, "
                f"{len(self.updated)} updated, {len(self.removed)} removed, "
                f"{len(self.skipped)} skipped; {len(self.losses)} losses")


def episode_arrays(episode: Episode, success: bool, source: str,
                   failed_at_step: int | None) -> dict[str, np.ndarray]:
    """The store's arrays of one episode (the ``.npz`` content).

    Returns:
        ``images`` (T, H, W, 3) uint8, ``actions``/``states`` (T, 7) float32, ``timestamps_ns``
        (T,) int64, ``interventions`` (T,) bool, ``reasons`` (T,) str, ``steps`` (T,) int64,
        ``q_selected`` (T,) float32, ``candidate_counts`` (T,) int64, ``candidate_actions``
        (sum K, 7) float32, ``candidate_q`` (sum K,) float32 (nan: not recorded), and scalars
        ``episode_id``, ``bag``, ``run_id``, ``index``, ``task``, ``instruction``, ``success``,
        ``label_source``, ``failed_at_step`` (-1: none), ``seed`` (-1), ``end_event``.

    Raises:
        ValueError: a step has no camera frame, or the frames differ in size.
    """
    steps = episode.steps
    if not steps:
        raise ValueError(f"episode {episode.key} has no executed decision")
    missing = [s.step for s in steps if s.image is None]
    if missing:
        raise ValueError(f"episode {episode.key}: no camera frame for steps {missing[:5]}")
    shapes = {s.image.shape for s in steps if s.image is not None}
    if len(shapes) != 1:
        raise ValueError(f"episode {episode.key}: camera frames of several sizes {shapes}")
    counts, cand, cand_q = [], [], []
    for s in steps:
        k = 0 if s.candidates is None else len(s.candidates)
        counts.append(k)
        if k:
            cand.append(s.candidates)
            cand_q.append(s.q_values if s.q_values is not None else np.full(k, np.nan))
    return {
        "images": np.stack([s.image for s in steps]).astype(np.uint8),
        "actions": np.stack([s.action for s in steps]).astype(np.float32),
        "states": np.zeros((len(steps), 7), np.float32),  # EE pose: not recorded on a real arm
        "timestamps_ns": np.array([s.stamp_ns for s in steps], np.int64),
        "interventions": np.array([s.intervened for s in steps], bool),
        "reasons": np.array([s.reason for s in steps], str),
        "steps": np.array([s.step for s in steps], np.int64),
        "q_selected": np.array([s.q_selected for s in steps], np.float32),
        "candidate_counts": np.array(counts, np.int64),
        "candidate_actions": (np.concatenate(cand).astype(np.float32) if cand
                              else np.zeros((0, 7), np.float32)),
        "candidate_q": (np.concatenate(cand_q).astype(np.float32) if cand_q
                        else np.zeros(0, np.float32)),
        "episode_id": np.array(episode.key), "bag": np.array(str(episode.bag)),
        "run_id": np.array(episode.run_id), "index": np.array(episode.index, np.int64),
        "task": np.array(episode.task), "instruction": np.array(episode.instruction),
        "success": np.array(bool(success)), "label_source": np.array(source),
        "failed_at_step": np.array(-1 if failed_at_step is None else failed_at_step, np.int64),
        "seed": np.array(-1, np.int64), "end_event": np.array(episode.end_event or ""),
    }


def load_index(store: str | os.PathLike) -> dict[str, Any]:
    """The store's ``index.json`` (an empty index when there is none yet).

    Raises:
        ValueError: the file exists but is not a ``vgps-episode-store/1`` index.
    """
    path = Path(store) / INDEX
    if not path.is_file():
        return {"format": STORE_FORMAT, "episodes": {}, "bags": {}, "skipped": {}}
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is unreadable: {exc}") from None
    if not isinstance(index, dict) or index.get("format") != STORE_FORMAT:
        raise ValueError(f"{path} is not an episode store index ({STORE_FORMAT})")
    for field in ("episodes", "bags", "skipped"):
        index.setdefault(field, {})
    return index


def update_store(bags: Iterable[str | os.PathLike], store: str | os.PathLike,
                 labels_file: str | os.PathLike | None = None,
                 progress: Callable[[str], None] | None = None) -> BuildReport:
    """Adds the episodes of ``bags`` to the episode store ``store`` (see the module docstring).

    Args:
        bags: bag directories (or ``.mcap`` files).
        store: the store directory (``DIR/NAME``); created when missing.
        labels_file: a labels file whose entries override each bag's own sidecar.
        progress: called with one line per bag (e.g. ``print``).

    Returns:
        What was added, already present, updated, removed, skipped and lost.

    Raises:
        FileNotFoundError: a bag or the labels file does not exist.
        ValueError: the index or a labels file is invalid.
    """
    store = Path(store)
    say = progress or (lambda line: None)
    if labels_file is not None and not Path(labels_file).is_file():
        raise FileNotFoundError(f"--labels {labels_file}: no such file")
    extra = load_labels(labels_file) if labels_file is not None else {}
    index = load_index(store)
    report = BuildReport(store)
    for bag in bags:
        bag_path = Path(bag)
        if not bag_path.exists():
            raise FileNotFoundError(f"no bag at {bag_path}")
        say(f"reading {bag_path} ...")
        try:
            read = read_episodes(bag_path, images=True)
        except BagError as exc:
            report.losses.append(f"{bag_path}: {exc}")
            say(f"  nothing readable: {exc}")
            continue
        labels = {**load_labels(bag_path if bag_path.is_dir() else bag_path.parent), **extra}
        report.losses += [f"{bag_path}: {loss}" for loss in read.losses]
        entry = index["bags"].setdefault(read.run_id, {"path": str(bag_path),
                                                       "run_id": read.run_id, "episodes": []})
        entry["losses"] = list(read.losses)
        before = (len(report.added), len(report.updated), len(report.present))
        for episode in read.episodes:
            _store_episode(store, index, report, episode, labels)
            if episode.key in index["episodes"] and episode.key not in entry["episodes"]:
                entry["episodes"].append(episode.key)
        entry["episodes"] = [k for k in entry["episodes"] if k in index["episodes"]]
        added, updated, present = (len(report.added) - before[0],
                                   len(report.updated) - before[1],
                                   len(report.present) - before[2])
        say(f"  {len(read.episodes)} episodes: {added} added, {updated} updated, "
            f"{present} already present; {len(read.losses)} losses")
    _write_json(store / INDEX, index)
    return report


def _store_episode(store: Path, index: dict[str, Any], report: BuildReport, episode: Episode,
                   labels: dict[str, Label]) -> None:
    key = episode.key
    stored = index["episodes"].get(key)
    success, source = episode_outcome(episode, labels)
    why = None
    if not episode.complete:
        why = "not complete in the bag (its start or end is missing)"
    elif success is None:
        why = "skipped by a person" if source == "skip" else "outcome unknown (label it)"
    elif not episode.steps:
        why = "no executed decision"
    elif any(s.image is None for s in episode.steps):
        why = "camera frames missing"
    if why is not None:
        report.skipped.append(f"{key}: {why}")
        index["skipped"][key] = why
        if stored is not None and source == "skip":
            (store / stored["file"]).unlink(missing_ok=True)
            del index["episodes"][key]
            report.removed.append(key)
        return
    label = labels.get(key)
    failed_at = label.failed_at_step if label is not None and source == "person" else None
    outcome = {"success": bool(success), "label_source": source, "failed_at_step": failed_at}
    index["skipped"].pop(key, None)
    if stored is not None and all(stored.get(k) == v for k, v in outcome.items()) \
            and (store / stored["file"]).is_file():
        report.present.append(key)
        return
    arrays = episode_arrays(episode, bool(success), source, failed_at)
    rel = Path("episodes") / episode.run_id / f"{episode.index:04d}.npz"
    target = store / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".episode.", suffix=".npz", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    index["episodes"][key] = {
        "file": rel.as_posix(), "bag": str(episode.bag), "run_id": episode.run_id,
        "index": episode.index, "task": episode.task, "steps": len(episode.steps),
        "interventions": int(arrays["interventions"].sum()),
        "image_shape": list(arrays["images"].shape[1:]), **outcome}
    (report.updated if stored is not None else report.added).append(key)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_tfds(store: str | os.PathLike, out: str | os.PathLike, name: str = NAME,
               version: str = VERSION, candidates: bool = False, image_size: int | None = None,
               force: bool = False, progress: Callable[[str], None] | None = None,
               ) -> tuple[Path, bool]:
    """(Re)writes ``out/name/version`` from the whole store with the training tree's writer.

    Skipped (the directory is kept) when neither the store's episodes nor the options changed
    since it was written, unless ``force``.

    Returns:
        ``(the version directory, whether it was written now)``.

    Raises:
        RuntimeError: vgps_training is not installed, or the writer failed (its output quoted).
    """
    store, out = Path(store), Path(out)
    say = progress or (lambda line: None)
    index = load_index(store)
    if not index["episodes"]:
        raise ValueError(f"the episode store {store} holds no episode: nothing to write")
    target = out / name / version
    options = {"name": name, "version": version, "candidates": bool(candidates),
               "image_size": image_size}
    fingerprint = hashlib.sha256(json.dumps([index["episodes"], options],
                                            sort_keys=True).encode()).hexdigest()
    if not force and index.get("written", {}).get(version) == fingerprint \
            and (target / "vgps_dataset.json").is_file():
        say(f"{target} is up to date")
        return target, False
    if importlib.util.find_spec("vgps_training") is None:
        raise RuntimeError("writing the TFDS dataset needs the training tree: "
                           "pip install -e training")
    command = [sys.executable, "-m", WRITER, os.fspath(store), os.fspath(out), "--name", name,
               "--version", version]
    command += ["--candidates"] if candidates else []
    command += ["--image-size", str(image_size)] if image_size else []
    say(f"writing {target} ({len(index['episodes'])} episodes) ...")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"{WRITER} failed (exit {done.returncode}):\n" + "\n".join(tail))
    index.setdefault("written", {})[version] = fingerprint
    _write_json(store / INDEX, index)
    return target, True


def build_dataset(bags: Iterable[str | os.PathLike], out: str | os.PathLike, *,
                  name: str = NAME, version: str = VERSION,
                  labels_file: str | os.PathLike | None = None, candidates: bool = False,
                  image_size: int | None = None,
                  progress: Callable[[str], None] | None = None) -> BuildReport:
    """:func:`update_store` into ``out/name`` then :func:`write_tfds` (see the module docstring).

    Raises:
        ValueError: a bad name, version or image size (named), or nothing to write.
        RuntimeError: vgps_training missing or its writer failed.
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--name {name!r} must be a plain directory name")
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"--version {version!r} must be MAJOR.MINOR.PATCH, e.g. 1.0.0")
    if image_size is not None and not 8 <= image_size <= 4096:
        raise ValueError(f"--image-size {image_size} must be in 8..4096 pixels")
    store = Path(out) / name
    report = update_store(bags, store, labels_file, progress)
    if not load_index(store)["episodes"]:
        if progress:
            progress("no episode with a known outcome yet (label them with `vgps label BAG`): "
                     "no dataset written")
        return report
    report.dataset, report.rewritten = write_tfds(store, out, name, version, candidates,
                                                  image_size, progress=progress)
    return report
