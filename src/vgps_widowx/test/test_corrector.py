"""Scripted corrector rules on real MuJoCo states: each failure is caught and averted."""

from __future__ import annotations

import numpy as np
import pytest

from vgps_widowx.sim import ScriptedPolicy, SimEnvConfig, WidowXSimEnv, scripted
from vgps_widowx.sim.corrector import Corrector, CorrectorConfig

TASK = "carrot_on_plate"


@pytest.fixture(scope="module")
def sim():
    env = WidowXSimEnv(SimEnvConfig(image_size=(32, 32), n_distractors=0))
    yield env
    env.close()


def rollout(env, sabotage, seed=0, steps=70, config=None, resume=False):
    """Runs the scripted solver with ``sabotage(policy, state, action) -> action`` applied
    until the corrector takes over; then the corrector's actions while it holds the arm. With
    ``resume``, the solver carries on from where an averted correction left the arm (the object
    held at the carry height), as a memoryless policy would.

    Returns:
        (events [(step, event, detail)], success, corrected steps)
    """
    env.reset(seed=seed, options={"task": TASK})
    policy, corrector = ScriptedPolicy(TASK), Corrector(config)
    events, corrected, success = [], 0, False
    for i in range(steps):
        state = env.privileged_state()
        out = corrector.step(state)
        if out.event:
            events.append((i, out.event, out.detail))
        if resume and out.event == "release:averted" and state["object_grasped"]:
            policy.phase, policy.memory = "carry", {"grasp_yaw": float(state["ee_euler"][2])}
        if out.take_over:
            assert out.action.shape == (7,) and out.action.dtype == np.float32
            action, corrected = out.action, corrected + 1
        else:
            action = policy.act(state)
            if not any(e.startswith("take_over") for _, e, _ in events):
                action = sabotage(policy, state, action.copy())
        _, _, success, truncated, _ = env.step(action)
        if success or truncated:
            break
    return events, success, corrected


def test_a_nominal_run_is_never_taken_over(sim):
    events, success, corrected = rollout(sim, lambda policy, state, a: a)
    assert success and events == [] and corrected == 0


def _hold_and_lift(policy, state, action):
    if policy.phase in ("release", "retreat", "done"):
        action[2], action[6] = 0.02, scripted.CLOSED  # keep holding, lift back up
    return action


def test_lifting_back_up_at_the_place_pose_is_corrected_to_a_release(sim):
    events, success, corrected = rollout(sim, _hold_and_lift)
    assert events[0][1] == "take_over:hold", events
    assert "back up" in events[0][2] or "without releasing" in events[0][2]
    assert success and corrected > 0


def _hold_still(policy, state, action):
    if policy.phase in ("release", "retreat", "done"):
        action[:6], action[6] = 0.0, scripted.CLOSED  # stay at the place pose, closed
    return action


def test_holding_at_the_place_pose_is_corrected_after_hold_steps(sim):
    config = CorrectorConfig(hold_steps=3)
    events, success, _ = rollout(sim, _hold_still, config=config)
    assert events[0][1] == "take_over:hold" and "without releasing" in events[0][2]
    assert success


def _drop_while_carrying(policy, state, action):
    if policy.phase == "carry":
        action[6] = scripted.OPEN
    return action


def test_a_premature_release_while_carrying_is_corrected_by_grasping_again(sim):
    events, success, corrected = rollout(sim, _drop_while_carrying)
    kinds = [e for _, e, _ in events]
    assert kinds[0] == "take_over:release" and "while carrying" in events[0][2]
    assert "release:averted" in kinds  # held at the carry height again
    assert success and corrected > 0


class _GraspBeside:
    """From the descent on: go down 3.5 cm beside the grasp point, then close there."""

    def __init__(self, offset=(0.0, 0.035, 0.0)):
        self.offset, self.closing = np.asarray(offset), False

    def __call__(self, policy, state, action):
        if policy.phase not in ("descend", "grasp", "lift") and not self.closing:
            return action
        grasp, yaw = scripted.grasp_pose(policy.task, state)
        target = grasp + self.offset
        ee = np.asarray(state["ee_pos"])
        self.closing = self.closing or bool(  # there, or as low as the object lets it go
            np.linalg.norm(target[:2] - ee[:2]) < 0.01 and ee[2] - grasp[2] < 0.015)
        gripper = scripted.CLOSED if self.closing else scripted.OPEN
        return scripted.waypoint_action(state, scripted.Waypoint(target, yaw, gripper, 0.005))


def test_a_grasp_beside_the_object_is_corrected(sim):
    events, success, corrected = rollout(sim, _GraspBeside(), steps=80)
    assert corrected > 0
    kinds = [e for _, e, _ in events]
    assert kinds and kinds[0] == "take_over:beside", events
    assert "beside the grasp point" in events[0][2]
    assert "release:averted" in kinds and success


def test_a_correction_gives_up_after_max_steps(sim):
    events, _, corrected = rollout(sim, _hold_and_lift, config=CorrectorConfig(max_steps=1))
    kinds = [e for _, e, _ in events]
    assert kinds[:2] == ["take_over:hold", "release:gave_up"]
    assert "not averted after 1 steps" in events[1][2] and corrected == 1


def test_reset_forgets_a_correction(sim):
    sim.reset(seed=0, options={"task": TASK})
    corrector = Corrector()
    corrector._start(scripted.tasks.get_task(TASK), sim.privileged_state(), "beside")
    assert corrector.correcting and corrector.failure == "beside"
    corrector.reset()
    assert not corrector.correcting and corrector.step(sim.privileged_state()).take_over is False


@pytest.mark.parametrize(("field", "value"), [
    ("hold_steps", 0), ("max_steps", 1.5), ("rise_tol", 0.0), ("beside_tol", float("nan")),
    ("hover_steps", True), ("hover_tol", -0.01), ("script", None),
])
def test_config_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        CorrectorConfig(**{field: value})


def _close_on_the_way(policy, state, action):
    if policy.phase == "approach":
        action[6] = scripted.CLOSED  # close the gripper while still above, on the way
    return action


def test_a_gripper_closed_high_on_the_way_is_corrected(sim):
    events, success, corrected = rollout(sim, _close_on_the_way, steps=80, resume=True)
    kinds = [e for _, e, _ in events]
    assert kinds and kinds[0] == "take_over:early", events
    assert "above the grasp point" in events[0][2]
    assert "release:averted" in kinds and success and corrected > 0


def test_a_flicker_of_the_gripper_on_the_way_is_let_be(sim):
    steps = [0]

    def flicker(policy, state, action):
        steps[0] += 1
        if policy.phase == "approach" and steps[0] % 4 == 0:
            action[6] = scripted.CLOSED  # one step closed now and then, reopened at once
        return action

    events, success, _ = rollout(sim, flicker, steps=80)
    assert success and events == [], events


class _PauseOpen:
    """At the grasp pose, wait ``steps`` steps with the gripper open before closing."""

    def __init__(self, steps):
        self.steps, self.paused = steps, 0

    def __call__(self, policy, state, action):
        if policy.phase != "grasp" or self.paused >= self.steps:
            return action
        self.paused += 1
        policy.phase = "descend"  # the solver starts its grasp afresh next step
        grasp, yaw = scripted.grasp_pose(policy.task, state)
        return scripted.waypoint_action(state, scripted.Waypoint(grasp, yaw, scripted.OPEN, 0.005))


def test_hovering_open_at_the_grasp_pose_is_corrected_by_closing(sim):
    pause = _PauseOpen(steps=60)  # never closes by itself
    events, success, corrected = rollout(sim, pause, steps=90, resume=True)
    kinds = [e for _, e, _ in events]
    assert kinds and kinds[0] == "take_over:hover", events
    assert "open at the grasp pose for 9 steps" in events[0][2]  # hover_steps = 8
    assert 0 < pause.paused <= 8  # the last steps of the descent count as hovering too
    assert "release:averted" in kinds and success and corrected > 0


def test_a_short_pause_at_the_grasp_pose_is_let_be(sim):
    pause = _PauseOpen(steps=6)
    events, success, _ = rollout(sim, pause, steps=90)
    assert pause.paused == 6 and success and events == [], events
