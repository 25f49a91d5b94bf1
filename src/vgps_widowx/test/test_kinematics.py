"""Forward kinematics against an independent product of exponentials, and IK accuracy."""

import mujoco
import numpy as np
import pytest

from vgps_widowx.robot import description as robot
from vgps_widowx.robot import kinematics
from vgps_widowx.sim import scene

# Space-frame screw axes (omega; v) and home pose of ee_gripper_link, from the facts sheet.
SCREWS = np.array(
    [
        [0, 0, 1, 0, 0, 0],
        [0, 1, 0, -0.11065, 0, 0],
        [0, 1, 0, -0.36065, 0, 0.04975],
        [1, 0, 0, 0, 0.36065, 0],
        [0, 1, 0, -0.36065, 0, 0.29975],
        [1, 0, 0, 0, 0.36065, 0],
    ],
    dtype=float,
)
HOME = np.eye(4)
HOME[:3, 3] = (0.458325, 0.0, 0.36065)


def _skew(w):
    return np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])


def _twist_exp(screw, theta):
    """exp([S] theta) for a unit-rotation screw axis (Modern Robotics, eq. 3.88)."""
    w, v = screw[:3], screw[3:]
    wx = _skew(w)
    rot = np.eye(3) + np.sin(theta) * wx + (1 - np.cos(theta)) * wx @ wx
    g = np.eye(3) * theta + (1 - np.cos(theta)) * wx + (theta - np.sin(theta)) * wx @ wx
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rot, g @ v
    return out


def poe(q):
    t = np.eye(4)
    for screw, theta in zip(SCREWS, q, strict=True):
        t = t @ _twist_exp(screw, theta)
    return t @ HOME


@pytest.fixture(scope="module")
def kin():
    return kinematics.ArmKinematics(mujoco.MjModel.from_xml_string(scene.build_scene_xml()))


def test_home_pose_matches_interbotix(kin):
    pos, rot = kin.forward(robot.HOME_POSE)
    np.testing.assert_allclose(pos, (0.458325, 0.0, 0.36065), atol=1e-3)
    np.testing.assert_allclose(rot, np.eye(3), atol=1e-6)


@pytest.mark.parametrize(
    "name, expected",
    [("sleep", (0.1227, 0.0, 0.0813)), ("neutral", (0.120, -0.019, 0.247))],
)
def test_named_poses_match_facts(kin, name, expected):
    q = {"sleep": robot.SLEEP_POSE, "neutral": robot.NEUTRAL_POSE}[name]
    pos, _ = kin.forward(q)
    np.testing.assert_allclose(pos, poe(q)[:3, 3], atol=1e-3)
    np.testing.assert_allclose(pos, expected, atol=2e-3)  # the facts give these "about"


def test_neutral_pose_points_down(kin):
    _, rot = kin.forward(robot.NEUTRAL_POSE)
    assert rot[2, 0] < -0.98  # tool x axis (approach direction) within ~11 deg of straight down
    assert np.abs(kinematics.state_euler(rot)).max() < 0.2


def test_mujoco_model_matches_product_of_exponentials(kin):
    rng = np.random.default_rng(3)
    poses = [robot.HOME_POSE, robot.SLEEP_POSE, robot.NEUTRAL_POSE]
    poses += [rng.uniform(robot.ARM_LOWER, robot.ARM_UPPER) for _ in range(5)]
    for q in poses:
        pos, rot = kin.forward(q)
        expected = poe(q)
        np.testing.assert_allclose(pos, expected[:3, 3], atol=1e-3, err_msg=f"q={q}")
        np.testing.assert_allclose(rot, expected[:3, :3], atol=1e-4, err_msg=f"q={q}")


def test_euler_conventions_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        euler = rng.uniform([-np.pi, -1.4, -np.pi], [np.pi, 1.4, np.pi])
        rot = kinematics.euler_to_rotation(euler)
        np.testing.assert_allclose(kinematics.rotation_to_euler(rot), euler, atol=1e-9)
        np.testing.assert_allclose(
            kinematics.state_euler(kinematics.state_rotation(euler)), euler, atol=1e-9
        )
        vec = rng.normal(size=3)
        vec *= rng.uniform(0, 3.0) / np.linalg.norm(vec)
        np.testing.assert_allclose(kinematics.so3_log(kinematics.so3_exp(vec)), vec, atol=1e-8)
    # Bridge's matrix is Rz(yaw) Ry(pitch) Rx(roll); pointing down is the zero state.
    np.testing.assert_allclose(
        kinematics.euler_to_rotation([0, np.pi / 2, 0]), kinematics.DEFAULT_ROTATION, atol=1e-12
    )


def test_ik_reaches_random_reachable_targets(kin):
    rng = np.random.default_rng(1)
    for _ in range(30):
        pos = rng.uniform([0.18, -0.12, 0.015], [0.40, 0.14, 0.22])
        euler = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), rng.uniform(-1.2, 1.2)])
        result = kin.solve(
            pos, kinematics.state_rotation(euler), robot.NEUTRAL_POSE, max_iters=200
        )
        reached, rot = kin.forward(result.q)
        assert np.linalg.norm(reached - pos) < 5e-3, (pos, euler)
        assert np.linalg.norm(kinematics.so3_log(kinematics.state_rotation(euler) @ rot.T)) < 0.02
        assert np.all(result.q >= robot.ARM_LOWER) and np.all(result.q <= robot.ARM_UPPER)


def test_ik_respects_joint_limits_for_unreachable_targets(kin):
    result = kin.solve(np.array([1.0, 0.0, 0.1]), np.eye(3), robot.NEUTRAL_POSE, max_iters=100)
    assert result.pos_error > 0.3  # out of reach: best effort, never beyond the limits
    assert np.all(result.q >= kin.lower) and np.all(result.q <= kin.upper)


def test_the_bridge_start_pose_puts_the_tool_at_bridges_start_pointing_down():
    kin = kinematics.ArmKinematics(kinematics.kinematic_model())
    pos, rot = kin.forward(robot.BRIDGE_START_POSE)
    np.testing.assert_allclose(pos, robot.BRIDGE_START_POSITION, atol=5e-5)
    np.testing.assert_allclose(kinematics.state_euler(rot), 0.0, atol=1e-5)
    assert robot.NAMED_POSES["bridge_start"] is robot.BRIDGE_START_POSE
    assert np.all(robot.BRIDGE_START_POSE > robot.ARM_LOWER)
    assert np.all(robot.BRIDGE_START_POSE < robot.ARM_UPPER)
