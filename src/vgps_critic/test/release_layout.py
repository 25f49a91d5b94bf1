"""Writers (and a small reader) of V-GPS agent checkpoints in the official code's layout.

Written from the project's fact sheet on the released V-GPS checkpoint §1-§2 with plain
``msgpack`` (no flax/orbax), as an independent test fixture for importers.

Encoding: maps with string keys, lists, nil; every array (0-d ones included) is msgpack **ext
type 1** whose payload is ``msgpack.packb([shape, dtype_name, raw C-order little-endian bytes])``.

Two container forms are supported:

* orbax (flax 0.7.5 default): ``checkpoint_<step>/`` directory with ``checkpoint`` (the msgpack
  document) and ``_METADATA`` (JSON ``{"tree_metadata": ...}``); Adam state encoded as
  ``inner_state = [[{count, mu, nu}, None]]``.
* legacy flax: a single msgpack file; ``inner_state = {"0": {"0": {count, mu, nu}, "1": {}}}``.

:func:`agent_tree` returns the *container-neutral* tree, whose ``inner_state`` is the bare Adam
dict ``{count, mu, nu}``; the writers wrap it in the container form of their writer.
"""

from __future__ import annotations

import json
import os
from typing import Any

import msgpack
import numpy as np

EXT_NDARRAY = 1
_ADAM_KEYS = {"count", "mu", "nu"}


# --------------------------------------------------------------------------------------------
# Tree construction
# --------------------------------------------------------------------------------------------


def _map_arrays(fn, tree: Any) -> Any:
    """Applies ``fn`` to every array leaf of a nested dict/list tree (None kept)."""
    if tree is None:
        return None
    if isinstance(tree, dict):
        return {k: _map_arrays(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_map_arrays(fn, v) for v in tree]
    return np.asarray(fn(np.asarray(tree)))


def _as_f32(tree: Any) -> Any:
    return _map_arrays(lambda a: np.ascontiguousarray(a, dtype=np.float32), tree)


def dummy_actor_params() -> dict:
    """A tiny stand-in for the (large, irrelevant) actor tree.

    Returns:
        {"encoder": {"kernel": (2, 3)}, "Dense_0": {"kernel": (3, 4), "bias": (4,)}} float32.
    """
    r = np.random.default_rng(1234)
    return {
        "encoder": {"kernel": r.standard_normal((2, 3)).astype(np.float32)},
        "Dense_0": {
            "kernel": r.standard_normal((3, 4)).astype(np.float32),
            "bias": r.standard_normal((4,)).astype(np.float32),
        },
    }


def agent_tree(
    critic_params: dict,
    target_critic_params: dict,
    actor_params: dict | None = None,
    step: int = 500000,
) -> dict:
    """Builds the whole-agent state tree (container-neutral form).

    ``opt_states`` holds ``actor``, ``critic`` and ``temperature``, each
    ``{count: int32 (), hyperparams: {learning_rate: float32 ()}, inner_state: {count, mu, nu}}``
    where Adam's ``mu`` and ``nu`` each mirror the entire ``params`` tree (``mu = -params``,
    ``nu = params**2``, so they are distinguishable from the parameters).

    Args:
        critic_params: Online critic tree (stored at ``state/params/modules_critic``).
        target_critic_params: Target critic tree (``state/target_params/modules_critic``).
        actor_params: Actor tree; a small dummy by default.
        step: Number of updates (int32 ``state/step``).

    Returns:
        {"state": {"step", "params", "target_params", "opt_states", "rng"}} of numpy arrays.
    """
    if actor_params is None:
        actor_params = dummy_actor_params()
    params = {
        "modules_actor": _as_f32(actor_params),
        "modules_critic": _as_f32(critic_params),
        "modules_temperature": {"lagrange": np.asarray(0.0, np.float32)},
    }
    target = {
        "modules_actor": _as_f32(actor_params),
        "modules_critic": _as_f32(target_critic_params),
        "modules_temperature": {"lagrange": np.asarray(0.0, np.float32)},
    }
    count = np.asarray(step, np.int32)

    def opt_state(lr: float) -> dict:
        return {
            "count": count.copy(),
            "hyperparams": {"learning_rate": np.asarray(lr, np.float32)},
            "inner_state": {
                "count": count.copy(),
                "mu": _map_arrays(lambda a: -a, params),
                "nu": _map_arrays(lambda a: a * a, params),
            },
        }

    return {
        "state": {
            "step": count.copy(),
            "params": params,
            "target_params": target,
            "opt_states": {
                "actor": opt_state(3e-4),
                "critic": opt_state(3e-4),
                "temperature": opt_state(3e-4),
            },
            "rng": np.asarray([0, 42], np.uint32),
        }
    }


def _wrap_inner_states(tree: dict, form: str) -> dict:
    """Returns a copy of ``tree`` whose bare Adam ``inner_state`` dicts use ``form`` encoding."""
    state = dict(tree["state"])
    opt = {}
    for name, st in state["opt_states"].items():
        st = dict(st)
        inner = st["inner_state"]
        if isinstance(inner, dict) and set(inner) == _ADAM_KEYS:
            if form == "orbax":
                st["inner_state"] = [[inner, None]]
            else:
                st["inner_state"] = {"0": {"0": inner, "1": {}}}
        opt[name] = st
    state["opt_states"] = opt
    return {**tree, "state": state}


def orbax_encoded(tree: dict) -> dict:
    """The tree exactly as :func:`write_orbax_dir` stores it (``[[adam, None]]``)."""
    return _wrap_inner_states(tree, "orbax")


def legacy_encoded(tree: dict) -> dict:
    """The tree exactly as :func:`write_legacy_file` stores it.

    Inner states are ``{"0": {"0": adam, "1": {}}}``.
    """
    return _wrap_inner_states(tree, "legacy")


# --------------------------------------------------------------------------------------------
# msgpack encoding
# --------------------------------------------------------------------------------------------


def _ext_default(obj: Any) -> msgpack.ExtType:
    """msgpack ``default`` hook: numpy arrays/scalars -> ext type 1."""
    if isinstance(obj, (np.ndarray, np.generic)):
        arr = np.asarray(obj)
        le = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        payload = msgpack.packb(
            [list(arr.shape), arr.dtype.name, le.tobytes(order="C")], use_bin_type=True
        )
        return msgpack.ExtType(EXT_NDARRAY, payload)
    raise TypeError(f"cannot serialise {type(obj)!r}")


def _check_tree(tree: Any, path: str = "") -> None:
    """Rejects anything that is not dict(str keys)/list/None/numpy array."""
    if tree is None or isinstance(tree, (np.ndarray, np.generic)):
        return
    if isinstance(tree, dict):
        for k, v in tree.items():
            if not isinstance(k, str):
                raise TypeError(f"non-string key {k!r} at {path!r}")
            _check_tree(v, f"{path}/{k}")
        return
    if isinstance(tree, list):
        for i, v in enumerate(tree):
            _check_tree(v, f"{path}/{i}")
        return
    raise TypeError(f"unsupported leaf {type(tree)!r} at {path!r}")


def pack_tree(tree: dict) -> bytes:
    """Serialises a tree (dict/list/None/numpy leaves) to one msgpack document.

    Args:
        tree: Nested tree; every array leaf must be a numpy array.

    Returns:
        msgpack bytes.
    """
    _check_tree(tree)
    return msgpack.packb(tree, default=_ext_default, use_bin_type=True, strict_types=True)


def _leaf_paths(tree: Any, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    """(path, leaf) pairs; list indices appear as ints in the path."""
    if isinstance(tree, dict):
        out = []
        for k, v in tree.items():
            out += _leaf_paths(v, (*prefix, k))
        return out
    if isinstance(tree, list):
        out = []
        for i, v in enumerate(tree):
            out += _leaf_paths(v, (*prefix, i))
        return out
    return [(prefix, tree)]


def orbax_metadata(encoded_tree: dict) -> dict:
    """A plausible minimal orbax ``_METADATA`` document (importers ignore it).

    Keys are the Python-tuple string of the leaf path; ``key_type`` 2 = dict key, 1 = sequence
    index (the latter is an assumption; the facts only name 2).

    Args:
        encoded_tree: Tree in orbax container encoding.

    Returns:
        {"tree_metadata": {path_str: {"key_metadata": [...], "value_metadata": {...}}}}.
    """
    meta = {}
    for path, leaf in _leaf_paths(encoded_tree):
        keys = [str(k) for k in path]
        meta[str(tuple(keys))] = {
            "key_metadata": [
                {"key": str(k), "key_type": 1 if isinstance(k, int) else 2} for k in path
            ],
            "value_metadata": {
                "value_type": "None" if leaf is None else "jax.Array",
                "skip_deserialize": leaf is None,
            },
        }
    return {"tree_metadata": meta}


def write_orbax_dir(tree: dict, path: str | os.PathLike) -> str:
    """Writes an orbax-style ``checkpoint_<step>`` directory.

    Args:
        tree: Agent tree (from :func:`agent_tree`; bare Adam inner states are wrapped as
            ``[[adam, None]]``, already-wrapped ones are kept).
        path: Directory to create (parents created too).

    Returns:
        The directory path as str.
    """
    enc = orbax_encoded(tree)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "checkpoint"), "wb") as f:
        f.write(pack_tree(enc))
    with open(os.path.join(path, "_METADATA"), "w") as f:
        json.dump(orbax_metadata(enc), f)
    return os.fspath(path)


def write_legacy_file(tree: dict, path: str | os.PathLike) -> str:
    """Writes a legacy flax single-file msgpack checkpoint.

    Args:
        tree: Agent tree (bare Adam inner states are wrapped as ``{"0": {"0": adam, "1": {}}}``).
        path: File to write (parent directories created).

    Returns:
        The file path as str.
    """
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "wb") as f:
        f.write(pack_tree(legacy_encoded(tree)))
    return os.fspath(path)


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------


def _ext_hook(code: int, data: bytes) -> Any:
    if code != EXT_NDARRAY:
        raise ValueError(f"unexpected msgpack ext type {code}")
    shape, dtype_name, raw = msgpack.unpackb(data, raw=False)
    dt = np.dtype(dtype_name).newbyteorder("<")
    arr = np.frombuffer(raw, dtype=dt).reshape(shape)
    return arr.astype(arr.dtype.newbyteorder("="), copy=True)


def unpack_tree(data: bytes) -> dict:
    """Decodes a msgpack document with ext type 1 arrays back to numpy.

    Args:
        data: msgpack bytes.

    Returns:
        Nested dict/list/None tree with numpy array leaves.
    """
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=True)


def read_msgpack_tree(path: str | os.PathLike) -> dict:
    """Reads a checkpoint written by either writer (directory -> its ``checkpoint`` file).

    Args:
        path: Orbax directory or single msgpack file.

    Returns:
        The decoded tree (container encoding preserved).
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        p = os.path.join(p, "checkpoint")
    with open(p, "rb") as f:
        return unpack_tree(f.read())
