"""arm_driver_node on the real-arm backend, against the fake Interbotix API and driver.

No driver: configure fails (it used to hang), naming the driver. A reset the driver refuses: the
episode is a failed episode and an ERROR on /diagnostics, and the node keeps serving.
"""

from __future__ import annotations

import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
pytestmark = pytest.mark.ros


def make_node(**overrides):
    from rclpy.parameter import Parameter

    from vgps_widowx.arm_driver_node import ArmDriverNode

    values = {"backend": "interbotix", "connect_timeout_s": 0.5, **overrides}
    return ArmDriverNode(parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])


def test_configure_without_a_driver_fails_naming_it(interbotix_sdk):
    from lifecycle_msgs.msg import State

    node = make_node()
    try:
        node.trigger_configure()
        assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
        assert "ArmUnavailableError" in node.error and "xsarm_control" in node.error
        assert rclpy.ok()
    finally:
        node.destroy_node()


def test_a_refused_reset_is_a_failed_episode_and_the_node_keeps_running(interbotix_sdk):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from rclpy.executors import SingleThreadedExecutor
    from std_srvs.srv import Trigger

    from vgps_interfaces.msg import EpisodeStatus
    from vgps_ros import qos

    interbotix_sdk.FakeXsSdk(velocity_limit=0.01).start()  # the driver refuses every move
    node = make_node(connect_timeout_s=10.0, startup_timeout_s=0.0)
    probe = rclpy.create_node("probe")
    events, errors = [], []
    probe.create_subscription(EpisodeStatus, qos.EPISODE, events.append, qos.COMMAND)
    probe.create_subscription(
        DiagnosticArray, qos.DIAGNOSTICS,
        lambda m: errors.extend(s.message for s in m.status if s.level == DiagnosticStatus.ERROR
                                and s.name == "vgps: arm_driver"), qos.DIAGNOSTICS_QOS)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(probe)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        node.trigger_configure()
        assert node.status == "configured", node.error
        node.trigger_activate()
        deadline = time.monotonic() + 30
        while not (errors and events) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.event for e in events] == [EpisodeStatus.EVENT_FAILED]
        assert "episode 0 cannot start" in errors[-1] and "refused the reset" in errors[-1]
        client = probe.create_client(Trigger, qos.START_EPISODE)
        assert client.wait_for_service(timeout_sec=10)
        future = client.call_async(Trigger.Request())
        while not future.done() and time.monotonic() < deadline + 30:
            time.sleep(0.05)
        response = future.result()
        assert not response.success and "episode 1 cannot start" in response.message
        assert thread.is_alive() and node.status == "active"
    finally:
        executor.shutdown()
        node.destroy_node()
        probe.destroy_node()
