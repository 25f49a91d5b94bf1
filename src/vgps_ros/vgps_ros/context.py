"""An rclpy context of one's own: a node in it and a single-threaded executor on a thread.

For code that must run a ROS node without touching the host's default context - Interbotix's
Python API (``interbotix_xs_modules``) builds its node on the default context and its
``robot_shutdown()`` shuts that context down, taking the host node with it. The Interbotix arm
backend gives the API a node made here instead (``vgps_widowx.arms.interbotix``).

Usage::

    session = OwnContext()
    node = session.open(rclpy.node.Node, "interbotix")   # its own context
    session.spin()                                         # its own executor, on a thread
    ...
    session.close()                                        # the host's context is untouched
"""

from __future__ import annotations

import contextlib
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

__all__ = ["OwnContext"]


class OwnContext:
    """An rclpy context, node and executor of their own (the Interbotix backend's ``RosSession``).

    Interbotix's API spins the default context while it builds the robot, so that one must be
    initialised (as a node process's is); its node lives here, and nothing here shuts the
    default context down.
    """

    _context = _node = _executor = _thread = None

    def open(self, node_class: type, name: str):
        if not rclpy.ok():
            raise RuntimeError("Interbotix's API spins the default rclpy context while it "
                               "starts: call rclpy.init() first")
        self.close()
        self._context = rclpy.Context()
        # No arguments: the process's --ros-args (its node name remap, its parameter file) are
        # the host node's; parsed here they would rename this node to the host's name.
        rclpy.init(args=[], context=self._context)
        self._node = node_class(node_name=name, context=self._context)
        return self._node

    def spin(self) -> None:
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, args=(self._executor,), daemon=True)
        self._thread.start()

    @staticmethod
    def _spin(executor: SingleThreadedExecutor) -> None:
        # Ctrl-C: rclpy's signal handler shuts every context down, this one included; that is
        # the end of the session, not an error.
        with contextlib.suppress(ExternalShutdownException):
            executor.spin()

    def close(self) -> None:
        if self._context is None:
            return
        if self._executor is not None:
            self._executor.shutdown()
        self._node.destroy_node()
        rclpy.try_shutdown(context=self._context)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._context = self._node = self._executor = self._thread = None
