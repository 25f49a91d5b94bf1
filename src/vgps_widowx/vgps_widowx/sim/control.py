"""Bridge-convention delta end-effector control of the simulated arm, executed as blocking steps.

An action is 7-D ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``: a translation (m) and an euler
rotation (rad, see :mod:`kinematics`) in the arm's base frame, applied about the tool point to the
previously commanded tool pose (as BridgeData's controller does, so servo lag does not eat into
motion), and an absolute gripper command in [0, 1] (1 = open). When the measured pose has fallen
far behind the commanded one (blocked by contact), the command restarts from the measured pose.
Each action runs ``step_duration`` seconds of physics (0.2 s = 5 Hz, as in BridgeData); along the
way the target pose is interpolated and IK re-solved at ``ik_rate_hz``, and joint position servos
track the IK solution. The step returns only when that time has elapsed (blocking control). An
unreachable pose is met as closely as the joint limits allow, position before orientation.

Safety, in this order: malformed actions (wrong shape, NaN/inf) raise ``ValueError`` before
anything moves; deltas are clipped to the Bridge action bounds (0.05 m and 0.25 rad per axis);
the target position is clipped to the workspace box and its orientation to the euler bounds;
IK only returns joints inside their limits.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from vgps_widowx.robot import description as robot
from vgps_widowx.robot import kinematics

ACTION_DIM = robot.ACTION_DIM  # Bridge's action layout and bounds, from the robot model
ACTION_LOW = robot.ACTION_LOW
ACTION_HIGH = robot.ACTION_HIGH
_POSITION_FIRST = 2e-3  # IK position error (m) above which orientation gives way to position
_ROTATION_REACHED = 0.02  # IK orientation error (rad) below which a target counts as reached


def _check_vec(name: str, value: tuple[float, ...], n: int) -> None:
    if len(value) != n or not all(np.isfinite(v) for v in value):
        raise ValueError(f"ControlConfig.{name}={value!r}: need {n} finite numbers")


@dataclasses.dataclass(frozen=True)
class ControlConfig:
    """How one action is executed and bounded."""

    step_duration: float = 0.2  # seconds of physics per action (5 Hz like BridgeData)
    ik_rate_hz: float = 50.0  # IK re-solve rate along the interpolated target
    interp_fraction: float = 0.5  # share of the step spent moving the target; the rest holds it
    max_translation: float = robot.MAX_TRANSLATION  # |dx|, |dy|, |dz| bound per step (m)
    max_rotation: float = robot.MAX_ROTATION  # |droll|, |dpitch|, |dyaw| bound per step (rad)
    workspace_low: tuple[float, float, float] = robot.WORKSPACE_LOW  # tool position box (m)
    workspace_high: tuple[float, float, float] = robot.WORKSPACE_HIGH
    euler_low: tuple[float, float, float] = (-0.6, -0.6, -1.6)  # state roll/pitch/yaw bounds
    euler_high: tuple[float, float, float] = (0.6, 0.6, 1.6)
    resync_distance: float = robot.RESYNC_DISTANCE  # lag (m) that restarts from the measured pose
    resync_angle: float = 0.3  # ... or this far in orientation (rad)
    ik_damping: float = kinematics.IK_DAMPING  # DLS lambda
    ik_iters: int = 20  # IK iterations per re-solve

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in (
            "step_duration",
            "ik_rate_hz",
            "max_translation",
            "max_rotation",
            "ik_damping",
            "resync_distance",
            "resync_angle",
        ):
            value = getattr(self, field)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name}.{field}={value!r}: must be a finite number > 0")
        if not 0.0 < self.interp_fraction <= 1.0:
            raise ValueError(f"{name}.interp_fraction={self.interp_fraction!r}: need (0, 1]")
        if self.ik_iters < 1:
            raise ValueError(f"{name}.ik_iters={self.ik_iters!r}: must be >= 1")
        for field in ("workspace_low", "workspace_high", "euler_low", "euler_high"):
            object.__setattr__(self, field, tuple(float(v) for v in getattr(self, field)))
            _check_vec(field, getattr(self, field), 3)
        if any(lo >= hi for lo, hi in zip(self.workspace_low, self.workspace_high, strict=True)):
            raise ValueError(
                f"{name}.workspace_low={self.workspace_low!r}: must be below "
                f"workspace_high={self.workspace_high!r} on every axis"
            )
        if any(lo >= hi for lo, hi in zip(self.euler_low, self.euler_high, strict=True)):
            raise ValueError(
                f"{name}.euler_low={self.euler_low!r}: must be below "
                f"euler_high={self.euler_high!r} on every axis"
            )
        for field in ("euler_low", "euler_high"):
            if abs(getattr(self, field)[1]) >= np.pi / 2 - 0.05:
                raise ValueError(
                    f"{name}.{field}={getattr(self, field)!r}: the pitch bound "
                    "must stay below pi/2 - 0.05 (euler angles are singular there)"
                )

    @property
    def action_low(self) -> np.ndarray:
        """(7,) lower action bounds."""
        t, r = self.max_translation, self.max_rotation
        return np.array([-t, -t, -t, -r, -r, -r, 0.0])

    @property
    def action_high(self) -> np.ndarray:
        """(7,) upper action bounds."""
        t, r = self.max_translation, self.max_rotation
        return np.array([t, t, t, r, r, r, 1.0])


def validate_action(action: object) -> np.ndarray:
    """Checks an action's shape and values without clipping.

    Args:
        action: array-like of shape (7,).

    Returns:
        (7,) float64 copy.

    Raises:
        ValueError: wrong shape, non-numeric, or any NaN/inf entry.
    """
    try:
        arr = np.array(action, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"action must be numeric with shape ({ACTION_DIM},): {exc}") from exc
    if arr.shape != (ACTION_DIM,):
        raise ValueError(f"action must have shape ({ACTION_DIM},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"action has NaN/inf entries at {np.flatnonzero(~np.isfinite(arr))}")
    return arr


def bound_pose(
    pos: np.ndarray, rot: np.ndarray, config: ControlConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Clips a tool pose into the workspace box and the euler bounds.

    Args:
        pos: (3,) tool position (m).
        rot: (3, 3) tool rotation.
        config: bounds.

    Returns:
        ``(pos, rot)``: (3,) and (3, 3), unchanged where already inside the bounds.
    """
    pos = np.clip(pos, config.workspace_low, config.workspace_high)
    euler = kinematics.state_euler(rot)
    clipped = np.clip(euler, config.euler_low, config.euler_high)
    if not np.allclose(clipped, euler):
        rot = kinematics.state_rotation(clipped)
    return pos, rot


def target_pose(
    ee_pos: np.ndarray, ee_rot: np.ndarray, action: np.ndarray, config: ControlConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Bounded tool target for a (validated) action applied to a tool pose.

    Args:
        ee_pos: (3,) tool position (m) the action starts from.
        ee_rot: (3, 3) tool rotation the action starts from.
        action: (7,) action; deltas are clipped to the config's action bounds here.
        config: control bounds.

    Returns:
        ``(pos, rot)``: (3,) clipped target position and (3, 3) target rotation.
    """
    act = np.clip(action, config.action_low, config.action_high)
    return bound_pose(ee_pos + act[:3], kinematics.euler_to_rotation(act[3:6]) @ ee_rot, config)


class ArmController:
    """Executes Bridge actions on a MuJoCo model/data pair holding the arm.

    Args:
        model: compiled scene model.
        data: its data; physics is advanced in place.
        config: control settings.
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, config: ControlConfig):
        self.model, self.data, self.config = model, data, config
        self.kin = kinematics.ArmKinematics(model, damping=config.ik_damping)
        self._site = model.site(robot.EE_SITE).id
        self._arm_act = np.array([model.actuator(j).id for j in robot.ARM_JOINTS])
        self._grip_act = model.actuator(robot.GRIPPER_ACTUATOR).id
        fingers = [model.joint(j).id for j in robot.FINGER_JOINTS]
        self._finger_qpos = np.array([model.jnt_qposadr[j] for j in fingers])
        n_physics = round(config.step_duration / model.opt.timestep)
        n_ik = max(1, round(config.step_duration * config.ik_rate_hz))
        if n_physics < n_ik:
            raise ValueError(f"step_duration={config.step_duration} is shorter than one IK period")
        self._substeps = np.diff(np.linspace(0, n_physics, n_ik + 1).round().astype(int))

    def arm_joints(self) -> np.ndarray:
        """(6,) measured arm joints (rad)."""
        return self.data.qpos[self.kin.qpos_idx].copy()

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured tool pose: (3,) position (m) and (3, 3) rotation, base frame."""
        return (
            self.data.site_xpos[self._site].copy(),
            self.data.site_xmat[self._site].reshape(3, 3).copy(),
        )

    def command_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Commanded tool pose the next action starts from: (3,) position, (3, 3) rotation."""
        return self._target_pos.copy(), self._target_rot.copy()

    def gripper_state(self) -> float:
        """Measured gripper opening in [0, 1] (1 = open)."""
        return robot.gripper_opening(float(self.data.qpos[self._finger_qpos[0]]))

    def set_pose(self, q: np.ndarray, gripper: float = 1.0) -> None:
        """Teleports the arm to joints ``q`` (6,) with the gripper at ``gripper`` and holds it."""
        q = np.clip(np.asarray(q, float), self.kin.lower, self.kin.upper)
        self.data.qpos[self.kin.qpos_idx] = q
        self.data.qvel[self.kin.dof_idx] = 0.0
        finger = robot.finger_target(gripper)
        self.data.qpos[self._finger_qpos] = (finger, -finger)
        self.data.ctrl[self._arm_act] = q
        self.data.ctrl[self._grip_act] = finger
        mujoco.mj_forward(self.model, self.data)
        self._target_pos, self._target_rot = self.ee_pose()

    def step(self, action: object) -> dict[str, float]:
        """Executes one blocking action.

        Args:
            action: (7,) Bridge action (see module docstring).

        Returns:
            Diagnostics: final IK ``pos_error`` (m) and ``rot_error`` (rad) against the target,
            ``clipped`` (1.0 when the action or its target was clipped) and ``resynced`` (1.0
            when the commanded pose had drifted from the measured one and was reset to it).

        Raises:
            ValueError: malformed action; nothing moves.
        """
        act = validate_action(action)
        cfg = self.config
        start_pos, start_rot = self._target_pos, self._target_rot
        ee_pos, ee_rot = self.ee_pose()
        drift_p = float(np.linalg.norm(ee_pos - start_pos))
        drift_r = kinematics.rotation_angle(ee_rot, start_rot)
        resynced = drift_p > cfg.resync_distance or drift_r > cfg.resync_angle
        if resynced:
            start_pos, start_rot = ee_pos, ee_rot
        goal_pos, goal_rot = target_pose(start_pos, start_rot, act, cfg)
        bounded = np.clip(act, cfg.action_low, cfg.action_high)
        clipped = not np.allclose(bounded, act) or not np.allclose(
            goal_pos, start_pos + bounded[:3]
        )
        self.data.ctrl[self._grip_act] = robot.finger_target(bounded[6])
        rotvec = kinematics.so3_log(goal_rot @ start_rot.T)
        q = self.data.ctrl[self._arm_act].copy()
        n = len(self._substeps)
        result = None
        for k, n_steps in enumerate(self._substeps, start=1):
            s = min(1.0, k / max(1.0, cfg.interp_fraction * n))
            pos = start_pos + s * (goal_pos - start_pos)
            rot = kinematics.so3_exp(s * rotvec) @ start_rot
            result = self.kin.solve(pos, rot, q, max_iters=cfg.ik_iters)
            if result.pos_error > _POSITION_FIRST:  # pose out of reach: keep the position
                result = self.kin.solve(
                    pos, rot, result.q, max_iters=3 * cfg.ik_iters, rot_weight=0.02
                )
            q = result.q
            self.data.ctrl[self._arm_act] = q
            mujoco.mj_step(self.model, self.data, nstep=int(n_steps))
        mujoco.mj_forward(self.model, self.data)  # poses and contacts of the final state
        if result.pos_error > _POSITION_FIRST or result.rot_error > _ROTATION_REACHED:
            # Out of reach: the next action starts from what IK reached (kept inside the
            # bounds), so unreachable targets never pile up.
            self._target_pos, self._target_rot = bound_pose(*self.kin.forward(q), cfg)
        else:
            self._target_pos, self._target_rot = goal_pos, goal_rot
        return {
            "pos_error": float(result.pos_error),
            "rot_error": float(result.rot_error),
            "clipped": float(clipped),
            "resynced": float(resynced),
        }
