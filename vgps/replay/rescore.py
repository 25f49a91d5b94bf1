"""Replay a recorded run: re-score every recorded step with a critic and compare the choices.

For each step of a bag written by ``vgps up --record`` (a ``/vgps/scored`` message, the
``/camera/image_raw`` frame with the same stamp and the ``/vgps/selected`` decision for that
stamp) the candidates are scored again exactly as the live critic node scores them
(:class:`vgps_critic.encode_cache.StampedEncoder` around :func:`vgps_critic.load`: the frame
resized to the critic's size, ``score(stamp, instruction, chunks[:, 0])``), and the choice is made
again with the selector's rule (:func:`vgps_critic.select`; for beta > 0 the key is
``fold_in(key(seed), step)`` as in :mod:`vgps_widowx.selector`). With the critic that was live the
Q-values match the recorded ones (to float32 round-off) and every choice agrees; with another
critic, a smaller K (``k``: the first K candidates) or another beta the report shows where and
how the choice changes.

The critic defaults to the one ``vgps up --record`` named in the bag's ``metadata.yaml``
(``custom_data: {vgps.critic: PATH}``); its ``critic_id`` must then equal the recorded one. An
explicit ``critic`` may differ ("another critic"): the mismatch is reported, and Q differences
are only computed between equal critics.

Damaged bags are replayed as far as they are readable: ``problems`` lists what was lost, and steps
without their camera frame (or with malformed candidates) are listed in ``skipped``.

Writes ``OUT/replay.json`` (summary, per-step records, per-episode summaries, critic ids, bag
problems) and ``OUT/report.html`` (:mod:`vgps.replay.report`). Publishing a bag back onto live
topics is
:func:`vgps.bags.publish.publish_bag`.

Usage::

    from vgps.replay.rescore import replay
    summary = replay("out/bags/run1", out="out/replay")                 # the recorded critic
    summary = replay("out/bags/run1", critic="models/other", k=5, out="out/replay_k5")
    summary["agreement"], summary["max_abs_q_diff"], summary["changed_steps"]
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vgps import __version__

__all__ = ["DECIDED", "REPLAY_JSON", "RUN_INFO", "StepFrame", "load_run_info", "replay",
           "resolve_critic"]

REPLAY_JSON = "replay.json"
RUN_INFO = "metadata.yaml"  # its custom_data names the run's critic (vgps up --record)
DECIDED = ("argmax", "softmax")  # recorded reasons that are a choice among scored candidates
SCORED, SELECTED, CAMERA = "/vgps/scored", "/vgps/selected", "/camera/image_raw"
EPISODE, JOINTS = "/vgps/episode", "/joint_states"


@dataclasses.dataclass
class StepFrame:
    """What the report draws for one step: the frame with both choices.

    Attributes:
        record: index into ``summary["records"]``.
        frame: uint8 (H, W, 3) RGB camera frame of the step.
        ee_pos: (3,) end-effector position (m, base frame) or None when unknown.
        actions: (K_recorded, 7) first action of every recorded candidate.
        q_recorded: (K_recorded,) recorded Q-values; ``q_new``: (K,) replayed ones.
        recorded_index: executed candidate (-1: none); ``new_index``: the replayed choice.
    """

    record: int
    frame: np.ndarray
    ee_pos: np.ndarray | None
    actions: np.ndarray
    q_recorded: np.ndarray
    q_new: np.ndarray
    recorded_index: int
    new_index: int


@dataclasses.dataclass
class _Step:
    """One recorded step's messages (matched by the source image stamp)."""

    stamp_ns: int
    log_time_ns: int
    scored: Any
    episode: int | None
    selected: Any = None  # the executed decision for this stamp (or another one, or None)
    beta: float = 0.0  # the selector's beta then (the decision's, else the latest before)
    joints: Any = None  # the newest JointState stamped at or before the frame


def load_run_info(bag: str | os.PathLike) -> dict[str, Any] | None:
    """What ``vgps up --record`` stored about the run in the bag's ``metadata.yaml``
    (``custom_data``: ``vgps.critic``, ``vgps.robot``, ...), as ``{"critic": PATH, "arguments":
    {"robot": ...}}``; None when the bag (directory, or a bare ``.mcap`` file's directory) has no
    ``metadata.yaml``.

    Raises:
        ValueError: ``metadata.yaml`` exists but is unreadable.
    """
    path = Path(bag)
    path = (path if path.is_dir() else path.parent) / RUN_INFO
    if not path.is_file():
        return None
    try:
        info = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        custom = (info.get("rosbag2_bagfile_information") or {}).get("custom_data") or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); pass --critic explicitly") from None
    if not isinstance(custom, dict):
        raise ValueError(f"{path}: custom_data is not a mapping; pass --critic explicitly")
    arguments = {k.removeprefix("vgps."): v for k, v in custom.items()
                 if k.startswith("vgps.") and k != "vgps.critic"}
    return {"critic": custom.get("vgps.critic"), "arguments": arguments}


def resolve_critic(bag: str | os.PathLike, critic: str | os.PathLike | None,
                   run_info: dict[str, Any] | None,
                   recorded_ids: list[str] | None = None) -> tuple[Path, bool]:
    """The critic checkpoint to replay with and whether it was given explicitly.

    Without ``critic``, the ``"critic"`` of ``metadata.yaml`` (relative paths: to the working
    directory, else to the bag directory). ``recorded_ids`` (the bag's ``critic_id`` s) only
    make the error message more helpful.

    Raises:
        ValueError: no critic given and none recorded in ``metadata.yaml``.
    """
    if critic is not None:
        return Path(critic), True
    bag_dir = Path(bag) if Path(bag).is_dir() else Path(bag).parent
    recorded = (run_info or {}).get("critic")
    if not recorded or not isinstance(recorded, str):
        why = (f"{bag_dir / RUN_INFO} does not exist" if run_info is None
               else f"{bag_dir / RUN_INFO} names no critic (custom_data vgps.critic)")
        live = f" ({', '.join(recorded_ids)})" if recorded_ids else ""
        raise ValueError(f"which critic? {why}; pass --critic PATH (the checkpoint that was "
                         f"live{live}, or another one to compare against)")
    path = Path(recorded).expanduser()
    if not path.is_absolute() and not path.exists() and (bag_dir / path).exists():
        path = bag_dir / path
    return path, False


def _collect(reader: Any) -> tuple[list[_Step], dict[int, dict[str, Any]], int]:
    """Pass 1 (no frames): every ScoredCandidates with its decision and joints, the episodes.

    Returns:
        ``(steps in log-time order, {episode: info}, number of duplicate scored stamps)``.
    """
    from vgps_ros.conversions import stamp_to_ns

    steps: dict[int, _Step] = {}
    selected: dict[int, list[Any]] = {}
    joints: list[tuple[int, Any]] = []
    episodes: dict[int, dict[str, Any]] = {}
    duplicates = 0
    current: int | None = None
    items = sorted(reader.messages([SCORED, SELECTED, EPISODE, JOINTS]),
                   key=lambda m: m.log_time_ns)
    for item in items:
        msg = item.message
        if item.topic == EPISODE:
            current = int(msg.episode)
            ep = episodes.setdefault(current, {"episode": current, "task": msg.task,
                                               "instruction": msg.instruction})
            ep.update(last_event=msg.event, success=bool(msg.success), steps=int(msg.step))
        elif item.topic == SCORED:
            stamp = stamp_to_ns(msg.header.stamp)
            if stamp in steps:
                duplicates += 1
            else:
                steps[stamp] = _Step(stamp, item.log_time_ns, msg, current)
        elif item.topic == SELECTED:
            selected.setdefault(stamp_to_ns(msg.header.stamp), []).append(msg)
        elif item.topic == JOINTS:
            joints.append((stamp_to_ns(msg.header.stamp), msg))
    joints.sort(key=lambda pair: pair[0])
    joint_stamps = [s for s, _ in joints]
    ordered = sorted(steps.values(), key=lambda s: s.log_time_ns)
    beta = 0.0
    for step in ordered:
        decisions = selected.get(step.stamp_ns, [])
        decided = [d for d in decisions if d.reason in DECIDED]
        step.selected = (decided or decisions or [None])[0]
        beta = float(step.selected.beta) if step.selected is not None else beta
        step.beta = beta
        before = bisect.bisect_right(joint_stamps, step.stamp_ns)  # the arm has not moved since
        step.joints = joints[before - 1][1] if before else None
    return ordered, episodes, duplicates


class _Rescorer:
    """Scores one step again like the critic node and redoes the selector's choice."""

    def __init__(self, model: Any, k: int | None, beta: float | None, seed: int):
        from vgps_critic.encode_cache import StampedEncoder

        self.model, self.k, self.beta, self.seed = model, k, beta, seed
        self.encoder = StampedEncoder(model, max_entries=2)
        self.clamped = 0

    def __call__(self, rec: _Step, image_msg: Any
                 ) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        """The step's record, its RGB frame (H, W, 3) and the (K, D) recorded first actions.

        Raises:
            ValueError: (``MessageError`` included) an unusable frame, candidates or Q-values.
        """
        import jax

        from vgps_critic.selection import select
        from vgps_ros.conversions import candidates_from_msg, image_from_msg
        from vgps_ros.input_guard import MessageError

        cands = candidates_from_msg(rec.scored.candidates, self.model.config.action_dim)
        frame = image_from_msg(image_msg)
        q_rec = np.asarray(rec.scored.q_values, dtype=np.float32).reshape(-1)
        if q_rec.size != cands.k:
            raise MessageError("bad_q", f"{q_rec.size} recorded Q-values for K={cands.k}")
        use_k = cands.k if self.k is None else min(self.k, cands.k)
        self.clamped += int(self.k is not None and self.k > cands.k)
        self.encoder.add_image(rec.stamp_ns, frame)  # the critic node's path, exactly
        q_new = self.encoder.score(rec.stamp_ns, cands.instruction, cands.chunks[:use_k, 0]).q
        beta = rec.beta if self.beta is None else self.beta
        key = jax.random.fold_in(jax.random.key(self.seed), cands.step) if beta > 0 else None
        choice = select(q_new, beta, key)
        sel = rec.selected
        reason = sel.reason if sel is not None else "missing"
        index = int(sel.index) if reason in DECIDED else -1
        return {
            "episode": rec.episode, "step": cands.step, "stamp_ns": rec.stamp_ns,
            "k_recorded": cands.k, "k": use_k, "beta": beta,
            "recorded_beta": float(sel.beta) if sel is not None else None,
            "recorded_critic": rec.scored.critic_id,
            "same_critic": rec.scored.critic_id == self.model.critic_id,
            "q_recorded": q_rec.tolist(), "q_new": q_new.tolist(),
            "max_abs_q_diff": float(np.max(np.abs(q_new - q_rec[:use_k]))),
            "same_candidates": use_k == cands.k,
            "recorded_index": index, "recorded_reason": reason,
            "recorded_q": float(q_rec[index]) if index >= 0 else None,
            "new_index": choice.index, "new_reason": choice.reason, "new_q": choice.q,
            "new_q_of_recorded": float(q_new[index]) if 0 <= index < use_k else None,
            "agree": (choice.index == index) if reason in DECIDED else None,
        }, frame, cands.chunks[:, 0]


class _EndEffector:
    """EE position from a JointState (forward kinematics of the arm's MJCF), when available."""

    def __init__(self) -> None:
        self._kin: Any = None
        self.error = ""
        try:
            from vgps_widowx.robot.kinematics import ArmKinematics, kinematic_model

            self._kin = ArmKinematics(kinematic_model())
        except Exception as exc:  # noqa: BLE001 - no MuJoCo: frames are drawn without arrows
            self.error = f"{type(exc).__name__}: {exc}"

    def __call__(self, msg: Any) -> np.ndarray | None:
        from vgps_widowx.ros_conversions import MessageError, arm_joints_from_msg

        if self._kin is None or msg is None:
            return None
        try:
            q = arm_joints_from_msg(msg)
        except MessageError:
            return None
        return np.asarray(self._kin.forward(q)[0])


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None, numpy -> Python, recursively (replay.json is strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def replay(bag: str | os.PathLike, critic: str | os.PathLike | None = None,
           k: int | None = None, beta: float | None = None,
           out: str | os.PathLike = "out/replay", *, seed: int = 0, report: bool = True,
           max_thumbnails: int = 24, progress: bool = False) -> dict[str, Any]:
    """Re-scores and re-decides every recorded step; writes ``OUT/replay.json`` (+ report).

    Args:
        bag: bag directory (or ``.mcap`` file) recorded by ``vgps up --record``.
        critic: checkpoint to score with (default: ``metadata.yaml``'s critic).
        k: score only the first K candidates of each step (default: all recorded); a K above a
            step's recorded K is clamped to it, with a note.
        beta: selection temperature (default: each step's recorded beta).
        out: output directory (created).
        seed: the selector's ``seed`` parameter (softmax keys ``fold_in(key(seed), step)``).
        report: also write ``OUT/report.html``.
        max_thumbnails: frames drawn for changed steps in the report.
        progress: show a progress bar.

    Returns:
        The summary written to ``replay.json``: ``steps`` (replayed), ``agreement`` (fraction
        of steps with a recorded choice where the new choice is the same; None without any),
        ``max_abs_q_diff`` (over steps scored by the same critic with the same candidates;
        None without any), ``changed_steps``, ``skipped``, ``problems``, ``critic``,
        ``episodes``, ``records`` (per step) and more.

    Raises:
        vgps.bags.writer.BagError: nothing in ``bag`` is readable.
        ValueError: bad ``k``/``beta``, no critic, or a recorded critic that is not the one
            ``metadata.yaml`` names.
    """
    from tqdm import tqdm

    import vgps_critic
    from vgps.bags import BagReader
    from vgps_critic.selection import validate_beta
    from vgps_ros.conversions import stamp_to_ns
    from vgps_ros.input_guard import MessageError

    if k is not None and (isinstance(k, bool) or int(k) != k or k < 1):
        raise ValueError(f"k={k!r}: must be an integer >= 1")
    beta = None if beta is None else validate_beta(beta)
    started = time.monotonic()
    out = Path(out)
    reader = BagReader(bag)
    run_info = load_run_info(bag)
    steps, episodes, duplicates = _collect(reader)
    recorded_ids = sorted({s.scored.critic_id for s in steps})
    critic_path, explicit = resolve_critic(bag, critic, run_info, recorded_ids)
    model = vgps_critic.load(critic_path)
    if not explicit and recorded_ids and model.critic_id not in recorded_ids:
        raise ValueError(f"{critic_path} is critic {model.critic_id}, but the bag was scored by "
                         f"{', '.join(recorded_ids)}: the checkpoint changed since recording. "
                         "Pass --critic PATH to replay against it anyway")
    notes = [f"{duplicates} duplicate /vgps/scored stamps ignored"] if duplicates else []
    if not steps:
        notes.append("the bag holds no /vgps/scored messages: nothing to replay")

    # Pass 2: the frames, one at a time (a long run's images need not fit in memory).
    rescore = _Rescorer(model, None if k is None else int(k), beta, seed)
    end_effector = _EndEffector()
    by_stamp = {s.stamp_ns: s for s in steps}
    outcomes: dict[int, dict[str, Any] | str] = {}  # stamp -> record, or why it was skipped
    drawn: dict[int, tuple[np.ndarray, np.ndarray | None, np.ndarray]] = {}
    total = reader.topics[CAMERA].count if CAMERA in reader.topics else None
    for item in tqdm(reader.messages([CAMERA]), total=total, desc="replay", unit="frame",
                     disable=not progress):
        stamp = stamp_to_ns(item.message.header.stamp)
        rec = by_stamp.get(stamp)
        if rec is None or stamp in outcomes:
            continue
        try:
            record, frame, actions = rescore(rec, item.message)
        except MessageError as exc:
            outcomes[stamp] = f"{exc.kind}: {exc.detail}"
            continue
        except (ValueError, TypeError) as exc:  # the critic's own input checks
            outcomes[stamp] = f"bad_candidates: {exc}"
            continue
        outcomes[stamp] = record
        if record["agree"] is False and len(drawn) < max_thumbnails:
            drawn[stamp] = (frame, end_effector(rec.joints), actions)
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    frames: list[StepFrame] = []
    for rec in steps:
        outcome = outcomes.get(rec.stamp_ns, f"no {CAMERA} frame with this stamp in the bag")
        if isinstance(outcome, str):
            skipped.append({"episode": rec.episode, "step": int(rec.scored.candidates.step),
                            "stamp_ns": rec.stamp_ns, "reason": outcome})
            continue
        records.append(outcome)
        if rec.stamp_ns in drawn:
            frame, ee, actions = drawn[rec.stamp_ns]
            frames.append(StepFrame(len(records) - 1, frame, ee, actions,
                                    np.asarray(outcome["q_recorded"]),
                                    np.asarray(outcome["q_new"]), outcome["recorded_index"],
                                    outcome["new_index"]))
    changed = [i for i, r in enumerate(records) if r["agree"] is False]
    if rescore.clamped:
        notes.append(f"k={k} is more than recorded at {rescore.clamped} steps: scored all "
                     "recorded candidates there")
    if end_effector.error:
        notes.append(f"no end-effector positions for the overlay ({end_effector.error})")
    compared = [r for r in records if r["agree"] is not None]
    comparable = [r["max_abs_q_diff"] for r in records
                  if r["same_critic"] and r["same_candidates"]]
    summary = {
        "bag": str(bag), "vgps_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "steps": len(records), "compared": len(compared),
        "agreement": (sum(r["agree"] for r in compared) / len(compared)) if compared else None,
        "max_abs_q_diff": max(comparable) if comparable else None,
        "changed_steps": [{key: records[i][key] for key in
                           ("episode", "step", "stamp_ns", "recorded_index", "new_index")}
                          for i in changed],
        "critic": {"path": str(critic_path), "id": model.critic_id, "explicit": explicit,
                   "recorded_ids": recorded_ids,
                   "same_as_recorded": recorded_ids == [model.critic_id]},
        "k": k, "beta": beta, "seed": seed,
        "recorded_k": sorted({r["k_recorded"] for r in records}),
        "recorded_beta": sorted({r["recorded_beta"] for r in records
                                 if r["recorded_beta"] is not None}),
        "problems": list(reader.problems), "skipped": skipped, "notes": notes,
        "bag_counts": {name: t.count for name, t in reader.topics.items()},
        "run_info": run_info,
        "episodes": _episode_summaries(episodes, records),
        "records": records,
    }
    summary["elapsed_s"] = round(time.monotonic() - started, 3)
    summary["report"] = str(out / "report.html") if report else None
    out.mkdir(parents=True, exist_ok=True)
    summary = _json_safe(summary)
    (out / REPLAY_JSON).write_text(json.dumps(summary, indent=1), encoding="utf-8")
    if report:
        from vgps.replay.report import write_report

        robot = str(((run_info or {}).get("arguments") or {}).get("robot", "sim"))
        write_report(summary, frames, out, robot=robot)
    return summary


def _episode_summaries(episodes: dict[int, dict[str, Any]],
                       records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per episode: task, outcome (from EpisodeStatus), replayed steps, agreement, mean Q."""
    numbers = sorted(set(episodes) | {r["episode"] for r in records if r["episode"] is not None})
    out = []
    for number in numbers:
        info = episodes.get(number, {})
        mine = [r for r in records if r["episode"] == number]
        compared = [r["agree"] for r in mine if r["agree"] is not None]
        recorded_q = [r["recorded_q"] for r in mine if r["recorded_q"] is not None]
        out.append({
            "episode": number, "task": info.get("task", ""),
            "instruction": info.get("instruction", ""),
            "outcome": info.get("last_event", "unknown"), "success": info.get("success"),
            "episode_steps": info.get("steps"), "replayed_steps": len(mine),
            "agreement": sum(compared) / len(compared) if compared else None,
            "changed": sum(1 for a in compared if not a),
            "mean_recorded_q": float(np.mean(recorded_q)) if recorded_q else None,
            "mean_new_q": float(np.mean([r["new_q"] for r in mine])) if mine else None,
        })
    return out
