"""policy:=remote over the policy-server protocol: a real server on loopback, the sim policy
served the way a real generalist is, metadata checked at construction, seeds and episodes."""

from __future__ import annotations

import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first mujoco import

import numpy as np
import pytest

from vgps_policy_bridge.policy import PolicyUnavailableError
from vgps_policy_bridge.registry import PolicySettings, make_policy
from vgps_policy_bridge.server_policy import ServerPolicy
from vgps_policy_bridge.sim_policy import SimPolicy
from vgps_policy_bridge.sim_served import SimServed
from vgps_policy_server.server import PolicyServer
from vgps_widowx.sim import SimEnvConfig, WidowXSimEnv


class Chunks:
    """A served policy with H = 4 whose actions encode (seed, episode step count, k index)."""

    def __init__(self, meta: dict | None = None):
        self.meta = {"policy": {"name": "chunks", "version": "1"}, "action_dim": 7,
                     "action_space": "bridge_ee_delta", "horizon": 4,
                     "images": {"primary": [32, 32]}, "state": [], "window": 1, "max_k": 64,
                     "needs_privileged": False, "episodes": "many", **(meta or {})}
        self.history: dict[str, int] = {}
        self.resets: list[str] = []

    def metadata(self) -> dict:
        return dict(self.meta)

    def reset(self, episode_id: str) -> None:
        self.resets.append(episode_id)
        self.history[episode_id] = 0

    def sample(self, observation, instruction, k, seed, episode_id, step):
        seen = self.history.get(episode_id, 0)
        self.history[episode_id] = seen + 1
        rng = np.random.default_rng(seed)
        out = rng.uniform(-0.01, 0.01, (k, 4, 7)).astype(np.float32)
        out[:, :, 6] = seen  # how many images this episode has seen on the server
        return out


@pytest.fixture
def serve():
    servers = []

    def start(policy) -> str:
        server = PolicyServer(policy, "127.0.0.1", 0)
        server.start()
        servers.append(server)
        return f"ws://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.stop()


FRAME = np.zeros((32, 32, 3), np.uint8)


def test_chunks_are_cut_to_the_horizon_and_seeds_come_from_the_generator(serve):
    policy = ServerPolicy(serve(Chunks()), horizon=2)
    assert policy.name == "remote:chunks" and policy.horizon == 2
    policy.reset()
    a = policy.sample({"image": FRAME}, "x", 5, np.random.default_rng(7))
    b = policy.sample({"image": FRAME}, "x", 5, np.random.default_rng(7))
    assert a.shape == (5, 2, 7) and a.dtype == np.float32
    np.testing.assert_array_equal(a[..., :6], b[..., :6])  # same generator state, same samples
    c = policy.sample({"image": FRAME}, "x", 5, np.random.default_rng(8))
    assert not np.array_equal(a[..., :6], c[..., :6])
    assert "round_trip_ms" in policy.last_timing and "sample_ms" in policy.last_timing


def test_each_episode_is_reset_on_the_server(serve):
    served = Chunks()
    policy = ServerPolicy(serve(served))
    policy.reset()
    seen = [policy.sample({"image": FRAME}, "x", 1, np.random.default_rng(0))[0, 0, 6]
            for _ in range(3)]
    assert seen == [0, 1, 2]
    policy.reset()  # a new episode id: the server starts that history afresh
    assert policy.sample({"image": FRAME}, "x", 1, np.random.default_rng(0))[0, 0, 6] == 0
    assert len(set(served.resets)) == 2


def test_a_server_whose_chunks_are_too_short_is_refused(serve):
    with pytest.raises(PolicyUnavailableError, match="H=1 actions; horizon=4"):
        ServerPolicy(serve(Chunks({"horizon": 1})), horizon=4)


class MetadataOnly:
    """Another implementation of the protocol answering with metadata our server never sends
    (vgps-policy-server refuses to serve such a policy at all)."""

    def __init__(self, meta: dict):
        self.meta = meta

    def metadata(self) -> dict:
        return self.meta


@pytest.mark.parametrize(("meta", "match"), [
    ({"action_dim": 6}, "of 6 dimensions; the arm takes .bridge_ee_delta. with 7"),
    ({"action_space": "joint_positions"}, "'joint_positions'"),
    ({"images": {}}, "takes no image input"),
    ({"horizon": None}, "incomplete metadata"),
])
def test_metadata_that_does_not_fit_the_arm_is_refused(meta, match):
    with pytest.raises(PolicyUnavailableError, match=match):
        ServerPolicy("ws://elsewhere:1", client=MetadataOnly(Chunks(meta).metadata()))


def test_no_server_is_a_clear_configure_error():
    with pytest.raises(PolicyUnavailableError, match=r"no policy server answers at ws://127\.0\.0"):
        make_policy(PolicySettings(policy="remote", remote_url="ws://127.0.0.1:9",
                                   remote_timeout_s=0.5))


def test_the_registry_picks_the_protocol_by_url_scheme(serve):
    url = serve(Chunks())
    assert isinstance(make_policy(PolicySettings(policy="remote", remote_url=url)),
                      ServerPolicy)
    from vgps_policy_bridge.remote_policy import RemotePolicy

    http = make_policy(PolicySettings(policy="remote", remote_url="http://127.0.0.1:9/act"))
    assert isinstance(http, RemotePolicy)


def test_the_sim_policy_over_the_wire_equals_it_in_process(serve):
    env = WidowXSimEnv(SimEnvConfig(image_size=(32, 32)))
    try:
        env.reset(seed=3, options={"task": "carrot_on_plate"})
        # what the policy node hands over: the state as it arrives on vgps/sim_state (JSON)
        state = json.loads(json.dumps(env.privileged_state(), default=lambda a: a.tolist()))
        observation = {"image": env.render(), "privileged": state}
        remote = ServerPolicy(serve(SimServed(horizon=2)))
        assert remote.needs_privileged and remote.horizon == 2
        remote.reset()
        wire = remote.sample(observation, env.instruction, 8, np.random.default_rng(11))
        seed = int(np.random.default_rng(11).integers(0, 2**31 - 1))
        local = SimPolicy(SimServed(horizon=2).config).sample(
            {"image": observation["image"], "privileged": env.privileged_state()},
            env.instruction, 8, np.random.default_rng(seed))
        np.testing.assert_allclose(wire, local, atol=1e-6)
    finally:
        env.close()
