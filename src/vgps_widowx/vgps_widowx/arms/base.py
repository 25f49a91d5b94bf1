"""The arm interface: connection lifecycle, named-pose reset, the shared safety path, state reads.

Every backend (:class:`~vgps_widowx.arms.sim.SimArm`,
:class:`~vgps_widowx.arms.interbotix.InterbotixArm`) subclasses :class:`ArmBackend`; this module
imports none of them (:func:`vgps_widowx.arms.make_arm` builds one by name).
:meth:`ArmBackend.apply` is the only way to move an arm with an action, and it always runs the
shared :class:`~vgps_widowx.safety.SafetyFilter` before handing the clamped action to the
backend's ``_execute``; subclasses may not override ``apply`` (enforced when the class is made).
``apply`` never raises: refused, malformed or failed actions come back as a not-``ok``
:class:`ApplyResult` with reasons, and backend failures are also kept in :meth:`faults`.

Usage::

    with make_arm("sim") as arm:                      # or make_arm("interbotix")
        arm.reset("neutral")
        result = arm.apply(np.array([0, 0, -0.02, 0, 0, 0, 1.0]))
        result.ok, result.reasons, arm.ee_pose()
"""

from __future__ import annotations

import abc
import dataclasses
import threading
from collections import deque
from typing import Any, final

import numpy as np

from vgps_widowx.robot.description import NAMED_POSES
from vgps_widowx.safety import SafetyConfig, SafetyFilter, SafetyVerdict

_MAX_FAULTS = 32


class ArmUnavailableError(RuntimeError):
    """The backend's driver cannot be used here (its package is missing); says how to install."""


class ArmCommandError(RuntimeError):
    """A backend refused to send a command (IK miss, joint jump, driver refusal)."""


@dataclasses.dataclass(frozen=True)
class ApplyResult:
    """Outcome of :meth:`ArmBackend.apply`.

    Attributes:
        ok: the (possibly clamped) action was executed.
        action: float32 (7,) the action executed; None when nothing was.
        reasons: ``"code: detail"`` strings from the safety filter and the backend.
        verdict: the safety filter's verdict; None when it never ran (not connected).
        info: backend diagnostics (sim: the environment step's info plus reward/termination).
    """

    ok: bool
    action: np.ndarray | None
    reasons: tuple[str, ...]
    verdict: SafetyVerdict | None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


class ArmBackend(abc.ABC):
    """Base of every arm: connection lifecycle, named-pose reset, safe ``apply`` and state reads.

    Subclasses implement ``_connect``, ``_disconnect``, ``_reset``, ``_execute``, ``joints``,
    ``gripper`` and ``ee_pose``; they may override ``_reference_position`` and
    ``_reference_yaw`` (the tool pose an action starts from, default: measured),
    ``camera_image`` and ``_backend_faults``.

    Args:
        safety: limits of the shared safety filter; defaults to :class:`SafetyConfig()`.
    """

    def __init__(self, safety: SafetyConfig | None = None):
        self.safety = SafetyFilter(safety)
        self._connected = False
        self._faults: deque[str] = deque(maxlen=_MAX_FAULTS)
        self._motion = threading.Lock()  # one motion at a time; apply never queues behind one

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = {"apply", "_apply"} & set(vars(cls))
        if overridden:
            raise TypeError(
                f"{cls.__name__} overrides ArmBackend.{min(overridden)}; implement _execute "
                "instead (the shared safety filter in apply cannot be bypassed)"
            )

    # ---------------------------------------------------------------------------------------
    # Lifecycle

    @property
    def connected(self) -> bool:
        """Whether :meth:`connect` has succeeded (and :meth:`disconnect` not run since)."""
        return self._connected

    def connect(self) -> None:
        """Connects to the arm (idempotent)."""
        if not self._connected:
            self._connect()
            self._connected = True

    def disconnect(self) -> None:
        """Releases the arm (idempotent)."""
        if self._connected:
            try:
                self._disconnect()
            finally:
                self._connected = False

    def __enter__(self) -> ArmBackend:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # ---------------------------------------------------------------------------------------
    # Commands

    def reset(self, pose: str = "neutral") -> None:
        """Moves the arm to a named pose with the gripper open.

        Args:
            pose: one of ``NAMED_POSES``: "neutral" (BridgeData start), "sleep", "home".

        Raises:
            ValueError: unknown pose name.
            RuntimeError: not connected.
        """
        if pose not in NAMED_POSES:
            raise ValueError(f"pose={pose!r}: choose from {sorted(NAMED_POSES)}")
        if not self._connected:
            raise RuntimeError(f"{type(self).__name__}.reset: call connect() first")
        with self._motion:
            self._reset(NAMED_POSES[pose].copy())

    @final
    def apply(self, action: object) -> ApplyResult:
        """Executes one Bridge action through the shared safety filter; never raises.

        Args:
            action: (7,) ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``, base frame, 1 = open.

        Returns:
            The :class:`ApplyResult`; nothing moves unless ``ok``. A call made while another
            action or reset is still running is refused (``"busy"``), never queued.
        """
        if not self._connected:
            return ApplyResult(False, None, ("not_connected: call connect() first",), None)
        if not self._motion.acquire(blocking=False):
            return ApplyResult(False, None, ("busy: another motion is running",), None)
        try:
            return self._apply(action)
        finally:
            self._motion.release()

    def _apply(self, action: object) -> ApplyResult:
        try:
            reference = self._reference_position()
        except Exception as exc:  # noqa: BLE001 - a driver read failure must not escape apply
            return self._failed(f"state_unavailable: {type(exc).__name__}: {exc}", None)
        yaw = None
        if self.safety.config.yaw_bounded:
            try:
                yaw = float(self._reference_yaw())
            except Exception as exc:  # noqa: BLE001 - a driver read failure must not escape apply
                return self._failed(f"state_unavailable: {type(exc).__name__}: {exc}", None)
        verdict = self.safety.check(action, reference, yaw)
        if not verdict.ok:
            return ApplyResult(False, None, verdict.reasons, verdict)
        try:
            info = self._execute(verdict.action.copy())
        except ArmCommandError as exc:
            return self._failed(f"command_refused: {exc}", verdict)
        except Exception as exc:  # noqa: BLE001 - the node keeps running; reported in faults()
            return self._failed(f"backend_error: {type(exc).__name__}: {exc}", verdict)
        return ApplyResult(True, verdict.action.copy(), verdict.reasons, verdict, dict(info))

    def _failed(self, reason: str, verdict: SafetyVerdict | None) -> ApplyResult:
        self._faults.append(reason)
        earlier = verdict.reasons if verdict is not None else ()
        return ApplyResult(False, None, (*earlier, reason), verdict)

    # ---------------------------------------------------------------------------------------
    # State

    @abc.abstractmethod
    def joints(self) -> np.ndarray:
        """float32 (6,) measured arm joints (rad): waist, shoulder, elbow, forearm_roll,
        wrist_angle, wrist_rotate."""

    @abc.abstractmethod
    def gripper(self) -> float:
        """Measured gripper opening in [0, 1] (1 = open)."""

    @abc.abstractmethod
    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured tool pose: (3,) position (m) and (3,) Bridge roll/pitch/yaw (rad, zeros when
        the gripper points straight down), base frame."""

    def faults(self) -> list[str]:
        """Backend failures since the last :meth:`clear_faults` (newest last), then live ones."""
        return [*self._faults, *self._backend_faults()]

    def clear_faults(self) -> None:
        """Forgets recorded failures."""
        self._faults.clear()

    def camera_image(self) -> np.ndarray | None:
        """uint8 (H, W, 3) frame from the backend's own camera, or None when it has none."""
        return None

    # ---------------------------------------------------------------------------------------
    # Backend hooks

    @abc.abstractmethod
    def _connect(self) -> None: ...

    @abc.abstractmethod
    def _disconnect(self) -> None: ...

    @abc.abstractmethod
    def _reset(self, joints: np.ndarray) -> None:
        """Moves to ``joints`` (6,) with the gripper open."""

    @abc.abstractmethod
    def _execute(self, action: np.ndarray) -> dict[str, Any]:
        """Runs one filtered float32 (7,) action; raises :class:`ArmCommandError` to refuse."""

    def _reference_position(self) -> np.ndarray:
        """(3,) tool position the next action's translation is applied to."""
        return self.ee_pose()[0]

    def _reference_yaw(self) -> float:
        """Tool yaw (rad, Bridge euler) the next action's rotation is applied to (default:
        measured); read only when the safety config bounds the yaw."""
        return float(self.ee_pose()[1][2])

    def _backend_faults(self) -> list[str]:
        return []
