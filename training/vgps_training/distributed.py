"""Data-parallel training with JAX's own distribution: one mesh axis over every device.

Parameters and optimiser state are replicated; each batch is split along its first axis over
all devices of all hosts. On several hosts call ``initialize`` first (``jax.distributed``); each
host then feeds its own shard of the data (``jax.process_index()`` / ``jax.process_count()``)
and ``shard_batch`` assembles the global batch without moving data between hosts.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Join a multi-host job (no-op for a single process).

    Arguments default to ``VGPS_COORDINATOR``, ``VGPS_NUM_PROCESSES``, ``VGPS_PROCESS_ID``; on
    TPU pods and SLURM ``jax.distributed.initialize()`` discovers them itself, which is what
    happens when ``VGPS_DISTRIBUTED=auto``.
    """
    coordinator_address = coordinator_address or os.environ.get("VGPS_COORDINATOR")
    if num_processes is None and "VGPS_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["VGPS_NUM_PROCESSES"])
    if process_id is None and "VGPS_PROCESS_ID" in os.environ:
        process_id = int(os.environ["VGPS_PROCESS_ID"])
    if coordinator_address:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    elif os.environ.get("VGPS_DISTRIBUTED") == "auto":
        jax.distributed.initialize()


def make_mesh(devices: list | None = None) -> Mesh:
    """A 1-D mesh named ``data`` over ``devices`` (default: every device of every host)."""
    devices = list(devices) if devices is not None else jax.devices()
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place a pytree (parameters, optimiser state) on every device of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Split this host's batch along axis 0 over its devices; the result is the global batch.

    The per-host batch must divide evenly by the number of local devices in ``mesh``.
    """
    sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
    local = len([d for d in mesh.devices.flat if d.process_index == jax.process_index()])
    out = {}
    for key, value in batch.items():
        value = np.asarray(value)
        if value.shape[0] % local:
            raise ValueError(f"batch[{key!r}] has {value.shape[0]} rows, not divisible by the "
                             f"{local} local devices; choose a batch size that is")
        out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out
