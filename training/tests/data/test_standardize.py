"""Standardisation: gripper conversions, relabelling, the real Bridge slice, synthetic Fractal."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from vgps_training.data import rlds, standardize


@pytest.mark.parametrize(("commands", "expected"), [
    ([1.0, 0.5, 0.0, 0.3, 1.0], [1, 0, 0, 1, 1]),  # in-between -> the state reached after it
    ([0.0, 0.97, 0.02, 0.0], [0, 1, 0, 0]),
    ([1.0, 0.6], [1, 1]),  # trailing in-between: rounded (Octo would keep 0.6)
    ([1.0, 0.3], [1, 0]),
])
def test_binarize_gripper(commands: list[float], expected: list[float]) -> None:
    out = standardize.binarize_gripper(tf.constant(commands)).numpy()
    np.testing.assert_allclose(out, expected)


@pytest.mark.parametrize(("relative", "expected"), [
    ([0, 0, 1, 0, 0, -1, 0], [1, 1, 0, 0, 0, 1, 1]),  # close at t=2, open at t=5
    ([0, 0, 0], [1, 1, 1]),  # no command: open throughout
    ([0, -1, 0], [0, 1, 1]),  # first command opens: it was closed before
    ([0.05, 0.9, -0.05], [1, 0, 0]),  # |command| <= 0.1 keeps the state
])
def test_relative_to_absolute_gripper(relative: list[float], expected: list[float]) -> None:
    out = standardize.relative_to_absolute_gripper(tf.constant(relative, tf.float32)).numpy()
    np.testing.assert_allclose(out, expected)


def _bridge_like(length: int, success: bool | None = None) -> dict:
    rng = np.random.default_rng(1)
    state = rng.normal(0, 0.1, (length, 7)).astype(np.float32)
    state[:, 3] = np.linspace(3.1, -3.1, length)  # roll crosses the +-pi seam
    traj = {
        "steps": {
            "observation": {"image_0": tf.constant([b"jpeg"] * length),
                            "state": tf.constant(state)},
            "action": tf.constant(rng.uniform(0, 1, (length, 7)).astype(np.float32)),
            "language_instruction": tf.constant([b"open the drawer"] * length),
            "is_first": tf.constant(np.arange(length) == 0),
            "is_last": tf.constant(np.arange(length) == length - 1),
            "is_terminal": tf.constant(np.arange(length) == length - 1),
        },
        "tfds_id": tf.constant(b"x-train.tfrecord-00000-of-00001__3"),
    }
    if success is not None:
        traj["episode_metadata"] = {"success": tf.constant(success)}
    return traj, state


def test_relabel_uses_state_deltas_wraps_angles_and_drops_the_last_step() -> None:
    traj, state = _bridge_like(4)
    out = standardize.standardize_bridge(traj)
    delta = state[1:, :6] - state[:-1, :6]
    wrapped = (delta[:, 3] + math.pi) % (2 * math.pi) - math.pi
    np.testing.assert_allclose(out["action"][:, :3].numpy(), delta[:, :3], atol=1e-6)
    np.testing.assert_allclose(out["action"][:, 3].numpy(), wrapped, atol=1e-5)
    assert np.abs(out["action"][:, 3].numpy()).max() < math.pi
    assert out["image"].shape[0] == out["proprio"].shape[0] == 3
    np.testing.assert_array_equal(out["is_last"].numpy(), [False, False, True])
    np.testing.assert_array_equal(out["is_terminal"].numpy(), [False, False, True])
    raw = standardize.standardize_bridge(traj, relabel_actions=False)
    assert raw["action"].shape == (4, 7)


def test_vgps_sim_takes_success_from_episode_metadata() -> None:
    for success in (True, False):
        traj, _ = _bridge_like(5, success)
        out = standardize.STANDARDIZERS["vgps_sim"](traj)
        assert bool(out["success"].numpy()) is success
        assert out["action"].shape == (5, 7)  # not relabelled by default
        assert out["instruction"].numpy() == b"open the drawer"


def test_unknown_dataset_names_the_registry() -> None:
    with pytest.raises(KeyError, match="bridge_dataset"):
        standardize.get_standardizer("no_such_dataset")


def _standardized(path: Path, **options) -> list[dict]:
    builder = rlds.open_builder(path)
    fn = standardize.get_standardizer(builder.info.name, **options)
    ds = rlds.read_trajectories(builder, "train", process_index=0, process_count=1)
    return list(ds.map(fn).as_numpy_iterator())


@pytest.mark.parametrize("relabel", [True, False])
def test_real_bridge_slice_standardises(bridge_path: Path, relabel: bool) -> None:
    trajs = _standardized(bridge_path, relabel_actions=relabel)
    meta = list(tfds.builder_from_directory(bridge_path).as_dataset(
        "train", decoders={"steps": tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(add_tfds_id=True)).map(
        lambda e: (e["tfds_id"], e["episode_metadata"]["has_language"],
                   tf.shape(e["steps"]["action"])[0])).as_numpy_iterator())
    lengths = {tid: (lang, n) for tid, lang, n in meta}
    assert len(trajs) == 25
    for traj in trajs:
        has_language, n = lengths[traj["episode_id"]]
        t = n - 1 if relabel else n
        assert traj["action"].shape == (t, 7) and traj["action"].dtype == np.float32
        assert traj["proprio"].shape == (t, 7)
        assert traj["image"].shape == (t,)
        assert set(np.unique(traj["action"][:, 6])) <= {0.0, 1.0}
        assert np.isfinite(traj["action"]).all()
        if has_language:
            assert traj["instruction"].decode().strip()
        assert traj["success"]
    image = tf.io.decode_image(trajs[0]["image"][0], channels=3).numpy()
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert len({t["episode_id"] for t in trajs}) == 25


def test_synthetic_fractal_has_the_schema_and_standardises(fractal_path: Path) -> None:
    builder = tfds.builder_from_directory(fractal_path)
    assert builder.info.name == "fractal20220817_data" and str(builder.info.version) == "0.1.0"
    steps = builder.info.features["steps"]
    obs, act = steps["observation"], steps["action"]
    assert obs["image"].shape == (256, 320, 3) and obs["image"].encoding_format == "jpeg"
    assert obs["natural_language_instruction"].dtype == tf.string
    expected = {
        (obs, "natural_language_embedding"): ((512,), tf.float32),
        (obs, "base_pose_tool_reached"): ((7,), tf.float32),
        (obs, "gripper_closed"): ((1,), tf.float32),
        (act, "world_vector"): ((3,), tf.float32),
        (act, "rotation_delta"): ((3,), tf.float32),
        (act, "gripper_closedness_action"): ((1,), tf.float32),
        (act, "terminate_episode"): ((3,), tf.int32),
        (act, "base_displacement_vector"): ((2,), tf.float32),
        (act, "base_displacement_vertical_rotation"): ((1,), tf.float32),
    }
    for (parent, key), (shape, dtype) in expected.items():
        assert parent[key].shape == shape and parent[key].dtype == dtype, key

    trajs = _standardized(fractal_path)
    assert len(trajs) == 8
    for traj in trajs:
        t = traj["is_first"].shape[0]
        assert traj["action"].shape == (t, 7) and traj["proprio"].shape == (t, 8)
        gripper = traj["action"][:, 6]
        assert ((gripper >= 0) & (gripper <= 1)).all()
        # the absolute gripper is exactly "not closed" of the observed gripper state
        np.testing.assert_array_equal(gripper, 1.0 - traj["proprio"][:, 7])
        assert 0.0 in gripper and 1.0 in gripper
        assert traj["instruction"]
    image = tf.io.decode_image(trajs[0]["image"][0], channels=3).numpy()
    assert image.shape == (256, 320, 3)


def _write_vgps_sim(data_dir: Path, successes: list[bool], length: int = 6) -> Path:
    """A tiny dataset in the assumed vgps_sim layout: bridge_dataset + episode success."""
    f32 = np.float32
    features = tfds.features.FeaturesDict({
        "steps": tfds.features.Dataset({
            "observation": tfds.features.FeaturesDict({
                "image_0": tfds.features.Image(shape=(16, 16, 3), encoding_format="png"),
                "state": tfds.features.Tensor(shape=(7,), dtype=f32),
            }),
            "action": tfds.features.Tensor(shape=(7,), dtype=f32),
            "language_instruction": tfds.features.Tensor(shape=(), dtype=tf.string),
            "is_first": tfds.features.Scalar(dtype=np.bool_),
            "is_last": tfds.features.Scalar(dtype=np.bool_),
            "is_terminal": tfds.features.Scalar(dtype=np.bool_),
        }),
        "episode_metadata": tfds.features.FeaturesDict({
            "success": tfds.features.Scalar(dtype=np.bool_)}),
    })

    def episodes():
        for i, success in enumerate(successes):
            steps = [{"observation": {"image_0": np.full((16, 16, 3), 10 * t, np.uint8),
                                      "state": np.zeros(7, f32)},
                      "action": np.array([0.01 * t] * 6 + [float(t < 3)], f32),
                      "language_instruction": f"task {i}",
                      "is_first": t == 0, "is_last": t == length - 1,
                      "is_terminal": success and t == length - 1} for t in range(length)]
            yield f"ep{i}", {"steps": steps, "episode_metadata": {"success": success}}

    tfds.dataset_builders.store_as_tfds_dataset(
        name="vgps_sim", version="1.0.0", features=features,
        split_datasets={"train": episodes()}, data_dir=str(data_dir))
    return data_dir / "vgps_sim" / "1.0.0"


def test_vgps_sim_failures_are_labelled_through_tfds(tmp_path: Path) -> None:
    from vgps_training.data.labels import LabelConfig, label_episode
    from vgps_training.data.pipeline import DataConfig, DatasetSpec, make_trajectory_dataset

    path = _write_vgps_sim(tmp_path, [True, False, True, False])
    config = DataConfig(datasets=(DatasetSpec(str(path)),), process_index=0, process_count=1,
                        train=False)
    trajs, name = make_trajectory_dataset(config.datasets[0], config)
    assert name == "vgps_sim"
    seen = []
    for traj in trajs.as_numpy_iterator():
        success = bool(traj["success"])
        seen.append(success)
        expected = label_episode(6, success, terminal=success, config=LabelConfig())
        for key in ("reward", "done", "mask", "mc_return"):
            np.testing.assert_allclose(traj[key], expected[key], atol=1e-6, err_msg=key)
        assert (traj["reward"] == -1).all() != success
    assert sorted(seen) == [False, False, True, True]
