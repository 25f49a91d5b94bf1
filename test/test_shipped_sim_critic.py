"""models/sim_critic: the critic `make demo` and the launch file steer with.

The steering table (benchmarks/results/steering_sim.json) must describe this very critic, and
its card must say what it was trained on, how, and how it validated.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CRITIC = ROOT / "models" / "sim_critic"
pytestmark = pytest.mark.skipif(not (CRITIC / "card.json").is_file(),
                                reason="no simulation critic shipped in models/sim_critic")


@pytest.fixture(scope="module")
def critic():
    import vgps_critic

    return vgps_critic.load(CRITIC)


def test_the_steering_table_measured_the_shipped_critic(critic):
    table = json.loads((ROOT / "benchmarks" / "results" / "steering_sim.json").read_text())
    assert set(table["critics"]) >= {"k10", "k50"}
    assert set(table["critics"].values()) == {critic.critic_id}
    base = table["mean_success"]["base"]
    for run in ("k10", "k50"):
        assert table["runs"][run].keys() == table["runs"]["base"].keys()
        assert all(table["runs"][run][t]["episodes"] >= 100 for t in table["runs"][run])
        assert table["mean_success"][run] > base


def _member_cards(critic):
    """The card of the critic, or of each member when it is an ensemble."""
    return list(getattr(critic.card, "member_cards", [critic.card]))


def test_the_card_records_data_training_and_validation(critic):
    assert critic.card.name == "sim-critic" and critic.card.language_encoder == "minilm-l6-v2"
    assert critic.card.config.image_size == (64, 64)
    for card in _member_cards(critic):
        assert card.language_encoder == "minilm-l6-v2" and card.config.image_size == (64, 64)
        assert card.training["algorithm"] == "calql" and card.training["steps"] >= 1000
        assert card.training["hyperparameters"]["discount"] == card.reward["discount"] == 0.9
        assert {"td_loss", "calibration_corr", "success_ranking_auc"} <= set(
            card.training["validation"])
        sim = card.data["datasets"]["vgps_sim"]
        assert sim["num_trajectories"] >= 1000
        assert sim["num_transitions"] > sim["num_trajectories"]
    assert (CRITIC / "README.md").is_file()


def test_an_ensemble_records_each_members_lineage(critic):
    cards = _member_cards(critic)
    if len(cards) == 1:
        pytest.skip("the shipped critic is a single network")
    lineage = critic.card.notes["members"]
    assert [m["critic_id"] for m in lineage] == [c.critic_id for c in cards]
    for member, card in zip(lineage, cards):
        episodes = sum(c["episodes"] for c in member["collections"])
        assert episodes == card.data["datasets"]["vgps_sim"]["num_trajectories"]
        assert isinstance(member["training_seed"], int)


def test_a_fine_tune_lists_the_collections_behind_its_data(critic):
    """Each simulated collection with its seed, so that `vgps critic compare` refuses them."""
    from vgps.flywheel.compare_sim import collection_seeds

    if len(_member_cards(critic)) > 1:
        pytest.skip("an ensemble lists them per member (above)")
    data = critic.card.data
    records = data["collections"]
    # vgps_sim was written from `vgps collect` runs, vgps_deploy from the bags of `vgps up` runs
    for dataset, source in (("vgps_sim", "vgps collect"), ("vgps_deploy", "vgps up")):
        mine = [r for r in records if r.get("source") == source]
        assert sum(r["episodes"] for r in mine) == data["datasets"][dataset]["num_trajectories"]
    run_ids = {r["run_id"] for r in records if "run_id" in r}
    assert run_ids == {b["run_id"] for d in data["lineage"]["datasets"] for b in d.get("bags", [])}
    parent = critic.card.training["init_from"]
    assert any(r.get("via") == f"parent {parent}" for r in records)  # the parent's data too
    seeds = collection_seeds(CRITIC)
    assert {r["seed"] for r in records} == seeds
    table = json.loads((ROOT / "benchmarks" / "results" / "steering_sim.json").read_text())
    assert table["seed"] not in seeds  # the steering table ran on seeds its data never used


def test_the_shipped_critic_scores_simulated_candidates(critic):
    os.environ.setdefault("MUJOCO_GL", "egl")
    from vgps_policy_bridge.sim_policy import SimPolicy
    from vgps_widowx.sim.env import SimEnvConfig, WidowXSimEnv

    env = WidowXSimEnv(SimEnvConfig(task="carrot_on_plate", image_size=(64, 64)))
    try:
        obs, _ = env.reset(seed=3)
        policy = SimPolicy()
        chunks = policy.sample({**obs, "privileged": env.privileged_state()}, env.instruction,
                               k=10, rng=np.random.default_rng(0))
        q = critic.score(obs["image"], env.instruction, chunks[:, 0])
    finally:
        env.close()
    assert q.shape == (10,) and np.all(np.isfinite(q))
    # Q estimates a discounted sum of -1 rewards: within [-1 / (1 - gamma), 0] up to error.
    assert np.all(q > -15.0) and np.all(q < 2.0)
    np.testing.assert_array_equal(q, critic.score(obs["image"], env.instruction, chunks[:, 0]))
