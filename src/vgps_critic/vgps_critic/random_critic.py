"""A randomly initialised critic checkpoint: plumbing demos, tests and benchmarks.

Its choices carry no meaning; it has the shapes, card and checkpoint format of a trained one.

Usage:
    card = save_random_critic("out/critic", preset="sim", seed=0)
    critic = vgps_critic.load("out/critic")
"""

from __future__ import annotations

import dataclasses
import os

from vgps_critic.checkpoint import CriticCard, save_checkpoint
from vgps_critic.config import PRESETS, ActionSpace
from vgps_critic.language import ENCODER_DIMS


def save_random_critic(path: str | os.PathLike, preset: str = "sim",
                       language_encoder: str | None = None, action_bounds: str = "bridge",
                       seed: int = 0, overwrite: bool = False) -> CriticCard:
    """Write a critic checkpoint with random parameters to ``path``.

    Args:
        path: destination checkpoint directory.
        preset: architecture preset (a key of :data:`vgps_critic.config.PRESETS`).
        language_encoder: encoder name (default: ``muse`` for 512-d presets, else
            ``minilm-l6-v2``); a known encoder sets the network's language dimension.
        action_bounds: named action bounds (see :meth:`ActionSpace.named`).
        seed: parameter initialisation seed.
        overwrite: replace ``path`` if it exists.

    Returns:
        The written card (named ``random-<preset>``).

    Raises:
        ValueError: unknown preset or action bounds.
    """
    import jax

    from vgps_critic.model import init_params

    if preset not in PRESETS:
        raise ValueError(f"unknown --config {preset!r}; choose from {sorted(PRESETS)}")
    cfg = PRESETS[preset]
    encoder = language_encoder or ("muse" if cfg.language_dim == 512 else "minilm-l6-v2")
    if encoder in ENCODER_DIMS:
        cfg = dataclasses.replace(cfg, language_dim=ENCODER_DIMS[encoder])
    card = CriticCard(config=cfg, action_space=ActionSpace.named(action_bounds),
                      language_encoder=encoder, name=f"random-{preset}",
                      training={"algorithm": "none (random initialisation)", "seed": seed})
    return save_checkpoint(path, card, init_params(cfg, jax.random.key(seed)),
                           overwrite=overwrite)
