"""Export a training run's critic as a deployable vgps_critic checkpoint (card + parameters).

The exported parameters are the target critic (what the paper's deployment uses); the card
records the language encoder, the action bounds of the deployment dataset (a fine-tuned
critic's are its parent's), the reward and discount, a summary of the data with the episodes held
out for validation, the lineage (``data.lineage``: the parent critic and every dataset with its
bags, see ``lineage``) and the run's latest validation metrics (on held-out episodes).

``collections`` (``vgps-train export --collections FILE``) adds ``data.collections``: the
simulated collections behind the critic's data, one record each (``name``, ``episodes``,
``seed``: the master seed it ran with, and optionally ``steered_by``, ``k``, ``task``), as the
shipped ensemble's card lists them per member. ``vgps critic compare`` refuses to evaluate on
any seed a critic's card lists this way.

Usage::

    card = export("runs/sim", "models/my_critic")
    card = export("runs/ft", "models/sim_critic", name="sim-critic",
                  collections=json.loads(Path("collections.json").read_text()))
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from vgps_critic.checkpoint import CriticCard, save_checkpoint
from vgps_critic.config import ActionSpace
from vgps_training.lineage import card_lineage_from_run
from vgps_training.logger import read_metrics
from vgps_training.trainer import _critic_config, build_agent, latest_state


def export(run_dir: str | Path, out: str | Path, name: str | None = None,
           overwrite: bool = False,
           collections: list[dict[str, Any]] | None = None) -> CriticCard:
    """Write the latest checkpoint of ``run_dir`` to ``out``; returns the card.

    Raises:
        ValueError: a ``collections`` record without a name, a whole episode count or seed.
    """
    collections = check_collections(collections) if collections is not None else None
    run_dir = Path(run_dir)
    config, state, step = latest_state(run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    deploy = info["deploy_dataset"]
    parent = info.get("parent")
    bounds = (parent["action_space"] if parent else info["datasets"][deploy]["bounds"])
    agent = build_agent(config)
    params = jax.tree_util.tree_map(np.asarray, agent.deployable_params(state))
    card = CriticCard(
        config=_critic_config(config),
        action_space=ActionSpace.from_bounds(bounds["low"], bounds["high"]),
        language_encoder=info["language_encoder"],
        name=name or f"{config.name}-{config.agent}-{step}",
        reward={"scheme": f"last {config.data.labels.success_horizon} steps of successful "
                          "episodes 0, else -1",
                "discount": config.agent_config.discount,
                "failure_return": config.data.labels.failure_return,
                "takeover": config.data.labels.takeover},
        data={"datasets": {k: {"weight": v["weight"], **_summary(v["stats"]),
                               **({"held_out": v["held_out"]} if "held_out" in v else {})}
                           for k, v in info["datasets"].items()},
              "bounds_from": f"parent {parent['critic_id']}" if parent else deploy,
              "image_size": list(config.data.image_size),
              "lineage": card_lineage_from_run(info),
              **({"collections": collections} if collections is not None else {})},
        training={"algorithm": config.agent, "steps": int(step), "batch_size": config.batch_size,
                  "seed": config.seed,
                  "init_from": parent["critic_id"] if parent else None,
                  "hyperparameters": dataclasses.asdict(config.agent_config),
                  "validation": _last_validation(run_dir)},
    )
    return save_checkpoint(out, card, params, overwrite=overwrite)


def check_collections(collections: Any) -> list[dict[str, Any]]:
    """``collections`` checked: a list of JSON objects with ``name`` (str), ``episodes`` and
    ``seed`` (ints >= 0); other keys are kept as they are."""
    if not isinstance(collections, list):
        raise ValueError(f"collections must be a JSON list of records, got "
                         f"{type(collections).__name__}")
    for i, record in enumerate(collections):
        if not isinstance(record, dict):
            raise ValueError(f"collections[{i}] must be an object, got {record!r}")
        if not isinstance(record.get("name"), str) or not record["name"]:
            raise ValueError(f"collections[{i}] needs a 'name' (a non-empty string)")
        for key in ("episodes", "seed"):
            value = record.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"collections[{i}] ({record['name']}): '{key}' must be a whole "
                                 f"number >= 0, got {value!r}")
    json.dumps(collections)  # fail before writing anything
    return [dict(r) for r in collections]


def _summary(stats: dict[str, Any]) -> dict[str, Any]:
    keys = ("num_trajectories", "num_transitions", "version")
    return {k: stats[k] for k in keys if k in stats}


def _last_validation(run_dir: Path) -> dict[str, float]:
    rows = [r for r in read_metrics(run_dir) if any(k.startswith("val/") for k in r)]
    if not rows:
        return {}
    return {k[4:]: v for k, v in rows[-1].items() if k.startswith("val/")} | {
        "step": rows[-1]["step"]}
