"""numpy <-> ROS messages of the WidowX side: selections, joint states, episode status.

Every ``*_from_msg`` validates (Kilted does not check field values) and raises
:class:`~vgps_ros.input_guard.MessageError` whose ``kind`` names the problem. What more than one
package converts (camera images, stamps, candidates, scores, the sim state) lives in
:mod:`vgps_ros.conversions`.

Usage::

    sel = selected_to_msg(decision, stamp_ns)                    # selector.Decision
    actions = selected_actions(sel)                              # float32 (N, 7)
    msg = joint_state_msg(joints, gripper, stamp_ns)             # joints (6,), gripper [0, 1]
    joints = arm_joints_from_msg(msg)                            # float64 (6,)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import JointState

from vgps_interfaces.msg import EpisodeStatus, SelectedAction
from vgps_ros.conversions import float_array, stamp_from_ns
from vgps_ros.input_guard import MessageError

EXECUTABLE_REASONS = ("argmax", "softmax", "fallback", "intervention")
JOINT_NAMES = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate",
               "gripper")  # gripper: opening in [0, 1], 1 = open (not a joint angle)

# MessageError and stamp_from_ns stay importable from here for vgps/replay/rescore.py and
# src/vgps_widowx/test/test_overlay.py (their home is vgps_ros).
__all__ = ["EXECUTABLE_REASONS", "JOINT_NAMES", "MessageError", "arm_joints_from_msg",
           "episode_msg", "joint_state_msg", "selected_actions", "selected_to_msg",
           "stamp_from_ns"]


def selected_to_msg(decision: Any, stamp_ns: int, step: int | None = None) -> SelectedAction:
    """A selector :class:`~vgps_widowx.selector.Decision` -> SelectedAction.

    Args:
        decision: the decision (``index``, ``actions`` (N, A), ``reason``, ``detail``, ``q``,
            ``margin``, ``k``, ``beta``, ``step``).
        stamp_ns: the source image's stamp (0 when the decision has no source, e.g. a watchdog
            hold).
        step: the step to record when the decision carries none (``decision.step`` = -1).
    """
    actions = np.asarray(decision.actions, np.float32)
    msg = SelectedAction()
    msg.header.stamp = stamp_from_ns(stamp_ns)
    msg.header.frame_id = "base_link"
    value = decision.step if decision.step >= 0 else (step if step is not None else 0)
    msg.step = max(int(value), 0)
    msg.index = int(decision.index)
    msg.q_value = float(decision.q)
    msg.q_margin = float(decision.margin)
    n, a = (actions.shape if actions.ndim == 2 else (0, 7))
    msg.num_actions, msg.action_dim = int(n), int(a)
    msg.actions = float_array(actions.reshape(-1))
    msg.reason = str(decision.reason)
    msg.detail = str(decision.detail)
    msg.beta = float(decision.beta)
    msg.k = int(decision.k)
    return msg


def selected_actions(msg: SelectedAction, action_dim: int = 7) -> np.ndarray:
    """The (N, A) actions of a SelectedAction, validated.

    Raises:
        MessageError: ``bad_dims``, ``bad_length`` or ``nan_actions``.
    """
    n, a = int(msg.num_actions), int(msg.action_dim)
    if a != action_dim:
        raise MessageError("bad_dims", f"action_dim={a}, expected {action_dim}")
    raw = msg.actions
    arr = (np.frombuffer(raw.tobytes(), np.float32) if hasattr(raw, "tobytes")
           else np.asarray(raw, np.float32))
    if arr.size != n * a:
        raise MessageError("bad_length", f"len(actions)={arr.size} != num_actions*action_dim = "
                                         f"{n * a}")
    arr = arr.reshape(n, a).copy()
    if not np.all(np.isfinite(arr)):
        raise MessageError("nan_actions", "selected actions contain NaN or inf")
    return arr


def joint_state_msg(joints: np.ndarray, gripper: float, stamp_ns: int) -> JointState:
    """Six arm joints (rad) and the gripper opening ([0, 1]) -> sensor_msgs/JointState."""
    msg = JointState()
    msg.header.stamp = stamp_from_ns(stamp_ns)
    msg.name = list(JOINT_NAMES)
    msg.position = [float(v) for v in np.asarray(joints, float).reshape(-1)] + [float(gripper)]
    return msg


def arm_joints_from_msg(msg: JointState) -> np.ndarray:
    """The six arm joint angles (rad, float64) of a JointState, by name, in ``JOINT_NAMES`` order.

    Raises:
        MessageError: ``bad_joint_state`` when a joint or its position is missing or not finite.
    """
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [j for j in JOINT_NAMES[:6] if j not in index]
    if missing or len(msg.position) < len(msg.name):
        raise MessageError("bad_joint_state", f"joint_states without {missing or 'positions'}")
    q = np.array([msg.position[index[j]] for j in JOINT_NAMES[:6]], dtype=np.float64)
    if not np.all(np.isfinite(q)):
        raise MessageError("bad_joint_state", "joint positions contain NaN or inf")
    return q


def episode_msg(episode: int, task: str, instruction: str, step: int, event: str,
                success: bool, stamp_ns: int) -> EpisodeStatus:
    """An EpisodeStatus message (``event`` one of the EVENT_* constants)."""
    msg = EpisodeStatus()
    msg.header.stamp = stamp_from_ns(stamp_ns)
    msg.episode, msg.task, msg.instruction = int(episode), task, instruction
    msg.step, msg.event, msg.success = int(step), event, bool(success)
    return msg
