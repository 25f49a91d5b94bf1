"""``--policy random``: seeded Gaussian candidate chunks that ignore the observation.

A stand-in model for tests, benchmarks and plumbing checks of the wire path: each action is an
independent Gaussian end-effector delta (``translation_std`` metres and ``rotation_std`` radians
per axis, clipped to Bridge's per-step bounds) and a gripper command drawn uniformly from
[0, 1]. The same seed gives the same chunks; the observation is checked by the server (one
image, ``image_name``, of ``image_size`` squared; 0 takes any size) and otherwise ignored.

Usage::

    vgps-policy-server --policy random --horizon 4 --port 8000

    policy = RandomPolicy(horizon=4)
    policy.sample(observation, "anything", k=50, seed=0, episode_id="ep", step=0)  # (50, 4, 7)
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from vgps_policy_server import __version__
from vgps_policy_server.policy import ACTION_DIM, DEFAULT_MAX_K, make_metadata

MAX_TRANSLATION = 0.05  # Bridge's per-step bounds (m, rad)
MAX_ROTATION = 0.25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The random policy's CLI options."""
    group = parser.add_argument_group("random policy")
    group.add_argument("--horizon", type=int, default=4, help="actions per chunk, H (default 4)")
    group.add_argument("--image-size", type=int, default=256,
                       help="side of the square image it takes; 0 = any size (default 256)")
    group.add_argument("--image-name", default="primary", help="the image's name (default "
                                                               "primary)")
    group.add_argument("--max-k", type=int, default=DEFAULT_MAX_K,
                       help=f"largest K per request (default {DEFAULT_MAX_K})")


def build(args: argparse.Namespace) -> RandomPolicy:
    """The policy from parsed CLI options."""
    return RandomPolicy(horizon=args.horizon, image_size=args.image_size,
                        image_name=args.image_name, max_k=args.max_k)


class RandomPolicy:
    """Gaussian candidate chunks (see the module docstring); a ``ServedPolicy``.

    Args:
        horizon: H, actions per chunk.
        image_size: side of the square image it declares (0: any size).
        image_name: the name of that image.
        max_k: the largest K per request.
        translation_std: per-axis standard deviation of dx, dy, dz (m).
        rotation_std: per-axis standard deviation of droll, dpitch, dyaw (rad).
    """

    def __init__(self, horizon: int = 4, image_size: int = 256, image_name: str = "primary",
                 max_k: int = DEFAULT_MAX_K, translation_std: float = 0.02,
                 rotation_std: float = 0.05):
        for what, value, low in (("horizon", horizon, 1), ("image_size", image_size, 0),
                                 ("max_k", max_k, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"RandomPolicy.{what}={value!r}: need an integer >= {low}")
        for what, std in (("translation_std", translation_std), ("rotation_std", rotation_std)):
            if not (isinstance(std, (int, float)) and np.isfinite(std) and std >= 0):
                raise ValueError(f"RandomPolicy.{what}={std!r}: need a finite number >= 0")
        self.horizon, self.max_k = horizon, max_k
        self.image_size, self.image_name = image_size, image_name
        self.translation_std, self.rotation_std = float(translation_std), float(rotation_std)

    def metadata(self) -> dict[str, Any]:
        return make_metadata("random", __version__, horizon=self.horizon,
                             images={self.image_name: (self.image_size, self.image_size)},
                             max_k=self.max_k)

    def reset(self, episode_id: str) -> None:
        """Nothing to forget: every sample is independent."""

    def sample(self, observation: dict[str, Any], instruction: str, k: int, seed: int,
               episode_id: str, step: int) -> np.ndarray:
        """float32 (K, H, 7) drawn from ``seed`` alone (see the module docstring)."""
        rng = np.random.default_rng(seed)
        shape = (k, self.horizon)
        out = np.empty((*shape, ACTION_DIM), np.float32)
        out[..., :3] = np.clip(rng.normal(0.0, self.translation_std, (*shape, 3)),
                               -MAX_TRANSLATION, MAX_TRANSLATION)
        out[..., 3:6] = np.clip(rng.normal(0.0, self.rotation_std, (*shape, 3)),
                                -MAX_ROTATION, MAX_ROTATION)
        out[..., 6] = rng.uniform(0.0, 1.0, shape)
        return out
