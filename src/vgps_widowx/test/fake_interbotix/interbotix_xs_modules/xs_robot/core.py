"""Fake ``interbotix_xs_modules.xs_robot.core``: the constructor waits for the driver forever.

Without ``node`` the core creates the API's global node (on the default context). It waits for
the driver's services exactly as Interbotix's does: five-second waits logged while the default
context is up, then waits without a timeout.
"""

from __future__ import annotations

import types
from threading import Lock

import fake_xs_sdk
import rclpy
from interbotix_common_modules.common_robot.robot import create_interbotix_global_node
from std_srvs.srv import Trigger


class InterbotixRobotXSCore:
    def __init__(self, robot_model: str, robot_name=None, topic_joint_states="joint_states",
                 logging_level=None, node_name="interbotix_robot_manipulation", node=None,
                 args=None):
        self.robot_model = robot_model
        self.robot_name = robot_model if robot_name is None else robot_name
        self.ns = f"/{self.robot_name}" if self.robot_name else ""
        self.robot_node = create_interbotix_global_node() if node is None else node
        self.js_mutex = Lock()
        clients = {name: self.robot_node.create_client(Trigger, f"{self.ns}/{name}")
                   for name in fake_xs_sdk.SERVICES}
        self.srv_set_reg = clients["set_motor_registers"]
        self.srv_get_info = clients["get_robot_info"]
        while not clients["set_operating_modes"].wait_for_service(timeout_sec=5.0) \
                and rclpy.ok():
            self.robot_node.get_logger().error(
                f"Failed to find services under namespace '{self.ns}'. Is the xs_sdk running "
                "under that namespace?")
        for client in clients.values():
            client.wait_for_service()
        self.driver = fake_xs_sdk.RUNNING[self.ns]
        names, _ = self.driver.joint_states()
        self.js_index_map = {name: i for i, name in enumerate(names)}

    @property
    def joint_states(self):
        """The driver's latest joint state (``name``, ``position``)."""
        names, position = self.driver.joint_states()
        return types.SimpleNamespace(name=list(names), position=position)

    def get_node(self):
        return self.robot_node
