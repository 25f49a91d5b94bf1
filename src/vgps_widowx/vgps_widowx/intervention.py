"""Take-over state of the selector: a person or the sim corrector overrides the critic's choice.

Pure numpy. An intervention command (``vgps/intervention``: take-over flag, one Bridge action,
source) is validated by :func:`check_intervention` and kept by :class:`TakeOver`. While the newest
command holds ``take_over`` and was received less than ``timeout_s`` ago, :meth:`TakeOver.override`
turns every decision that would execute (argmax, softmax, fallback) into an ``"intervention"``
decision: index -1, the command's action, no Q-value, and a detail naming the source and what the
selector would have done. Rejections, holds and the e-stop are left as they are (an intervention
never bypasses the step, stamp or e-stop checks), and the caller passes the result through the same
safety filter as any policy action (:class:`~vgps_widowx.selector_loop.SelectorLoop`). A release
(``take_over`` false) or a command older than ``timeout_s`` returns control to the critic.

A malformed command (wrong length, NaN/inf, gripper outside [0, 1]) raises
:class:`~vgps_ros.input_guard.MessageError` and changes nothing. Magnitudes are the safety
filter's business: it clamps a large delta to the per-step limit and rejects an absurd one.

Usage::

    takeover = TakeOver(timeout_s=0.5)
    takeover.update(True, [0.01, 0, 0, 0, 0, 0, 1.0], "keyboard", now)   # MessageError if bad
    decision = takeover.override(decision, now)     # reason "intervention" while held and fresh
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from vgps_ros.input_guard import MessageError
from vgps_widowx.selector_types import Decision

INTERVENTION = "intervention"  # SelectedAction.REASON_INTERVENTION
OVERRIDDEN = ("argmax", "softmax", "fallback")  # decisions a take-over replaces
ACTION_DIM = 7
MAX_SOURCE = 64  # characters of the source kept in the detail


@dataclasses.dataclass(frozen=True)
class InterventionCommand:
    """One validated intervention message.

    Attributes:
        take_over: take over (True) or release (False).
        action: float32 (7,) Bridge action while taking over; None on release.
        source: who sent it (printable, at most ``MAX_SOURCE`` characters).
        received_s: when it was received (s, the selector's clock).
    """

    take_over: bool
    action: np.ndarray | None
    source: str
    received_s: float


def check_intervention(take_over: object, action: object, source: object,
                       received_s: float) -> InterventionCommand:
    """Validates one intervention message.

    Args:
        take_over: the flag (a bool).
        action: (7,) ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``; ignored on release (may be
            empty then).
        source: who sent it.
        received_s: receipt time (s).

    Returns:
        The :class:`InterventionCommand`.

    Raises:
        MessageError: ``bad_intervention`` naming the bad value.
    """
    if not isinstance(take_over, (bool, np.bool_)):
        raise MessageError("bad_intervention", f"take_over={take_over!r} is not a bool")
    name = "".join(c for c in str(source) if c.isprintable())[:MAX_SOURCE] or "unknown"
    if not take_over:
        return InterventionCommand(False, None, name, float(received_s))
    try:
        arr = np.asarray(action, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise MessageError("bad_intervention", f"action is not numeric ({exc})") from None
    if arr.shape != (ACTION_DIM,):
        raise MessageError("bad_intervention",
                           f"action has {arr.size} entries, need {ACTION_DIM} (from {name})")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise MessageError("bad_intervention",
                           f"action has NaN/inf at indices {bad.tolist()} (from {name})")
    if not 0.0 <= arr[6] <= 1.0:
        raise MessageError("bad_intervention",
                           f"gripper {arr[6]:g} outside [0, 1] (1 = open; from {name})")
    return InterventionCommand(True, arr.astype(np.float32), name, float(received_s))


class TakeOver:
    """The newest intervention command and whether it holds (see the module docstring).

    Args:
        timeout_s: a take-over older than this (since receipt) no longer holds.
    """

    def __init__(self, timeout_s: float = 0.5):
        self.timeout_s = timeout_s
        self.command: InterventionCommand | None = None

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value <= 0:
            raise ValueError(f"intervention timeout_s={value!r}: must be a finite number > 0")
        self._timeout_s = float(value)

    def update(self, take_over: object, action: object, source: object,
               now: float) -> InterventionCommand:
        """Validates and keeps a command (raises MessageError, keeping the previous one)."""
        self.command = check_intervention(take_over, action, source, now)
        return self.command

    def release(self) -> None:
        """Forgets the command: the critic steers until the next take-over."""
        self.command = None

    def active(self, now: float) -> InterventionCommand | None:
        """The command that holds at ``now``, or None (released, stale or none)."""
        cmd = self.command
        if cmd is None or not cmd.take_over or now - cmd.received_s > self._timeout_s:
            return None
        return cmd

    def override(self, decision: Decision, now: float) -> Decision:
        """``decision``, replaced by an ``"intervention"`` one while a take-over holds.

        Args:
            decision: what the selector decided; only ``OVERRIDDEN`` reasons are replaced.
            now: the decision time (s).

        Returns:
            The decision to pass through the safety filter and publish: actions (1, 7), index
            -1, NaN Q-value and margin, the same step, K and beta.
        """
        cmd = self.active(now)
        if cmd is None or decision.reason not in OVERRIDDEN or cmd.action is None:
            return decision
        would = f"{decision.reason} candidate {decision.index}"
        if not math.isnan(decision.q):
            would += f", Q {decision.q:.3f}"
        detail = (f"intervention by {cmd.source} ({now - cmd.received_s:.2f} s old); "
                  f"overrode {would}")
        return dataclasses.replace(decision, index=-1, actions=cmd.action[None, :].copy(),
                                   reason=INTERVENTION, detail=detail, q=math.nan,
                                   margin=math.nan)
