"""Validation of a critic during training: TD error, calibration against Monte-Carlo returns,
and how well it ranks transitions of successful episodes above those of failed ones."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def ranking_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(q_pos > q_neg) over all pairs (ties count one half); NaN if either side is empty."""
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if positive.size == 0 or negative.size == 0:
        return float("nan")
    diff = positive[:, None] - negative[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


class Validator:
    """Jitted validation of an agent's critic; reuse one instance for the whole run."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        critic = agent.critic

        @jax.jit
        def q_fn(params: dict, batch: dict[str, jax.Array]) -> jax.Array:
            return critic.apply({"params": params}, batch["image"], batch["language"],
                                batch["action"]).min(axis=0)

        self._q = q_fn
        self._loss = jax.jit(lambda p, s, b, k: agent.critic_loss(p, s, b, k)[1])

    def __call__(self, state: Any, batches: list[dict[str, np.ndarray]],
                 key: jax.Array) -> dict[str, float]:
        """Metrics over ``batches`` (agent format plus optional ``episode_success`` (B,)).

        Returns:
            ``td_loss`` (the agent's TD error on held-out data), ``q_mean``,
            ``mc_return_mean``, ``calibration_bias`` (mean Q - MC return of the deployed
            critic), ``calibration_mae``, ``calibration_corr`` (Pearson), and
            ``success_ranking_auc`` when successes and failures are both present.
        """
        deployed = self.agent.deployable_params(state)
        qs, mcs, succ, td = [], [], [], []
        for i, batch in enumerate(batches):
            agent_batch = {k: v for k, v in batch.items() if k != "episode_success"}
            qs.append(np.asarray(self._q(deployed, agent_batch)))
            mcs.append(np.asarray(batch["mc_return"]))
            if "episode_success" in batch:
                succ.append(np.asarray(batch["episode_success"]) > 0.5)
            metrics = self._loss(state.params["critic"], state, agent_batch,
                                 jax.random.fold_in(key, i))
            td.append(float(metrics["td_loss"]))
        q, mc = np.concatenate(qs), np.concatenate(mcs)
        corr = (float(np.corrcoef(q, mc)[0, 1]) if q.std() > 0 and mc.std() > 0
                else float("nan"))
        out = {
            "td_loss": float(np.mean(td)),
            "q_mean": float(q.mean()),
            "mc_return_mean": float(mc.mean()),
            "calibration_bias": float(np.mean(q - mc)),
            "calibration_mae": float(np.mean(np.abs(q - mc))),
            "calibration_corr": corr,
        }
        if succ:
            s = np.concatenate(succ)
            auc = ranking_auc(q[s], q[~s])
            if np.isfinite(auc):
                out["success_ranking_auc"] = auc
        return out
