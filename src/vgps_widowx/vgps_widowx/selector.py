"""The selector's decision logic: which scored candidate chunk to execute, or why none.

Pure and clock-injected: every call takes ``now`` (seconds, on the same clock as the message
stamps) and nothing reads the time itself, so the ROS node and the tests drive it alike. Safety is
not applied here; the arm backend applies it to whatever the decision executes.

Rules, in order, for each message:

* e-stop latched -> ``"estop"``, no action, until :meth:`Selector.reset_estop`;
* malformed ``step``/``stamp``/``now``, a stamp older than ``max_age_s`` or more than
  ``max_future_s`` in the future, a step not newer than the last executed step (duplicate or
  out of order), a step more than ``max_step_jump`` ahead of it (``step_jump``), candidates
  that are not a finite ``(K, H, A)`` (or ``(K, A)``) array with ``A = action_dim``, or
  Q-values that are not finite ``(K,)`` -> ``"rejected"`` with the detail;
* otherwise the V-GPS rule (:func:`vgps_critic.select`): ``"argmax"`` at beta = 0, else
  ``"softmax"`` sampled from softmax(Q / beta). A K other than the configured ``k`` is decided
  over as received and noted in the detail.

What a decision executes (``execute``): ``"first"`` the chosen chunk's first action (1, A),
``"chunk"`` the whole chunk (H, A), ``"ensemble"`` Octo-style temporal ensembling (1, A): the
average, for the current step, of the predictions of every chosen chunk that still covers it,
chunk ``s`` predicting step ``t`` with its row ``t - s``. Weights follow Octo's
``TemporalEnsembleWrapper``: ``exp(-ensemble_decay * i)`` with ``i = 0`` for the OLDEST
prediction, so a positive decay favours older predictions (0, Octo's default, is a plain mean).

Watchdog: :meth:`Selector.on_tick` returns a ``"hold"`` decision (never motion) once per
``watchdog_timeout_s`` while no candidates have been scored and selected. With
``fallback="policy_first"`` the node then passes its newest unscored candidates to
:meth:`Selector.on_candidates_only`, which executes the policy's own first sample (``"fallback"``);
with ``fallback="hold"`` that call holds as well. :meth:`Selector.scores_overdue` tells the node
whether scores are still missing. Call :meth:`Selector.reset` when a new episode restarts the
step counter.

Step continuity: the policy counts its images (monotonic, 5 per second), so a real step is at
most a few ahead of the last executed one. One far ahead (``max_step_jump``; a forged or corrupt
message) is rejected as ``step_jump`` and never becomes the last step - adopting it would turn
every real step after it into ``out_of_order`` until the next episode. A step more than
``max_step_jump`` BEHIND the last executed one is a restarted counter (a restarted policy node,
or a wild step adopted before any real one): it is admitted and noted (``step_restart``); its
stamp still has to be fresh, so an old message cannot be replayed that way.

Usage::

    selector = Selector(SelectorConfig(k=10, beta=0.0))
    decision = selector.on_scored(step, stamp, candidates, q, now=clock())   # (K, H, 7), (K,)
    if decision.actions.size:
        for action in decision.actions:
            arm.apply(action)
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from vgps_critic.selection import select
from vgps_widowx.selector_types import (
    EXECUTE_MODES,
    FALLBACKS,
    REASONS,
    Decision,
    Rejected,
    SelectorConfig,
    check_candidates,
    check_q,
)

__all__ = ["EXECUTE_MODES", "FALLBACKS", "REASONS", "Decision", "Selector", "SelectorConfig"]


class Selector:
    """Stateful selector: last executed step, chosen-chunk history, watchdog and e-stop latch.

    Args:
        config: settings; defaults to :class:`SelectorConfig()`.
    """

    def __init__(self, config: SelectorConfig | None = None):
        self._config = config or SelectorConfig()
        if not isinstance(self._config, SelectorConfig):
            raise ValueError(f"config={config!r}: must be a SelectorConfig")
        self._estopped = False
        self.reset()

    # ---------------------------------------------------------------------------------------
    # Live settings and state

    @property
    def config(self) -> SelectorConfig:
        """The current settings."""
        return self._config

    @property
    def estopped(self) -> bool:
        """Whether the e-stop latch is engaged."""
        return self._estopped

    def set_k(self, k: int) -> None:
        """Sets the expected K from the next decision on; raises ValueError when invalid."""
        self._config = dataclasses.replace(self._config, k=k)

    def set_beta(self, beta: float) -> None:
        """Sets beta from the next decision on; raises ValueError when invalid."""
        self._config = dataclasses.replace(self._config, beta=beta)

    def set_execute(self, execute: str) -> None:
        """Sets the execution mode; a change clears the ensembling history."""
        if execute != self._config.execute:
            self._config = dataclasses.replace(self._config, execute=execute)
            self._history.clear()

    def estop(self) -> None:
        """Engages the latched e-stop: every decision is ``"estop"`` until :meth:`reset_estop`."""
        self._estopped = True
        self._history.clear()

    def reset_estop(self) -> None:
        """Releases the e-stop; the watchdog re-arms at the next call."""
        self._estopped = False
        self._history.clear()
        self._last_selected = self._last_alarm = None

    def reset(self) -> None:
        """Forgets the step counter, chunk history and watchdog (new episode); keeps the e-stop."""
        self._last_step: int | None = None
        self._history: dict[int, np.ndarray] = {}
        self._last_selected: float | None = None
        self._last_alarm: float | None = None

    def scores_overdue(self, now: float) -> bool:
        """Whether nothing was selected from scores within ``watchdog_timeout_s`` of ``now``."""
        last = self._last_selected
        return last is not None and now - last > self._config.watchdog_timeout_s

    # ---------------------------------------------------------------------------------------
    # Events

    def on_scored(
        self,
        step: int,
        stamp: float,
        candidates: object,
        q: object,
        now: float,
        key: jax.Array | None = None,
    ) -> Decision:
        """Decides on one scored candidate set.

        Args:
            step: the policy's step counter of the source image.
            stamp: the source image's stamp (s).
            candidates: (K, H, A) or (K, A) candidate chunks, robot action space.
            q: (K,) Q-values of the candidates' first actions.
            now: current time (s), same clock as ``stamp``.
            key: ``jax.random`` key for beta > 0; default ``fold_in(key(seed), step)``.

        Returns:
            The :class:`Decision`; never raises on bad input.
        """
        cfg = self._config
        try:
            step, chunks, note = self._admit(step, stamp, candidates, now)
            q = check_q(q, chunks.shape[0])
            if cfg.beta > 0 and key is None:
                key = jax.random.fold_in(jax.random.key(cfg.seed), step)
            chosen = select(q, cfg.beta, key)
        except Rejected as exc:
            return self._empty("rejected", str(exc), step)
        except (TypeError, ValueError) as exc:  # from select(): a bad key, say
            return self._empty("rejected", f"selection_failed: {exc}", step)
        self._last_selected = now
        detail = f"{chosen.reason} over K={chunks.shape[0]} (beta={cfg.beta:g})" + note
        return self._execute(
            step, chunks, chosen.index, chosen.reason, detail, chosen.q, chosen.margin
        )

    def on_candidates_only(
        self, step: int, stamp: float, candidates: object, now: float
    ) -> Decision:
        """Fallback for candidates whose scores are missing (the critic is late or down).

        Args:
            step: the policy's step counter.
            stamp: the source image's stamp (s).
            candidates: (K, H, A) or (K, A) candidate chunks.
            now: current time (s).

        Returns:
            ``"fallback"`` executing candidate 0 (the policy's own first sample) when
            ``fallback="policy_first"``, ``"hold"`` when ``fallback="hold"``, or
            ``"rejected"``/``"estop"`` by the usual rules. Never raises on bad input.
        """
        try:
            step, chunks, note = self._admit(step, stamp, candidates, now)
        except Rejected as exc:
            return self._empty("rejected", str(exc), step)
        if self._config.fallback == "hold":
            return self._empty("hold", "scores missing; fallback=hold keeps the arm still", step)
        detail = "scores missing; fallback=policy_first executes the policy's first sample" + note
        return self._execute(step, chunks, 0, "fallback", detail, math.nan, math.nan)

    def on_tick(self, now: float) -> Decision | None:
        """Watchdog: a no-motion decision once per ``watchdog_timeout_s`` without selections.

        Args:
            now: current time (s). The first call arms the watchdog.

        Returns:
            None while selections are fresh; otherwise ``"hold"`` (``"estop"`` while latched),
            whose detail names the configured fallback.
        """
        if not isinstance(now, (int, float, np.floating)) or not math.isfinite(now):
            return self._empty("rejected", f"bad_now: now={now!r} must be a finite time", -1)
        if self._last_selected is None:
            self._last_selected = float(now)
            return None
        since = max(self._last_selected, self._last_alarm or -math.inf)
        timeout = self._config.watchdog_timeout_s
        if now - since <= timeout:
            return None
        self._last_alarm = float(now)
        if self._estopped:
            return self._empty("estop", "e-stop engaged", -1)
        idle = now - self._last_selected
        detail = f"watchdog: nothing selected for {idle:.2f} s > {timeout:g} s; holding"
        if self._config.fallback == "policy_first":
            detail += " (fallback=policy_first: pass the newest candidates to on_candidates_only)"
        return self._empty("hold", detail, -1)

    # ---------------------------------------------------------------------------------------
    # Internals

    def _empty(self, reason: str, detail: str, step: object) -> Decision:
        cfg = self._config
        if self._estopped and reason != "estop":
            reason, detail = "estop", "e-stop engaged"
        valid = isinstance(step, (int, np.integer)) and not isinstance(step, bool)
        return Decision(
            index=-1,
            actions=np.zeros((0, cfg.action_dim), np.float32),
            reason=reason,
            detail=detail,
            q=math.nan,
            margin=math.nan,
            k=cfg.k,
            beta=cfg.beta,
            step=int(step) if valid else -1,
        )

    def _admit(
        self, step: object, stamp: object, candidates: object, now: object
    ) -> tuple[int, np.ndarray, str]:
        """Checks e-stop, step, stamps and candidates; returns ``(step, (K, H, A), note)``."""
        cfg = self._config
        if self._estopped:
            raise Rejected("e-stop engaged")
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise Rejected(f"bad_step: step={step!r} must be an integer >= 0")
        for name, value in (("stamp", stamp), ("now", now)):
            real = isinstance(value, (int, float, np.integer, np.floating))
            if isinstance(value, bool) or not real or not math.isfinite(value):
                raise Rejected(f"bad_{name}: {name}={value!r} must be a finite time in seconds")
        if self._last_selected is None:
            self._last_selected = float(now)  # arms the watchdog
        age = float(now) - float(stamp)
        if age > cfg.max_age_s:
            raise Rejected(f"stale: stamp is {age:.3f} s old > max_age_s {cfg.max_age_s:g}")
        if -age > cfg.max_future_s:
            raise Rejected(
                f"future_stamp: stamp is {-age:.3f} s ahead of now > max_future_s "
                f"{cfg.max_future_s:g}"
            )
        last, jump, note = self._last_step, cfg.max_step_jump, ""
        if last is not None and step - last > jump:
            raise Rejected(f"step_jump: step {step} is more than max_step_jump {jump} ahead of "
                           f"the last executed {last}")
        if last is not None and last - step > jump:
            note = f"; step_restart: step {step} is far behind the last executed {last}"
        elif last is not None and step <= last:
            code = "duplicate_step" if step == last else "out_of_order"
            raise Rejected(f"{code}: step {step} is not newer than the last executed {last}")
        chunks = check_candidates(candidates, cfg.action_dim)
        n = chunks.shape[0]
        if n != cfg.k:
            note += f"; k_mismatch: received K={n}, configured k={cfg.k}"
        return int(step), chunks, note

    def _execute(
        self,
        step: int,
        chunks: np.ndarray,
        index: int,
        reason: str,
        detail: str,
        q: float,
        margin: float,
    ) -> Decision:
        cfg = self._config
        chunk = chunks[index]
        self._last_step = step
        if cfg.execute == "first":
            actions = chunk[:1]
        elif cfg.execute == "chunk":
            actions = chunk
        else:
            actions, n = self._ensemble(step, chunk)
            detail += f"; ensembled {n} predictions"
        return Decision(
            index=int(index),
            actions=np.array(actions, np.float32),
            reason=reason,
            detail=detail,
            q=float(q),
            margin=float(margin),
            k=cfg.k,
            beta=cfg.beta,
            step=step,
        )

    def _ensemble(self, step: int, chunk: np.ndarray) -> tuple[np.ndarray, int]:
        """Octo temporal ensembling for ``step``: (1, A) weighted mean, predictions used."""
        self._history[step] = chunk
        covering = sorted(s for s, c in self._history.items() if 0 <= step - s < len(c))
        for s in [s for s in self._history if s not in covering]:
            del self._history[s]  # no longer predicts the current or any later step
        preds = np.stack([self._history[s][step - s] for s in covering]).astype(np.float64)
        weights = np.exp(-self._config.ensemble_decay * np.arange(len(covering)))  # 0 = oldest
        weights /= weights.sum()
        return (weights @ preds)[None, :], len(covering)
