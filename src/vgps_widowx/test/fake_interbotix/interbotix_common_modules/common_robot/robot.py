"""Fake ``interbotix_common_modules.common_robot.robot``: the global node and its start/stop.

As observed in Interbotix's own module: one global node per process (a second one raises);
``robot_startup`` spins it on a thread and refuses a second start; ``robot_shutdown`` destroys the
node and calls ``rclpy.shutdown()`` on the DEFAULT context, and never clears the "up" flag, so a
later start in the same process raises :class:`InterbotixException`.
"""

from __future__ import annotations

import threading
import time

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from interbotix_common_modules.common_robot.exceptions import InterbotixException

_GLOBAL: dict = {"node": None, "up": False, "thread": None}


class InterbotixRobotNode(Node):
    """The API's node class (a plain rclpy node with a future wait and log helpers)."""

    def __init__(self, node_name: str = "interbotix_robot_manipulation", namespace=None,
                 *args, **kwargs):
        super().__init__(node_name, *args, namespace=namespace, **kwargs)

    def wait_until_future_complete(self, future, timeout_sec=None) -> None:
        """While the API is up another thread spins: poll; else spin the global executor."""
        if interbotix_is_up():
            forever = timeout_sec is None or timeout_sec < 0
            end = None if forever else time.monotonic() + timeout_sec
            while not future.done() and (end is None or time.monotonic() < end):
                time.sleep(0.05)
        else:
            rclpy.spin_until_future_complete(self, future, timeout_sec=timeout_sec)

    def logdebug(self, message: str, **kwargs) -> None:
        self.get_logger().debug(message, **kwargs)

    def loginfo(self, message: str, **kwargs) -> None:
        self.get_logger().info(message, **kwargs)

    def logwarn(self, message: str, **kwargs) -> None:
        self.get_logger().warning(message, **kwargs)

    def logerror(self, message: str, **kwargs) -> None:
        self.get_logger().error(message, **kwargs)


def robot_startup(node=None, node_name: str = "interbotix_robot_manipulation",
                  namespace=None) -> None:
    if node is None:
        node = get_interbotix_global_node() or create_interbotix_global_node(node_name, namespace)
    if interbotix_is_up():
        raise InterbotixException("Startup has already been requested.")
    _GLOBAL["up"] = True
    executor = MultiThreadedExecutor()

    def spin() -> None:
        while rclpy.ok():
            executor.add_node(node)
            executor.spin()

    _GLOBAL["thread"] = threading.Thread(target=spin, daemon=True)
    _GLOBAL["thread"].start()


def robot_shutdown(node=None) -> None:
    if node is None:
        node = get_interbotix_global_node()
    node.destroy_node()
    rclpy.shutdown()  # the default context: every node of the process that uses it dies
    if _GLOBAL["thread"] is not None:
        _GLOBAL["thread"].join()
    # Interbotix assigns a local here: the "up" flag stays set.


def create_interbotix_global_node(node_name: str = "interbotix_robot_manipulation",
                                  namespace=None, *args, **kwargs) -> InterbotixRobotNode:
    if _GLOBAL["node"] is not None:
        raise InterbotixException(
            "Tried to create an Interbotix global node but one already exists.")
    if not rclpy.ok():
        rclpy.init()
    _GLOBAL["node"] = InterbotixRobotNode(node_name=node_name, namespace=namespace)
    return _GLOBAL["node"]


def get_interbotix_global_node():
    return _GLOBAL["node"]


def interbotix_is_up() -> bool:
    return bool(_GLOBAL["up"])


def forget_globals() -> None:
    """Tests only: a fresh process's globals (not part of Interbotix's API)."""
    _GLOBAL.update(node=None, up=False, thread=None)
