"""The simulated collections behind a critic's data, read back from the runs that made them.

A critic's card can list them (``vgps-train export --collections FILE``, ``data.collections``) so
that ``vgps critic compare`` refuses to evaluate on their seeds. Bags do not record the
simulator's seed, so the records come from the runs' own outputs:

- a ``vgps collect`` output directory (``index.json``): the master seed, K, the steering critic
  and the episodes per task;
- a ``vgps up`` output directory (``summary.json`` and ``params.yaml``) of a run on the
  simulator (``robot:=sim``): the arm driver's seed, K, the critic's path as given, the task,
  and the bag it recorded with its run id (from the bag's ``metadata.yaml``).

``parent_records`` adds the collections a parent critic's card lists (a single critic's
``data.collections``, or an ensemble member's entry in the ensemble's ``notes``), marked
``via: parent <id>``: a fine-tune carries its parent's data too.

Usage::

    records = run_records(["out/flywheel/base/stack_blocks", "out/flywheel/round1/up/x_k10"])
    records += parent_records("models/sim_critic_prev", member=1)
    write_collections("collections.json", records)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["parent_records", "run_records", "write_collections"]


def run_records(runs: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """One record per ``vgps collect`` or simulated ``vgps up`` output directory.

    Raises:
        ValueError: a directory that is neither, a ``vgps up`` run on a real robot (it has no
            simulator seed), or one whose files lack what a record needs.
    """
    records = []
    for run in runs:
        run = Path(run)
        if (run / "index.json").is_file():
            records.append(_collect_record(run))
        elif (run / "summary.json").is_file():
            records.append(_up_record(run))
        else:
            raise ValueError(f"{run}: neither a `vgps collect` output (index.json) nor a "
                             "`vgps up` output (summary.json)")
    return records


def _collect_record(run: Path) -> dict[str, Any]:
    index = _json(run / "index.json")
    settings, episodes = index.get("settings") or {}, index.get("episodes") or []
    if not isinstance(settings.get("seed"), int) or not episodes:
        raise ValueError(f"{run}/index.json: no master seed or no episodes")
    tasks = sorted({e.get("task") for e in episodes if e.get("task")})
    return {"name": run.as_posix(), "source": "vgps collect", "episodes": len(episodes),
            "seed": settings["seed"], "k": settings.get("K", 1),
            "steered_by": settings.get("critic"), "tasks": tasks}


def _up_record(run: Path) -> dict[str, Any]:
    import yaml

    summary = _json(run / "summary.json")
    arguments = summary.get("arguments") or {}
    if arguments.get("robot") != "sim":
        raise ValueError(f"{run}: a `vgps up` run with robot:={arguments.get('robot')!r} has no "
                         "simulator seed (only robot:=sim runs are collections)")
    try:
        params = yaml.safe_load((run / "params.yaml").read_text(encoding="utf-8"))
        seed = int(params["arm_driver"]["ros__parameters"]["seed"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{run}/params.yaml: no arm_driver seed ({exc})") from exc
    episodes = summary.get("episodes") or []
    record = {"name": run.as_posix(), "source": "vgps up", "episodes": len(episodes),
              "seed": seed, "k": int(arguments.get("k") or 1),
              "critic": arguments.get("critic") or None,  # the path it was given
              "tasks": sorted({e.get("task") for e in episodes if e.get("task")}),
              "intervention": (arguments.get("intervention") or "none").lower()}
    bag = arguments.get("record")
    if bag:
        record["bag"] = bag
        meta = Path(bag) / "metadata.yaml"
        if meta.is_file():
            info = yaml.safe_load(meta.read_text(encoding="utf-8"))
            custom = (info.get("rosbag2_bagfile_information") or {}).get("custom_data") or {}
            if custom.get("vgps.run_id"):
                record["run_id"] = custom["vgps.run_id"]
    return record


def parent_records(critic: str | os.PathLike, member: int | None = None) -> list[dict[str, Any]]:
    """The collections ``critic``'s card lists, each marked ``via: parent <id>``.

    Args:
        critic: a critic or ensemble checkpoint directory.
        member: for an ensemble, the member the fine-tune started from (``--init-member``);
            ``None`` takes every member's.

    Raises:
        ValueError: ``member`` out of range, or given for a single critic.
    """
    import vgps_critic

    loaded = vgps_critic.load(critic)
    members = getattr(loaded, "members", None)
    card = _json(Path(critic) / "card.json")
    if members is None:
        if member is not None:
            raise ValueError(f"{critic} is a single critic: no member {member}")
        found, parent_id = (card.get("data") or {}).get("collections") or [], loaded.critic_id
    else:
        if member is not None and not 0 <= member < len(members):
            raise ValueError(f"{critic}: member {member}; it has members 0..{len(members) - 1}")
        ids = [m.critic_id for m in members] if member is None else [members[member].critic_id]
        notes = (card.get("notes") or {}).get("members") or []
        found = [c for entry in notes if entry.get("critic_id") in ids
                 for c in entry.get("collections") or []]
        parent_id = ids[0] if member is not None else loaded.critic_id
    seen, records = set(), []
    for c in found:
        key = (c.get("name"), c.get("seed"))
        if key not in seen:
            seen.add(key)
            records.append({**c, "name": f"parent/{c.get('name')}", "via": f"parent {parent_id}"})
    return records


def write_collections(path: str | os.PathLike, records: list[dict[str, Any]]) -> Path:
    """Writes the records as the JSON list ``vgps-train export --collections`` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    return path


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data
