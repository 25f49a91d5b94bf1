"""The deployment episode store -> RLDS ``vgps_deploy`` (``vgps_training.deploy_dataset``).

The store files are made here directly (the layout ``vgps dataset build`` writes); the bag side
is tested in the vgps tree. Every value read back with ``tfds.builder_from_directory`` must equal
what the store holds.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json
from pathlib import Path

import numpy as np
import pytest

from vgps_training.deploy_dataset import main, statistics, write_deploy_dataset


def _episode(rng: np.random.Generator, key: str, t: int, success: bool, size: int = 16,
             source: str = "robot", failed_at: int = -1) -> dict[str, np.ndarray]:
    counts = rng.integers(0, 5, t)  # K varies per step; 0: no candidates recorded
    total = int(counts.sum())
    q = rng.normal(size=total).astype(np.float32)
    q[:1] = np.nan  # a step whose Q was not recorded
    reasons = np.array(["argmax", "intervention", "softmax", "fallback"] * t)[:t]
    return {"images": rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8),
            "actions": rng.uniform(-0.05, 0.05, (t, 7)).astype(np.float32),
            "states": np.zeros((t, 7), np.float32),
            "timestamps_ns": 1_700_000_000_000_000_000 + np.arange(t, dtype=np.int64) * 3,
            "interventions": reasons == "intervention", "reasons": reasons,
            "steps": np.arange(t, dtype=np.int64), "q_selected": np.zeros(t, np.float32),
            "candidate_counts": counts.astype(np.int64),
            "candidate_actions": rng.normal(size=(total, 7)).astype(np.float32),
            "candidate_q": q, "episode_id": np.array(key), "bag": np.array("bags/run1"),
            "run_id": np.array(key.split("/")[0]), "index": np.array(int(key.split("/")[1])),
            "task": np.array("carrot_on_plate"), "instruction": np.array("put the carrot"),
            "success": np.array(success), "label_source": np.array(source),
            "failed_at_step": np.array(failed_at, np.int64), "seed": np.array(-1, np.int64),
            "end_event": np.array("timeout")}


def _store(root: Path, episodes: dict[str, dict[str, np.ndarray]]) -> Path:
    store = root / "vgps_deploy"
    index = {"format": "vgps-episode-store/1", "episodes": {}, "skipped": {"r1/0009": "skip"},
             "bags": {"r1": {"path": "bags/run1", "run_id": "r1", "episodes": sorted(episodes),
                             "losses": ["bag_0.mcap: file truncated at byte 9"]}}}
    for key, arrays in episodes.items():
        rel = f"episodes/{key}.npz"
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(store / rel, **arrays)
        index["episodes"][key] = {"file": rel}
    (store / "index.json").write_text(json.dumps(index))
    return store


def _read(path: Path) -> dict[str, dict]:
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(str(path))
    return {e["episode_metadata"]["episode_id"].decode(): e
            for e in tfds.as_numpy(builder.as_dataset(split="train"))}


def test_every_value_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    source = {"r1/0000": _episode(rng, "r1/0000", 5, True),
              "r1/0001": _episode(rng, "r1/0001", 4, False, source="person", failed_at=2)}
    store = _store(tmp_path, source)
    path = write_deploy_dataset(store, tmp_path, candidates=True)
    assert path == tmp_path / "vgps_deploy" / "1.0.0"
    read = _read(path)
    assert sorted(read) == sorted(source)
    for key, ep in source.items():
        got = read[key]
        meta = got["episode_metadata"]
        assert bool(meta["success"]) == bool(ep["success"])
        assert meta["label_source"].decode() == str(ep["label_source"])
        assert meta["failed_at_step"] == int(ep["failed_at_step"])
        assert meta["bag"].decode() == "bags/run1" and meta["task"].decode() == "carrot_on_plate"
        steps = list(got["steps"])
        t = len(ep["actions"])
        ends = np.cumsum(ep["candidate_counts"])
        for i, step in enumerate(steps):
            np.testing.assert_array_equal(step["observation"]["image_0"], ep["images"][i])
            np.testing.assert_array_equal(step["action"], ep["actions"][i])
            assert step["timestamp_ns"] == ep["timestamps_ns"][i]
            assert step["is_intervention"] == ep["interventions"][i]
            assert step["selection_reason"].decode() == ep["reasons"][i]
            assert step["language_instruction"].decode() == "put the carrot"
            lo, hi = ends[i] - ep["candidate_counts"][i], ends[i]
            assert step["candidate_actions"].shape == (hi - lo, 7)
            np.testing.assert_array_equal(step["candidate_actions"],
                                          ep["candidate_actions"][lo:hi])
            np.testing.assert_array_equal(step["candidate_q"], ep["candidate_q"][lo:hi])
            assert (step["is_first"], step["is_last"]) == (i == 0, i == t - 1)
            assert step["is_terminal"] == (i == t - 1 and bool(ep["success"]))
            assert step["reward"] == (1.0 if i == t - 1 and ep["success"] else 0.0)
    summary = json.loads((path / "vgps_dataset.json").read_text())
    assert (summary["episodes"], summary["steps"], summary["successes"], summary["failures"]) == (
        2, 9, 1, 1)
    assert summary["interventions"] == 2 and summary["intervention_episodes"] == 2
    assert summary["bags"] == [{"path": "bags/run1", "run_id": "r1",
                                "episodes": ["r1/0000", "r1/0001"]}]
    assert summary["losses"] == ["bags/run1: bag_0.mcap: file truncated at byte 9"]
    assert summary["left_out"] == {"r1/0009": "skip"}
    actions = np.concatenate([ep["actions"] for ep in source.values()])
    stats = summary["action_statistics"]
    np.testing.assert_allclose(stats["mean"], actions.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["q99"], np.quantile(actions, 0.99, axis=0), rtol=1e-6)
    assert stats == statistics(actions)


def test_rewrite_replaces_the_version_and_resizes(tmp_path):
    rng = np.random.default_rng(1)
    store = _store(tmp_path, {"r1/0000": _episode(rng, "r1/0000", 3, True)})
    write_deploy_dataset(store, tmp_path)
    store = _store(tmp_path, {"r1/0000": _episode(rng, "r1/0000", 3, True),
                              "r2/0000": _episode(rng, "r2/0000", 2, False, size=24)})
    with pytest.raises(ValueError, match="--image-size"):
        write_deploy_dataset(store, tmp_path)
    assert sorted(_read(tmp_path / "vgps_deploy" / "1.0.0")) == ["r1/0000"]  # old one intact
    path = write_deploy_dataset(store, tmp_path, image_size=8)
    read = _read(path)
    assert sorted(read) == ["r1/0000", "r2/0000"]
    assert next(iter(read["r2/0000"]["steps"]))["observation"]["image_0"].shape == (8, 8, 3)
    assert "candidate_actions" not in next(iter(read["r1/0000"]["steps"]))  # no --candidates
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_training_reader_opens_it(tmp_path):
    from vgps_training.data.rlds import open_builder

    rng = np.random.default_rng(2)
    store = _store(tmp_path, {"r1/0000": _episode(rng, "r1/0000", 6, True)})
    builder = open_builder(write_deploy_dataset(store, tmp_path, candidates=True))
    assert builder.info.name == "vgps_deploy" and builder.info.splits["train"].num_examples == 1
    assert builder.info.features["steps"]["observation"]["image_0"].shape == (16, 16, 3)


def test_bad_stores_are_refused(tmp_path, capsys):
    assert main([str(tmp_path / "none"), str(tmp_path)]) == 2
    assert "no episode" in capsys.readouterr().err
    rng = np.random.default_rng(3)
    bad = _episode(rng, "r1/0000", 3, True)
    bad["candidate_counts"] = bad["candidate_counts"] + 1
    store = _store(tmp_path, {"r1/0000": bad})
    assert main([str(store), str(tmp_path)]) == 2
    assert "candidate_counts" in capsys.readouterr().err
    del bad["reasons"]
    store = _store(tmp_path, {"r1/0000": bad})
    with pytest.raises(ValueError, match="reasons"):
        write_deploy_dataset(store, tmp_path)


def test_the_training_pipeline_labels_take_overs_as_failures(tmp_path):
    from vgps_training.data.labels import LabelConfig
    from vgps_training.data.pipeline import DataConfig, DatasetSpec, make_trajectory_dataset

    rng = np.random.default_rng(4)
    ep = _episode(rng, "r1/0000", 6, True)
    ep["interventions"] = np.array([False, False, True, True, False, False])
    ep["reasons"] = np.where(ep["interventions"], "intervention", "argmax")
    path = write_deploy_dataset(_store(tmp_path, {"r1/0000": ep}), tmp_path)
    labels = LabelConfig(discount=0.9, success_horizon=1, failure_return="infinite_horizon")
    config = DataConfig(datasets=(DatasetSpec(path=str(path)),), image_size=(16, 16), batch_size=2,
                        subset="all", labels=labels)
    ds, _ = make_trajectory_dataset(config.datasets[0], config)
    traj = next(iter(ds.as_numpy_iterator()))
    assert traj["is_intervention"].tolist() == ep["interventions"].tolist()
    # step 1 hands over to the corrector: steps 0-1 get -1/(1-0.9); the rest keep the success
    # (0.9: -1 - 0.9 * 10 = -10; the corrected part: -1 - 0.9 * 1.9, -1 - 0.9, -1, 0)
    np.testing.assert_allclose(traj["mc_return"], [-10, -10, -2.71, -1.9, -1.0, 0.0], rtol=1e-5)
    np.testing.assert_allclose(traj["reward"], [-1, -10, -1, -1, -1, 0], rtol=1e-6)
    assert traj["outcome"].tolist() == [False, False, True, True, True, True]
