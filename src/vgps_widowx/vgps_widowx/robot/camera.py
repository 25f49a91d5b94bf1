"""A pinhole camera seen from the arm's base frame (pure numpy), for drawing on camera frames.

Intrinsics follow the OpenCV / ``sensor_msgs/CameraInfo`` convention: pixel centres at integer
coordinates, ``u = fx * x / z + cx``, ``v = fy * y / z + cy`` in the optical frame (z forward,
x right, y down), for a frame of ``width x height``. The extrinsics are the optical frame's pose in
the arm's base frame (``p_base = rotation @ p_cam + position``), which is the TF transform
``base_link -> <camera>_optical_frame``.

Sources: the simulated camera (:func:`vgps_widowx.sim.camera.sim_camera_model`, from the MuJoCo
camera's pose and fovy) or, for a real camera, calibration numbers and a measured pose
(:func:`camera_model_from_params`; ``rpy`` as in ROS, ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``,
:func:`vgps_widowx.robot.rotations.euler_to_rotation`).

Usage::

    cam = camera_model_from_params(fx=287.5, fy=287.5, cx=127.5, cy=127.5, width=256,
                                   height=256, xyz=(-0.15, 0.32, 0.62), rpy=(-2.41, 0.0, -2.2))
    uv = cam.project(points)             # (N, 3) base-frame points -> (N, 2) pixels, NaN behind
    small = cam.scaled(128, 128)         # the same camera for a resized frame
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from vgps_widowx.robot.rotations import euler_to_rotation

NEAR = 1e-3  # m: points closer to the camera plane than this are behind the camera


@dataclasses.dataclass(frozen=True)
class CameraModel:
    """A pinhole camera seen from the arm's base frame.

    Attributes:
        width: image width (px) the intrinsics belong to.
        height: image height (px).
        fx: focal length along u (px).
        fy: focal length along v (px).
        cx: principal point u (px; pixel centres at integers, as in CameraInfo ``K``).
        cy: principal point v (px).
        rotation: (3, 3) axes of the optical frame (x right, y down, z forward) in the base
            frame, i.e. ``p_base = rotation @ p_cam + position``.
        position: (3,) optical centre in the base frame (m).
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    rotation: np.ndarray
    position: np.ndarray

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("width", "height"):
            value = getattr(self, field)
            if int(value) != value or not 1 <= value <= 16384:
                raise ValueError(f"{name}.{field}={value!r}: need an integer in 1..16384")
        for field in ("fx", "fy"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}.{field}={value!r}: need a focal length > 0 (px)")
        for field in ("cx", "cy"):
            if not math.isfinite(getattr(self, field)):
                raise ValueError(f"{name}.{field}={getattr(self, field)!r}: must be finite")
        rot = np.asarray(self.rotation, dtype=np.float64)
        pos = np.asarray(self.position, dtype=np.float64).reshape(-1)
        if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-5):
            raise ValueError(f"{name}.rotation: need a (3, 3) rotation matrix, got {rot!r}")
        if pos.shape != (3,) or not np.all(np.isfinite(pos)):
            raise ValueError(f"{name}.position={self.position!r}: need 3 finite numbers (m)")
        object.__setattr__(self, "rotation", rot)
        object.__setattr__(self, "position", pos)

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same camera for the frame resized to ``width x height`` (pixel-centre aligned,
        as PIL's and OpenCV's resize map pixels)."""
        sx, sy = width / self.width, height / self.height
        return dataclasses.replace(
            self, width=int(width), height=int(height), fx=self.fx * sx, fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """Base-frame points (N, 3) -> optical-frame points (N, 3)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return (pts - self.position) @ self.rotation

    def project(self, points: np.ndarray) -> np.ndarray:
        """Base-frame points (N, 3) -> pixel coordinates (N, 2) ``(u, v)``; NaN behind the
        camera. Points in front but outside the image get coordinates outside ``[0, W) x
        [0, H)``."""
        return self.pixels(self.to_camera(points))

    def pixels(self, cam: np.ndarray) -> np.ndarray:
        """Optical-frame points (N, 3) -> pixel coordinates (N, 2); NaN behind the camera."""
        z = cam[:, 2]
        ahead = z > NEAR
        safe = np.where(ahead, z, 1.0)
        uv = np.stack([self.fx * cam[:, 0] / safe + self.cx, self.fy * cam[:, 1] / safe + self.cy],
                      axis=1)
        uv[~ahead] = np.nan
        return uv


def camera_model_from_params(fx: float, fy: float, cx: float, cy: float, width: int,
                             height: int, xyz: Sequence[float], rpy: Sequence[float]
                             ) -> CameraModel:
    """A :class:`CameraModel` from calibration numbers and the optical frame's pose.

    Args:
        fx, fy, cx, cy: intrinsics (px) of a ``width x height`` image (CameraInfo ``K``).
        width, height: the calibrated image size (px).
        xyz: (3,) optical centre in the base frame (m).
        rpy: (3,) roll, pitch, yaw (rad) of the optical frame (z forward, x right, y down) in
            the base frame.

    Raises:
        ValueError: a bad number, named.
    """
    if len(xyz) != 3 or len(rpy) != 3:
        raise ValueError(f"camera xyz={list(xyz)!r} and rpy={list(rpy)!r}: need 3 numbers each")
    return CameraModel(width=int(width), height=int(height), fx=float(fx), fy=float(fy),
                       cx=float(cx), cy=float(cy), rotation=euler_to_rotation(rpy),
                       position=np.asarray(xyz, dtype=np.float64))
