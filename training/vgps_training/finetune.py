"""Continue training from a deployed critic (``vgps-train --init-from CRITIC``).

The parent is a critic checkpoint directory, an ensemble directory plus a member index
(``--init-member I``), or an ensemble member's directory (``ENSEMBLE/members/I``). Before any
data is read the parent's card is checked against the run's configuration: architecture, image
size, language encoder and discount must agree, and the first mismatch is named. The action
normalisation bounds of every dataset that does not set its own come from the parent's card,
and the deployment dataset's bounds must equal them: the deployed critic's action space never
shifts. At step 0 the critic and its target both hold the parent's (deployed) parameters; the
actor (Cal-QL) or value network (IQL) and the optimiser states start fresh. A run directory that
already holds checkpoints resumes from them instead.

Usage::

    parent = load_parent("models/sim_critic_prev", member=0)   # an ensemble: choose a member
    config = resolve_config(config, parent)          # bounds from the parent, checks
    state = initial_state(agent.init(key), parent)   # critic + target = parent's parameters
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vgps_critic.checkpoint import CheckpointError, CriticCard, load_checkpoint, read_card
from vgps_critic.ensemble import is_ensemble, read_ensemble_card
from vgps_critic.language import ENCODER_DIMS


@dataclasses.dataclass(frozen=True)
class ParentCritic:
    """The critic a run continues from."""

    path: Path  # the single critic's checkpoint directory
    source: str  # what was given (an ensemble directory or a critic directory)
    member: int | None  # the ensemble member, when the parent is one
    card: CriticCard

    @property
    def critic_id(self) -> str:
        return self.card.critic_id

    @property
    def bounds(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return tuple(self.card.action_space.low), tuple(self.card.action_space.high)

    def lineage(self) -> dict[str, Any]:
        """What run.json and the exported card record about the parent."""
        return {"critic_id": self.critic_id, "name": self.card.name, "path": str(self.path),
                "source": self.source, "member": self.member,
                "steps": self.card.training.get("steps"),
                "action_space": {"low": list(self.bounds[0]), "high": list(self.bounds[1])}}

    def params(self) -> dict:
        """The parent's parameters (numpy), checked against its card and hash."""
        return load_checkpoint(self.path)[1]


def load_parent(path: str | Path, member: int | None = None) -> ParentCritic:
    """Open the parent critic's card (parameters are read later by ``initial_state``).

    Args:
        path: a critic checkpoint directory, an ensemble directory or ``ENSEMBLE/members/I``.
        member: the ensemble member to continue from (required for an ensemble directory).

    Raises:
        ValueError: an ensemble without ``member``, a member out of range, or ``member`` given
            for a single critic; ``CheckpointError`` (a ValueError) for a bad checkpoint.
    """
    path = Path(path)
    if is_ensemble(path):
        ensemble = read_ensemble_card(path)
        count = len(ensemble.member_paths)
        if member is None:
            raise ValueError(f"--init-from {path} is an ensemble of {count} critics: choose one "
                             f"with --init-member I (0..{count - 1}) or give "
                             f"{path}/{ensemble.member_paths[0]}")
        if not 0 <= member < count:
            raise ValueError(f"--init-member {member}: {path} has members 0..{count - 1}")
        return ParentCritic(path=path / ensemble.member_paths[member], source=str(path),
                            member=member, card=ensemble.member_cards[member])
    if member is not None:
        raise ValueError(f"--init-member {member}: {path} is a single critic, not an ensemble")
    card = read_card(path)
    inferred = int(path.name) if path.parent.name == "members" and path.name.isdigit() else None
    source = str(path.parent.parent) if inferred is not None else str(path)
    return ParentCritic(path=path, source=source, member=inferred, card=card)


def check_compatible(config: Any, parent: ParentCritic) -> None:
    """Fail with the first difference between the run's critic and the parent's.

    Args:
        config: the run's ``TrainConfig``.
        parent: the parent critic.

    Raises:
        ValueError: naming the field, the config's value and the parent's.
    """
    card = parent.card
    where = f"--init-from {parent.source}"
    if config.language_encoder != card.language_encoder:
        raise ValueError(f"{where}: language_encoder={config.language_encoder!r} in the config "
                         f"but {card.language_encoder!r} in the parent critic (the language "
                         "encoder is part of the network's input)")
    dim = ENCODER_DIMS.get(config.language_encoder, config.critic.language_dim)
    mine = dataclasses.replace(config.critic, language_dim=dim).to_dict()
    theirs = card.config.to_dict()
    for field in sorted(mine):
        if mine[field] != theirs.get(field):
            raise ValueError(f"{where}: critic.{field}={mine[field]!r} in the config but "
                             f"{theirs.get(field)!r} in the parent critic; use the parent's "
                             f"architecture (--set critic.{field}=...)")
    discount = card.reward.get("discount")
    if discount is not None and abs(float(discount) - config.agent_config.discount) > 1e-9:
        raise ValueError(f"{where}: {config.agent}.discount={config.agent_config.discount} in "
                         f"the config but the parent critic was trained with discount "
                         f"{discount}; its Q-values would change scale")


def resolve_config(config: Any, parent: ParentCritic) -> Any:
    """The run's config with the parent's bounds on every dataset that sets none (checked)."""
    check_compatible(config, parent)
    bounds = tuple(tuple(float(v) for v in side) for side in parent.bounds)
    datasets = tuple(dataclasses.replace(d, action_bounds=bounds) if d.action_bounds is None
                     else d for d in config.data.datasets)
    return dataclasses.replace(config, data=dataclasses.replace(config.data, datasets=datasets))


def check_deploy_bounds(name: str, bounds: Any, parent: ParentCritic) -> None:
    """The deployment dataset's normalisation bounds must be the parent's.

    Raises:
        ValueError: naming the dataset, its bounds and the parent's.
    """
    low, high = (np.asarray(b, np.float64) for b in bounds)
    p_low, p_high = (np.asarray(b, np.float64) for b in parent.bounds)
    if not (np.allclose(low, p_low, atol=1e-6) and np.allclose(high, p_high, atol=1e-6)):
        raise ValueError(f"dataset {name!r} (the deployment dataset) is normalised with bounds "
                         f"low={low.tolist()} high={high.tolist()} but the parent critic "
                         f"{parent.critic_id} uses low={p_low.tolist()} high={p_high.tolist()};"
                         " leave its action_bounds unset so the parent's apply")


def initial_state(state: Any, parent: ParentCritic) -> Any:
    """``state`` with the critic and the target critic set to the parent's parameters.

    Args:
        state: a freshly initialised ``TrainState`` of the run's agent.
        parent: the parent critic (its parameters are read and verified here).

    Returns:
        The new state; optimiser states are the fresh ones (Adam's moments start at zero).
    """
    params = parent.params()
    expected = jax.tree_util.tree_structure(state.params["critic"])
    if jax.tree_util.tree_structure(params) != expected:
        raise CheckpointError(f"{parent.path}: parameter tree differs from the run's critic")
    critic = jax.tree_util.tree_map(lambda fresh, p: jnp.asarray(p, dtype=fresh.dtype),
                                    state.params["critic"], params)
    target = jax.tree_util.tree_map(jnp.array, critic)
    return state.replace(params={**state.params, "critic": critic}, target_critic=target)


__all__ = ["ParentCritic", "check_compatible", "check_deploy_bounds", "initial_state",
           "load_parent", "resolve_config"]
