"""The policy interface every adapter implements (Octo, remote servers, simulation policies).

Usage::

    policy: Policy = SimPolicy()
    policy.reset()                                            # at the start of each episode
    chunks = policy.sample(observation, "put carrot on plate", k=10, rng=rng)   # (K, H, 7)
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

ACTION_DIM = 7  # [dx, dy, dz, droll, dpitch, dyaw, gripper], Bridge convention, 1 = open


class PolicyUnavailableError(RuntimeError):
    """A policy's optional package or server is unavailable; the message says how to fix it."""


class Policy(abc.ABC):
    """A generalist policy that proposes K candidate action chunks per observation.

    Attributes:
        name: short identifier recorded in evaluation results.
    """

    name: str = "policy"

    @abc.abstractmethod
    def sample(
        self, observation: dict[str, Any], instruction: str, k: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Draws K independent candidate chunks for one observation.

        Args:
            observation: at least ``{"image": uint8 (H, W, 3), "state": float32 (7,)}``;
                adapters document any extra keys they need.
            instruction: the language instruction.
            k: number of candidates, >= 1.
            rng: the only source of randomness (same generator state, same samples).

        Returns:
            float32 (K, H, 7) chunks in the robot action space (base-frame end-effector
            deltas and an absolute gripper command in [0, 1], 1 = open).
        """

    def reset(self) -> None:  # noqa: B027 - optional hook, stateless policies need nothing
        """Forgets the current episode (call before the first ``sample`` of each episode)."""


def check_k(k: object) -> int:
    """Validates a candidate count; returns it as an int or raises ``ValueError``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k={k!r}: the number of candidates must be an integer >= 1")
    return int(k)
