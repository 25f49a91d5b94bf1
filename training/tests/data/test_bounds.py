"""Action statistics, bounds and their cache (keyed by name, version and the file list)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vgps_critic.config import ActionSpace
from vgps_training.data import bounds, rlds
from vgps_training.data.synthetic import write_synthetic_fractal


def _stats(actions: np.ndarray) -> bounds.DatasetStats:
    return bounds.compute_stats("d", "1.0.0", "k" * 64, actions, np.zeros((len(actions), 2)), 3)


def test_bounds_methods_fix_the_gripper_and_widen_flat_dimensions() -> None:
    actions = np.zeros((101, 7))
    actions[:, 0] = np.arange(101)  # 0..100: percentiles 1 and 99, min/max 0 and 100
    actions[:, 6] = np.r_[np.zeros(50), np.ones(51)]
    stats = _stats(actions)
    low, high = bounds.action_bounds(stats, "percentile")
    assert (low[0], high[0]) == pytest.approx((1.0, 99.0))
    low_mm, high_mm = bounds.action_bounds(stats, "minmax")
    assert (low_mm[0], high_mm[0]) == (0.0, 100.0)
    for lo, hi in ((low, high), (low_mm, high_mm)):
        assert (lo[6], hi[6]) == (0.0, 1.0)
        assert (lo[1], hi[1]) == pytest.approx((-1e-3, 1e-3))  # constant dimension widened
        ActionSpace.from_bounds(lo, hi)  # valid for the critic's checkpoint card
    assert stats.num_transitions == 101 and stats.num_trajectories == 3
    with pytest.raises(ValueError, match="method"):
        bounds.action_bounds(stats, "median")  # type: ignore[arg-type]


def test_stats_reject_empty_and_non_finite_actions() -> None:
    with pytest.raises(ValueError, match="no transitions"):
        _stats(np.zeros((0, 7)))
    bad = np.zeros((4, 7))
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"dimensions \[3\]"):
        _stats(bad)


def test_stats_json_round_trip_and_format_check() -> None:
    stats = _stats(np.random.default_rng(0).normal(size=(20, 7)))
    assert bounds.DatasetStats.from_json(stats.to_json()) == stats
    with pytest.raises(ValueError, match="format_version"):
        bounds.DatasetStats.from_json({**stats.to_json(), "format_version": 0})


def test_stats_are_cached_and_a_changed_file_list_recomputes(
        fractal_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builder = rlds.open_builder(fractal_path)
    first = bounds.dataset_stats(builder, "train", cache_dir=tmp_path)
    files = list(tmp_path.glob("fractal20220817_data-0.1.0-*.json"))
    assert len(files) == 1
    assert first.num_trajectories == 8

    def no_compute(*args, **kwargs):
        raise AssertionError("statistics recomputed although cached")

    monkeypatch.setattr(bounds, "compute_stats", no_compute)
    assert bounds.dataset_stats(builder, "train", cache_dir=tmp_path) == first  # from cache
    # A different file list (another copy with more episodes; a sub-split) is a cache miss.
    other = rlds.open_builder(write_synthetic_fractal(tmp_path / "other", num_episodes=9))
    with pytest.raises(AssertionError, match="recomputed"):
        bounds.dataset_stats(other, "train", cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="recomputed"):
        bounds.dataset_stats(builder, "train[:4]", cache_dir=tmp_path)
    monkeypatch.undo()
    bridge_like = bounds.dataset_stats(other, "train", cache_dir=tmp_path)
    assert bridge_like.num_trajectories == 9 and bridge_like.key != first.key
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_bridge_stats_count_relabelled_transitions(bridge_path: Path, stats_cache: Path) -> None:
    """Standardiser options are part of the cache key: relabelling drops one step per episode."""
    builder = rlds.open_builder(bridge_path)
    relabelled = bounds.dataset_stats(builder, "train", cache_dir=stats_cache)
    raw = bounds.dataset_stats(builder, "train", {"relabel_actions": False}, stats_cache)
    assert relabelled.key != raw.key
    assert raw.num_transitions == relabelled.num_transitions + 25 == 250
    low, high = bounds.action_bounds(relabelled)
    assert all(h > lo for lo, h in zip(low, high)) and (low[6], high[6]) == (0.0, 1.0)
