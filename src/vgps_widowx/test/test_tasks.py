"""Each task's success predicate: reachable by the scripted solver, false for near misses."""

import numpy as np
import pytest

from vgps_widowx.sim import TASKS, ScriptConfig, ScriptedPolicy, TaskSpec, scene, tasks


def _rollout(env, policy, state_filter=None):
    """Runs a scripted policy until the episode ends; returns the final info."""
    info = {}
    for _ in range(env.max_steps):
        state = env.privileged_state()
        if state_filter is not None:
            state = state_filter(state)
        _, reward, terminated, truncated, info = env.step(policy.act(state))
        assert reward == (0.0 if info["success"] else -1.0)
        if terminated or truncated:
            break
    return info


@pytest.mark.parametrize("name", sorted(TASKS))
def test_scripted_solution_succeeds(env, name):
    for seed in (0, 1):
        env.reset(seed=seed, options={"task": name})
        policy = ScriptedPolicy(name)
        info = _rollout(env, policy)
        assert info["success"], (name, seed, env.success_report(), policy.phase)
        assert info["step"] < env.max_steps
        assert all(env.success_report().values())


@pytest.mark.parametrize("name", sorted(TASKS))
def test_doing_nothing_fails(env, name):
    env.reset(seed=5, options={"task": name})
    for step in range(env.max_steps):
        _, reward, terminated, truncated, info = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
        assert not terminated and reward == -1.0
        assert truncated == (step == env.max_steps - 1)
    assert not info["success"]
    assert not env.success_report()["on_target"]


def _shift_target(state, task, offset):
    """The privileged state with the target moved by ``offset`` (so the policy misses it)."""
    state = dict(state)
    objects = {k: dict(v) for k, v in state["objects"].items()}
    objects[task.target]["pos"] = objects[task.target]["pos"] + offset
    state["objects"] = objects
    return state


def _miss_offset(env, task, distance):
    """A horizontal offset of ``distance`` from the target that stays on the table."""
    state = env.privileged_state()
    tgt = state["objects"][task.target]["pos"]
    obj = state["objects"][task.object]["pos"]
    for direction in ([1, 0], [-1, 0], [0, 1], [0, -1]):
        xy = tgt[:2] + distance * np.array(direction)
        clear = np.linalg.norm(xy - obj[:2]) > 0.08
        if 0.17 <= xy[0] <= 0.42 and -0.16 <= xy[1] <= 0.2 and clear:
            return np.array([*(distance * np.array(direction)), 0.0])
    raise AssertionError("no free spot beside the target")


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("miss", ["beside", "above_off_target"])
def test_release_beside_target_fails(bare_env, name, miss):
    env, task = bare_env, TASKS[name]
    env.reset(seed=2, options={"task": name})
    obj_len = scene.PROPS[task.object].footprint
    if miss == "beside":  # set it down on the table a few cm from the target's edge
        distance, config = scene.PROPS[task.target].footprint + obj_len + 0.02, ScriptConfig()
    else:  # drop it from above, just off the target's support region
        distance = max(scene.PROPS[task.target].inner_half) + obj_len + 0.02
        config = ScriptConfig(place_clearance=0.06)
    offset = _miss_offset(env, task, distance)
    policy = ScriptedPolicy(task, config)
    info = _rollout(env, policy, lambda s: _shift_target(s, task, offset))
    assert policy.phase in ("retreat", "done"), "the rollout must have released the object"
    report = env.success_report()
    assert not info["success"] and not all(report.values())
    assert report["released"] and not report["on_target"]
    assert not report["off_table"]  # it lies on the table


def test_held_object_is_not_a_success(bare_env):
    """Holding the object over the target, touching it, is not success until released."""
    env = bare_env
    env.reset(seed=0, options={"task": "stack_blocks"})
    policy = ScriptedPolicy("stack_blocks")
    for _ in range(env.max_steps):
        state = env.privileged_state()
        action = policy.act(state)
        if policy.phase == "release":
            break
        _, _, terminated, _, info = env.step(action)
        assert not terminated
    # Push down gently with the gripper still closed.
    _, _, terminated, _, info = env.step(np.array([0, 0, -0.01, 0, 0, 0, 0.0]))
    report = env.success_report()
    assert report["over_target"] and not report["released"]
    assert not info["success"] and not terminated


def test_layouts_are_seeded_and_in_the_reachable_region():
    for name, task in TASKS.items():
        for seed in range(20):
            layout = tasks.sample_layout(task, np.random.default_rng(seed), n_distractors=2)
            again = tasks.sample_layout(task, np.random.default_rng(seed), n_distractors=2)
            assert layout.keys() == again.keys()
            for key, (xy, yaw) in layout.items():
                np.testing.assert_array_equal(xy, again[key][0])
                assert yaw == again[key][1]
            for prop in (task.object, task.target):
                xy = layout[prop][0]
                assert tasks.REACH_LOW[0] <= xy[0] <= tasks.REACH_HIGH[0], (name, seed)
                assert tasks.REACH_LOW[1] <= xy[1] <= tasks.REACH_HIGH[1], (name, seed)
            items = list(layout.items())
            for i, (a, (xa, _)) in enumerate(items):
                for b, (xb, _) in items[i + 1 :]:
                    gap = scene.PROPS[a].footprint + scene.PROPS[b].footprint
                    assert np.linalg.norm(xa - xb) >= gap, (name, seed, a, b)


def test_registry_is_complete():
    assert set(TASKS) == {
        "spoon_on_towel",
        "carrot_on_plate",
        "stack_blocks",
        "eggplant_in_basket",
    }
    for name, task in TASKS.items():
        assert task.name == name
        assert len(set(task.instructions)) >= 4
        assert 40 <= task.max_steps <= 60
    with pytest.raises(ValueError, match="unknown task"):
        tasks.get_task("make_coffee")
    with pytest.raises(ValueError, match="paraphrases"):
        TaskSpec("x", "do x", ("a",), object="carrot", target="plate")
    with pytest.raises(ValueError, match="object"):
        TaskSpec("x", "do x", ("a", "b", "c"), object="banana", target="plate")
