"""A Bridge-like toy-kitchen tabletop around the WidowX: table, props, lights and camera.

All props live in every scene as free bodies; a task moves its own object and target into the
reachable region at reset and parks the rest as distractors (see :mod:`vgps_widowx.sim.tasks`).
Positions are in the arm's base frame (metres), with the table top at z = 0.

Rendering is meant to run headless: set ``MUJOCO_GL=egl`` (or ``osmesa``) in the environment before
``mujoco`` is first imported. Shadows and multisampling are off, which keeps software rendering at
a few milliseconds per 256 x 256 frame.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vgps_widowx.robot import description as robot

CAMERA = "over_shoulder"
TABLE_GEOM = "table"
SCENE_CONTYPE = 1


@dataclasses.dataclass(frozen=True)
class PropSpec:
    """Geometry a planner or a success check needs to know about one prop.

    Attributes:
        name: body name in the MJCF; its free joint is ``{name}_joint``.
        footprint: radius (m) of a circle that covers the prop seen from above.
        rest_z: height (m) of the body origin above the table when the prop rests upright.
        grasp_z: tool-frame height (m) above the table for a top-down grasp; 0 for targets.
        grasp_x: offset (m) of the grasp point along the prop's local x axis.
        top_z: height (m) of the prop's top above the table when resting (what a held object
            is lowered onto when this prop is the target).
        inner_half: half extents (m) of the region (in the prop's frame) over which an object
            counts as placed on or in it; ``(r, r)`` with ``round=True`` means a disc of radius r.
        round: whether ``inner_half`` describes a disc.
    """

    name: str
    footprint: float
    rest_z: float
    grasp_z: float = 0.0
    grasp_x: float = 0.0
    top_z: float = 0.0
    inner_half: tuple[float, float] = (0.0, 0.0)
    round: bool = False


PROPS: dict[str, PropSpec] = {
    "carrot": PropSpec("carrot", footprint=0.055, rest_z=0.012, grasp_z=0.014, top_z=0.024),
    "eggplant": PropSpec("eggplant", footprint=0.055, rest_z=0.019, grasp_z=0.020, top_z=0.038),
    "spoon": PropSpec(
        "spoon", footprint=0.075, rest_z=0.0, grasp_z=0.011, grasp_x=-0.008, top_z=0.012
    ),
    "green_block": PropSpec(
        "green_block",
        footprint=0.03,
        rest_z=0.015,
        grasp_z=0.019,
        top_z=0.03,
        inner_half=(0.015, 0.015),
    ),
    "yellow_block": PropSpec(
        "yellow_block",
        footprint=0.03,
        rest_z=0.015,
        grasp_z=0.019,
        top_z=0.03,
        inner_half=(0.015, 0.015),
    ),
    "plate": PropSpec(
        "plate", footprint=0.07, rest_z=0.006, top_z=0.012, inner_half=(0.058, 0.058), round=True
    ),
    "towel": PropSpec(
        "towel", footprint=0.08, rest_z=0.0025, top_z=0.005, inner_half=(0.06, 0.05)
    ),
    "basket": PropSpec(
        "basket", footprint=0.095, rest_z=0.0, top_z=0.008, inner_half=(0.057, 0.057)
    ),
}
BASKET_WALL_TOP = 0.053  # height (m) of the basket's rim above the table


def _obj_geom(
    kind: str, attrs: str, rgba: str, mass: float, extra: str = "", condim: int = 4
) -> str:
    return (
        f'<geom type="{kind}" {attrs} rgba="{rgba}" mass="{mass}" contype="{SCENE_CONTYPE}" '
        f'conaffinity="3" condim="{condim}" friction="1 0.01 0.0005" {extra}/>'
    )


def _visual(kind: str, attrs: str, rgba: str) -> str:
    return f'<geom type="{kind}" {attrs} rgba="{rgba}" contype="0" conaffinity="0" mass="0"/>'


def _props_xml() -> str:
    """MJCF bodies of all props, spawned out of the way; tasks place them at reset."""
    carrot = f"""
    <body name="carrot" pos="0.6 -0.5 0.03">
      <freejoint name="carrot_joint"/>
      {
        _obj_geom(
            "capsule", 'size="0.012 0.033" euler="0 1.5708 0"', "0.95 0.45 0.07 1", 0.02, condim=6
        )
    }
      {
        _obj_geom(
            "capsule",
            'pos="-0.038 0 0" size="0.007 0.008" euler="0 1.5708 0"',
            "0.95 0.5 0.1 1",
            0.002,
        )
    }
      {
        _visual(
            "box",
            'pos="0.052 0 0.002" size="0.012 0.006 0.004" euler="0 -0.17 0"',
            "0.2 0.6 0.15 1",
        )
    }
      {
        _visual(
            "box",
            'pos="0.05 0 0.004" size="0.01 0.003 0.007" euler="0 0.52 0.35"',
            "0.25 0.65 0.15 1",
        )
    }
    </body>"""
    eggplant = f"""
    <body name="eggplant" pos="0.6 -0.4 0.03">
      <freejoint name="eggplant_joint"/>
      {_obj_geom("ellipsoid", 'size="0.045 0.019 0.019"', "0.33 0.1 0.42 1", 0.05, condim=6)}
      {
        _visual(
            "capsule",
            'pos="0.048 0 0.002" size="0.007 0.006" euler="0 1.5708 0"',
            "0.2 0.5 0.15 1",
        )
    }
    </body>"""
    spoon = f"""
    <body name="spoon" pos="0.6 -0.3 0.01">
      <freejoint name="spoon_joint"/>
      {_obj_geom("box", 'pos="-0.03 0 0.005" size="0.045 0.006 0.005"', "0.78 0.78 0.82 1", 0.012)}
      {
        _obj_geom(
            "ellipsoid", 'pos="0.038 0 0.006" size="0.024 0.016 0.006"', "0.82 0.82 0.86 1", 0.01
        )
    }
    </body>"""
    blocks = "".join(
        f"""
    <body name="{name}" pos="0.6 {y} 0.02">
      <freejoint name="{name}_joint"/>
      {_obj_geom("box", 'size="0.015 0.015 0.015"', rgba, 0.03)}
    </body>"""
        for name, y, rgba in (
            ("green_block", -0.2, "0.15 0.7 0.2 1"),
            ("yellow_block", -0.1, "0.95 0.85 0.1 1"),
        )
    )
    plate = f"""
    <body name="plate" pos="0.6 0.0 0.01">
      <freejoint name="plate_joint"/>
      {_obj_geom("cylinder", 'size="0.06 0.006"', "0.96 0.96 0.93 1", 0.15)}
      {_visual("cylinder", 'pos="0 0 0.0005" size="0.045 0.006"', "0.9 0.9 0.86 1")}
    </body>"""
    towel = f"""
    <body name="towel" pos="0.6 0.15 0.005">
      <freejoint name="towel_joint"/>
      {_obj_geom("box", 'size="0.06 0.05 0.0025"', "1 1 1 1", 0.03, 'material="towel"')}
    </body>"""
    walls = [
        ('pos="0 0 0.004" size="0.065 0.065 0.004"', 0.1),
        ('pos="0.061 0 0.0285" size="0.004 0.065 0.0245"', 0.04),
        ('pos="-0.061 0 0.0285" size="0.004 0.065 0.0245"', 0.04),
        ('pos="0 0.061 0.0285" size="0.057 0.004 0.0245"', 0.04),
        ('pos="0 -0.061 0.0285" size="0.057 0.004 0.0245"', 0.04),
    ]
    basket = "".join(_obj_geom("box", a, "0.96 0.8 0.12 1", m) for a, m in walls)
    basket = f"""
    <body name="basket" pos="0.6 0.3 0.01">
      <freejoint name="basket_joint"/>
      {basket}
    </body>"""
    return carrot + eggplant + spoon + blocks + plate + towel + basket


def _look_at(pos: np.ndarray, target: np.ndarray) -> str:
    """MJCF ``xyaxes`` for a camera at ``pos`` looking at ``target`` with world z up."""
    forward = target - pos
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return " ".join(f"{v:.5f}" for v in (*right, *up))


def build_scene_xml(
    image_size: tuple[int, int] = (256, 256),
    camera_pos: tuple[float, float, float] = (-0.15, 0.32, 0.62),
    camera_target: tuple[float, float, float] = (0.30, -0.01, 0.0),
    camera_fovy: float = 48.0,
) -> str:
    """Builds the complete MJCF (arm, table, props, lights, camera) as a string.

    Args:
        image_size: (height, width) of the largest offscreen image that will be rendered.
        camera_pos: position (m) of the fixed over-the-shoulder camera in the base frame.
        camera_target: point (m) the camera looks at.
        camera_fovy: vertical field of view (degrees).

    Returns:
        MJCF text that ``mujoco.MjModel.from_xml_string`` accepts.
    """
    height, width = (int(v) for v in image_size)
    xyaxes = _look_at(np.asarray(camera_pos, float), np.asarray(camera_target, float))
    cam = " ".join(f"{v:.4f}" for v in camera_pos)
    return f"""<mujoco model="wx250s_toy_kitchen">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.002" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <global offwidth="{max(width, 64)}" offheight="{max(height, 64)}"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0.05 0.05 0.05"/>
  </visual>
  <asset>
    <texture name="towel_tex" type="2d" builtin="checker" width="64" height="64"
             rgb1="0.25 0.45 0.85" rgb2="0.92 0.92 0.95"/>
    <material name="towel" texture="towel_tex" texrepeat="4 4"/>
    <texture name="wood_tex" type="2d" builtin="flat" width="32" height="32"
             rgb1="0.74 0.6 0.44" mark="random" random="0.08" markrgb="0.66 0.52 0.38"/>
    <material name="wood" texture="wood_tex" texrepeat="8 8" specular="0.1"/>
  </asset>
  <default>
{robot.robot_assets_xml()}
  </default>
  <worldbody>
    <light name="top" pos="0.3 0 1.2" dir="0 0 -1" directional="true" castshadow="false"
           diffuse="0.55 0.55 0.55"/>
    <light name="side" pos="-0.4 0.6 0.9" dir="0.5 -0.6 -0.8" directional="true"
           castshadow="false" diffuse="0.2 0.2 0.2"/>
    <geom name="{TABLE_GEOM}" type="box" pos="0.22 0.02 -0.02" size="0.48 0.5 0.02"
          material="wood" contype="{SCENE_CONTYPE}" conaffinity="3" condim="3"
          friction="1 0.01 0.0005"/>
    <geom name="backsplash" type="box" pos="0.72 0.02 0.2" size="0.02 0.5 0.22"
          rgba="0.86 0.86 0.82 1" contype="0" conaffinity="0"/>
    <geom name="side_wall" type="box" pos="0.22 0.54 0.15" size="0.5 0.02 0.17"
          rgba="0.8 0.82 0.85 1" contype="0" conaffinity="0"/>
    <geom name="stove" type="box" pos="0.55 0.4 0.001" size="0.1 0.08 0.001"
          rgba="0.25 0.25 0.27 1" contype="0" conaffinity="0"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" rgba="0.4 0.42 0.45 1"
          contype="{SCENE_CONTYPE}" conaffinity="1"/>
    <camera name="{CAMERA}" pos="{cam}" xyaxes="{xyaxes}" fovy="{camera_fovy}"/>
{robot.robot_body_xml()}
{_props_xml()}
  </worldbody>
{robot.robot_actuators_xml()}
</mujoco>
"""
