"""What everything that scores with a critic relies on: the ``Scorer`` protocol.

A single :class:`~vgps_critic.critic.Critic` and a
:class:`~vgps_critic.ensemble.CriticEnsemble` both satisfy it, so steering, the encode-once cache,
the critic node, replay and evaluation take either without knowing which. The features returned
by ``encode`` are opaque (one array for a critic, one per member for an ensemble): hand them back
to the same scorer's ``q`` unchanged.

Usage:
    def best(scorer: Scorer, image, instruction, actions) -> int:
        features = scorer.encode(image, scorer.embed(instruction))   # once per image
        return int(np.argmax(scorer.q(features, actions)))            # (K,) per candidate set
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from vgps_critic.config import ActionSpace, CriticConfig
from vgps_critic.language import LanguageEncoder

# Opaque per-image encoding: produced by ``Scorer.encode``, consumed by the same ``Scorer.q``.
Features = Any


class ScorerCard(Protocol):
    """What callers read from a scorer's card (a ``CriticCard`` or an ``EnsembleCard``)."""

    @property
    def critic_id(self) -> str: ...

    @property
    def config(self) -> CriticConfig: ...

    @property
    def action_space(self) -> ActionSpace: ...

    @property
    def language_encoder(self) -> str:
        """The name of the language encoder (see :func:`vgps_critic.language.get_encoder`)."""
        ...


class Scorer(Protocol):
    """Something that scores candidate actions: a critic or an ensemble of critics."""

    @property
    def card(self) -> ScorerCard: ...

    @property
    def critic_id(self) -> str:
        """Identifies what is deployed (name and parameter hash)."""
        ...

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the images ``encode`` takes."""
        ...

    @property
    def config(self) -> CriticConfig: ...

    @property
    def action_space(self) -> ActionSpace:
        """The robot action space whose bounds normalise actions inside ``q``."""
        ...

    @property
    def language_encoder(self) -> LanguageEncoder: ...

    def embed(self, instruction: str) -> np.ndarray:
        """Instruction -> float32 (language_dim,)."""
        ...

    def encode(self, image: np.ndarray, language: np.ndarray) -> Features:
        """uint8 (H, W, 3) image at ``image_size`` and float32 (language_dim,) embedding ->
        features for ``q``."""
        ...

    def q(self, features: Features, actions: np.ndarray) -> np.ndarray:
        """float32 (K, action_dim) robot-space actions -> float32 (K,) deployed Q."""
        ...

    def score(self, image: np.ndarray, instruction: str, actions: np.ndarray) -> np.ndarray:
        """``q(encode(image, embed(instruction)), actions)`` -> float32 (K,)."""
        ...
