"""The steering decision shared by the critic node and the in-process evaluation."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import SMALL
from test_inputs import FixedEncoder

import vgps_critic
from vgps_critic.steering import Steerer, resize_image


@pytest.fixture(scope="module")
def critic(small_checkpoint):
    return vgps_critic.load(small_checkpoint, language_encoder=FixedEncoder())


def test_resize_keeps_dtype_and_content():
    image = np.zeros((256, 256, 3), np.uint8)
    image[:, 128:] = 200
    small = resize_image(image, (32, 32))
    assert small.shape == (32, 32, 3) and small.dtype == np.uint8
    assert small[:, :14].max() < 10 and small[:, 18:].min() > 190
    assert resize_image(small, (32, 32)) is small


def test_choose_scores_first_actions_of_chunks(critic, rng):
    image = rng.integers(0, 256, (128, 96, 3), dtype=np.uint8)  # any camera size
    chunks = rng.uniform(-0.05, 0.05, (6, 4, 7)).astype(np.float32)
    chunks[..., 6] = rng.random((6, 4))
    decision = Steerer(critic).choose(image, "put carrot on plate", chunks)
    features = critic.encode(resize_image(image, SMALL.image_size),
                             critic.embed("put carrot on plate"))
    np.testing.assert_allclose(decision.q_values, critic.q(features, chunks[:, 0]), atol=1e-6)
    assert decision.index == int(np.argmax(decision.q_values))
    assert decision.selection.reason == "argmax" and decision.encode_ms >= 0
    # later actions of the chunks do not matter
    chunks2 = chunks.copy()
    chunks2[:, 1:] = 0
    assert Steerer(critic).choose(image, "put carrot on plate", chunks2).index == decision.index


def test_sampling_needs_a_key_and_uses_it(critic, rng):
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    chunks = rng.uniform(-0.05, 0.05, (8, 7)).astype(np.float32)
    steerer = Steerer(critic, beta=1.0)
    with pytest.raises(ValueError, match="explicit key"):
        steerer.choose(image, "put carrot on plate", chunks)
    picks = {steerer.choose(image, "put carrot on plate", chunks, jax.random.key(i)).index
             for i in range(40)}
    assert len(picks) > 1


def test_bad_candidates(critic, rng):
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(K, H, A\)"):
        Steerer(critic).choose(image, "x", np.zeros((2, 3, 4, 7)))
    with pytest.raises(ValueError, match="beta"):
        Steerer(critic, beta=-1)
