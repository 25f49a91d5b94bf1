"""Encode-once scoring: the image is encoded once per step, every candidate action reuses it.

The paper's deployment repeats the image K times and runs the whole network per candidate;
``Critic`` runs the FiLM-ResNet once (``encode``) and only the small MLP head per action
(``q``). Both give the same Q (``repeat_k_q`` is kept as the reference and for benchmarks).

Usage:
    critic = vgps_critic.load("models/sim_critic")
    q = critic.score(image, "put carrot on plate", actions)       # float32 (K,)
    # or, with the encoding done as soon as the image arrives:
    features = critic.encode(image, critic.embed("put carrot on plate"))
    q = critic.q(features, actions)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vgps_critic.checkpoint import CriticCard
from vgps_critic.config import ACTION_CLIP
from vgps_critic.language import LanguageEncoder, get_encoder
from vgps_critic.model import QNetwork


def _bucket(k: int) -> int:
    """Pad K to a power of two so that changing K live rarely triggers a recompile."""
    return 1 << (k - 1).bit_length()


class Critic:
    """A loaded, validated, jitted critic. Thread-safe for concurrent ``encode``/``q`` calls.

    Satisfies :class:`~vgps_critic.scorer.Scorer`; open a checkpoint with
    :func:`vgps_critic.load` (:mod:`vgps_critic.loading`).
    """

    def __init__(self, card: CriticCard, params: dict,
                 language_encoder: LanguageEncoder | None = None) -> None:
        self.card = card
        self.config = card.config
        self.action_space = card.action_space
        self._encoder = language_encoder
        if language_encoder is not None and language_encoder.dim != self.config.language_dim:
            raise ValueError(f"language encoder {language_encoder.name!r} is "
                             f"{language_encoder.dim}-d; critic needs {self.config.language_dim}")
        net = QNetwork(self.config)
        self._params = jax.device_put(params)
        low = jnp.asarray(self.action_space.low, jnp.float32)
        high = jnp.asarray(self.action_space.high, jnp.float32)
        reduce = jnp.min if self.config.ensemble_reduction == "min" else jnp.mean

        def normalize(actions: jax.Array) -> jax.Array:
            scaled = 2.0 * (actions - low) / (high - low) - 1.0
            return jnp.clip(scaled, -ACTION_CLIP, ACTION_CLIP)

        def encode(params: Any, image: jax.Array, language: jax.Array) -> jax.Array:
            return net.apply({"params": params}, image[None], language[None], method="encode")

        def q_members(params: Any, features: jax.Array, actions: jax.Array) -> jax.Array:
            return net.apply({"params": params}, features, normalize(actions),
                             method="q_from_features")

        def repeat_k(params: Any, image: jax.Array, language: jax.Array,
                     actions: jax.Array) -> jax.Array:
            images = jnp.broadcast_to(image[None], (actions.shape[0], *image.shape))
            return reduce(net.apply({"params": params}, images, language[None],
                                    normalize(actions)), axis=0)

        self._encode = jax.jit(encode)
        self._q_members = jax.jit(q_members)
        self._q = jax.jit(lambda p, f, a: reduce(q_members(p, f, a), axis=0))
        self._repeat_k = jax.jit(repeat_k)

    # -- identity -----------------------------------------------------------------------------
    @property
    def critic_id(self) -> str:
        return self.card.critic_id

    @property
    def image_size(self) -> tuple[int, int]:
        return self.config.image_size

    @property
    def language_encoder(self) -> LanguageEncoder:
        """The encoder named by the card, loaded on first use."""
        if self._encoder is None:
            self._encoder = get_encoder(self.card.language_encoder)
        return self._encoder

    def embed(self, instruction: str) -> np.ndarray:
        """Instruction -> float32 (language_dim,) with the card's encoder (cached)."""
        return self.language_encoder.encode(instruction)

    # -- scoring ------------------------------------------------------------------------------
    def encode(self, image: np.ndarray, language: np.ndarray) -> jax.Array:
        """Encode one image under one instruction embedding.

        Args:
            image: uint8 (H, W, 3) with (H, W) = the card's image size.
            language: float32 (language_dim,) embedding.

        Returns:
            features (1, feature_dim), to be passed to ``q``.
        """
        image = self._check_image(image)
        language = self._check_language(language)
        return self._encode(self._params, image, language)

    def q(self, features: jax.Array, actions: np.ndarray) -> np.ndarray:
        """Q of K robot-space actions under pre-encoded features.

        Args:
            features: (1, feature_dim) from ``encode``.
            actions: float32 (K, action_dim) in the robot action space (normalised inside
                with the card's bounds).

        Returns:
            float32 (K,) deployed Q (ensemble reduced as the card says; ``min`` for V-GPS).
        """
        return self._run_q(self._q, features, actions)

    def q_members(self, features: jax.Array, actions: np.ndarray) -> np.ndarray:
        """Like ``q`` but per ensemble member: float32 (E, K)."""
        return self._run_q(self._q_members, features, actions)

    def score(self, image: np.ndarray, instruction: str, actions: np.ndarray) -> np.ndarray:
        """``q(encode(image, embed(instruction)), actions)`` -> float32 (K,)."""
        actions = self._check_actions(actions)
        return self.q(self.encode(image, self.embed(instruction)), actions)

    def repeat_k_q(self, image: np.ndarray, language: np.ndarray,
                   actions: np.ndarray) -> np.ndarray:
        """The paper's design: the whole network on the image repeated K times -> (K,)."""
        image = self._check_image(image)
        language = self._check_language(language)
        actions = self._check_actions(actions)
        return np.asarray(self._repeat_k(self._params, image, language, actions))

    def _run_q(self, fn: Any, features: jax.Array, actions: np.ndarray) -> np.ndarray:
        actions = self._check_actions(actions)
        dim = self.config.feature_dim
        if getattr(features, "shape", None) != (1, dim):
            raise ValueError(f"features must be the (1, {dim}) array returned by encode(), got "
                             f"{getattr(features, 'shape', type(features).__name__)}")
        k = actions.shape[0]
        padded = np.zeros((_bucket(k), actions.shape[1]), np.float32)
        padded[:k] = actions
        return np.asarray(fn(self._params, features, padded))[..., :k]

    # -- validation ---------------------------------------------------------------------------
    def _check_image(self, image: Any) -> np.ndarray:
        if not isinstance(image, np.ndarray):
            raise TypeError(f"image must be a numpy uint8 array, got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise TypeError(f"image dtype must be uint8 (0..255 RGB), got {image.dtype}")
        h, w = self.config.image_size
        if image.shape != (h, w, 3):
            raise ValueError(f"image shape must be ({h}, {w}, 3) (RGB at the critic's size), "
                             f"got {image.shape}")
        return image

    def _check_language(self, language: Any) -> np.ndarray:
        language = np.asarray(language)
        if language.dtype.kind != "f":
            raise TypeError(f"language embedding must be float32, got {language.dtype}")
        d = self.config.language_dim
        if language.shape != (d,):
            raise ValueError(f"language embedding must have shape ({d},) for encoder "
                             f"{self.card.language_encoder!r}, got {language.shape}")
        if not np.all(np.isfinite(language)):
            raise ValueError("language embedding contains NaN or inf")
        return language.astype(np.float32, copy=False)

    def _check_actions(self, actions: Any) -> np.ndarray:
        actions = np.asarray(actions)
        a = self.config.action_dim
        if actions.ndim != 2:
            raise ValueError(f"actions must be 2-D (K, {a}), got shape {actions.shape}")
        if actions.shape[0] == 0:
            raise ValueError("K = 0: no candidate actions to score")
        if actions.shape[1] != a:
            raise ValueError(f"actions must have {a} dims per row "
                             f"({', '.join(self.action_space.names)}), got {actions.shape[1]}")
        if actions.dtype.kind not in "fiu":
            raise TypeError(f"actions must be numeric, got {actions.dtype}")
        bad = ~np.all(np.isfinite(actions), axis=1)
        if bad.any():
            raise ValueError(f"actions contain NaN or inf in rows {np.flatnonzero(bad).tolist()}")
        return actions.astype(np.float32, copy=False)

