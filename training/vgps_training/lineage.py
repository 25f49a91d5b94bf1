"""What a critic was made from: its datasets (with the bags behind them) and its parent critic.

The trainer records this in ``run.json``; ``export`` copies it into the card as
``data.lineage``::

    {"parent": {"critic_id", "name", "path", "source", "member", "steps", "action_space"} | null,
     "datasets": [{"name", "version", "path", "weight", "held_out": {...},
                   "bags": [{"path", "run_id", "episodes"}]}]}   # bags: deployment datasets

A deployment dataset (``vgps dataset build``) has ``vgps_dataset.json`` beside its records; its
``bags`` entries list each bag's episode keys, of which the lineage keeps the count.

Usage::

    entry = dataset_lineage("data/rlds/vgps_deploy/1.0.0", "vgps_deploy", "1.0.0")
    card_lineage = card_lineage_from_run(json.loads(Path("runs/ft/run.json").read_text()))
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUMMARY = "vgps_dataset.json"


def dataset_bags(path: str | os.PathLike[str]) -> list[dict[str, Any]] | None:
    """The bags a dataset was built from, from its ``vgps_dataset.json`` (None: none there).

    Returns:
        ``[{"path", "run_id", "episodes"}]`` with ``episodes`` the number of episodes taken
        from that bag; None when the dataset has no summary (Bridge, vgps_sim) or it is
        unreadable (logged).
    """
    summary = Path(path) / SUMMARY
    if not summary.is_file():
        return None
    try:
        raw = json.loads(summary.read_text())
        bags = []
        for bag in raw.get("bags", []):
            episodes = bag.get("episodes", [])
            bags.append({"path": str(bag.get("path", "")), "run_id": str(bag.get("run_id", "")),
                         "episodes": len(episodes) if isinstance(episodes, list)
                         else int(episodes)})
        return bags
    except (ValueError, TypeError, AttributeError) as err:
        log.warning("ignoring unreadable dataset summary %s: %s", summary, err)
        return None


def dataset_lineage(path: str | os.PathLike[str], name: str, version: str) -> dict[str, Any]:
    """One dataset's lineage entry: name, version, path and (where known) its bags.

    The path is kept as the trainer was given it (relative to where it ran, like the parent's
    and the bags' paths), so that a card shipped with a project names no machine's folders.
    """
    entry: dict[str, Any] = {"name": name, "version": str(version),
                             "path": os.path.normpath(os.fspath(path))}
    bags = dataset_bags(path)
    if bags is not None:
        entry["bags"] = bags
    return entry


def card_lineage_from_run(info: dict[str, Any]) -> dict[str, Any]:
    """The card's ``data.lineage`` from a run's ``run.json`` contents."""
    datasets = []
    for key, entry in info.get("datasets", {}).items():
        item = dict(entry.get("lineage", {"name": key}))
        item["weight"] = entry.get("weight")
        if "held_out" in entry:
            item["held_out"] = entry["held_out"]
        datasets.append(item)
    return {"parent": info.get("parent"), "datasets": datasets}


__all__ = ["card_lineage_from_run", "dataset_bags", "dataset_lineage"]
