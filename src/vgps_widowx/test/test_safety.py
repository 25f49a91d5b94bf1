"""The shared safety filter: hand-checked clamps, workspace shrinking and rejections."""

import numpy as np
import pytest

from vgps_widowx.arms.interbotix import InterbotixConfig
from vgps_widowx.robot import description as robot
from vgps_widowx.safety import SafetyConfig, SafetyFilter
from vgps_widowx.sim import ACTION_HIGH, ACTION_LOW, ControlConfig

INSIDE = np.array([0.25, 0.0, 0.12])  # well inside the default workspace box


def _action(**axes):
    names = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
    act = np.zeros(7)
    act[6] = 1.0
    for name, value in axes.items():
        act[names.index(name)] = value
    return act


@pytest.fixture(scope="module")
def safety():
    return SafetyFilter(SafetyConfig())


def test_defaults_match_the_simulator_and_bridge_bounds():
    cfg, sim = SafetyConfig(), ControlConfig()
    assert cfg.workspace_low == sim.workspace_low
    assert cfg.workspace_high == sim.workspace_high
    assert (cfg.max_translation, cfg.max_rotation) == (0.05, 0.25)
    np.testing.assert_array_equal(cfg.action_low, sim.action_low)
    np.testing.assert_array_equal(cfg.action_high, sim.action_high)


def test_sim_and_real_take_their_limits_from_the_one_robot_model():
    sim, real = ControlConfig(), InterbotixConfig()
    assert robot.WORKSPACE_LOW == (0.10, -0.20, 0.008)
    assert robot.WORKSPACE_HIGH == (0.45, 0.25, 0.25)
    np.testing.assert_array_equal(ACTION_LOW, [-0.05, -0.05, -0.05, -0.25, -0.25, -0.25, 0.0])
    np.testing.assert_array_equal(ACTION_HIGH, [0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0])
    np.testing.assert_array_equal(ACTION_LOW, sim.action_low)
    assert sim.resync_distance == real.resync_distance == robot.RESYNC_DISTANCE == 0.03
    assert sim.ik_damping == real.ik_damping == 0.05
    assert (real.robot_model, real.gripper_threshold) == (robot.MODEL_NAME, 0.5)


def test_in_range_action_passes_untouched(safety):
    act = np.array([0.01, -0.02, 0.03, 0.1, -0.2, 0.05, 0.3])
    verdict = safety.check(act, INSIDE)
    assert verdict.ok and not verdict.clamped and verdict.reasons == ()
    assert verdict.action.dtype == np.float32 and verdict.action.shape == (7,)
    np.testing.assert_allclose(verdict.action, act, atol=1e-7)


def test_float32_values_at_the_bound_are_not_clamps(safety):
    act = np.array([0.05, -0.05, 0.05, 0.25, -0.25, 0.25, 1.0], np.float32)
    verdict = safety.check(act, INSIDE)
    assert verdict.ok and not verdict.clamped


@pytest.mark.parametrize(
    ("axis", "value", "clamped", "reason"),
    [
        ("dx", 0.09, 0.05, "translation_clamped: dx 0.0900 > 0.0500"),
        ("dy", -0.07, -0.05, "translation_clamped: dy -0.0700 < -0.0500"),
        ("dz", 0.2, 0.05, "translation_clamped: dz 0.2000 > 0.0500"),
        ("droll", 0.4, 0.25, "rotation_clamped: droll 0.4000 > 0.2500"),
        ("dpitch", -0.3, -0.25, "rotation_clamped: dpitch -0.3000 < -0.2500"),
        ("dyaw", -0.9, -0.25, "rotation_clamped: dyaw -0.9000 < -0.2500"),
        ("gripper", 1.2, 1.0, "gripper_clamped: gripper 1.2000 > 1.0000"),
        ("gripper", -0.3, 0.0, "gripper_clamped: gripper -0.3000 < 0.0000"),
    ],
)
def test_per_axis_clamps(safety, axis, value, clamped, reason):
    verdict = safety.check(_action(**{axis: value}), INSIDE)
    assert verdict.ok and verdict.clamped
    assert verdict.reasons == (reason,)
    expected = _action(**{axis: clamped})
    np.testing.assert_allclose(verdict.action, expected, atol=1e-7)


def test_workspace_shrinks_the_translation(safety):
    ee = np.array([0.25, 0.0, 0.23])  # 2 cm below the 0.25 m ceiling
    verdict = safety.check(_action(dz=0.04, dx=0.01), ee)
    assert verdict.ok and verdict.clamped
    np.testing.assert_allclose(verdict.action[:3], [0.01, 0.0, 0.02], atol=1e-6)
    assert verdict.codes == ("workspace_clamped",)
    assert (
        "z 0.2700 > 0.2500" in verdict.reasons[0] and "dz 0.0400 -> 0.0200" in verdict.reasons[0]
    )


def test_step_clamp_then_workspace_clamp(safety):
    ee = np.array([0.12, -0.19, 0.23])
    verdict = safety.check(_action(dy=-0.09, dz=0.09), ee)
    # dy: -0.09 -> -0.05 (step) -> -0.01 (floor at -0.20); dz: 0.09 -> 0.05 -> 0.02.
    np.testing.assert_allclose(verdict.action[:3], [0.0, -0.01, 0.02], atol=1e-6)
    assert verdict.codes == (
        "translation_clamped",
        "translation_clamped",
        "workspace_clamped",
        "workspace_clamped",
    )
    assert np.all(ee + verdict.action[:3] <= np.array(SafetyConfig().workspace_high) + 1e-6)


def test_outside_the_box_only_moves_back_in(safety):
    home = np.array([0.458325, 0.0, 0.36065])  # all joints 0: above and in front of the box
    up = safety.check(_action(dz=0.03, dx=0.02), home)
    assert up.ok and "outside_workspace" in up.codes
    np.testing.assert_allclose(up.action[:3], [0.0, 0.0, 0.0], atol=1e-6)
    down = safety.check(_action(dz=-0.2, dx=-0.04), home)
    np.testing.assert_allclose(down.action[:3], [-0.04, 0.0, -0.05], atol=1e-6)


@pytest.mark.parametrize(
    ("action", "code"),
    [
        (np.array([np.nan, 0, 0, 0, 0, 0, 1.0]), "non_finite"),
        (np.array([0, 0, np.inf, 0, 0, 0, 1.0]), "non_finite"),
        (np.array([0, 0, 0, 0, 0, 0, -np.inf]), "non_finite"),
        (np.zeros(6), "bad_shape"),
        (np.zeros(8), "bad_shape"),
        (np.zeros((7, 1)), "bad_shape"),
        (np.zeros((2, 7)), "bad_shape"),
        (0.0, "bad_shape"),
        ("forward", "malformed"),
        (None, "malformed"),
        ([0, 0, 0, 0, 0, 0, None], "malformed"),
        ([[0, 0], [0]], "malformed"),
        (np.zeros(7, complex), "malformed"),
        (np.ones(7, bool), "malformed"),
        ([10**400] * 7, "malformed"),
        (np.array([0, 0, 3.0, 0, 0, 0, 1.0]), "out_of_range"),
        (np.array([0, 0, 0, 0, -2.5, 0, 1.0]), "out_of_range"),
        (np.array([0, 0, 0, 0, 0, 0, 1e9]), "out_of_range"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_actions_are_rejected_without_an_action(safety, action, code):
    verdict = safety.check(action, INSIDE)
    assert not verdict.ok and verdict.action is None and not verdict.clamped
    assert verdict.codes[0] == code, verdict.reasons
    assert all(": " in reason for reason in verdict.reasons)


@pytest.mark.parametrize("ee_pos", [np.array([0.2, np.nan, 0.1]), np.zeros(2), "here"])
def test_bad_ee_position_rejects(safety, ee_pos):
    verdict = safety.check(_action(dz=0.01), ee_pos)
    assert not verdict.ok and verdict.codes == ("bad_ee_pos",)


def test_reject_instead_of_clamp():
    strict = SafetyFilter(SafetyConfig(reject_instead_of_clamp=True))
    assert strict.check(_action(dz=0.01), INSIDE).ok
    verdict = strict.check(_action(dz=0.08), INSIDE)
    assert not verdict.ok and verdict.action is None
    assert verdict.codes == ("translation_clamped", "clamp_rejected")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"workspace_low": (0.5, -0.2, 0.0)}, "workspace_low"),
        ({"workspace_high": (0.4, 0.2)}, "workspace_high"),
        ({"max_translation": 0.0}, "max_translation"),
        ({"max_rotation": float("nan")}, "max_rotation"),
        ({"gripper_low": 0.6, "gripper_high": 0.5}, "gripper_low"),
        ({"max_abs_action": 0.5}, "max_abs_action"),
        ({"yaw_low": -4.0}, "yaw_low"),
        ({"yaw_low": 0.5, "yaw_high": 0.5}, "yaw_low"),
        ({"yaw_high": True}, "yaw_high"),
    ],
)
def test_config_names_the_bad_field(kwargs, field):
    with pytest.raises(ValueError, match=f"SafetyConfig.{field}="):
        SafetyConfig(**kwargs)


def test_the_yaw_range_shrinks_dyaw_and_lets_an_outside_tool_turn_back():
    bounded = SafetyFilter(SafetyConfig(yaw_low=-1.57, yaw_high=1.57))
    verdict = bounded.check(_action(dyaw=0.2), INSIDE, 1.5)
    assert verdict.ok and verdict.codes == ("yaw_clamped",)
    assert verdict.action[5] == pytest.approx(0.07, abs=1e-6)
    assert bounded.check(_action(dyaw=-0.2), INSIDE, 1.5).reasons == ()
    outside = bounded.check(_action(dyaw=0.1), INSIDE, 1.7)  # past the bound: no further out
    assert outside.codes == ("outside_yaw_range", "yaw_clamped") and outside.action[5] == 0.0
    back = bounded.check(_action(dyaw=-0.1), INSIDE, 1.7)
    assert back.action[5] == pytest.approx(-0.1) and back.codes == ("outside_yaw_range",)
    missing = bounded.check(_action(dyaw=0.1), INSIDE)  # a bound needs the yaw
    assert not missing.ok and missing.codes == ("bad_ee_yaw",)


def test_the_full_circle_is_no_yaw_bound():
    assert not SafetyConfig().yaw_bounded and SafetyConfig(yaw_high=1.0).yaw_bounded
    verdict = SafetyFilter(SafetyConfig()).check(_action(dyaw=0.2), INSIDE, 3.1)
    assert verdict.ok and verdict.reasons == () and verdict.action[5] == pytest.approx(0.2)


def test_a_bounded_arm_stops_turning_at_the_bound():
    from vgps_widowx.arms import SimArm
    from vgps_widowx.sim import SimEnvConfig

    arm = SimArm(SimEnvConfig(image_size=(32, 32), n_distractors=0), task="carrot_on_plate",
                 safety=SafetyConfig(yaw_low=-0.3, yaw_high=0.3))
    with arm:
        arm.start_episode("carrot_on_plate", 0)
        for _ in range(8):  # 2 rad asked for
            result = arm.apply(_action(dyaw=0.25))
            assert result.ok
        assert "yaw_clamped" in result.verdict.codes
        assert arm.ee_pose()[1][2] == pytest.approx(0.3, abs=0.05)  # the sim tracks within 3 deg
