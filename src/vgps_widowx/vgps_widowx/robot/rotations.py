"""Rotation conventions of the arm (pure numpy): Bridge euler angles, rotation vectors.

Orientation follows BridgeData's WidowX controller: the end-effector "euler" of the 7-D state is
``rotation_to_euler(R @ DEFAULT_ROTATION.T)`` where ``R`` is the tool frame's rotation in the base
frame, ``DEFAULT_ROTATION`` is the gripper pointing straight down, and euler angles are
``(roll, pitch, yaw)`` with ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (the ROS / URDF ``rpy``
convention, also used for camera poses). A rotation action ``(droll, dpitch, dyaw)`` is applied
about the tool point in base-frame axes: ``R_next = euler_to_rotation(d) @ R``.

Usage::

    rot = state_rotation(np.array([0.0, 0.0, 0.3]))     # (3, 3): pointing down, yawed 0.3 rad
    state_euler(euler_to_rotation([0.1, 0, 0]) @ rot)   # (3,) Bridge roll/pitch/yaw
    rotation_angle(rot_a, rot_b)                        # rad between two rotations
"""

from __future__ import annotations

import numpy as np

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


def rotation_angle(rot_a: np.ndarray, rot_b: np.ndarray) -> float:
    """Angle (rad) of the rotation taking (3, 3) ``rot_b`` to (3, 3) ``rot_a``."""
    return float(np.linalg.norm(so3_log(rot_a @ rot_b.T)))
