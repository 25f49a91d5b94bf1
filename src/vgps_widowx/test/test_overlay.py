"""The candidate overlay: camera model against MuJoCo's own rendering, arrows, colours, the node.

* the sim camera model projects the EE site where MuJoCo renders a marker at it (several sizes
  and arm poses) and onto the gripper in the environment's observation;
* arrows are drawn where :func:`layout_arrows` says, chosen one highlighted and on top, colours
  follow Q (viridis), NaN Q is grey, gripper intent marked, out-of-frame and behind-camera cases
  clipped or skipped, K = 1, consistent upscaling;
* overlay_node over real rclpy (own context, isolated domain): off by default; enabled, a frame +
  joint_states + scored candidates + selection give a ``vgps/overlay`` image of the upscaled size
  that differs from the frame.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
import time

import mujoco
import numpy as np
import pytest
from PIL import Image as PILImage

from vgps_widowx.overlay import (
    HIGHLIGHT,
    NAN_COLOUR,
    OverlayConfig,
    colormap,
    draw_overlay,
    layout_arrows,
    q_colours,
    q_margin,
)
from vgps_widowx.robot import description as robot
from vgps_widowx.robot.camera import CameraModel, camera_model_from_params
from vgps_widowx.robot.kinematics import rotation_to_euler
from vgps_widowx.sim import scene
from vgps_widowx.sim.camera import sim_camera_model

NO_LEGEND = OverlayConfig(min_size=0, legend=False, line_width=3, arrow_gain=1.0)
OTHER_POSE = np.array([0.35, -0.3, 0.2, 0.1, 1.2, 0.4])


# -- camera model against MuJoCo ---------------------------------------------------------------
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


# -- drawing -----------------------------------------------------------------------------------
def looking_down(size: int = 200, height: float = 1.0) -> CameraModel:
    """A camera ``height`` m above the origin looking straight down (u = +x, v = -y)."""
    rot = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    c = (size - 1) / 2
    return CameraModel(width=size, height=size, fx=200.0, fy=200.0, cx=c, cy=c,
                       rotation=rot, position=np.array([0.0, 0.0, height]))


FRAME = np.full((200, 200, 3), 120, np.uint8)
EE = np.zeros(3)


def fan(k: int, length: float = 0.3, gripper: float = 1.0) -> np.ndarray:
    """K actions pointing in K evenly spaced directions in the xy plane."""
    angles = np.linspace(0.0, 2 * np.pi, k, endpoint=False) + 0.3
    acts = np.zeros((k, 7))
    acts[:, 0], acts[:, 1], acts[:, 6] = length * np.cos(angles), length * np.sin(angles), gripper
    return acts


def pixel(image: np.ndarray, uv: np.ndarray) -> tuple[int, ...]:
    u, v = np.rint(uv).astype(int)
    return tuple(int(c) for c in image[v, u])


def along(segment: np.ndarray, t: float) -> np.ndarray:
    return segment[0] + t * (segment[1] - segment[0])


def test_arrows_are_projected_from_the_ee_to_ee_plus_gain_delta():
    acts = fan(4)
    acts[:2, :3] *= 0.3  # two short arrows stay inside, two long ones leave the image
    layout = layout_arrows(FRAME.shape, looking_down(), EE, acts,
                           OverlayConfig(min_size=0, arrow_gain=2.0))
    c = 99.5
    np.testing.assert_allclose(layout.origin, [c, c])
    # 1 m below the camera, 200 px focal: 1 m -> 200 px; y up in the base is v down
    expected = np.stack([c + 200 * 2.0 * acts[:, 0], c - 200 * 2.0 * acts[:, 1]], axis=1)
    np.testing.assert_allclose(layout.tips, expected)
    inside = np.all((expected >= -0.5) & (expected < 199.5), axis=1)
    assert inside.tolist() == [True, True, False, False]
    assert layout.visible.all()  # tips outside: clipped to the border, still drawn
    np.testing.assert_allclose(layout.segments[inside, 1], expected[inside])
    assert np.all((layout.segments >= -0.5) & (layout.segments <= 199.5))


def test_chosen_arrow_is_drawn_where_projected_highlighted_and_on_top():
    acts = fan(6)
    q = np.array([0.1, 0.9, 0.3, 0.5, 0.7, 0.2])
    chosen = 2  # not the best: its colour is not the top of the map
    out = draw_overlay(FRAME, looking_down(), EE, acts, q, chosen, NO_LEGEND)
    layout = layout_arrows(FRAME.shape, looking_down(), EE, acts, NO_LEGEND)
    seg = layout.segments[chosen]
    colour = tuple(int(c) for c in q_colours(q)[chosen])
    direction = (seg[1] - seg[0]) / np.linalg.norm(seg[1] - seg[0])
    normal = np.array([-direction[1], direction[0]])
    for t in (0.3, 0.45, 0.6):
        assert pixel(out, along(seg, t)) == colour
        for side in (1, -1):  # inner width 5 px, outline width 9 px
            assert pixel(out, along(seg, t) + side * 3.6 * normal) == HIGHLIGHT
    # drawn last: on top of the other arrows where they cross at the common origin
    assert pixel(out, along(seg, 0.08)) == colour
    assert HIGHLIGHT not in {pixel(out, along(layout.segments[i], 0.5)) for i in range(6)}


def test_each_candidate_has_its_q_colour_and_colours_follow_q():
    rng = np.random.default_rng(3)
    acts = fan(7)
    q = rng.permutation(np.linspace(-2.0, 5.0, 7))
    out = draw_overlay(FRAME, looking_down(), EE, acts, q, -1, NO_LEGEND)
    layout = layout_arrows(FRAME.shape, looking_down(), EE, acts, NO_LEGEND)
    want = q_colours(q)
    seen = np.array([pixel(out, along(layout.segments[i], 0.5)) for i in range(7)])
    np.testing.assert_array_equal(seen, want)
    assert tuple(want[np.argmin(q)]) == tuple(colormap([0.0])[0])  # lowest: dark purple end
    assert tuple(want[np.argmax(q)]) == tuple(colormap([1.0])[0])  # highest: yellow end
    table = colormap(np.linspace(0.0, 1.0, 256)).astype(int)
    rank = [int(np.argmin(np.abs(table - c).sum(1))) for c in seen.astype(int)]
    assert np.argsort(rank).tolist() == np.argsort(q).tolist()


def test_nan_q_is_grey_and_all_nan_draws_without_failing():
    acts = fan(4)
    q = np.array([0.2, math.nan, 0.8, math.inf])
    out = draw_overlay(FRAME, looking_down(), EE, acts, q, 2, NO_LEGEND)
    layout = layout_arrows(FRAME.shape, looking_down(), EE, acts, NO_LEGEND)
    assert pixel(out, along(layout.segments[1], 0.5)) == NAN_COLOUR
    assert pixel(out, along(layout.segments[3], 0.5)) == NAN_COLOUR
    assert pixel(out, along(layout.segments[0], 0.5)) == tuple(colormap([0.0])[0])
    assert math.isclose(q_margin(q), 0.6)
    out = draw_overlay(FRAME, looking_down(), EE, acts, np.full(4, np.nan), 1,
                       OverlayConfig(min_size=0, arrow_gain=1.0, line_width=3))
    assert pixel(out, along(layout.segments[0], 0.5)) == NAN_COLOUR
    assert math.isnan(q_margin([np.nan, 1.0]))


def test_gripper_intent_filled_for_close_hollow_for_open():
    closing, opening = fan(1, 0.2, gripper=0.0), fan(1, 0.2, gripper=1.0)
    layout = layout_arrows(FRAME.shape, looking_down(), EE, closing, NO_LEGEND)
    seg = layout.segments[0]
    beyond = seg[1] + 1.5 * (seg[1] - seg[0]) / np.linalg.norm(seg[1] - seg[0])
    filled = draw_overlay(FRAME, looking_down(), EE, closing, [1.0], -1, NO_LEGEND)
    hollow = draw_overlay(FRAME, looking_down(), EE, opening, [1.0], -1, NO_LEGEND)
    assert pixel(filled, beyond) == tuple(q_colours([1.0])[0])
    assert pixel(hollow, beyond) == (120, 120, 120)


def test_k_1_and_the_legend():
    acts = fan(1)
    plain = draw_overlay(FRAME, looking_down(), EE, acts, [0.4], 0, NO_LEGEND)
    legend = draw_overlay(FRAME, looking_down(), EE, acts, [0.4], 0,
                          OverlayConfig(min_size=0, line_width=3, arrow_gain=1.0), note="argmax")
    assert (plain != FRAME).any()
    top = (slice(0, 15), slice(0, 60))
    assert (legend[top] != plain[top]).any() and (legend[top] == 0).mean() > 0.3


def test_out_of_frame_and_behind_the_camera_are_skipped():
    acts = fan(3, 0.1)
    far = np.array([3.0, 0.0, 0.0])  # EE outside the view, arrows stay outside
    layout = layout_arrows(FRAME.shape, looking_down(), far, acts, NO_LEGEND)
    assert not layout.visible.any() and np.isnan(layout.segments).all()
    out = draw_overlay(FRAME, looking_down(), far, acts, [1.0, 2.0, 3.0], 0, NO_LEGEND)
    np.testing.assert_array_equal(out, FRAME)
    behind = np.array([0.0, 0.0, 2.0])  # above the downward-looking camera
    layout = layout_arrows(FRAME.shape, looking_down(), behind, acts, NO_LEGEND)
    assert not layout.visible.any() and np.isnan(layout.origin).all()
    np.testing.assert_array_equal(
        draw_overlay(FRAME, looking_down(), behind, acts, [1.0, 2.0, 3.0], 1, NO_LEGEND), FRAME)
    # an arrow that crosses the camera plane is cut at the near plane, then at the border
    up = np.array([[0.0, 0.02, 2.0, 0, 0, 0, 1.0]])
    layout = layout_arrows(FRAME.shape, looking_down(), np.array([0.0, 0.0, 0.5]), up,
                           NO_LEGEND)
    assert layout.visible[0] and np.isfinite(layout.segments).all()
    assert np.isnan(layout.tips[0]).all()


def test_upscaling_scales_the_projection_consistently():
    small = FRAME[:64, :64]
    cam = looking_down(64, height=1.5)
    acts = fan(3, 0.05)
    base = layout_arrows(small.shape, cam, EE, acts, OverlayConfig(min_size=0))
    big = layout_arrows(small.shape, cam, EE, acts, OverlayConfig(min_size=384))
    assert (base.scale, big.scale, big.width, big.height) == (1, 6, 384, 384)
    np.testing.assert_allclose(big.tips, (base.tips + 0.5) * 6 - 0.5, atol=1e-9)
    out = draw_overlay(small, cam, EE, acts, [0.0, 1.0, 2.0], 1,
                       OverlayConfig(min_size=384, legend=False))
    assert out.shape == (384, 384, 3)
    assert pixel(out, along(big.segments[2], 0.5)) == tuple(colormap([1.0])[0])


@pytest.mark.parametrize("kwargs,match", [
    (dict(frame=np.zeros((8, 8, 3), np.float32)), "frame"),
    (dict(q_values=[1.0, 2.0]), "q_values"),
    (dict(chosen=3), "chosen"),
    (dict(actions=np.zeros((0, 7))), "actions"),
    (dict(ee_pos=[0.0, math.nan, 0.0]), "ee_pos"),
])
def test_bad_inputs_raise_named_errors(kwargs, match):
    args = dict(frame=FRAME, camera=looking_down(), ee_pos=EE, actions=fan(3),
                q_values=[1.0, 2.0, 3.0], chosen=0) | kwargs
    with pytest.raises(ValueError, match=match):
        draw_overlay(**args)


# -- overlay_node over real rclpy ----------------------------------------------------------------
needs_ros = pytest.mark.skipif(importlib.util.find_spec("rclpy") is None,
                               reason="ROS 2 (rclpy) is not installed")


def private_domain() -> int:
    """A ROS domain for this process's own context, other than the environment's."""
    taken = int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)
    return next(d for d in (1 + (os.getpid() + i) % 100 for i in range(3)) if d != taken)


class Graph:
    """An rclpy context in a private domain: the overlay node and a test node playing the graph."""

    def __init__(self, **parameters):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import Image, JointState

        from vgps_interfaces.msg import ScoredCandidates, SelectedAction
        from vgps_ros import qos
        from vgps_widowx.overlay_node import OverlayNode

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=private_domain())
        self.overlay = OverlayNode(context=self.context, parameter_overrides=[
            Parameter(k, value=v) for k, v in parameters.items()])
        self.node = rclpy.create_node("overlay_probe", context=self.context)
        pub = self.node.create_publisher
        self.pubs = {
            "image": pub(Image, qos.CAMERA, qos.SENSOR),
            "joints": pub(JointState, qos.JOINT_STATES, qos.COMMAND),
            "scored": pub(ScoredCandidates, qos.SCORED, qos.COMMAND),
            "selected": pub(SelectedAction, qos.SELECTED, qos.COMMAND),
        }
        self.received: list = []
        self.node.create_subscription(Image, qos.OVERLAY, self.received.append,
                                      qos.COMMAND)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.overlay)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while any(p.get_subscription_count() < 1 for p in self.pubs.values()) or \
                self.node.count_publishers("vgps/overlay") < 1:
            assert time.monotonic() < deadline, "the overlay node never connected"
            time.sleep(0.05)

    def publish_step(self, frame: np.ndarray, joints: np.ndarray, actions: np.ndarray,
                     q: np.ndarray, index: int, stamp_ns: int) -> None:
        from vgps_interfaces.msg import SelectedAction
        from vgps_ros.conversions import candidates_to_msg, image_to_msg, scored_to_msg
        from vgps_widowx.ros_conversions import joint_state_msg, stamp_from_ns

        self.pubs["image"].publish(image_to_msg(frame, stamp_ns))
        self.pubs["joints"].publish(joint_state_msg(joints, 1.0, stamp_ns))
        cands = candidates_to_msg(actions[:, None], stamp_ns, step=3,
                                  instruction="put the carrot on the plate", policy_name="test")
        self.pubs["scored"].publish(scored_to_msg(cands, q, "test", 1.0, 1.0, True))
        time.sleep(0.1)
        sel = SelectedAction(step=3, index=index, q_value=float(q[index]), reason="argmax",
                             k=len(q))
        sel.header.stamp = stamp_from_ns(stamp_ns)
        self.pubs["selected"].publish(sel)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=1.0)
        self.overlay.destroy_node()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@needs_ros
def test_overlay_node_publishes_the_drawn_frame_only_when_enabled(env):
    from rclpy.parameter import Parameter

    from vgps_ros.conversions import image_from_msg, stamp_to_ns
    from vgps_widowx.overlay import output_scale

    obs, _ = env.reset(seed=1)
    frame = obs["image"]
    joints = env.privileged_state()["joint_pos"]
    actions = fan(5, 0.015, gripper=0.0)
    q = np.array([0.1, 0.5, 0.2, 0.9, 0.3], np.float32)
    graph = Graph()  # enabled defaults to false
    try:
        graph.wait_connected()
        graph.publish_step(frame, joints, actions, q, 3, 1_000_000_000)
        time.sleep(1.0)
        assert graph.received == [], "published while disabled"
        graph.overlay.set_parameters([Parameter("enabled", value=True)])
        stamp = 2_000_000_000
        deadline = time.monotonic() + 10.0
        while not [m for m in graph.received if stamp_to_ns(m.header.stamp) == stamp]:
            # the sensor-QoS image may be dropped: publish again
            assert time.monotonic() < deadline, "no vgps/overlay image"
            graph.publish_step(frame, joints, actions, q, 3, stamp)
            time.sleep(0.4)
        msg = next(m for m in graph.received if stamp_to_ns(m.header.stamp) == stamp)
    finally:
        graph.close()
    image = image_from_msg(msg)
    scale = output_scale(frame.shape, OverlayConfig().min_size)
    assert image.shape == (frame.shape[0] * scale, frame.shape[1] * scale, 3)
    assert stamp_to_ns(msg.header.stamp) == stamp and msg.encoding == "rgb8"
    plain = np.asarray(PILImage.fromarray(frame).resize(image.shape[1::-1],
                                                        PILImage.Resampling.BILINEAR))
    changed = np.abs(image.astype(int) - plain.astype(int)).sum(-1) > 30
    assert changed.mean() > 0.01
    # the chosen arrow starts at the projected EE: highlight colour drawn around it
    camera = sim_camera_model(env, frame.shape[1], frame.shape[0])
    layout = layout_arrows(frame.shape, camera, env.privileged_state()["ee_pos"], actions)
    seg = layout.segments[3]
    near = image[int(seg[0][1]) - 8:int(seg[0][1]) + 9, int(seg[0][0]) - 8:int(seg[0][0]) + 9]
    assert (near.reshape(-1, 3) == HIGHLIGHT).all(1).any()


@needs_ros
def test_overlay_node_rejects_an_incomplete_real_camera():
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        from rclpy.parameter import Parameter

        from vgps_widowx.overlay_node import OverlayNode

        with pytest.raises(ValueError, match="camera_model=params needs fx"):
            OverlayNode(context=context, parameter_overrides=[
                Parameter("camera_model", value="params"), Parameter("fx", value=500.0)])
        with pytest.raises(ValueError, match="camera_model='tf'"):
            OverlayNode(context=context, parameter_overrides=[
                Parameter("camera_model", value="tf")])
    finally:
        rclpy.try_shutdown(context=context)
