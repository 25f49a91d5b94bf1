"""The policy's recorded candidates in training: deployment dataset -> batches -> the anchor that
holds the parent critic where the deployed argmax chooses (``calql.candidate_anchor_weight``)."""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax
import numpy as np
import pytest
from finetune_setup import debug_config, needs_bridge, parent_agent_and_batch
from test_deploy_dataset import _episode, _store

from vgps_critic.config import ACTION_CLIP
from vgps_training.deploy_dataset import write_deploy_dataset

LOW = (-0.1, -0.1, -0.1, -0.5, -0.5, -0.5, 0.0)
HIGH = (0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 1.0)


def _transitions(path, candidates, bounds=(LOW, HIGH), skip_takeovers=False):
    from vgps_training.data.pipeline import DataConfig, DatasetSpec, make_dataset

    config = DataConfig(datasets=(DatasetSpec(path=str(path), action_bounds=bounds),),
                        image_size=(16, 16), batch_size=1, train=False, candidates=candidates,
                        candidates_skip_takeovers=skip_takeovers)
    return [{k: v[0] for k, v in b.items()} for b in make_dataset(config).as_numpy()]


def test_batches_carry_each_steps_recorded_candidates_normalised_and_masked(tmp_path):
    rng = np.random.default_rng(11)
    source = {"r1/0000": _episode(rng, "r1/0000", 7, True),
              "r1/0001": _episode(rng, "r1/0001", 5, False)}
    for i, ep in enumerate(source.values()):  # 0..6 candidates a step: above C = 3, and none
        ep["candidate_counts"] = (np.arange(len(ep["actions"])) + 3 * i) % 7
        ep["candidate_actions"] = rng.uniform(
            -0.2, 0.2, (int(ep["candidate_counts"].sum()), 7)).astype(np.float32)
        ep["candidate_q"] = np.zeros(int(ep["candidate_counts"].sum()), np.float32)
    path = write_deploy_dataset(_store(tmp_path, source), tmp_path, candidates=True)
    low, high = np.array(LOW, np.float32), np.array(HIGH, np.float32)
    expected, saved = {}, {}  # raw action -> that step's candidates; taken over or handed over
    for ep in source.values():
        ends = np.cumsum(ep["candidate_counts"])
        iv = ep["interventions"]
        for i, action in enumerate(ep["actions"]):
            expected[action[:6].tobytes()] = ep["candidate_actions"][ends[i] - ep[
                "candidate_counts"][i]:ends[i]]
            saved[action[:6].tobytes()] = bool(iv[i] or (i + 1 < len(iv) and iv[i + 1]))
    got = _transitions(path, 3)
    assert len(got) == len(expected) == 12
    for t in got:
        recorded = expected[t["raw_action"][:6].tobytes()][:3]
        n = len(recorded)
        assert t["candidates"].shape == (3, 7)
        assert t["candidate_mask"].tolist() == [True] * n + [False] * (3 - n)
        want = np.clip(2 * (recorded - low) / (high - low) - 1, -ACTION_CLIP, ACTION_CLIP)
        np.testing.assert_allclose(t["candidates"][:n], want, rtol=1e-5, atol=1e-6)
        assert not t["candidates"][n:].any()  # masked slots hold zeros
    assert any(e.shape[0] > 3 for e in expected.values())  # truncation was exercised
    assert any(e.shape[0] == 0 for e in expected.values())  # so was a step with none
    # skipping take-overs masks the corrector's steps and the step each took over from
    assert 0 < sum(saved.values()) < len(saved)
    for t in _transitions(path, 3, skip_takeovers=True):
        key = t["raw_action"][:6].tobytes()
        n = 0 if saved[key] else min(len(expected[key]), 3)
        assert t["candidate_mask"].tolist() == [True] * n + [False] * (3 - n)
    # without data.candidates nothing changes; a dataset built without them is all masked
    assert "candidates" not in _transitions(path, 0)[0]
    plain = write_deploy_dataset(_store(tmp_path / "plain", source), tmp_path / "plain")
    for t in _transitions(plain, 2):
        assert t["candidates"].shape == (2, 7) and not t["candidate_mask"].any()


def _anchored(parent, deploy_dataset, tmp_path, *overrides):
    """A Cal-QL agent continued from ``parent`` with its candidates' batch: a batch of the
    Bridge + deployment mixture that holds both kinds of rows (Bridge records no candidates)."""
    from vgps_critic.language import get_encoder
    from vgps_training.data.pipeline import make_dataset
    from vgps_training.trainer import InstructionEmbedder, to_agent_batch

    config, loaded, agent, state, _, _ = parent_agent_and_batch(
        parent, deploy_dataset, tmp_path, "calql.td_backup=data", "data.candidates=4",
        *overrides)
    embed = InstructionEmbedder(get_encoder(config.language_encoder))
    data = make_dataset(dataclasses.replace(config.data, train=False, subset="all"))
    for raw in data.as_numpy():
        rows = raw["candidate_mask"].any(axis=1)
        if 0 < rows.sum() < len(rows):
            batch = to_agent_batch(raw, embed)
            batch.pop("episode_success")
            return config, loaded, agent, state, batch
    raise AssertionError("no batch mixes Bridge and deployment rows")


@needs_bridge
def test_the_candidate_anchor_is_zero_at_the_parent_and_measures_drift_at_the_candidates(
        parent, deploy_dataset, tmp_path):
    config, loaded, agent, state, batch = _anchored(
        parent, deploy_dataset, tmp_path, "calql.candidate_anchor_weight=2.0")
    mask = np.asarray(batch["candidate_mask"])
    assert mask.shape == (config.batch_size, 4) and 0 < mask.sum() < mask.size  # Bridge: none
    with pytest.raises(ValueError, match="init-from"):
        agent.critic_loss(state.params["critic"], state, batch, jax.random.key(1))
    agent.anchor = loaded.params()

    def metrics(critic, b=batch):
        return agent.critic_loss(critic, state, b, jax.random.key(1))

    loss, m = metrics(state.params["critic"])
    assert float(m["candidate_anchor_loss"]) == pytest.approx(0.0, abs=1e-8)
    moved = jax.tree_util.tree_map(lambda x: x * 1.05, state.params["critic"])
    loss, m = metrics(moved)
    held = float(m["candidate_anchor_loss"])

    def q(params):
        features = agent._encode(params, batch["image"], batch["language"])
        return np.asarray(agent._q(params, features, batch["candidates"]))  # (E, B, C)

    by_hand = ((q(moved) - q(agent.anchor)) ** 2)[:, mask > 0].mean()
    assert held > 1e-6 and held == pytest.approx(float(by_hand), rel=1e-4)
    assert float(loss) == pytest.approx(float(m["td_loss"]) + config.calql.cql_alpha
                                        * float(m["cql_loss"]) + 2.0 * held, rel=1e-4)
    # what sits in the masked slots does not count
    junk = np.where(mask[..., None] > 0, batch["candidates"],
                    np.random.default_rng(0).uniform(-1, 1, batch["candidates"].shape))
    assert float(metrics(moved, {**batch, "candidates": junk.astype(np.float32)})[1][
        "candidate_anchor_loss"]) == pytest.approx(held, rel=1e-6)
    with pytest.raises(ValueError, match="candidates"):
        metrics(moved, {k: v for k, v in batch.items()
                        if k not in ("candidates", "candidate_mask")})


@needs_bridge
def test_the_ranking_form_lets_the_level_move_and_holds_the_order(parent, deploy_dataset,
                                                                   tmp_path):
    _, loaded, agent, state, batch = _anchored(
        parent, deploy_dataset, tmp_path, "calql.candidate_anchor_weight=1.0",
        "calql.candidate_anchor_temperature=0.1")
    agent.anchor = loaded.params()
    critic = state.params["critic"]
    raised = {**critic, "Dense_0": {**critic["Dense_0"],
                                    "bias": critic["Dense_0"]["bias"] + 0.5}}
    scaled = jax.tree_util.tree_map(lambda x: x * 1.05, critic)
    held = [float(agent.critic_loss(p, state, batch, jax.random.key(1))[1][
        "candidate_anchor_loss"]) for p in (critic, raised, scaled)]
    assert held[0] == pytest.approx(0.0, abs=1e-7)
    assert held[1] == pytest.approx(0.0, abs=1e-6)  # every Q up by 0.5: same softmax
    assert held[2] > 1e-6  # the ranking moved


@needs_bridge
def test_the_candidate_anchor_needs_candidates_and_a_parent(deploy_dataset, tmp_path):
    from vgps_training.trainer import train

    with pytest.raises(ValueError, match=r"data\.candidates"):
        debug_config(tmp_path, deploy_dataset, "calql.candidate_anchor_weight=1.0")
    config = debug_config(tmp_path, deploy_dataset, "calql.candidate_anchor_weight=1.0",
                          "data.candidates=4", "steps=1")
    with pytest.raises(ValueError, match="init-from"):
        train(config, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="candidate_anchor_temperature"):
        dataclasses.replace(config.calql, candidate_anchor_temperature=-1.0)


@needs_bridge
def test_the_motion_only_anchor_leaves_the_gripper_decision_to_the_data(parent, deploy_dataset,
                                                                        tmp_path):
    held = {}
    for motion_only in (False, True):
        _, loaded, agent, state, batch = _anchored(
            parent, deploy_dataset, tmp_path, "calql.candidate_anchor_weight=1.0",
            f"calql.candidate_anchor_motion_only={str(motion_only).lower()}")
        agent.anchor = loaded.params()
        moved = jax.tree_util.tree_map(lambda x: x * 1.05, state.params["critic"])
        regripped = np.array(batch["candidates"])
        regripped[..., -1] = -regripped[..., -1]  # every candidate's other gripper command
        held[motion_only] = [float(agent.critic_loss(moved, state, {**batch, "candidates": c},
                                                     jax.random.key(1))[1][
            "candidate_anchor_loss"]) for c in (batch["candidates"], regripped)]
    assert held[False][0] != pytest.approx(held[False][1], rel=1e-4)  # the gripper counts
    assert held[True][0] == pytest.approx(held[True][1], rel=1e-6)  # replaced by the data's
    assert held[True][0] > 1e-6
