"""The camera model against MuJoCo's own rendering, and its validation.

* the sim camera model projects the EE site where MuJoCo renders a marker at it (several sizes
  and arm poses) and onto the gripper in the environment's observation;
* a camera made from calibration numbers reproduces the sim camera, also when rescaled;
* bad numbers are refused by name.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from vgps_widowx.robot import description as robot
from vgps_widowx.robot.camera import CameraModel, camera_model_from_params
from vgps_widowx.robot.rotations import rotation_to_euler
from vgps_widowx.sim import scene
from vgps_widowx.sim.camera import sim_camera_model

OTHER_POSE = np.array([0.35, -0.3, 0.2, 0.1, 1.2, 0.4])


def _marker_centroid(model, data, height, width, pos) -> np.ndarray:
    """Centroid (u, v) of an emissive red sphere that MuJoCo renders at ``pos`` (robot hidden)."""
    renderer = mujoco.Renderer(model, height, width)
    try:
        option = mujoco.MjvOption()
        option.geomgroup[2] = 0  # the arm's geoms: they would hide the tool point
        renderer.update_scene(data, scene.CAMERA, option)
        s = renderer.scene
        geom = s.geoms[s.ngeom]
        s.ngeom += 1
        mujoco.mjv_initGeom(geom, mujoco.mjtGeom.mjGEOM_SPHERE, np.array([0.004, 0.0, 0.0]),
                            np.asarray(pos, float), np.eye(3).ravel(),
                            np.array([1.0, 0.0, 0.0, 1.0], np.float32))
        geom.emission = 1.0
        image = renderer.render()
    finally:
        renderer.close()
    mask = (image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60)
    assert mask.any(), "the marker is not in the image"
    vs, us = np.nonzero(mask)
    return np.array([us.mean(), vs.mean()])


@pytest.mark.parametrize("height,width", [(64, 64), (120, 160), (256, 256)])
@pytest.mark.parametrize("pose", ["neutral", "other"])
def test_sim_camera_projects_the_ee_site_where_mujoco_renders_it(height, width, pose):
    model = mujoco.MjModel.from_xml_string(scene.build_scene_xml((height, width)))
    data = mujoco.MjData(model)
    qadr = [model.jnt_qposadr[model.joint(j).id] for j in robot.ARM_JOINTS]
    data.qpos[qadr] = robot.NEUTRAL_POSE if pose == "neutral" else OTHER_POSE
    mujoco.mj_forward(model, data)
    site = data.site_xpos[model.site(robot.EE_SITE).id].copy()
    camera = sim_camera_model(model, width, height)
    uv = camera.project(site[None])[0]
    seen = _marker_centroid(model, data, height, width, site)
    assert np.all((uv >= 0) & (uv < [width, height]))
    np.testing.assert_allclose(uv, seen, atol=1.0)
    # in front of the camera, at a plausible distance (m)
    depth = camera.to_camera(site[None])[0, 2]
    assert 0.2 < depth < 1.5


def _grey_fraction(image: np.ndarray, uv: np.ndarray, half: int = 3) -> float:
    u, v = np.rint(uv).astype(int)
    patch = image[v - half:v + half + 1, u - half:u + half + 1].reshape(-1, 3).astype(int)
    grey = (patch.max(1) - patch.min(1) < 20) & (patch.mean(1) < 130)  # the dark arm, not wood
    return float(grey.mean())


def test_projected_ee_lands_on_the_gripper_in_the_observation(env):
    obs, _ = env.reset(seed=0)
    height, width = env.config.image_size
    camera = sim_camera_model(env, width, height)
    for _ in range(3):
        ee = env.privileged_state()["ee_pos"]
        assert _grey_fraction(obs["image"], camera.project(ee[None])[0]) > 0.4
        obs, *_ = env.step(np.array([0.02, 0.02, -0.02, 0.0, 0.0, 0.0, 0.0]))
    # a control: bare table far from the arm is not arm-coloured
    assert _grey_fraction(obs["image"], camera.project(np.array([[0.3, -0.25, 0.0]]))[0]) < 0.1


def test_camera_from_params_reproduces_the_sim_camera():
    sim = sim_camera_model(None, 160, 120)
    rpy = rotation_to_euler(sim.rotation)  # same convention: Rz(yaw) Ry(pitch) Rx(roll)
    real = camera_model_from_params(sim.fx, sim.fy, sim.cx, sim.cy, 160, 120, sim.position, rpy)
    points = np.array([[0.12, -0.02, 0.25], [0.3, 0.1, 0.0], [0.25, -0.15, 0.05]])
    np.testing.assert_allclose(real.project(points), sim.project(points), atol=1e-6)
    # a camera calibrated at 320 x 240 seen at 160 x 120: the same rays
    big = sim_camera_model(None, 320, 240)
    np.testing.assert_allclose((big.project(points) + 0.5) / 2 - 0.5,
                               big.scaled(160, 120).project(points), atol=1e-9)
    np.testing.assert_allclose(big.scaled(160, 120).project(points), sim.project(points),
                               atol=1e-9)


@pytest.mark.parametrize("bad,match", [
    (dict(fx=0.0), "fx"), (dict(width=0), "width"), (dict(cy=math.nan), "cy"),
])
def test_camera_model_rejects_bad_numbers(bad, match):
    args = dict(width=64, height=64, fx=50.0, fy=50.0, cx=31.5, cy=31.5, rotation=np.eye(3),
                position=np.zeros(3)) | bad
    with pytest.raises(ValueError, match=match):
        CameraModel(**args)
    with pytest.raises(ValueError, match="rotation"):
        CameraModel(**(args | dict(fx=50.0, width=64, cy=31.5, rotation=np.ones((3, 3)))))
