"""Agent losses against hand-computed values."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vgps_training.agents import losses
from vgps_training.agents.actor import sample_tanh_gaussian


def test_td_target_and_loss_by_hand():
    target = losses.td_target(jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.0]),
                              jnp.array([-10.0, -10.0]), 0.98)
    np.testing.assert_allclose(target, [-1.0 - 9.8, 0.0])  # terminal: no bootstrap
    q = jnp.array([[-10.0, 1.0], [-11.0, 0.0]])  # (E=2, B=2)
    # member 0: ((-10 + 10.8)^2 + 1^2) / 2 = (0.64 + 1) / 2 ; member 1: (0.04 + 0) / 2
    assert float(losses.td_loss(q, target)) == pytest.approx(0.82 + 0.02, rel=1e-5)


def _regulariser_by_hand(q_data, q_rand, q_pi, logp_pi, q_next, logp_next, mc, a, temp):
    e, b = q_data.shape
    total = 0.0
    for i in range(e):
        gaps = []
        for j in range(b):
            qp, qn = q_pi[i, j], q_next[i, j]
            if mc is not None:
                qp = np.maximum(qp, mc[j])
                qn = np.maximum(qn, mc[j])
            terms = np.concatenate([q_rand[i, j] - a * np.log(0.5), qp - logp_pi[j],
                                    qn - logp_next[j]]) / temp
            lse = temp * np.log(np.sum(np.exp(terms)))
            gaps.append(lse - q_data[i, j])
        total += np.mean(gaps)
    return total


@pytest.mark.parametrize("calql", [False, True])
def test_cql_and_calql_regulariser_by_hand(calql):
    rng = np.random.default_rng(0)
    e, b, n, a = 2, 3, 4, 7
    q_data = rng.normal(size=(e, b))
    q_rand, q_pi, q_next = (rng.normal(size=(e, b, n)) - 2 for _ in range(3))
    logp_pi, logp_next = rng.normal(size=(b, n)), rng.normal(size=(b, n))
    mc = np.array([-1.0, -2.5, -9.0]) if calql else None
    got, metrics = losses.cql_regularizer(
        jnp.asarray(q_data), jnp.asarray(q_rand), jnp.asarray(q_pi), jnp.asarray(logp_pi),
        jnp.asarray(q_next), jnp.asarray(logp_next), None if mc is None else jnp.asarray(mc),
        a, temperature=0.7)
    want = _regulariser_by_hand(q_data, q_rand, q_pi, logp_pi, q_next, logp_next, mc, a, 0.7)
    assert float(got) == pytest.approx(want, rel=1e-5)
    if calql:
        # the calibration clip is active: policy Q-values below the MC return were raised
        below = np.concatenate([q_pi < mc[None, :, None], q_next < mc[None, :, None]], -1)
        assert float(metrics["calql_clip_fraction"]) == pytest.approx(below.mean())
        assert 0 < below.mean() < 1


def test_calql_clip_raises_the_regulariser_only_where_q_is_below_mc():
    q_data = jnp.zeros((1, 1))
    q = jnp.full((1, 1, 2), -5.0)
    logp = jnp.zeros((1, 2))
    plain, _ = losses.cql_regularizer(q_data, q, q, logp, q, logp, None, 1)
    low_mc, _ = losses.cql_regularizer(q_data, q, q, logp, q, logp, jnp.array([-6.0]), 1)
    high_mc, _ = losses.cql_regularizer(q_data, q, q, logp, q, logp, jnp.array([-1.0]), 1)
    assert float(low_mc) == pytest.approx(float(plain))  # MC below Q: no effect
    assert float(high_mc) > float(plain)


@pytest.mark.parametrize("tau", [0.5, 0.7, 0.9])
def test_expectile_loss_by_hand(tau):
    diff = jnp.array([2.0, -1.0, 0.5, -3.0])
    want = np.mean([tau * 4.0, (1 - tau) * 1.0, tau * 0.25, (1 - tau) * 9.0])
    assert float(losses.expectile_loss(diff, tau)) == pytest.approx(want)


def test_polyak_target_update_by_hand():
    target = {"w": jnp.array([1.0, 2.0]), "b": {"c": jnp.array(0.0)}}
    online = {"w": jnp.array([3.0, 2.0]), "b": {"c": jnp.array(10.0)}}
    new = losses.polyak(target, online, 0.005)
    np.testing.assert_allclose(new["w"], [1.0 + 0.005 * 2.0, 2.0])
    assert float(new["b"]["c"]) == pytest.approx(0.05)


def test_temperature_loss_gradient_sign():
    # entropy below target (log pi high) -> increase alpha: d loss / d log_alpha < 0
    import jax

    grad = jax.grad(losses.temperature_loss)(jnp.array(0.0), jnp.array([3.0, 3.0]), -7.0)
    assert float(grad) == pytest.approx(-(3.0 - 7.0))


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    import jax

    mean = jnp.array([[0.3, -0.2]])
    log_std = jnp.array([[-0.5, 0.1]])
    actions, logp = sample_tanh_gaussian(mean, log_std, jax.random.key(0), 5)
    assert actions.shape == (1, 5, 2) and logp.shape == (1, 5)
    assert float(jnp.abs(actions).max()) < 1
    pre = np.arctanh(np.asarray(actions[0], np.float64))
    std = np.exp(np.asarray(log_std[0], np.float64))
    gauss = -0.5 * ((pre - np.asarray(mean[0])) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    want = (gauss - np.log(1 - np.tanh(pre) ** 2)).sum(-1)
    np.testing.assert_allclose(np.asarray(logp[0]), want, rtol=1e-4, atol=1e-4)


def test_paper_config_calql_step_with_a_tiny_batch():
    """One Cal-QL update of the paper's critic (ResNet-34 FiLM, 256x256, 512-d) on 2 states."""
    import jax

    from vgps_critic.config import PRESETS
    from vgps_critic.model import count_params
    from vgps_training.agents import CalQLAgent, CalQLConfig

    rng = np.random.default_rng(0)
    b = 2
    batch = dict(
        image=rng.integers(0, 256, (b, 256, 256, 3), dtype=np.uint8),
        next_image=rng.integers(0, 256, (b, 256, 256, 3), dtype=np.uint8),
        language=rng.normal(size=(b, 512)).astype(np.float32),
        action=rng.uniform(-1, 1, (b, 7)).astype(np.float32),
        reward=np.array([-1.0, 0.0], np.float32), mask=np.array([1.0, 0.0], np.float32),
        mc_return=np.array([-3.0, 0.0], np.float32))
    agent = CalQLAgent(PRESETS["paper"], CalQLConfig(cql_n_actions=2, warmup_steps=0))
    state = agent.init(jax.random.key(0))
    assert count_params(state.params["critic"]) == 25_563_201
    new_state, metrics = jax.jit(agent.update)(state, batch, jax.random.key(1))
    assert int(new_state.step) == 1
    assert all(np.isfinite(float(v)) for v in metrics.values())
    moved = jax.tree_util.tree_map(lambda a, c: float(jnp.abs(a - c).max()),
                                   new_state.params["critic"], state.params["critic"])
    assert max(jax.tree_util.tree_leaves(moved)) > 0


def test_a_delayed_optimizer_holds_the_parameters_then_warms_up():
    from vgps_training.agents.common import optimizer

    opt = optimizer(0.1, warmup=2, delay=3)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    grads = {"w": jnp.ones(3)}
    seen = []
    for _ in range(6):
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        seen.append(float(params["w"][0]))
    assert seen[:4] == [1.0, 1.0, 1.0, 1.0]  # 3 delayed steps, then warm-up from lr 0
    assert seen[4] < 1.0 and seen[5] < seen[4]  # it moves once the warm-up starts
