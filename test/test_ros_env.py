"""The ROS 2 Kilted wheels work here: two processes talk over real Fast DDS.

And the way ``vgps up`` isolates its graph works without writing ``os.environ``: the domain is
passed to rclpy (``domain_id``) and to the node processes (``env=``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
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


def test_a_domain_is_given_to_rclpy_and_to_a_process_without_touching_the_environment():
    """What ``vgps up`` does: no os.environ writes; the domain goes to rclpy and to ``env=``."""
    domain = int(os.environ["ROS_DOMAIN_ID"]) + 130  # another domain, still a valid one (< 233)
    before = dict(os.environ)
    received: list[str] = []
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        assert context.get_domain_id() == domain
        node = rclpy.create_node("vgps_env_domain_listener", context=context)
        node.create_subscription(String, "vgps_env_check", lambda m: received.append(m.data), 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        talker = subprocess.Popen([sys.executable, "-c", PUBLISHER],
                                  env={**os.environ, "ROS_DOMAIN_ID": str(domain)})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(received) < 3:
            executor.spin_once(timeout_sec=0.1)
        talker.wait(timeout=30)
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    assert talker.returncode == 0 and len(received) >= 3
    assert dict(os.environ) == before


def test_up_leaves_the_environment_alone(monkeypatch, tmp_path):
    from vgps.graph.launcher import UpConfig, up

    monkeypatch.delenv("ROS_DOMAIN_ID")
    monkeypatch.delenv("ROS_AUTOMATIC_DISCOVERY_RANGE")
    before = dict(os.environ)
    with pytest.raises(FileNotFoundError, match="critic checkpoint"):  # fails before any start
        up(UpConfig(arguments={"critic": str(tmp_path / "none")}, out=tmp_path / "up"))
    assert dict(os.environ) == before
