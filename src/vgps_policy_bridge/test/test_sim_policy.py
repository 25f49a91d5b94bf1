"""SimPolicy: K independent candidates, shapes and bounds, seeding, state-derived phases."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first mujoco import

import logging

import numpy as np
import pytest

from vgps_policy_bridge.policy import Policy, check_k
from vgps_policy_bridge.sim_policy import (
    SimPolicy,
    SimPolicyConfig,
    infer_phase,
    match_instruction,
)
from vgps_widowx.sim import ACTION_HIGH, ACTION_LOW, TASKS, SimEnvConfig, WidowXSimEnv


@pytest.fixture(scope="module")
def env():
    sim = WidowXSimEnv(SimEnvConfig(image_size=(32, 32)))
    yield sim
    sim.close()


def _observation(env, obs=None):
    obs = obs if obs is not None else {"image": env.render(), "state": env.proprio()}
    return {**obs, "privileged": env.privileged_state()}


def _grasp_state(env, task="carrot_on_plate", seed=0):
    """Steps the noise-free plan until its phase is 'grasp' (the tool over the object)."""
    env.reset(seed=seed, options={"task": task})
    policy = SimPolicy(SimPolicyConfig.noise_free())
    rng = np.random.default_rng(0)
    for _ in range(env.max_steps):
        state = env.privileged_state()
        if infer_phase(task, policy.observe(state), policy.config).name == "grasp":
            return state
        env.step(policy.sample({"privileged": state}, env.instruction, 1, rng)[0, 0])
    raise AssertionError("the plan never reached the grasp phase")


def test_is_a_policy():
    assert isinstance(SimPolicy(), Policy)
    assert SimPolicy().name == "sim"


@pytest.mark.parametrize("horizon", [1, 4])
def test_shapes_dtype_and_bounds(env, horizon):
    env.reset(seed=3, options={"task": "stack_blocks"})
    policy = SimPolicy(SimPolicyConfig(horizon=horizon))
    chunks = policy.sample(_observation(env), env.instruction, 16, np.random.default_rng(0))
    assert chunks.shape == (16, horizon, 7)
    assert chunks.dtype == np.float32
    assert np.all(np.isfinite(chunks))
    assert np.all(chunks >= ACTION_LOW.astype(np.float32))
    assert np.all(chunks <= ACTION_HIGH.astype(np.float32))


def test_candidates_differ(env):
    env.reset(seed=1, options={"task": "carrot_on_plate"})
    chunks = SimPolicy().sample(_observation(env), env.instruction, 8, np.random.default_rng(0))
    assert len({c.tobytes() for c in chunks}) == 8
    assert np.std(chunks[:, 0, :3], axis=0).min() > 1e-3


def test_candidates_disagree_on_closing_at_the_grasp(env):
    """At the grasp point some candidates close and others do not (imprecise grasp points)."""
    state = _grasp_state(env)
    chunks = SimPolicy().sample({"privileged": state}, "put carrot on plate", 64,
                                np.random.default_rng(0))
    closes = np.mean(chunks[:, 0, 6] < 0.5)
    assert 0.05 < closes < 0.95


def test_deterministic_for_a_seed(env):
    env.reset(seed=2, options={"task": "eggplant_in_basket"})
    obs = _observation(env)
    a = SimPolicy().sample(obs, env.instruction, 5, np.random.default_rng(7))
    b = SimPolicy().sample(obs, env.instruction, 5, np.random.default_rng(7))
    c = SimPolicy().sample(obs, env.instruction, 5, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_missing_privileged_state_raises(env):
    env.reset(seed=0)
    obs = {"image": env.render(), "state": env.proprio()}
    with pytest.raises(ValueError, match="privileged"):
        SimPolicy().sample(obs, "put carrot on plate", 4, np.random.default_rng(0))


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k_raises(env, k):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="k="):
        SimPolicy().sample(_observation(env), "put carrot on plate", k, np.random.default_rng(0))
    with pytest.raises(ValueError):
        check_k(k)


@pytest.mark.parametrize(("field", "value"), [("hold_prob", 1.5), ("action_noise", -0.1),
                                              ("horizon", 0), ("grasp_offset_std", np.nan)])
def test_config_names_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        SimPolicyConfig(**{field: value})


def test_phase_follows_the_executed_state(env):
    """The phase comes from the state: what was executed decides it, not earlier samples."""
    task = "carrot_on_plate"
    state = _grasp_state(env, task)
    config = SimPolicyConfig.noise_free()
    assert infer_phase(task, state, config).name == "grasp"
    # Execute an "open" action at the grasp point: the plan stays at the grasp.
    snapshot = env.privileged_state()
    env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
    assert infer_phase(task, env.privileged_state(), config).name == "grasp"
    # Execute a close: the object is held, the plan moves on to lifting.
    env.step(np.array([0, 0, 0, 0, 0, 0, 0.0]))
    held = env.privileged_state()
    assert held["object_grasped"]
    assert infer_phase(task, held, config).name == "lift"
    # Asking again for an older state gives the older phase: no hidden progress.
    assert infer_phase(task, snapshot, config).name == "grasp"
    # Open while lifted: dropped, so the plan goes back to reaching for the object.
    for _ in range(2):
        env.step(np.array([0, 0, 0.05, 0, 0, 0, 0.0]))
    assert infer_phase(task, env.privileged_state(), config).name in ("lift", "carry")
    for _ in range(3):
        env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
    assert infer_phase(task, env.privileged_state(), config).name in ("approach", "descend")


def test_premature_release_opens_while_carrying(env):
    _grasp_state(env)
    env.step(np.array([0, 0, 0, 0, 0, 0, 0.0]))
    env.step(np.array([0, 0, 0.05, 0, 0, 0, 0.0]))
    carrying = {"privileged": env.privileged_state()}
    rng = np.random.default_rng(0)
    never = SimPolicy(SimPolicyConfig.noise_free()).sample(carrying, "", 32, rng)
    always = SimPolicy(SimPolicyConfig.noise_free(premature_release_prob=1.0))
    assert np.all(never[:, 0, 6] == 0.0)
    assert np.all(always.sample(carrying, "", 32, rng)[:, 0, 6] == 1.0)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_noise_free_config_solves_each_task(env, task):
    policy = SimPolicy(SimPolicyConfig.noise_free(horizon=2))
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=11, options={"task": task})
    policy.reset()
    for _ in range(env.max_steps):
        chunks = policy.sample(_observation(env, obs), env.instruction, 2, rng)
        np.testing.assert_array_equal(chunks[0], chunks[1])  # no noise: identical samples
        obs, _, terminated, truncated, info = env.step(chunks[0, 0])
        if terminated or truncated:
            break
    assert info["success"], (task, env.success_report())


def test_instruction_matching():
    assert match_instruction("put carrot on plate") == ("carrot_on_plate", 1.0)
    assert match_instruction("Place the eggplant in the yellow basket!")[0] == (
        "eggplant_in_basket")
    assert match_instruction("fold the laundry")[1] < 0.5


def test_unknown_instruction_warns_once_and_follows_the_task(env, caplog):
    env.reset(seed=0, options={"task": "carrot_on_plate"})
    obs = _observation(env)
    policy = SimPolicy(SimPolicyConfig.noise_free())
    reference = policy.sample(obs, "put carrot on plate", 1, np.random.default_rng(0))
    with caplog.at_level(logging.WARNING, logger="vgps_policy_bridge.sim_policy"):
        first = policy.sample(obs, "fold the laundry", 1, np.random.default_rng(0))
        policy.sample(obs, "fold the laundry", 1, np.random.default_rng(0))
        policy.sample(obs, "stack the green block on the yellow block", 1,
                      np.random.default_rng(0))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("fold the laundry" in m for m in messages) == 1
    assert sum("reads like task 'stack_blocks'" in m for m in messages) == 1
    np.testing.assert_array_equal(first, reference)  # still follows the privileged task
