"""Settings of the real WidowX 250 backend (:class:`~vgps_widowx.arms.interbotix.InterbotixArm`).

Every field is a parameter of ``arm_driver_node`` (``config/steer_widowx.yaml``). One invariant
ties two of them: Interbotix refuses a command that moves any joint faster than its velocity
limit (pi rad/s) over the move time, so ``max_joint_step`` must stay <= pi * ``move_time``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from vgps_widowx.robot import description as robot
from vgps_widowx.robot import kinematics
from vgps_widowx.safety import SafetyConfig

# The services Interbotix's constructor waits for, under /<robot_name> (xs_sdk or xs_sdk_sim).
DRIVER_SERVICES = ("set_operating_modes", "set_motor_pid_gains", "set_motor_registers",
                   "get_motor_registers", "get_robot_info", "torque_enable", "reboot_motors")
DRIVER_HINT = ("start Interbotix's driver first: ros2 launch interbotix_xsarm_control "
               "xsarm_control.launch.py robot_model:={model} (use_sim:=true for xs_sdk_sim)")
RESET_SPEED = 0.8  # fraction of the joint velocity limit a reset may use (longer moves go slower)


@dataclasses.dataclass(frozen=True)
class InterbotixConfig:
    """Settings of :class:`~vgps_widowx.arms.interbotix.InterbotixArm` (seconds, metres, rad)."""

    robot_model: str = robot.MODEL_NAME  # Interbotix model name
    group_name: str = "arm"  # joint group of the six arm joints
    gripper_name: str = "gripper"
    robot_name: str | None = None  # ROS namespace of the driver; None = robot_model
    move_time: float = 0.2  # s per action, blocking (BridgeData 5 Hz; Octo's script uses 0.4)
    accel_time: float = 0.1  # s accelerating/decelerating within move_time (<= move_time / 2)
    reset_move_time: float = 2.0  # s for a reset at least (longer when a joint travels far)
    connect_timeout_s: float = 10.0  # driver services, construction and each driver answer
    gripper_pressure: float = 0.5  # Interbotix PWM pressure fraction
    gripper_threshold: float = robot.GRIPPER_THRESHOLD  # >= this opens (release), below grasps
    max_joint_step: float = 0.5  # rad: an IK solution moving any joint further is refused
    ik_damping: float = kinematics.IK_DAMPING  # DLS lambda
    ik_iters: int = 60
    ik_pos_tol: float = 0.005  # m: refuse to send when IK misses the target by more
    ik_rot_tol: float = 0.05  # rad
    resync_distance: float = robot.RESYNC_DISTANCE  # m: lag that restarts from the measured pose

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("robot_model", "group_name", "gripper_name"):
            if not isinstance(getattr(self, field), str) or not getattr(self, field):
                raise ValueError(f"{name}.{field}={getattr(self, field)!r}: need a name")
        if self.robot_name is not None and not isinstance(self.robot_name, str):
            raise ValueError(f"{name}.robot_name={self.robot_name!r}: need a name or None")
        for field in ("move_time", "accel_time", "reset_move_time", "connect_timeout_s",
                      "max_joint_step", "ik_damping", "ik_pos_tol", "ik_rot_tol",
                      "resync_distance"):
            value = getattr(self, field)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not np.isfinite(value) or value <= 0):
                raise ValueError(f"{name}.{field}={value!r}: must be a finite number > 0")
        if self.accel_time > self.move_time / 2:
            raise ValueError(f"{name}.accel_time={self.accel_time!r}: must be <= move_time / 2 "
                             f"({self.move_time / 2:g})")
        if self.accel_time > self.reset_move_time / 2:
            raise ValueError(f"{name}.reset_move_time={self.reset_move_time!r}: must be >= "
                             f"2 * accel_time ({2 * self.accel_time:g})")
        fastest = robot.JOINT_VELOCITY_LIMIT * self.move_time
        if self.max_joint_step > fastest:
            raise ValueError(
                f"{name}.max_joint_step={self.max_joint_step!r}: must be <= pi * move_time "
                f"({fastest:.3f} rad at move_time={self.move_time:g} s), or Interbotix refuses "
                "the step")
        for field in ("gripper_pressure", "gripper_threshold"):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise ValueError(f"{name}.{field}={getattr(self, field)!r}: need 0..1")
        if isinstance(self.ik_iters, bool) or not isinstance(self.ik_iters, int) \
                or self.ik_iters < 1:
            raise ValueError(f"{name}.ik_iters={self.ik_iters!r}: must be an integer >= 1")

    @property
    def namespace(self) -> str:
        """The driver's namespace (``/wx250s``; ``""`` for ``robot_name=""``)."""
        ns = self.robot_model if self.robot_name is None else self.robot_name
        return f"/{ns}" if ns else ""


_REAL, _SAFE = InterbotixConfig(), SafetyConfig()
# arm_driver_node's real-arm parameters: (name, default, description[, (low, high)]).
REAL_ARM_SETTINGS: tuple[tuple[Any, ...], ...] = (
    ("robot_model", _REAL.robot_model, "real arm: Interbotix model (the driver's robot_model)"),
    ("robot_name", "", "real arm: the driver's namespace ('' = robot_model)"),
    ("move_time", _REAL.move_time, "real arm: s per action, blocking", (0.02, 10.0)),
    ("accel_time", _REAL.accel_time, "real arm: s accelerating within a move (<= move_time / 2)",
     (0.0, 5.0)),
    ("reset_move_time", _REAL.reset_move_time, "real arm: s per reset at least (far resets go "
     "slower)", (0.1, 60.0)),
    ("connect_timeout_s", _REAL.connect_timeout_s, "real arm: wait this long for Interbotix's "
     "driver at configure (and for each of its answers)", (0.1, 600.0)),
    ("max_joint_step", _REAL.max_joint_step, "real arm: rad an action may move a joint (<= pi * "
     "move_time)", (0.001, 10.0)),
    ("workspace_low", _SAFE.workspace_low, "real arm: tool position box, lower corner (m)"),
    ("workspace_high", _SAFE.workspace_high, "real arm: tool position box, upper corner (m)"),
    ("max_translation", _SAFE.max_translation, "real arm: |dx|, |dy|, |dz| per step (m)",
     (0.0001, 1.0)),
    ("max_rotation", _SAFE.max_rotation, "real arm: |droll|, |dpitch|, |dyaw| per step (rad)",
     (0.0001, 3.2)),
    ("yaw_low", _SAFE.yaw_low, "real arm: lowest tool yaw (rad, Bridge euler; -pi..pi = no "
     "bound)", (-np.pi, np.pi)),
    ("yaw_high", _SAFE.yaw_high, "real arm: highest tool yaw (rad)", (-np.pi, np.pi)),
)


def real_arm_configs(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"config": InterbotixConfig, "safety": SafetyConfig}`` from :data:`REAL_ARM_SETTINGS`
    values by name.

    Raises:
        ValueError: a value is invalid (names the field), e.g. max_joint_step > pi * move_time.
    """
    config = InterbotixConfig(
        robot_model=values["robot_model"], robot_name=values["robot_name"] or None,
        move_time=values["move_time"], accel_time=values["accel_time"],
        reset_move_time=values["reset_move_time"],
        connect_timeout_s=values["connect_timeout_s"], max_joint_step=values["max_joint_step"])
    safety = SafetyConfig(workspace_low=tuple(values["workspace_low"]),
                          workspace_high=tuple(values["workspace_high"]),
                          max_translation=values["max_translation"],
                          max_rotation=values["max_rotation"],
                          yaw_low=values["yaw_low"], yaw_high=values["yaw_high"])
    return {"config": config, "safety": safety}
