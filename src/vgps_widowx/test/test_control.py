"""Action validation, bounds and tracking of the blocking delta end-effector controller."""

import numpy as np
import pytest

from vgps_widowx.robot import description as robot
from vgps_widowx.robot import kinematics
from vgps_widowx.sim import ControlConfig
from vgps_widowx.sim.control import validate_action


def _snapshot(env):
    data = env._data  # test-only peek at the physics state
    return data.time, data.qpos.copy(), data.ctrl.copy()


@pytest.mark.parametrize(
    "action",
    [
        np.array([np.nan, 0, 0, 0, 0, 0, 1.0]),
        np.array([0, 0, np.inf, 0, 0, 0, 1.0]),
        np.array([0, 0, 0, 0, 0, 0, -np.inf]),
        np.zeros(6),
        np.zeros(8),
        np.zeros((7, 1)),
        np.zeros((2, 7)),
        "forward",
        [0, 0, 0, 0, 0, 0, None],
    ],
    ids=["nan", "inf", "neg-inf-gripper", "short", "long", "column", "batch", "string", "none"],
)
def test_bad_actions_raise_and_do_not_move(env, action):
    env.reset(seed=0)
    t0, q0, c0 = _snapshot(env)
    state0 = env.proprio()
    with pytest.raises(ValueError):
        env.step(action)
    t1, q1, c1 = _snapshot(env)
    assert t1 == t0
    np.testing.assert_array_equal(q1, q0)
    np.testing.assert_array_equal(c1, c0)
    np.testing.assert_array_equal(env.proprio(), state0)
    # The environment still works afterwards.
    _, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
    assert info["step"] == 1


def test_validate_action_returns_float_copy():
    out = validate_action([0, 0, 0.01, 0, 0, 0, 1])
    assert out.dtype == np.float64 and out.shape == (7,)


def test_translation_step_moves_by_the_action(env):
    obs, _ = env.reset(seed=1)
    start = obs["state"].astype(float)
    env.step(np.array([0.03, -0.02, -0.04, 0, 0, 0, 1.0]))
    obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))  # let the servo settle
    moved = obs["state"][:3] - start[:3]
    np.testing.assert_allclose(moved, [0.03, -0.02, -0.04], atol=5e-3)
    np.testing.assert_allclose(obs["state"][3:6], start[3:6], atol=0.03)


def test_rotation_step_turns_about_base_axes(env):
    obs, _ = env.reset(seed=1)
    start = obs["state"].astype(float)
    env.step(np.array([0, 0, 0, 0, 0, 0.2, 1.0]))
    obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
    expected = kinematics.state_euler(
        kinematics.euler_to_rotation([0, 0, 0.2]) @ kinematics.state_rotation(start[3:6])
    )
    np.testing.assert_allclose(obs["state"][3:6], expected, atol=0.02)
    np.testing.assert_allclose(obs["state"][:3], start[:3], atol=5e-3)


def test_oversized_actions_are_clipped_to_bridge_bounds(env):
    obs, _ = env.reset(seed=2)
    start = obs["state"].astype(float)
    _, _, _, _, info = env.step(np.array([0.5, 0, 0, 0, 0, 0, 1.0]))
    assert info["control"]["clipped"] == 1.0
    obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
    assert obs["state"][0] - start[0] == pytest.approx(0.05, abs=5e-3)


def test_gripper_command_opens_and_closes(env):
    env.reset(seed=3)
    obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 0.0]))
    assert obs["state"][6] < 0.05
    obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 0.5]))
    assert obs["state"][6] == pytest.approx(0.5, abs=0.05)
    obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 2.0]))  # clipped to fully open
    assert obs["state"][6] > 0.95


def test_workspace_and_joint_limits_hold_under_extreme_commands(env):
    cfg = env.config.control
    env.reset(seed=4)
    rng = np.random.default_rng(0)
    for corner in ([1, 1, -1], [1, -1, 1], [-1, 1, 1], [-1, -1, -1]):
        for _ in range(12):
            rot = rng.uniform(-0.25, 0.25, 3)
            env.step(np.concatenate([0.05 * np.array(corner), rot, [1.0]]))
            state = env.privileged_state()
            cmd = state["ee_command_pos"]
            # The command is what IK reached for the clipped target (0.5 mm tolerance).
            assert np.all(cmd >= np.array(cfg.workspace_low) - 1e-3)
            assert np.all(cmd <= np.array(cfg.workspace_high) + 1e-3)
            assert np.all(state["ee_pos"] >= np.array(cfg.workspace_low) - 0.02)
            assert np.all(state["ee_pos"] <= np.array(cfg.workspace_high) + 0.02)
            q = state["joint_pos"]
            assert np.all(q >= robot.ARM_LOWER - 0.02) and np.all(q <= robot.ARM_UPPER + 0.02)
            euler = state["ee_command_euler"]
            assert np.all(euler >= np.array(cfg.euler_low) - 0.02)
            assert np.all(euler <= np.array(cfg.euler_high) + 0.02)


@pytest.mark.parametrize(
    "field, value",
    [
        ("step_duration", 0.0),
        ("max_translation", -1.0),
        ("interp_fraction", 1.5),
        ("workspace_low", (0.5, 0.0, 0.0)),
        ("euler_high", (0.5, 1.6, 0.5)),
        ("ik_iters", 0),
    ],
)
def test_control_config_rejects_bad_fields(field, value):
    with pytest.raises(ValueError, match=field):
        ControlConfig(**{field: value})
