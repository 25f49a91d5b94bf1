"""Forward kinematics and damped-least-squares IK of the arm, on the MuJoCo model of its MJCF.

The rotation conventions (Bridge euler angles, ``so3_log``/``so3_exp``) live in
:mod:`vgps_widowx.robot.rotations` and are re-exported here. :func:`kinematic_model` builds the
bare arm from :mod:`vgps_widowx.robot.description`, so the real arm's IK and the simulator's
controller solve on the same geometry.

Usage::

    kin = ArmKinematics(kinematic_model())          # or the simulator's scene model
    pos, rot = kin.forward(q)                       # q: (6,) arm joints, rad
    result = kin.solve(target_pos, target_rot, q)   # damped least squares from q
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from vgps_widowx.robot import description as robot
from vgps_widowx.robot.rotations import (
    DEFAULT_ROTATION,
    euler_to_rotation,
    rotation_angle,
    rotation_to_euler,
    so3_exp,
    so3_log,
    state_euler,
    state_rotation,
)

__all__ = [
    "DEFAULT_ROTATION",
    "IK_DAMPING",
    "ArmKinematics",
    "IKResult",
    "euler_to_rotation",
    "kinematic_model",
    "rotation_angle",
    "rotation_to_euler",
    "so3_exp",
    "so3_log",
    "state_euler",
    "state_rotation",
]

IK_DAMPING = 0.05  # DLS lambda of the arm's IK, sim controller and real driver alike


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
        model: compiled model holding the arm (names from :mod:`~vgps_widowx.robot.description`).
        damping: DLS damping lambda.
        rot_weight: weight of orientation error (rad) relative to position error (m).
    """

    def __init__(
        self, model: mujoco.MjModel, damping: float = IK_DAMPING, rot_weight: float = 0.3
    ):
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


def kinematic_model() -> mujoco.MjModel:
    """MuJoCo model of the bare arm (the sim's MJCF, built from the facts) for FK/IK only."""
    xml = (
        '<mujoco model="wx250s_kinematics">'
        '<compiler angle="radian" autolimits="true"/><default>'
        f"{robot.robot_assets_xml()}</default><worldbody>{robot.robot_body_xml()}"
        "</worldbody></mujoco>"
    )
    return mujoco.MjModel.from_xml_string(xml)
