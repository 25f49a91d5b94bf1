"""The real WidowX 250 behind the arm interface, through the Interbotix ROS 2 Python API.

``interbotix_xs_modules`` is optional: it is imported when an :class:`InterbotixArm` is made, and
its absence raises :class:`~vgps_widowx.arms.base.ArmUnavailableError` naming the install
(:data:`INTERBOTIX_INSTALL_HINT`). API used
(``interbotix_xs_modules.xs_robot``): ``InterbotixManipulatorXS(robot_model, group_name,
gripper_name, robot_name, moving_time, accel_time, gripper_pressure)``,
``bot.arm.set_joint_positions(positions, moving_time, accel_time, blocking) -> bool``,
``bot.arm.group_info.joint_names``, ``bot.core.joint_states`` / ``js_index_map`` / ``js_mutex``,
``bot.gripper.release(delay)`` (open) and ``grasp(delay)`` (close), ``bot.shutdown()`` or, in
newer releases, ``interbotix_common_modules.common_robot.robot.robot_startup/robot_shutdown``.

Usage::

    with InterbotixArm() as arm:                # needs xsarm_control running for wx250s
        arm.reset("neutral")
        arm.apply(np.array([0, 0, -0.02, 0, 0, 0, 1.0]))
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from vgps_widowx.arms.base import ArmBackend, ArmCommandError, ArmUnavailableError
from vgps_widowx.robot import description as robot
from vgps_widowx.robot import kinematics
from vgps_widowx.robot.kinematics import kinematic_model
from vgps_widowx.safety import SafetyConfig

INTERBOTIX_INSTALL_HINT = (
    "install the Interbotix ROS 2 arm packages: "
    "https://docs.trossenrobotics.com/interbotix_xsarms_docs/ros_interface/ros2/software_setup.html"
)


@dataclasses.dataclass(frozen=True)
class InterbotixConfig:
    """Settings of :class:`InterbotixArm`."""

    robot_model: str = robot.MODEL_NAME  # Interbotix model name
    group_name: str = "arm"  # joint group of the six arm joints
    gripper_name: str = "gripper"
    robot_name: str | None = None  # ROS namespace; None = robot_model
    move_time: float = 0.2  # s per action, blocking (BridgeData 5 Hz; Octo's script uses 0.4)
    accel_time: float = 0.1  # s accelerating/decelerating within move_time (<= move_time / 2)
    reset_move_time: float = 2.0  # s for moves to named poses
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
        for field in (
            "move_time",
            "accel_time",
            "reset_move_time",
            "max_joint_step",
            "ik_damping",
            "ik_pos_tol",
            "ik_rot_tol",
            "resync_distance",
        ):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name}.{field}={value!r}: must be a finite number > 0")
        if self.accel_time > self.move_time / 2:
            raise ValueError(f"{name}.accel_time={self.accel_time!r}: must be <= move_time / 2")
        for field in ("gripper_pressure", "gripper_threshold"):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise ValueError(f"{name}.{field}={getattr(self, field)!r}: need 0..1")
        if not isinstance(self.ik_iters, int) or self.ik_iters < 1:
            raise ValueError(f"{name}.ik_iters={self.ik_iters!r}: must be an integer >= 1")


def _import_interbotix() -> tuple[Any, Any, Any]:
    """``(InterbotixManipulatorXS, robot_startup | None, robot_shutdown | None)``."""
    try:
        from interbotix_xs_modules.xs_robot.arm import InterbotixManipulatorXS
    except ImportError as exc:
        raise ArmUnavailableError(
            f"the real arm needs interbotix_xs_modules, which is not importable ({exc}); "
            f"{INTERBOTIX_INSTALL_HINT}"
        ) from exc
    try:  # newer releases spin through a global node started by robot_startup()
        from interbotix_common_modules.common_robot.robot import robot_shutdown, robot_startup
    except ImportError:
        robot_startup = robot_shutdown = None
    return InterbotixManipulatorXS, robot_startup, robot_shutdown


class InterbotixArm(ArmBackend):
    """The real WidowX 250 through the Interbotix ROS 2 Python API (``interbotix_xs_modules``).

    Each action is applied to the commanded tool pose (to the measured one when the arm lags by
    more than ``resync_distance``), solved to joints by damped least squares from the commanded
    joints on the facts-built kinematic model, checked (IK error, largest joint change) and sent
    as one joint-group command with ``moving_time=move_time``, blocking. The continuous gripper
    command is thresholded to the PWM gripper's ``release()``/``grasp()``, sent only on change.
    Needs a running ``xsarm_control`` (xs_sdk) for the arm. The constructor only checks that the
    package imports; :meth:`connect` talks to the robot.

    Args:
        config: driver settings.
        safety: safety limits.

    Raises:
        ArmUnavailableError: ``interbotix_xs_modules`` is not importable (names the install).
    """

    def __init__(self, config: InterbotixConfig | None = None, safety: SafetyConfig | None = None):
        super().__init__(safety)
        self.config = config or InterbotixConfig()
        self._bot_cls, self._startup, self._shutdown = _import_interbotix()
        self._kin = kinematics.ArmKinematics(kinematic_model(), damping=self.config.ik_damping)
        self._bot: Any = None
        self._q_cmd = np.zeros(6)
        self._cmd_pos, self._cmd_rot = self._kin.forward(self._q_cmd)
        self._gripper_open: bool | None = None

    @property
    def bot(self) -> Any:
        """The ``InterbotixManipulatorXS`` (None before :meth:`connect`)."""
        return self._bot

    def _require_bot(self) -> Any:
        if self._bot is None:
            raise RuntimeError("InterbotixArm: call connect() first")
        return self._bot

    def joints(self) -> np.ndarray:
        core = self._require_bot().core
        with core.js_mutex:
            positions = list(core.joint_states.position)
        names = self._bot.arm.group_info.joint_names
        return np.array([positions[core.js_index_map[n]] for n in names], np.float32)

    def gripper(self) -> float:
        core = self._require_bot().core
        with core.js_mutex:
            finger = core.joint_states.position[core.js_index_map[robot.FINGER_JOINTS[0]]]
        return robot.gripper_opening(float(finger))

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        pos, rot = self._kin.forward(self.joints().astype(np.float64))
        return pos, kinematics.state_euler(rot)

    def _connect(self) -> None:
        cfg = self.config
        self._bot = self._bot_cls(
            robot_model=cfg.robot_model,
            group_name=cfg.group_name,
            gripper_name=cfg.gripper_name,
            robot_name=cfg.robot_name,
            moving_time=cfg.reset_move_time,
            accel_time=cfg.accel_time,
            gripper_pressure=cfg.gripper_pressure,
        )
        if self._startup is not None:
            self._startup()
        self._sync_command()

    def _disconnect(self) -> None:
        bot, self._bot = self._bot, None
        if self._shutdown is not None:
            self._shutdown()
        elif bot is not None:
            bot.shutdown()

    def _sync_command(self) -> None:
        """Takes the measured joints as the commanded pose."""
        self._q_cmd = self.joints().astype(np.float64)
        self._cmd_pos, self._cmd_rot = self._kin.forward(self._q_cmd)

    def _reset(self, joints: np.ndarray) -> None:
        cfg = self.config
        self._set_gripper(True)
        sent = self._bot.arm.set_joint_positions(
            [float(v) for v in joints],
            moving_time=cfg.reset_move_time,
            accel_time=cfg.accel_time,
            blocking=True,
        )
        if sent is False:
            raise ArmCommandError(f"the Interbotix driver refused the reset joints {joints}")
        self._sync_command()

    def _reference_position(self) -> np.ndarray:
        pos, _ = self._kin.forward(self.joints().astype(np.float64))
        if np.linalg.norm(pos - self._cmd_pos) > self.config.resync_distance:
            self._sync_command()
        return self._cmd_pos.copy()

    def _execute(self, action: np.ndarray) -> dict[str, Any]:
        cfg = self.config
        act = action.astype(np.float64)
        goal_pos = self._cmd_pos + act[:3]
        goal_rot = kinematics.euler_to_rotation(act[3:6]) @ self._cmd_rot
        result = self._kin.solve(goal_pos, goal_rot, self._q_cmd, max_iters=cfg.ik_iters)
        if result.pos_error > cfg.ik_pos_tol or result.rot_error > cfg.ik_rot_tol:
            raise ArmCommandError(
                f"IK misses the target by {result.pos_error * 1e3:.1f} mm and "
                f"{result.rot_error:.3f} rad (tolerances {cfg.ik_pos_tol * 1e3:g} mm, "
                f"{cfg.ik_rot_tol:g} rad); nothing sent"
            )
        jump = np.abs(result.q - self._q_cmd)
        if jump.max() > cfg.max_joint_step:
            joint = robot.ARM_JOINTS[int(jump.argmax())]
            raise ArmCommandError(
                f"IK moves {joint} by {jump.max():.3f} rad > max_joint_step "
                f"{cfg.max_joint_step:g}; nothing sent"
            )
        self._set_gripper(bool(act[6] >= cfg.gripper_threshold))
        sent = self._bot.arm.set_joint_positions(
            [float(v) for v in result.q],
            moving_time=cfg.move_time,
            accel_time=cfg.accel_time,
            blocking=True,
        )
        if sent is False:
            raise ArmCommandError("the Interbotix driver refused the joint targets (limits)")
        self._q_cmd, self._cmd_pos, self._cmd_rot = result.q, goal_pos, goal_rot
        return {
            "ik_pos_error": result.pos_error,
            "ik_rot_error": result.rot_error,
            "joint_targets": result.q.tolist(),
            "gripper_open": self._gripper_open,
        }

    def _set_gripper(self, want_open: bool) -> None:
        if want_open != self._gripper_open:
            if want_open:
                self._bot.gripper.release(delay=0.0)
            else:
                self._bot.gripper.grasp(delay=0.0)
            self._gripper_open = want_open
