"""overlay_node: draws each step's candidates, Q-values and choice on its camera frame.

A separate plain node, so drawing never delays the selector's control loop. It matches messages
by the source image's stamp: ``camera/image_raw``, ``joint_states`` (published by the arm driver
with the image's stamp), ``vgps/scored`` and ``vgps/selected``; when the decision for a frame
arrives it draws :func:`vgps_widowx.overlay.draw_overlay` (the first action of each candidate
chunk as an arrow from the current end-effector position, which comes from forward kinematics of
the joint states) and publishes ``vgps/overlay`` (sensor_msgs/Image rgb8, the frame's stamp and
frame_id; reliable, so image viewers with either reliability setting receive it).

Off by default: nothing is drawn or published until the parameter ``enabled`` is true (live).

Camera model (parameter ``camera_model``):

* ``sim`` (default) - the MuJoCo scene's over-the-shoulder camera
  (:func:`vgps_widowx.sim.camera.sim_camera_model`) for the size of the incoming frames;
* ``params`` - a calibrated real camera: ``fx``, ``fy``, ``cx``, ``cy`` (px, CameraInfo ``K``)
  for ``camera_width x camera_height`` frames (0: the incoming frames' size; other frame sizes
  are rescaled), and the pose of the camera's optical frame (z forward, x right, y down) in the
  arm's base frame: ``camera_xyz`` (m) and ``camera_rpy`` (rad, ``Rz(yaw) Ry(pitch) Rx(roll)``).
  With a URDF/TF this is the transform ``base_link -> <camera>_optical_frame``.

Usage::

    overlay_node --ros-args -p enabled:=true
    overlay_node --ros-args -p enabled:=true -p camera_model:=params \\
        -p fx:=615.0 -p fy:=615.0 -p cx:=319.5 -p cy:=239.5 \\
        -p camera_xyz:="[-0.15, 0.32, 0.62]" -p camera_rpy:="[-2.41, 0.0, -2.2]"
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState

from vgps_interfaces.msg import ScoredCandidates, SelectedAction
from vgps_ros import qos
from vgps_ros.conversions import candidates_from_msg, image_from_msg, image_to_msg, stamp_to_ns
from vgps_ros.input_guard import MessageError
from vgps_ros.parameters import Param, Update, declare, watch
from vgps_ros.runtime import spin
from vgps_widowx.overlay import OverlayConfig, draw_overlay
from vgps_widowx.robot.camera import CameraModel, camera_model_from_params
from vgps_widowx.ros_conversions import arm_joints_from_msg

CAMERA_MODELS = ("sim", "params")
_D = OverlayConfig()
PARAMETERS = (
    Param("enabled", False, "draw and publish vgps/overlay (live; off by default)"),
    Param("arrow_gain", _D.arrow_gain, "arrows show this many times the commanded EE "
          "displacement (live)", range=(0.1, 100.0)),
    Param("min_size", _D.min_size, "frames with a shorter side below this are upscaled by an "
          "integer factor (live)", range=(0, 4096)),
    Param("line_width", _D.line_width, "arrow width in output pixels (live)", range=(1, 20)),
    Param("camera_model", "sim", "sim: the MuJoCo scene camera; params: fx/fy/cx/cy + "
          "camera_xyz/camera_rpy", choices=CAMERA_MODELS, read_only=True),
    *(Param(key, 0.0, f"camera_model=params: intrinsic {key} (px) for camera_width x "
            "camera_height", read_only=True) for key in ("fx", "fy", "cx", "cy")),
    *(Param(key, 0, "camera_model=params: image size the intrinsics are for (0: the frames' "
            "size)", range=(0, 16384), read_only=True)
      for key in ("camera_width", "camera_height")),
    Param("camera_xyz", (0.0, 0.0, 0.0), "camera_model=params: optical centre in the base "
          "frame (m)", read_only=True),
    Param("camera_rpy", (0.0, 0.0, 0.0), "camera_model=params: roll, pitch, yaw (rad) of the "
          "optical frame (z forward, y down) in the base frame", read_only=True),
)
_KEEP = 8  # stamps remembered per topic for matching
# Reliable publisher: matches reliable subscribers (rqt_image_view) and best-effort ones alike.
OVERLAY_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)


class OverlayNode(Node):
    """The candidate overlay as a ROS node (see the module docstring).

    Args:
        name: node name.
        **kwargs: passed to ``rclpy.node.Node`` (e.g. ``context``, ``parameter_overrides``).
    """

    def __init__(self, name: str = "overlay_node", **kwargs: Any):
        super().__init__(name, **kwargs)
        declare(self, PARAMETERS)
        self._config = self._read_config(lambda key: self.get_parameter(key).value)
        self._enabled = bool(self.get_parameter("enabled").value)
        self._cameras: dict[tuple[int, int], CameraModel] = {}
        self._sim_model = None
        self._check_camera_parameters()
        watch(self, PARAMETERS, apply=self._apply)

        from vgps_widowx.robot.kinematics import (
            ArmKinematics,
            kinematic_model,  # the arm's MJCF, FK only
        )

        self._kin = ArmKinematics(kinematic_model())
        self._images: OrderedDict[int, Image] = OrderedDict()
        self._joints: OrderedDict[int, np.ndarray] = OrderedDict()
        self._scored: OrderedDict[int, ScoredCandidates] = OrderedDict()
        self.published = 0
        self._last_warn = 0.0
        self._pub = self.create_publisher(Image, qos.OVERLAY, OVERLAY_QOS)
        self.create_subscription(Image, qos.CAMERA, self._on_image, qos.SENSOR)
        self.create_subscription(JointState, qos.JOINT_STATES, self._on_joints,
                                 qos.COMMAND)
        self.create_subscription(ScoredCandidates, qos.SCORED, self._on_scored,
                                 qos.COMMAND)
        self.create_subscription(SelectedAction, qos.SELECTED, self._on_selected,
                                 qos.COMMAND)

    # -- parameters -------------------------------------------------------------------------------
    @staticmethod
    def _read_config(value: Callable[[str], Any]) -> OverlayConfig:
        return OverlayConfig(arrow_gain=float(value("arrow_gain")),
                             min_size=int(value("min_size")), line_width=int(value("line_width")))

    def _apply(self, update: Update) -> None:
        self._config = self._read_config(update.value)  # ValueError: refused
        if "enabled" in update:
            self._enabled = bool(update.value("enabled"))
            self.get_logger().info(f"overlay {'enabled' if self._enabled else 'disabled'}")

    def _check_camera_parameters(self) -> None:
        """Fails at start-up (not on the first frame) when the camera parameters are unusable."""
        kind = self.get_parameter("camera_model").value
        if kind not in CAMERA_MODELS:
            raise ValueError(f"{self.get_name()}: camera_model={kind!r}: use one of "
                             f"{', '.join(CAMERA_MODELS)}")
        if self.get_parameter("camera_model").value == "sim":
            self._camera_for(256, 256)  # builds the scene model now, not on the first frame
        else:
            self._camera_for(int(self.get_parameter("camera_width").value) or 640,
                             int(self.get_parameter("camera_height").value) or 480)

    def _camera_for(self, width: int, height: int) -> CameraModel:
        key = (width, height)
        if key in self._cameras:
            return self._cameras[key]
        if self.get_parameter("camera_model").value == "sim":
            from vgps_widowx.sim.camera import sim_camera_model

            if self._sim_model is None:
                import mujoco

                from vgps_widowx.sim import scene

                self._sim_model = mujoco.MjModel.from_xml_string(scene.build_scene_xml())
            camera = sim_camera_model(self._sim_model, width, height)
        else:
            p = {k: self.get_parameter(k).value for k in (
                "fx", "fy", "cx", "cy", "camera_width", "camera_height", "camera_xyz",
                "camera_rpy")}
            try:
                camera = camera_model_from_params(
                    p["fx"], p["fy"], p["cx"], p["cy"], p["camera_width"] or width,
                    p["camera_height"] or height, list(p["camera_xyz"]), list(p["camera_rpy"]))
            except ValueError as exc:
                raise ValueError(f"{self.get_name()}: camera_model=params needs fx, fy, cx, cy "
                                 f"> 0, camera_xyz and camera_rpy ({exc})") from None
            camera = camera.scaled(width, height)
        self._cameras[key] = camera
        return camera

    # -- callbacks --------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        if self._enabled:
            _remember(self._images, stamp_to_ns(msg.header.stamp), msg)

    def _on_joints(self, msg: JointState) -> None:
        if not self._enabled:
            return
        try:
            q = arm_joints_from_msg(msg)
        except MessageError as exc:
            self._warn(f"{exc.detail}: ignored")
            return
        _remember(self._joints, stamp_to_ns(msg.header.stamp), q)

    def _on_scored(self, msg: ScoredCandidates) -> None:
        if self._enabled:
            _remember(self._scored, stamp_to_ns(msg.header.stamp), msg)

    def _on_selected(self, msg: SelectedAction) -> None:
        if not self._enabled:
            return
        stamp = stamp_to_ns(msg.header.stamp)
        image, scored = self._images.get(stamp), self._scored.get(stamp)
        if image is None or scored is None:
            return  # a watchdog hold (no source frame) or a frame this node never saw
        joints = self._joints.get(stamp)
        if joints is None and self._joints:
            joints = next(reversed(self._joints.values()))  # newest: the arm has not moved since
        if joints is None:
            self._warn("no joint_states yet: cannot place the end effector")
            return
        try:
            frame = image_from_msg(image)
            cands = candidates_from_msg(scored.candidates)
            q = np.asarray(scored.q_values, dtype=np.float32).reshape(-1)  # NaN drawn grey
            if q.size != cands.chunks.shape[0]:
                raise MessageError("bad_q", f"{q.size} Q-values for k={cands.chunks.shape[0]}")
        except MessageError as exc:
            self._warn(f"cannot draw step {msg.step}: {exc.kind}: {exc.detail}")
            return
        chosen = int(msg.index) if 0 <= int(msg.index) < len(q) else -1
        ee_pos, _ = self._kin.forward(joints)
        height, width = frame.shape[:2]
        out = draw_overlay(frame, self._camera_for(width, height), ee_pos, cands.chunks[:, 0],
                           q, chosen, self._config, note=f"step {msg.step}  {msg.reason}")
        self._pub.publish(image_to_msg(out, stamp, image.header.frame_id or "camera"))
        self.published += 1

    def _warn(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last_warn > 5.0:
            self._last_warn = now
            self.get_logger().warn(text)


def _remember(table: OrderedDict, key: int, value: Any) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > _KEEP:
        table.popitem(last=False)


def main(args: list[str] | None = None) -> None:
    spin(OverlayNode, args)


if __name__ == "__main__":
    main()
