"""The Scorer protocol: a critic and an ensemble both satisfy it; load and describe open either."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from conftest import SMALL, perturbed_params

import vgps_critic
from vgps_critic import Critic, CriticEnsemble, Scorer, save_checkpoint
from vgps_critic.checkpoint import CriticCard
from vgps_critic.ensemble import EnsembleCard, save_ensemble
from vgps_critic.loading import describe
from vgps_critic.random_critic import save_random_critic
from vgps_critic.scorer import ScorerCard

PACKAGE = Path(vgps_critic.__file__).parent


@pytest.fixture(scope="module")
def scorers(tmp_path_factory, small_card) -> dict:
    root = tmp_path_factory.mktemp("scorers")
    members = []
    for seed in (1, 2):
        members.append(root / f"m{seed}")
        save_checkpoint(members[-1], small_card, perturbed_params(SMALL, seed=seed))
    save_ensemble(root / "ens", members, name="pair")
    return {"critic": vgps_critic.load(members[0]), "ensemble": vgps_critic.load(root / "ens"),
            "critic_path": members[0], "ensemble_path": root / "ens"}


def _members(protocol: type) -> list[str]:
    return [name for name in vars(protocol) if not name.startswith("_")]


@pytest.mark.parametrize("kind", ["critic", "ensemble"])
def test_critic_and_ensemble_offer_every_protocol_member(scorers, kind):
    scorer = scorers[kind]
    assert {"critic_id", "image_size", "embed", "encode", "q", "score"} <= set(_members(Scorer))
    for protocol, obj in ((Scorer, scorer), (ScorerCard, scorer.card)):
        for name in _members(protocol):
            # getattr_static: no property runs (language_encoder would load the encoder)
            inspect.getattr_static(obj, name)
            wanted = inspect.getattr_static(protocol, name)
            if inspect.isfunction(wanted):
                got = inspect.signature(getattr(obj, name)).parameters
                assert list(got) == list(inspect.signature(wanted).parameters)[1:], name
    assert isinstance(scorer, (Critic, CriticEnsemble))
    assert isinstance(scorer.card, (CriticCard, EnsembleCard))


def _imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    return {node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module}


def test_no_cycle_between_critic_ensemble_and_loading():
    assert not {"vgps_critic.ensemble", "vgps_critic.loading"} & _imports("critic")
    assert "vgps_critic.loading" not in _imports("ensemble")
    assert "vgps_critic.critic" in _imports("ensemble")
    assert {"vgps_critic.critic", "vgps_critic.ensemble"} <= _imports("loading")
    assert not {"vgps_critic.critic", "vgps_critic.ensemble"} & _imports("scorer")


def test_load_and_describe_open_a_critic_and_an_ensemble(scorers, small_card):
    single, pair = scorers["critic"], scorers["ensemble"]
    assert isinstance(single, Critic) and isinstance(pair, CriticEnsemble)
    one = describe(scorers["critic_path"])
    assert one["name"] == small_card.name and one["params"]["sha256"] == single.card.params_sha256
    both = describe(scorers["ensemble_path"], verify=False)
    assert both["critic_id"] == pair.critic_id and len(both["member_cards"]) == 2


def test_random_critic_is_reproducible_and_named_after_its_preset(tmp_path):
    a = save_random_critic(tmp_path / "a", preset="tiny", seed=3)
    b = save_random_critic(tmp_path / "b", preset="tiny", seed=3)
    assert a.critic_id == b.critic_id and a.name == "random-tiny"
    assert a.training == {"algorithm": "none (random initialisation)", "seed": 3}
    with pytest.raises(ValueError, match="unknown --config 'nope'"):
        save_random_critic(tmp_path / "c", preset="nope")
