"""The training data pipeline: RLDS episodes -> shuffled, augmented batches of transitions.

Per dataset: read this host's shard (``rlds``) -> standardise (``standardize``) -> drop empty and
(optionally) unlabelled episodes -> label rewards, masks, Monte-Carlo returns (``labels``) ->
normalise actions with the dataset's bounds (``bounds``) -> repeat (training) -> flatten into
transitions. Then: weighted mixture of the datasets (``sample_from_datasets``) -> shuffle ->
decode + resize both images -> augment (training; the same draw for observation and next
observation) -> batch (drop remainder) -> prefetch. ``DataConfig.subset`` picks training or
held-out validation episodes per dataset (``holdout``). Shuffling happens *before* decoding so the
buffer holds JPEG bytes, not pixels (~30x less memory at 256x256; the sample order is the same as
shuffling decoded frames). Next observation of the last step is the last observation itself.

Batch (``DataPipeline.as_numpy()``; B = ``DataConfig.batch_size``, (H, W) = ``image_size``):

==================  ===============  ======================================================
``image``           uint8 (B,H,W,3)  primary camera at step t
``next_image``      uint8 (B,H,W,3)  primary camera at step t + 1
``proprio``         float32 (B, P)   proprio at t, zero-padded to the largest P of the mix
``next_proprio``    float32 (B, P)
``action``          float32 (B, 7)   action normalised to [-1, 1] with its dataset's bounds
                                     (clipped to +-(1 - 1e-5) like the critic); raw if
                                     ``normalize_actions=False``
``next_action``     float32 (B, 7)   the action taken at step t + 1 (normalised like ``action``;
                                     the last step repeats its own)
``raw_action``      float32 (B, 7)   the action in the robot (Bridge) convention
``reward``          float32 (B,)     0 in a success's last H steps, -1/(1-gamma) on the last
                                     autonomous step before a take-over, else -1
``mask``            float32 (B,)     0 where step t is terminal (no bootstrap), else 1
``mc_return``       float32 (B,)     Monte-Carlo return to go
``episode_success`` bool (B,)        whether the transition's return chain ends at the goal
                                     (its episode's success label, False before a take-over)
``instruction``     bytes (B,)       UTF-8 instruction; embed it with the critic's encoder
``dataset_index``   int32 (B,)       index into ``DataConfig.datasets``
==================  ===============  ======================================================

With ``DataConfig.candidates = C > 0`` also (deployment datasets built with ``--candidates``):

====================  ================  ======================================================
``candidates``        float32 (B,C,7)   the first C candidates the policy proposed at step t,
                                        normalised like ``action`` (the critic's view of them
                                        at deployment; no gripper binarisation); 0 where masked
``candidate_mask``    bool (B, C)       which of them were recorded (none for a dataset
                                        without candidates, or a step that recorded fewer)
====================  ================  ======================================================

Usage::

    config = DataConfig(datasets=(DatasetSpec("/data/bridge_dataset/1.0.0"),
                                  DatasetSpec("/data/fractal20220817_data/0.1.0")),
                        image_size=(256, 256), batch_size=256)
    data = make_dataset(config)
    for batch in data.as_numpy():
        ...
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from vgps_critic.config import NAMED_BOUNDS
from vgps_training.data import bounds as bounds_lib
from vgps_training.data import candidates as candidates_lib
from vgps_training.data import holdout, rlds, standardize
from vgps_training.data.augment import RESIZE_METHODS, AugmentConfig, augment_images
from vgps_training.data.augment import decode_and_resize as _decode_and_resize
from vgps_training.data.labels import LabelConfig, label_trajectory

BoundsSpec = str | tuple[tuple[float, ...], tuple[float, ...]] | None
SUBSETS = ("all", "train", "validation")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One RLDS dataset of the mixture."""

    path: str  # TFDS version directory, e.g. ".../bridge_dataset/1.0.0"
    weight: float = 1.0  # relative sampling weight (times its size if balance_weights)
    standardize_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # None: computed from the data (DataConfig.bounds_method); a preset name of
    # vgps_critic.config.NAMED_BOUNDS ("bridge", "fractal"); or explicit (low, high).
    action_bounds: BoundsSpec = None
    name: str | None = None  # standardiser name; None: the dataset's own name

    def __post_init__(self) -> None:
        if not str(self.path):
            raise ValueError("DatasetSpec.path='': give a TFDS dataset version directory")
        if not np.isfinite(self.weight) or self.weight < 0:
            raise ValueError(f"DatasetSpec.weight={self.weight!r}: must be finite and >= 0")
        if isinstance(self.action_bounds, str) and self.action_bounds not in NAMED_BOUNDS:
            raise ValueError(f"DatasetSpec.action_bounds={self.action_bounds!r}: choose from "
                             f"{sorted(NAMED_BOUNDS)} or give (low, high)")
        if isinstance(self.action_bounds, tuple):
            low, high = self.action_bounds
            if len(low) != 7 or len(high) != 7 or not all(h > lo for lo, h in zip(low, high)):
                raise ValueError(f"DatasetSpec.action_bounds={self.action_bounds!r}: need two "
                                 "length-7 sequences with high > low")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Everything the pipeline needs; validated on construction."""

    datasets: tuple[DatasetSpec, ...]
    split: str = "train"  # TFDS split expression, divided among JAX processes
    # Which episodes (``holdout``): "all" of split; "train": split minus the held-out episodes;
    # "validation": the dataset's val_split where it has one, else the held-out episodes.
    subset: Literal["all", "train", "validation"] = "all"
    val_split: str = "val"  # a dataset's own validation split, used where it exists ("": never)
    val_fraction: float = 0.1  # else: fraction of split's episodes held out by id hash
    train: bool = True  # training: repeat forever, shuffle, augment; else one pass, plain
    image_size: tuple[int, int] = (256, 256)  # (H, W) of the output images (paper: 256)
    resize_method: str = "lanczos3"  # tf.image.resize method (Octo uses lanczos3)
    batch_size: int = 256  # per-host batch (drop_remainder=True)
    shuffle_buffer: int = 10_000  # transitions in the shuffle buffer
    balance_weights: bool = True  # weights *= number of transitions ("balanced by size")
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    labels: LabelConfig = dataclasses.field(default_factory=LabelConfig)
    bounds_method: Literal["percentile", "minmax"] = "percentile"  # see bounds.py
    normalize_actions: bool = True  # "action" normalised to [-1, 1] per dataset
    skip_unlabeled: bool = True  # drop episodes with an empty instruction
    candidates: int = 0  # recorded candidates kept per transition (module docstring); 0: none
    # Mask the candidates of take-over steps and of the step handed over (where the data say
    # the critic's choice needed saving, so nothing should hold it).
    candidates_skip_takeovers: bool = False
    cache_dir: str | None = None  # dataset statistics cache (None: bounds.default_cache_dir())
    seed: int = 0  # file order, shuffle, mixture sampling and augmentation
    process_index: int | None = None  # None: jax.process_index()
    process_count: int | None = None  # None: jax.process_count()
    num_parallel_calls: int = tf.data.AUTOTUNE  # parallelism of each map (-1 = AUTOTUNE)
    prefetch: int = tf.data.AUTOTUNE  # batches prefetched (-1 = AUTOTUNE)

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(self.datasets))
        if not self.datasets:
            raise ValueError("DataConfig.datasets=(): give at least one DatasetSpec")
        if not all(isinstance(d, DatasetSpec) for d in self.datasets):
            raise ValueError(f"DataConfig.datasets={self.datasets!r}: must be DatasetSpec")
        if sum(d.weight for d in self.datasets) <= 0:
            raise ValueError("DataConfig.datasets: at least one weight must be > 0")
        size = tuple(self.image_size)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ValueError(f"DataConfig.image_size={self.image_size!r}: need (H, W) > 0")
        object.__setattr__(self, "image_size", size)
        if self.resize_method not in RESIZE_METHODS:
            raise ValueError(f"DataConfig.resize_method={self.resize_method!r}: choose from "
                             f"{RESIZE_METHODS}")
        if not isinstance(self.candidates, int) or self.candidates < 0:
            raise ValueError(f"DataConfig.candidates={self.candidates!r}: must be an int >= 0")
        for name in ("batch_size", "shuffle_buffer"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"DataConfig.{name}={getattr(self, name)!r}: must be an int >= 1")
        if self.bounds_method not in bounds_lib.BOUNDS_METHODS:
            raise ValueError(f"DataConfig.bounds_method={self.bounds_method!r}: choose from "
                             f"{bounds_lib.BOUNDS_METHODS}")
        for name in ("num_parallel_calls", "prefetch"):
            v = getattr(self, name)
            if not isinstance(v, int) or (v < 1 and v != tf.data.AUTOTUNE):
                raise ValueError(f"DataConfig.{name}={v!r}: must be >= 1 or -1 (AUTOTUNE)")
        if self.subset not in SUBSETS:
            raise ValueError(f"DataConfig.subset={self.subset!r}: choose from {SUBSETS}")
        if not isinstance(self.val_fraction, float | int) or not 0 <= self.val_fraction < 1:
            raise ValueError(f"DataConfig.val_fraction={self.val_fraction!r}: must be in [0, 1)")
        rlds.resolve_process(self.process_index if self.process_index is not None else 0,
                             self.process_count if self.process_count is not None else 1)


@dataclasses.dataclass
class DataPipeline:
    """The built pipeline and what the training loop and checkpoint need to know about it."""

    dataset: tf.data.Dataset  # batched transitions (module docstring)
    names: tuple[str, ...]  # dataset names in DataConfig.datasets order ("name#i" if repeated)
    weights: tuple[float, ...]  # normalised sampling probabilities
    stats: dict[str, bounds_lib.DatasetStats]  # per entry of names
    bounds: dict[str, bounds_lib.Bounds]  # per entry of names: (low, high) used for "action"
    # per entry of names, unless subset is "all": where its validation episodes come from
    heldout: dict[str, holdout.HoldoutPlan] = dataclasses.field(default_factory=dict)

    def as_numpy(self) -> Iterator[dict[str, np.ndarray]]:
        """Batches as dicts of numpy arrays (``instruction`` as a bytes object array)."""
        return iter(tfds.as_numpy(self.dataset))


def _without_candidates(traj: dict) -> dict:
    steps = {k: v for k, v in traj["steps"].items() if k != "candidate_actions"}
    return {**traj, "steps": steps}


def _seed(config: DataConfig, index: int, purpose: int) -> int:
    """A distinct deterministic seed per (config seed, host, purpose)."""
    host, _ = rlds.resolve_process(config.process_index, config.process_count)
    return (config.seed * 1_000_003 + host * 7_919 + purpose * 104_729 + index) % (2**31 - 1)


def resolve_bounds(spec: DatasetSpec, stats: bounds_lib.DatasetStats,
                   method: str) -> bounds_lib.Bounds:
    """The (low, high) a dataset's actions are normalised with (preset, explicit or computed)."""
    if isinstance(spec.action_bounds, str):
        low, high = NAMED_BOUNDS[spec.action_bounds]
        return tuple(low), tuple(high)
    if spec.action_bounds is not None:
        low, high = spec.action_bounds
        return tuple(float(v) for v in low), tuple(float(v) for v in high)
    return bounds_lib.action_bounds(stats, method)  # type: ignore[arg-type]


def make_trajectory_dataset(spec: DatasetSpec, config: DataConfig, index: int = 0,
                            builder: Any = None, plan: holdout.HoldoutPlan | None = None
                            ) -> tuple[tf.data.Dataset, str]:
    """This host's standardised, labelled trajectories of one dataset (no normalisation).

    Args:
        spec: the dataset.
        config: pipeline settings (split, subset, hosts, labels, seed, skip_unlabeled, train).
        index: the dataset's position in the mixture (varies its seeds).
        builder: the dataset's opened builder (None: opened from ``spec.path``).
        plan: its held-out plan (``holdout.plan_holdout``); needed unless subset is "all".

    Returns:
        ``(trajectories, name)``: standard trajectories (``standardize``) with ``reward``,
        ``done``, ``mask``, ``mc_return`` (``labels``); and the dataset's name.
    """
    builder = builder or rlds.open_builder(spec.path)
    name = spec.name or builder.info.name
    standardizer = standardize.get_standardizer(
        standardize.standardizer_name(builder, spec.name), **dict(spec.standardize_kwargs))
    split, keep = config.split, None
    if config.subset != "all":
        if plan is None:
            raise ValueError(f"dataset {name!r}: subset={config.subset!r} needs its held-out plan")
        if plan.source == "split":
            split = plan.train_split if config.subset == "train" else plan.val_split
        else:
            keep = config.subset == "validation"  # held-out episodes are the validation ones
    ds = rlds.read_trajectories(
        builder, split, process_index=config.process_index,
        process_count=config.process_count, shuffle_files=config.train,
        seed=_seed(config, index, 1), num_parallel_reads=config.num_parallel_calls)
    if keep is not None:
        fraction = plan.fraction  # type: ignore[union-attr]
        ds = ds.filter(lambda t: tf.equal(
            holdout.held_out_tf(holdout.episode_key(t), fraction), keep))
    if not config.candidates:  # not read: leave the recorded candidates compressed
        ds = ds.map(_without_candidates)
    ds = ds.map(standardizer, num_parallel_calls=config.num_parallel_calls)
    ds = ds.filter(lambda t: tf.shape(t["action"])[0] > 0)
    if config.skip_unlabeled:
        ds = ds.filter(lambda t: tf.strings.length(t["instruction"]) > 0)
    ds = ds.map(functools.partial(label_trajectory, config=config.labels),
                num_parallel_calls=config.num_parallel_calls)
    return ds, name


def _to_transitions(traj: dict[str, Any], index: int, low: np.ndarray, high: np.ndarray,
                    proprio_dim: int, normalize: bool, candidates: int = 0,
                    skip_takeovers: bool = False) -> dict[str, tf.Tensor]:
    """One trajectory (T steps) -> a dict of (T, ...) transition tensors."""
    n = tf.shape(traj["action"])[0]
    nxt = tf.minimum(tf.range(n) + 1, n - 1)
    proprio = traj["proprio"]
    pad = proprio_dim - proprio.shape[-1]
    if pad > 0:
        proprio = tf.pad(proprio, [[0, 0], [0, pad]])
    raw = traj["action"]
    action = candidates_lib.normalize(raw, low, high) if normalize else raw
    extra = (candidates_lib.step_candidates(traj, n, candidates, low, high, normalize,
                                            skip_takeovers) if candidates else {})
    return {
        "image": traj["image"],
        "next_image": tf.gather(traj["image"], nxt),
        "proprio": proprio,
        "next_proprio": tf.gather(proprio, nxt),
        "action": action,
        "next_action": tf.gather(action, nxt),
        "raw_action": raw,
        "reward": traj["reward"],
        "mask": traj["mask"],
        "mc_return": traj["mc_return"],
        "episode_success": traj["outcome"],
        "instruction": tf.fill([n], traj["instruction"]),
        "dataset_index": tf.fill([n], tf.constant(index, tf.int32)),
        **extra,
    }


def _frame_transform(frame: dict[str, tf.Tensor], seed: tf.Tensor,
                     config: DataConfig) -> dict[str, tf.Tensor]:
    decode = functools.partial(_decode_and_resize, size=config.image_size,
                               method=config.resize_method)
    pair = tf.stack([decode(frame["image"]), decode(frame["next_image"])])
    if config.train and config.augment.enabled:
        pair = augment_images(pair, seed, config.augment)
    return {**frame, "image": pair[0], "next_image": pair[1]}


def make_dataset(config: DataConfig) -> DataPipeline:
    """Builds the (mixture) pipeline of ``config``; see the module docstring.

    Statistics (bounds and sizes) are computed once per dataset over the whole split, or read
    from ``config.cache_dir``.

    Returns:
        The pipeline: the batched ``tf.data.Dataset`` plus names, weights, stats and bounds.
    """
    names, per_dataset, stats, bounds, sizes = [], [], {}, {}, []
    builders = [rlds.open_builder(spec.path) for spec in config.datasets]
    plans = [None if config.subset == "all" else holdout.plan_holdout(
        b, config.split, config.val_split, float(config.val_fraction), config.cache_dir)
        for b in builders]
    trajs = [make_trajectory_dataset(spec, config, i, builder, plan)
             for i, (spec, builder, plan) in enumerate(zip(config.datasets, builders, plans))]
    plan_by_name = {}
    for i, (spec, builder, (ds, name)) in enumerate(zip(config.datasets, builders, trajs)):
        key = name if name not in stats else f"{name}#{i}"  # e.g. two vgps_sim collections
        stats[key] = bounds_lib.dataset_stats(
            builder, config.split, spec.standardize_kwargs, config.cache_dir,
            name=standardize.standardizer_name(builder, spec.name))
        if plans[i] is not None:
            plan_by_name[key] = plans[i]
        bounds[key] = resolve_bounds(spec, stats[key], config.bounds_method)
        names.append(key)
        sizes.append(stats[key].num_transitions)
        if ds.element_spec["proprio"].shape[-1] is None:
            raise ValueError(f"dataset {key!r}: the standardiser must give proprio a static "
                             "last dimension")
    proprio_dim = max(int(ds.element_spec["proprio"].shape[-1]) for ds, _ in trajs)
    for i, (ds, _) in enumerate(trajs):
        low, high = (np.asarray(b, np.float32) for b in bounds[names[i]])
        if config.train:
            ds = ds.repeat()
        ds = ds.map(functools.partial(_to_transitions, index=i, low=low, high=high,
                                      proprio_dim=proprio_dim,
                                      normalize=config.normalize_actions,
                                      candidates=config.candidates,
                                      skip_takeovers=config.candidates_skip_takeovers),
                    num_parallel_calls=config.num_parallel_calls)
        per_dataset.append(ds.flat_map(tf.data.Dataset.from_tensor_slices))

    weights = np.array([spec.weight for spec in config.datasets], np.float64)
    if config.balance_weights:
        weights = weights * np.asarray(sizes, np.float64)
    if config.subset != "all":
        _check_sides(config, names, weights, plan_by_name)
    weights = weights / weights.sum()
    if len(per_dataset) == 1:
        ds = per_dataset[0]
    else:
        ds = tf.data.Dataset.sample_from_datasets(
            per_dataset, weights=weights.tolist(), seed=_seed(config, 0, 2),
            stop_on_empty_dataset=False)  # evaluation: one pass over every dataset
    if config.train:
        ds = ds.shuffle(config.shuffle_buffer, seed=_seed(config, 0, 3))
    aug_seed = _seed(config, 0, 4)
    ds = ds.enumerate().map(
        lambda i, frame: _frame_transform(frame, tf.stack([tf.constant(aug_seed, tf.int64), i]),
                                          config),
        num_parallel_calls=config.num_parallel_calls)
    ds = ds.batch(config.batch_size, drop_remainder=True)
    ds = ds.prefetch(config.prefetch)
    options = tf.data.Options()
    options.deterministic = True
    ds = ds.with_options(options)
    return DataPipeline(dataset=ds, names=tuple(names), weights=tuple(float(w) for w in weights),
                        stats=stats, bounds=bounds, heldout=plan_by_name)


def _check_sides(config: DataConfig, names: list[str], weights: np.ndarray,
                 plans: dict[str, holdout.HoldoutPlan]) -> None:
    """Fail clearly where a sampled dataset has no episodes on the side being read (a repeated
    empty dataset would never yield a batch)."""
    side = "train_episodes" if config.subset == "train" else "val_episodes"
    empty = [n for n, w in zip(names, weights) if w > 0 and getattr(plans[n], side) == 0]
    if config.subset == "train" and empty:
        raise ValueError(f"datasets {empty}: no training episodes left after holding out "
                         f"data.val_fraction={config.val_fraction} (lower it)")
    if config.subset == "validation" and len(empty) == len(names):
        raise ValueError(f"no held-out validation episodes in {names} at data.val_fraction="
                         f"{config.val_fraction}: raise it, or set val_every=0")
