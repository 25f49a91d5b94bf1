"""Write simulated episodes (``vgps collect``) as an RLDS/TFDS dataset named ``vgps_sim``.

The layout is ``bridge_dataset``'s, so the same reader and standardiser apply, plus an episode
success label that Bridge does not need (its demonstrations all succeed):

    steps/observation/image_0   PNG uint8 (H, W, 3)   the fixed camera (lossless: the critic sees
                                                      the same pixels the simulator rendered)
    steps/observation/state     float32 (7,)          ee xyz, roll/pitch/yaw, gripper
    steps/action                float32 (7,)          the executed Bridge-convention action
    steps/language_instruction  string
    steps/is_first|is_last|is_terminal, reward, discount
    episode_metadata/{success, task, seed, episode_id}

An episode of T actions becomes T steps (observation t, action t); the frame after the last
action is dropped, as in BridgeData. ``is_terminal`` marks the last step of successful episodes
only (failed episodes end by time limit).

Usage:
    write_sim_dataset("data/episodes", "data/rlds")   # -> data/rlds/vgps_sim/1.0.0
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

NAME = "vgps_sim"
VERSION = "1.0.0"


def _features(image_shape: tuple[int, int, int]):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    f32 = np.float32
    return tfds.features.FeaturesDict({
        "steps": tfds.features.Dataset({
            "observation": tfds.features.FeaturesDict({
                "image_0": tfds.features.Image(shape=image_shape, dtype=np.uint8,
                                               encoding_format="png"),
                "state": tfds.features.Tensor(shape=(7,), dtype=f32),
            }),
            "action": tfds.features.Tensor(shape=(7,), dtype=f32),
            "language_instruction": tfds.features.Tensor(shape=(), dtype=tf.string),
            "reward": tfds.features.Scalar(dtype=f32),
            "discount": tfds.features.Scalar(dtype=f32),
            "is_first": tfds.features.Scalar(dtype=np.bool_),
            "is_last": tfds.features.Scalar(dtype=np.bool_),
            "is_terminal": tfds.features.Scalar(dtype=np.bool_),
        }),
        "episode_metadata": tfds.features.FeaturesDict({
            "success": tfds.features.Scalar(dtype=np.bool_),
            "task": tfds.features.Tensor(shape=(), dtype=tf.string),
            "seed": tfds.features.Scalar(dtype=np.int64),
            "episode_id": tfds.features.Tensor(shape=(), dtype=tf.string),
        }),
    })


def load_episode(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check one ``vgps collect`` episode file."""
    with np.load(path, allow_pickle=False) as data:
        episode = {k: data[k] for k in data.files}
    missing = {"images", "states", "actions", "instruction", "success"} - set(episode)
    if missing:
        raise ValueError(f"{path}: not a vgps episode, missing {sorted(missing)}")
    t = len(episode["actions"])
    if t < 1 or len(episode["images"]) < t or len(episode["states"]) < t:
        raise ValueError(f"{path}: {t} actions but {len(episode['images'])} images and "
                         f"{len(episode['states'])} states")
    if episode["actions"].shape[1:] != (7,) or not np.all(np.isfinite(episode["actions"])):
        raise ValueError(f"{path}: actions must be finite (T, 7)")
    return episode


def _example(episode: dict[str, Any], episode_id: str) -> dict[str, Any]:
    t = len(episode["actions"])
    success = bool(episode["success"])
    instruction = str(episode["instruction"])
    steps = []
    for i in range(t):
        last = i == t - 1
        steps.append({
            "observation": {"image_0": episode["images"][i],
                            "state": episode["states"][i].astype(np.float32)},
            "action": episode["actions"][i].astype(np.float32),
            "language_instruction": instruction,
            "reward": np.float32(1.0 if (last and success) else 0.0),
            "discount": np.float32(1.0),
            "is_first": i == 0,
            "is_last": last,
            "is_terminal": last and success,
        })
    return {"steps": steps,
            "episode_metadata": {"success": success, "task": str(episode.get("task", "")),
                                 "seed": int(episode.get("seed", -1)),
                                 "episode_id": episode_id}}


def write_sim_dataset(episodes_dir: str | os.PathLike, data_dir: str | os.PathLike,
                      version: str = VERSION) -> Path:
    """Convert every ``*.npz`` episode under ``episodes_dir`` into ``<data_dir>/vgps_sim/<v>``.

    Returns:
        The dataset version directory (readable with ``tfds.builder_from_directory``).
    """
    import tensorflow_datasets as tfds

    files = sorted(Path(episodes_dir).rglob("*.npz"))
    if not files:
        raise FileNotFoundError(f"no episode files (*.npz) under {episodes_dir}")
    first = load_episode(files[0])
    shape = tuple(int(s) for s in first["images"].shape[1:])
    target = Path(data_dir) / NAME / version
    if target.exists():
        raise FileExistsError(f"{target} exists; remove it or choose another --version")

    def examples() -> Iterator[tuple[str, dict[str, Any]]]:
        for path in files:
            episode = load_episode(path)
            if tuple(episode["images"].shape[1:]) != shape:
                raise ValueError(f"{path}: images {episode['images'].shape[1:]} differ from "
                                 f"the first episode's {shape}")
            episode_id = str(path.relative_to(episodes_dir).with_suffix(""))
            yield episode_id, _example(episode, episode_id)

    tfds.dataset_builders.store_as_tfds_dataset(
        name=NAME, version=version, features=_features(shape),
        split_datasets={"train": examples()}, data_dir=os.fspath(data_dir),
        description="Simulated WidowX 250 episodes (vgps MuJoCo scene) with success labels.",
        disable_shuffling=False)
    summary = _summary(files)
    (target / "vgps_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return target


def _summary(files: list[Path]) -> dict[str, Any]:
    per_task: dict[str, dict[str, int]] = {}
    for path in files:
        with np.load(path, allow_pickle=False) as data:
            task = str(data["task"]) if "task" in data.files else ""
            row = per_task.setdefault(task, {"episodes": 0, "successes": 0, "steps": 0})
            row["episodes"] += 1
            row["successes"] += int(bool(data["success"]))
            row["steps"] += len(data["actions"])
    return {"episodes": len(files), "per_task": per_task}
