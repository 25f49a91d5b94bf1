"""OpenVLAPolicy around a fake OpenVLA-style ``predict_action``, served and in-process."""

from __future__ import annotations

import numpy as np
import pytest

from vgps_policy_server.client import PolicyClient, PolicyServerError
from vgps_policy_server.policies.openvla import OpenVLAPolicy
from vgps_policy_server.policy import ServedPolicy


class FakeOpenVLA:
    """One action per call: greedy = the image's mean brightness; sampling adds seeded noise."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.rng = np.random.default_rng(0)

    def seed(self, seed: int) -> None:  # what torch.manual_seed is to OpenVLA
        self.rng = np.random.default_rng(seed)

    def predict_action(self, image, instruction, unnorm_key, do_sample):
        self.calls.append((image.shape, instruction, unnorm_key, do_sample))
        action = np.full(7, image.mean() / 255.0 * 0.01)
        action[6] = 1.0
        if do_sample:
            action[:6] += self.rng.normal(0.0, 0.01, 6)
        return action.tolist()


def test_k_calls_make_k_candidates_of_one_action(serve):
    fake = FakeOpenVLA()
    policy = OpenVLAPolicy(fake.predict_action, unnorm_key="bridge_orig", seed_fn=fake.seed)
    assert isinstance(policy, ServedPolicy)
    meta = policy.metadata()
    assert (meta["horizon"], meta["images"], meta["max_k"]) == (1, {"primary": [0, 0]}, 64)
    server = serve(policy)
    image = np.full((224, 300, 3), 128, np.uint8)  # any size: the processor resizes
    observation = {"images": {"primary": image}, "state": {}}
    with PolicyClient(server.url) as client:
        actions, _ = client.sample(observation, "pick up the cup", 5, 11, "ep", 0)
        assert actions.shape == (5, 1, 7) and actions.dtype == np.float32
        assert fake.calls == [((224, 300, 3), "pick up the cup", "bridge_orig", True)] * 5
        assert len({tuple(a) for a in actions[:, 0]}) == 5  # sampling: K different actions
        again, _ = client.sample(observation, "pick up the cup", 5, 11, "ep", 1)
        np.testing.assert_array_equal(actions, again)  # seed_fn: the same seed, the same K
        other, _ = client.sample(observation, "pick up the cup", 5, 12, "ep", 2)
        assert not np.array_equal(actions, other)


def test_greedy_decoding_gives_k_identical_candidates():
    fake = FakeOpenVLA()
    policy = OpenVLAPolicy(fake.predict_action, unnorm_key="bridge_orig", do_sample=False)
    image = np.zeros((8, 8, 3), np.uint8)
    actions = policy.sample({"images": {"primary": image}}, "x", 4, 0, "ep", 0)
    assert (actions == actions[0]).all() and len(fake.calls) == 4
    assert fake.calls[0][3] is False


def test_bad_output_and_missing_unnorm_key(serve):
    with pytest.raises(ValueError, match="unnorm_key"):
        OpenVLAPolicy(FakeOpenVLA().predict_action, unnorm_key="")
    server = serve(OpenVLAPolicy(lambda *args: [0.0] * 6, unnorm_key="bridge_orig"))
    with PolicyClient(server.url) as client, pytest.raises(
            PolicyServerError, match="predict_action returned shape") as info:
        client.sample({"images": {"primary": np.zeros((4, 4, 3), np.uint8)}}, "x", 2, 0, "ep", 0)
    assert info.value.code == "policy_error"
