"""The simulated camera as a pinhole :class:`~vgps_widowx.robot.camera.CameraModel`.

MuJoCo cameras look along their frame's -z with +y up and square pixels; the vertical field of
view ``fovy`` spans the image height, and the frustum is centred on the optical axis. So for a
``width x height`` render ``fy = fx = (height / 2) / tan(fovy / 2)`` and the principal point is
the image centre, ``((width - 1) / 2, (height - 1) / 2)`` with pixel centres at integers. The
optical frame (z forward, y down) is the MuJoCo camera frame turned 180 degrees about its x axis.
The arm's ``base_link`` body is the MuJoCo world origin in this scene (see
:mod:`vgps_widowx.robot.description`), but the pose is expressed relative to ``base_link``
explicitly.

Usage::

    env = WidowXSimEnv()
    cam = sim_camera_model(env, width=256, height=256)     # or sim_camera_model(env_model, ...)
    uv = cam.project(env.privileged_state()["ee_pos"][None])
"""

from __future__ import annotations

import math
from typing import Any

import mujoco
import numpy as np

from vgps_widowx.robot.camera import CameraModel
from vgps_widowx.robot.description import BASE_BODY
from vgps_widowx.sim import scene

_MJ_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])  # MuJoCo camera axes (x right, y up, z back)


def sim_camera_model(source: Any = None, width: int = 256, height: int = 256,
                     camera: str = scene.CAMERA) -> CameraModel:
    """The pinhole model of a MuJoCo camera for renders of ``width x height``.

    Args:
        source: a :class:`~vgps_widowx.sim.env.WidowXSimEnv`, an ``mujoco.MjModel`` or None
            (the default scene of :func:`vgps_widowx.sim.scene.build_scene_xml`, which the
            arm driver renders).
        width: render width (px).
        height: render height (px).
        camera: camera name in the model.

    Returns:
        The :class:`~vgps_widowx.robot.camera.CameraModel` (pose relative to ``base_link``).

    Raises:
        ValueError: unknown camera, or a source that is neither an env nor a model.
    """
    if source is None:
        model = mujoco.MjModel.from_xml_string(scene.build_scene_xml())
    elif isinstance(source, mujoco.MjModel):
        model = source
    elif isinstance(getattr(source, "_model", None), mujoco.MjModel):
        model = source._model  # WidowXSimEnv (same package)
    else:
        raise ValueError(f"sim_camera_model: need a WidowXSimEnv or mujoco.MjModel, "
                         f"got {type(source).__name__}")
    try:
        cam_id = model.camera(camera).id
    except KeyError:
        raise ValueError(f"sim_camera_model: no camera {camera!r} in the model") from None
    # Poses from a scratch MjData: kinematics of the model's reference configuration. The camera
    # and base_link hang off the world, so the arm's joints do not move them.
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    mujoco.mj_comPos(model, data)
    mujoco.mj_camlight(model, data)
    base = model.body(BASE_BODY).id
    base_pos, base_rot = data.xpos[base], data.xmat[base].reshape(3, 3)
    cam_pos, cam_rot = data.cam_xpos[cam_id], data.cam_xmat[cam_id].reshape(3, 3)
    fovy = math.radians(float(model.cam_fovy[cam_id]))
    focal = (height / 2.0) / math.tan(fovy / 2.0)
    return CameraModel(
        width=int(width), height=int(height), fx=focal, fy=focal,
        cx=(width - 1) / 2.0, cy=(height - 1) / 2.0,
        rotation=base_rot.T @ cam_rot @ _MJ_TO_OPTICAL,
        position=base_rot.T @ (cam_pos - base_pos))
