"""OctoPolicy with a stand-in model (the API it calls), and the missing-package error."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from vgps_policy_bridge.octo_policy import OCTO_INSTALL, OctoPolicy, PolicyUnavailableError
from vgps_policy_bridge.proposer import PolicySettings, make_policy


class FakeOcto:
    """Records calls; returns (K, 1, H, 7) actions like OctoModel.sample_actions."""

    def __init__(self, window=2, horizon=4):
        self.example_batch = {"observation": {"timestep_pad_mask": np.ones((1, window), bool)}}
        self.dataset_statistics = {"bridge_dataset": {"action": {"mean": np.zeros(7)}}}
        self.horizon, self.calls, self.tasks = horizon, [], []

    def create_tasks(self, texts):
        self.tasks.append(texts)
        return {"language_instruction": texts}

    def sample_actions(self, obs, task, unnormalization_statistics, sample_shape, rng):
        self.calls.append((obs, task, unnormalization_statistics, sample_shape))
        k = sample_shape[0]
        actions = np.full((k, 1, self.horizon, 7), 0.01, np.float32)
        actions[..., 6] = 1.3  # out of range: clipped to [0, 1]
        return actions


def test_history_window_pad_mask_and_shapes():
    model = FakeOcto(window=2)
    policy = OctoPolicy(model, "bridge_dataset")
    rng = np.random.default_rng(0)
    frame = np.zeros((64, 80, 3), np.uint8)
    chunks = policy.sample({"image": frame}, "put carrot on plate", 5, rng)
    assert chunks.shape == (5, 4, 7) and chunks[..., 6].max() == 1.0
    obs, _, stats, shape = model.calls[0]
    assert obs["image_primary"].shape == (1, 2, 256, 256, 3) and shape == (5,)
    assert obs["timestep_pad_mask"].tolist() == [[False, True]]
    assert stats is model.dataset_statistics["bridge_dataset"]["action"]
    policy.sample({"image": frame}, "put carrot on plate", 5, rng)
    assert model.calls[1][0]["timestep_pad_mask"].tolist() == [[True, True]]
    assert model.tasks == [["put carrot on plate"]]  # tasks cached per instruction
    policy.reset()
    policy.sample({"image": frame}, "put carrot on plate", 1, rng)
    assert model.calls[2][0]["timestep_pad_mask"].tolist() == [[False, True]]


def test_unknown_dataset_key_names_the_choices():
    with pytest.raises(ValueError, match="bridge_dataset"):
        OctoPolicy(FakeOcto(), "fractal")


def test_missing_octo_fails_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "octo", None)  # import octo -> ImportError
    monkeypatch.setitem(sys.modules, "octo.model", None)
    monkeypatch.setitem(sys.modules, "octo.model.octo_model", None)
    with pytest.raises(PolicyUnavailableError) as info:
        make_policy(PolicySettings(policy="octo"))
    assert OCTO_INSTALL in str(info.value)
