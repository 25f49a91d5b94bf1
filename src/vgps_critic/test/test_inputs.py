"""Every malformed input to the critic gets its own clear error, never a crash deep in JAX."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SMALL, random_inputs

import vgps_critic
from vgps_critic.language import LanguageEncoder


class FixedEncoder(LanguageEncoder):
    """A deterministic stand-in so these tests do not load a sentence model."""

    name = "fixed"
    dim = SMALL.language_dim

    def _embed(self, texts):
        return np.full((len(texts), self.dim), 0.05, np.float32)


@pytest.fixture(scope="module")
def critic(small_checkpoint):
    return vgps_critic.load(small_checkpoint, language_encoder=FixedEncoder())


@pytest.fixture
def good(rng):
    return random_inputs(rng, SMALL, 4)


def test_valid_inputs_score(critic, good):
    image, _, actions = good
    q = critic.score(image, "put carrot on plate", actions)
    assert q.shape == (4,) and q.dtype == np.float32 and np.all(np.isfinite(q))


@pytest.mark.parametrize("image, error, message", [
    (lambda im: im.astype(np.float32), TypeError, "dtype must be uint8"),
    (lambda im: im.tolist(), TypeError, "numpy uint8 array"),
    (lambda im: im[:16], ValueError, r"shape must be \(32, 32, 3\)"),
    (lambda im: im[..., :1], ValueError, r"shape must be \(32, 32, 3\)"),
    (lambda im: np.concatenate([im, im[..., :1]], -1), ValueError, "RGB"),
    (lambda im: im[None], ValueError, r"got \(1, 32, 32, 3\)"),
], ids=["float-image", "list-image", "wrong-size", "mono", "rgba", "batched"])
def test_bad_images(critic, good, image, error, message):
    img, _, actions = good
    with pytest.raises(error, match=message):
        critic.score(image(img), "put carrot on plate", actions)


@pytest.mark.parametrize("actions, message", [
    (lambda a: np.where(np.arange(7) == 2, np.nan, a), r"NaN or inf in rows \[0, 1, 2, 3\]"),
    (lambda a: np.vstack([a[:1], np.full((1, 7), np.inf)]), r"NaN or inf in rows \[1\]"),
    (lambda a: a[:, :6], "must have 7 dims"),
    (lambda a: a[:0], "K = 0"),
    (lambda a: a[0], r"must be 2-D \(K, 7\)"),
    (lambda a: a[None], r"must be 2-D \(K, 7\)"),
], ids=["nan", "inf", "wrong-dim", "k0", "1d", "3d"])
def test_bad_actions(critic, good, actions, message):
    image, _, acts = good
    with pytest.raises(ValueError, match=message):
        critic.score(image, "put carrot on plate", actions(acts))


@pytest.mark.parametrize("instruction, error, message", [
    ("", ValueError, "instruction is empty"),
    ("   ", ValueError, "instruction is empty"),
    (None, ValueError, "must be a str"),
])
def test_bad_instructions(critic, good, instruction, error, message):
    image, _, actions = good
    with pytest.raises(error, match=message):
        critic.score(image, instruction, actions)


@pytest.mark.parametrize("language, error, message", [
    (np.zeros(100, np.float32), ValueError, r"shape \(384,\)"),
    (np.full(384, np.nan, np.float32), ValueError, "NaN or inf"),
    (np.zeros(384, np.int32), TypeError, "float32"),
])
def test_bad_language_vectors(critic, good, language, error, message):
    image, _, _ = good
    with pytest.raises(error, match=message):
        critic.encode(image, language)


def test_features_must_come_from_encode(critic, good):
    _, _, actions = good
    with pytest.raises(ValueError, match="returned by encode"):
        critic.q(np.zeros((1, 3), np.float32), actions)


def test_k_padding_does_not_change_values(critic, good, rng):
    image, language, _ = good
    features = critic.encode(image, language)
    actions = random_inputs(rng, SMALL, 9)[2]  # K = 9 runs padded to 16
    together = critic.q(features, actions)
    one_by_one = np.array([critic.q(features, a[None])[0] for a in actions])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
