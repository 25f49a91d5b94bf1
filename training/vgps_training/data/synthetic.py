"""A tiny synthetic dataset in the exact RLDS schema of ``fractal20220817_data`` (RT-1).

No public Fractal sample is small enough to ship, so tests (and docs) write a few episodes with
the real feature names, shapes and dtypes -- 256x320x3 JPEG ``image``, ``natural_language_*``,
``base_pose_tool_reached``, ``gripper_closed`` and the six ``action`` fields with the relative
``gripper_closedness_action`` (+1 close, -1 open, 0 no change) -- as a real TFDS dataset directory
(``tfds.dataset_builders.store_as_tfds_dataset``) that ``tfds.builder_from_directory`` reads. The
real dataset has further observation fields the standardiser ignores; they are left out.

Usage::

    path = write_synthetic_fractal(tmp_dir, num_episodes=8)
    builder = tfds.builder_from_directory(path)   # .../fractal20220817_data/0.1.0
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

FRACTAL_NAME = "fractal20220817_data"
FRACTAL_VERSION = "0.1.0"
FRACTAL_IMAGE_SHAPE = (256, 320, 3)
INSTRUCTIONS = ("pick coke can", "move blue chip bag near apple", "open top drawer",
                "place sponge into bowl")


def fractal_features(image_shape: tuple[int, int, int] = FRACTAL_IMAGE_SHAPE
                     ) -> tfds.features.FeaturesDict:
    """The ``fractal20220817_data`` step features (the subset the facts list), RLDS layout."""
    f32 = np.float32
    return tfds.features.FeaturesDict({
        "steps": tfds.features.Dataset({
            "observation": tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=image_shape, dtype=np.uint8,
                                             encoding_format="jpeg"),
                "natural_language_instruction": tfds.features.Tensor(shape=(), dtype=tf.string),
                "natural_language_embedding": tfds.features.Tensor(shape=(512,), dtype=f32),
                "base_pose_tool_reached": tfds.features.Tensor(shape=(7,), dtype=f32),
                "gripper_closed": tfds.features.Tensor(shape=(1,), dtype=f32),
            }),
            "action": tfds.features.FeaturesDict({
                "world_vector": tfds.features.Tensor(shape=(3,), dtype=f32),
                "rotation_delta": tfds.features.Tensor(shape=(3,), dtype=f32),
                "gripper_closedness_action": tfds.features.Tensor(shape=(1,), dtype=f32),
                "terminate_episode": tfds.features.Tensor(shape=(3,), dtype=np.int32),
                "base_displacement_vector": tfds.features.Tensor(shape=(2,), dtype=f32),
                "base_displacement_vertical_rotation": tfds.features.Tensor(shape=(1,),
                                                                            dtype=f32),
            }),
            "reward": tfds.features.Scalar(dtype=f32),
            "discount": tfds.features.Scalar(dtype=f32),
            "is_first": tfds.features.Scalar(dtype=np.bool_),
            "is_last": tfds.features.Scalar(dtype=np.bool_),
            "is_terminal": tfds.features.Scalar(dtype=np.bool_),
        }),
    })


def _episode(rng: np.random.Generator, index: int, length: int,
             image_shape: tuple[int, int, int]) -> dict[str, Any]:
    """One episode: a square moving over a tinted background, close then reopen the gripper."""
    h, w, _ = image_shape
    instruction = INSTRUCTIONS[index % len(INSTRUCTIONS)]
    embedding = rng.standard_normal(512).astype(np.float32)
    pose = np.concatenate([rng.uniform(-0.3, 0.3, 3), [1.0, 0.0, 0.0, 0.0]]).astype(np.float32)
    close_at = int(rng.integers(1, max(2, length - 2)))
    open_at = min(length - 1, close_at + int(rng.integers(2, 4)))
    background = rng.integers(40, 200, 3)
    steps = []
    for t in range(length):
        world = rng.normal(0.0, 0.05, 3).astype(np.float32)
        rotation = rng.normal(0.0, 0.1, 3).astype(np.float32)
        command = 1.0 if t == close_at else (-1.0 if t == open_at else 0.0)
        closed = float(close_at <= t < open_at)
        image = np.empty((h, w, 3), np.uint8)
        image[:] = background
        y, x = (h // 4 + 2 * t) % (h - 8), (w // 4 + 3 * t + 5 * index) % (w - 8)
        image[y:y + h // 8, x:x + w // 8] = (255, 40 * (index % 6), 0)
        last = t == length - 1
        steps.append({
            "observation": {
                "image": image,
                "natural_language_instruction": instruction,
                "natural_language_embedding": embedding,
                "base_pose_tool_reached": pose.copy(),
                "gripper_closed": np.array([closed], np.float32),
            },
            "action": {
                "world_vector": world,
                "rotation_delta": rotation,
                "gripper_closedness_action": np.array([command], np.float32),
                "terminate_episode": np.array([1, 0, 0] if last else [0, 1, 0], np.int32),
                "base_displacement_vector": np.zeros(2, np.float32),
                "base_displacement_vertical_rotation": np.zeros(1, np.float32),
            },
            "reward": np.float32(1.0 if last else 0.0),
            "discount": np.float32(1.0),
            "is_first": t == 0,
            "is_last": last,
            "is_terminal": last,
        })
        pose[:3] += world
    return {"steps": steps}


def write_synthetic_fractal(data_dir: str | os.PathLike[str], num_episodes: int = 8,
                            min_length: int = 6, max_length: int = 12, seed: int = 0,
                            image_shape: tuple[int, int, int] = FRACTAL_IMAGE_SHAPE) -> Path:
    """Writes a synthetic ``fractal20220817_data`` TFDS dataset (one ``train`` split).

    Args:
        data_dir: parent folder; the dataset goes to ``<data_dir>/fractal20220817_data/0.1.0``.
        num_episodes: number of episodes.
        min_length: shortest episode (steps).
        max_length: longest episode (steps).
        seed: content seed (same seed, same data).
        image_shape: JPEG image shape; the real dataset's (256, 320, 3) by default.

    Returns:
        The version directory, for ``tfds.builder_from_directory``.
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes={num_episodes!r}: must be >= 1")
    if not 2 <= min_length <= max_length:
        raise ValueError(f"min_length={min_length!r}, max_length={max_length!r}: "
                         "need 2 <= min_length <= max_length")
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, max_length + 1, num_episodes)

    def examples() -> Iterator[tuple[str, dict[str, Any]]]:
        for i, length in enumerate(lengths):
            yield f"episode_{i:05d}", _episode(rng, i, int(length), image_shape)

    tfds.dataset_builders.store_as_tfds_dataset(
        name=FRACTAL_NAME, version=FRACTAL_VERSION, features=fractal_features(image_shape),
        split_datasets={"train": examples()}, data_dir=os.fspath(data_dir),
        description="Synthetic episodes in the fractal20220817_data (RT-1) RLDS schema.",
        disable_shuffling=False)
    return Path(data_dir) / FRACTAL_NAME / FRACTAL_VERSION
