"""The "sticky" gripper of the WidowX deployments of BridgeData, Octo and V-GPS.

A policy's gripper command flickers around the threshold; on the real arm every flip is a slow
open/close that can drop what is held. The deployment scripts therefore keep their own gripper
state (open at the start of an episode) and change it only after ``steps`` consecutive actions
ask for the other state; every executed action then carries the kept state as a binary command
(1 = open, 0 = closed). V-GPS runs its WidowX with ``steps=3``; ``steps=1`` binarises without
delay; ``steps=0`` turns the latch off (the command passes through unchanged, as in simulation).

Usage::

    latch = StickyGripper(steps=3)
    latch.reset()                               # each episode starts open
    action = latch.propose(action)              # a copy with the kept gripper state
    latch.commit()                              # after the arm executed it (else: discard)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vgps_widowx.robot.description import GRIPPER_THRESHOLD

OPEN, CLOSED = 1.0, 0.0


@dataclasses.dataclass
class _State:
    closed: bool = False
    requests: int = 0  # consecutive actions asking for the other state


class StickyGripper:
    """Gripper state kept across actions; changes after ``steps`` consecutive requests.

    Args:
        steps: consecutive requests needed to change the state (0: off, pass-through).
        threshold: a command below this asks for closed, at or above it for open.
    """

    def __init__(self, steps: int = 0, threshold: float = GRIPPER_THRESHOLD):
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"StickyGripper.steps={steps!r}: need an integer >= 0")
        self.steps, self.threshold = int(steps), float(threshold)
        self._state = _State()
        self._pending: _State | None = None

    @property
    def enabled(self) -> bool:
        return self.steps > 0

    @property
    def closed(self) -> bool:
        """The kept state (False: open)."""
        return self._state.closed

    def reset(self) -> None:
        """Open, no pending requests (the start of an episode)."""
        self._state, self._pending = _State(), None

    def propose(self, action: np.ndarray) -> np.ndarray:
        """A copy of the (7,) action with the gripper the latch would command.

        The state advances only on :meth:`commit` (an action the arm refused must not count).
        """
        out = np.array(action, np.float32, copy=True)
        if not self.enabled:
            self._pending = None
            return out
        state = dataclasses.replace(self._state)
        wants_closed = bool(out[-1] < self.threshold)
        state.requests = state.requests + 1 if wants_closed != state.closed else 0
        if state.requests >= self.steps:
            state.closed, state.requests = not state.closed, 0
        self._pending = state
        out[-1] = CLOSED if state.closed else OPEN
        return out

    def commit(self) -> None:
        """Keeps the state of the last :meth:`propose` (its action was executed)."""
        if self._pending is not None:
            self._state, self._pending = self._pending, None
