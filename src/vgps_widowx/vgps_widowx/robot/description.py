"""MJCF of the WidowX 250 6DOF (``wx250s``) built from primitive geoms, and its named constants.

Every number comes from the Interbotix description as summarised in the project's facts sheet:
joint offsets, axes and limits, link masses, the finger travel and the tool frame
``ee_gripper_link`` 0.093575 m along the gripper's x axis from the ``wrist_rotate`` frame. The
arm's ``base_link`` is the world origin and sits on the table top (z = 0).

The gripper is two prismatic fingers tied by a joint equality (right = -left) and driven by one
position actuator on the left finger, as on the real arm where one motor moves both fingers. Each
finger carries a box pad whose inner face lies 12 mm inside the finger frame, so the pads are 6 mm
apart when the fingers are closed (0.015 m) and 50 mm apart when open (0.037 m). The tool frame
sits 8 mm above the pad tips when the gripper points down.

The limits every backend shares live here too: Bridge's per-step action bounds and the tool
workspace box (the simulator's controller and the safety filter), the named poses and the
gripper command threshold (the real driver and the overlay).
"""

from __future__ import annotations

import numpy as np

MODEL_NAME = "wx250s"  # Interbotix model name
BASE_BODY = "base_link"  # root of the arm: every pose is in its frame (the sim's world origin)
ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
FINGER_JOINTS = ("left_finger", "right_finger")
EE_SITE = "ee_gripper_link"
GRIPPER_ACTUATOR = "gripper"
PAD_GEOMS = ("left_pad", "right_pad")  # the finger pads' collision geoms

# Joint limits (rad) in ARM_JOINTS order; lower and upper.
ARM_LOWER = np.array([-3.14158, -1.88496, -2.14675, -3.14158, -1.74533, -3.14158])
ARM_UPPER = np.array([3.14158, 1.98968, 1.60570, 3.14158, 2.14675, 3.14158])

JOINT_VELOCITY_LIMIT = np.pi  # rad/s, every arm joint (URDF); Interbotix refuses faster moves

# Finger travel from the gripper centre line (m): closed .. open.
FINGER_CLOSED = 0.015
FINGER_OPEN = 0.037
PAD_INSET = 0.012  # inner pad face lies this far inside the finger frame
PAD_HALF = (0.020, 0.004, 0.012)  # 40 x 8 x 24 mm
PAD_CENTRE_X = 0.0156  # along the finger from its frame: pad tip 8 mm past the tool frame

# Named joint poses (rad), ARM_JOINTS order.
HOME_POSE = np.zeros(6)
SLEEP_POSE = np.array([0.0, -1.80, 1.55, 0.0, 0.8, 0.0])
NEUTRAL_POSE = np.array([-0.13192, -0.76239, 0.44485, -0.01994, 1.75641, -0.15953])
# bridge_data_robot's start: the tool at BRIDGE_START_POSITION (0.3, 0, 0.15), pointing straight
# down (IK on this model; FK within 0.05 mm and 1e-6 rad, checked in test_kinematics.py).
BRIDGE_START_POSE = np.array([0.0, 0.021865, 0.18325, 0.0, 1.365681, 0.0])
NAMED_POSES: dict[str, np.ndarray] = {  # what ArmBackend.reset(pose) accepts
    "neutral": NEUTRAL_POSE,  # BridgeData neutral joints: tool ~(0.120, -0.019, 0.247), down
    "bridge_start": BRIDGE_START_POSE,  # the real-arm default (config/real_widowx.yaml)
    "sleep": SLEEP_POSE,  # Interbotix sleep (folded on its rest)
    "home": HOME_POSE,  # all joints 0: tool at (0.458, 0, 0.361), outside the workspace box
}

# Tool frame offset along gripper_link's x axis from the wrist_rotate joint frame (m).
EE_OFFSET = 0.093575

# Bridge actions [dx, dy, dz, droll, dpitch, dyaw, gripper]: base-frame tool deltas (m, rad)
# and an absolute gripper command in [0, 1] (1 = open), bounded per step as in BridgeData.
ACTION_DIM = 7
MAX_TRANSLATION = 0.05  # |dx|, |dy|, |dz| per step (m)
MAX_ROTATION = 0.25  # |droll|, |dpitch|, |dyaw| per step (rad)
ACTION_LOW = np.array([*(-MAX_TRANSLATION,) * 3, *(-MAX_ROTATION,) * 3, 0.0])
ACTION_HIGH = np.array([*(MAX_TRANSLATION,) * 3, *(MAX_ROTATION,) * 3, 1.0])
GRIPPER_THRESHOLD = 0.5  # a gripper command >= this means open, below it close

# Tool position box (m, base frame): in front of the base column, across the toy-kitchen table,
# from pad tips touching the table top (the tool frame sits 8 mm above them) up to just above
# the BridgeData neutral pose (z 0.247 m).
WORKSPACE_LOW = (0.10, -0.20, 0.008)
WORKSPACE_HIGH = (0.45, 0.25, 0.25)
# Bridge's real-robot deployment (bridge_data_robot): the tool starts at this position, gripper
# down and open, and stays inside this box.
BRIDGE_START_POSITION = (0.3, 0.0, 0.15)
BRIDGE_WORKSPACE_LOW = (0.1, -0.15, -0.1)
BRIDGE_WORKSPACE_HIGH = (0.45, 0.25, 0.18)
RESYNC_DISTANCE = 0.03  # m: a commanded tool pose this far from the measured one restarts there

ROBOT_CONTYPE = 2  # robot geoms collide with the scene (contype 1) but not with each other
_ARM_RGBA = "0.16 0.16 0.17 1"
_ACCENT_RGBA = "0.35 0.35 0.38 1"
_PAD_RGBA = "0.55 0.55 0.55 1"


def gripper_opening(finger_pos: float) -> float:
    """Maps the left finger position (m) to the Bridge gripper state in [0, 1] (1 = open)."""
    frac = (finger_pos - FINGER_CLOSED) / (FINGER_OPEN - FINGER_CLOSED)
    return float(np.clip(frac, 0.0, 1.0))


def finger_target(command: float) -> float:
    """Maps a Bridge gripper command in [0, 1] (1 = open) to a left finger target (m)."""
    return FINGER_CLOSED + float(np.clip(command, 0.0, 1.0)) * (FINGER_OPEN - FINGER_CLOSED)


def _box_inertia(mass: float, size: tuple[float, float, float]) -> str:
    """Diagonal inertia of a solid box of full edge lengths ``size`` as an MJCF attribute."""
    sx, sy, sz = size
    ixx = mass * (sy * sy + sz * sz) / 12.0
    iyy = mass * (sx * sx + sz * sz) / 12.0
    izz = mass * (sx * sx + sy * sy) / 12.0
    return f"{ixx:.3e} {iyy:.3e} {izz:.3e}"


def _inertial(pos: str, mass: float, size: tuple[float, float, float]) -> str:
    """An ``<inertial>`` element for a link approximated as a solid box with edges ``size``."""
    return f'<inertial pos="{pos}" mass="{mass}" diaginertia="{_box_inertia(mass, size)}"/>'


def _geom(kind: str, extra: str, rgba: str = _ARM_RGBA, name: str = "") -> str:
    named = f'name="{name}" ' if name else ""
    return (
        f'<geom {named}type="{kind}" {extra} rgba="{rgba}" contype="{ROBOT_CONTYPE}" '
        f'conaffinity="1" group="2"/>'
    )


def _finger(side: str, sign: float) -> str:
    """A finger body: prismatic along the gripper's y axis, pad facing the centre line."""
    lo, hi = (FINGER_CLOSED, FINGER_OPEN) if sign > 0 else (-FINGER_OPEN, -FINGER_CLOSED)
    pad_y = -sign * (PAD_INSET - PAD_HALF[1])
    plate_y = -sign * (PAD_INSET - 2 * PAD_HALF[1] - 0.003)
    hx, hy, hz = PAD_HALF
    return f"""
          <body name="{side}_finger_link" pos="0.066 0 0" gravcomp="1">
            {_inertial(f"0.012 {pad_y:.4f} 0", 0.016, (0.04, 0.01, 0.024))}
            <joint name="{side}_finger" type="slide" axis="0 1 0" range="{lo} {hi}"
                   damping="0.1" frictionloss="0.1" armature="0.01"/>
            {
        _geom(
            "box",
            f'pos="{PAD_CENTRE_X:.4f} {plate_y:.4f} 0" size="{hx:.4f} 0.003 0.014"',
            _ACCENT_RGBA,
            f"{side}_finger_plate",
        )
    }
            <geom name="{side}_pad" type="box" pos="{PAD_CENTRE_X:.4f} {pad_y:.4f} 0"
                  size="{hx} {hy} {hz}" rgba="{_PAD_RGBA}" contype="{ROBOT_CONTYPE}"
                  conaffinity="1" condim="4" friction="1 0.01 0.0001" group="2"/>
          </body>"""


def robot_assets_xml() -> str:
    """MJCF ``<default>`` fragment for the arm (joint friction, damping, armature)."""
    return """
    <default class="wx_arm">
      <joint damping="0.1" frictionloss="0.1" armature="0.1"/>
    </default>"""


def robot_body_xml() -> str:
    """MJCF ``<worldbody>`` fragment: the arm rooted at the world origin (``base_link``)."""
    return f"""
    <body name="{BASE_BODY}" pos="0 0 0" childclass="wx_arm">
      {_inertial("0 0 0.03", 0.539, (0.12, 0.12, 0.06))}
      {_geom("box", 'pos="0 0 0.005" size="0.07 0.07 0.005"', _ACCENT_RGBA, "base_plate")}
      {_geom("cylinder", 'pos="0 0 0.036" size="0.045 0.031"', _ARM_RGBA, "base_column")}
      <body name="shoulder_link" pos="0 0 0.072" gravcomp="1">
        {_inertial("0 0 0.02", 0.481, (0.08, 0.08, 0.04))}
        <joint name="waist" axis="0 0 1" range="{ARM_LOWER[0]} {ARM_UPPER[0]}"/>
        {_geom("cylinder", 'pos="0 0 0.02" size="0.04 0.02"', _ARM_RGBA, "shoulder")}
        <body name="upper_arm_link" pos="0 0 0.03865" gravcomp="1">
          {_inertial("0.02 0 0.125", 0.431, (0.05, 0.05, 0.26))}
          <joint name="shoulder" axis="0 1 0" range="{ARM_LOWER[1]} {ARM_UPPER[1]}"/>
          {_geom("capsule", 'fromto="0 0 0 0.04975 0 0.25" size="0.024"', _ARM_RGBA, "upper_arm")}
          <body name="upper_forearm_link" pos="0.04975 0 0.25" gravcomp="1">
            {_inertial("0.09 0 0", 0.235, (0.175, 0.04, 0.04))}
            <joint name="elbow" axis="0 1 0" range="{ARM_LOWER[2]} {ARM_UPPER[2]}"/>
            {_geom("capsule", 'fromto="0 0 0 0.175 0 0" size="0.021"', _ARM_RGBA, "upper_forearm")}
            <body name="lower_forearm_link" pos="0.175 0 0" gravcomp="1">
              {_inertial("0.04 0 0", 0.221, (0.075, 0.04, 0.04))}
              <joint name="forearm_roll" axis="1 0 0" range="{ARM_LOWER[3]} {ARM_UPPER[3]}"/>
              {
        _geom("capsule", 'fromto="0.01 0 0 0.07 0 0" size="0.019"', _ACCENT_RGBA, "lower_forearm")
    }
              <body name="wrist_link" pos="0.075 0 0" gravcomp="1">
                {_inertial("0.03 0 0", 0.085, (0.05, 0.04, 0.04))}
                <joint name="wrist_angle" axis="0 1 0" range="{ARM_LOWER[4]} {ARM_UPPER[4]}"/>
                {_geom("box", 'pos="0.03 0 0" size="0.026 0.02 0.018"', _ARM_RGBA, "wrist")}
                <body name="gripper_link" pos="0.065 0 0" gravcomp="1">
                  {_inertial("0.035 0 0", 0.111, (0.06, 0.07, 0.04))}
                  <joint name="wrist_rotate" axis="1 0 0" range="{ARM_LOWER[5]} {ARM_UPPER[5]}"/>
                  {_geom("box", 'pos="0.022 0 0" size="0.022 0.022 0.02"', _ARM_RGBA, "gripper")}
                  {
        _geom("box", 'pos="0.058 0 0" size="0.008 0.042 0.014"', _ACCENT_RGBA, "gripper_bar")
    }
                  <site name="ee_arm_link" pos="0.043 0 0" size="0.004" rgba="0 0 1 0" group="4"/>
                  <site name="{EE_SITE}" pos="{EE_OFFSET} 0 0" size="0.004" rgba="1 0 0 0"
                        group="4"/>
                  {_finger("left", 1.0)}
                  {_finger("right", -1.0)}
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>"""


def robot_actuators_xml() -> str:
    """MJCF ``<actuator>`` and ``<equality>`` fragments: joint position servos and the gripper."""
    servos = "\n".join(
        f'    <position name="{j}" joint="{j}" kp="50" dampratio="1" forcerange="-35 35" '
        f'ctrlrange="{lo} {hi}"/>'
        for j, lo, hi in zip(ARM_JOINTS, ARM_LOWER, ARM_UPPER, strict=True)
    )
    return f"""
  <actuator>
{servos}
    <position name="{GRIPPER_ACTUATOR}" joint="left_finger" kp="200" dampratio="1"
              forcerange="-5 5" ctrlrange="{FINGER_CLOSED} {FINGER_OPEN}"/>
  </actuator>
  <equality>
    <joint name="finger_mirror" joint1="right_finger" joint2="left_finger" polycoef="0 -1 0 0 0"/>
  </equality>
  <contact>
    <exclude body1="left_finger_link" body2="right_finger_link"/>
  </contact>"""
