"""vgps_interfaces: the generated messages, their constants and field types, and a round trip of
candidates and scores between two processes over real DDS (Fast DDS from the ROS 2 wheels)."""

from __future__ import annotations

import array
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

try:
    from vgps_interfaces.msg import (
        ActionCandidates,
        EpisodeStatus,
        Intervention,
        ScoredCandidates,
        SelectedAction,
    )
except ImportError as exc:  # rclpy is here, so the messages must be too
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

K, H, D = 50, 4, 7
TOPIC_CANDIDATES = f"vgps_test/candidates_{os.getpid()}"
TOPIC_SCORED = f"vgps_test/scored_{os.getpid()}"


@pytest.fixture(autouse=True)
def _require_interfaces() -> None:
    if _IMPORT_ERROR is not None:
        pytest.fail(
            f"rclpy is installed but vgps_interfaces is not ({_IMPORT_ERROR}); "
            "build it with: scripts/build_interfaces.sh",
            pytrace=False,
        )


EXPECTED_FIELDS = {
    "ActionCandidates": {
        "header": "std_msgs/Header",
        "step": "uint64",
        "instruction": "string",
        "policy_name": "string",
        "k": "uint32",
        "horizon": "uint32",
        "action_dim": "uint32",
        "actions": "sequence<float>",
        "sample_ms": "float",
    },
    "ScoredCandidates": {
        "header": "std_msgs/Header",
        "candidates": "vgps_interfaces/ActionCandidates",
        "q_values": "sequence<float>",
        "critic_id": "string",
        "encode_ms": "float",
        "score_ms": "float",
        "pre_encoded": "boolean",
    },
    "SelectedAction": {
        "header": "std_msgs/Header",
        "step": "uint64",
        "index": "int32",
        "q_value": "float",
        "q_margin": "float",
        "num_actions": "uint32",
        "action_dim": "uint32",
        "actions": "sequence<float>",
        "reason": "string",
        "detail": "string",
        "beta": "float",
        "k": "uint32",
    },
    "EpisodeStatus": {
        "header": "std_msgs/Header",
        "episode": "uint32",
        "task": "string",
        "instruction": "string",
        "step": "uint64",
        "event": "string",
        "success": "boolean",
    },
    "Intervention": {
        "header": "std_msgs/Header",
        "take_over": "boolean",
        "action": "sequence<float>",
        "source": "string",
    },
}


def _message_class(name: str) -> type:
    return {
        "ActionCandidates": ActionCandidates,
        "ScoredCandidates": ScoredCandidates,
        "SelectedAction": SelectedAction,
        "EpisodeStatus": EpisodeStatus,
        "Intervention": Intervention,
    }[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_FIELDS))
def test_field_names_and_types(name: str) -> None:
    msg_type = _message_class(name)
    # Ordered: the wire layout follows the .msg file.
    assert list(msg_type.get_fields_and_field_types().items()) == list(
        EXPECTED_FIELDS[name].items()
    )
    msg_type.__class__.__import_type_support__()  # the compiled C typesupport loads
    assert msg_type._TYPE_SUPPORT is not None


@pytest.mark.parametrize(
    ("msg_type_name", "constants"),
    [
        (
            "SelectedAction",
            {
                "REASON_ARGMAX": "argmax",
                "REASON_SOFTMAX": "softmax",
                "REASON_FALLBACK": "fallback",
                "REASON_HOLD": "hold",
                "REASON_REJECTED": "rejected",
                "REASON_ESTOP": "estop",
                "REASON_INTERVENTION": "intervention",
            },
        ),
        (
            "EpisodeStatus",
            {
                "EVENT_STARTED": "started",
                "EVENT_STEP": "step",
                "EVENT_SUCCEEDED": "succeeded",
                "EVENT_FAILED": "failed",
                "EVENT_TIMEOUT": "timeout",
            },
        ),
    ],
)
def test_constants(msg_type_name: str, constants: dict[str, str]) -> None:
    msg_type = _message_class(msg_type_name)
    for attr, value in constants.items():
        assert getattr(msg_type, attr) == value
        assert getattr(msg_type(), attr) == value


def test_defaults_and_array_storage() -> None:
    selected = SelectedAction()
    assert selected.index == 0 and selected.reason == "" and len(selected.actions) == 0
    candidates = ActionCandidates(actions=array.array("f", [0.5, -1.0]))
    assert isinstance(candidates.actions, array.array) and candidates.actions.typecode == "f"


def _spec() -> dict:
    """Message contents both processes agree on; float32 values survive JSON exactly."""
    rng = np.random.default_rng(7)
    actions = rng.normal(0.0, 0.05, size=(K, H, D)).astype(np.float32)
    actions[..., 6] = rng.integers(0, 2, size=(K, H)).astype(np.float32)  # gripper 0 / 1
    actions[0, 0, :3] = [np.finfo(np.float32).max, np.finfo(np.float32).smallest_subnormal, -0.0]
    q_values = rng.normal(0.0, 1.0, size=K).astype(np.float32)
    return {
        "candidates_topic": TOPIC_CANDIDATES,
        "scored_topic": TOPIC_SCORED,
        "sec": 1_700_000_123,
        "nanosec": 987_654_321,
        "frame_id": "wx250s/base_link",
        "step": 2**40 + 3,
        "instruction": "put the carrot on the plate — ünïcödé ✓",
        "policy_name": "octo-small-1.5",
        "actions": actions.reshape(-1).tolist(),
        "sample_ms": float(np.float32(12.345)),
        "q_values": q_values.tolist(),
        "critic_id": "calql-sim-v1@abc123",
        "encode_ms": float(np.float32(3.25)),
        "score_ms": float(np.float32(0.875)),
    }


PUBLISHER = textwrap.dedent("""
    import array, json, sys, time
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from vgps_interfaces.msg import ActionCandidates, ScoredCandidates

    spec = json.load(open(sys.argv[1]))
    K, H, D = (int(v) for v in sys.argv[2:5])
    cand = ActionCandidates()
    cand.header.stamp.sec = spec["sec"]
    cand.header.stamp.nanosec = spec["nanosec"]
    cand.header.frame_id = spec["frame_id"]
    cand.step = spec["step"]
    cand.instruction = spec["instruction"]
    cand.policy_name = spec["policy_name"]
    cand.k, cand.horizon, cand.action_dim = K, H, D
    cand.actions = array.array("f", spec["actions"])
    cand.sample_ms = spec["sample_ms"]
    scored = ScoredCandidates(header=cand.header, candidates=cand)
    scored.q_values = array.array("f", spec["q_values"])
    scored.critic_id = spec["critic_id"]
    scored.encode_ms = spec["encode_ms"]
    scored.score_ms = spec["score_ms"]
    scored.pre_encoded = True

    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("vgps_interfaces_talker", context=context)
        pub_c = node.create_publisher(ActionCandidates, spec["candidates_topic"], qos)
        pub_s = node.create_publisher(ScoredCandidates, spec["scored_topic"], qos)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            pub_c.get_subscription_count() == 0 or pub_s.get_subscription_count() == 0
        ):
            time.sleep(0.02)
        for _ in range(5):
            pub_c.publish(cand)
            pub_s.publish(scored)
            time.sleep(0.1)
        time.sleep(0.5)  # let reliable delivery finish before the writer goes away
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
""")


def _assert_float32_equal(received: array.array, expected: list[float]) -> None:
    assert received.typecode == "f"
    assert received.tobytes() == np.asarray(expected, dtype=np.float32).tobytes()


def _assert_candidates(msg: ActionCandidates, spec: dict) -> None:
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (spec["sec"], spec["nanosec"])
    assert msg.header.frame_id == spec["frame_id"]
    assert msg.step == spec["step"]
    assert msg.instruction == spec["instruction"]
    assert msg.policy_name == spec["policy_name"]
    assert (msg.k, msg.horizon, msg.action_dim) == (K, H, D)
    assert len(msg.actions) == K * H * D
    _assert_float32_equal(msg.actions, spec["actions"])
    assert msg.sample_ms == spec["sample_ms"]
    # Row-major (k, horizon, action_dim): element [i, t, j] sits at (i * H + t) * D + j.
    as_array = np.frombuffer(msg.actions.tobytes(), dtype=np.float32).reshape(K, H, D)
    i, t, j = 17, 2, 6
    assert as_array[i, t, j] == np.float32(spec["actions"][(i * H + t) * D + j])


def test_round_trip_between_processes(tmp_path: Path) -> None:
    spec = _spec()
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")

    received: dict[str, object] = {}
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    context = rclpy.Context()
    rclpy.init(context=context)
    talker = None
    try:
        node = rclpy.create_node("vgps_interfaces_listener", context=context)
        node.create_subscription(
            ActionCandidates, TOPIC_CANDIDATES, lambda m: received.setdefault("c", m), qos
        )
        node.create_subscription(
            ScoredCandidates, TOPIC_SCORED, lambda m: received.setdefault("s", m), qos
        )
        talker = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, str(spec_file), str(K), str(H), str(D)],
            env=os.environ.copy(),
            stderr=subprocess.PIPE,
            text=True,
        )
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and len(received) < 2 and talker.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        executor.spin_once(timeout_sec=0.1)  # a message that raced the talker's exit
        _, talker_err = talker.communicate(timeout=30)
        executor.shutdown()
        node.destroy_node()
    finally:
        if talker is not None and talker.poll() is None:
            talker.kill()
            talker.wait()
        rclpy.try_shutdown(context=context)

    assert talker.returncode == 0, talker_err
    assert set(received) == {"c", "s"}, f"received only {sorted(received)}; talker: {talker_err}"

    candidates = received["c"]
    assert isinstance(candidates, ActionCandidates)
    _assert_candidates(candidates, spec)

    scored = received["s"]
    assert isinstance(scored, ScoredCandidates)
    assert (scored.header.stamp.sec, scored.header.stamp.nanosec) == (spec["sec"], spec["nanosec"])
    _assert_candidates(scored.candidates, spec)
    assert len(scored.q_values) == K
    _assert_float32_equal(scored.q_values, spec["q_values"])
    assert scored.critic_id == spec["critic_id"]
    assert (scored.encode_ms, scored.score_ms) == (spec["encode_ms"], spec["score_ms"])
    assert scored.pre_encoded is True
