"""A real PolicyServer (in a thread, 127.0.0.1, free port) against PolicyClient and raw frames."""

from __future__ import annotations

import copy
import time

import msgpack
import numpy as np
import pytest
from websockets.sync.client import connect

from vgps_policy_server.client import (
    PolicyClient,
    PolicyServerError,
)
from vgps_policy_server.policies.random import RandomPolicy
from vgps_policy_server.policy import EpisodeStore, make_metadata
from vgps_policy_server.protocol import ERROR_CODES, PROTOCOL, pack, unpack
from vgps_policy_server.server import PolicyServer

INSTRUCTION = "put the carrot on the plate"


class HistoryPolicy:
    """Remembers the steps of each episode: action[..., 0] = history length, [..., 1] = step."""

    def __init__(self, max_episodes: int = 8):
        self.store: EpisodeStore[list] = EpisodeStore(list, max_episodes)

    def metadata(self):
        return make_metadata("history", "1", horizon=2, images={"primary": (64, 64)},
                             state=["eef"], window=2, max_k=8)

    def reset(self, episode_id):
        self.store.reset(episode_id)

    def sample(self, observation, instruction, k, seed, episode_id, step):
        history = self.store.get(episode_id)
        history.append(step)
        out = np.zeros((k, 2, 7), np.float32)
        out[..., 0], out[..., 1] = len(history), step
        return out


class ScriptedPolicy(RandomPolicy):
    """A random policy whose ``sample`` returns ``result(k)`` or sleeps ``sleep_s`` first."""

    def __init__(self, result=None, sleep_s: float = 0.0):
        super().__init__(horizon=4)
        self.result, self.sleep_s = result, sleep_s

    def sample(self, observation, instruction, k, seed, episode_id, step):
        time.sleep(self.sleep_s)
        if self.result is not None:
            return self.result(k)
        return super().sample(observation, instruction, k, seed, episode_id, step)


def ask(ws, data) -> dict:
    ws.send(data)
    return unpack(ws.recv(timeout=10))


def sample_request(observation, **fields) -> dict:
    return {"type": "sample", "episode_id": "ep", "step": 0, "k": 4, "seed": 0,
            "instruction": INSTRUCTION, "observation": observation, **fields}


# -- round trips -------------------------------------------------------------------------------

def test_metadata_reset_sample_round_trip(serve, observation):
    server = serve(RandomPolicy(horizon=4))
    with PolicyClient(server.url, timeout_s=5.0) as client:
        meta = client.metadata()
        assert meta["protocol"] == PROTOCOL and meta["policy"]["name"] == "random"
        assert (meta["horizon"], meta["action_dim"], meta["images"]) == (4, 7,
                                                                         {"primary": [256, 256]})
        assert meta["episodes"] == "many" and meta["needs_privileged"] is False
        client.reset("ep-1")
        obs = observation()
        actions, timing = client.sample(obs, INSTRUCTION, k=50, seed=123, episode_id="ep-1",
                                        step=0)
        assert actions.shape == (50, 4, 7) and actions.dtype == np.float32
        assert actions.flags.writeable
        assert 0 < timing["sample_ms"] <= timing["server_ms"] <= timing["round_trip_ms"]
        again, _ = client.sample(obs, INSTRUCTION, k=50, seed=123, episode_id="ep-2", step=5)
        other, _ = client.sample(obs, INSTRUCTION, k=50, seed=124, episode_id="ep-1", step=1)
        np.testing.assert_array_equal(actions, again)
        assert not np.array_equal(actions, other)
        np.testing.assert_array_equal(
            actions, RandomPolicy(horizon=4).sample(obs, INSTRUCTION, 50, 123, "x", 0))


def test_reset_clears_one_episode_and_episodes_are_independent(serve, observation):
    server = serve(HistoryPolicy())
    obs = observation(64, eef=np.zeros(7, np.float32))

    def history(client, episode, step):
        actions, _ = client.sample(obs, INSTRUCTION, 2, 0, episode, step)
        assert (actions[..., 1] == step).all()
        return int(actions[0, 0, 0])

    with PolicyClient(server.url) as client, PolicyClient(server.url) as other:
        client.reset("A")
        assert [history(client, "A", s) for s in range(3)] == [1, 2, 3]
        other.reset("B")
        assert history(other, "B", 0) == 1
        assert history(client, "A", 3) == 4  # B did not touch A
        client.reset("A")
        assert history(client, "A", 0) == 1
        assert history(other, "B", 1) == 2  # resetting A did not touch B


# -- malformed requests --------------------------------------------------------------------------

def _array(name, shape, data):
    return {"__ndarray__": name, "shape": shape, "data": data}


def _with(request, path, value):
    request = copy.deepcopy(request)
    *parents, last = path
    node = request
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return request


MALFORMED = [  # (name, how to break a valid sample request, expected code)
    ("not msgpack", lambda r: b"\xc1\xc1", "bad_message"),
    ("truncated", lambda r: pack(r)[:-10], "bad_message"),
    ("two messages", lambda r: pack(r) + pack(r), "bad_message"),
    ("text frame", lambda r: "hello", "bad_message"),
    ("deep nesting", lambda r: b"\x91" * 100_000 + b"\x00", "bad_message"),
    ("not a map", lambda r: pack([1, 2, 3]), "bad_message"),
    ("integer keys", lambda r: msgpack.packb({1: 2}), "bad_message"),
    ("no type", lambda r: pack(_with(r, ["type"], KeyError)), "bad_message"),
    ("unknown type", lambda r: pack(_with(r, ["type"], "act")), "bad_message"),
    ("missing k", lambda r: pack(_with(r, ["k"], KeyError)), "bad_message"),
    ("missing observation", lambda r: pack(_with(r, ["observation"], KeyError)),
     "bad_message"),
    ("k a string", lambda r: pack(_with(r, ["k"], "50")), "bad_message"),
    ("k a bool", lambda r: pack(_with(r, ["k"], True)), "bad_message"),
    ("k a float", lambda r: pack(_with(r, ["k"], 4.0)), "bad_message"),
    ("seed negative", lambda r: pack(_with(r, ["seed"], -1)), "bad_message"),
    ("step negative", lambda r: pack(_with(r, ["step"], -1)), "bad_message"),
    ("instruction bytes", lambda r: pack(_with(r, ["instruction"], b"go")), "bad_message"),
    ("empty episode id", lambda r: pack(_with(r, ["episode_id"], "")), "bad_message"),
    ("observation a list", lambda r: pack(_with(r, ["observation"], [])), "bad_message"),
    ("reset without id", lambda r: pack({"type": "reset"}), "bad_message"),
    ("reset id an int", lambda r: pack({"type": "reset", "episode_id": 3}), "bad_message"),
    ("unknown dtype", lambda r: pack(_with(r, ["observation", "images", "primary"],
                                           _array("complex64", [1], b"\0" * 8))),
     "bad_message"),
    ("bytes do not fit the shape", lambda r: pack(_with(
        r, ["observation", "images", "primary"], _array("uint8", [256, 256, 3], b"\0" * 10))),
     "bad_message"),
    ("negative shape", lambda r: pack(_with(r, ["observation", "images", "primary"],
                                            _array("uint8", [-1, 3], b""))), "bad_message"),
    ("protocol 2", lambda r: pack({**r, "protocol": "vgps-policy/2"}), "version_mismatch"),
    ("image float32", lambda r: pack(_with(r, ["observation", "images", "primary"],
                                           np.zeros((256, 256, 3), np.float32))),
     "bad_observation"),
    ("image too small", lambda r: pack(_with(r, ["observation", "images", "primary"],
                                             np.zeros((128, 128, 3), np.uint8))),
     "bad_observation"),
    ("image grey", lambda r: pack(_with(r, ["observation", "images", "primary"],
                                        np.zeros((256, 256), np.uint8))), "bad_observation"),
    ("image RGBA", lambda r: pack(_with(r, ["observation", "images", "primary"],
                                        np.zeros((256, 256, 4), np.uint8))), "bad_observation"),
    ("image missing", lambda r: pack(_with(r, ["observation", "images"], {})),
     "bad_observation"),
    ("images a list", lambda r: pack(_with(r, ["observation", "images"], [])),
     "bad_observation"),
    ("state NaN", lambda r: pack(_with(r, ["observation", "state"],
                                       {"eef": np.array([0.0, np.nan])})), "bad_observation"),
    ("state inf", lambda r: pack(_with(r, ["observation", "state"],
                                       {"eef": np.array([np.inf], np.float32)})),
     "bad_observation"),
    ("state int", lambda r: pack(_with(r, ["observation", "state"],
                                       {"eef": np.array([1], np.int32)})), "bad_observation"),
    ("state a list", lambda r: pack(_with(r, ["observation", "state"], {"eef": [0.0]})),
     "bad_observation"),
    ("privileged a list", lambda r: pack(_with(r, ["observation", "privileged"], [1])),
     "bad_observation"),
    ("k = 0", lambda r: pack(_with(r, ["k"], 0)), "bad_k"),
    ("k negative", lambda r: pack(_with(r, ["k"], -3)), "bad_k"),
    ("k = max_k + 1", lambda r: pack(_with(r, ["k"], 257)), "bad_k"),
    ("k huge", lambda r: pack(_with(r, ["k"], 2**62)), "bad_k"),
]


@pytest.fixture(scope="module")
def random_server():
    with PolicyServer(RandomPolicy(horizon=4), "127.0.0.1", 0) as server:
        yield server


@pytest.mark.parametrize("name, make, code", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_requests_get_typed_errors_and_the_connection_goes_on(random_server,
                                                                        observation, name,
                                                                        make, code):
    valid = sample_request(observation())
    with connect(random_server.url, compression=None, max_size=None) as ws:
        reply = ask(ws, make(valid))
        assert reply["type"] == "error" and reply["code"] == code, reply
        assert reply["message"]
        assert ask(ws, pack(valid))["type"] == "actions"  # the same connection goes on


def test_oversize_messages(serve, observation):
    server = serve(RandomPolicy(horizon=4, image_size=0), max_message_bytes=2**20)
    with connect(server.url, compression=None, max_size=None) as ws:
        reply = ask(ws, b"\x00" * (3 * 2**19))  # 1.5 MiB: read, answered, connection kept
        assert (reply["type"], reply["code"]) == ("error", "too_large")
        assert "1048576" in reply["message"]
        assert ask(ws, pack({"type": "metadata"}))["type"] == "metadata"
    with PolicyClient(server.url) as client:  # over twice the limit: refused unread
        with pytest.raises(PolicyServerError) as info:
            client.sample(observation(1024), INSTRUCTION, 4, 0, "ep", 0)
        assert info.value.code == "too_large"
        actions, _ = client.sample(observation(256), INSTRUCTION, 4, 0, "ep", 0)  # reconnects
        assert actions.shape == (4, 4, 7)


def _random_value(rng, depth=0):
    kind = rng.integers(0, 9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return bool(rng.integers(0, 2))
    if kind == 2:
        return int(rng.integers(-2**63, 2**63 - 1))
    if kind == 3:
        return float(rng.choice([0.5, -1e308, np.nan, np.inf, 3.0]))
    if kind == 4:
        return "".join(rng.choice(list("abk_ \u00e9\u4e2d"), rng.integers(0, 8)))
    if kind == 5:
        return rng.bytes(int(rng.integers(0, 16)))
    if kind == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.integers(0, 4))]
    if kind == 7:
        return {str(_random_value(rng, 3)): _random_value(rng, depth + 1)
                for _ in range(rng.integers(0, 4))}
    return _array(str(rng.choice(["uint8", "float32", "float16", "bool", "object", "x"])),
                  [int(d) for d in rng.integers(-1, 4, rng.integers(0, 4))],
                  rng.bytes(int(rng.integers(0, 40))))


def _fuzz_message(rng, valid):
    kind = rng.integers(0, 5)
    if kind == 0:  # random bytes
        return rng.bytes(int(rng.integers(0, 64)))
    if kind == 1:  # any msgpack value
        return msgpack.packb(_random_value(rng))
    if kind == 2:  # a valid request with one field replaced or removed
        request = dict(valid)
        key = str(rng.choice([*request, "protocol"]))
        request[key] = KeyError if rng.random() < 0.3 else _random_value(rng)
        request = {k: v for k, v in request.items() if v is not KeyError}
        return pack(request)
    if kind == 3:  # a valid observation with a random image or state
        observation = {"images": {"primary": _random_value(rng)},
                       "state": {"eef": _random_value(rng)}}
        return pack({**valid, "observation": observation})
    data = bytearray(pack({**valid, "observation": {"images": {}}}))  # flipped bytes
    for _ in range(int(rng.integers(1, 4))):
        data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
    return bytes(data)


def test_fuzz_1200_malformed_requests_then_a_valid_one(serve, observation):
    server = serve(RandomPolicy(horizon=4))
    valid = sample_request(observation())
    rng = np.random.default_rng(20240607)
    codes: dict[str, int] = {}
    with connect(server.url, compression=None, max_size=None) as ws:
        for _ in range(1200):
            reply = ask(ws, _fuzz_message(rng, valid))
            assert reply["type"] in ("error", "ok", "metadata", "actions"), reply
            if reply["type"] == "error":
                assert reply["code"] in ERROR_CODES and isinstance(reply["message"], str)
                codes[reply["code"]] = codes.get(reply["code"], 0) + 1
        assert ask(ws, pack(valid))["actions"].shape == (4, 4, 7)
    assert {"bad_message", "bad_observation"} <= set(codes), codes
    with PolicyClient(server.url) as client:
        assert client.sample(observation(), INSTRUCTION, 50, 1, "ep", 0)[0].shape == (50, 4, 7)


# -- what the policy returns -------------------------------------------------------------------

def _nan(k):
    out = np.zeros((k, 4, 7), np.float32)
    out[0, 0, 0] = np.nan
    return out


def _raise(k):
    raise RuntimeError("the model fell over")


@pytest.mark.parametrize("result, code, match", [
    (_nan, "bad_actions", "NaN"),
    (lambda k: np.full((k, 4, 7), np.inf, np.float32), "bad_actions", "NaN/inf"),
    (lambda k: np.zeros((k, 1, 7), np.float32), "bad_actions", "shape"),
    (lambda k: np.zeros((k + 1, 4, 7), np.float32), "bad_actions", "shape"),
    (lambda k: np.zeros((k, 4, 6), np.float32), "bad_actions", "shape"),
    (lambda k: np.zeros((k, 4, 7)), "bad_actions", "float64"),
    (lambda k: [[[0.0] * 7] * 4] * k, "bad_actions", "list"),
    (_raise, "policy_error", "RuntimeError: the model fell over"),
], ids=["nan", "inf", "short chunk", "k+1", "6-D", "float64", "list", "raises"])
def test_bad_policy_output_is_never_forwarded(serve, observation, result, code, match):
    policy = ScriptedPolicy(result)
    server = serve(policy)
    with PolicyClient(server.url) as client:
        with pytest.raises(PolicyServerError, match=match) as info:
            client.sample(observation(), INSTRUCTION, 3, 0, "ep", 0)
        assert info.value.code == code
        policy.result = None  # the server keeps serving
        assert client.sample(observation(), INSTRUCTION, 3, 0, "ep", 1)[0].shape == (3, 4, 7)


def test_a_reset_that_raises_is_a_policy_error(serve):
    class BadReset(RandomPolicy):
        def reset(self, episode_id):
            raise KeyError(episode_id)

    with PolicyClient(serve(BadReset()).url) as client:
        with pytest.raises(PolicyServerError, match="reset raised KeyError: 'ep-9'") as info:
            client.reset("ep-9")
        assert info.value.code == "policy_error"
        assert client.metadata()["policy"]["name"] == "random"


def test_invalid_metadata_is_refused_at_construction():
    class Bad(RandomPolicy):
        def metadata(self):
            return {**super().metadata(), "action_space": "joint_positions"}

    with pytest.raises(ValueError, match="action_space"):
        PolicyServer(Bad(), "127.0.0.1", 0)


# -- client errors -------------------------------------------------------------------------------
