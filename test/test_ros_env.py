"""The ROS 2 Kilted wheels work here: two processes talk over real Fast DDS."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from std_msgs.msg import String  # noqa: E402

PUBLISHER = textwrap.dedent("""
    import time, rclpy
    from std_msgs.msg import String
    rclpy.init()
    node = rclpy.create_node("vgps_env_talker")
    pub = node.create_publisher(String, "vgps_env_check", 10)
    for i in range(100):
        pub.publish(String(data=f"hello {i}"))
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.try_shutdown()
""")


def test_isolation_is_configured():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert 0 <= int(os.environ["ROS_DOMAIN_ID"]) <= 101


def test_two_processes_exchange_messages():
    received: list[str] = []
    rclpy.init()
    try:
        node = rclpy.create_node("vgps_env_listener")
        node.create_subscription(String, "vgps_env_check", lambda m: received.append(m.data), 10)
        talker = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=os.environ.copy())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(received) < 3:
            rclpy.spin_once(node, timeout_sec=0.1)
        talker.wait(timeout=30)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    assert talker.returncode == 0
    assert len(received) >= 3 and received[0].startswith("hello ")
