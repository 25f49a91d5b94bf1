"""Self-tests of the release checkpoint writers (release_layout): tree, orbax and legacy files."""

from __future__ import annotations

import json
import os

import msgpack
import numpy as np
import pytest
from reference_params import TINY, assert_bit_equal, count_params, random_release_params
from release_layout import (
    agent_tree,
    legacy_encoded,
    orbax_encoded,
    read_msgpack_tree,
    write_legacy_file,
    write_orbax_dir,
)

# ---------------------------------------------------------------------------- writers


@pytest.fixture(scope="module")
def tiny_agent(tiny_params):
    target = random_release_params(np.random.default_rng(11), **TINY)
    return agent_tree(tiny_params, target, step=1234)


def test_agent_tree_structure(tiny_agent, tiny_params):
    s = tiny_agent["state"]
    assert set(s) == {"step", "params", "target_params", "opt_states", "rng"}
    assert s["step"].dtype == np.int32 and s["step"].shape == () and int(s["step"]) == 1234
    assert s["rng"].dtype == np.uint32 and s["rng"].shape == (2,)
    for key in ("params", "target_params"):
        assert set(s[key]) == {"modules_actor", "modules_critic", "modules_temperature"}
        assert s[key]["modules_temperature"]["lagrange"].shape == ()
    assert set(s["opt_states"]) == {"actor", "critic", "temperature"}
    for st in s["opt_states"].values():
        assert st["count"].dtype == np.int32
        assert st["hyperparams"]["learning_rate"].dtype == np.float32
        inner = st["inner_state"]
        assert set(inner) == {"count", "mu", "nu"}
        assert count_params(inner["mu"]) == count_params(s["params"])
    assert_bit_equal(s["params"]["modules_critic"], tiny_params)


def test_orbax_dir_round_trip(tmp_path, tiny_agent):
    d = tmp_path / "checkpoint_1234"
    write_orbax_dir(tiny_agent, d)
    assert sorted(os.listdir(d)) == ["_METADATA", "checkpoint"]
    back = read_msgpack_tree(d)
    assert_bit_equal(back, orbax_encoded(tiny_agent))
    inner = back["state"]["opt_states"]["critic"]["inner_state"]
    assert isinstance(inner, list) and len(inner) == 1 and inner[0][1] is None
    assert set(inner[0][0]) == {"count", "mu", "nu"}
    meta = json.loads((d / "_METADATA").read_text())
    key = "('state', 'target_params', 'modules_critic', 'Dense_0', 'kernel')"
    assert meta["tree_metadata"][key]["value_metadata"]["value_type"] == "jax.Array"


def test_legacy_file_round_trip(tmp_path, tiny_agent):
    f = tmp_path / "checkpoint_1234"
    write_legacy_file(tiny_agent, f)
    assert f.is_file()
    back = read_msgpack_tree(f)
    assert_bit_equal(back, legacy_encoded(tiny_agent))
    inner = back["state"]["opt_states"]["actor"]["inner_state"]
    assert set(inner) == {"0"} and set(inner["0"]) == {"0", "1"} and inner["0"]["1"] == {}
    assert int(inner["0"]["0"]["count"]) == 1234


def test_raw_encoding_is_ext1_with_list_payload(tmp_path, tiny_agent):
    f = tmp_path / "legacy"
    write_legacy_file(tiny_agent, f)
    seen = []

    def hook(code, data):
        payload = msgpack.unpackb(data, raw=False)
        seen.append((code, payload))

    msgpack.unpackb(f.read_bytes(), ext_hook=hook, raw=False)
    assert seen and all(code == 1 for code, _ in seen)
    for _, payload in seen:
        shape, dtype_name, raw = payload
        assert isinstance(shape, list) and isinstance(raw, bytes)
        assert dtype_name in {"float32", "int32", "uint32"}
        assert len(raw) == int(np.prod(shape)) * np.dtype(dtype_name).itemsize
    # The 0-d step is an ext too: shape [], int32, 4 little-endian bytes.
    assert [[], "int32", (1234).to_bytes(4, "little")] in [p for _, p in seen]
