"""A stand-in for Interbotix's motor driver (``xs_sdk`` / ``xs_sdk_sim``) of a wx250s.

Like the real driver it is another ROS participant: its own rclpy context (as another process
would be), offering the seven services under ``/<robot_name>`` that the API's constructor waits
for (typed ``std_srvs/Trigger`` here: ``interbotix_xs_msgs`` is not built in CI). The simulated
motors are in memory (:attr:`FakeXsSdk.position`), reached by the fake API through
:data:`RUNNING`. Observed behaviour it reproduces: a blocking command returns one tick (33 ms)
before the target is reached, the measured pose lagging by ``tick / moving_time`` of the move
until that tick has passed; joint and velocity limits (pi rad/s) come from the driver's info.
"""

from __future__ import annotations

import math
import threading
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_srvs.srv import Trigger

SERVICES = ("set_operating_modes", "set_motor_pid_gains", "set_motor_registers",
            "get_motor_registers", "get_robot_info", "torque_enable", "reboot_motors")
JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate",
          "gripper", "left_finger", "right_finger")
LOWER = (-3.14158, -1.88496, -2.14675, -3.14158, -1.74533, -3.14158)
UPPER = (3.14158, 1.98968, 1.60570, 3.14158, 2.14675, 3.14158)
SLEEP = (0.0, -1.80, 1.55, 0.0, 0.8, 0.0)
FINGER_OPEN, FINGER_CLOSED = 0.037, 0.015
TICK = 1 / 30  # s: the driver's joint-state period; a blocking command returns this early

RUNNING: dict[str, FakeXsSdk] = {}  # namespace ("/wx250s") -> running driver


class FakeXsSdk:
    """The driver of one arm; :meth:`start` brings its services up, :meth:`stop` takes them down.

    Args:
        robot_name: namespace of the services (the API's ``robot_name``, default its model).
        velocity_limit: rad/s reported for every arm joint.
    """

    def __init__(self, robot_name: str = "wx250s", velocity_limit: float = math.pi):
        self.ns = f"/{robot_name}" if robot_name else ""
        self.velocity_limit = velocity_limit
        self.lock = threading.Lock()
        self.position = [*SLEEP, 0.0, FINGER_OPEN, -FINGER_OPEN]
        self.commands: list[tuple[list[float], float]] = []  # (arm joints, moving_time) sent
        self._arrival: tuple[float, list[float]] | None = None  # (monotonic time, target)
        self.register_writes = 0
        self._context = self._node = self._executor = self._thread = None

    def start(self) -> FakeXsSdk:
        self._context = rclpy.Context()
        rclpy.init(context=self._context)
        self._node = rclpy.create_node("xs_sdk", namespace=self.ns or None,
                                       context=self._context)
        for name in SERVICES:
            self._node.create_service(Trigger, f"{self.ns}/{name}", self._answer)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()
        RUNNING[self.ns] = self
        return self

    def stop(self) -> None:
        RUNNING.pop(self.ns, None)
        if self._context is not None:
            self._executor.shutdown()
            self._node.destroy_node()
            rclpy.try_shutdown(context=self._context)
            self._thread.join(timeout=5)
            self._context = None

    def _answer(self, request, response):
        with self.lock:
            self.register_writes += 1
        response.success = True
        return response

    # -- the motors ------------------------------------------------------------------------------
    def move(self, target: list[float], moving_time: float) -> None:
        """A blocking group command: returns with the arm a tick short of ``target``."""
        with self.lock:
            start = self.position[:6]
            left = min(1.0, TICK / moving_time)
            self.position[:6] = [t - (t - s) * left for s, t in zip(start, target)]
            self.commands.append((list(target), moving_time))
            self._arrival = (time.monotonic() + TICK, list(target))

    def set_fingers(self, finger: float) -> None:
        with self.lock:
            self.position[7:9] = [finger, -finger]

    def joint_states(self) -> tuple[tuple[str, ...], list[float]]:
        with self.lock:
            if self._arrival is not None and time.monotonic() >= self._arrival[0]:
                self.position[:6], self._arrival = self._arrival[1], None
            return JOINTS, list(self.position)
