"""The Flax Q-network against the independent float64 reference and the paper's numbers."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import SMALL, perturbed_params, random_inputs
from reference_critic import reference_q

from vgps_critic import PRESETS, ActionSpace, CriticCard, CriticConfig, model
from vgps_critic.critic import Critic

PAPER_PARAMS = 25_563_201


def test_paper_config_has_the_papers_parameter_count():
    count = model.count_params(model.param_shapes(PRESETS["paper"]))
    print(f"paper-config critic parameters: {count:,}")
    assert count == PAPER_PARAMS


def test_parameter_tree_is_the_released_layout():
    shapes = model.param_shapes(PRESETS["paper"])
    enc = shapes["encoder"]["encoder"]
    assert enc["conv_init"]["kernel"].shape == (7, 7, 5, 64)
    assert [i for i in range(16) if "conv_proj" in enc[f"ResNetBlock_{i}"]] == [3, 7, 13]
    assert enc["FilmConditioning_15"]["Dense_1"]["kernel"].shape == (512, 512)
    assert shapes["network"]["Dense_0"]["kernel"].shape == (2, 519, 256)
    assert shapes["Dense_0"]["kernel"].shape == (256, 1)


@pytest.mark.parametrize("config, size, batch", [
    (SMALL, (32, 32), 3),
    (PRESETS["paper"], (64, 64), 2),
], ids=["small", "paper-topology-64px"])
def test_forward_matches_float64_reference(config, size, batch, rng):
    params = perturbed_params(config, seed=7)
    images = rng.integers(0, 256, (batch, *size, 3), dtype=np.uint8)
    language = rng.normal(size=(batch, config.language_dim)).astype(np.float32) * 0.1
    actions = rng.uniform(-1, 1, (batch, config.action_dim)).astype(np.float32)
    ours = np.asarray(model.QNetwork(config).apply({"params": params}, images, language, actions))
    ref = reference_q(params, images, language, actions)
    assert ours.shape == ref.shape == (config.ensemble_size, batch)
    # Q values are O(1); float32 vs float64 differs at ~1e-6.
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-4)
    # the members differ, so the min reduction matters
    assert np.abs(ref[0] - ref[1]).max() > 1e-3


def test_film_is_identity_at_initialisation():
    cfg = SMALL
    params = model.init_params(cfg, jax.random.key(0))
    net = model.QNetwork(cfg)
    images = np.full((1, *cfg.image_size, 3), 100, np.uint8)
    a = net.apply({"params": params}, images, np.zeros((1, 384), np.float32), method="encode")
    b = net.apply({"params": params}, images, np.ones((1, 384), np.float32), method="encode")
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("k", [1, 7, 50])
def test_encode_once_equals_repeat_k(k, rng):
    """Scoring K actions against one encoding equals the network on the image repeated K times."""
    config = CriticConfig(image_size=(64, 64))  # the paper's topology at a test-friendly size
    card = CriticCard(config=config, action_space=ActionSpace.named("bridge"),
                      language_encoder="muse")
    critic = Critic(card, perturbed_params(config, seed=k))
    image, language, actions = random_inputs(rng, config, k)
    encode_once = critic.q(critic.encode(image, language), actions)
    repeat_k = critic.repeat_k_q(image, language, actions)
    assert encode_once.shape == repeat_k.shape == (k,)
    np.testing.assert_allclose(encode_once, repeat_k, atol=1e-5, rtol=0)
    if k > 1:
        assert np.ptp(encode_once) > 1e-4  # actions do change Q


def test_deployed_q_is_min_over_members_of_normalised_actions(rng):
    card = CriticCard(config=SMALL, action_space=ActionSpace.named("bridge"),
                      language_encoder="minilm-l6-v2")
    params = perturbed_params(SMALL, seed=3)
    critic = Critic(card, params)
    image, language, actions = random_inputs(rng, SMALL, 5)
    actions[0, 0] = 0.2  # outside the bounds: clipped to 1 - 1e-5 like the paper
    normalised = card.action_space.normalize(actions)
    assert normalised[0, 0] == pytest.approx(1 - 1e-5)
    ref = reference_q(params, image[None].repeat(5, 0), language, normalised)
    got = critic.q(critic.encode(image, language), actions)
    np.testing.assert_allclose(got, ref.min(axis=0), atol=1e-4)
    np.testing.assert_allclose(critic.q_members(critic.encode(image, language), actions), ref,
                               atol=1e-4)
