"""Cal-QL (and plain CQL): the V-GPS critic-training agent.

One jitted ``update(state, batch, key) -> (state, metrics)``. The image of every state is
encoded once per step and reused for all the actions the regulariser evaluates (dataset action,
uniform actions, policy actions at s and at s'); the actor is a tanh-Gaussian head on the
critic's (stop-gradient) features and is never deployed.

Batch (every array has the global batch B on axis 0; actions are critic-normalised to [-1, 1]):
    image, next_image   uint8 (B, H, W, 3)
    language            float32 (B, L)
    action              float32 (B, A)
    reward, mask        float32 (B,)     mask = 0 where s' is terminal
    mc_return           float32 (B,)     Monte-Carlo return (Cal-QL's lower bound)
    next_action         float32 (B, A)   the data's action at s' (only for td_backup="data")
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax

from vgps_critic.config import CriticConfig
from vgps_critic.model import QNetwork, init_params
from vgps_training.agents import losses
from vgps_training.agents.actor import TanhGaussianActor, ValueHead, sample_tanh_gaussian
from vgps_training.agents.common import TrainState, apply_gradients, optimizer


@dataclasses.dataclass(frozen=True)
class CalQLConfig:
    """Hyperparameters; defaults are the paper's (Appendix B and its public config)."""

    discount: float = 0.98
    cql_alpha: float = 5.0  # weight of the conservative regulariser
    calql: bool = True  # clip policy-action Q from below by the MC return (False: plain CQL)
    cql_n_actions: int = 4  # uniform, pi(s) and pi(s') samples per state, each
    cql_temperature: float = 1.0
    max_target_backup: bool = True  # TD target: max over cql_n_actions samples of pi(s')
    # "policy": the TD target bootstraps from the learned actor's actions at s' (Cal-QL);
    # "data": from the action the data took next (in-sample, SARSA-like: the behaviour's value,
    # which V-GPS's argmax over candidates then improves on). A critic continued from a
    # deployed one has no actor, and a fresh actor's targets pull the parent's values apart.
    # "expectile": from V(s'), a value head on the critic's (stop-gradient) features fitted by
    # expectile regression to the target critic's Q at the data's actions (IQL's value): an
    # in-sample estimate of the best the data's actions do at s', not their average. V-GPS
    # executes the best of K candidates, not the behaviour's next action, and "data" learns
    # the behaviour's value: round 3 of the sim flywheel traced its early gripper close on the
    # way to the object to that target. Measured after it: "expectile" keeps the gripper open
    # there and still steers stack_blocks worse than "data" (docs/flywheel.md).
    td_backup: Literal["policy", "data", "expectile"] = "policy"
    expectile: float = 0.9  # td_backup="expectile": 0.5 is the mean (as "data"), -> 1 the max
    value_lr: float = 3e-4
    critic_lr: float = 3e-4
    actor_lr: float = 1e-4
    temperature_lr: float = 3e-4
    warmup_steps: int = 2000  # linear learning-rate warm-up
    # The critic holds still this many steps first, while the actor (and temperature) learn to
    # maximise it: a critic continued from a deployed one (--init-from) comes without its actor,
    # and a fresh actor's actions would make the first TD targets and regulariser garbage.
    critic_delay_steps: int = 0
    # Hold the critic's image-language encoder (ResNet + FiLM) at its initial weights and train
    # only the Q head on its features (a fine-tune that should keep the parent's features; about
    # 40 % faster per step). Round 1 of the sim flywheel measured it: it did not keep the
    # parent's choice of grasp at K = 50 - that drift is in the head (see anchor_weight).
    freeze_encoder: bool = False
    # Stay near the parent (--init-from) away from the data: anchor_weight * mean squared
    # difference, head by head, between this critic's Q and the parent's at the regulariser's
    # actions (uniform, pi(s), pi(s')) and at the data's actions perturbed by Gaussian noise of
    # std anchor_noise (normalised units) - the neighbours a policy's other candidates live in.
    # The data's own TD targets still move Q where the new data says something.
    anchor_weight: float = 0.0
    anchor_noise: float = 0.2
    # Anchor the shape of Q over a state's actions, not its level: both critics' Q have their
    # mean over the anchor actions (per state and head) removed before the difference, so the
    # level may follow the data while the parent's ranking among a state's actions is held.
    # Round 3 of the sim flywheel measured it against the value anchor (same data, weight 0.3):
    # it held the ranking that matters on stack_blocks less, not more (see docs/flywheel.md).
    anchor_centered: bool = False
    # Also anchor at the noisy data actions with the gripper flipped (the last action dimension,
    # Bridge's gripper, negated: the same arm motion, the other gripper command); the noise
    # never crosses to the other command. Measured in the sim flywheel: with it the anchor's
    # weight matters; member 1 at weight 3 screened 0.73 on stack_blocks at K = 50 (its parent
    # 0.74; 0.49 without the flip at 0.3), but on more episodes its fine-tunes stay below the
    # shipped ensemble there: 0.05-0.09 after two rounds, 0.02 after a third with the hover
    # take-overs (benchmarks/results/flywheel_sim_round4.md, flywheel_sim_round5.md).
    anchor_flip_gripper: bool = False
    # Hold the parent at the candidates the policy itself proposed at each recorded step (the
    # set the deployed argmax chooses from; batch["candidates"], from data.candidates > 0 and a
    # deployment dataset built with --candidates; steps without them add nothing). Weight 0:
    # off. Temperature 0: mean squared difference of Q, as anchor_weight does elsewhere;
    # > 0: KL divergence from the parent's softmax(Q / T) over a state's candidates to this
    # critic's, which holds the parent's ranking where the argmax looks (the top) and lets the
    # level follow the data. Measured on round 3 of the sim flywheel (T 0.1, on top of the
    # anchor at weight 3 with the flip): the fine-tune's closing choice at stack_blocks' grasp
    # pose went from 23 % to 35 % (W 2; the parent 46 %), its stack_blocks success at K = 50
    # did not follow (0.73, 0.70 at W 10; flywheel_sim_round6.md).
    candidate_anchor_weight: float = 0.0
    candidate_anchor_temperature: float = 0.0
    # Anchor the candidates' motion only: their gripper command (the last dimension) replaced
    # by the one the data executed, so the parent's ranking of where the arm goes is held and
    # the gripper decision is left to the data. Measured on round 3 of the sim flywheel (W 2,
    # T 0.1, with more stack_blocks data): the first fine-tune higher than its parent on every
    # task at K = 10 and 50 on fresh seeds (flywheel_sim_round6.md).
    candidate_anchor_motion_only: bool = False
    target_update_rate: float = 0.005  # Polyak rate
    actor_hidden: tuple[int, ...] = (256, 256)
    init_temperature: float = 1.0
    target_entropy: float | None = None  # default -action_dim
    # Encode each state's image once and reuse it for every action the regulariser scores.
    # False re-encodes the image for every action, as a repeat-the-image design would (slow;
    # kept to measure the saving and to prove both give the same loss).
    share_encoding: bool = True

    def __post_init__(self) -> None:
        checks = {
            "discount": 0.0 <= self.discount < 1.0,
            "cql_alpha": self.cql_alpha >= 0.0,
            "cql_n_actions": self.cql_n_actions >= 1,
            "cql_temperature": self.cql_temperature > 0.0,
            "critic_lr": self.critic_lr > 0.0,
            "actor_lr": self.actor_lr > 0.0,
            "temperature_lr": self.temperature_lr > 0.0,
            "warmup_steps": self.warmup_steps >= 0,
            "critic_delay_steps": self.critic_delay_steps >= 0,
            "target_update_rate": 0.0 < self.target_update_rate <= 1.0,
            "init_temperature": self.init_temperature > 0.0,
            "td_backup": self.td_backup in ("policy", "data", "expectile"),
            "expectile": 0.0 < self.expectile < 1.0,
            "value_lr": self.value_lr > 0.0,
            "anchor_weight": self.anchor_weight >= 0.0,
            "anchor_noise": self.anchor_noise >= 0.0,
            "candidate_anchor_weight": self.candidate_anchor_weight >= 0.0,
            "candidate_anchor_temperature": self.candidate_anchor_temperature >= 0.0,
        }
        for field, ok in checks.items():
            if not ok:
                raise ValueError(f"CalQLConfig.{field}={getattr(self, field)!r} is out of range")
        object.__setattr__(self, "actor_hidden", tuple(self.actor_hidden))


class CalQLAgent:
    """Builds the networks and optimisers; ``init`` and ``update`` are pure and jittable."""

    def __init__(self, critic_config: CriticConfig, config: CalQLConfig | None = None) -> None:
        self.critic_config = critic_config
        self.config = config or CalQLConfig()
        self.critic = QNetwork(critic_config)
        self.actor = TanhGaussianActor(critic_config.action_dim, self.config.actor_hidden)
        self.value = ValueHead(self.config.actor_hidden)
        cfg = self.config
        self.optimizers = {
            "critic": optimizer(cfg.critic_lr, cfg.warmup_steps, cfg.critic_delay_steps),
            "actor": optimizer(cfg.actor_lr, cfg.warmup_steps),
            "log_alpha": optimizer(cfg.temperature_lr, cfg.warmup_steps),
        }
        if cfg.td_backup == "expectile":  # V learns during the critic's delay, as the actor does
            self.optimizers["value"] = optimizer(cfg.value_lr, cfg.warmup_steps)
        # The parent critic's parameters (anchor_weight or candidate_anchor_weight > 0): set by
        # the trainer from --init-from; constants of the jitted update, never trained.
        self.anchor: dict | None = None
        self.target_entropy = (cfg.target_entropy if cfg.target_entropy is not None
                               else -float(critic_config.action_dim))

    def init(self, key: jax.Array) -> TrainState:
        k_critic, k_actor = jax.random.split(key)
        critic = init_params(self.critic_config, k_critic)
        features = jnp.zeros((1, self.critic_config.feature_dim), jnp.float32)
        params = {
            "critic": critic,
            "actor": self.actor.init(k_actor, features)["params"],
            "log_alpha": jnp.log(jnp.asarray(self.config.init_temperature, jnp.float32)),
        }
        if "value" in self.optimizers:
            params["value"] = self.value.init(jax.random.fold_in(k_actor, 1), features)["params"]
        opt_state = {name: opt.init(params[name]) for name, opt in self.optimizers.items()}
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          target_critic=jax.tree_util.tree_map(jnp.array, critic),
                          opt_state=opt_state)

    # -- pieces ---------------------------------------------------------------------------------
    def _encode(self, critic_params: dict, images: jax.Array, language: jax.Array) -> jax.Array:
        return self.critic.apply({"params": critic_params}, images, language, method="encode")

    def _q(self, critic_params: dict, features: jax.Array, actions: jax.Array) -> jax.Array:
        """features (B, D), actions (B, N, A) -> Q (E, B, N), one encoder pass for all N."""
        b, n, a = actions.shape
        flat_features = jnp.repeat(features, n, axis=0)
        q = self.critic.apply({"params": critic_params}, flat_features,
                              actions.reshape(b * n, a), method="q_from_features")
        return q.reshape(q.shape[0], b, n)

    def _q_reencoded(self, critic_params: dict, batch: dict[str, jax.Array],
                     actions: jax.Array) -> jax.Array:
        """Like ``_q`` but runs the encoder again for every action: (E, B, N)."""
        b, n, a = actions.shape
        images = jnp.repeat(batch["image"], n, axis=0)
        language = jnp.repeat(batch["language"], n, axis=0)
        q = self.critic.apply({"params": critic_params}, images, language,
                              actions.reshape(b * n, a))
        return q.reshape(q.shape[0], b, n)

    def _policy(self, actor_params: dict, features: jax.Array, key: jax.Array, n: int):
        mean, log_std = self.actor.apply({"params": actor_params},
                                         jax.lax.stop_gradient(features))
        return sample_tanh_gaussian(mean, log_std, key, n)

    # -- losses ---------------------------------------------------------------------------------
    def critic_loss(self, critic_params: dict, state: TrainState, batch: dict[str, jax.Array],
                    key: jax.Array) -> tuple[jax.Array, dict]:
        cfg = self.config
        n, a = cfg.cql_n_actions, self.critic_config.action_dim
        k_next, k_rand, k_pi, k_next_pi = jax.random.split(key, 4)
        actor = state.params["actor"]
        features = self._encode(critic_params, batch["image"], batch["language"])
        if cfg.freeze_encoder:  # no gradient reaches the encoder: Adam leaves it where it is
            features = jax.lax.stop_gradient(features)
        next_features = jax.lax.stop_gradient(
            self._encode(critic_params, batch["next_image"], batch["language"]))

        # TD target: V(s') (expectile), else the target critic at the data's next action or at
        # pi(s') (max over samples if max_target_backup)
        if cfg.td_backup == "expectile":
            next_q = self.value.apply({"params": state.params["value"]}, next_features)
        else:
            if cfg.td_backup == "data":
                if "next_action" not in batch:
                    raise ValueError("CalQLConfig.td_backup='data' needs batch['next_action']")
                next_actions = batch["next_action"][:, None]
            else:
                n_backup = n if cfg.max_target_backup else 1
                next_actions, _ = self._policy(actor, next_features, k_next, n_backup)
            target_next = self._encode(state.target_critic, batch["next_image"],
                                       batch["language"])
            next_q = self._q(state.target_critic, target_next, next_actions).min(
                axis=0).max(axis=-1)
        target = losses.td_target(batch["reward"], batch["mask"], next_q, cfg.discount)

        q_data = self._q(critic_params, features, batch["action"][:, None])[..., 0]  # (E, B)
        td = losses.td_loss(q_data, target)

        b = q_data.shape[1]
        random_actions = jax.random.uniform(k_rand, (b, n, a), minval=-1.0, maxval=1.0)
        pi_actions, pi_logp = self._policy(actor, features, k_pi, n)
        next_pi_actions, next_pi_logp = self._policy(actor, next_features, k_next_pi, n)
        all_actions = jax.lax.stop_gradient(
            jnp.concatenate([random_actions, pi_actions, next_pi_actions], axis=1))
        if cfg.share_encoding:
            q_all = self._q(critic_params, features, all_actions)  # (E, B, 3N)
        else:
            q_all = self._q_reencoded(critic_params, batch, all_actions)
        cql, cql_metrics = losses.cql_regularizer(
            q_data, q_all[..., :n], q_all[..., n:2 * n], pi_logp, q_all[..., 2 * n:],
            next_pi_logp, batch["mc_return"] if cfg.calql else None, a, cfg.cql_temperature)
        loss = td + cfg.cql_alpha * cql
        metrics = {"critic_loss": loss, "td_loss": td, "cql_loss": cql,
                   "q_data": q_data.mean(), "td_target": target.mean(), **cql_metrics}
        anchored = cfg.anchor_weight > 0 or cfg.candidate_anchor_weight > 0
        if anchored and self.anchor is None:
            raise ValueError("CalQLConfig.anchor_weight / candidate_anchor_weight > 0 needs the "
                             "parent critic (train with --init-from)")
        # the parent's image-language features: encoded once for both anchors
        parent = self._encode(self.anchor, batch["image"], batch["language"]) if anchored else None
        if cfg.anchor_weight > 0:
            anchor = self._anchor_loss(critic_params, features, parent, batch, all_actions,
                                       q_all, jax.random.fold_in(key, 5))
            loss = loss + cfg.anchor_weight * anchor
            metrics.update(critic_loss=loss, anchor_loss=anchor)
        if cfg.candidate_anchor_weight > 0:
            held = self._candidate_anchor_loss(critic_params, features, parent, batch)
            loss = loss + cfg.candidate_anchor_weight * held
            metrics.update(critic_loss=loss, candidate_anchor_loss=held)
        return loss, metrics

    def _candidate_anchor_loss(self, critic_params: dict, features: jax.Array,
                               parent_features: jax.Array,
                               batch: dict[str, jax.Array]) -> jax.Array:
        """The difference to the parent at each state's recorded candidates (masked means)."""
        if "candidates" not in batch:
            raise ValueError("CalQLConfig.candidate_anchor_weight > 0 needs batch['candidates']"
                             " (set data.candidates > 0 and build the deployment dataset with "
                             "--candidates)")
        candidates = jax.lax.stop_gradient(jnp.asarray(batch["candidates"]))
        if self.config.candidate_anchor_motion_only:  # every candidate the executed gripper
            candidates = candidates.at[..., -1].set(batch["action"][:, None, -1])
        mask = batch["candidate_mask"].astype(jnp.float32)  # (B, C)
        q = self._q(critic_params, features, candidates)  # (E, B, C)
        q_parent = jax.lax.stop_gradient(self._q(self.anchor, parent_features, candidates))
        tau = self.config.candidate_anchor_temperature
        if tau == 0:
            per_candidate = (q - q_parent) ** 2 * mask
            return per_candidate.sum() / jnp.maximum(q.shape[0] * mask.sum(), 1.0)
        masked = mask > 0
        log_p = jax.nn.log_softmax(jnp.where(masked, q_parent / tau, -1e9), axis=-1)
        log_q = jax.nn.log_softmax(jnp.where(masked, q / tau, -1e9), axis=-1)
        kl = jnp.where(masked, jnp.exp(log_p) * (log_p - log_q), 0.0).sum(axis=-1)  # (E, B)
        states = (mask.sum(axis=-1) > 0).astype(jnp.float32)  # steps with candidates
        return (kl * states).sum() / jnp.maximum(q.shape[0] * states.sum(), 1.0)

    def _anchor_loss(self, critic_params: dict, features: jax.Array, parent_features: jax.Array,
                     batch: dict[str, jax.Array], actions: jax.Array, q_actions: jax.Array,
                     key: jax.Array) -> jax.Array:
        """Mean squared difference to the parent's Q at ``actions`` (whose Q is ``q_actions``)
        and at noisy copies of the data's actions."""
        cfg = self.config
        b, n, a = actions.shape[0], cfg.cql_n_actions, self.critic_config.action_dim
        noise = cfg.anchor_noise * jax.random.normal(key, (b, n, a))
        noisy = jax.lax.stop_gradient(jnp.clip(batch["action"][:, None] + noise, -1.0, 1.0))
        if cfg.anchor_flip_gripper:
            noisy = jnp.concatenate([noisy, noisy.at[..., -1].multiply(-1.0)], axis=1)
        q = jnp.concatenate([q_actions, self._q(critic_params, features, noisy)], axis=-1)
        q_parent = jax.lax.stop_gradient(
            self._q(self.anchor, parent_features, jnp.concatenate([actions, noisy], axis=1)))
        if cfg.anchor_centered:  # (E, B, 2N): compare shapes over each state's actions
            q = q - q.mean(axis=-1, keepdims=True)
            q_parent = q_parent - q_parent.mean(axis=-1, keepdims=True)
        return jnp.mean((q - q_parent) ** 2)

    def actor_loss(self, actor_params: dict, state: TrainState, batch: dict[str, jax.Array],
                   key: jax.Array) -> tuple[jax.Array, dict]:
        critic = jax.lax.stop_gradient(state.params["critic"])
        features = jax.lax.stop_gradient(
            self._encode(critic, batch["image"], batch["language"]))
        actions, logp = self._policy(actor_params, features, key, 1)
        q = self._q(critic, features, actions).min(axis=0)[:, 0]
        alpha = jnp.exp(jax.lax.stop_gradient(state.params["log_alpha"]))
        loss = jnp.mean(alpha * logp[:, 0] - q)
        return loss, {"actor_loss": loss, "entropy": -logp.mean(), "alpha": alpha,
                      "_logp": logp[:, 0]}

    def value_loss(self, value_params: dict, state: TrainState,
                   batch: dict[str, jax.Array]) -> tuple[jax.Array, dict]:
        """Expectile regression of V(s) on the target critic's Q(s, a_data) (min over heads)."""
        critic = jax.lax.stop_gradient(state.params["critic"])
        features = jax.lax.stop_gradient(
            self._encode(critic, batch["image"], batch["language"]))
        target_features = self._encode(state.target_critic, batch["image"], batch["language"])
        q = self._q(state.target_critic, target_features, batch["action"][:, None])
        q = jax.lax.stop_gradient(q.min(axis=0)[:, 0])
        v = self.value.apply({"params": value_params}, features)
        loss = losses.expectile_loss(q - v, self.config.expectile)
        return loss, {"value_loss": loss, "v": v.mean()}

    # -- the update -------------------------------------------------------------------------------
    def update(self, state: TrainState, batch: dict[str, Any],
               key: jax.Array) -> tuple[TrainState, dict]:
        k_critic, k_actor = jax.random.split(jax.random.fold_in(key, state.step))
        (_, c_metrics), c_grads = jax.value_and_grad(self.critic_loss, has_aux=True)(
            state.params["critic"], state, batch, k_critic)
        (_, a_metrics), a_grads = jax.value_and_grad(self.actor_loss, has_aux=True)(
            state.params["actor"], state, batch, k_actor)
        logp = a_metrics.pop("_logp")
        t_loss, t_grad = jax.value_and_grad(losses.temperature_loss)(
            state.params["log_alpha"], logp, self.target_entropy)
        grads = {"critic": c_grads, "actor": a_grads, "log_alpha": t_grad}
        metrics = {**c_metrics, **a_metrics, "temperature_loss": t_loss,
                   "critic_grad_norm": optax.global_norm(c_grads)}
        if "value" in self.optimizers:
            (_, v_metrics), grads["value"] = jax.value_and_grad(self.value_loss, has_aux=True)(
                state.params["value"], state, batch)
            metrics.update(v_metrics)
        return apply_gradients(self.optimizers, state, grads,
                               self.config.target_update_rate), metrics

    def deployable_params(self, state: TrainState) -> dict:
        """The parameters V-GPS deploys: the target critic (as the paper's code does)."""
        return state.target_critic
