"""Open RLDS/TFDS datasets and read this host's shard of their episodes.

Every dataset is opened from its version directory (``<root>/<name>/<version>``, the folder
that holds ``dataset_info.json``) with ``tfds.builder_from_directory``; no dataset needs to be
registered or importable. Each JAX process reads a disjoint, contiguous range of the split's
examples (``tfds.split_for_jax_process``): TFDS maps that range to file instructions, so on a
dataset with many shards each host only opens its own files, and on a one-file dataset (the
Bridge debug slice) the examples are still divided exactly. Reading is deterministic for a
given seed.

Usage::

    builder = open_builder("/data/bridge_dataset/1.0.0")
    trajs = read_trajectories(builder, "train", process_index=0, process_count=1, seed=0)
    for traj in trajs.take(1):  # traj["steps"][...] tensors have a leading time axis T
        ...
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence

import tensorflow as tf
import tensorflow_datasets as tfds


def open_builder(path: str | os.PathLike[str]) -> tfds.core.DatasetBuilder:
    """Opens an RLDS/TFDS dataset version directory.

    Args:
        path: the directory holding ``dataset_info.json`` and ``features.json``
            (e.g. ``.../bridge_dataset/1.0.0``); local or any path ``tf.io.gfile`` can read.

    Returns:
        The read-only builder; ``builder.info.name`` is the dataset name.

    Raises:
        FileNotFoundError: when the directory or its ``dataset_info.json`` is missing.
    """
    path = os.fspath(path)
    if not tf.io.gfile.exists(os.path.join(path, "dataset_info.json")):
        raise FileNotFoundError(
            f"{path!r} is not a TFDS dataset version directory (no dataset_info.json); give the "
            "folder named after the version, e.g. .../bridge_dataset/1.0.0")
    return tfds.builder_from_directory(path)


def resolve_process(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    """Fills in this JAX process's index and the process count, then checks them.

    Args:
        process_index: explicit index, or None for ``jax.process_index()``.
        process_count: explicit count, or None for ``jax.process_count()``.

    Returns:
        ``(process_index, process_count)`` with ``0 <= index < count``.
    """
    if process_index is None or process_count is None:
        import jax  # deferred: only needed when the caller did not say

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if process_count < 1:
        raise ValueError(f"process_count={process_count!r}: must be >= 1")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index!r}: must be in [0, {process_count})")
    return process_index, process_count


def host_split(split: str, process_index: int, process_count: int) -> str | tfds.typing.SplitArg:
    """The part of ``split`` this process reads: a disjoint, near-equal slice of its examples.

    Args:
        split: a TFDS split expression (``"train"``, ``"train[:90%]"``...).
        process_index: this process, in ``[0, process_count)``.
        process_count: the number of processes; the slices of all processes cover ``split``.

    Returns:
        A split expression accepted by ``builder.as_dataset`` and ``builder.info.splits[...]``.
    """
    if process_count == 1:
        return split
    return tfds.split_for_jax_process(split, process_index=process_index,
                                      process_count=process_count)


@dataclasses.dataclass(frozen=True)
class ShardFile:
    """One file instruction of a split: which examples of which file are read."""

    path: str
    skip: int
    take: int
    num_bytes: int


def split_files(builder: tfds.core.DatasetBuilder, split: str) -> list[ShardFile]:
    """The files (and example ranges) behind a split expression, with their sizes.

    Args:
        builder: an opened builder.
        split: a split expression, e.g. ``"train"``.

    Returns:
        One ``ShardFile`` per file instruction, in TFDS order.
    """
    files = []
    for fi in builder.info.splits[split].file_instructions:
        size = tf.io.gfile.stat(fi.filename).length if tf.io.gfile.exists(fi.filename) else -1
        files.append(ShardFile(path=str(fi.filename), skip=int(fi.skip), take=int(fi.take),
                               num_bytes=int(size)))
    return files


def file_list_hash(files: Sequence[ShardFile], extra: str = "") -> str:
    """A stable SHA-256 hex digest of a file list (paths, example ranges, sizes) and ``extra``."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.path}|{f.skip}|{f.take}|{f.num_bytes}\n".encode())
    h.update(extra.encode())
    return h.hexdigest()


def read_trajectories(
    builder: tfds.core.DatasetBuilder,
    split: str = "train",
    *,
    process_index: int | None = None,
    process_count: int | None = None,
    shuffle_files: bool = False,
    seed: int = 0,
    num_parallel_reads: int = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """Reads this process's episodes as whole trajectories.

    Step features come batched over time and images stay encoded (JPEG/PNG bytes): decoding
    happens per transition, after shuffling, so buffers hold bytes, not pixels.

    Args:
        builder: an opened RLDS builder (``open_builder``).
        split: the split expression to divide among processes.
        process_index: this process (None: ``jax.process_index()``).
        process_count: the number of processes (None: ``jax.process_count()``).
        shuffle_files: shuffle this process's file order (deterministic given ``seed``).
        seed: seed of the file-order shuffle.
        num_parallel_reads: files read in parallel (interleave cycle length).

    Returns:
        A dataset of dicts: ``steps`` (nested dict of (T, ...) tensors, images as (T,) strings),
        ``episode_metadata`` when the dataset has it, and ``tfds_id`` (a () string unique per
        episode across the whole dataset).
    """
    index, count = resolve_process(process_index, process_count)
    read_config = tfds.ReadConfig(
        shuffle_seed=seed,
        add_tfds_id=True,
        interleave_cycle_length=num_parallel_reads,
        num_parallel_calls_for_interleave_files=num_parallel_reads,
        skip_prefetch=True,
    )
    return builder.as_dataset(
        split=host_split(split, index, count),
        shuffle_files=shuffle_files,
        decoders={"steps": tfds.decode.SkipDecoding()},
        read_config=read_config,
    )
