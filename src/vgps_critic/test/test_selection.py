"""The selection rule: greedy argmax and exact sampling from softmax(Q / beta)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from vgps_critic import select, softmax_probabilities


def test_greedy_picks_the_best_and_the_first_of_ties():
    choice = select(np.array([0.1, 0.7, -2.0, 0.7]), beta=0.0)
    assert choice.index == 1 and choice.q == pytest.approx(0.7) and choice.reason == "argmax"
    assert choice.margin == 0.0
    np.testing.assert_array_equal(choice.probabilities, [0, 1, 0, 0])
    assert select(np.array([3.0]), 0.0).index == 0


def test_margin_between_best_and_second():
    assert select(np.array([0.5, -0.25, 0.25]), 0.0).margin == pytest.approx(0.25)


def test_softmax_probabilities_by_hand():
    q = np.array([1.0, 2.0, 3.0])
    e = np.exp([-2.0, -1.0, 0.0])
    np.testing.assert_allclose(softmax_probabilities(q, 1.0), e / e.sum())
    # large Q / small beta stays finite
    probs = softmax_probabilities(np.array([1000.0, 0.0]), 1e-3)
    np.testing.assert_allclose(probs, [1.0, 0.0])


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_sampling_frequencies_match_softmax(beta):
    """Chi-square goodness of fit of 20,000 draws (fixed seed) against softmax(Q / beta)."""
    q = np.array([-0.3, -0.1, 0.0, -0.45, -0.2])
    expected = softmax_probabilities(q, beta)
    n = 20_000
    keys = jax.random.split(jax.random.key(2024), n)
    counts = np.bincount([select(q, beta, k).index for k in keys], minlength=q.size)
    chi2 = float(((counts - n * expected) ** 2 / (n * expected)).sum())
    # chi-square critical value for 4 degrees of freedom at p = 0.001
    assert chi2 < 18.47, (counts / n, expected)
    assert set(np.flatnonzero(counts)) == set(range(q.size))  # every candidate gets picked


def test_same_key_same_choice():
    q = np.linspace(0, 1, 10)
    key = jax.random.key(5)
    assert select(q, 1.0, key).index == select(q, 1.0, key).index


@pytest.mark.parametrize("q, beta, key, message", [
    (np.array([]), 0.0, None, "K = 0"),
    (np.array([[1.0, 2.0]]), 0.0, None, "1-D"),
    (np.array([1.0, np.nan]), 0.0, None, "NaN or inf"),
    (np.array([1.0, 2.0]), -0.1, None, ">= 0"),
    (np.array([1.0, 2.0]), float("nan"), None, "finite"),
    (np.array([1.0, 2.0]), "hot", None, "number"),
    (np.array([1.0, 2.0]), 0.5, None, "explicit key"),
])
def test_bad_selection_inputs(q, beta, key, message):
    with pytest.raises(ValueError, match=message):
        select(q, beta, key)
