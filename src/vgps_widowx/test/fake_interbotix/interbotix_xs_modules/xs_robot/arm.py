"""Fake ``interbotix_xs_modules.xs_robot.arm``: ``InterbotixManipulatorXS`` and the arm group.

Reproduces what was observed against Interbotix's own code: ``set_joint_positions`` checks the
joint speed against the STORED ``moving_time`` (and the last commanded joints) before it changes
that time, refuses (returns False) a command over the limit, and changes the stored time only
for a command that passes; a blocking command returns a tick before the target is reached. The
stored time is changed through the driver's register service, waited for with the node's
``wait_until_future_complete`` (someone must spin the node).
"""

from __future__ import annotations

import types

import fake_xs_sdk
import rclpy
from std_srvs.srv import Trigger

from interbotix_xs_modules.xs_robot.core import InterbotixRobotXSCore
from interbotix_xs_modules.xs_robot.gripper import InterbotixGripperXSInterface


class InterbotixManipulatorXS:
    def __init__(self, robot_model: str, group_name: str = "arm", gripper_name="gripper",
                 robot_name=None, moving_time: float = 2.0, accel_time: float = 0.3,
                 gripper_pressure: float = 0.5, gripper_pressure_lower_limit: int = 150,
                 gripper_pressure_upper_limit: int = 350, topic_joint_states="joint_states",
                 logging_level=None, node_name="robot_manipulation", node=None,
                 iterative_update_fk=True, args=None):
        self.core = InterbotixRobotXSCore(robot_model, robot_name, topic_joint_states,
                                          logging_level, node_name, node, args)
        self.arm = InterbotixArmXSInterface(self.core, robot_model, group_name, moving_time,
                                            accel_time)
        if gripper_name is not None:
            self.gripper = InterbotixGripperXSInterface(self.core, gripper_name, gripper_pressure)
        self.robot_name = robot_name

    def get_node(self):
        return self.core.robot_node


class InterbotixArmXSInterface:
    def __init__(self, core, robot_model: str, group_name: str, moving_time: float = 2.0,
                 accel_time: float = 0.3, iterative_update_fk: bool = True):
        self.core, self.robot_model, self.group_name = core, robot_model, group_name
        self.moving_time, self.accel_time = moving_time, accel_time
        node = core.get_node()
        future = core.srv_get_info.call_async(Trigger.Request())
        while rclpy.ok() and not future.done():  # Interbotix spins the node itself here
            rclpy.spin_until_future_complete(node, future)
            rclpy.spin_once(node, timeout_sec=0.05)
        limit = core.driver.velocity_limit
        self.group_info = types.SimpleNamespace(
            joint_names=list(fake_xs_sdk.JOINTS[:6]), num_joints=6,
            joint_lower_limits=list(fake_xs_sdk.LOWER),
            joint_upper_limits=list(fake_xs_sdk.UPPER), joint_velocity_limits=[limit] * 6)
        position = core.joint_states.position
        self.joint_commands = [position[core.js_index_map[n]] for n in self.group_info.joint_names]

    def set_trajectory_time(self, moving_time=None, accel_time=None) -> None:
        for value, attr in ((moving_time, "moving_time"), (accel_time, "accel_time")):
            if value is not None and value != getattr(self, attr):
                setattr(self, attr, value)
                future = self.core.srv_set_reg.call_async(Trigger.Request())
                self.core.get_node().wait_until_future_complete(future)

    def _check_joint_limits(self, positions) -> bool:
        theta = [int(p * 1000) / 1000.0 for p in positions]
        info = self.group_info
        for x in range(info.num_joints):
            if not info.joint_lower_limits[x] <= theta[x] <= info.joint_upper_limits[x]:
                return False
            speed = abs(theta[x] - self.joint_commands[x]) / float(self.moving_time)
            if speed > info.joint_velocity_limits[x]:
                return False
        return True

    def set_joint_positions(self, joint_positions, moving_time=None, accel_time=None,
                            blocking: bool = True) -> bool:
        if not self._check_joint_limits(joint_positions):
            return False
        self.set_trajectory_time(moving_time, accel_time)
        self.joint_commands = list(joint_positions)
        self.core.driver.move(list(joint_positions), self.moving_time)
        return True
