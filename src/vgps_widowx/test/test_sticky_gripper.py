"""The sticky gripper of the WidowX deployments (V-GPS: 3 consecutive requests)."""

from __future__ import annotations

import numpy as np
import pytest

from vgps_widowx.sticky_gripper import StickyGripper


def _run(latch: StickyGripper, commands: list[float]) -> list[float]:
    out = []
    for g in commands:
        action = latch.propose(np.array([0.01, 0, 0, 0, 0, 0, g], np.float32))
        latch.commit()
        out.append(float(action[-1]))
    return out


def test_three_consecutive_requests_change_the_state():
    latch = StickyGripper(steps=3)
    #                 close x2 (ignored), open resets the count, close x3 -> closed on the 3rd
    assert _run(latch, [0.1, 0.2, 0.9, 0.0, 0.3, 0.4, 0.4, 0.9, 0.8, 0.7]) == \
        [1, 1, 1, 1, 1, 0, 0, 0, 0, 1]
    assert not latch.closed


def test_steps_one_binarises_at_the_threshold_and_zero_passes_through():
    assert _run(StickyGripper(steps=1), [0.49, 0.5, 0.2, 0.7]) == [0, 1, 0, 1]
    assert _run(StickyGripper(steps=0), [0.49, 0.5, 0.2, 0.7]) == pytest.approx(
        [0.49, 0.5, 0.2, 0.7])


def test_only_committed_actions_count_and_reset_opens():
    latch = StickyGripper(steps=2)
    for _ in range(5):  # proposed but never executed (the arm refused them)
        latch.propose(np.array([0, 0, 0, 0, 0, 0, 0.0]))
    assert not latch.closed
    assert _run(latch, [0.0, 0.0]) == [1, 0] and latch.closed
    latch.reset()
    assert not latch.closed and _run(latch, [0.0]) == [1]


def test_the_input_action_is_not_modified():
    action = np.array([0.01, 0, 0, 0, 0, 0, 0.2], np.float32)
    out = StickyGripper(steps=1).propose(action)
    assert action[-1] == np.float32(0.2) and out[-1] == 0.0 and out[:6].tolist() == \
        action[:6].tolist()


@pytest.mark.parametrize("steps", [-1, 1.5, True, "3"])
def test_bad_steps_are_refused(steps):
    with pytest.raises(ValueError, match="steps"):
        StickyGripper(steps=steps)
