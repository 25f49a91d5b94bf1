"""Held-out validation episodes: a dataset's own validation split, else a hashed fraction.

Validation measures how a critic does on episodes it was not trained on. Per dataset:

- when the dataset ships a usable validation split (``DataConfig.val_split``, e.g. Bridge's
  ``val``: declared in ``dataset_info.json`` *and* its files present), training reads
  ``DataConfig.split`` whole and validation reads that split;
- otherwise a deterministic fraction (``DataConfig.val_fraction``) of the episodes of
  ``DataConfig.split`` is held out: episode ``e`` is held out when
  ``fingerprint64(key(e)) mod 10000 < round(fraction * 10000)``
  (``tf.strings.to_hash_bucket_fast``: FarmHash, stable across runs, machines and versions).
  The key is the episode's own id (``episode_metadata/episode_id``; Bridge:
  ``file_path#episode_id``), never its position in the files, so an episode stays on its side
  when episodes are added or the shards are rewritten.
  Held-out episodes are excluded from training.

``plan_holdout`` counts both sides once per dataset (one pass over the episode ids, cached next
to the action statistics) so that an empty side is a clear error instead of an endless loop,
and so the run and the exported card can say what was held out.

Usage::

    plan = plan_holdout(builder, "train", "val", 0.1, cache_dir=None)
    ds = ds.filter(lambda t: tf.logical_not(held_out_tf(episode_key(t), plan.fraction)))
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

BUCKETS = 10_000
HOLDOUT_FORMAT = 1
MAX_RECORDED_IDS = 10_000  # the run records held-out ids up to this many per dataset


@dataclasses.dataclass(frozen=True)
class HoldoutPlan:
    """Where a dataset's validation episodes come from, and how many there are on each side."""

    source: str  # "split" (the dataset's validation split) or "fraction" (hashed ids)
    train_split: str  # the split training reads
    val_split: str  # the split validation reads (== train_split for "fraction")
    fraction: float  # held-out fraction of train_split (0 for "split")
    train_episodes: int
    val_episodes: int
    val_ids: tuple[str, ...] = ()  # held-out episode keys ("fraction"; up to MAX_RECORDED_IDS)

    def summary(self) -> dict[str, Any]:
        """The counts, for run.json and the exported card (ids left out)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "val_ids"}
        if self.source == "fraction":
            out["rule"] = f"to_hash_bucket_fast(episode key, {BUCKETS}) < {self.threshold}"
        return out

    @property
    def threshold(self) -> int:
        return threshold(self.fraction)


def threshold(fraction: float) -> int:
    """Buckets (of ``BUCKETS``) that are held out for ``fraction``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction={fraction!r}: must be in [0, 1)")
    return round(fraction * BUCKETS)


def episode_key(traj: dict[str, Any]) -> Any:
    """The stable id of a raw RLDS episode (as ``rlds.read_trajectories`` yields it), a () string.

    ``episode_metadata/episode_id`` when it is a string (vgps_sim, deployment datasets);
    ``episode_metadata/file_path`` + ``#`` + ``episode_id`` when the id is a number within a
    file (Bridge); else the TFDS id (position in the files: not stable when files are rewritten).
    """
    import tensorflow as tf

    meta = traj.get("episode_metadata", {})
    episode_id = meta.get("episode_id")
    if episode_id is not None and episode_id.dtype == tf.string:
        return episode_id
    if episode_id is not None:
        number = tf.strings.as_string(tf.cast(episode_id, tf.int64))
        if "file_path" in meta:
            return tf.strings.join([meta["file_path"], number], separator="#")
        return number
    return traj["tfds_id"]


def held_out_tf(key: Any, fraction: float) -> Any:
    """Whether the episode with id ``key`` (() string tensor) is held out (() bool tensor)."""
    import tensorflow as tf

    return tf.strings.to_hash_bucket_fast(key, BUCKETS) < threshold(fraction)


def held_out(keys: Sequence[str], fraction: float) -> np.ndarray:
    """Numpy view of ``held_out_tf`` for a list of episode keys: bool (N,)."""
    import tensorflow as tf

    if not len(keys):
        return np.zeros(0, bool)
    buckets = tf.strings.to_hash_bucket_fast(tf.constant(list(keys)), BUCKETS).numpy()
    return buckets < threshold(fraction)


def has_split(builder: Any, split: str) -> bool:
    """Whether ``builder`` declares ``split`` with at least one example and all its files exist."""
    import tensorflow as tf

    if not split or split not in builder.info.splits:
        return False
    try:
        instructions = builder.info.splits[split].file_instructions
    except (KeyError, ValueError):
        return False
    return bool(instructions) and all(tf.io.gfile.exists(fi.filename) for fi in instructions)


def _episode_keys(builder: Any, split: str) -> list[str]:
    import tensorflow as tf

    from vgps_training.data import rlds

    ds = rlds.read_trajectories(builder, split, process_index=0, process_count=1)
    ds = ds.map(episode_key, num_parallel_calls=tf.data.AUTOTUNE)
    return [k.decode() for k in ds.as_numpy_iterator()]


def plan_holdout(builder: Any, split: str, val_split: str, fraction: float,
                 cache_dir: str | os.PathLike[str] | None = None) -> HoldoutPlan:
    """Decide and count one dataset's held-out episodes (cached by file list and fraction).

    Args:
        builder: the opened dataset.
        split: the training split expression (``DataConfig.split``).
        val_split: the dataset's validation split, used when ``has_split`` (``""``: never).
        fraction: the held-out fraction otherwise (``DataConfig.val_fraction``).
        cache_dir: where counts are cached (None: the statistics cache, ``bounds``).

    Returns:
        The plan with episode counts on both sides.
    """
    from vgps_training.data import bounds as bounds_lib
    from vgps_training.data import rlds

    if val_split and val_split != split and has_split(builder, val_split):
        return HoldoutPlan(source="split", train_split=split, val_split=val_split, fraction=0.0,
                           train_episodes=int(builder.info.splits[split].num_examples),
                           val_episodes=int(builder.info.splits[val_split].num_examples))
    threshold(fraction)  # validates it
    extra = json.dumps({"split": split, "fraction": fraction, "buckets": BUCKETS,
                        "format": HOLDOUT_FORMAT}, sort_keys=True)
    key = rlds.file_list_hash(rlds.split_files(builder, split), extra)
    root = Path(cache_dir) if cache_dir is not None else bounds_lib.default_cache_dir()
    path = root / f"{builder.info.name}-{builder.info.version}-holdout-{key[:16]}.json"
    if path.exists():
        try:
            return HoldoutPlan(**{k: (tuple(v) if isinstance(v, list) else v)
                                  for k, v in json.loads(path.read_text()).items()})
        except (ValueError, TypeError) as err:
            log.warning("ignoring unreadable held-out cache %s: %s", path, err)
    keys = _episode_keys(builder, split)
    mask = held_out(keys, fraction)
    ids = sorted(k for k, m in zip(keys, mask) if m)
    plan = HoldoutPlan(source="fraction", train_split=split, val_split=split, fraction=fraction,
                       train_episodes=int((~mask).sum()), val_episodes=int(mask.sum()),
                       val_ids=tuple(ids[:MAX_RECORDED_IDS]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(plan)) + "\n")
    os.replace(tmp, path)
    return plan


__all__ = ["BUCKETS", "HoldoutPlan", "episode_key", "has_split", "held_out", "held_out_tf",
           "plan_holdout", "threshold"]
