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

Returns a :class:`~vgps.replay.result.ReplayResult` and writes its ``to_json()`` to
``OUT/replay.json`` (summary, per-step records, per-episode summaries, critic ids, bag problems)
and ``OUT/report.html`` (:mod:`vgps.replay.report`). Reading the bag's steps is
:mod:`vgps.replay.recorded`; publishing a bag back onto live topics is
:func:`vgps.bags.publish.publish_bag`.

Usage::

    from vgps.replay.rescore import replay
    result = replay("out/bags/run1", out="out/replay")                 # the recorded critic
    result = replay("out/bags/run1", critic="models/other", k=5, out="out/replay_k5")
    result.agreement, result.max_abs_q_diff, result.changed_steps
"""

from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgps import __version__
from vgps.replay.recorded import (
    CAMERA,
    DECIDED,
    RUN_INFO,
    RecordedStep,
    collect_steps,
    load_run_info,
    resolve_critic,
)
from vgps.replay.result import (
    CriticInfo,
    ReplayResult,
    SkippedStep,
    StepFrame,
    StepRecord,
    summarize_episodes,
)

if TYPE_CHECKING:
    from vgps_critic import Scorer

__all__ = ["DECIDED", "REPLAY_JSON", "RUN_INFO", "ReplayResult", "StepFrame", "load_run_info",
           "replay", "resolve_critic"]

REPLAY_JSON = "replay.json"


class _Rescorer:
    """Scores one step again like the critic node and redoes the selector's choice."""

    def __init__(self, model: Scorer, k: int | None, beta: float | None, seed: int):
        from vgps_critic.encode_cache import StampedEncoder

        self.model, self.k, self.beta, self.seed = model, k, beta, seed
        self.encoder = StampedEncoder(model, max_entries=2)
        self.clamped = 0

    def __call__(self, rec: RecordedStep, image_msg: Any
                 ) -> tuple[StepRecord, np.ndarray, np.ndarray]:
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
        return StepRecord(
            episode=rec.episode, step=cands.step, stamp_ns=rec.stamp_ns,
            k_recorded=cands.k, k=use_k, beta=beta,
            recorded_beta=float(sel.beta) if sel is not None else None,
            recorded_critic=rec.scored.critic_id,
            same_critic=rec.scored.critic_id == self.model.critic_id,
            q_recorded=tuple(q_rec.tolist()), q_new=tuple(q_new.tolist()),
            max_abs_q_diff=float(np.max(np.abs(q_new - q_rec[:use_k]))),
            same_candidates=use_k == cands.k,
            recorded_index=index, recorded_reason=reason,
            recorded_q=float(q_rec[index]) if index >= 0 else None,
            new_index=int(choice.index), new_reason=choice.reason, new_q=float(choice.q),
            new_q_of_recorded=float(q_new[index]) if 0 <= index < use_k else None,
            agree=bool(choice.index == index) if reason in DECIDED else None,
        ), frame, cands.chunks[:, 0]


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
        from vgps_ros.input_guard import MessageError
        from vgps_widowx.ros_conversions import arm_joints_from_msg

        if self._kin is None or msg is None:
            return None
        try:
            q = arm_joints_from_msg(msg)
        except MessageError:
            return None
        return np.asarray(self._kin.forward(q)[0])


def replay(bag: str | os.PathLike, critic: str | os.PathLike | None = None,
           k: int | None = None, beta: float | None = None,
           out: str | os.PathLike = "out/replay", *, seed: int = 0, report: bool = True,
           max_thumbnails: int = 24, progress: bool = False) -> ReplayResult:
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
        The :class:`~vgps.replay.result.ReplayResult` (``replay.json`` holds its ``to_json()``):
        ``steps`` (replayed), ``agreement`` (fraction of steps with a recorded choice where the
        new choice is the same; None without any), ``max_abs_q_diff`` (over steps scored by the
        same critic with the same candidates; None without any), ``changed_steps``,
        ``skipped``, ``problems``, ``critic``, ``episodes``, ``records`` (per step) and more.

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
    steps, episodes, duplicates = collect_steps(reader)
    recorded_ids = sorted({s.scored.critic_id for s in steps})
    critic_path, explicit = resolve_critic(bag, critic, run_info, recorded_ids)
    model: Scorer = vgps_critic.load(critic_path)
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
    outcomes: dict[int, StepRecord | str] = {}  # stamp -> record, or why it was skipped
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
        if record.agree is False and len(drawn) < max_thumbnails:
            drawn[stamp] = (frame, end_effector(rec.joints), actions)
    records: list[StepRecord] = []
    skipped: list[SkippedStep] = []
    frames: list[StepFrame] = []
    for rec in steps:
        outcome = outcomes.get(rec.stamp_ns, f"no {CAMERA} frame with this stamp in the bag")
        if isinstance(outcome, str):
            skipped.append(SkippedStep(rec.episode, int(rec.scored.candidates.step),
                                       rec.stamp_ns, outcome))
            continue
        records.append(outcome)
        if rec.stamp_ns in drawn:
            frame, ee, actions = drawn[rec.stamp_ns]
            frames.append(StepFrame(len(records) - 1, frame, ee, actions,
                                    np.asarray(outcome.q_recorded), np.asarray(outcome.q_new),
                                    outcome.recorded_index, outcome.new_index))
    if rescore.clamped:
        notes.append(f"k={k} is more than recorded at {rescore.clamped} steps: scored all "
                     "recorded candidates there")
    if end_effector.error:
        notes.append(f"no end-effector positions for the overlay ({end_effector.error})")
    result = ReplayResult(
        bag=str(bag), vgps_version=__version__,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        critic=CriticInfo(path=str(critic_path), id=model.critic_id, explicit=explicit,
                          recorded_ids=tuple(recorded_ids),
                          same_as_recorded=recorded_ids == [model.critic_id]),
        k=k, beta=beta, seed=seed, problems=tuple(reader.problems), skipped=tuple(skipped),
        notes=tuple(notes), bag_counts={name: t.count for name, t in reader.topics.items()},
        run_info=run_info, episodes=summarize_episodes(episodes, records),
        records=tuple(records), elapsed_s=round(time.monotonic() - started, 3),
        report=str(out / "report.html") if report else None)
    out.mkdir(parents=True, exist_ok=True)
    (out / REPLAY_JSON).write_text(json.dumps(result.to_json(), indent=1), encoding="utf-8")
    if report:
        from vgps.replay.report import write_report

        robot = str(((run_info or {}).get("arguments") or {}).get("robot", "sim"))
        write_report(result, frames, out, robot=robot)
    return result
