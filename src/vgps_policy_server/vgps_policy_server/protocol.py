"""The wire format of ``vgps-policy/1``: msgpack messages, numpy arrays, request parsing.

One request and one reply are each one binary WebSocket message holding one msgpack map with a
``"type"`` key (docs/policy_protocol.md). A numpy array travels as a map
``{"__ndarray__": DTYPE, "shape": [d0, ...], "data": <bin, C-order, little-endian>}`` with
``DTYPE`` one of :data:`DTYPES`; :func:`pack` writes arrays (and numpy scalars) that way and
:func:`unpack` turns such maps back into arrays. Arrays decoded by :func:`unpack` are read-only
views of the received bytes (no copy).

Everything that can be wrong with a request raises :class:`ProtocolError` with one of
:data:`ERROR_CODES`; :func:`parse_request` checks the fields of each message type.

Usage::

    data = pack({"type": "sample", "observation": {"images": {"primary": frame}}, ...})
    request = parse_request(data, max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES)
    request.k, request.observation["images"]["primary"].shape           # 50, (256, 256, 3)
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

import msgpack
import numpy as np

PROTOCOL = "vgps-policy/1"
DEFAULT_MAX_MESSAGE_BYTES = 32 * 2**20
ARRAY_KEY = "__ndarray__"
DTYPES = ("uint8", "int32", "int64", "float32", "float64", "bool")
ERROR_CODES = ("bad_message", "version_mismatch", "too_large", "bad_observation", "bad_k",
               "policy_error", "bad_actions")
REQUEST_TYPES = ("metadata", "reset", "sample")
MAX_ID_CHARS = 256  # episode ids
MAX_SEED = 2**64 - 1
_WIRE_DTYPES = {name: np.dtype(name).newbyteorder("<") for name in DTYPES}


class ProtocolError(ValueError):
    """A message that breaks the protocol; ``code`` is one of :data:`ERROR_CODES`."""

    def __init__(self, code: str, message: str):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown protocol error code {code!r}; use one of {ERROR_CODES}")
        super().__init__(message)
        self.code, self.message = code, message


def _default(obj: Any) -> Any:
    """msgpack's hook for what it cannot pack: numpy arrays and scalars."""
    if isinstance(obj, np.ndarray):
        return encode_array(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot send a {type(obj).__name__} over {PROTOCOL}: use maps, lists, "
                    f"str, bytes, numbers, bool, None and numpy arrays of {DTYPES}")


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """An array -> its wire map (C-order little-endian bytes; a copy only when needed).

    Raises:
        TypeError: the dtype is not one of :data:`DTYPES`.
    """
    name = array.dtype.name
    if name not in _WIRE_DTYPES:
        raise TypeError(f"array dtype {array.dtype} cannot be sent over {PROTOCOL}: use one "
                        f"of {DTYPES}")
    wire = _WIRE_DTYPES[name]
    if array.dtype != wire or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array, dtype=wire)
    # a memoryview of the array: msgpack copies it straight into its output buffer
    data = memoryview(array.reshape(-1).view(np.uint8)) if array.size else b""
    return {ARRAY_KEY: name, "shape": list(array.shape), "data": data}


def decode_array(obj: dict[str, Any]) -> np.ndarray:
    """A wire map -> a read-only array viewing its bytes.

    Raises:
        ProtocolError: ``bad_message`` for an unknown dtype, a bad shape or a byte count that
            does not match the shape.
    """
    name, shape, data = obj.get(ARRAY_KEY), obj.get("shape"), obj.get("data")
    if not isinstance(name, str) or name not in _WIRE_DTYPES:
        raise ProtocolError("bad_message", f"array dtype {name!r} is not one of {DTYPES}")
    if not isinstance(shape, list) or len(shape) > 32 or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape):
        raise ProtocolError("bad_message", f"array shape {shape!r}: need a list of integers "
                                           ">= 0")
    if not isinstance(data, bytes):
        raise ProtocolError("bad_message", f"array data is a {type(data).__name__}, not bytes")
    dtype = _WIRE_DTYPES[name]
    count = math.prod(shape)
    if count * dtype.itemsize != len(data):
        raise ProtocolError("bad_message", f"array of shape {shape} and dtype {name} needs "
                                           f"{count * dtype.itemsize} bytes, got {len(data)}")
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        array = array.astype(dtype.newbyteorder("="))
    return array


def _object_hook(obj: dict[str, Any]) -> Any:
    return decode_array(obj) if ARRAY_KEY in obj else obj


def pack(message: Any) -> bytes:
    """A message (maps, lists, scalars, numpy arrays) -> msgpack bytes."""
    return msgpack.packb(message, default=_default, use_bin_type=True)


def unpack(data: bytes) -> Any:
    """msgpack bytes -> a message, arrays decoded.

    Raises:
        ProtocolError: ``bad_message`` when ``data`` is not one valid msgpack value (or holds a
            malformed array).
    """
    try:
        return msgpack.unpackb(data, object_hook=_object_hook, raw=False, use_list=True)
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - msgpack raises many types for bad input
        raise ProtocolError("bad_message", f"not a msgpack message: {type(exc).__name__}: "
                                           f"{exc}") from None


@dataclasses.dataclass(frozen=True)
class Request:
    """A parsed request. ``type`` is one of :data:`REQUEST_TYPES`; the rest is set for sample
    (``episode_id`` also for reset)."""

    type: str
    episode_id: str = ""
    step: int = 0
    k: int = 0
    seed: int = 0
    instruction: str = ""
    observation: dict[str, Any] = dataclasses.field(default_factory=dict)


def _field(message: dict[str, Any], name: str, kind: type, what: str) -> Any:
    if name not in message:
        raise ProtocolError("bad_message", f"{message['type']} request without {name!r}")
    value = message[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ProtocolError("bad_message", f"{name!r} must be {what}, got "
                                           f"{type(value).__name__}")
    return value


def _episode_id(message: dict[str, Any]) -> str:
    episode_id = _field(message, "episode_id", str, "a string")
    if not 0 < len(episode_id) <= MAX_ID_CHARS:
        raise ProtocolError("bad_message", f"'episode_id' must have 1..{MAX_ID_CHARS} "
                                           f"characters, got {len(episode_id)}")
    return episode_id


def parse_request(data: bytes | str, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
                  ) -> Request:
    """One received message -> a :class:`Request` (field types checked, observation not yet).

    Raises:
        ProtocolError: ``too_large``, ``bad_message`` or ``version_mismatch``.
    """
    if isinstance(data, str):
        raise ProtocolError("bad_message", "text frame: send one binary msgpack message")
    if len(data) > max_message_bytes:
        raise ProtocolError("too_large", f"message of {len(data)} bytes exceeds the server's "
                                         f"limit of {max_message_bytes} bytes")
    message = unpack(data)
    if not isinstance(message, dict):
        raise ProtocolError("bad_message", f"a request is a msgpack map, got "
                                           f"{type(message).__name__}")
    protocol = message.get("protocol", PROTOCOL)
    if protocol != PROTOCOL:
        raise ProtocolError("version_mismatch", f"the client speaks {protocol!r}, this server "
                                                f"speaks {PROTOCOL!r}")
    kind = message.get("type")
    if kind not in REQUEST_TYPES:
        raise ProtocolError("bad_message", f"unknown request type {kind!r}; use one of "
                                           f"{REQUEST_TYPES}")
    if kind == "metadata":
        return Request("metadata")
    episode_id = _episode_id(message)
    if kind == "reset":
        return Request("reset", episode_id=episode_id)
    step = _field(message, "step", int, "an integer")
    k = _field(message, "k", int, "an integer")
    seed = _field(message, "seed", int, "an integer")
    if not 0 <= step < 2**63:
        raise ProtocolError("bad_message", f"'step' must be >= 0, got {step}")
    if not 0 <= seed <= MAX_SEED:
        raise ProtocolError("bad_message", f"'seed' must be in 0..2**64-1, got {seed}")
    instruction = _field(message, "instruction", str, "a string")
    observation = _field(message, "observation", dict, "a map")
    return Request("sample", episode_id=episode_id, step=step, k=k, seed=seed,
                   instruction=instruction, observation=observation)


def error_reply(code: str, message: str) -> dict[str, str]:
    """The reply for a failure (``code`` from :data:`ERROR_CODES`)."""
    return {"type": "error", "code": code, "message": message}
