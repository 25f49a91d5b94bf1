"""Proposer: image/state pairing in either order, monotonic steps, seeded sampling."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first mujoco import

import numpy as np
import pytest

from vgps_policy_bridge.policy import Policy
from vgps_policy_bridge.proposer import PolicySettings, Proposer, make_policy
from vgps_policy_bridge.sim_policy import SimPolicy


class Echo(Policy):
    name = "echo"

    def __init__(self):
        self.resets = 0

    def sample(self, observation, instruction, k, rng):
        return np.tile(rng.normal(size=(1, 1, 7)), (k, 1, 1)).astype(np.float32)

    def reset(self):
        self.resets += 1


def test_pairs_images_and_states_in_either_order():
    p = Proposer(Echo(), k=2, needs_state=True)
    assert p.add_image(1, "img1") is None
    assert p.add_state(1, {"task": "t"}) == {"stamp_ns": 1, "image": "img1",
                                             "privileged": {"task": "t"}}
    assert p.add_state(2, {"task": "u"}) is None
    assert p.add_image(2, "img2")["privileged"] == {"task": "u"}
    assert p.add_image(3, "img3") is None and p.add_state(4, {}) is None


def test_without_state_images_are_ready_at_once():
    assert Proposer(Echo(), needs_state=False).add_image(5, "x") == {"stamp_ns": 5,
                                                                     "image": "x"}


def test_steps_are_monotonic_and_seed_the_samples():
    a, b = Proposer(Echo(), k=3, seed=1), Proposer(Echo(), k=3, seed=1)
    first, step0, _ = a.propose({}, "x")
    _, step1, _ = a.propose({}, "x")
    assert (step0, step1, first.shape) == (0, 1, (3, 1, 7))
    np.testing.assert_array_equal(b.propose({}, "x")[0], first)
    a.reset()
    assert a.propose({}, "x")[1] == 2 and a.policy.resets == 1
    a.k = 5
    assert a.propose({}, "x")[0].shape[0] == 5


def test_make_policy_builds_the_sim_policy_and_validates():
    assert isinstance(make_policy(PolicySettings(policy="sim", horizon=2)), SimPolicy)
    with pytest.raises(ValueError, match="policy"):
        PolicySettings(policy="gpt")
    with pytest.raises(ValueError, match="horizon"):
        PolicySettings(horizon=0)
