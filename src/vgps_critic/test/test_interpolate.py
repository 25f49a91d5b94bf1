"""Weight-space interpolation of a fine-tuned critic with its parent (WiSE-FT)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from conftest import SMALL, perturbed_params, random_inputs

import vgps_critic
from vgps_critic import ActionSpace, CheckpointError, save_checkpoint
from vgps_critic.checkpoint import load_checkpoint, params_digest
from vgps_critic.ensemble import read_ensemble_card, save_ensemble
from vgps_critic.interpolate import interpolate, interpolate_params


@pytest.fixture(scope="module")
def pair(tmp_path_factory, small_card):
    root = tmp_path_factory.mktemp("pair")
    old, new = root / "old", root / "new"
    save_checkpoint(old, dataclasses.replace(small_card, name="parent"),
                    perturbed_params(SMALL, seed=1))
    save_checkpoint(new, dataclasses.replace(small_card, name="child",
                                             training={"steps": 5}),
                    perturbed_params(SMALL, seed=2))
    return new, old


def _leaves(params):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(params)]


def test_every_parameter_is_the_weighted_mean(pair, tmp_path):
    new, old = pair
    out = tmp_path / "mix"
    summary = interpolate(new, old, 0.25, out)
    card, mixed = load_checkpoint(out, verify=True)
    _, a = load_checkpoint(new)
    _, b = load_checkpoint(old)
    for m, x, y in zip(_leaves(mixed), _leaves(a), _leaves(b)):
        np.testing.assert_allclose(m, 0.75 * y + 0.25 * x, rtol=1e-5, atol=1e-6)
    assert summary["critic_id"] == card.critic_id
    record = card.training["interpolation"]
    assert record["weight"] == 0.25 and record["old"].startswith("parent@")
    assert record["new"].startswith("child@") and card.training["steps"] == 5
    assert card.name == "child"


def test_the_end_points_are_the_two_critics(pair, tmp_path):
    new, old = pair
    for weight, source in ((0.0, old), (1.0, new)):
        interpolate(new, old, weight, tmp_path / str(weight))
        _, got = load_checkpoint(tmp_path / str(weight))
        _, want = load_checkpoint(source)
        assert params_digest(got) == params_digest(want)


def test_the_blend_scores_between_its_ends_on_a_linear_path(pair, tmp_path, rng):
    """Not a claim that Q is linear in the weights: the midpoint is a different, working
    critic whose scores differ from both ends."""
    new, old = pair
    interpolate(new, old, 0.5, tmp_path / "mid")
    image, language, actions = random_inputs(rng, SMALL, k=5)
    scores = [c.q(c.encode(image, language), actions)
              for c in (vgps_critic.load(p) for p in (old, tmp_path / "mid", new))]
    assert all(np.isfinite(s).all() for s in scores)
    assert np.abs(scores[1] - scores[0]).max() > 1e-4
    assert np.abs(scores[1] - scores[2]).max() > 1e-4


def test_ensembles_are_blended_member_by_member(pair, tmp_path, small_card):
    new, old = pair
    extra = tmp_path / "extra"
    save_checkpoint(extra, small_card, perturbed_params(SMALL, seed=3))
    save_ensemble(tmp_path / "ens_new", [new, extra], name="ens", head_reduction="mean",
                  notes={"recipe": "r"}, reduction="min")
    save_ensemble(tmp_path / "ens_old", [old, old], name="ens")
    summary = interpolate(tmp_path / "ens_new", tmp_path / "ens_old", 0.5, tmp_path / "out")
    card = read_ensemble_card(tmp_path / "out")
    assert card.head_reduction == "mean" and card.notes["recipe"] == "r"
    assert card.reduction == "min"  # the new critic's reductions carry over
    assert card.notes["interpolation"]["weight"] == 0.5
    assert summary["members"] == [c.critic_id for c in card.member_cards]
    _, m1 = load_checkpoint(tmp_path / "out" / "members" / "1")
    _, a = load_checkpoint(extra)
    _, b = load_checkpoint(old)
    for m, x, y in zip(_leaves(m1), _leaves(a), _leaves(b)):
        np.testing.assert_allclose(m, 0.5 * x + 0.5 * y, rtol=1e-5, atol=1e-6)


def test_critics_that_are_not_parent_and_child_are_refused(pair, tmp_path, small_card):
    new, old = pair
    bounds = ActionSpace(low=(-1.0,) * SMALL.action_dim, high=(1.0,) * SMALL.action_dim)
    other = tmp_path / "other"
    save_checkpoint(other, dataclasses.replace(small_card, action_space=bounds),
                    perturbed_params(SMALL, seed=4))
    with pytest.raises(CheckpointError, match="action space"):
        interpolate(new, other, 0.5, tmp_path / "bad")
    save_ensemble(tmp_path / "ens", [new, old], name="ens")
    with pytest.raises(CheckpointError, match="ensemble"):
        interpolate(tmp_path / "ens", old, 0.5, tmp_path / "bad2")
    save_ensemble(tmp_path / "ens3", [new, old, new], name="ens")
    with pytest.raises(CheckpointError, match="members"):
        interpolate(tmp_path / "ens3", tmp_path / "ens", 0.5, tmp_path / "bad3")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad3").exists()


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan")])
def test_a_weight_outside_zero_one_is_refused(weight):
    params = perturbed_params(SMALL, seed=1)
    with pytest.raises(ValueError, match="weight"):
        interpolate_params(params, params, weight)
