"""numpy <-> ActionCandidates / ScoredCandidates / camera Image / sim state, validated both ways.

Kilted does not check field values unless ``ROS_PYTHON_CHECK_FIELDS=1``, so every message is
checked here: K, H and D against the array length, finite values, the instruction. Problems raise
:class:`~vgps_ros.input_guard.MessageError` whose ``kind`` names the class of the problem
(``bad_k``, ``bad_dims``, ``bad_length``, ``nan_actions``, ``empty_instruction``, ``bad_q``, ...).

Images (``sensor_msgs/Image``) are converted here too, because every node needs them:
``rgb8`` and ``bgr8`` only (8-bit, 3
channels), any row padding (``step``), data length ``step * height``; always RGB uint8 (H, W, 3).

The simulator's privileged state (``vgps/sim_state``, std_msgs/String JSON tagged with the stamp
of the image it belongs to) is produced by the arm driver and read by the policy node, so it is
converted here too.

Usage::

    msg = candidates_to_msg(chunks, stamp_ns, step=3, instruction="put carrot on plate",
                            policy_name="sim")                  # chunks (K, H, 7)
    cands = candidates_from_msg(msg)                            # Candidates(..., chunks (K, H, 7))
    scored = scored_to_msg(msg, q, critic_id="sim@1234", encode_ms=2.0, score_ms=0.4,
                           pre_encoded=True)                     # q (K,)
    cands, q = scored_from_msg(scored)
    stamp_ns, state = sim_state_from_msg(sim_state_to_msg(state, stamp_ns))
"""

from __future__ import annotations

import array
import dataclasses
import json
import math
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vgps_interfaces.msg import ActionCandidates, ScoredCandidates
from vgps_ros.input_guard import MessageError

__all__ = ["ENCODINGS", "MAX_ELEMENTS", "MAX_K", "Candidates", "MessageError",
           "candidates_from_msg", "candidates_to_msg", "float_array", "image_from_msg",
           "image_to_msg", "scored_from_msg", "scored_to_msg", "sim_state_from_msg",
           "sim_state_to_msg", "stamp_from_ns", "stamp_to_ns"]

MAX_K = 4096  # more candidates than any policy proposes: a corrupt message
MAX_ELEMENTS = 1 << 22  # K * H * D bound (16 MiB of float32)
ENCODINGS = ("rgb8", "bgr8")
MIN_SIDE, MAX_SIDE = 16, 4096  # accepted image sides (pixels)


@dataclasses.dataclass(frozen=True)
class Candidates:
    """A validated ActionCandidates message.

    Attributes:
        stamp_ns: source image stamp (ns since the epoch).
        step: control step counter.
        instruction: the instruction the policy was conditioned on (non-empty).
        policy_name: who proposed them.
        chunks: float32 (K, H, D) finite candidate chunks, robot action space.
        sample_ms: the policy's sampling time.
        frame_id: the frame of the deltas.
    """

    stamp_ns: int
    step: int
    instruction: str
    policy_name: str
    chunks: np.ndarray
    sample_ms: float
    frame_id: str = ""

    @property
    def k(self) -> int:
        return int(self.chunks.shape[0])


def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def stamp_from_ns(ns: int) -> Time:
    """Integer nanoseconds -> builtin_interfaces/Time."""
    ns = int(ns)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def float_array(values: np.ndarray) -> array.array:
    """Any float array -> the ``array('f')`` a float32[] message field takes (row-major)."""
    return array.array("f", np.ascontiguousarray(values, np.float32).tobytes())


def _as_numpy(values: object, what: str) -> np.ndarray:
    """A float32 copy of a float32[] field (array.array, list or ndarray)."""
    try:
        if isinstance(values, array.array):
            if values.typecode != "f":
                raise MessageError("bad_type", f"{what} has typecode {values.typecode!r}")
            return np.frombuffer(values.tobytes(), np.float32).copy()
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise MessageError("bad_type", f"{what} is not a float array ({exc})") from None
    if arr.ndim != 1:
        raise MessageError("bad_type", f"{what} must be 1-D, got shape {arr.shape}")
    return arr.astype(np.float32)


def image_to_msg(image: np.ndarray, stamp_ns: int, frame_id: str = "camera") -> Image:
    """uint8 (H, W, 3) RGB -> sensor_msgs/Image ``rgb8``."""
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise MessageError("bad_image", f"need uint8 (H, W, 3), got {image.dtype} {image.shape}")
    msg = Image()
    msg.header.stamp = stamp_from_ns(stamp_ns)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = image.tobytes()
    return msg


def image_from_msg(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (rgb8 or bgr8) -> uint8 (H, W, 3) RGB copy.

    Raises:
        MessageError: ``bad_encoding``, ``bad_image_size``, ``bad_step`` or ``bad_data_length``.
    """
    if msg.encoding not in ENCODINGS:
        raise MessageError("bad_encoding", f"encoding {msg.encoding!r} is not one of "
                                           f"{list(ENCODINGS)}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise MessageError("bad_image_size", f"{w}x{h} is outside {MIN_SIDE}..{MAX_SIDE} px")
    if step < w * 3 or step > w * 3 + 64:
        raise MessageError("bad_step", f"step={step} must be >= width*3 = {w * 3} (plus "
                                       f"at most 64 bytes of row padding)")
    data = msg.data
    raw = data.tobytes() if hasattr(data, "tobytes") else bytes(data)
    if len(raw) != step * h:
        raise MessageError("bad_data_length", f"len(data)={len(raw)} != step*height = "
                                              f"{step}*{h} = {step * h}")
    rows = np.frombuffer(raw, np.uint8).reshape(h, step)
    image = rows[:, : w * 3].reshape(h, w, 3)
    if msg.encoding == "bgr8":
        image = image[:, :, ::-1]
    return np.ascontiguousarray(image)


def candidates_to_msg(chunks: np.ndarray, stamp_ns: int, step: int, instruction: str,
                      policy_name: str, sample_ms: float = 0.0,
                      frame_id: str = "base_link") -> ActionCandidates:
    """Builds an ActionCandidates message from (K, H, D) chunks after validating them.

    Raises:
        MessageError: the chunks or instruction would make an invalid message.
    """
    chunks = _check_chunks(np.asarray(chunks, dtype=np.float64))
    _check_instruction(instruction)
    k, h, d = chunks.shape
    msg = ActionCandidates()
    msg.header.stamp = stamp_from_ns(stamp_ns)
    msg.header.frame_id = frame_id
    msg.step = int(step)
    msg.instruction = instruction
    msg.policy_name = policy_name
    msg.k, msg.horizon, msg.action_dim = k, h, d
    msg.actions = float_array(chunks.reshape(-1))
    msg.sample_ms = float(sample_ms)
    return msg


def candidates_from_msg(msg: ActionCandidates, action_dim: int | None = 7) -> Candidates:
    """Validates an ActionCandidates message and returns its contents.

    Args:
        msg: the message.
        action_dim: required D (None: any D >= 1).

    Raises:
        MessageError: with ``kind`` one of ``bad_k``, ``bad_horizon``, ``bad_dims``,
            ``bad_length``, ``bad_type``, ``nan_actions``, ``empty_instruction``.
    """
    k, h, d = int(msg.k), int(msg.horizon), int(msg.action_dim)
    if not 1 <= k <= MAX_K:
        raise MessageError("bad_k", f"k={k} must be in 1..{MAX_K}")
    if h < 1:
        raise MessageError("bad_horizon", f"horizon={h} must be >= 1")
    if d < 1 or (action_dim is not None and d != action_dim):
        want = action_dim if action_dim is not None else ">= 1"
        raise MessageError("bad_dims", f"action_dim={d}, expected {want}")
    if k * h * d > MAX_ELEMENTS:
        raise MessageError("bad_length", f"k*horizon*action_dim={k * h * d} is implausibly large")
    actions = _as_numpy(msg.actions, "actions")
    if actions.size != k * h * d:
        raise MessageError("bad_length", f"len(actions)={actions.size} != k*horizon*action_dim"
                                         f" = {k}*{h}*{d} = {k * h * d}")
    chunks = _check_chunks(actions.reshape(k, h, d))
    _check_instruction(msg.instruction)
    return Candidates(stamp_ns=stamp_to_ns(msg.header.stamp), step=int(msg.step),
                      instruction=msg.instruction, policy_name=msg.policy_name,
                      chunks=chunks.astype(np.float32), sample_ms=float(msg.sample_ms),
                      frame_id=msg.header.frame_id)


def scored_to_msg(candidates: ActionCandidates, q: np.ndarray, critic_id: str,
                  encode_ms: float, score_ms: float, pre_encoded: bool) -> ScoredCandidates:
    """Wraps the scored candidates (unchanged) with their (K,) Q-values."""
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if q.size != int(candidates.k):
        raise MessageError("bad_q", f"{q.size} Q-values for k={candidates.k} candidates")
    if not np.all(np.isfinite(q)):
        raise MessageError("nan_q", "Q-values contain NaN or inf")
    msg = ScoredCandidates()
    msg.header.stamp = stamp_from_ns(stamp_to_ns(candidates.header.stamp))  # a copy, not alias
    msg.header.frame_id = candidates.header.frame_id
    msg.candidates = candidates
    msg.q_values = float_array(q)
    msg.critic_id = critic_id
    msg.encode_ms = float(encode_ms)
    msg.score_ms = float(score_ms)
    msg.pre_encoded = bool(pre_encoded)
    return msg


def scored_from_msg(msg: ScoredCandidates,
                    action_dim: int | None = 7) -> tuple[Candidates, np.ndarray]:
    """Validates a ScoredCandidates message.

    Returns:
        ``(candidates, q)`` with q float32 (K,) finite.

    Raises:
        MessageError: the candidates' kinds, plus ``bad_q`` / ``nan_q`` / ``stamp_mismatch``.
    """
    cands = candidates_from_msg(msg.candidates, action_dim)
    if stamp_to_ns(msg.header.stamp) != cands.stamp_ns:
        raise MessageError("stamp_mismatch", "header stamp differs from the candidates' stamp")
    q = _as_numpy(msg.q_values, "q_values")
    if q.size != cands.k:
        raise MessageError("bad_q", f"len(q_values)={q.size} != k={cands.k}")
    if not np.all(np.isfinite(q)):
        raise MessageError("nan_q", f"q_values has NaN/inf at {np.flatnonzero(~np.isfinite(q))}")
    return cands, q


def _check_chunks(chunks: np.ndarray) -> np.ndarray:
    if chunks.ndim == 2:
        chunks = chunks[:, None, :]
    if chunks.ndim != 3 or 0 in chunks.shape:
        raise MessageError("bad_dims", f"chunks must be (K, H, D) with K, H, D >= 1, "
                                       f"got shape {chunks.shape}")
    if chunks.shape[0] > MAX_K:
        raise MessageError("bad_k", f"K={chunks.shape[0]} > {MAX_K}")
    bad = ~np.isfinite(chunks)
    if bad.any():
        raise MessageError("nan_actions", f"{int(bad.sum())} NaN/inf action entries, first at "
                                          f"{np.argwhere(bad)[0].tolist()}")
    if np.any(np.abs(chunks) > np.finfo(np.float32).max):
        raise MessageError("nan_actions", "actions overflow float32")
    return chunks


def _check_instruction(instruction: object) -> None:
    if not isinstance(instruction, str) or not instruction.strip():
        raise MessageError("empty_instruction", "the instruction is empty")


def sim_state_to_msg(state: dict[str, Any], stamp_ns: int) -> String:
    """The simulator's privileged state -> std_msgs/String JSON, tagged with the image stamp
    it belongs to (``"stamp_ns"``)."""
    return String(data=json.dumps({"stamp_ns": int(stamp_ns), "state": _jsonable(state)}))


def sim_state_from_msg(msg: String) -> tuple[int, dict[str, Any]]:
    """std_msgs/String JSON -> ``(stamp_ns, state)`` with numeric lists back as float arrays.

    Raises:
        MessageError: ``bad_sim_state`` when the JSON is malformed.
    """
    try:
        payload = json.loads(msg.data)
        stamp_ns, state = int(payload["stamp_ns"]), payload["state"]
    except (ValueError, KeyError, TypeError) as exc:
        raise MessageError("bad_sim_state", f"not a sim-state JSON ({exc})") from None
    if not isinstance(state, dict) or "task" not in state:
        raise MessageError("bad_sim_state", "the state has no task")
    return stamp_ns, _arrays(state)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    return value


def _arrays(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return np.asarray(value, dtype=np.float64)
        return [_arrays(v) for v in value]
    return value
