"""Self-describing critic checkpoints: a directory with ``card.json`` and orbax parameters.

    <dir>/card.json   format + version, architecture, image size, language encoder + dim,
                      action space with bounds, reward/discount, data and training summaries,
                      parameter count and a SHA-256 of the parameters
    <dir>/params/     orbax PyTree checkpoint of the Q-network parameters

``load_checkpoint`` validates everything before any array reaches JAX and raises
``CheckpointError`` with a message naming the mismatch. Old card versions are upgraded in one
place, ``migrate``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from vgps_critic.config import ActionSpace, CriticConfig
from vgps_critic.language import ENCODER_DIMS
from vgps_critic.model import count_params, param_shapes

FORMAT = "vgps-critic"
FORMAT_VERSION = 1
CARD = "card.json"
PARAMS = "params"
ORBAX_COMMIT_MARKER = "commit_success.txt"  # names the absolute path orbax wrote to; not kept
# Fields of CriticConfig that the card stores at its top level rather than in "architecture".
_TOP_LEVEL_FIELDS = ("image_size", "language_dim", "action_dim")


class CheckpointError(ValueError):
    """A critic checkpoint is missing, corrupt, foreign or inconsistent with its card."""


@dataclasses.dataclass(frozen=True)
class CriticCard:
    """Everything a deployment needs to know about a critic, besides its parameters."""

    config: CriticConfig
    action_space: ActionSpace
    language_encoder: str
    name: str = "critic"
    reward: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    param_count: int = 0
    params_sha256: str = ""

    def __post_init__(self) -> None:
        if self.action_space.dim != self.config.action_dim:
            raise CheckpointError(
                f"action space has {self.action_space.dim} dims but the network takes "
                f"action_dim={self.config.action_dim}")
        known_dim = ENCODER_DIMS.get(self.language_encoder)
        if known_dim is not None and known_dim != self.config.language_dim:
            raise CheckpointError(
                f"language encoder {self.language_encoder!r} gives {known_dim}-d embeddings but "
                f"the network's FiLM layers take language_dim={self.config.language_dim}")

    @property
    def critic_id(self) -> str:
        """Short stable identifier: name plus the first 12 hex digits of the parameter hash."""
        return f"{self.name}@{self.params_sha256[:12]}" if self.params_sha256 else self.name

    def to_json(self) -> dict[str, Any]:
        arch = {k: v for k, v in self.config.to_dict().items() if k not in _TOP_LEVEL_FIELDS}
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "architecture": {"name": "film_resnet_q", **arch},
            "image_size": list(self.config.image_size),
            "language": {"encoder": self.language_encoder, "dim": self.config.language_dim},
            "action_space": {**self.action_space.to_dict(), "dim": self.action_space.dim,
                             "normalization": "minmax_to_pm1_clipped"},
            "reward": self.reward,
            "data": self.data,
            "training": self.training,
            "param_count": self.param_count,
            "params": {"path": PARAMS, "format": "orbax", "sha256": self.params_sha256},
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CriticCard:
        card = migrate(raw)
        try:
            arch = dict(card["architecture"])
            arch.pop("name", None)
            config = CriticConfig.from_dict({
                **arch,
                "image_size": tuple(card["image_size"]),
                "language_dim": int(card["language"]["dim"]),
                "action_dim": int(card["action_space"]["dim"]),
            })
            action_space = ActionSpace.from_dict(card["action_space"])
            return cls(config=config, action_space=action_space,
                       language_encoder=str(card["language"]["encoder"]),
                       name=str(card.get("name", "critic")), reward=card.get("reward", {}),
                       data=card.get("data", {}), training=card.get("training", {}),
                       param_count=int(card["param_count"]),
                       params_sha256=str(card["params"].get("sha256", "")))
        except CheckpointError:
            raise
        except KeyError as exc:
            raise CheckpointError(f"card is missing the field {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"card has an invalid value: {exc}") from exc


def migrate(card: dict[str, Any]) -> dict[str, Any]:
    """Upgrade a card of any known older version to the current one (the only shim place)."""
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        if found == "vgps-critic-ensemble":
            raise CheckpointError("this is an ensemble of critics, not a single critic: load it "
                                  "with vgps_critic.load (see vgps_critic.ensemble)")
        raise CheckpointError(f"not a vgps critic card: format is {found!r}, expected {FORMAT!r}")
    version = card.get("format_version")
    if version == FORMAT_VERSION:
        return card
    raise CheckpointError(
        f"card format_version {version!r} is not supported by this vgps_critic "
        f"(supports {FORMAT_VERSION}); upgrade vgps_critic or re-export the checkpoint")


def params_digest(params: dict) -> str:
    """SHA-256 over every leaf's path, dtype, shape and bytes, in sorted path order."""
    digest = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in sorted(leaves, key=lambda item: jax.tree_util.keystr(item[0])):
        arr = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}|{arr.dtype.str}|{arr.shape}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, card: CriticCard, params: dict,
                    overwrite: bool = False) -> CriticCard:
    """Write ``card`` and ``params`` to directory ``path`` atomically; returns the final card.

    The parameter count and hash in the returned card are computed from ``params``.
    """
    path = Path(path).absolute()
    params = jax.tree_util.tree_map(lambda x: np.asarray(x), params)
    _check_tree(params, card.config)
    card = dataclasses.replace(card, param_count=count_params(params),
                               params_sha256=params_digest(params))

    def fill(staging: Path) -> None:
        import orbax.checkpoint as ocp

        ocp.PyTreeCheckpointer().save(staging / PARAMS, params)
        # orbax's commit marker records the absolute staging path; the atomic rename is the
        # commit here, and restoring does not read it, so a checkpoint stays relocatable.
        (staging / PARAMS / ORBAX_COMMIT_MARKER).unlink(missing_ok=True)
        (staging / CARD).write_text(json.dumps(card.to_json(), indent=2) + "\n")

    write_directory(path, fill, overwrite)
    return card


def write_directory(path: Path, fill: Callable[[Path], None], overwrite: bool = False) -> None:
    """Create directory ``path`` atomically: ``fill`` writes a staging sibling, renamed at the end.

    Replacing a directory keeps its ``README.md`` (a model card's prose, which no export writes)
    unless ``fill`` wrote one; everything else in it is replaced.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False (nothing is written).
    """
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--force) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        fill(staging)
        if path.exists():
            readme = path / "README.md"
            if readme.is_file() and not (staging / "README.md").exists():
                shutil.copy2(readme, staging / "README.md")
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def read_card(path: str | os.PathLike) -> CriticCard:
    """Read and validate only the card of checkpoint directory ``path``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"critic checkpoint {path} does not exist")
    if not path.is_dir():
        raise CheckpointError(
            f"{path} is a file; a vgps critic checkpoint is a directory with {CARD} and "
            f"{PARAMS}/ (a released V-GPS checkpoint must first be converted with "
            "`vgps critic import-vgps`)")
    card_path = path / CARD
    if not card_path.is_file():
        hint = ""
        if (path / "checkpoint").exists() or any(path.glob("checkpoint_*")):
            hint = " It looks like a V-GPS training checkpoint: convert it with " \
                   "`vgps critic import-vgps SRC --out DST`."
        raise CheckpointError(f"{path} has no {CARD}; not a vgps critic checkpoint.{hint}")
    try:
        raw = json.loads(card_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{card_path} is not valid JSON (corrupt or truncated): {exc}") \
            from exc
    return CriticCard.from_json(raw)


def load_checkpoint(path: str | os.PathLike, verify: bool = True) -> tuple[CriticCard, dict]:
    """Read, validate and return ``(card, params)``; params are numpy arrays.

    Args:
        path: checkpoint directory.
        verify: also check the parameters' SHA-256 against the card (detects bit rot).

    Raises:
        CheckpointError: naming the first problem found.
    """
    path = Path(path).absolute()
    card = read_card(path)
    params_dir = path / PARAMS
    if not params_dir.is_dir():
        raise CheckpointError(f"{path} has a card but no {PARAMS}/ directory (truncated copy?)")
    try:
        import orbax.checkpoint as ocp

        params = ocp.PyTreeCheckpointer().restore(params_dir)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read parameters in {params_dir} (corrupt or truncated): "
            f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    params = jax.tree_util.tree_map(np.asarray, params)
    _check_tree(params, card.config)
    count = count_params(params)
    if count != card.param_count:
        raise CheckpointError(f"card says param_count={card.param_count}, file holds {count}")
    if verify and card.params_sha256 and params_digest(params) != card.params_sha256:
        raise CheckpointError(
            f"parameters in {params_dir} do not match the card's sha256 (corrupted on disk?)")
    return card, params


def _check_tree(params: dict, config: CriticConfig) -> None:
    """Compare a parameter tree to the one ``config`` defines; name every mismatch."""
    expected = {jax.tree_util.keystr(p): (tuple(x.shape), np.dtype(x.dtype))
                for p, x in jax.tree_util.tree_flatten_with_path(param_shapes(config))[0]}
    try:
        got = {jax.tree_util.keystr(p): (tuple(np.shape(x)), np.asarray(x).dtype)
               for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}
    except Exception as exc:
        raise CheckpointError(f"parameters are not a tree of arrays: {exc}") from exc
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} arrays, e.g. {missing[:3]}")
    if extra:
        problems.append(f"{len(extra)} unexpected arrays, e.g. {extra[:3]}")
    if wrong:
        k = wrong[0]
        problems.append(f"{len(wrong)} arrays with the wrong shape/dtype, e.g. {k}: file "
                        f"{got[k][0]} {got[k][1]}, architecture {expected[k][0]} {expected[k][1]}")
    if problems:
        raise CheckpointError("parameters do not match the card's architecture: "
                              + "; ".join(problems))
