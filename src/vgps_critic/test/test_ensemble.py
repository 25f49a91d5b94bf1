"""Deep ensembles of critics: scoring, identity, validation and steering through them."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL, perturbed_params, random_inputs

import vgps_critic
from vgps_critic import ActionSpace, CheckpointError, CriticEnsemble, save_checkpoint
from vgps_critic.checkpoint import load_checkpoint
from vgps_critic.ensemble import read_ensemble_card, save_ensemble
from vgps_critic.steering import Steerer


@pytest.fixture(scope="module")
def members(tmp_path_factory, small_card) -> list[str]:
    root = tmp_path_factory.mktemp("members")
    paths = []
    for seed in (1, 2, 3):
        path = root / f"m{seed}"
        save_checkpoint(path, dataclasses.replace(small_card, name=f"member-{seed}"),
                        perturbed_params(SMALL, seed=seed))
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory, members) -> Path:
    path = tmp_path_factory.mktemp("ens") / "ensemble"
    save_ensemble(path, members, name="test-ensemble", notes={"lineage": ["a", "b", "c"]})
    return path


def test_q_is_the_mean_of_the_members_deployed_q(ensemble_dir, members, rng):
    ensemble = vgps_critic.load(ensemble_dir)
    assert isinstance(ensemble, CriticEnsemble)
    image, language, actions = random_inputs(rng, SMALL, k=7)
    singles = [vgps_critic.load(m) for m in members]
    per_member = np.stack([c.q(c.encode(image, language), actions) for c in singles])
    # The members really disagree, so the mean is not any one of them.
    assert np.abs(per_member[0] - per_member[1]).max() > 1e-3
    features = ensemble.encode(image, language)
    assert len(features) == 3
    np.testing.assert_allclose(ensemble.q_members(features, actions), per_member, rtol=1e-6)
    np.testing.assert_allclose(ensemble.q(features, actions), per_member.mean(0), rtol=1e-6)
    assert ensemble.q(features, actions).dtype == np.float32


def test_mean_over_heads_averages_every_head_of_every_member(members, tmp_path, rng):
    path = tmp_path / "mean"
    card = save_ensemble(path, members, name="test-ensemble", head_reduction="mean")
    ensemble = vgps_critic.load(path)
    image, language, actions = random_inputs(rng, SMALL, k=6)
    heads = np.stack([c.q_members(c.encode(image, language), actions)
                      for c in (vgps_critic.load(m) for m in members)])  # (M, E, K)
    assert heads.shape == (3, SMALL.ensemble_size, 6)
    features = ensemble.encode(image, language)
    np.testing.assert_allclose(ensemble.q_heads(features, actions), heads, rtol=1e-6)
    np.testing.assert_allclose(ensemble.q(features, actions), heads.mean(axis=(0, 1)),
                               rtol=1e-5)
    # Min and mean over heads really rank differently here, and the ids tell them apart.
    assert not np.allclose(heads.min(1).mean(0), heads.mean(axis=(0, 1)))
    assert read_ensemble_card(path).head_reduction == "mean"
    with_min = save_ensemble(tmp_path / "min", members, name="test-ensemble")
    assert card.critic_id != with_min.critic_id
    with pytest.raises(CheckpointError, match="head_reduction"):
        save_ensemble(tmp_path / "bad", members, name="bad", head_reduction="max")


def test_min_over_members_scores_each_candidate_by_the_member_that_likes_it_least(
        members, tmp_path, rng):
    path = tmp_path / "guarded"
    card = save_ensemble(path, members, name="test-ensemble", reduction="min")
    ensemble = vgps_critic.load(path)
    image, language, actions = random_inputs(rng, SMALL, k=8)
    per_member = np.stack([c.q(c.encode(image, language), actions)
                           for c in (vgps_critic.load(m) for m in members)])  # (M, K)
    features = ensemble.encode(image, language)
    np.testing.assert_allclose(ensemble.q(features, actions), per_member.min(axis=0),
                               rtol=1e-6)
    # Not the mean, and the card and the id say so.
    assert not np.allclose(per_member.min(axis=0), per_member.mean(axis=0))
    assert read_ensemble_card(path).reduction == "min"
    assert json.loads((path / "card.json").read_text())["reduction"] == "min"
    assert card.critic_id != save_ensemble(tmp_path / "mean", members,
                                           name="test-ensemble").critic_id
    with pytest.raises(CheckpointError, match="reduction 'max'"):
        save_ensemble(tmp_path / "bad", members, name="bad", reduction="max")


def test_ensemble_id_names_its_members_in_order(ensemble_dir, members, tmp_path):
    card = read_ensemble_card(ensemble_dir)
    ids = [vgps_critic.load(m).critic_id for m in members]
    assert [c.critic_id for c in card.member_cards] == ids
    assert card.critic_id.startswith("test-ensemble@") and card.critic_id not in ids
    raw = json.loads((ensemble_dir / "card.json").read_text())
    assert [m["critic_id"] for m in raw["members"]] == ids
    assert raw["notes"] == {"lineage": ["a", "b", "c"]}
    # Same members, other order: another id (the mean is the same, the record is not).
    other = save_ensemble(tmp_path / "other", members[::-1], name="test-ensemble")
    assert other.critic_id != card.critic_id
    # Same members, same order: the same id, wherever it was written.
    again = save_ensemble(tmp_path / "again", members, name="test-ensemble")
    assert again.critic_id == card.critic_id


def test_an_ensemble_names_no_path_of_its_members(members, tmp_path):
    old = tmp_path / "old_export"
    shutil.copytree(members[0], old)
    (old / "params" / "commit_success.txt").write_text(f"Checkpoint written to {old}\n")
    path = tmp_path / "ens"
    save_ensemble(path, [old, members[1]], name="paths")
    for file in path.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert str(old).encode() not in data and str(tmp_path).encode() not in data, file
    assert vgps_critic.load(path).critic_id.startswith("paths@")


def test_an_ensemble_is_relocatable(ensemble_dir, tmp_path, rng):
    moved = tmp_path / "moved"
    shutil.copytree(ensemble_dir, moved)
    image, language, actions = random_inputs(rng, SMALL, k=4)
    a, b = vgps_critic.load(ensemble_dir), vgps_critic.load(moved)
    np.testing.assert_array_equal(a.q(a.encode(image, language), actions),
                                  b.q(b.encode(image, language), actions))


def test_steering_picks_the_argmax_of_the_mean(ensemble_dir, rng):
    ensemble = vgps_critic.load(ensemble_dir)
    image, _, actions = random_inputs(rng, SMALL, k=9)
    decision = Steerer(ensemble).choose(image, "put the carrot on the plate", actions)
    expected = ensemble.score(image, "put the carrot on the plate", actions)
    np.testing.assert_allclose(decision.q_values, expected, rtol=1e-6)
    assert decision.index == int(np.argmax(expected))


def test_members_must_take_the_same_inputs(members, small_card, tmp_path):
    odd = tmp_path / "odd"
    save_checkpoint(odd, dataclasses.replace(small_card, action_space=ActionSpace.named(
        "fractal")), perturbed_params(SMALL, seed=9))
    with pytest.raises(CheckpointError, match="action space"):
        save_ensemble(tmp_path / "bad", [members[0], odd], name="bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(CheckpointError, match="at least 2 members"):
        save_ensemble(tmp_path / "one", members[:1], name="one")


def test_a_tampered_ensemble_gives_a_clear_error(ensemble_dir, members, tmp_path):
    def broken(edit) -> Path:
        path = tmp_path / f"b{len(list(tmp_path.iterdir()))}"
        shutil.copytree(ensemble_dir, path)
        raw = json.loads((path / "card.json").read_text())
        edit(path, raw)
        (path / "card.json").write_text(json.dumps(raw))
        return path

    def escape(path, raw):
        raw["members"][0]["path"] = "../elsewhere"

    def swap(path, raw):
        shutil.rmtree(path / "members/0")
        shutil.copytree(members[2], path / "members/0")

    def missing(path, raw):
        shutil.rmtree(path / "members/1")

    def version(path, raw):
        raw["format_version"] = 99

    for edit, message in ((escape, "inside the ensemble"), (swap, "was replaced"),
                          (missing, "does not exist"), (version, "format_version")):
        with pytest.raises(CheckpointError, match=message):
            vgps_critic.load(broken(edit))


def test_single_critic_loaders_point_to_the_ensemble_loader(ensemble_dir):
    with pytest.raises(CheckpointError, match="ensemble of critics"):
        load_checkpoint(ensemble_dir)


def test_refuses_to_overwrite_or_to_nest(ensemble_dir, members, tmp_path):
    with pytest.raises(FileExistsError):
        save_ensemble(ensemble_dir, members, name="again")
    with pytest.raises(CheckpointError, match="itself an ensemble"):
        save_ensemble(tmp_path / "nested", [ensemble_dir, members[0]], name="nested")


def test_the_critic_nodes_encode_cache_scores_an_ensemble(ensemble_dir, rng):
    from vgps_critic.encode_cache import StampedEncoder

    ensemble = vgps_critic.load(ensemble_dir)
    cache = StampedEncoder(ensemble)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)  # any camera size
    actions = rng.uniform(-0.05, 0.05, (5, 7)).astype(np.float32)
    cache.add_image(7, image)
    cache.pre_encode(7, "put carrot on plate")
    score = cache.score(7, "put carrot on plate", actions)
    want = Steerer(ensemble).choose(image, "put carrot on plate", actions).q_values
    np.testing.assert_allclose(score.q, want, rtol=1e-6)
    assert score.pre_encoded
