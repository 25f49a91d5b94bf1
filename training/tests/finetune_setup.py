"""Shared set-up of the fine-tuning tests: the Bridge debug slice, a debug config with a
deployment dataset beside it, and a Cal-QL agent continued from a parent critic with one batch.

Usage (in a test, with the ``parent`` and ``deploy_dataset`` fixtures of ``conftest.py``)::

    config, loaded, agent, state, raw, batch = parent_agent_and_batch(
        parent, deploy_dataset, tmp_path, "calql.td_backup=data")
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import pytest

from vgps_training import finetune
from vgps_training.config import apply_overrides, preset
from vgps_training.trainer import build_agent

REPO = Path(__file__).resolve().parents[2]
BRIDGE_ROOT = REPO.parent / "shared" / "data" / "bridge_debug"
needs_bridge = pytest.mark.skipif(not (BRIDGE_ROOT / "bridge_dataset" / "1.0.0").is_dir(),
                                  reason=f"Bridge debug slice not found at {BRIDGE_ROOT}")


def debug_config(tmp_path: Path, deploy: Path, *overrides: str):
    config = apply_overrides(preset("debug", str(BRIDGE_ROOT)), list(overrides))
    data = dataclasses.replace(
        config.data, cache_dir=str(tmp_path / "cache"), val_fraction=0.3,
        datasets=(*config.data.datasets,
                  dataclasses.replace(config.data.datasets[0], path=str(deploy))))
    return dataclasses.replace(config, data=data)


def parent_agent_and_batch(parent: Path, deploy: Path, tmp_path: Path, *overrides: str):
    """A debug-preset Cal-QL agent continued from ``parent`` (``overrides`` applied), its
    initial state, and one unaugmented batch of Bridge + ``deploy``: (config, parent, agent,
    state, raw batch, agent batch)."""
    from vgps_critic.language import get_encoder
    from vgps_training.data.pipeline import make_dataset
    from vgps_training.trainer import InstructionEmbedder, to_agent_batch

    config = debug_config(tmp_path, deploy, f"init_from={json.dumps(str(parent))}", *overrides)
    loaded = finetune.load_parent(config.init_from)
    config = finetune.resolve_config(config, loaded)
    agent = build_agent(config)
    state = finetune.initial_state(agent.init(jax.random.key(7)), loaded)
    raw = next(make_dataset(dataclasses.replace(config.data, train=False,
                                                subset="all")).as_numpy())
    batch = to_agent_batch(raw, InstructionEmbedder(get_encoder(config.language_encoder)))
    batch = {k: v for k, v in batch.items() if k != "episode_success"}
    return config, loaded, agent, state, raw, batch


def anchored_agent(parent: Path, deploy: Path, tmp_path: Path, *overrides: str):
    """``parent_agent_and_batch`` with the in-sample target and an anchor of weight 1 to the
    parent (set on the agent): (config, agent, state, batch)."""
    config, loaded, agent, state, _, batch = parent_agent_and_batch(
        parent, deploy, tmp_path, "calql.td_backup=data", "calql.anchor_weight=1.0", *overrides)
    agent.anchor = loaded.params()
    return config, agent, state, batch
