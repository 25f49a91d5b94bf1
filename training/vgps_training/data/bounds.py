"""Per-dataset action statistics and the bounds the critic normalises actions with.

The critic maps robot-space actions to [-1, 1] with ``2 (a - low) / (high - low) - 1`` (clipped)
using per-dimension ``low``/``high`` stored in its checkpoint. This module computes them once per
dataset, over the *standardised* actions of a whole split (every host gets the same numbers), and
caches them as JSON in ``cache_dir`` under ``<name>-<version>-<hash>.json``, where the hash covers
the split's file list (paths, example ranges, file sizes), the standardiser and its options and a
format version: a changed file list or standardisation recomputes them.

Bounds methods (``action_bounds``):

- ``"percentile"`` (default): 1st / 99th percentile per dimension. This is what Octo's ``BOUNDS``
  normalisation actually uses (``p01``/``p99``, clipped), and what V-GPS trained with through
  Octo's pipeline; it is robust to the outliers real teleoperation data has (Fractal's min/max
  ``dy`` spans -5.5 to 22, which would squeeze typical actions into a sliver of [-1, 1]).
- ``"minmax"``: the plain per-dimension min / max.

Either way the gripper (last dim) is fixed to [0, 1], its range in the common format, and a
degenerate dimension (high - low < 1e-6) is widened to +-1e-3 around its value so the bounds are
valid for ``vgps_critic.config.ActionSpace``. Named presets (``"bridge"``, ``"fractal"`` from
``vgps_critic.config.NAMED_BOUNDS``, the bounds of the released V-GPS checkpoints) can replace the
computed ones per dataset in the pipeline's ``DatasetSpec``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

STATS_FORMAT_VERSION = 1
BOUNDS_METHODS = ("percentile", "minmax")
Bounds = tuple[tuple[float, ...], tuple[float, ...]]


@dataclasses.dataclass(frozen=True)
class DatasetStats:
    """Statistics of a dataset's standardised actions and proprio (one split, all hosts)."""

    name: str
    version: str
    key: str  # the cache hash (file list + standardiser + options + format version)
    num_trajectories: int
    num_transitions: int
    action_min: tuple[float, ...]
    action_max: tuple[float, ...]
    action_p01: tuple[float, ...]
    action_p99: tuple[float, ...]
    action_mean: tuple[float, ...]
    action_std: tuple[float, ...]
    proprio_mean: tuple[float, ...]
    proprio_std: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (with the format version)."""
        return {"format_version": STATS_FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatasetStats:
        """Inverse of ``to_json``; raises ValueError on another format version."""
        if data.get("format_version") != STATS_FORMAT_VERSION:
            raise ValueError(f"dataset stats format_version={data.get('format_version')!r}: "
                             f"expected {STATS_FORMAT_VERSION}")
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v)
                  for k, v in data.items() if k in fields}
        return cls(**values)


def compute_stats(name: str, version: str, key: str, actions: np.ndarray, proprios: np.ndarray,
                  num_trajectories: int) -> DatasetStats:
    """Statistics from stacked arrays.

    Args:
        name: dataset name.
        version: dataset version.
        key: the cache key to record.
        actions: float (N, A) standardised actions of all N transitions.
        proprios: float (N, P) proprio of the same transitions.
        num_trajectories: number of episodes they came from.

    Returns:
        The statistics; raises ValueError if there are no transitions or any is not finite.
    """
    actions = np.asarray(actions, np.float64)
    proprios = np.asarray(proprios, np.float64)
    if actions.ndim != 2 or actions.shape[0] == 0:
        raise ValueError(f"dataset {name!r}: no transitions to compute action bounds from "
                         f"(actions shape {actions.shape})")
    if not np.isfinite(actions).all():
        bad = np.unique(np.nonzero(~np.isfinite(actions))[1]).tolist()
        raise ValueError(f"dataset {name!r}: non-finite actions in dimensions {bad}")

    def tup(x: np.ndarray) -> tuple[float, ...]:
        return tuple(float(v) for v in x)

    return DatasetStats(
        name=name, version=version, key=key, num_trajectories=int(num_trajectories),
        num_transitions=int(actions.shape[0]),
        action_min=tup(actions.min(0)), action_max=tup(actions.max(0)),
        action_p01=tup(np.quantile(actions, 0.01, axis=0)),
        action_p99=tup(np.quantile(actions, 0.99, axis=0)),
        action_mean=tup(actions.mean(0)), action_std=tup(actions.std(0)),
        proprio_mean=tup(proprios.mean(0)), proprio_std=tup(proprios.std(0)),
    )


def action_bounds(stats: DatasetStats,
                  method: Literal["percentile", "minmax"] = "percentile") -> Bounds:
    """Per-dimension ``(low, high)`` for the critic from a dataset's statistics.

    Args:
        stats: the dataset's statistics.
        method: ``"percentile"`` (1st / 99th) or ``"minmax"``; see the module docstring.

    Returns:
        ``(low, high)`` tuples of length A with ``high > low`` everywhere and the gripper
        (last dim) at ``(0, 1)``.
    """
    if method not in BOUNDS_METHODS:
        raise ValueError(f"method={method!r}: choose from {BOUNDS_METHODS}")
    if method == "percentile":
        low, high = np.array(stats.action_p01), np.array(stats.action_p99)
    else:
        low, high = np.array(stats.action_min), np.array(stats.action_max)
    low[-1], high[-1] = 0.0, 1.0
    flat = high - low < 1e-6
    low = np.where(flat, low - 1e-3, low)
    high = np.where(flat, high + 1e-3, high)
    return tuple(float(v) for v in low), tuple(float(v) for v in high)


def default_cache_dir() -> Path:
    """``$VGPS_CACHE_DIR/dataset_stats``, else ``$XDG_CACHE_HOME`` (``~/.cache``)/vgps/..."""
    if os.environ.get("VGPS_CACHE_DIR"):
        return Path(os.environ["VGPS_CACHE_DIR"]) / "dataset_stats"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vgps" / "dataset_stats"


def cache_path(cache_dir: str | os.PathLike[str] | None, name: str, version: str,
               key: str) -> Path:
    """Where the statistics of (name, version, key) are cached."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"{name}-{version}-{key[:16]}.json"


def load_or_compute(path: Path, compute: Callable[[], DatasetStats],
                    force: bool = False) -> tuple[DatasetStats, bool]:
    """Reads cached statistics from ``path`` or computes and writes them (atomically).

    Args:
        path: the cache file.
        compute: builds the statistics when the cache is missing, unreadable or ``force``.
        force: recompute even when cached.

    Returns:
        ``(stats, from_cache)``.
    """
    if path.exists() and not force:
        try:
            return DatasetStats.from_json(json.loads(path.read_text())), True
        except (ValueError, TypeError, KeyError) as err:
            log.warning("ignoring unreadable dataset stats cache %s: %s", path, err)
    stats = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(stats.to_json(), f, indent=1)
    os.replace(tmp, path)
    return stats, False


def dataset_stats(builder: Any, split: str = "train", standardize_kwargs: Mapping[str, Any] | None
                  = None, cache_dir: str | os.PathLike[str] | None = None, *,
                  name: str | None = None, force: bool = False) -> DatasetStats:
    """Statistics of a dataset's standardised actions over ``split``, cached (TensorFlow).

    Reads the whole split once (all hosts' shards, no shuffling) when not cached.

    Args:
        builder: an opened builder (``rlds.open_builder``).
        split: the split the statistics cover.
        standardize_kwargs: options of the dataset's standardiser (part of the cache key).
        cache_dir: cache folder (None: ``default_cache_dir()``).
        name: the registry name of the standardiser (None: ``builder.info.name``).
        force: recompute even when cached.

    Returns:
        The statistics (``num_transitions`` counts the standardised steps).
    """
    import tensorflow as tf

    from vgps_training.data import rlds, standardize

    name = name or builder.info.name
    kwargs = dict(standardize_kwargs or {})
    standardizer = standardize.get_standardizer(name, **kwargs)
    version = str(builder.info.version)
    files = rlds.split_files(builder, split)
    extra = json.dumps({"split": split, "name": name, "standardize": kwargs,
                        "format": STATS_FORMAT_VERSION}, sort_keys=True, default=repr)
    key = rlds.file_list_hash(files, extra)

    def compute() -> DatasetStats:
        log.info("computing action statistics of %s %s (%d files); cached afterwards",
                 name, version, len(files))
        ds = rlds.read_trajectories(builder, split, process_index=0, process_count=1)
        ds = ds.map(lambda t: {k: v for k, v in standardizer(t).items()
                               if k in ("action", "proprio")},
                    num_parallel_calls=tf.data.AUTOTUNE)
        actions, proprios, count = [], [], 0
        for traj in ds.as_numpy_iterator():
            actions.append(traj["action"])
            proprios.append(traj["proprio"])
            count += 1
        if not actions:
            raise ValueError(f"dataset {name!r} split {split!r} has no episodes")
        return compute_stats(name, version, key, np.concatenate(actions),
                             np.concatenate(proprios), count)

    stats, _ = load_or_compute(cache_path(cache_dir, name, version, key), compute, force)
    return stats
