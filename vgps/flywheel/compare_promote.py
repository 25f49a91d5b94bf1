"""Promotion: the new critic takes the old one's place; the old one is kept beside it.

``promote(new, old)``:

1. copies NEW into a hidden temporary sibling of OLD (same filesystem, so the renames below are
   atomic) and checks that the copy loads with NEW's critic id;
2. renames OLD to ``OLD.prev-<old critic id>`` (``.prev-<id>.1``, ``.2``, ... when that exists);
3. renames the copy to OLD's path.

If step 3 fails, step 2 is undone. Whatever deploys ``OLD``'s path (a launch file's
``critic:=``, ``metadata.yaml`` of later bags) gets the new critic from then on; NEW itself is
left where it was.

Usage::

    moved = promote("out/critic_round5", "models/sim_critic")
    moved.previous      # models/sim_critic.prev-sim-critic@3ffcce7093fd
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = ["Promotion", "backup_path", "promote"]


@dataclasses.dataclass(frozen=True)
class Promotion:
    """Where everything went."""

    deployed: Path  # OLD's path, now holding NEW's copy
    previous: Path  # where OLD was moved
    new_id: str
    old_id: str


def backup_path(old: str | os.PathLike, old_id: str) -> Path:
    """``OLD.prev-<old id>``, or the first free ``OLD.prev-<old id>.<n>`` (n = 1, 2, ...)."""
    old = Path(old)
    safe = re.sub(r"[^A-Za-z0-9._@-]", "_", old_id) or "unknown"
    candidate = old.with_name(f"{old.name}.prev-{safe}")
    n = 0
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = old.with_name(f"{old.name}.prev-{safe}.{n}")
    return candidate


def _critic_id(path: Path) -> str:
    import vgps_critic

    return vgps_critic.load(path).critic_id


def promote(new: str | os.PathLike, old: str | os.PathLike) -> Promotion:
    """Puts a copy of ``new`` at ``old``'s path and keeps ``old`` as ``OLD.prev-<id>``.

    Args:
        new: the candidate critic's checkpoint directory (left in place).
        old: the deployed critic's checkpoint directory.

    Returns:
        The :class:`Promotion`.

    Raises:
        ValueError: ``new`` and ``old`` are the same directory or one holds the other, or the
            copy does not load as the same critic.
        FileNotFoundError: either is not a directory.
        vgps_critic.CheckpointError: either does not load.
    """
    new, old = Path(new).absolute(), Path(old).absolute()
    for path, role in ((new, "NEW"), (old, "OLD")):
        if not path.is_dir():
            raise FileNotFoundError(f"{role} {path} is not a critic checkpoint directory")
    rn, ro = new.resolve(), old.resolve()
    if rn == ro or ro in rn.parents or rn in ro.parents:
        raise ValueError(f"NEW {new} and OLD {old} overlap: promote a separate checkpoint")
    new_id, old_id = _critic_id(new), _critic_id(old)
    staging = Path(tempfile.mkdtemp(prefix=f".{old.name}.promote.", dir=old.parent))
    try:
        copy = staging / "critic"
        shutil.copytree(new, copy, symlinks=False)
        copied_id = _critic_id(copy)
        if copied_id != new_id:
            raise ValueError(f"the copy of {new} loads as {copied_id}, not {new_id}")
        previous = backup_path(old, old_id)
        old.rename(previous)
        try:
            copy.rename(old)
        except OSError:
            previous.rename(old)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Promotion(deployed=old, previous=previous, new_id=new_id, old_id=old_id)
