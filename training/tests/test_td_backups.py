"""The fine-tune's TD targets: at the data's next action (``td_backup=data``) and at an
expectile value head's V(s') (``td_backup=expectile``), continued from a parent critic."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from finetune_setup import needs_bridge, parent_agent_and_batch

from vgps_training.config import apply_overrides, preset


@needs_bridge
def test_data_backup_bootstraps_from_the_datas_next_action_not_the_actor(parent, deploy_dataset,
                                                                         tmp_path):
    _, _, agent, state, raw, batch = parent_agent_and_batch(
        parent, deploy_dataset, tmp_path, "calql.td_backup=data")
    # the data's next action: the same episode's action one step later (the last repeats itself)
    assert raw["next_action"].shape == raw["action"].shape

    def td_target(state, backup: str) -> np.ndarray:
        agent.config = dataclasses.replace(agent.config, td_backup=backup)
        _, metrics = agent.critic_loss(state.params["critic"], state, batch, jax.random.key(1))
        return float(metrics["td_target"])

    nxt = agent.critic.apply({"params": state.target_critic}, batch["next_image"],
                             batch["language"], batch["next_action"]).min(axis=0)
    want = np.mean(batch["reward"] + agent.config.discount * batch["mask"] * np.asarray(nxt))
    assert td_target(state, "data") == pytest.approx(want, rel=1e-4, abs=1e-4)
    # another actor changes the policy backup's target, not the data backup's
    other = dataclasses.replace(state, params={**state.params, "actor": jax.tree_util.tree_map(
        lambda x: x + 0.5, state.params["actor"])})
    assert td_target(other, "data") == pytest.approx(td_target(state, "data"), abs=1e-6)
    assert td_target(other, "policy") != pytest.approx(td_target(state, "policy"), abs=1e-3)
    del batch["next_action"]
    with pytest.raises(ValueError, match="next_action"):
        td_target(state, "data")


@needs_bridge
def test_expectile_backup_bootstraps_from_v_which_fits_an_upper_expectile_of_q(
        parent, deploy_dataset, tmp_path):
    _, _, agent, state, _, batch = parent_agent_and_batch(
        parent, deploy_dataset, tmp_path, "calql.td_backup=expectile", "calql.expectile=0.9")
    assert set(state.params) == {"critic", "actor", "log_alpha", "value"}
    critic = state.params["critic"]

    def td_target(state) -> float:
        _, metrics = agent.critic_loss(state.params["critic"], state, batch, jax.random.key(1))
        return float(metrics["td_target"])

    # the target is r + gamma * mask * V(s'), V on the critic's own features at s'
    features = agent.critic.apply({"params": critic}, batch["next_image"], batch["language"],
                                  method="encode")
    v_next = np.asarray(agent.value.apply({"params": state.params["value"]}, features))
    want = np.mean(batch["reward"] + agent.config.discount * batch["mask"] * v_next)
    assert td_target(state) == pytest.approx(want, rel=1e-4, abs=1e-4)
    # another actor leaves it; another V moves it by gamma * mask * the shift
    shifted = jax.tree_util.tree_map(lambda x: x + 0.0, state.params["value"])
    shifted["value"]["bias"] = shifted["value"]["bias"] + 1.0
    other_v = dataclasses.replace(state, params={**state.params, "value": shifted})
    actor = jax.tree_util.tree_map(lambda x: x + 0.5, state.params["actor"])
    other_actor = dataclasses.replace(state, params={**state.params, "actor": actor})
    assert td_target(other_actor) == pytest.approx(td_target(state), abs=1e-6)
    assert td_target(other_v) - td_target(state) == pytest.approx(
        agent.config.discount * float(np.mean(batch["mask"])), rel=1e-4)

    # V's loss is the expectile regression of the target critic's Q at the data's actions (min
    # over heads) on V: the constant shift of V that minimises it is the expectile of Q - V,
    # computed here by hand
    q = np.asarray(agent.critic.apply({"params": state.target_critic}, batch["image"],
                                      batch["language"], batch["action"]).min(axis=0))
    v = np.asarray(agent.value.apply({"params": state.params["value"]}, agent.critic.apply(
        {"params": critic}, batch["image"], batch["language"], method="encode")))
    residual = (q - v).astype(np.float64)
    assert np.ptp(residual) > 1e-4

    def expectile_by_hand(tau: float) -> float:  # the root of sum w(r - m) (r - m) = 0
        low, high = residual.min(), residual.max()
        for _ in range(100):
            m = (low + high) / 2
            d = residual - m
            if np.sum(np.where(d > 0, tau, 1 - tau) * d) > 0:
                low = m
            else:
                high = m
        return float(m)

    shifts = np.linspace(residual.min(), residual.max(), 2001)
    step = float(shifts[1] - shifts[0])

    def best_shift(tau: float) -> float:
        agent.config = dataclasses.replace(agent.config, expectile=tau)

        def loss(shift):
            params = {**state.params["value"], "value": {
                **state.params["value"]["value"],
                "bias": state.params["value"]["value"]["bias"] + shift}}
            return agent.value_loss(params, state, batch)[0]

        return float(shifts[int(np.argmin(jax.jit(jax.vmap(loss))(shifts)))])

    got = {tau: best_shift(tau) for tau in (0.1, 0.5, 0.9)}
    for tau, shift in got.items():
        assert shift == pytest.approx(expectile_by_hand(tau), abs=2 * step)
    assert got[0.5] == pytest.approx(float(np.mean(residual)), abs=2 * step)  # 0.5: the mean
    assert got[0.1] < got[0.5] < got[0.9]

    # one jitted update trains V (and only with this backup is there a V to train)
    new_state, metrics = jax.jit(agent.update)(state, batch, jax.random.key(3))
    assert np.isfinite(float(metrics["value_loss"]))
    moved = max(float(np.abs(a - b).max()) for a, b in zip(
        jax.tree_util.tree_leaves(new_state.params["value"]),
        jax.tree_util.tree_leaves(state.params["value"])))
    assert moved > 0.0
    _, _, data_agent, data_state, _, _ = parent_agent_and_batch(
        parent, deploy_dataset, tmp_path / "data", "calql.td_backup=data")
    assert "value" not in data_state.params and "value" not in data_agent.optimizers
    with pytest.raises(ValueError, match="expectile"):
        apply_overrides(preset("debug", "data"), ["calql.expectile=1.0"])
