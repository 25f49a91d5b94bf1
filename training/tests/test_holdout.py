"""Held-out validation episodes: deterministic, disjoint from training, stable as data grows."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from vgps_training.data import holdout, rlds
from vgps_training.data.pipeline import DataConfig, DatasetSpec, make_dataset
from vgps_training.data.pipeline import make_trajectory_dataset as trajectories

BRIDGE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bridge_debug" / \
    "bridge_dataset" / "1.0.0"


def _ids(path: Path, subset: str, fraction: float, cache: Path) -> list[str]:
    config = DataConfig(datasets=(DatasetSpec(str(path)),), subset=subset, val_fraction=fraction,
                        train=False, image_size=(32, 32), process_index=0, process_count=1,
                        cache_dir=str(cache))
    builder = rlds.open_builder(path)
    plan = holdout.plan_holdout(builder, "train", "val", fraction, cache)
    ds, _ = trajectories(config.datasets[0], config, 0, builder, plan)
    return sorted(t["episode_id"].decode() for t in ds.as_numpy_iterator())


def _keys(path: Path) -> dict[str, str]:
    """tfds id -> episode key of every episode of a dataset."""
    ds = rlds.read_trajectories(rlds.open_builder(path), "train", process_index=0,
                                process_count=1)
    return {t["tfds_id"].decode(): t["episode_metadata"]["episode_id"].decode()
            for t in ds.as_numpy_iterator()}


def test_held_out_split_is_deterministic_disjoint_and_stable(deploy_layout, tmp_path):
    first = [(f"run1/{i:04d}", i % 2 == 0) for i in range(24)]
    small = deploy_layout.write(tmp_path / "a", first, length=3, image_size=8)
    grown = deploy_layout.write(tmp_path / "b", first + [(f"run2/{i:04d}", True)
                                                          for i in range(40)],
                                 length=3, image_size=8, seed=5)
    plans = {}
    for name, path in (("small", small), ("grown", grown)):
        builder = rlds.open_builder(path)
        plan = holdout.plan_holdout(builder, "train", "val", 0.25, tmp_path / f"cache_{name}")
        again = holdout.plan_holdout(builder, "train", "val", 0.25, tmp_path / f"cache_{name}")
        fresh = holdout.plan_holdout(builder, "train", "val", 0.25, tmp_path / "other" / name)
        assert plan == again == fresh  # cached and recomputed agree
        assert plan.source == "fraction" and plan.val_episodes > 0 and plan.train_episodes > 0
        plans[name] = plan

        keys = _keys(path)
        train = {keys[i] for i in _ids(path, "train", 0.25, tmp_path / "c")}
        val = {keys[i] for i in _ids(path, "validation", 0.25, tmp_path / "c")}
        assert not train & val and train | val == set(keys.values())
        assert sorted(val) == list(plan.val_ids) and len(train) == plan.train_episodes
        np.testing.assert_array_equal(holdout.held_out(sorted(keys.values()), 0.25),
                                      [k in val for k in sorted(keys.values())])
    # adding episodes (and rewriting every shard) moves none of the old ones across
    old = {k for k, _ in first}
    assert set(plans["small"].val_ids) == set(plans["grown"].val_ids) & old
    assert 0.1 < plans["grown"].val_episodes / 64 < 0.45  # roughly the fraction


def test_a_dataset_s_own_validation_split_is_used_where_it_exists(deploy_layout, tmp_path):
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(0)
    split = {name: [(f"{name}/{i}", deploy_layout.episode(f"{name}/{i}", "bag", True, 3, 8, rng))
                    for i in range(n)] for name, n in (("train", 5), ("val", 3))}
    tfds.dataset_builders.store_as_tfds_dataset(
        name="vgps_deploy", version="1.0.0", features=deploy_layout.features(8),
        split_datasets=split, data_dir=str(tmp_path))
    path = tmp_path / "vgps_deploy" / "1.0.0"
    plan = holdout.plan_holdout(rlds.open_builder(path), "train", "val", 0.5, tmp_path)
    assert (plan.source, plan.train_episodes, plan.val_episodes) == ("split", 5, 3)
    keys = {**_keys(path)}
    assert len(_ids(path, "train", 0.5, tmp_path)) == 5  # all of train, none held out
    val = _ids(path, "validation", 0.5, tmp_path)
    assert len(val) == 3 and all("-val." in v for v in val) and not set(val) & set(keys)


@pytest.mark.skipif(not (BRIDGE / "dataset_info.json").exists(), reason="no Bridge slice")
def test_bridge_slice_declares_val_without_its_files_so_a_fraction_is_held_out(tmp_path):
    builder = rlds.open_builder(BRIDGE)
    assert "val" in builder.info.splits and not holdout.has_split(builder, "val")
    plan = holdout.plan_holdout(builder, "train", "val", 0.1, tmp_path)
    assert plan.source == "fraction" and plan.train_episodes + plan.val_episodes == 25
    assert plan.val_episodes >= 1 and all("#" in k for k in plan.val_ids)  # file_path#id


def test_empty_sides_fail_clearly(deploy_dataset, tmp_path):
    base = DataConfig(datasets=(DatasetSpec(str(deploy_dataset)),), image_size=(32, 32),
                      batch_size=4, process_index=0, process_count=1, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="no held-out validation episodes"):
        make_dataset(dataclasses.replace(base, subset="validation", val_fraction=0.0))
    with pytest.raises(ValueError, match="val_fraction"):
        DataConfig(datasets=base.datasets, val_fraction=1.0)
    with pytest.raises(ValueError, match="subset='test'"):
        DataConfig(datasets=base.datasets, subset="test")


def test_deployment_layout_trains_with_its_success_labels(deploy_dataset, tmp_path):
    data = make_dataset(DataConfig(datasets=(DatasetSpec(str(deploy_dataset)),), train=False,
                                   image_size=(32, 32), batch_size=72, process_index=0,
                                   process_count=1, cache_dir=str(tmp_path)))
    batch = next(data.as_numpy())
    assert data.names == ("vgps_deploy",)
    success = batch["episode_success"]
    # 12 six-step episodes, half successful; each hands over to a person at step 1, so its step 0
    # is labelled as the failure the take-over prevented (labels.takeover = "failure")
    assert success.sum() == 30 and (~success).sum() == 42
    fail_value = -1.0 / (1.0 - 0.98)
    assert np.isin(batch["reward"][~success], [-1.0, np.float32(fail_value)]).all()
    assert (batch["reward"][success] == 0).any()
    assert (np.isclose(batch["reward"], fail_value)).sum() == 12  # one take-over per episode
    assert batch["action"].shape == (72, 7)
