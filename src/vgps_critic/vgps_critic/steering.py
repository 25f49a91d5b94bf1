"""One V-GPS decision: score the first action of each of K candidate chunks, pick one.

The same code runs inside the critic node and in the in-process evaluation, so that what is
measured offline is what the robot does.

Usage:
    steerer = Steerer(critic, beta=0.0)
    decision = steerer.choose(image, "put carrot on plate", chunks, key)   # chunks (K, H, 7)
    chunks[decision.index]            # the chosen chunk
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np
from PIL import Image

from vgps_critic.scorer import Features, Scorer
from vgps_critic.selection import Selection, select, validate_beta


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size[0], size[1], 3) with Lanczos filtering (as the paper).

    Returns the input unchanged when it already has the size.
    """
    if image.shape[:2] == tuple(size):
        return image
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.LANCZOS))


@dataclasses.dataclass(frozen=True)
class Decision:
    index: int  # chosen chunk
    q_values: np.ndarray  # (K,) Q of each chunk's first action
    selection: Selection
    encode_ms: float
    score_ms: float


class Steerer:
    """Encode-once scoring plus the selection rule, with K-independent image handling.

    Args:
        critic: any :class:`~vgps_critic.scorer.Scorer` (a critic or an ensemble).
        beta: selection temperature (0: greedy argmax).
    """

    def __init__(self, critic: Scorer, beta: float = 0.0) -> None:
        self.critic = critic
        self.beta = validate_beta(beta)

    def encode(self, image: np.ndarray, instruction: str) -> Features:
        """Resize to the critic's size and encode (call as soon as the image arrives)."""
        image = resize_image(np.asarray(image), self.critic.image_size)
        return self.critic.encode(image, self.critic.embed(instruction))

    def choose(self, image: np.ndarray, instruction: str, chunks: np.ndarray,
               key: jax.Array | None = None, features: Features | None = None) -> Decision:
        """Pick one of K candidate chunks.

        Args:
            image: uint8 (H, W, 3) camera frame the candidates were sampled for (any size).
            instruction: the task instruction.
            chunks: float32 (K, H, A) or (K, A) robot-space candidates.
            key: jax key, needed when beta > 0.
            features: a pre-computed ``encode(image, instruction)`` to reuse.

        Returns:
            The ``Decision``.
        """
        chunks = np.asarray(chunks, np.float32)
        if chunks.ndim == 2:
            chunks = chunks[:, None]
        if chunks.ndim != 3:
            raise ValueError(f"candidates must be (K, H, A) or (K, A), got {chunks.shape}")
        start = time.perf_counter()
        if features is None:
            features = self.encode(image, instruction)
        encoded = time.perf_counter()
        q = self.critic.q(features, chunks[:, 0])
        scored = time.perf_counter()
        selection = select(q, self.beta, key)
        return Decision(index=selection.index, q_values=q, selection=selection,
                        encode_ms=(encoded - start) * 1e3, score_ms=(scored - encoded) * 1e3)
