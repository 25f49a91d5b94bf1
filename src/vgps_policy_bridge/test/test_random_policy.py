"""The plumbing policy: seeded Gaussian candidates inside Bridge's per-step bounds."""

from __future__ import annotations

import numpy as np
import pytest

from vgps_policy_bridge.random_policy import MAX_ROTATION, MAX_TRANSLATION, RandomPolicy
from vgps_policy_bridge.registry import (
    IN_PROCESS,
    NEEDS_PRIVILEGED_STATE,
    PolicySettings,
    make_policy,
)


def test_candidates_have_the_contract_shape_and_bounds():
    chunks = RandomPolicy(horizon=3, translation_std=0.2, rotation_std=1.0).sample(
        {}, "anything", k=200, rng=np.random.default_rng(0))
    assert chunks.shape == (200, 3, 7) and chunks.dtype == np.float32
    assert np.abs(chunks[..., :3]).max() == pytest.approx(MAX_TRANSLATION)  # clipped
    assert np.abs(chunks[..., 3:6]).max() == pytest.approx(MAX_ROTATION)
    assert chunks[..., 6].min() >= 0.0 and chunks[..., 6].max() <= 1.0
    assert len(np.unique(chunks[:, 0, 6])) == 200  # independent candidates


def test_the_generator_is_the_only_source_of_randomness():
    policy = RandomPolicy()
    a = policy.sample({"image": np.zeros((8, 8, 3), np.uint8)}, "x", 5, np.random.default_rng(3))
    b = policy.sample({}, "y", 5, np.random.default_rng(3))
    c = policy.sample({}, "x", 5, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_default_spread_is_small():
    chunks = RandomPolicy().sample({}, "x", 4000, np.random.default_rng(0))
    assert np.std(chunks[..., :3]) == pytest.approx(0.02, rel=0.05)
    assert np.std(chunks[..., 3:6]) == pytest.approx(0.05, rel=0.05)


@pytest.mark.parametrize("kwargs", [{"horizon": 0}, {"horizon": True},
                                    {"translation_std": -1.0}, {"rotation_std": float("nan")}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="RandomPolicy"):
        RandomPolicy(**kwargs)


def test_registry_builds_it_in_process_without_simulator_state():
    policy = make_policy(PolicySettings(policy="random", horizon=2))
    assert isinstance(policy, RandomPolicy) and policy.horizon == 2
    assert "random" in IN_PROCESS and "random" not in NEEDS_PRIVILEGED_STATE
    with pytest.raises(ValueError, match="k=0"):
        policy.sample({}, "x", 0, np.random.default_rng(0))
