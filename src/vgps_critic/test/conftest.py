"""Shared fixtures: small critics with non-trivial (perturbed) parameters."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from reference_params import TINY, random_release_params

from vgps_critic import ActionSpace, CriticCard, CriticConfig, save_checkpoint

# A small topology with every feature of the paper's (projections, FiLM, 2 members).
SMALL = CriticConfig(stage_sizes=(1, 2), num_filters=8, image_size=(32, 32), language_dim=384,
                     mlp_hidden=(32, 32))


def perturbed_params(config: CriticConfig, seed: int = 0) -> dict:
    """Random parameters in the released layout with non-zero norms, biases and FiLM."""
    return random_release_params(
        np.random.default_rng(seed), stage_sizes=config.stage_sizes,
        num_filters=config.num_filters, lang_dim=config.language_dim,
        action_dim=config.action_dim, mlp=config.mlp_hidden, ensemble=config.ensemble_size)


@pytest.fixture(scope="session")
def small_card() -> CriticCard:
    return CriticCard(config=SMALL, action_space=ActionSpace.named("bridge"),
                      language_encoder="minilm-l6-v2", name="small-test",
                      reward={"discount": 0.98}, data={"source": "random"})


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory, small_card) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "small"
    save_checkpoint(path, small_card, perturbed_params(SMALL))
    return str(path)


@pytest.fixture(scope="session")
def tiny_params() -> dict:
    """Random release-layout parameters of the tiny topology (reference_params.TINY)."""
    return random_release_params(np.random.default_rng(0), **TINY)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def random_inputs(rng: np.random.Generator, config: CriticConfig, k: int,
                  space: ActionSpace | None = None):
    """(image uint8 (H, W, 3), language (D,), robot-space actions (K, A) inside the bounds)."""
    space = space or ActionSpace.named("bridge")
    h, w = config.image_size
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    language = rng.normal(size=config.language_dim).astype(np.float32) * 0.1
    low, high = np.asarray(space.low), np.asarray(space.high)
    actions = (low + (high - low) * rng.random((k, config.action_dim))).astype(np.float32)
    return image, language, actions


__all__ = ["SMALL", "dataclasses", "perturbed_params", "random_inputs"]
