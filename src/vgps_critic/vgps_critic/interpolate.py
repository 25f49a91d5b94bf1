"""Weight-space interpolation of a fine-tuned critic with the critic it was fine-tuned from.

    theta = (1 - w) * theta_old + w * theta_new

A critic continued from a deployed one (``vgps-train --init-from``) shares its parent's
architecture and starts at its parameters, so the straight line between the two stays in one
basin and every point on it is a working critic (Wortsman et al., "Robust fine-tuning of
zero-shot models", CVPR 2022: WiSE-FT). ``w = 1`` is the fine-tuned critic, ``w = 0`` the
parent; in between keeps what the new data taught at a fraction of the step away from the
parent, where an argmax over many candidates would otherwise find the new critic's errors.

Both critics must agree on everything but their parameters: architecture, image size, action
space and its bounds, language encoder. Ensembles are interpolated member by member (same
member count, paired in order) and keep the new ensemble's head reduction.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from vgps_critic.checkpoint import CheckpointError, CriticCard, load_checkpoint, save_checkpoint
from vgps_critic.ensemble import _member_path, is_ensemble, read_ensemble_card, save_ensemble

RULE = "theta = (1 - w) * theta_old + w * theta_new (weight-space interpolation, WiSE-FT)"


def _check_compatible(new: CriticCard, old: CriticCard) -> None:
    checks = {
        "architecture": new.config == old.config,
        "action space": new.action_space.to_dict() == old.action_space.to_dict(),
        "language encoder": new.language_encoder == old.language_encoder,
    }
    for what, ok in checks.items():
        if not ok:
            raise CheckpointError(
                f"cannot interpolate {new.critic_id} with {old.critic_id}: their {what} differ "
                "(interpolation needs a critic fine-tuned from the other)")


def interpolate_params(new: dict, old: dict, weight: float) -> dict:
    """``(1 - weight) * old + weight * new`` leaf by leaf; the trees must match exactly."""
    if not 0.0 <= weight <= 1.0 or not np.isfinite(weight):
        raise ValueError(f"interpolation weight {weight!r} must be in [0, 1]")
    new_leaves, new_def = jax.tree_util.tree_flatten_with_path(new)
    old_leaves, old_def = jax.tree_util.tree_flatten_with_path(old)
    if new_def != old_def:
        raise CheckpointError("the two critics' parameter trees differ")
    out = []
    for (path, a), (_, b) in zip(new_leaves, old_leaves):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            raise CheckpointError(f"parameter {jax.tree_util.keystr(path)} differs in shape or "
                                  f"dtype: {a.shape} {a.dtype} vs {b.shape} {b.dtype}")
        if not np.issubdtype(a.dtype, np.floating):
            raise CheckpointError(f"parameter {jax.tree_util.keystr(path)} is not a float array")
        mixed = (1.0 - weight) * b.astype(np.float64) + weight * a.astype(np.float64)
        out.append(mixed.astype(a.dtype))
    return jax.tree_util.tree_unflatten(new_def, out)


def interpolate_checkpoint(new: str | os.PathLike, old: str | os.PathLike, weight: float,
                           out: str | os.PathLike, name: str | None = None,
                           overwrite: bool = False) -> CriticCard:
    """Write the interpolated single critic to ``out``; its card is the new critic's with the
    interpolation (weight, both ids, the rule) added under ``training``."""
    new_card, new_params = load_checkpoint(new, verify=True)
    old_card, old_params = load_checkpoint(old, verify=True)
    _check_compatible(new_card, old_card)
    params = interpolate_params(new_params, old_params, weight)
    record = {"weight": float(weight), "new": new_card.critic_id, "old": old_card.critic_id,
              "rule": RULE}
    card = dataclasses.replace(new_card, name=name or new_card.name,
                               training={**new_card.training, "interpolation": record})
    return save_checkpoint(out, card, params, overwrite=overwrite)


def interpolate(new: str | os.PathLike, old: str | os.PathLike, weight: float,
                out: str | os.PathLike, name: str | None = None,
                overwrite: bool = False) -> dict[str, Any]:
    """Interpolate two critics or two ensembles (member by member). Returns a summary:
    ``{"critic_id", "members": [ids], "weight"}``."""
    new, old = Path(new), Path(old)
    if is_ensemble(new) != is_ensemble(old):
        raise CheckpointError(f"{new} and {old}: one is an ensemble and the other is not")
    if not is_ensemble(new):
        card = interpolate_checkpoint(new, old, weight, out, name, overwrite)
        return {"critic_id": card.critic_id, "members": [card.critic_id], "weight": weight}
    new_card, old_card = read_ensemble_card(new), read_ensemble_card(old)
    if len(new_card.member_paths) != len(old_card.member_paths):
        raise CheckpointError(f"{new} has {len(new_card.member_paths)} members and {old} has "
                              f"{len(old_card.member_paths)}; interpolation pairs them in order")
    with tempfile.TemporaryDirectory(prefix="vgps-interpolate-") as tmp:
        members = []
        for i, (a, b) in enumerate(zip(new_card.member_paths, old_card.member_paths)):
            member = Path(tmp) / str(i)
            interpolate_checkpoint(_member_path(new, a), _member_path(old, b), weight, member)
            members.append(member)
        notes = {**new_card.notes, "interpolation": {
            "weight": float(weight), "new": new_card.critic_id, "old": old_card.critic_id,
            "rule": RULE}}
        card = save_ensemble(out, members, name or new_card.name,
                             head_reduction=new_card.head_reduction, notes=notes,
                             overwrite=overwrite, reduction=new_card.reduction)
    return {"critic_id": card.critic_id, "members": [c.critic_id for c in card.member_cards],
            "weight": weight}
