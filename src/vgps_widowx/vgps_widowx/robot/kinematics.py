"""Rotation conventions, forward kinematics and damped-least-squares IK for the simulated arm.

Orientation follows BridgeData's WidowX controller: the end-effector "euler" of the 7-D state is
``rotation_to_euler(R @ DEFAULT_ROTATION.T)`` where ``R`` is the tool frame's rotation in the base
frame, ``DEFAULT_ROTATION`` is the gripper pointing straight down, and euler angles are
``(roll, pitch, yaw)`` with ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``. A rotation action
``(droll, dpitch, dyaw)`` is applied about the tool point in base-frame axes:
``R_next = euler_to_rotation(d) @ R``.

Usage::

    kin = ArmKinematics(model)
    pos, rot = kin.forward(q)                       # q: (6,) arm joints, rad
    result = kin.solve(target_pos, target_rot, q)   # damped least squares from q
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from vgps_widowx.robot import description as robot

# Tool frame pointing straight down: tool x -> -z (base), tool y -> +y, tool z -> +x.
DEFAULT_ROTATION = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])


def euler_to_rotation(euler: np.ndarray) -> np.ndarray:
    """Rotation ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``.

    Args:
        euler: (3,) roll, pitch, yaw in radians.

    Returns:
        (3, 3) rotation matrix.
    """
    r, p, y = (float(v) for v in euler)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def rotation_to_euler(rot: np.ndarray) -> np.ndarray:
    """Inverse of :func:`euler_to_rotation` (pitch in [-pi/2, pi/2]).

    Args:
        rot: (3, 3) rotation matrix.

    Returns:
        (3,) roll, pitch, yaw in radians.
    """
    sy = np.hypot(rot[0, 0], rot[1, 0])
    if sy > 1e-6:
        return np.array(
            [
                np.arctan2(rot[2, 1], rot[2, 2]),
                np.arctan2(-rot[2, 0], sy),
                np.arctan2(rot[1, 0], rot[0, 0]),
            ]
        )
    return np.array([np.arctan2(-rot[1, 2], rot[1, 1]), np.arctan2(-rot[2, 0], sy), 0.0])


def state_euler(rot: np.ndarray) -> np.ndarray:
    """Bridge state orientation of a tool rotation: euler angles relative to pointing down.

    Args:
        rot: (3, 3) tool rotation in the base frame.

    Returns:
        (3,) roll, pitch, yaw (rad); zeros when the gripper points straight down.
    """
    return rotation_to_euler(rot @ DEFAULT_ROTATION.T)


def state_rotation(euler: np.ndarray) -> np.ndarray:
    """Inverse of :func:`state_euler`: (3,) Bridge euler angles to a (3, 3) tool rotation."""
    return euler_to_rotation(euler) @ DEFAULT_ROTATION


def so3_log(rot: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle) of a (3, 3) rotation matrix; returns (3,)."""
    cos = np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos))
    vee = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    if angle < 1e-7:
        return 0.5 * vee
    if np.pi - angle < 1e-4:
        # Near pi: take the axis from the symmetric part.
        sym = (rot + np.eye(3)) / 2.0
        axis = sym[:, int(np.argmax(np.diag(sym)))]
        axis = axis / np.linalg.norm(axis)
        if np.dot(axis, vee) < 0:
            axis = -axis
        return axis * angle
    return vee * (angle / (2.0 * np.sin(angle)))


def so3_exp(vec: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) of a (3,) rotation vector (Rodrigues' formula)."""
    angle = float(np.linalg.norm(vec))
    if angle < 1e-12:
        return np.eye(3)
    k = np.asarray(vec, float) / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * (kx @ kx)


@dataclasses.dataclass(frozen=True)
class IKResult:
    """Outcome of one IK solve.

    Attributes:
        q: (6,) arm joints (rad), within limits.
        pos_error: remaining position error (m).
        rot_error: remaining orientation error (rad).
        iterations: iterations used.
    """

    q: np.ndarray
    pos_error: float
    rot_error: float
    iterations: int


class ArmKinematics:
    """Forward kinematics and DLS inverse kinematics of the arm on a scratch ``MjData``.

    The simulation's own ``MjData`` is never touched, so solving IK does not disturb physics.

    Args:
        model: compiled model holding the arm (joint names from :mod:`robot`).
        damping: DLS damping lambda.
        rot_weight: weight of orientation error (rad) relative to position error (m).
    """

    def __init__(self, model: mujoco.MjModel, damping: float = 0.05, rot_weight: float = 0.3):
        if damping <= 0:
            raise ValueError(f"damping={damping!r}: must be > 0")
        if rot_weight <= 0:
            raise ValueError(f"rot_weight={rot_weight!r}: must be > 0")
        self._model = model
        self._data = mujoco.MjData(model)
        self._damping = float(damping)
        self._rot_weight = float(rot_weight)
        joint_ids = [model.joint(name).id for name in robot.ARM_JOINTS]
        self.qpos_idx = np.array([model.jnt_qposadr[j] for j in joint_ids])
        self.dof_idx = np.array([model.jnt_dofadr[j] for j in joint_ids])
        self.lower = model.jnt_range[joint_ids, 0].copy()
        self.upper = model.jnt_range[joint_ids, 1].copy()
        self._site = model.site(robot.EE_SITE).id
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def _set(self, q: np.ndarray) -> None:
        self._data.qpos[self.qpos_idx] = q
        mujoco.mj_kinematics(self._model, self._data)

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool-frame pose for arm joints ``q``.

        Args:
            q: (6,) arm joints (rad), ARM_JOINTS order.

        Returns:
            ``(pos, rot)``: (3,) position (m) and (3, 3) rotation in the base frame.
        """
        self._set(np.asarray(q, float))
        return (
            self._data.site_xpos[self._site].copy(),
            self._data.site_xmat[self._site].reshape(3, 3).copy(),
        )

    def solve(
        self,
        target_pos: np.ndarray,
        target_rot: np.ndarray,
        q_init: np.ndarray,
        max_iters: int = 50,
        pos_tol: float = 5e-4,
        rot_tol: float = 5e-3,
        max_step: float = 0.3,
        rot_weight: float | None = None,
    ) -> IKResult:
        """Damped least squares from ``q_init`` towards a tool pose, clipped to joint limits.

        Args:
            target_pos: (3,) tool position (m) in the base frame.
            target_rot: (3, 3) tool rotation in the base frame.
            q_init: (6,) starting joints (rad).
            max_iters: iteration budget.
            pos_tol: position tolerance (m) to stop early.
            rot_tol: orientation tolerance (rad) to stop early.
            max_step: largest joint change (rad) per iteration.
            rot_weight: overrides the orientation weight for this solve (smaller favours
                position when both cannot be met).

        Returns:
            The best :class:`IKResult` found (joints always within limits).
        """
        q = np.clip(np.asarray(q_init, float).copy(), self.lower, self.upper)
        target_pos = np.asarray(target_pos, float)
        lam2 = self._damping**2
        rw = self._rot_weight if rot_weight is None else float(rot_weight)
        w = np.array([1.0, 1.0, 1.0, rw, rw, rw])
        best: IKResult | None = None
        for it in range(max_iters + 1):
            self._set(q)
            pos = self._data.site_xpos[self._site]
            rot = self._data.site_xmat[self._site].reshape(3, 3)
            err_p = target_pos - pos
            err_r = so3_log(target_rot @ rot.T)
            pe, re = float(np.linalg.norm(err_p)), float(np.linalg.norm(err_r))
            if best is None or pe + rw * re < best.pos_error + rw * best.rot_error:
                best = IKResult(q.copy(), pe, re, it)
            if (pe < pos_tol and re < rot_tol) or it == max_iters:
                break
            mujoco.mj_comPos(self._model, self._data)
            mujoco.mj_jacSite(self._model, self._data, self._jacp, self._jacr, self._site)
            jac = np.vstack([self._jacp[:, self.dof_idx], self._jacr[:, self.dof_idx]])
            jac *= w[:, None]
            err = np.concatenate([err_p, err_r]) * w
            dq = jac.T @ np.linalg.solve(jac @ jac.T + lam2 * np.eye(6), err)
            # Joints pinned at a limit and pushed outwards drop out; the others take over.
            pinned = ((q <= self.lower + 1e-9) & (dq < 0)) | ((q >= self.upper - 1e-9) & (dq > 0))
            if pinned.any():
                jac[:, pinned] = 0.0
                dq = jac.T @ np.linalg.solve(jac @ jac.T + lam2 * np.eye(6), err)
            scale = np.max(np.abs(dq)) / max_step
            if scale > 1.0:
                dq /= scale
            q = np.clip(q + dq, self.lower, self.upper)
        return best


def kinematic_model():
    """MuJoCo model of the bare arm (the sim's MJCF, built from the facts) for FK/IK only."""
    xml = (
        '<mujoco model="wx250s_kinematics">'
        '<compiler angle="radian" autolimits="true"/><default>'
        f"{robot.robot_assets_xml()}</default><worldbody>{robot.robot_body_xml()}"
        "</worldbody></mujoco>"
    )
    return mujoco.MjModel.from_xml_string(xml)
