"""The selector's decision logic: which scored candidate chunk to execute, or why none.

Pure and clock-injected: every call takes ``now`` (seconds, on the same clock as the message
stamps) and nothing reads the time itself, so the ROS node and the tests drive it alike. Safety is
not applied here; the arm backend applies it to whatever the decision executes.

Rules, in order, for each message:

* e-stop latched -> ``"estop"``, no action, until :meth:`Selector.reset_estop`;
* malformed ``step``/``stamp``/``now``, a stamp older than ``max_age_s`` or more than
  ``max_future_s`` in the future, a step not newer than the last executed step (duplicate or
  out of order), candidates that are not a finite ``(K, H, A)`` (or ``(K, A)``) array with
  ``A = action_dim``, or Q-values that are not finite ``(K,)`` -> ``"rejected"`` with the detail;
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

EXECUTE_MODES = ("first", "chunk", "ensemble")
FALLBACKS = ("hold", "policy_first")
REASONS = ("argmax", "softmax", "fallback", "hold", "rejected", "estop")


class _Rejected(Exception):
    """Internal: a message failed a check; carries the detail."""


@dataclasses.dataclass(frozen=True)
class SelectorConfig:
    """Settings of :class:`Selector` (all live-settable through ``dataclasses.replace``)."""

    k: int = 10  # expected candidates per step (paper: 50 on the real robot, 10 or 50 in sim)
    beta: float = 0.0  # 0 = greedy argmax (real-robot setting), > 0 = sample softmax(Q / beta)
    execute: str = "first"  # "first" action, whole "chunk", or Octo temporal "ensemble"
    max_age_s: float = 0.5  # reject stamps older than this (blocking 5 Hz control budget)
    max_future_s: float = 0.05  # reject stamps further than this ahead of now (clock skew)
    watchdog_timeout_s: float = 1.0  # no selection for this long -> a hold decision
    fallback: str = "hold"  # when scores are missing: "hold" still or "policy_first"
    ensemble_decay: float = 0.0  # Octo's exp weight k; 0 = uniform mean over predictions
    action_dim: int = 7  # A of the candidates (Bridge actions)
    seed: int = 0  # keys for beta > 0 when the caller passes none: fold_in(key(seed), step)

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("k", "action_dim"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}.{field}={value!r}: must be an integer >= 1")
            object.__setattr__(self, field, int(value))
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"{name}.seed={self.seed!r}: must be an integer")
        for field, positive in (
            ("beta", False),
            ("max_age_s", True),
            ("max_future_s", False),
            ("watchdog_timeout_s", True),
            ("ensemble_decay", False),
        ):
            value = getattr(self, field)
            ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value < 0 or (positive and value == 0):
                need = "> 0" if positive else ">= 0"
                raise ValueError(f"{name}.{field}={value!r}: must be a finite number {need}")
            object.__setattr__(self, field, float(value))
        if self.execute not in EXECUTE_MODES:
            raise ValueError(f"{name}.execute={self.execute!r}: choose from {EXECUTE_MODES}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"{name}.fallback={self.fallback!r}: choose from {FALLBACKS}")


@dataclasses.dataclass(frozen=True)
class Decision:
    """One selector outcome.

    Attributes:
        index: chosen candidate, -1 when none.
        actions: float32 (N, A) actions to execute in order; (0, A) when nothing moves.
        reason: one of ``REASONS``.
        detail: human-readable explanation; starts with a code for rejections
            (``"stale: ..."``, ``"duplicate_step: ..."``, ...).
        q: Q-value of the chosen candidate, NaN when none was scored.
        margin: best minus second-best Q (0 when K = 1), NaN when none was scored.
        k: the configured K at decision time.
        beta: the configured beta at decision time.
        step: the message's step counter, -1 when there was no (valid) one.
    """

    index: int
    actions: np.ndarray
    reason: str
    detail: str
    q: float
    margin: float
    k: int
    beta: float
    step: int

    @property
    def executes(self) -> bool:
        """Whether the decision carries actions to execute."""
        return self.actions.shape[0] > 0


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
            q = self._check_q(q, chunks.shape[0])
            if cfg.beta > 0 and key is None:
                key = jax.random.fold_in(jax.random.key(cfg.seed), step)
            chosen = select(q, cfg.beta, key)
        except _Rejected as exc:
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
        except _Rejected as exc:
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
            raise _Rejected("e-stop engaged")
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise _Rejected(f"bad_step: step={step!r} must be an integer >= 0")
        for name, value in (("stamp", stamp), ("now", now)):
            real = isinstance(value, (int, float, np.integer, np.floating))
            if isinstance(value, bool) or not real or not math.isfinite(value):
                raise _Rejected(f"bad_{name}: {name}={value!r} must be a finite time in seconds")
        if self._last_selected is None:
            self._last_selected = float(now)  # arms the watchdog
        age = float(now) - float(stamp)
        if age > cfg.max_age_s:
            raise _Rejected(f"stale: stamp is {age:.3f} s old > max_age_s {cfg.max_age_s:g}")
        if -age > cfg.max_future_s:
            raise _Rejected(
                f"future_stamp: stamp is {-age:.3f} s ahead of now > max_future_s "
                f"{cfg.max_future_s:g}"
            )
        last = self._last_step
        if last is not None and step <= last:
            code = "duplicate_step" if step == last else "out_of_order"
            raise _Rejected(f"{code}: step {step} is not newer than the last executed {last}")
        chunks = self._check_candidates(candidates)
        n = chunks.shape[0]
        note = "" if n == cfg.k else f"; k_mismatch: received K={n}, configured k={cfg.k}"
        return int(step), chunks, note

    def _check_candidates(self, candidates: object) -> np.ndarray:
        """(K, H, A) float32 copy of valid candidates, else raises :class:`_Rejected`."""
        try:
            arr = np.asarray(candidates)
            if arr.dtype.kind not in "fiu":
                raise _Rejected(f"bad_candidates: dtype {arr.dtype} is not real numbers")
            arr = arr.astype(np.float64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _Rejected(f"bad_candidates: not a numeric array ({exc})") from None
        if arr.ndim == 2:
            arr = arr[:, None, :]
        a = self._config.action_dim
        if arr.ndim != 3 or min(arr.shape[:2], default=0) < 1 or arr.shape[2] != a:
            raise _Rejected(f"bad_candidates: need shape (K, H, {a}) or (K, {a}), got {arr.shape}")
        bad = np.argwhere(~np.isfinite(arr))
        if bad.size:
            raise _Rejected(
                f"bad_candidates: NaN/inf in {len(bad)} entries, first at {bad[0].tolist()}"
            )
        if np.any(np.abs(arr) > np.finfo(np.float32).max):
            raise _Rejected("bad_candidates: values overflow float32")
        return arr.astype(np.float32)

    @staticmethod
    def _check_q(q: object, k: int) -> np.ndarray:
        try:
            arr = np.asarray(q)
            if arr.dtype.kind not in "fiu":
                raise _Rejected(f"bad_q: dtype {arr.dtype} is not real numbers")
            arr = arr.astype(np.float64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _Rejected(f"bad_q: not a numeric array ({exc})") from None
        if arr.shape != (k,):
            raise _Rejected(f"bad_q: need shape ({k},) to match the candidates, got {arr.shape}")
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise _Rejected(f"bad_q: NaN/inf at indices {bad.tolist()}")
        return arr

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
