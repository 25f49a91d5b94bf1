"""The policy node's input checks: image stamps (as the critic's) and instruction text.

An in-process PolicyNode (``policy: random``, no server) gets camera images from a probe node:
one stamped far in the past, one in the future and a fresh one; only the fresh one yields
candidates, the others are counted on /diagnostics. A NUL-carrying or over-long instruction is
refused and the previous instruction stays.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
pytestmark = pytest.mark.ros


def test_only_fresh_images_yield_candidates_and_bad_instructions_are_refused():
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from vgps_interfaces.msg import ActionCandidates
    from vgps_policy_bridge.policy_node import PolicyNode
    from vgps_ros import qos
    from vgps_ros.conversions import image_to_msg

    rclpy.init()
    values = {"policy": "random", "k": 3, "max_age_s": 1.0,
              "instruction": "put the carrot on the plate"}
    node = PolicyNode(parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    probe = rclpy.create_node("probe")
    candidates = []
    probe.create_subscription(ActionCandidates, qos.CANDIDATES, candidates.append, qos.COMMAND)
    camera = probe.create_publisher(Image, qos.CAMERA, qos.SENSOR)
    instruction = probe.create_publisher(String, qos.INSTRUCTION, qos.LATCHED)
    executor = SingleThreadedExecutor()
    for n in (node, probe):
        executor.add_node(n)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    frame = np.zeros((32, 32, 3), np.uint8)

    def wait_for(done, timeout_s: float, what: str) -> None:
        end = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < end, f"timed out waiting for {what}"
            time.sleep(0.05)

    def now_ns() -> int:
        return node.get_clock().now().nanoseconds

    try:
        node.trigger_configure()
        node.trigger_activate()
        assert node.active, node.error
        wait_for(lambda: probe.count_subscribers(qos.CAMERA) >= 1, 10, "the subscription")
        old, future = now_ns() - 5_000_000_000, now_ns() + 5_000_000_000
        for stamp in (old, future):
            camera.publish(image_to_msg(frame, stamp, "camera"))
        wait_for(lambda: {"stale_stamp", "future_stamp"} <= set(node.rejections.counts), 10,
                 "the stale and the future image to be rejected")
        fresh = now_ns()
        camera.publish(image_to_msg(frame, fresh, "camera"))
        wait_for(lambda: candidates, 10, "candidates from the fresh image")
        time.sleep(0.3)
        stamps = [c.header.stamp.sec * 1_000_000_000 + c.header.stamp.nanosec for c in candidates]
        assert stamps == [fresh]

        instruction.publish(String(data="x" * 600))
        wait_for(lambda: "bad_instruction" in node.rejections.counts, 10, "bad_instruction")
        instruction.publish(String(data="put the spoon in the pot"))
        wait_for(lambda: node._instruction == "put the spoon in the pot", 10, "the instruction")
        camera.publish(image_to_msg(frame, now_ns(), "camera"))
        wait_for(lambda: len(candidates) >= 2, 10, "candidates after the instruction")
        assert candidates[-1].instruction == "put the spoon in the pot"
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        probe.destroy_node()
        rclpy.try_shutdown()
