"""WidowX-side conversions: SelectedAction from a Decision, joint states, episode status."""

from __future__ import annotations

import array
import math

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from vgps_interfaces.msg import EpisodeStatus, SelectedAction
from vgps_ros.conversions import stamp_to_ns
from vgps_widowx.ros_conversions import (
    MessageError,
    arm_joints_from_msg,
    episode_msg,
    joint_state_msg,
    selected_actions,
    selected_to_msg,
)
from vgps_widowx.selector import Decision

pytestmark = pytest.mark.ros


def decision(actions, reason="argmax", step=4):
    return Decision(index=1 if len(actions) else -1, actions=np.asarray(actions, np.float32),
                    reason=reason, detail="why", q=0.5 if len(actions) else math.nan,
                    margin=0.1, k=10, beta=0.0, step=step)


def test_selected_action_round_trip():
    acts = np.array([[0.01, 0, -0.02, 0, 0, 0.1, 1.0]], np.float32)
    msg = selected_to_msg(decision(acts), 123)
    assert (msg.step, msg.index, msg.num_actions, msg.action_dim, msg.reason) == (
        4, 1, 1, 7, SelectedAction.REASON_ARGMAX)
    assert stamp_to_ns(msg.header.stamp) == 123 and msg.k == 10
    np.testing.assert_array_equal(selected_actions(msg), acts)


def test_hold_without_a_step_records_zero_actions():
    msg = selected_to_msg(decision(np.zeros((0, 7)), reason="hold", step=-1), 0)
    assert (msg.num_actions, msg.index, msg.step) == (0, -1, 0) and math.isnan(msg.q_value)
    assert selected_actions(msg).shape == (0, 7)


@pytest.mark.parametrize("change, kind", [
    ({"action_dim": 6}, "bad_dims"),
    ({"num_actions": 2}, "bad_length"),
    ({"actions": array.array("f", [np.nan] * 7)}, "nan_actions"),
])
def test_malformed_selected_actions(change, kind):
    msg = selected_to_msg(decision(np.zeros((1, 7))), 1)
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(MessageError) as info:
        selected_actions(msg)
    assert info.value.kind == kind


def test_joint_state_and_episode_status():
    js = joint_state_msg(np.arange(6.0), 0.7, 5)
    assert list(js.name)[-1] == "gripper" and list(js.position) == [0, 1, 2, 3, 4, 5, 0.7]
    ep = episode_msg(2, "carrot_on_plate", "put carrot on plate", 9,
                     EpisodeStatus.EVENT_SUCCEEDED, True, 5)
    assert (ep.episode, ep.step, ep.event, ep.success) == (2, 9, "succeeded", True)


def test_arm_joints_read_back_by_name():
    js = joint_state_msg(np.arange(6.0) / 10, 0.7, 5)
    np.testing.assert_array_equal(arm_joints_from_msg(js), np.arange(6.0) / 10)
    js.name, js.position = list(js.name)[::-1], list(js.position)[::-1]  # any order
    np.testing.assert_array_equal(arm_joints_from_msg(js), np.arange(6.0) / 10)
    js.name = [n for n in js.name if n != "waist"]
    with pytest.raises(MessageError, match="without"):
        arm_joints_from_msg(js)
    nan = joint_state_msg(np.array([0, np.nan, 0, 0, 0, 0]), 1.0, 5)
    with pytest.raises(MessageError, match="NaN"):
        arm_joints_from_msg(nan)
