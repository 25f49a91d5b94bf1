"""Open a critic checkpoint directory: a single critic or an ensemble of critics.

Usage:
    import vgps_critic
    scorer = vgps_critic.load("models/sim_critic")      # a Critic or a CriticEnsemble
    q = scorer.score(image, "put carrot on plate", actions)   # (K,) for (K, 7) actions
    card = describe("models/sim_critic")                  # the validated card as JSON
"""

from __future__ import annotations

import os
from typing import Any

from vgps_critic.checkpoint import load_checkpoint
from vgps_critic.critic import Critic
from vgps_critic.ensemble import CriticEnsemble, is_ensemble, load_ensemble
from vgps_critic.language import LanguageEncoder


def load(path: str | os.PathLike, language_encoder: LanguageEncoder | None = None,
         verify: bool = True) -> Critic | CriticEnsemble:
    """Load and validate a critic checkpoint directory (see ``checkpoint``).

    A directory holding an ensemble of critics (see ``ensemble``) gives a
    :class:`~vgps_critic.ensemble.CriticEnsemble`; both satisfy
    :class:`~vgps_critic.scorer.Scorer`. The language encoder named in the card is loaded lazily
    on the first ``embed``/``score``; pass ``language_encoder`` to share or inject one.

    Args:
        path: the checkpoint (or ensemble) directory.
        language_encoder: an encoder to use instead of the card's (same name and dimension).
        verify: check the parameters' hash against the card.

    Returns:
        The loaded scorer.

    Raises:
        vgps_critic.checkpoint.CheckpointError: missing, corrupt or inconsistent checkpoint.
    """
    if is_ensemble(path):
        return load_ensemble(path, language_encoder, verify=verify)
    card, params = load_checkpoint(path, verify=verify)
    return Critic(card, params, language_encoder)


def describe(path: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """A checkpoint's card as JSON, after validating it (``vgps critic info``).

    For an ensemble: its card plus ``critic_id`` and every member's card (``member_cards``).

    Args:
        path: the checkpoint (or ensemble) directory.
        verify: check the parameters' hash against the card.

    Raises:
        vgps_critic.checkpoint.CheckpointError: missing, corrupt or inconsistent checkpoint.
    """
    if is_ensemble(path):
        card = load_ensemble(path, verify=verify).card
        raw = card.to_json()
        raw["critic_id"] = card.critic_id
        raw["member_cards"] = [c.to_json() for c in card.member_cards]
        return raw
    return load_checkpoint(path, verify=verify)[0].to_json()
