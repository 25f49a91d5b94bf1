"""Heads on the critic's image features that are never deployed: the tanh-squashed Gaussian
policy (used by the regulariser and the policy TD target) and the state-value head (the
expectile TD target)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class TanhGaussianActor(nn.Module):
    """pi(a | features): MLP -> mean, log-std; a = tanh(mean + std * eps) in (-1, 1)^A."""

    action_dim: int
    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, features: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = features
        for width in self.hidden:
            x = nn.swish(nn.Dense(width)(x))
        mean = nn.Dense(self.action_dim, name="mean")(x)
        log_std = jnp.clip(nn.Dense(self.action_dim, name="log_std")(x), LOG_STD_MIN,
                           LOG_STD_MAX)
        return mean, log_std


def sample_tanh_gaussian(mean: jax.Array, log_std: jax.Array, key: jax.Array,
                         num: int) -> tuple[jax.Array, jax.Array]:
    """Draw ``num`` reparameterised actions per row with their log-probabilities.

    Args:
        mean, log_std: (B, A).
        key: PRNG key.
        num: samples per row.

    Returns:
        actions (B, num, A) in (-1, 1) and log pi(a) (B, num), including the tanh correction.
    """
    eps = jax.random.normal(key, (mean.shape[0], num, mean.shape[-1]))
    std = jnp.exp(log_std)[:, None]
    pre = mean[:, None] + std * eps
    gaussian_logp = -0.5 * (jnp.square(eps) + 2 * log_std[:, None] + jnp.log(2 * jnp.pi))
    # log(1 - tanh(x)^2) computed stably as 2 (log 2 - x - softplus(-2x))
    correction = 2.0 * (jnp.log(2.0) - pre - jax.nn.softplus(-2.0 * pre))
    return jnp.tanh(pre), jnp.sum(gaussian_logp - correction, axis=-1)


class ValueHead(nn.Module):
    """V(features): MLP -> scalar, (B, D) -> (B,)."""

    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        x = features
        for width in self.hidden:
            x = nn.swish(nn.Dense(width)(x))
        return nn.Dense(1, name="value")(x)[..., 0]
