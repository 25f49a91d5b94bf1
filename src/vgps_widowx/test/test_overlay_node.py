"""overlay_node over real rclpy (own context, isolated domain).

Off by default; enabled, a frame + joint_states + scored candidates + selection give a
``vgps/overlay`` image of the upscaled size that differs from the frame, with the chosen arrow
highlighted at the projected end effector. A real camera without its numbers is refused.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from PIL import Image as PILImage

from vgps_widowx.overlay import HIGHLIGHT, OverlayConfig, layout_arrows
from vgps_widowx.sim.camera import sim_camera_model

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
pytestmark = pytest.mark.ros


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
        from vgps_ros.conversions import (
            candidates_to_msg,
            image_to_msg,
            scored_to_msg,
            stamp_from_ns,
        )
        from vgps_widowx.ros_conversions import joint_state_msg

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


def test_overlay_node_publishes_the_drawn_frame_only_when_enabled(env):
    from rclpy.parameter import Parameter

    from vgps_ros.conversions import image_from_msg, stamp_to_ns
    from vgps_widowx.overlay import output_scale

    obs, _ = env.reset(seed=1)
    frame = obs["image"]
    joints = env.privileged_state()["joint_pos"]
    angles = np.linspace(0.0, 2 * np.pi, 5, endpoint=False) + 0.3  # a fan of 1.5 cm moves
    actions = np.zeros((5, 7))  # gripper 0: closing
    actions[:, 0], actions[:, 1] = 0.015 * np.cos(angles), 0.015 * np.sin(angles)
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
