"""IQL: expectile regression of V on the target critic, and a TD critic on V(s').

V has its own FiLM-ResNet encoder (same architecture as the critic's) and an MLP head. Only the
Q-network is deployed; no policy is extracted. Batch format as in ``calql``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vgps_critic.config import CriticConfig
from vgps_critic.model import MLP, EncoderWrapper, QNetwork, init_params
from vgps_training.agents import losses
from vgps_training.agents.common import TrainState, apply_gradients, optimizer


@dataclasses.dataclass(frozen=True)
class IQLConfig:
    discount: float = 0.98
    expectile: float = 0.7
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    warmup_steps: int = 2000
    target_update_rate: float = 0.005

    def __post_init__(self) -> None:
        if not 0.0 < self.expectile < 1.0:
            raise ValueError(f"IQLConfig.expectile={self.expectile!r} must be in (0, 1)")
        if not 0.0 <= self.discount < 1.0:
            raise ValueError(f"IQLConfig.discount={self.discount!r} must be in [0, 1)")
        if not 0.0 < self.target_update_rate <= 1.0:
            raise ValueError(f"IQLConfig.target_update_rate={self.target_update_rate!r} "
                             "must be in (0, 1]")
        for field in ("critic_lr", "value_lr"):
            if not getattr(self, field) > 0:
                raise ValueError(f"IQLConfig.{field}={getattr(self, field)!r} must be > 0")


class ValueNetwork(nn.Module):
    """V(s, l): FiLM-ResNet encoder, MLP, scalar."""

    cfg: CriticConfig

    @nn.compact
    def __call__(self, images: jax.Array, language: jax.Array) -> jax.Array:
        features = EncoderWrapper(self.cfg, name="encoder")(images, language)
        return nn.Dense(1)(MLP(self.cfg.mlp_hidden, name="network")(features))[..., 0]


class IQLAgent:
    def __init__(self, critic_config: CriticConfig, config: IQLConfig | None = None) -> None:
        self.critic_config = critic_config
        self.config = config or IQLConfig()
        self.critic = QNetwork(critic_config)
        self.value = ValueNetwork(critic_config)
        self.optimizers = {"critic": optimizer(self.config.critic_lr, self.config.warmup_steps),
                           "value": optimizer(self.config.value_lr, self.config.warmup_steps)}

    def init(self, key: jax.Array) -> TrainState:
        k_critic, k_value = jax.random.split(key)
        critic = init_params(self.critic_config, k_critic)
        h, w = self.critic_config.image_size
        value = self.value.init(k_value, jnp.zeros((1, h, w, 3), jnp.uint8),
                                jnp.zeros((1, self.critic_config.language_dim)))["params"]
        params = {"critic": critic, "value": value}
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          target_critic=jax.tree_util.tree_map(jnp.array, critic),
                          opt_state={k: o.init(params[k]) for k, o in self.optimizers.items()})

    def value_loss(self, value_params: dict, state: TrainState,
                   batch: dict[str, jax.Array]) -> tuple[jax.Array, dict]:
        q = self.critic.apply({"params": state.target_critic}, batch["image"], batch["language"],
                              batch["action"]).min(axis=0)
        v = self.value.apply({"params": value_params}, batch["image"], batch["language"])
        loss = losses.expectile_loss(jax.lax.stop_gradient(q) - v, self.config.expectile)
        return loss, {"value_loss": loss, "v": v.mean()}

    def critic_loss(self, critic_params: dict, state: TrainState, batch: dict[str, jax.Array],
                    key: jax.Array | None = None) -> tuple[jax.Array, dict]:
        del key  # deterministic; the argument keeps the agents' signatures alike
        next_v = self.value.apply({"params": state.params["value"]}, batch["next_image"],
                                  batch["language"])
        target = losses.td_target(batch["reward"], batch["mask"], next_v, self.config.discount)
        q = self.critic.apply({"params": critic_params}, batch["image"], batch["language"],
                              batch["action"])
        loss = losses.td_loss(q, target)
        return loss, {"critic_loss": loss, "td_loss": loss, "q_data": q.mean(),
                      "td_target": target.mean()}

    def update(self, state: TrainState, batch: dict[str, Any],
               key: jax.Array) -> tuple[TrainState, dict]:
        del key  # IQL's losses are deterministic
        (_, v_metrics), v_grads = jax.value_and_grad(self.value_loss, has_aux=True)(
            state.params["value"], state, batch)
        (_, c_metrics), c_grads = jax.value_and_grad(self.critic_loss, has_aux=True)(
            state.params["critic"], state, batch)
        grads = {"critic": c_grads, "value": v_grads}
        return (apply_gradients(self.optimizers, state, grads, self.config.target_update_rate),
                {**v_metrics, **c_metrics})

    def deployable_params(self, state: TrainState) -> dict:
        return state.target_critic
