"""The selector node's logic around :class:`~vgps_widowx.selector.Selector` (ROS-free).

Adds what the node needs on top of the pure decision rule:

* the fallback path: the newest candidates are remembered when they arrive; when their scores
  have not arrived ``watchdog_timeout_s`` later (critic down or late), they go to
  :meth:`Selector.on_candidates_only` (``fallback="policy_first"`` executes the policy's own
  first sample, ``"hold"`` keeps still);
* command limits: every executed action passes the action-space part of the shared
  :class:`~vgps_widowx.safety.SafetyFilter` (per-step clamps, rejection of absurd magnitudes), so
  a SelectedAction never carries an action outside the limits; the workspace part needs the
  arm's pose and is applied again by the arm backend (``ArmBackend.apply``);
* rejected-input decisions for messages that failed conversion, and counts of every outcome and
  rejection class for ``/diagnostics``;
* interventions (:mod:`vgps_widowx.intervention`): while a take-over holds, every executing
  decision becomes an ``"intervention"`` one carrying the take-over's action, which passes the
  same command limits (a rejected one executes nothing).

Usage::

    loop = SelectorLoop(SelectorConfig(k=10, fallback="policy_first"))
    loop.on_candidates(step, stamp_s, chunks, now)        # remember for the fallback
    decision = loop.on_scored(step, stamp_s, chunks, q, now)
    for decision, stamp_ns in loop.on_tick(now): ...      # fallback / watchdog holds
    loop.on_intervention(True, action, "keyboard", now)   # False: malformed (counted)
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import Counter

import numpy as np

from vgps_ros.input_guard import MessageError, RejectionLog
from vgps_widowx.intervention import INTERVENTION, TakeOver
from vgps_widowx.safety import SafetyConfig, SafetyFilter
from vgps_widowx.selector import Decision, Selector, SelectorConfig

EXECUTING = ("argmax", "softmax", "fallback", INTERVENTION)


@dataclasses.dataclass
class _Pending:
    step: int
    stamp_ns: int
    chunks: np.ndarray
    received_s: float


class SelectorLoop:
    """Thread-safe wrapper the selector node drives from its callbacks and watchdog timer.

    Args:
        config: the selector settings.
        safety: limits applied to every executed action (defaults to ``SafetyConfig()``).
    """

    def __init__(self, config: SelectorConfig | None = None, safety: SafetyConfig | None = None,
                 intervention_timeout_s: float = 0.5):
        self.selector = Selector(config)
        self.takeover = TakeOver(intervention_timeout_s)
        self.safety = SafetyFilter(safety)
        cfg = self.safety.config
        self._reference = (np.asarray(cfg.workspace_low) + np.asarray(cfg.workspace_high)) / 2
        self._lock = threading.RLock()
        self._pending: _Pending | None = None
        self._last_fallback_s = -math.inf
        self.reasons: Counter[str] = Counter()
        self.rejections = RejectionLog()
        self.mode = "waiting"  # nominal | fallback | hold | estop | rejected | waiting
        self.last_detail = ""

    @property
    def config(self) -> SelectorConfig:
        return self.selector.config

    # -- events ---------------------------------------------------------------------------------
    def on_candidates(self, step: int, stamp_ns: int, chunks: np.ndarray, now: float) -> None:
        """Remembers the newest candidates (the fallback acts on them if no scores come)."""
        with self._lock:
            if self._pending is None or step > self._pending.step:
                self._pending = _Pending(int(step), int(stamp_ns), chunks, float(now))

    def on_scored(self, step: int, stamp_s: float, chunks: np.ndarray, q: np.ndarray,
                  now: float) -> Decision:
        """Decides on scored candidates (never raises on bad input)."""
        with self._lock:
            if self._pending is not None and self._pending.step <= step:
                self._pending = None
            return self._finish(self.selector.on_scored(step, stamp_s, chunks, q, now), now)

    def on_tick(self, now: float) -> list[tuple[Decision, int]]:
        """Watchdog: the fallback for candidates whose scores are overdue, and holds.

        Returns:
            ``(decision, source stamp ns)`` pairs to publish (possibly none); watchdog holds
            have no source image (stamp 0).
        """
        out = []
        with self._lock:
            pending = self._pending
            timeout = self.config.watchdog_timeout_s
            if pending is not None and now - pending.received_s > timeout:
                self._pending = None
                decision = self.selector.on_candidates_only(
                    pending.step, pending.stamp_ns * 1e-9, pending.chunks, now)
                if decision.reason in ("fallback", "hold"):
                    note = (f"scores missing {now - pending.received_s:.2f} s after the "
                            f"candidates (watchdog_timeout_s {timeout:g}); ")
                    decision = dataclasses.replace(decision, detail=note + decision.detail)
                if decision.reason == "fallback":
                    self._last_fallback_s = now
                out.append((self._finish(decision, now), pending.stamp_ns))
            tick = self.selector.on_tick(now)
            if tick is not None and now - self._last_fallback_s > timeout:
                out.append((self._finish(tick, now), 0))
        return out

    def on_intervention(self, take_over: object, action: object, source: object,
                        now: float) -> bool:
        """Keeps an intervention command; a malformed one is counted and changes nothing.

        Returns:
            Whether the command was valid.
        """
        with self._lock:
            try:
                self.takeover.update(take_over, action, source, now)
            except MessageError as exc:
                self.rejections.add(exc.kind, exc.detail, now)
                self.mode, self.last_detail = "rejected", f"{exc.kind}: {exc.detail}"
                return False
            return True

    def reject(self, kind: str, detail: str, step: int, now: float) -> Decision:
        """A ``"rejected"`` (``"estop"`` while latched) decision for a malformed message."""
        with self._lock:
            cfg = self.config
            reason = "estop" if self.selector.estopped else "rejected"
            decision = Decision(index=-1, actions=np.zeros((0, cfg.action_dim), np.float32),
                                reason=reason, detail=f"{kind}: {detail}", q=math.nan,
                                margin=math.nan, k=cfg.k, beta=cfg.beta, step=int(step))
            return self._finish(decision, now)

    # -- commands -------------------------------------------------------------------------------
    def estop(self) -> None:
        with self._lock:
            self.selector.estop()
            self._pending = None
            self.mode = "estop"

    def reset_estop(self) -> None:
        with self._lock:
            self.selector.reset_estop()
            self.mode = "waiting"

    def new_episode(self) -> None:
        """Forgets the step counter, chunk history and watchdog (a new episode started)."""
        with self._lock:
            self.selector.reset()
            self._pending = None

    def configure(self, **changes: object) -> None:
        """Applies live settings from the next decision on.

        ``k``, ``beta`` and ``execute`` change in place; any other field (``max_age_s``,
        ``watchdog_timeout_s``, ``fallback``, ...) rebuilds the selector, keeping the e-stop latch
        (the step counter restarts; the arm driver still executes each image at most once).

        Raises:
            ValueError: an invalid value (nothing changes then).
        """
        with self._lock:
            new = dataclasses.replace(self.config, **changes)  # validates every field
            in_place = {"k", "beta", "execute"}
            if set(changes) <= in_place:
                self.selector.set_k(new.k)
                self.selector.set_beta(new.beta)
                self.selector.set_execute(new.execute)
                return
            estopped = self.selector.estopped
            self.selector = Selector(new)
            if estopped:
                self.selector.estop()

    # -- internals ------------------------------------------------------------------------------
    def _finish(self, decision: Decision, now: float) -> Decision:
        decision = self.takeover.override(decision, now)
        if decision.reason in EXECUTING and decision.executes:
            decision = self._limit(decision)
        self.reasons[decision.reason] += 1
        if decision.reason == "rejected":
            code = decision.detail.split(":", 1)[0].strip() or "rejected"
            self.rejections.add(code, decision.detail, now)
        self.mode = {"argmax": "nominal", "softmax": "nominal"}.get(decision.reason,
                                                                    decision.reason)
        self.last_detail = decision.detail
        return decision

    def _limit(self, decision: Decision) -> Decision:
        safe, notes = [], []
        for action in decision.actions:
            verdict = self.safety.check(action, self._reference)
            if not verdict.ok:
                return dataclasses.replace(
                    decision, actions=np.zeros((0, decision.actions.shape[1]), np.float32),
                    reason="rejected", index=-1,
                    detail=f"unsafe_action: {'; '.join(verdict.reasons)}"
                           + (f" ({decision.detail})" if decision.reason == INTERVENTION else ""))
            safe.append(verdict.action)
            notes.extend(r.split(":", 1)[0] for r in verdict.reasons)
        detail = decision.detail
        if notes:
            detail += f"; limited ({', '.join(sorted(set(notes)))})"
        return dataclasses.replace(decision, actions=np.stack(safe).astype(np.float32),
                                   detail=detail)
