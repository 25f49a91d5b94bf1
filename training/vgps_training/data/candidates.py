"""The policy's recorded candidates of each step, as training batches carry them.

A deployment dataset built with ``vgps dataset build --candidates`` holds, per step, the K
candidates the policy proposed (the first action of each chunk, robot convention); with
``DataConfig.candidates = C`` each transition carries the first C of them, normalised like its
action and padded, with a mask of which were recorded (``pipeline``'s batch table).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from vgps_critic.config import ACTION_CLIP


def normalize(raw: tf.Tensor, low: np.ndarray, high: np.ndarray) -> tf.Tensor:
    """Robot-convention actions -> [-1, 1] with ``(low, high)``, clipped as the critic clips."""
    return tf.clip_by_value(2.0 * (raw - low) / (high - low) - 1.0, -ACTION_CLIP, ACTION_CLIP)


def step_candidates(traj: dict[str, Any], n: tf.Tensor, count: int, low: np.ndarray,
                    high: np.ndarray, scale: bool, skip_takeovers: bool) -> dict[str, tf.Tensor]:
    """The first ``count`` recorded candidates of each step, padded, and their mask.

    Args:
        traj: a labelled standard trajectory; ``candidate_actions`` float32 ragged (T, None, 7)
            where its dataset recorded them (``standardize``), ``is_intervention`` where known.
        n: T.
        count: candidates kept per step (C).
        low, high: the dataset's action bounds (``normalize``).
        scale: normalise the candidates as the actions are (``normalize``).
        skip_takeovers: mask the take-over steps and the step before each.

    Returns:
        ``candidates`` float32 (T, C, 7) (zeros where masked) and ``candidate_mask`` bool (T, C).
    """
    if "candidate_actions" in traj:
        rows = traj["candidate_actions"]
        dense = rows.to_tensor(0.0, shape=[None, count, 7])  # pads or truncates to count
        mask = tf.sequence_mask(tf.minimum(rows.row_lengths(), count), count)
        if skip_takeovers and "is_intervention" in traj:
            iv = tf.cast(traj["is_intervention"], tf.bool)
            saved = tf.logical_or(iv, tf.concat([iv[1:], [False]], 0))  # and the one before
            mask = tf.logical_and(mask, tf.logical_not(saved)[:, None])
    else:
        dense = tf.zeros([n, count, 7], tf.float32)
        mask = tf.zeros([n, count], tf.bool)
    if scale:
        dense = tf.where(mask[..., None], normalize(dense, low, high), 0.0)
    return {"candidates": dense, "candidate_mask": mask}
