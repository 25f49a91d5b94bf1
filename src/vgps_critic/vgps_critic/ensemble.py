"""Deep ensembles: several critics deployed as one, their Q averaged (or their minimum taken).

Picking the best of K candidates by ``argmax Q`` also picks the candidate whose Q error is
largest (the winner's curse), and the more candidates there are the worse it gets. Critics
trained apart (other data, other seeds) make errors that are partly independent, so the mean of
their Q ranks candidates with less of that noise while what they agree on stays.

Each member is a clipped double-Q network with several heads. ``head_reduction`` says how an
ensemble reduces one member's heads before taking the mean over members: ``min`` (the V-GPS
deployment rule for one critic, and the default) or ``mean`` (the ensemble's Q is then the mean of
every head). ``reduction`` then combines the members: ``mean`` (the default) or ``min``. The
minimum scores a candidate by the member that likes it least, so a candidate wins only where
every member rates it high: with a fine-tuned critic's members beside its parent's (the
flywheel's guarded promotion), a choice the fine-tune learned to prefer is taken only where the
parent does not rate it low, and a choice the parent overrated is dropped where the fine-tune
learned otherwise. Members' Q must be on one scale for that (critics trained with Cal-QL's
return calibration, a fine-tune and its parent, are). The members' own cards' reduction is not
used, so that the ensemble card alone, and its id, say what is deployed.

An ensemble is a directory:

    <dir>/card.json        {"format": "vgps-critic-ensemble", "format_version": 1,
                            "name": ..., "reduction": "mean", "head_reduction": "min",
                            "members": [{"path": "members/0", "critic_id": "..."}, ...],
                            "notes": {...}}       # free-form: lineage, evaluation
    <dir>/members/<i>/     one critic checkpoint each (see ``checkpoint``)

``vgps_critic.load`` opens either kind; everything that scores with a critic (steering, the
critic node, evaluation) takes an ensemble unchanged. Members must agree on everything a caller
feeds them: image size, language encoder and action space.

Usage:
    save_ensemble("models/sim_critic", ["run_a/critic", "run_b/critic"], name="sim-critic")
    critic = vgps_critic.load("models/sim_critic")       # a CriticEnsemble
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import jax
import numpy as np

from vgps_critic.checkpoint import (
    CARD,
    ORBAX_COMMIT_MARKER,
    CheckpointError,
    CriticCard,
    load_checkpoint,
    read_card,
    write_directory,
)
from vgps_critic.config import ActionSpace, CriticConfig
from vgps_critic.critic import Critic
from vgps_critic.language import LanguageEncoder

FORMAT = "vgps-critic-ensemble"
FORMAT_VERSION = 1
REDUCTIONS = ("mean", "min")
HEAD_REDUCTIONS = ("min", "mean")


@dataclasses.dataclass(frozen=True)
class EnsembleCard:
    """The ensemble's own card plus its members' cards (validated to be compatible)."""

    name: str
    member_paths: tuple[str, ...]  # relative to the ensemble directory
    member_cards: tuple[CriticCard, ...]
    reduction: str = "mean"  # over members: mean or min
    head_reduction: str = "min"  # over each member's heads, before the members' mean
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise CheckpointError(f"ensemble reduction {self.reduction!r} is not supported; "
                                  f"use one of {REDUCTIONS}")
        if self.head_reduction not in HEAD_REDUCTIONS:
            raise CheckpointError(f"ensemble head_reduction {self.head_reduction!r} is not "
                                  f"supported; use one of {HEAD_REDUCTIONS}")
        if len(self.member_cards) < 2:
            raise CheckpointError(f"an ensemble needs at least 2 members, got "
                                  f"{len(self.member_cards)}")
        if len(self.member_paths) != len(self.member_cards):
            raise CheckpointError("ensemble card: one path per member card is needed")
        first = self.member_cards[0]
        for i, card in enumerate(self.member_cards[1:], start=1):
            for what, mine, theirs in (
                ("image size", card.config.image_size, first.config.image_size),
                ("language encoder", card.language_encoder, first.language_encoder),
                ("language dim", card.config.language_dim, first.config.language_dim),
                ("action space", card.action_space.to_dict(), first.action_space.to_dict()),
            ):
                if mine != theirs:
                    raise CheckpointError(
                        f"ensemble member {i} ({self.member_paths[i]}) has {what} {mine}, "
                        f"member 0 ({self.member_paths[0]}) has {theirs}: members must take "
                        "the same inputs")

    @property
    def critic_id(self) -> str:
        """Name plus 12 hex digits of a hash over the reductions and the members' parameter
        hashes, in order: whatever changes the deployed Q changes the id."""
        parts = [self.reduction, self.head_reduction,
                 *(card.params_sha256 for card in self.member_cards)]
        return f"{self.name}@{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:12]}"

    # What callers of a single critic's card read, shared by every member.
    @property
    def config(self) -> CriticConfig:
        return self.member_cards[0].config

    @property
    def action_space(self) -> ActionSpace:
        return self.member_cards[0].action_space

    @property
    def language_encoder(self) -> str:
        return self.member_cards[0].language_encoder

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "reduction": self.reduction,
            "head_reduction": self.head_reduction,
            "members": [{"path": p, "critic_id": c.critic_id}
                        for p, c in zip(self.member_paths, self.member_cards)],
            "notes": self.notes,
        }


def is_ensemble(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory whose card declares an ensemble."""
    card = Path(path) / CARD
    if not card.is_file():
        return False
    try:
        raw = json.loads(card.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(raw, dict) and raw.get("format") == FORMAT


def _member_path(root: Path, rel: Any) -> Path:
    """A member directory inside the ensemble directory (no absolute paths, no ``..``)."""
    if not isinstance(rel, str) or not rel:
        raise CheckpointError(f"ensemble member path must be a non-empty string, got {rel!r}")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise CheckpointError(f"ensemble member path {rel!r} must be relative and stay inside "
                              "the ensemble directory")
    return root / pure


def read_ensemble_card(path: str | os.PathLike) -> EnsembleCard:
    """Read and validate an ensemble card and its members' cards (no parameters)."""
    root = Path(path)
    card_path = root / CARD
    try:
        raw = json.loads(card_path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"{root} has no {CARD}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{card_path} is not valid JSON (corrupt or truncated): {exc}") \
            from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{card_path} is not an ensemble card (format "
                              f"{raw.get('format') if isinstance(raw, dict) else raw!r})")
    if raw.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"ensemble card format_version {raw.get('format_version')!r} is "
                              f"not supported (supports {FORMAT_VERSION}); upgrade vgps_critic")
    members = raw.get("members")
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        raise CheckpointError(f"{card_path}: 'members' must be a list of {{path, critic_id}}")
    paths, cards = [], []
    for i, member in enumerate(members):
        rel = member.get("path")
        card = read_card(_member_path(root, rel))
        if member.get("critic_id") not in (None, card.critic_id):
            raise CheckpointError(
                f"ensemble member {i} ({rel}) is {card.critic_id} but the ensemble card "
                f"names {member['critic_id']} (a member was replaced?)")
        paths.append(rel)
        cards.append(card)
    return EnsembleCard(name=str(raw.get("name", "ensemble")), member_paths=tuple(paths),
                        member_cards=tuple(cards), reduction=str(raw.get("reduction", "mean")),
                        head_reduction=str(raw.get("head_reduction", "min")),
                        notes=dict(raw.get("notes") or {}))


class CriticEnsemble:
    """Several critics scored as one: ``q`` is the mean (or, by the card's ``reduction``, the
    minimum) over members of each member's Q (its heads reduced by the card's
    ``head_reduction``).

    Satisfies :class:`~vgps_critic.scorer.Scorer` like a single
    :class:`~vgps_critic.critic.Critic` (and offers ``q_members`` and ``q_heads``). ``encode``
    returns one encoding per member (a tuple), to be handed back to ``q`` unchanged.
    """

    def __init__(self, card: EnsembleCard, members: Sequence[Critic]) -> None:
        if len(members) != len(card.member_cards):
            raise ValueError(f"{len(members)} members for a card listing "
                             f"{len(card.member_cards)}")
        self.card = card
        self.members = tuple(members)

    @property
    def critic_id(self) -> str:
        return self.card.critic_id

    @property
    def image_size(self) -> tuple[int, int]:
        return self.card.config.image_size

    @property
    def config(self) -> CriticConfig:
        return self.card.config

    @property
    def action_space(self) -> ActionSpace:
        return self.card.action_space

    @property
    def language_encoder(self) -> LanguageEncoder:
        return self.members[0].language_encoder

    def embed(self, instruction: str) -> np.ndarray:
        """Instruction -> float32 (language_dim,) with the members' shared encoder."""
        return self.members[0].embed(instruction)

    def encode(self, image: np.ndarray, language: np.ndarray) -> tuple[jax.Array, ...]:
        """One encoding per member of the same image and instruction embedding."""
        features = tuple(m.encode(image, language) for m in self.members)
        return jax.block_until_ready(features)

    def q_heads(self, features: Sequence[jax.Array], actions: np.ndarray) -> np.ndarray:
        """Every head of every member: float32 (M, E, K)."""
        if not isinstance(features, (tuple, list)) or len(features) != len(self.members):
            raise ValueError(f"features must be the {len(self.members)}-tuple returned by "
                             f"this ensemble's encode(), got {type(features).__name__}")
        return np.stack([m.q_members(f, actions) for m, f in zip(self.members, features)])

    def q_members(self, features: Sequence[jax.Array], actions: np.ndarray) -> np.ndarray:
        """Each member's Q, its heads reduced by ``head_reduction``: float32 (M, K)."""
        heads = self.q_heads(features, actions)
        return heads.min(axis=1) if self.card.head_reduction == "min" else heads.mean(axis=1)

    def q(self, features: Sequence[jax.Array], actions: np.ndarray) -> np.ndarray:
        """float32 (K,): the mean (or minimum) over members of each member's deployed Q."""
        per_member = self.q_members(features, actions)
        combined = per_member.min(axis=0) if self.card.reduction == "min" \
            else per_member.mean(axis=0)
        return combined.astype(np.float32)

    def score(self, image: np.ndarray, instruction: str, actions: np.ndarray) -> np.ndarray:
        """``q(encode(image, embed(instruction)), actions)`` -> float32 (K,)."""
        return self.q(self.encode(image, self.embed(instruction)), actions)


def load_ensemble(path: str | os.PathLike, language_encoder: LanguageEncoder | None = None,
                  verify: bool = True) -> CriticEnsemble:
    """Load and validate an ensemble directory and every member's parameters."""
    root = Path(path).absolute()
    card = read_ensemble_card(root)
    members = []
    for rel in card.member_paths:
        member_card, params = load_checkpoint(_member_path(root, rel), verify=verify)
        members.append(Critic(member_card, params, language_encoder))
    return CriticEnsemble(card, members)


def save_ensemble(path: str | os.PathLike, members: Sequence[str | os.PathLike], name: str,
                  head_reduction: str = "min", notes: dict[str, Any] | None = None,
                  overwrite: bool = False, reduction: str = "mean") -> EnsembleCard:
    """Copy critic checkpoints into a new ensemble directory ``path`` (atomically).

    Args:
        path: destination directory.
        members: two or more critic checkpoint directories (validated, parameters verified).
        name: the ensemble's name (its id is ``name@<hash of the reductions and members>``).
        head_reduction: ``min`` or ``mean`` over each member's heads (see the module doc).
        reduction: ``mean`` or ``min`` over the members (see the module doc).
        notes: free-form JSON-able record (data lineage, evaluation) kept in the card.
        overwrite: replace ``path`` if it exists.

    Returns:
        The written :class:`EnsembleCard`.
    """
    path = Path(path).absolute()
    sources = [Path(m).absolute() for m in members]
    cards = []
    for src in sources:
        if is_ensemble(src):
            raise CheckpointError(f"{src} is itself an ensemble; list its members instead")
        cards.append(load_checkpoint(src, verify=True)[0])  # refuse a broken member up front
    rels = [f"members/{i}" for i in range(len(sources))]
    card = EnsembleCard(name=name, member_paths=tuple(rels), member_cards=tuple(cards),
                        reduction=reduction, head_reduction=head_reduction,
                        notes=dict(notes or {}))
    json.dumps(card.notes)  # fail early on notes that cannot be written
    if any(path == s or path in s.parents for s in sources):
        raise CheckpointError(f"{path} holds a member; write the ensemble somewhere else")

    def fill(staging: Path) -> None:
        for src, rel in zip(sources, rels):
            # Older exports kept orbax's commit marker, which names the path they were saved
            # to; restoring never reads it, and an ensemble stays relocatable without it.
            shutil.copytree(src, staging / rel,
                            ignore=shutil.ignore_patterns(ORBAX_COMMIT_MARKER))
        (staging / CARD).write_text(json.dumps(card.to_json(), indent=2) + "\n")

    write_directory(path, fill, overwrite)
    return card
