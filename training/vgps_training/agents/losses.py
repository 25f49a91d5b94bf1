"""Small pure loss functions of the critic-training agents (Cal-QL / CQL and IQL).

Every function takes arrays and returns a scalar loss plus, where useful, a dict of metrics; none
holds state. Shapes: E = ensemble members, B = batch, N = sampled actions per state.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def td_target(reward: jax.Array, mask: jax.Array, next_q: jax.Array,
              discount: float) -> jax.Array:
    """Bellman target r + discount * mask * Q'(s', a'), without gradient.

    Args:
        reward: (B,) rewards.
        mask: (B,) 0 where the episode terminated at s', else 1.
        next_q: (B,) target-network value of the next state (already reduced over members).
        discount: gamma.

    Returns:
        (B,) targets.
    """
    return jax.lax.stop_gradient(reward + discount * mask * next_q)


def td_loss(q: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared TD error summed over members: q (E, B), target (B,) -> scalar."""
    return jnp.mean(jnp.square(q - target[None]), axis=1).sum()


def cql_regularizer(q_data: jax.Array, q_random: jax.Array, q_policy: jax.Array,
                    logp_policy: jax.Array, q_next_policy: jax.Array,
                    logp_next_policy: jax.Array, mc_return: jax.Array | None,
                    action_dim: int, temperature: float = 1.0) -> tuple[jax.Array, dict]:
    """The CQL(H) regulariser with importance sampling, and Cal-QL's calibration when
    ``mc_return`` is given.

    Cal-QL clips the Q-values of policy actions from below by the Monte-Carlo return of the
    behaviour policy, so the regulariser never pushes Q below what the data achieved.

    Args:
        q_data: (E, B) Q of the dataset actions.
        q_random: (E, B, N) Q of actions drawn uniformly from [-1, 1]^A.
        q_policy: (E, B, N) Q(s, a) for a ~ pi(.|s).
        logp_policy: (B, N) log pi(a|s) of those actions.
        q_next_policy: (E, B, N) Q(s, a') for a' ~ pi(.|s').
        logp_next_policy: (B, N) log pi(a'|s').
        mc_return: (B,) Monte-Carlo returns (Cal-QL) or None (plain CQL).
        action_dim: A, for the uniform density 0.5^A.
        temperature: CQL temperature.

    Returns:
        (scalar loss summed over members: mean over B of logsumexp - Q(s, a_data), metrics).
    """
    metrics = {}
    if mc_return is not None:
        bound = mc_return[None, :, None]
        metrics["calql_clip_fraction"] = jnp.mean(
            jnp.concatenate([q_policy < bound, q_next_policy < bound], -1))
        q_policy = jnp.maximum(q_policy, bound)
        q_next_policy = jnp.maximum(q_next_policy, bound)
    log_uniform = action_dim * jnp.log(0.5)
    stacked = jnp.concatenate([
        q_random - log_uniform,
        q_policy - jax.lax.stop_gradient(logp_policy)[None],
        q_next_policy - jax.lax.stop_gradient(logp_next_policy)[None],
    ], axis=-1)
    lse = temperature * jax.nn.logsumexp(stacked / temperature, axis=-1)  # (E, B)
    gap = lse - q_data
    metrics.update(cql_lse=lse.mean(), cql_gap=gap.mean())
    return gap.mean(axis=1).sum(), metrics


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """IQL's asymmetric squared loss |tau - 1(diff < 0)| * diff^2 (mean), diff = Q - V."""
    weight = jnp.where(diff > 0, expectile, 1.0 - expectile)
    return jnp.mean(weight * jnp.square(diff))


def temperature_loss(log_alpha: jax.Array, log_prob: jax.Array,
                     target_entropy: float) -> jax.Array:
    """SAC temperature: -log_alpha * (log pi + target_entropy) (mean), log_prob (B,)."""
    return -jnp.mean(log_alpha * jax.lax.stop_gradient(log_prob + target_entropy))


def polyak(target: dict, online: dict, rate: float) -> dict:
    """target <- rate * online + (1 - rate) * target, leaf by leaf."""
    return jax.tree_util.tree_map(lambda t, o: rate * o + (1.0 - rate) * t, target, online)
