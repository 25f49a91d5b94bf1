"""Fixtures of the training tests: a tiny dataset in the deployment (``vgps_deploy``) layout.

The deployment layout is ``vgps_sim``'s features plus per-step ``is_intervention``,
``timestamp_ns``, ``selection_reason``, ``candidate_actions`` (None, 7), ``candidate_q`` (None,)
and episode ``bag``, ``label_source``, ``failed_at_step``; it is written here with TFDS directly,
independent of the writer in ``vgps_training.deploy_dataset``.

Usage (in a test)::

    def test_x(deploy_layout, tmp_path):
        path = deploy_layout.write(tmp_path, [("run1/0000", True), ("run1/0001", False)])
"""

from __future__ import annotations

import json
import os
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tests only: before TensorFlow loads


def deploy_features(image_size: int) -> Any:
    import tensorflow as tf
    import tensorflow_datasets as tfds

    f32, text = np.float32, tfds.features.Tensor(shape=(), dtype=tf.string)
    return tfds.features.FeaturesDict({
        "steps": tfds.features.Dataset({
            "observation": tfds.features.FeaturesDict({
                "image_0": tfds.features.Image(shape=(image_size, image_size, 3),
                                               dtype=np.uint8, encoding_format="png"),
                "state": tfds.features.Tensor(shape=(7,), dtype=f32),
            }),
            "action": tfds.features.Tensor(shape=(7,), dtype=f32),
            "language_instruction": text,
            "reward": tfds.features.Scalar(dtype=f32),
            "discount": tfds.features.Scalar(dtype=f32),
            "is_first": tfds.features.Scalar(dtype=np.bool_),
            "is_last": tfds.features.Scalar(dtype=np.bool_),
            "is_terminal": tfds.features.Scalar(dtype=np.bool_),
            "is_intervention": tfds.features.Scalar(dtype=np.bool_),
            "timestamp_ns": tfds.features.Scalar(dtype=np.int64),
            "selection_reason": text,
            # variable-length tensors inside steps must be encoded to be readable by TFDS
            "candidate_actions": tfds.features.Tensor(shape=(None, 7), dtype=f32,
                                                      encoding="zlib"),
            "candidate_q": tfds.features.Tensor(shape=(None,), dtype=f32, encoding="zlib"),
        }),
        "episode_metadata": tfds.features.FeaturesDict({
            "success": tfds.features.Scalar(dtype=np.bool_),
            "task": text,
            "seed": tfds.features.Scalar(dtype=np.int64),
            "episode_id": text,
            "bag": text,
            "label_source": text,
            "failed_at_step": tfds.features.Scalar(dtype=np.int64),
        }),
    })


def deploy_episode(key: str, bag: str, success: bool, length: int, image_size: int,
             rng: np.random.Generator) -> dict[str, Any]:
    steps, k = [], int(rng.integers(2, 5))  # K candidates, fixed within an episode
    for t in range(length):
        last = t == length - 1
        steps.append({
            "observation": {
                "image_0": rng.integers(0, 255, (image_size, image_size, 3), dtype=np.uint8),
                "state": np.zeros(7, np.float32)},
            "action": np.concatenate([rng.uniform(-0.04, 0.04, 3), rng.uniform(-0.2, 0.2, 3),
                                      [float(t % 2)]]).astype(np.float32),
            "language_instruction": "put carrot on plate",
            "reward": np.float32(1.0 if (last and success) else 0.0),
            "discount": np.float32(1.0),
            "is_first": t == 0, "is_last": last, "is_terminal": last and success,
            "is_intervention": t == 1,
            "timestamp_ns": np.int64(1_000_000_000 + t * 200_000_000),
            "selection_reason": "intervention" if t == 1 else "argmax",
            "candidate_actions": rng.uniform(-0.05, 0.05, (k, 7)).astype(np.float32),
            "candidate_q": rng.uniform(-5, 0, k).astype(np.float32),
        })
    return {"steps": steps, "episode_metadata": {
        "success": success, "task": "carrot_on_plate", "seed": -1, "episode_id": key,
        "bag": bag, "label_source": "person" if not success else "robot",
        "failed_at_step": -1 if success else length - 1}}


def write_deploy_dataset(data_dir: str | os.PathLike, episodes: Sequence[tuple[str, bool]], *,
                         name: str = "vgps_deploy", version: str = "1.0.0", length: int = 6,
                         image_size: int = 32, seed: int = 0) -> Path:
    """Write ``episodes`` ((key, success) each) as ``<data_dir>/<name>/<version>``.

    Keys are ``"<run_id>/<index>"``; each run id becomes one bag in ``vgps_dataset.json``.

    Returns:
        The dataset version directory.
    """
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(seed)
    bags: dict[str, list[str]] = {}
    for key, _ in episodes:
        bags.setdefault(key.split("/")[0], []).append(key)
    examples = [(key, deploy_episode(key, f"bag_{key.split('/')[0]}", success, length, image_size,
                               rng)) for key, success in episodes]
    tfds.dataset_builders.store_as_tfds_dataset(
        name=name, version=version, features=deploy_features(image_size),
        split_datasets={"train": examples}, data_dir=os.fspath(data_dir),
        description="test deployment episodes", disable_shuffling=False)
    target = Path(data_dir) / name / version
    summary = {
        "episodes": len(episodes), "steps": len(episodes) * length,
        "successes": sum(s for _, s in episodes), "failures": sum(not s for _, s in episodes),
        "interventions": len(episodes),
        "bags": [{"path": f"/recordings/bag_{run}", "run_id": run, "episodes": keys}
                 for run, keys in bags.items()],
        "losses": [], "action_statistics": {}}
    (target / "vgps_dataset.json").write_text(json.dumps(summary, indent=2) + "\n")
    return target


@pytest.fixture(scope="session")
def deploy_layout() -> types.SimpleNamespace:
    """The writer (``write``) and its parts (``features``, ``episode``) for tests' own datasets."""
    return types.SimpleNamespace(write=write_deploy_dataset, features=deploy_features,
                                 episode=deploy_episode)


@pytest.fixture(scope="session")
def deploy_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve 6-step deployment episodes from two bags, alternating success and failure."""
    episodes = [(f"{run}/{i:04d}", i % 2 == 0) for run in ("aa11", "bb22") for i in range(6)]
    return write_deploy_dataset(tmp_path_factory.mktemp("rlds"), episodes)


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    """A parent critic in the debug preset's architecture (tiny, 32x32, MiniLM), bridge bounds."""
    from vgps_critic.random_critic import save_random_critic

    path = tmp_path_factory.mktemp("parent") / "critic"
    save_random_critic(path, preset="tiny", seed=3)
    return path
