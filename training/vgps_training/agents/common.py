"""What every critic-training agent shares: the train state, optimisers, the update step.

Usage:
    optimizers = {"critic": optimizer(3e-4, warmup=2000), ...}
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, target_critic=params[
        "critic"], opt_state={k: o.init(params[k]) for k, o in optimizers.items()})
    state = apply_gradients(optimizers, state, grads, target_update_rate=0.005)
"""

from __future__ import annotations

import flax
import jax
import optax

from vgps_training.agents import losses


@flax.struct.dataclass
class TrainState:
    """Parameters by group (Cal-QL: critic, actor, log_alpha; IQL: critic, value), the target
    critic and one optimiser state per group."""

    step: jax.Array
    params: dict
    target_critic: dict
    opt_state: dict


def optimizer(lr: float, warmup: int, delay: int = 0) -> optax.GradientTransformation:
    """Adam with a linear learning-rate warm-up over ``warmup`` steps (none when 0), after
    ``delay`` steps at learning rate 0 (the parameters do not move; Adam's moments do)."""
    schedule = optax.linear_schedule(0.0, lr, warmup) if warmup else optax.constant_schedule(lr)
    if delay:
        schedule = optax.join_schedules([optax.constant_schedule(0.0), schedule], [delay])
    return optax.adam(schedule)


def apply_gradients(optimizers: dict[str, optax.GradientTransformation], state: TrainState,
                    grads: dict, target_update_rate: float) -> TrainState:
    """One optimiser step per parameter group, then the Polyak update of the target critic."""
    params, opt_state = {}, {}
    for name, opt in optimizers.items():
        updates, opt_state[name] = opt.update(grads[name], state.opt_state[name],
                                              state.params[name])
        params[name] = optax.apply_updates(state.params[name], updates)
    target = losses.polyak(state.target_critic, params["critic"], target_update_rate)
    return TrainState(step=state.step + 1, params=params, target_critic=target,
                      opt_state=opt_state)
