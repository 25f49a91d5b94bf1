"""A policy that ignores its input: Gaussian end-effector deltas, for plumbing checks.

``policy:=random`` exercises the whole steering graph on any arm and camera without a model:
each candidate step is an independent Gaussian delta (``translation_std`` metres and
``rotation_std`` radians per axis, clipped to Bridge's per-step bounds) and a gripper command
drawn uniformly from [0, 1]. It is not a policy for tasks: the arm wanders inside the safety
box, and what the critic picks among K such candidates is all that steers it. Use it to check a
real arm's driver, resets, safety box and step timing before a real policy runs (see the
README's "Real robot" section), with the arm clear of obstacles.

Usage::

    policy = RandomPolicy()
    chunks = policy.sample({}, "anything", k=50, rng=np.random.default_rng(0))   # (50, 1, 7)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vgps_policy_bridge.policy import ACTION_DIM, Policy, check_k

MAX_TRANSLATION = 0.05  # Bridge's per-step bounds (m, rad)
MAX_ROTATION = 0.25


class RandomPolicy(Policy):
    """Independent Gaussian candidate steps (see the module docstring).

    Args:
        horizon: actions per chunk (H).
        translation_std: per-axis standard deviation of dx, dy, dz (m).
        rotation_std: per-axis standard deviation of droll, dpitch, dyaw (rad).
    """

    name = "random"

    def __init__(self, horizon: int = 1, translation_std: float = 0.02,
                 rotation_std: float = 0.05):
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"RandomPolicy.horizon={horizon!r}: need an integer >= 1")
        for what, value in (("translation_std", translation_std),
                            ("rotation_std", rotation_std)):
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"RandomPolicy.{what}={value!r}: need a finite number >= 0")
        self.horizon = horizon
        self.translation_std, self.rotation_std = float(translation_std), float(rotation_std)

    def sample(self, observation: dict[str, Any], instruction: str, k: int,
               rng: np.random.Generator) -> np.ndarray:
        k = check_k(k)
        shape = (k, self.horizon)
        out = np.empty((*shape, ACTION_DIM), np.float32)
        out[..., :3] = np.clip(rng.normal(0.0, self.translation_std, (*shape, 3)),
                               -MAX_TRANSLATION, MAX_TRANSLATION)
        out[..., 3:6] = np.clip(rng.normal(0.0, self.rotation_std, (*shape, 3)),
                                -MAX_ROTATION, MAX_ROTATION)
        out[..., 6] = rng.uniform(0.0, 1.0, shape)
        return out
