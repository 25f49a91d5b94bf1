"""Fuzz the critic and selector nodes over DDS with >= 1,000 malformed messages per subscription.

Zero crashes (the processes stay alive and still score and select a valid step afterwards), zero
unsafe commands (no SelectedAction with an executing reason whose actions are non-finite or
outside the safety filter's action limits) and a diagnostic count for every class of bad input.
"""

from __future__ import annotations

import array
import itertools
import os
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from vgps.graph.description import Graph, describe  # noqa: E402
from vgps.graph.lifecycle import Lifecycle  # noqa: E402
from vgps.graph.processes import NodeProcesses, isolate  # noqa: E402
from vgps_interfaces.msg import ActionCandidates, ScoredCandidates, SelectedAction  # noqa: E402
from vgps_ros import qos  # noqa: E402
from vgps_ros.conversions import (  # noqa: E402
    candidates_to_msg,
    image_to_msg,
    scored_to_msg,
    stamp_from_ns,
    stamp_to_ns,
)
from vgps_widowx.safety import SafetyConfig  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
PER_SUBSCRIPTION = 1000
EXECUTING = ("argmax", "softmax", "fallback")
IMAGE_CLASSES = ("bad_encoding", "bad_image_size", "bad_step", "bad_data_length",
                 "stale_stamp", "future_stamp")
CANDIDATE_CLASSES = ("nan_actions", "bad_k", "bad_dims", "bad_length", "bad_horizon",
                     "empty_instruction", "stale_stamp", "future_stamp", "unknown_image")
SCORED_CLASSES = ("nan_q", "bad_q", "nan_actions", "bad_k", "bad_dims", "bad_length",
                  "stamp_mismatch", "empty_instruction", "stale", "future_stamp",
                  "duplicate_step", "unsafe_action")


def _floats(values) -> array.array:
    return array.array("f", np.asarray(values, np.float32).tobytes())


def bad_image(kind: str, i: int) -> Image:
    now = time.time_ns()
    msg = image_to_msg(np.full((24, 32, 3), i % 255, np.uint8), now)
    if kind == "bad_encoding":
        msg.encoding = ("mono8", "rgba8", "", "16UC3", "jpeg", "bgr16")[i % 6]
    elif kind == "bad_image_size":
        msg.width, msg.height = ((0, 24), (32, 0), (1, 1), (100_000, 24))[i % 4]
    elif kind == "bad_step":
        msg.step = (0, 95, 10**6)[i % 3]
    elif kind == "bad_data_length":
        msg.data = bytes(len(msg.data) + (-1, 1, -100)[i % 3])
    elif kind == "stale_stamp":
        msg.header.stamp = stamp_from_ns((0, now - 30 * 10**9)[i % 2])
    elif kind == "future_stamp":
        msg.header.stamp = stamp_from_ns(now + 10 * 10**9)
    return msg


def chunks(k: int = 4, value: float = 0.01) -> np.ndarray:
    c = np.full((k, 1, 7), value, np.float32)
    c[..., 6] = 1.0
    return c


def bad_candidates(kind: str, i: int, step: int) -> ActionCandidates:
    now = time.time_ns()
    msg = candidates_to_msg(chunks(), now, step, "put carrot on plate", "fuzz")
    if kind == "nan_actions":
        values = np.frombuffer(msg.actions.tobytes(), np.float32).copy()
        values[i % values.size] = (np.nan, np.inf, -np.inf)[i % 3]
        msg.actions = _floats(values)
    elif kind == "bad_k":
        msg.k = (0, 10**6)[i % 2]
    elif kind == "bad_dims":
        msg.action_dim = (0, 6, 8)[i % 3]
    elif kind == "bad_length":
        msg.actions = _floats(np.zeros((1, 3, 27, 29, 4)[i % 5]))
    elif kind == "bad_horizon":
        msg.horizon = 0
    elif kind == "empty_instruction":
        msg.instruction = ("", "  ", "\n")[i % 3]
    elif kind == "stale_stamp":
        msg.header.stamp = stamp_from_ns(now - 60 * 10**9)
    elif kind == "future_stamp":
        msg.header.stamp = stamp_from_ns(now + 60 * 10**9)
    # unknown_image: a valid message whose source image the critic never saw
    return msg


def bad_scored(kind: str, i: int, step: int) -> ScoredCandidates:
    now = time.time_ns()
    cands = candidates_to_msg(chunks(), now, step, "put carrot on plate", "fuzz")
    value = 100.0 if kind == "unsafe_action" else 0.3  # 0.3: executable once clamped
    if kind == "unsafe_action":
        cands = candidates_to_msg(chunks(value=value), now, step, "x", "fuzz")
    msg = scored_to_msg(cands, np.arange(4.0), "fuzz", 0.0, 0.0, True)
    if kind == "nan_q":
        msg.q_values = _floats([0.0, np.nan, 1.0, np.inf][: 4 - i % 2] + [np.nan] * (i % 2))
    elif kind == "bad_q":
        msg.q_values = _floats(np.zeros((0, 3, 5)[i % 3]))
    elif kind in ("nan_actions", "bad_k", "bad_dims", "bad_length", "empty_instruction"):
        msg.candidates = bad_candidates(kind, i, step)
        msg.header.stamp = msg.candidates.header.stamp
        if kind in ("bad_k", "bad_length"):
            msg.q_values = _floats(np.zeros(4))
    elif kind == "stamp_mismatch":
        msg.header.stamp = stamp_from_ns(now + 1)
    elif kind == "stale":
        stamp = stamp_from_ns(now - 30 * 10**9)
        msg.header.stamp = msg.candidates.header.stamp = stamp
    elif kind == "future_stamp":
        stamp = stamp_from_ns(now + 30 * 10**9)
        msg.header.stamp = msg.candidates.header.stamp = stamp
    return msg


def _diagnostics(records: list, node: str) -> dict[str, str]:
    for msg in reversed(records):
        for status in msg.status:
            if status.name == f"vgps: {node}":
                return {kv.key: kv.value for kv in status.values}
    return {}


def test_fuzzed_inputs_never_crash_never_command_unsafe_actions(critic_dir, tmp_path):
    # The fuzzer stands in for the policy and the critic (its own node name): publisher checks
    # off here; test_adversarial.py covers them.
    full = describe({"critic": str(critic_dir)},
                    overrides={"selector_node": {"fallback": "hold", "max_age_s": 2.0,
                                                 "trusted_publishers": False},
                               "critic_node": {"trusted_publishers": False}})
    graph = Graph(nodes=tuple(n for n in full.nodes if n.name in ("critic_node",
                                                                  "selector_node")),
                  arguments=full.arguments)
    procs = NodeProcesses(graph, tmp_path, isolate(os.environ))
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("fuzzer", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received: dict[str, list] = {"selected": [], "diagnostics": [], "scored": []}
    node.create_subscription(SelectedAction, qos.SELECTED,
                             received["selected"].append, qos.COMMAND)
    node.create_subscription(ScoredCandidates, qos.SCORED,
                             received["scored"].append, qos.COMMAND)
    node.create_subscription(DiagnosticArray, qos.DIAGNOSTICS,
                             received["diagnostics"].append, qos.DIAGNOSTICS_QOS)
    pub_image = node.create_publisher(Image, qos.CAMERA, qos.SENSOR)
    pub_cands = node.create_publisher(ActionCandidates, qos.CANDIDATES, qos.COMMAND)
    pub_scored = node.create_publisher(ScoredCandidates, qos.SCORED, qos.COMMAND)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        procs.start()
        Lifecycle(node).transition(["critic_node"], "configure", 180, procs.exited)
        Lifecycle(node).transition(["critic_node"], "activate", 30, procs.exited)
        deadline = time.monotonic() + 30
        while pub_scored.get_subscription_count() < 1 or pub_image.get_subscription_count() < 1:
            assert time.monotonic() < deadline, "nodes never subscribed"
            time.sleep(0.1)

        sent = {"image": 0, "candidates": 0, "scored": 0}
        step = itertools.count(1)
        image_kinds = itertools.cycle(IMAGE_CLASSES)
        cand_kinds = itertools.cycle(CANDIDATE_CLASSES)
        scored_kinds = itertools.cycle(SCORED_CLASSES)
        last_valid = 0
        for i in range(PER_SUBSCRIPTION + 60):
            pub_image.publish(bad_image(next(image_kinds), i))
            pub_cands.publish(bad_candidates(next(cand_kinds), i, next(step)))
            kind = next(scored_kinds)
            if kind == "duplicate_step":  # the step of the last accepted message again
                pub_scored.publish(bad_scored("valid", i, last_valid))
            else:
                s = next(step)
                pub_scored.publish(bad_scored(kind, i, s))
                if kind == "stamp_mismatch":
                    pub_scored.publish(bad_scored("valid", i, next(step)))  # clamped, safe
                    last_valid = s + 1
            sent = {k: v + 1 for k, v in sent.items()}
            time.sleep(0.01)  # paced so that the nodes receive (nearly) all of them
        assert min(sent.values()) >= PER_SUBSCRIPTION
        time.sleep(2.5)  # the periodic (1 Hz) diagnostics carry every count

        assert not procs.exited(), f"a node died: {procs.exited()}"
        limits = SafetyConfig()
        for msg in received["selected"]:
            if msg.reason not in EXECUTING:
                assert msg.num_actions == 0
                continue
            actions = np.frombuffer(msg.actions.tobytes(), np.float32).reshape(-1, 7)
            assert np.all(np.isfinite(actions)), "non-finite executed action"
            assert np.all(actions >= limits.action_low - 1e-6), msg.detail
            assert np.all(actions <= limits.action_high + 1e-6), msg.detail
        assert any(m.reason == "argmax" for m in received["selected"])  # clamped ones ran
        scored = [m for m in received["scored"] if m.critic_id != "fuzz"]  # not our own
        assert not scored, "the critic scored a malformed input"

        critic = _diagnostics(received["diagnostics"], "critic_node")
        selector = _diagnostics(received["diagnostics"], "selector_node")
        print(f"sent {sent}; selections {len(received['selected'])}\ncritic {critic}\n"
              f"selector {selector}")
        missing_critic = [k for k in (*IMAGE_CLASSES, *CANDIDATE_CLASSES)
                          if int(critic.get(f"rejected.{k}", 0)) < 1]
        missing_selector = [k for k in SCORED_CLASSES
                            if int(selector.get(f"rejected.{k}", 0)) < 1]
        assert not missing_critic, f"critic diagnostics lack {missing_critic}: {critic}"
        assert not missing_selector, f"selector diagnostics lack {missing_selector}: {selector}"

        # Still working: one valid step is scored and selected.
        now = time.time_ns()
        pub_image.publish(image_to_msg(np.zeros((64, 64, 3), np.uint8), now))
        time.sleep(0.3)
        pub_cands.publish(candidates_to_msg(chunks(), now, next(step) + 10,
                                            "put carrot on plate", "fuzz"))
        deadline = time.monotonic() + 20
        while not any(stamp_to_ns(m.header.stamp) == now and m.reason == "argmax"
                      for m in received["selected"]):
            assert time.monotonic() < deadline, "the graph no longer scores valid input"
            time.sleep(0.05)
        # Candidates before their image (two topics, no order between them): the critic waits
        # for the image (image_wait_s) and scores them the moment it arrives.
        now = time.time_ns()
        pub_cands.publish(candidates_to_msg(chunks(), now, next(step) + 20,
                                            "put carrot on plate", "fuzz"))
        time.sleep(0.1)
        pub_image.publish(image_to_msg(np.zeros((64, 64, 3), np.uint8), now))
        deadline = time.monotonic() + 20
        while not any(stamp_to_ns(m.header.stamp) == now and m.reason == "argmax"
                      for m in received["selected"]):
            assert time.monotonic() < deadline, "candidates that came first were never scored"
            time.sleep(0.05)
        assert not procs.exited()
    finally:
        procs.shutdown()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
