"""The Interbotix backend against a fake of Interbotix's API and driver (``fake_interbotix/``).

The fake reproduces what Interbotix's own ``xs_sdk_sim`` + ``interbotix_xs_modules`` showed: the
speed check with the stored move time, a blocking call returning a tick early, a global node,
``robot_shutdown`` shutting the default context down, a constructor waiting for the driver
forever. The host here is the process's default rclpy context, as in the arm driver node.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vgps_widowx.arms import make_arm
from vgps_widowx.arms.base import ArmUnavailableError
from vgps_widowx.arms.interbotix_config import REAL_ARM_SETTINGS, real_arm_configs
from vgps_widowx.episode_runner import EpisodeRunner, RunnerConfig
from vgps_widowx.robot import description as robot

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
pytestmark = pytest.mark.ros


def real_arm(connect_timeout_s: float = 10.0, **safety):
    """An Interbotix arm as make_arm builds it: its node in a context of its own by default."""
    from vgps_widowx.arms.interbotix import InterbotixConfig
    from vgps_widowx.safety import SafetyConfig

    config = InterbotixConfig(connect_timeout_s=connect_timeout_s)
    return make_arm("interbotix", config=config, safety=SafetyConfig(**safety))


def test_a_far_reset_after_a_long_episode_is_accepted(interbotix_sdk):
    driver = interbotix_sdk.FakeXsSdk().start()
    arm = real_arm()
    runner = EpisodeRunner(arm, RunnerConfig(episodes=3))
    with arm:
        runner.start_episode()
        for _ in range(12):  # sideways and turning: the waist and wrist travel > pi * 0.2 rad
            assert arm.apply(np.array([0.0, 0.05, 0.0, 0.0, 0.0, 0.1, 1.0])).ok
        last = np.array(driver.commands[-1][0])
        assert np.abs(last - robot.NEUTRAL_POSE).max() > np.pi * arm.config.move_time
        runner.start_episode()  # resets to neutral: refused and raised before the fix
        np.testing.assert_allclose(driver.commands[-1][0], robot.NEUTRAL_POSE)
        arm.reset("sleep")
        np.testing.assert_allclose(driver.commands[-1][0], robot.SLEEP_POSE)
        assert arm.apply(np.array([0.0, 0.0, 0.02, 0.0, 0.0, 0.0, 1.0])).ok


def test_the_host_context_survives_disconnect_and_the_arm_reconnects(interbotix_sdk):
    interbotix_sdk.FakeXsSdk().start()
    host = rclpy.create_node("host")
    try:
        arm = real_arm()
        for _ in range(2):  # the second connect raised InterbotixException before the fix
            with arm:
                arm.reset("neutral")
                assert arm.apply(np.array([0.0, 0.0, -0.02, 0.0, 0.0, 0.0, 1.0])).ok
            assert rclpy.ok() and arm.bot is None
            host.create_publisher(type(host.get_parameter("use_sim_time").to_parameter_msg()),
                                  "still_here", 1)
            rclpy.spin_once(host, timeout_sec=0.0)
    finally:
        host.destroy_node()


def test_connect_without_a_driver_fails_naming_it(interbotix_sdk):
    arm, outcome = real_arm(connect_timeout_s=0.5), {}

    def connect() -> None:
        try:
            arm.connect()
        except ArmUnavailableError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(60.0)  # a hang detector only: before the fix connect never returned
    assert not thread.is_alive(), "connect() hangs without a driver"
    assert "xsarm_control" in outcome["error"] and "/wx250s/" in outcome["error"]
    assert "connect_timeout_s=0.5" in outcome["error"] and not arm.connected
    assert rclpy.ok()


def test_the_reset_target_not_the_lagging_measurement_is_the_command(interbotix_sdk):
    driver = interbotix_sdk.FakeXsSdk().start()
    with real_arm() as arm:
        arm.reset("neutral")
        np.testing.assert_allclose(arm.command[0], robot.NEUTRAL_POSE)
        assert arm.apply(np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])).ok
        np.testing.assert_allclose(driver.commands[-1][0], robot.NEUTRAL_POSE, atol=1e-4)
        assert arm.apply(np.array([0.0, 0.0, -0.02, 0.0, 0.0, 0.0, 1.0])).ok
        target = np.array(driver.commands[-1][0])
        assert np.abs(np.array(driver.position[:6]) - target).max() > 1e-4  # a tick early
        np.testing.assert_allclose(arm.command[0], target)  # the next step starts from here


def test_actions_become_joint_targets_within_the_step_limits(interbotix_sdk):
    driver = interbotix_sdk.FakeXsSdk().start()
    with real_arm(workspace_high=(0.9, 0.9, 0.9)) as arm:
        arm.reset("neutral")
        start = arm.command[1]
        result = arm.apply(np.array([0.0, 0.0, -0.2, 0.0, 0.0, 0.0, 0.2]))
        assert result.ok and result.action[2] == pytest.approx(-robot.MAX_TRANSLATION)
        assert driver.commands[-1][1] == arm.config.move_time
        np.testing.assert_allclose(arm.command[1] - start, [0, 0, -robot.MAX_TRANSLATION],
                                   atol=1e-3)
        assert arm.bot.gripper.calls == [("release", 0.0), ("grasp", 0.0)]
        sent = len(driver.commands)
        assert not arm.apply(np.array([0, 0, np.inf, 0, 0, 0, 1.0])).ok
        for _ in range(20):  # walk out along x until the arm cannot follow
            result = arm.apply(np.array([0.05, 0, 0.05, 0, 0, 0, 1.0]))
            if not result.ok:
                break
        assert not result.ok and result.reasons[-1].startswith("command_refused:")
        assert len(driver.commands) - sent < 20


def test_settings_keep_the_step_within_interbotix_speed_limit():
    values = {spec[0]: spec[1] for spec in REAL_ARM_SETTINGS}
    configs = real_arm_configs(values)
    assert configs["config"].namespace == "/wx250s"
    with pytest.raises(ValueError, match=r"max_joint_step=0\.7.*pi \* move_time"):
        real_arm_configs({**values, "max_joint_step": 0.7})
    with pytest.raises(ValueError, match="workspace_low"):
        real_arm_configs({**values, "workspace_low": [0.5, 0.0, 0.0]})


def test_the_bridge_start_and_yaw_range_on_the_real_arm(interbotix_sdk):
    """robot:=real's defaults: reset to (0.3, 0, 0.15) pointing down; the yaw stops at 1.57."""
    from vgps_widowx.robot import kinematics

    driver = interbotix_sdk.FakeXsSdk().start()
    arm = real_arm(yaw_low=-1.57, yaw_high=1.57)
    with arm:
        arm.reset("bridge_start")
        np.testing.assert_allclose(driver.commands[-1][0], robot.BRIDGE_START_POSE)
        q, pos = arm.command
        np.testing.assert_allclose(pos, robot.BRIDGE_START_POSITION, atol=1e-4)
        for _ in range(8):  # 2 rad of yaw asked for
            result = arm.apply(np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.25, 1.0]))
            assert result.ok
        assert "yaw_clamped" in result.verdict.codes
        q, _ = arm.command
        yaw = kinematics.state_euler(kinematics.ArmKinematics(
            kinematics.kinematic_model()).forward(q)[1])[2]
        assert yaw == pytest.approx(1.57, abs=0.01)


def test_a_reset_returns_with_the_arm_settled_on_its_pose(interbotix_sdk):
    """The blocking call returns a tick early; the first observation must show the start pose."""
    interbotix_sdk.FakeXsSdk().start()
    arm = real_arm()
    with arm:
        for pose in ("bridge_start", "neutral", "bridge_start"):
            arm.reset(pose)
            np.testing.assert_allclose(arm.joints(), robot.NAMED_POSES[pose], atol=2e-3)
        assert not [f for f in arm.faults() if f.startswith("reset_not_settled")]
