"""The wire format and the checks around a policy, without a network."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from vgps_policy_server.policies.random import RandomPolicy
from vgps_policy_server.policy import (
    EpisodeStore,
    ServedPolicy,
    check_actions,
    check_observation,
    make_metadata,
    validate_metadata,
)
from vgps_policy_server.protocol import (
    DTYPES,
    PROTOCOL,
    ProtocolError,
    pack,
    parse_request,
    unpack,
)


@pytest.mark.parametrize("dtype", DTYPES)
def test_arrays_round_trip_for_every_wire_dtype(dtype):
    array = (np.arange(24) % 5).astype(dtype).reshape(2, 3, 4)
    back = unpack(pack({"a": array}))["a"]
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)
    assert not back.flags.writeable  # a view of the received bytes, no copy


def test_non_contiguous_big_endian_empty_and_scalar_arrays():
    array = np.arange(12, dtype=">f8").reshape(3, 4)[:, ::2]
    np.testing.assert_array_equal(unpack(pack(array)), array)
    assert unpack(pack(np.zeros((0, 7), np.float32))).shape == (0, 7)
    assert unpack(pack(np.array(3, np.int64))) == 3
    assert unpack(pack({"x": np.float32(2.5), "b": np.bool_(True)})) == {"x": 2.5, "b": True}


def test_the_array_encoding_is_a_plain_msgpack_map():
    raw = msgpack.unpackb(pack(np.array([1, 2], np.int32)))
    assert raw == {"__ndarray__": "int32", "shape": [2],
                   "data": b"\x01\x00\x00\x00\x02\x00\x00\x00"}


@pytest.mark.parametrize("array", [np.zeros(3, np.float16), np.zeros(3, np.complex64),
                                   np.array(["a"]), np.zeros(2, np.uint16)])
def test_dtypes_outside_the_whitelist_cannot_be_sent(array):
    with pytest.raises(TypeError, match="cannot be sent"):
        pack({"a": array})


def test_unpackable_objects_name_their_type():
    with pytest.raises(TypeError, match="cannot send a object"):
        pack({"a": object()})


def test_parse_request_fields():
    request = parse_request(pack({"type": "sample", "episode_id": "e", "step": 3, "k": 5,
                                  "seed": 2**64 - 1, "instruction": "go",
                                  "observation": {"images": {}}}))
    assert (request.type, request.episode_id, request.step, request.k) == ("sample", "e", 3, 5)
    assert request.seed == 2**64 - 1
    assert parse_request(pack({"type": "metadata", "protocol": PROTOCOL})).type == "metadata"
    with pytest.raises(ProtocolError) as info:
        parse_request(pack({"type": "metadata", "protocol": "vgps-policy/0"}))
    assert info.value.code == "version_mismatch"
    with pytest.raises(ProtocolError) as info:
        parse_request(b"\x00" * 11, max_message_bytes=10)
    assert info.value.code == "too_large"


def test_metadata_validation_names_the_bad_key():
    meta = make_metadata("m", "1", horizon=2, images={"primary": (256, 256)}, state=["eef"])
    assert validate_metadata(meta) == meta
    for key, value in [("horizon", 0), ("action_dim", 6), ("images", {"p": [256]}),
                       ("needs_privileged", 1), ("episodes", "one"), ("max_k", True)]:
        with pytest.raises(ValueError, match=key):
            validate_metadata({**meta, key: value})
    with pytest.raises(ValueError, match="lacks"):
        validate_metadata({k: v for k, v in meta.items() if k != "window"})


def test_observation_checks():
    meta = make_metadata("m", "1", horizon=1, images={"primary": (4, 6)}, state=["eef"])
    good = {"images": {"primary": np.zeros((4, 6, 3), np.uint8)},
            "state": {"eef": np.zeros(7, np.float32)}}
    assert check_observation(good, meta)["images"] is good["images"]
    any_size = make_metadata("m", "1", horizon=1, images={"primary": (0, 0)})
    check_observation({"images": {"primary": np.zeros((9, 5, 3), np.uint8)}}, any_size)
    bad = [({**good, "state": {"eef": np.array([np.nan], np.float32)}}, "NaN or inf"),
           ({**good, "state": {}}, "state 'eef' missing"),
           ({**good, "images": {"primary": np.zeros((4, 7, 3), np.uint8)}}, "shape"),
           ({**good, "images": {}}, "image 'primary' missing")]
    for observation, match in bad:
        with pytest.raises(ProtocolError, match=match) as info:
            check_observation(observation, meta)
        assert info.value.code == "bad_observation"


def test_action_checks():
    ok = np.zeros((3, 2, 7), np.float32)
    assert check_actions(ok, 3, 2) is ok
    for bad in [ok.astype(np.float64), ok[:, :1], ok.tolist(), np.full_like(ok, np.inf)]:
        with pytest.raises(ProtocolError) as info:
            check_actions(bad, 3, 2)
        assert info.value.code == "bad_actions"


def test_episode_store_keeps_the_most_recent_episodes():
    store: EpisodeStore[list] = EpisodeStore(list, max_episodes=2)
    store.get("a").append(1)
    store.get("b").append(2)
    store.get("a")  # a is now the most recent
    store.get("c")
    assert "a" in store and "c" in store and "b" not in store and len(store) == 2
    assert store.get("a") == [1]
    assert store.reset("a") == [] and store.get("a") == []


def test_random_policy_is_a_served_policy_and_seeded():
    policy = RandomPolicy(horizon=3)
    assert isinstance(policy, ServedPolicy)
    a = policy.sample({}, "x", 4, seed=1, episode_id="e", step=0)
    b = policy.sample({}, "x", 4, seed=1, episode_id="f", step=9)
    assert a.shape == (4, 3, 7) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert ((a[..., 6] >= 0) & (a[..., 6] <= 1)).all()
    with pytest.raises(ValueError, match="horizon"):
        RandomPolicy(horizon=0)
