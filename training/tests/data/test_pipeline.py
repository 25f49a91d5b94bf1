"""The tf.data pipeline: batches, one-pass evaluation, mixtures, host sharding, augmentation."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from vgps_training.data import rlds
from vgps_training.data.augment import AugmentConfig, augment_images, decode_and_resize
from vgps_training.data.pipeline import (
    DataConfig,
    DatasetSpec,
    make_dataset,
    make_trajectory_dataset,
)

KEYS = {"image": np.uint8, "next_image": np.uint8, "proprio": np.float32,
        "next_proprio": np.float32, "action": np.float32, "next_action": np.float32,
        "raw_action": np.float32,
        "reward": np.float32, "mask": np.float32, "mc_return": np.float32,
        "episode_success": np.bool_, "instruction": object, "dataset_index": np.int32}


def _config(paths, cache: Path, **kw) -> DataConfig:
    defaults = {"image_size": (64, 64), "batch_size": 16, "shuffle_buffer": 64,
                "cache_dir": str(cache), "process_index": 0, "process_count": 1}
    specs = tuple(p if isinstance(p, DatasetSpec) else DatasetSpec(str(p)) for p in paths)
    return DataConfig(datasets=specs, **{**defaults, **kw})


@pytest.mark.parametrize("size", [(64, 64), (256, 256)])
def test_bridge_batches_have_the_configured_shape(bridge_path: Path, stats_cache: Path,
                                                  size: tuple[int, int]) -> None:
    data = make_dataset(_config([bridge_path], stats_cache, image_size=size))
    it = data.as_numpy()
    for _ in range(3):
        batch = next(it)
        assert set(batch) == set(KEYS)
        for key, dtype in KEYS.items():
            assert batch[key].dtype == dtype, key
            assert batch[key].shape[0] == 16, key
        assert batch["image"].shape == batch["next_image"].shape == (16, *size, 3)
        assert batch["proprio"].shape == (16, 7) and batch["action"].shape == (16, 7)
        assert np.abs(batch["action"]).max() < 1.0 and np.abs(batch["next_action"]).max() < 1.0
        assert set(np.unique(batch["reward"])) <= {-1.0, 0.0}
        assert set(np.unique(batch["mask"])) <= {0.0, 1.0}
        np.testing.assert_array_equal(batch["mask"] == 0, batch["reward"] == 0)  # demos only
        assert (batch["mc_return"] <= 0).all() and (batch["mc_return"] > -50).all()
        assert all(s.decode() for s in batch["instruction"])
        assert batch["episode_success"].all()  # demonstrations
    assert data.names == ("bridge_dataset",) and data.weights == (1.0,)


def test_evaluation_is_one_plain_pass(bridge_path: Path, stats_cache: Path) -> None:
    data = make_dataset(_config([bridge_path], stats_cache, train=False, batch_size=5))
    batches = list(data.as_numpy())
    total = data.stats["bridge_dataset"].num_transitions
    assert len(batches) * 5 == total == 225
    raw = np.concatenate([b["raw_action"] for b in batches])
    low, high = (np.array(b) for b in data.bounds["bridge_dataset"])
    expected = np.clip(2 * (raw - low) / (high - low) - 1, -1 + 1e-5, 1 - 1e-5)
    np.testing.assert_allclose(np.concatenate([b["action"] for b in batches]), expected,
                               atol=1e-5)
    # next_action is the episode's next action; an episode's last step repeats its own (25 of them)
    action = np.concatenate([b["action"] for b in batches])
    nxt = np.concatenate([b["next_action"] for b in batches])
    follows = (nxt[:-1] == action[1:]).all(axis=1)
    repeats = (nxt == action).all(axis=1)
    assert (follows | repeats[:-1]).all() and repeats[-1]
    assert (~follows).sum() == 24  # the boundaries between the 25 episodes
    # Terminal steps (the last H = 3 of each demonstration) hold reward 0 and return 0.
    mask = np.concatenate([b["mask"] for b in batches])
    assert (mask == 0).sum() == 25 * 3
    assert (np.concatenate([b["mc_return"] for b in batches])[mask == 0] == 0).all()


@pytest.mark.parametrize("balance", [False, True])
def test_mixture_samples_both_sources_in_proportion(bridge_path: Path, fractal_path: Path,
                                                    stats_cache: Path, balance: bool) -> None:
    specs = (DatasetSpec(str(bridge_path), weight=0.7), DatasetSpec(str(fractal_path), weight=0.3))
    data = make_dataset(_config(specs, stats_cache, batch_size=64, shuffle_buffer=256,
                                balance_weights=balance))
    sizes = np.array([data.stats[n].num_transitions for n in data.names], float)
    expected = np.array([0.7, 0.3]) * (sizes if balance else 1.0)
    expected /= expected.sum()
    np.testing.assert_allclose(data.weights, expected)
    it = data.as_numpy()
    index = np.concatenate([next(it)["dataset_index"] for _ in range(24)])  # 1536 samples
    assert set(np.unique(index)) == {0, 1}
    assert np.mean(index == 0) == pytest.approx(expected[0], abs=0.05)
    batch = next(it)
    assert batch["proprio"].shape == (64, 8)  # Bridge's 7-D proprio zero-padded to Fractal's 8
    bridge_rows = batch["dataset_index"] == 0
    assert (batch["proprio"][bridge_rows, 7] == 0).all()


@pytest.mark.parametrize("which", ["bridge", "fractal"])
def test_host_shards_are_disjoint_and_cover_the_split(bridge_path: Path, fractal_path: Path,
                                                      stats_cache: Path, which: str) -> None:
    path = bridge_path if which == "bridge" else fractal_path
    shards = []
    for index in range(2):
        config = _config([path], stats_cache, process_index=index, process_count=2)
        trajs, _ = make_trajectory_dataset(config.datasets[0], config)
        shards.append([t["episode_id"] for t in trajs.as_numpy_iterator()])
    everything = [t["tfds_id"] for t in rlds.read_trajectories(
        rlds.open_builder(path), process_index=0, process_count=1).as_numpy_iterator()]
    a, b = set(shards[0]), set(shards[1])
    assert a and b and not a & b
    assert a | b == set(everything)
    assert abs(len(a) - len(b)) <= 1


def test_file_order_is_deterministic_per_seed(bridge_path: Path) -> None:
    builder = rlds.open_builder(bridge_path)

    def order(seed: int) -> list[bytes]:
        ds = rlds.read_trajectories(builder, process_index=0, process_count=1,
                                    shuffle_files=True, seed=seed)
        return [t["tfds_id"] for t in ds.as_numpy_iterator()]

    assert order(3) == order(3)


def test_pipeline_is_reproducible_for_a_seed(bridge_path: Path, stats_cache: Path) -> None:
    def first_batch(seed: int) -> dict:
        return next(make_dataset(_config([bridge_path], stats_cache, seed=seed)).as_numpy())

    a, b, c = first_batch(0), first_batch(0), first_batch(1)
    for key in ("image", "next_image", "action", "mc_return"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image"], c["image"])


def test_augmentation_keeps_shape_and_dtype_and_depends_on_the_seed(bridge_path: Path) -> None:
    traj = next(rlds.read_trajectories(rlds.open_builder(bridge_path), process_index=0,
                                       process_count=1).as_numpy_iterator())
    image = decode_and_resize(tf.constant(traj["steps"]["observation"]["image_0"][0]), (64, 64))
    pair = tf.stack([image, image])
    cfg = AugmentConfig()
    a = augment_images(pair, tf.constant([0, 1]), cfg).numpy()
    b = augment_images(pair, tf.constant([0, 2]), cfg).numpy()
    again = augment_images(pair, tf.constant([0, 1]), cfg).numpy()
    assert a.shape == (2, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a[0], a[1])  # observation and next observation: same draw
    np.testing.assert_array_equal(a, again)
    assert not np.array_equal(a, b)
    assert not np.array_equal(a[0], image.numpy())
    resized = decode_and_resize(tf.constant(traj["steps"]["observation"]["image_0"][0]),
                                (96, 128))
    assert resized.shape == (96, 128, 3) and resized.dtype == tf.uint8


def test_configs_name_the_bad_field(bridge_path: Path) -> None:
    spec = DatasetSpec(str(bridge_path))
    with pytest.raises(ValueError, match="batch_size"):
        DataConfig(datasets=(spec,), batch_size=0)
    with pytest.raises(ValueError, match="image_size"):
        DataConfig(datasets=(spec,), image_size=(64,))
    with pytest.raises(ValueError, match="datasets"):
        DataConfig(datasets=())
    with pytest.raises(ValueError, match="process_index"):
        DataConfig(datasets=(spec,), process_index=2, process_count=2)
    with pytest.raises(ValueError, match="action_bounds"):
        DatasetSpec(str(bridge_path), action_bounds="widowx")
    with pytest.raises(ValueError, match="crop_scale"):
        AugmentConfig(crop_scale=(0.8, 1.2))
    with pytest.raises(FileNotFoundError, match=r"dataset_info\.json"):
        rlds.open_builder(bridge_path.parent)
    preset = DatasetSpec(str(bridge_path), action_bounds="bridge")
    assert dataclasses.replace(preset, weight=2.0).action_bounds == "bridge"


def test_preset_bounds_replace_computed_ones(bridge_path: Path, stats_cache: Path) -> None:
    from vgps_critic.config import BRIDGE_BOUNDS

    spec = DatasetSpec(str(bridge_path), action_bounds="bridge")
    data = make_dataset(_config([spec], stats_cache, train=False))
    assert data.bounds["bridge_dataset"] == (BRIDGE_BOUNDS[0], BRIDGE_BOUNDS[1])


def test_critic_and_label_imports_stay_free_of_tensorflow() -> None:
    code = ("import sys, vgps_critic, vgps_critic.critic, vgps_critic.checkpoint, "
            "vgps_training.data, vgps_training.data.labels; "
            "assert 'tensorflow' not in sys.modules, 'TensorFlow imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_closed_form_saturation_and_hue_equal_tensorflows_ops() -> None:
    from vgps_training.data.augment import _saturation_and_hue

    x = tf.constant(np.random.default_rng(0).random((2, 16, 16, 3), np.float32))
    s_seed, h_seed = tf.constant([1, 2], tf.int64), tf.constant([3, 4], tf.int64)
    factor = tf.random.stateless_uniform([], s_seed, 0.9, 1.1)
    delta = tf.random.stateless_uniform([], h_seed, -0.05, 0.05)
    reference = tf.image.adjust_hue(tf.image.adjust_saturation(x, factor), delta)
    ours = _saturation_and_hue(x, AugmentConfig(), s_seed, h_seed)
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), atol=1e-5)


def test_evaluation_mixture_covers_every_transition_once(bridge_path: Path, fractal_path: Path,
                                                         stats_cache: Path) -> None:
    config = _config([bridge_path, fractal_path], stats_cache, train=False, batch_size=1)
    data = make_dataset(config)
    index = np.concatenate([b["dataset_index"] for b in data.as_numpy()])
    for i, name in enumerate(data.names):
        assert (index == i).sum() == data.stats[name].num_transitions
