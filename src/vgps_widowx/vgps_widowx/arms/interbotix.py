"""The real WidowX 250 behind the arm interface, through the Interbotix ROS 2 Python API.

``interbotix_xs_modules`` is optional: it is imported when an :class:`InterbotixArm` is made, and
its absence raises :class:`~vgps_widowx.arms.base.ArmUnavailableError` naming the install
(:data:`INTERBOTIX_INSTALL_HINT`). API used (``interbotix_xs_modules.xs_robot.arm``,
``interbotix_common_modules.common_robot.robot``): ``InterbotixManipulatorXS(robot_model,
group_name, gripper_name, robot_name, moving_time, accel_time, gripper_pressure, node=...)``,
``bot.arm.set_trajectory_time(moving_time, accel_time)``,
``bot.arm.set_joint_positions(positions, moving_time, accel_time, blocking) -> bool``,
``bot.arm.joint_commands``, ``bot.core.joint_states`` / ``js_index_map`` / ``js_mutex``,
``bot.gripper.release(delay)`` (open) / ``grasp(delay)`` (close), ``InterbotixRobotNode``.

What Interbotix's own driver showed (the project's facts sheet) and how this backend copes:

* ``robot_startup``/``robot_shutdown`` run a global node on the host's DEFAULT context and shut
  that context down: never called here. The API gets a node of the backend's own, in an rclpy
  context of its own (a :class:`RosSession`; by default :class:`vgps_ros.context.OwnContext`),
  spun by the session's executor once the robot is built. Like the node modules, this module is
  a ROS adapter: the import contracts allow it ROS, and nothing in the cores imports it (the arm
  registry imports it only when an Interbotix arm is built).
* the constructor waits for the driver forever: :meth:`InterbotixArm.connect` first waits for
  the driver's services at most ``connect_timeout_s`` and fails with a clear
  :class:`~vgps_widowx.arms.base.ArmUnavailableError` naming the driver to start.
* ``set_joint_positions`` checks the joint speed with the STORED move time: a reset first sets
  the trajectory time to its own (longer) move time, so a far reset after 0.2 s steps passes.
* a blocking call returns a tick before the target: the target, not the lagging measurement,
  is kept as the command, and a reset returns once the measured joints have settled on it
  (at most ``SETTLE_TIMEOUT_S``; a pose that does not settle is reported in ``faults()``), so
  an episode's first observation shows the arm at its start pose.

Usage::

    with InterbotixArm() as arm:                           # needs xsarm_control for wx250s
        arm.reset("neutral")
        arm.apply(np.array([0, 0, -0.02, 0, 0, 0, 1.0]))
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

import numpy as np

from vgps_widowx.arms.base import ArmBackend, ArmCommandError, ArmUnavailableError
from vgps_widowx.arms.interbotix_config import (
    DRIVER_HINT,
    DRIVER_SERVICES,
    RESET_SPEED,
    InterbotixConfig,
)
from vgps_widowx.robot import description as robot
from vgps_widowx.robot import kinematics
from vgps_widowx.robot.kinematics import kinematic_model
from vgps_widowx.safety import SafetyConfig

__all__ = ["INTERBOTIX_INSTALL_HINT", "InterbotixArm", "InterbotixConfig", "RosSession"]

INTERBOTIX_INSTALL_HINT = (
    "install the Interbotix ROS 2 arm packages: "
    "https://docs.trossenrobotics.com/interbotix_xsarms_docs/ros_interface/ros2/software_setup.html"
)
NODE_NAME = "vgps_interbotix"
_POLL_S = 0.05
SETTLE_TIMEOUT_S = 0.5  # a reset waits this long at most for the joints to reach the target
SETTLE_TOLERANCE = 0.002  # rad per joint (~0.5 mm at the tool)


class RosSession(Protocol):
    """An rclpy context of the backend's own, never the host's default context."""

    def open(self, node_class: type, name: str) -> Any:
        """Starts the context and returns ``node_class(node_name=name, context=...)``."""

    def spin(self) -> None:
        """Spins the node on the session's own executor thread from now on."""

    def close(self) -> None:
        """Stops the executor, destroys the node and shuts the context down (idempotent)."""


def _import_interbotix() -> tuple[Any, Any]:
    """``(InterbotixManipulatorXS, InterbotixRobotNode)``."""
    try:
        from interbotix_common_modules.common_robot.robot import InterbotixRobotNode
        from interbotix_xs_modules.xs_robot.arm import InterbotixManipulatorXS
    except ImportError as exc:
        raise ArmUnavailableError(
            f"the real arm needs interbotix_xs_modules and interbotix_common_modules, which are "
            f"not importable ({exc}); {INTERBOTIX_INSTALL_HINT}"
        ) from exc
    return InterbotixManipulatorXS, InterbotixRobotNode


def _own_spin_node(base: type, answer_timeout_s: float) -> type:
    """Interbotix's node class, waiting on futures that the session's executor completes."""

    class OwnSpinNode(base):  # type: ignore[misc, valid-type]
        def wait_until_future_complete(self, future: Any, timeout_sec: float | None = None):
            if self.executor is None:  # being built: Interbotix spins the node itself
                return super().wait_until_future_complete(future, timeout_sec)
            limit = answer_timeout_s if timeout_sec is None or timeout_sec < 0 else timeout_sec
            end = time.monotonic() + limit
            while not future.done():
                if time.monotonic() >= end:
                    raise ArmCommandError(
                        f"Interbotix's driver did not answer within {limit:g} s")
                time.sleep(0.002)
            return None

    return OwnSpinNode


class InterbotixArm(ArmBackend):
    """The real WidowX 250 through the Interbotix ROS 2 Python API (``interbotix_xs_modules``).

    Each action is applied to the commanded tool pose (to the measured one when the arm lags by
    more than ``resync_distance``), solved to joints by damped least squares from the commanded
    joints on the facts-built kinematic model, checked (IK error, largest joint change from the
    command) and sent as one joint-group command with ``moving_time=move_time``, blocking. The
    continuous gripper command is thresholded to ``release()``/``grasp()``, sent on change.
    Needs a running ``xsarm_control`` (xs_sdk) for the arm. The constructor only checks that the
    packages import; :meth:`connect` talks to the driver.

    Args:
        config: driver settings.
        safety: safety limits.
        ros: the ROS session the API's node lives in (see :class:`RosSession`); default: a
            :class:`vgps_ros.context.OwnContext` made at connect.

    Raises:
        ArmUnavailableError: ``interbotix_xs_modules`` is not importable (names the install).
    """

    def __init__(self, config: InterbotixConfig | None = None, safety: SafetyConfig | None = None,
                 ros: RosSession | None = None):
        super().__init__(safety)
        self.config = config or InterbotixConfig()
        self._bot_cls, self._node_base = _import_interbotix()
        self._ros = ros
        self._kin = kinematics.ArmKinematics(kinematic_model(), damping=self.config.ik_damping)
        self._bot: Any = None
        self._set_command(np.zeros(6))
        self._gripper_open: bool | None = None

    @property
    def bot(self) -> Any:
        """The ``InterbotixManipulatorXS`` (None before :meth:`connect`)."""
        return self._bot

    @property
    def command(self) -> tuple[np.ndarray, np.ndarray]:
        """The commanded pose the next action starts from: (6,) joints (rad), (3,) tool (m)."""
        return self._q_cmd.copy(), self._cmd_pos.copy()

    def _require_bot(self) -> Any:
        if self._bot is None:
            raise RuntimeError("InterbotixArm: call connect() first")
        return self._bot

    def joints(self) -> np.ndarray:
        bot = self._require_bot()
        core = bot.core
        with core.js_mutex:
            positions = list(core.joint_states.position)
        return np.array([positions[core.js_index_map[n]] for n in robot.ARM_JOINTS], np.float32)

    def gripper(self) -> float:
        core = self._require_bot().core
        with core.js_mutex:
            finger = core.joint_states.position[core.js_index_map[robot.FINGER_JOINTS[0]]]
        return robot.gripper_opening(float(finger))

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        pos, rot = self._kin.forward(self.joints().astype(np.float64))
        return pos, kinematics.state_euler(rot)

    # -- connection -------------------------------------------------------------------------------
    def _connect(self) -> None:
        cfg = self.config
        if self._ros is None:
            from vgps_ros.context import OwnContext

            self._ros = OwnContext()
        node = self._ros.open(_own_spin_node(self._node_base, cfg.connect_timeout_s), NODE_NAME)
        try:
            deadline = time.monotonic() + cfg.connect_timeout_s
            self._wait_for_driver(node, deadline)
            bot = self._build(node, deadline)
            self._ros.spin()
        except BaseException:
            self._ros.close()
            raise
        self._bot, self._gripper_open = bot, None
        self._set_command(self.joints().astype(np.float64))

    def _wait_for_driver(self, node: Any, deadline: float) -> None:
        """Waits for the driver's services (the API's constructor would wait forever)."""
        cfg = self.config
        wanted = {f"{cfg.namespace}/{name}" for name in DRIVER_SERVICES}
        while True:
            missing = wanted - {name for name, _ in node.get_service_names_and_types()}
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise ArmUnavailableError(
                    f"no Interbotix driver for {cfg.robot_model} under namespace "
                    f"'{cfg.namespace}': {len(missing)} of its services (e.g. "
                    f"{sorted(missing)[0]}) did not appear within connect_timeout_s="
                    f"{cfg.connect_timeout_s:g} s; "
                    + DRIVER_HINT.format(model=cfg.robot_model))
            time.sleep(_POLL_S)

    def _build(self, node: Any, deadline: float) -> Any:
        """Builds ``InterbotixManipulatorXS`` on our node, giving up at ``deadline``."""
        cfg, out = self.config, {}

        def build() -> None:
            try:
                out["bot"] = self._bot_cls(
                    robot_model=cfg.robot_model, group_name=cfg.group_name,
                    gripper_name=cfg.gripper_name, robot_name=cfg.robot_name,
                    moving_time=cfg.reset_move_time, accel_time=cfg.accel_time,
                    gripper_pressure=cfg.gripper_pressure, node=node)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                out["error"] = exc

        thread = threading.Thread(target=build, name="interbotix-connect", daemon=True)
        thread.start()
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            raise ArmUnavailableError(
                f"Interbotix's driver services are up under '{cfg.namespace}' but the robot "
                f"did not initialise within connect_timeout_s={cfg.connect_timeout_s:g} s "
                "(no joint_states from the driver?)")
        if "error" in out:
            exc = out["error"]
            raise ArmUnavailableError(
                f"Interbotix's API failed to start: {type(exc).__name__}: {exc}") from exc
        return out["bot"]

    def _disconnect(self) -> None:
        self._bot = None
        if self._ros is not None:
            self._ros.close()

    # -- motion -----------------------------------------------------------------------------------
    def _set_command(self, q: np.ndarray) -> None:
        self._q_cmd = np.asarray(q, np.float64).copy()
        self._cmd_pos, self._cmd_rot = self._kin.forward(self._q_cmd)

    def _last_sent(self) -> np.ndarray:
        """The joints Interbotix checks a command's speed against (its last command)."""
        sent = getattr(self._bot.arm, "joint_commands", None)
        return np.asarray(sent if sent is not None else self._q_cmd, np.float64)

    def _reset(self, joints: np.ndarray) -> None:
        cfg, arm = self.config, self._bot.arm
        self._set_gripper(True)
        joints = np.asarray(joints, np.float64)
        travel = max(np.abs(joints - self._last_sent()).max(),
                     np.abs(joints - self.joints()).max())
        moving_time = max(cfg.reset_move_time,
                          float(travel) / (RESET_SPEED * robot.JOINT_VELOCITY_LIMIT))
        # Interbotix checks the speed with its stored move time (0.2 s after steps): set ours.
        arm.set_trajectory_time(moving_time=moving_time, accel_time=cfg.accel_time)
        sent = arm.set_joint_positions([float(v) for v in joints], moving_time=moving_time,
                                       accel_time=cfg.accel_time, blocking=True)
        if sent is False:
            raise ArmCommandError(f"the Interbotix driver refused the reset joints "
                                  f"{np.round(joints, 4).tolist()} over {moving_time:.2f} s")
        self._set_command(joints)  # the target: the measured pose lags it by a tick
        self._settle(joints)

    def _settle(self, joints: np.ndarray) -> None:
        """Waits until the measured joints are on ``joints`` (a reset's last tick)."""
        end = time.monotonic() + SETTLE_TIMEOUT_S
        while (error := float(np.abs(self.joints() - joints).max())) > SETTLE_TOLERANCE:
            if time.monotonic() >= end:
                self._faults.append(f"reset_not_settled: a joint is {error:.4f} rad from the "
                                    f"reset pose {SETTLE_TIMEOUT_S:g} s after the move")
                return
            time.sleep(0.005)

    def _reference_position(self) -> np.ndarray:
        pos, _ = self._kin.forward(self.joints().astype(np.float64))
        if np.linalg.norm(pos - self._cmd_pos) > self.config.resync_distance:
            self._set_command(self.joints())
        return self._cmd_pos.copy()

    def _reference_yaw(self) -> float:  # after _reference_position (which may resync)
        return float(kinematics.state_euler(self._cmd_rot)[2])

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
        jump = np.maximum(np.abs(result.q - self._q_cmd), np.abs(result.q - self._last_sent()))
        if jump.max() > cfg.max_joint_step:
            joint = robot.ARM_JOINTS[int(jump.argmax())]
            raise ArmCommandError(
                f"IK moves {joint} by {jump.max():.3f} rad > max_joint_step "
                f"{cfg.max_joint_step:g}; nothing sent"
            )
        self._set_gripper(bool(act[6] >= cfg.gripper_threshold))
        sent = self._bot.arm.set_joint_positions(
            [float(v) for v in result.q], moving_time=cfg.move_time, accel_time=cfg.accel_time,
            blocking=True)
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
