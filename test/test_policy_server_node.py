"""The policy node against a vgps-policy-server process that dies mid-episode and comes back.

While the server is gone the node publishes no candidates (so nothing can be executed from
them), counts and reports the failure on /diagnostics, and keeps running; when a server listens
again on the same URL the client reconnects and candidates flow again.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
pytestmark = pytest.mark.ros

SERVER = str(Path(sys.executable).parent / "vgps-policy-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([SERVER, "--policy", "random", "--port", str(port),
                             "--image-size", "32"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if "serving random on ws://127.0.0.1:" not in line:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the server did not start: {line!r}")
    return proc


def test_a_server_that_dies_is_reported_and_the_node_recovers_when_it_returns():
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from vgps_interfaces.msg import ActionCandidates
    from vgps_policy_bridge.policy_node import PolicyNode
    from vgps_ros import qos
    from vgps_ros.conversions import image_to_msg

    port = free_port()
    servers = [start_server(port)]
    rclpy.init()
    values = {"policy": "remote", "remote_url": f"ws://127.0.0.1:{port}",
              "remote_timeout_s": 1.0, "k": 4, "instruction": "put the carrot on the plate"}
    node = PolicyNode(parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    probe = rclpy.create_node("probe")
    candidates, warnings = [], []
    probe.create_subscription(ActionCandidates, qos.CANDIDATES, candidates.append, qos.COMMAND)
    probe.create_subscription(
        DiagnosticArray, qos.DIAGNOSTICS,
        lambda m: warnings.extend(s.message for s in m.status if s.name == "vgps: policy_node"
                                  and "policy_error" in s.message), qos.DIAGNOSTICS_QOS)
    camera = probe.create_publisher(Image, qos.CAMERA, qos.SENSOR)
    executor = SingleThreadedExecutor()
    for n in (node, probe):
        executor.add_node(n)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    frame = np.zeros((32, 32, 3), np.uint8)

    def publish_until(done, timeout_s: float, what: str) -> None:
        end = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < end, f"timed out waiting for {what}"
            camera.publish(image_to_msg(frame, time.time_ns(), "camera"))
            time.sleep(0.1)

    try:
        node.trigger_configure()
        node.trigger_activate()
        assert node.active, node.error
        publish_until(lambda: len(candidates) >= 3, 30, "candidates from the server")
        assert candidates[-1].k == 4 and candidates[-1].policy_name == "remote:random"

        servers[0].kill()  # dies mid-episode
        servers[0].wait()
        time.sleep(0.3)
        count = len(candidates)
        publish_until(lambda: warnings, 30, "a policy_error on /diagnostics")
        for _ in range(5):
            camera.publish(image_to_msg(frame, time.time_ns(), "camera"))
            time.sleep(0.1)
        assert len(candidates) == count, "candidates published without a server"
        assert node._published == count and rclpy.ok()

        servers.append(start_server(port))  # back on the same URL
        publish_until(lambda: len(candidates) >= count + 3, 30, "candidates after the restart")
    finally:
        for server in servers:
            server.kill()
            server.wait()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        probe.destroy_node()
        rclpy.try_shutdown()
