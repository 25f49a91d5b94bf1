"""EpisodeRunner: only a decision for the current image moves the arm, once; episodes end."""

from __future__ import annotations

import numpy as np
import pytest

from vgps_widowx.arms import SimArm
from vgps_widowx.episode_runner import EpisodeRunner, RunnerConfig
from vgps_widowx.sim import SimEnvConfig

STILL = np.array([[0, 0, 0, 0, 0, 0, 1.0]], np.float32)


@pytest.fixture(scope="module")
def arm():
    sim = SimArm(SimEnvConfig(image_size=(32, 32), n_distractors=0), task="carrot_on_plate")
    with sim:
        yield sim


def test_only_the_current_image_is_acted_on_once(arm):
    runner = EpisodeRunner(arm, RunnerConfig(episodes=1, max_steps=5))
    assert runner.accepts(1, "argmax") == (False, "no episode is running")
    assert runner.start_episode() == "put carrot on plate"
    runner.mark_image(100)
    assert not runner.accepts(99, "argmax")[0]  # a decision for an older image
    for reason in ("hold", "rejected", "estop"):
        assert not runner.accepts(100, reason)[0]
    assert runner.accepts(100, "fallback") == (True, "")
    outcome = runner.execute(STILL)
    assert (outcome.executed, outcome.event, outcome.step) == (1, "step", 1)
    assert not runner.accepts(100, "argmax")[0]  # already acted on
    runner.mark_image(200)
    assert runner.accepts(200, "softmax")[0]


def test_refused_actions_do_not_count_as_a_step(arm):
    runner = EpisodeRunner(arm, RunnerConfig(max_steps=5))
    runner.start_episode()
    runner.mark_image(1)
    outcome = runner.execute(np.array([[0, 0, np.nan, 0, 0, 0, 1.0]], np.float32))
    assert outcome.executed == 0 and outcome.event == "" and outcome.refusals
    assert runner.step == 0 and runner.running


def test_the_step_budget_ends_the_episode(arm):
    runner = EpisodeRunner(arm, RunnerConfig(episodes=2, max_steps=2))
    runner.start_episode()
    events = []
    for stamp in (1, 2):
        runner.mark_image(stamp)
        events.append(runner.execute(STILL).event)
    assert events == ["step", "timeout"] and not runner.running
    assert runner.episodes_left == 1
    runner.start_episode()
    assert runner.episode == 1 and runner.step == 0 and runner.episodes_left == 0


def test_config_is_validated():
    with pytest.raises(ValueError, match="episodes"):
        RunnerConfig(episodes=-1)


def test_the_sticky_gripper_shapes_what_the_arm_executes(arm):
    runner = EpisodeRunner(arm, RunnerConfig(max_steps=20, sticky_gripper_steps=3))
    runner.start_episode()
    executed = []
    for stamp, gripper in enumerate([0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.2], start=1):
        runner.mark_image(stamp)
        assert runner.execute(np.array([[0, 0, 0, 0, 0, 0, gripper]], np.float32)).executed
        executed.append(runner.gripper.closed)
    assert executed == [False, False, False, False, False, True, True]
    runner.mark_image(99)  # a refused action does not count towards a change
    runner.execute(np.array([[0, 0, np.nan, 0, 0, 0, 1.0]], np.float32))
    assert runner.gripper.closed
    runner.start_episode()  # a new episode starts open
    assert not runner.gripper.closed
    with pytest.raises(ValueError, match="sticky_gripper_steps"):
        RunnerConfig(sticky_gripper_steps=-1)


def test_one_decision_moves_the_tool_at_most_one_step(arm):
    """A forged 10-action chunk of full steps moves the tool one step's limits, not ten."""
    runner = EpisodeRunner(arm, RunnerConfig(max_steps=5))
    runner.start_episode()
    runner.mark_image(1)
    before = np.array(arm.ee_pose()[0], np.float64)
    chunk = np.tile(np.array([0.05, 0.05, 0.05, 0, 0, 0, 1.0], np.float32), (10, 1))
    outcome = runner.execute(chunk)
    moved = np.abs(np.array(arm.ee_pose()[0], np.float64) - before)
    assert outcome.executed == 1 and outcome.event == "step"
    assert [c.split(":")[0] for c in outcome.clamps] == ["chunk_truncated"]
    assert np.all(moved <= 0.05 + 0.01), moved  # one step plus sim tracking error
    assert runner.counts["clamped"] == 1


def test_a_chunk_is_scaled_into_one_step_and_the_gripper_still_applies(arm):
    runner = EpisodeRunner(arm, RunnerConfig(max_steps=5))
    runner.start_episode()
    runner.mark_image(1)
    chunk = np.array([[0.03, 0, 0, 0, 0, 0, 1.0],
                      [0.03, 0, 0, 0, 0, 0, 1.0],  # 0.02 of its 0.03 fits
                      [0.03, 0, 0, 0, 0, 0, 1.0],  # nothing left, same gripper: dropped
                      [0.03, 0, 0, 0, 0, 0, 0.0]], np.float32)  # closes, without moving
    outcome = runner.execute(chunk)
    assert outcome.executed == 3
    assert [c.split(":")[0] for c in outcome.clamps] == ["chunk_clamped", "chunk_clamped",
                                                         "chunk_truncated"]
    assert "action 2 of 4 scaled to 0.67" in outcome.clamps[0]


def test_a_single_action_decision_is_unchanged(arm):
    runner = EpisodeRunner(arm, RunnerConfig(max_steps=5))
    runner.start_episode()
    runner.mark_image(1)
    outcome = runner.execute(np.array([[0.05, -0.05, 0.05, 0.2, 0, -0.2, 1.0]], np.float32))
    assert outcome.executed == 1 and outcome.clamps == () and not runner.counts["clamped"]


def test_turned_down_decisions_and_refusals_are_counted(arm):
    runner = EpisodeRunner(arm, RunnerConfig(max_steps=5))
    runner.accepts(1, "argmax")
    runner.start_episode()
    runner.mark_image(2)
    runner.accepts(1, "argmax")
    runner.accepts(2, "hold")
    runner.execute(np.array([[0, 0, np.nan, 0, 0, 0, 1.0]], np.float32))
    runner.ignore("malformed")
    assert dict(runner.counts) == {"ignored.not_running": 1, "ignored.stale": 1,
                                   "ignored.not_executable": 1, "ignored.malformed": 1,
                                   "refused": 1}
