"""numpy -> ROS for the policy node: (K, H, 7) chunks -> ``vgps_interfaces/ActionCandidates``.

The message layout and its validation live in :mod:`vgps_ros.conversions` (one definition
for the producer and every consumer, with the image and sim-state conversions the policy node
reads); this module is the policy side's entry point to it.

Usage::

    msg = candidates_msg(chunks, stamp_to_ns(image_msg.header.stamp), step=4,
                         instruction="put carrot on plate", policy_name="sim", sample_ms=3.1)
"""

from __future__ import annotations

import numpy as np

from vgps_interfaces.msg import ActionCandidates
from vgps_ros.conversions import candidates_to_msg

__all__ = ["candidates_msg"]


def candidates_msg(chunks: np.ndarray, stamp_ns: int, step: int, instruction: str,
                   policy_name: str, sample_ms: float = 0.0,
                   frame_id: str = "base_link") -> ActionCandidates:
    """ActionCandidates for (K, H, 7) chunks sampled from the image stamped ``stamp_ns``.

    Args:
        chunks: float32 (K, H, 7) candidate chunks in the robot action space.
        stamp_ns: the source camera image's stamp (ns).
        step: the policy node's step counter.
        instruction: what the policy was conditioned on (non-empty).
        policy_name: recorded in the message.
        sample_ms: sampling time.
        frame_id: frame of the deltas.

    Raises:
        MessageError (vgps_ros.input_guard): non-finite or mis-shaped chunks, or an empty
            instruction.
    """
    return candidates_to_msg(chunks, stamp_ns, step, instruction, policy_name, sample_ms,
                             frame_id)
