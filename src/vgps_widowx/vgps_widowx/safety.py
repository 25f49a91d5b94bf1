"""The safety filter every arm backend applies before an action reaches a motor or the simulator.

An action is Bridge's 7-D ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``: end-effector deltas in
the arm's base frame (m, rad) and an absolute gripper command in [0, 1] (1 = open). The filter:

1. rejects anything that is not a finite numeric (7,) array, and any component whose magnitude
   exceeds ``max_abs_action`` (a unit or normalisation bug, not an aggressive policy);
2. clamps each translation and rotation delta to its per-step limit and the gripper into range;
3. shrinks the translation so ``ee_pos + delta`` stays inside the workspace box. When ``ee_pos``
   is already outside the box (after a reset to "home", say), moves further out are blocked on
   that axis and moves back in are allowed, still within the per-step limit;
4. where a yaw range is set (``yaw_low``/``yaw_high``, Bridge euler yaw of the tool; the
   default is the full circle, no bound), shrinks ``dyaw`` the same way.

Every reason is ``"code: human detail"`` (``SafetyVerdict.codes`` lists the codes). With
``reject_instead_of_clamp`` any clamp rejects the action instead.

Usage::

    safety = SafetyFilter(SafetyConfig())
    verdict = safety.check(action, ee_pos)     # action (7,), ee_pos (3,) the pose deltas apply to
    verdict = safety.check(action, ee_pos, ee_yaw)   # with a yaw range: the tool's yaw (rad)
    if verdict.ok:
        backend_execute(verdict.action)        # float32 (7,), clamped
    else:
        log(verdict.reasons)                   # nothing moves
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vgps_widowx.robot import description as robot

ACTION_DIM = robot.ACTION_DIM
AXES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
_XYZ = ("x", "y", "z")
_TOL = 1e-6  # excess over a bound below this is float noise (float32 0.05 > 0.05), not a clamp


@dataclasses.dataclass(frozen=True)
class SafetyConfig:
    """Limits of the shared safety filter (base frame of the arm, metres and radians).

    The defaults come from the robot model (:mod:`vgps_widowx.robot.description`), as do the
    simulator's (``vgps_widowx.sim.ControlConfig``): the tool box in front of the base column
    (x 0.10-0.45 m), across the Bridge toy-kitchen table (y -0.20..0.25 m), from pad tips touching
    the table top (z 0.008 m: the tool frame sits 8 mm above the pad tips with ``base_link`` on
    the table) up to just above the BridgeData neutral pose (z 0.247 m), and Bridge's per-step
    action bounds. On a real table, raise ``workspace_low[2]`` by the calibration uncertainty of
    the table height.
    """

    workspace_low: tuple[float, float, float] = robot.WORKSPACE_LOW  # tool position box (m)
    workspace_high: tuple[float, float, float] = robot.WORKSPACE_HIGH
    max_translation: float = robot.MAX_TRANSLATION  # |dx|, |dy|, |dz| per step (m), Bridge
    max_rotation: float = robot.MAX_ROTATION  # |droll|, |dpitch|, |dyaw| per step (rad), Bridge
    gripper_low: float = 0.0  # gripper command range (1 = open)
    gripper_high: float = 1.0
    max_abs_action: float = 2.0  # reject any |component| above: a unit/scaling bug, not a policy
    reject_instead_of_clamp: bool = False  # reject actions that would need clamping
    yaw_low: float = -np.pi  # tool yaw range (rad, Bridge euler); the full circle = no bound
    yaw_high: float = np.pi

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("yaw_low", "yaw_high"):
            value = getattr(self, field)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not -np.pi - _TOL <= value <= np.pi + _TOL):
                raise ValueError(f"{name}.{field}={value!r}: need a number in [-pi, pi]")
        if self.yaw_low >= self.yaw_high:
            raise ValueError(f"{name}.yaw_low={self.yaw_low!r}: must be below "
                             f"yaw_high={self.yaw_high!r}")
        for field in ("workspace_low", "workspace_high"):
            value = getattr(self, field)
            try:
                vec = tuple(float(v) for v in value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}.{field}={value!r}: need 3 finite numbers") from exc
            if len(vec) != 3 or not all(np.isfinite(vec)):
                raise ValueError(f"{name}.{field}={value!r}: need 3 finite numbers")
            object.__setattr__(self, field, vec)
        if any(lo >= hi for lo, hi in zip(self.workspace_low, self.workspace_high)):
            raise ValueError(
                f"{name}.workspace_low={self.workspace_low!r}: must be below "
                f"workspace_high={self.workspace_high!r} on every axis"
            )
        for field in ("max_translation", "max_rotation", "max_abs_action"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name}.{field}={value!r}: must be a finite number > 0")
        if not 0.0 <= self.gripper_low < self.gripper_high <= 1.0:
            raise ValueError(
                f"{name}.gripper_low={self.gripper_low!r}, gripper_high={self.gripper_high!r}: "
                "need 0 <= gripper_low < gripper_high <= 1"
            )
        biggest = max(self.max_translation, self.max_rotation, self.gripper_high)
        if self.max_abs_action < biggest:
            raise ValueError(
                f"{name}.max_abs_action={self.max_abs_action!r}: must be >= every clamp limit "
                f"({biggest}), or in-range actions would be rejected"
            )
        if not isinstance(self.reject_instead_of_clamp, bool):
            raise ValueError(
                f"{name}.reject_instead_of_clamp={self.reject_instead_of_clamp!r}: must be a bool"
            )

    @property
    def yaw_bounded(self) -> bool:
        """Whether the yaw range is narrower than the full circle."""
        return self.yaw_high - self.yaw_low < 2 * np.pi - 1e-6

    @property
    def action_low(self) -> np.ndarray:
        """(7,) lower clamp bounds."""
        t, r = self.max_translation, self.max_rotation
        return np.array([-t, -t, -t, -r, -r, -r, self.gripper_low])

    @property
    def action_high(self) -> np.ndarray:
        """(7,) upper clamp bounds."""
        t, r = self.max_translation, self.max_rotation
        return np.array([t, t, t, r, r, r, self.gripper_high])


@dataclasses.dataclass(frozen=True)
class SafetyVerdict:
    """What the filter decided about one action.

    Attributes:
        ok: the action may be executed (possibly clamped).
        action: float32 (7,) the action to execute; None when ``ok`` is False.
        reasons: ``"code: detail"`` strings, empty when the action passed untouched.
        clamped: some component or the workspace target was clamped.
    """

    ok: bool
    action: np.ndarray | None
    reasons: tuple[str, ...] = ()
    clamped: bool = False

    @property
    def codes(self) -> tuple[str, ...]:
        """The machine-readable code of each reason (the text before the first colon)."""
        return tuple(reason.split(":", 1)[0] for reason in self.reasons)


def _reject(*reasons: str) -> SafetyVerdict:
    return SafetyVerdict(ok=False, action=None, reasons=tuple(reasons), clamped=False)


def _as_vector(value: object, n: int, what: str) -> tuple[np.ndarray | None, str]:
    """(n,) float64 copy of ``value`` or ``(None, reason)``."""
    try:
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiu":
            return None, f"malformed: {what} must be real numbers, got dtype {arr.dtype}"
        arr = arr.astype(np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        return None, f"malformed: {what} is not a numeric array ({type(exc).__name__}: {exc})"
    if arr.shape != (n,):
        return None, f"bad_shape: {what} must have shape ({n},), got {arr.shape}"
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        return None, f"non_finite: {what} has NaN/inf at indices {bad.tolist()}"
    return arr, ""


class SafetyFilter:
    """Validates and clamps Bridge actions against :class:`SafetyConfig` (stateless).

    Args:
        config: the limits; defaults to :class:`SafetyConfig()`.
    """

    def __init__(self, config: SafetyConfig | None = None):
        self.config = config or SafetyConfig()
        if not isinstance(self.config, SafetyConfig):
            raise ValueError(f"config={config!r}: must be a SafetyConfig")

    def check(self, action: object, ee_pos: object, ee_yaw: float | None = None) -> SafetyVerdict:
        """Checks one action against the limits; never raises on bad input.

        Args:
            action: (7,) ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``.
            ee_pos: (3,) tool position (m, base frame) the translation is applied to: the
                commanded pose where the backend tracks one, else the measured pose.
            ee_yaw: the tool's yaw (rad, Bridge euler) the rotation is applied to; needed only
                when the config bounds the yaw (an action is rejected without it then).

        Returns:
            The :class:`SafetyVerdict`: ``ok`` with a float32 (7,) action (clamped where needed),
            or not ``ok`` with no action and the reasons.
        """
        cfg = self.config
        act, why = _as_vector(action, ACTION_DIM, "action")
        if act is None:
            return _reject(why)
        pos, why = _as_vector(ee_pos, 3, "ee_pos")
        if pos is None:
            return _reject(f"bad_ee_pos: cannot check the workspace ({why})")
        huge = np.flatnonzero(np.abs(act) > cfg.max_abs_action)
        if huge.size:
            return _reject(
                *(
                    f"out_of_range: |{AXES[i]}| {abs(act[i]):.4g} > max_abs_action "
                    f"{cfg.max_abs_action:g}"
                    for i in huge
                )
            )
        reasons: list[str] = []
        low, high = cfg.action_low, cfg.action_high
        safe = np.clip(act, low, high)
        for i in np.flatnonzero(np.abs(safe - act) > _TOL):
            code = "translation" if i < 3 else "rotation" if i < 6 else "gripper"
            bound, op = (high[i], ">") if act[i] > high[i] else (low[i], "<")
            reasons.append(f"{code}_clamped: {AXES[i]} {act[i]:.4f} {op} {bound:.4f}")
        reasons.extend(self._clamp_workspace(pos, safe))
        if cfg.yaw_bounded:
            yaw, why = _as_vector([np.nan if ee_yaw is None else ee_yaw], 1, "ee_yaw")
            if yaw is None:
                return _reject(f"bad_ee_yaw: cannot check the yaw range ({why})")
            reasons.extend(self._clamp_yaw(float(yaw[0]), safe))
        clamped = bool(reasons)
        if clamped and cfg.reject_instead_of_clamp:
            return _reject(*reasons, "clamp_rejected: reject_instead_of_clamp is set")
        return SafetyVerdict(
            ok=True, action=safe.astype(np.float32), reasons=tuple(reasons), clamped=clamped
        )

    def _clamp_yaw(self, yaw: float, safe: np.ndarray) -> list[str]:
        """Shrinks ``safe[5]`` in place so the yaw stays in range; returns the reasons."""
        low, high = self.config.yaw_low, self.config.yaw_high
        reasons = []
        if yaw < low - _TOL or yaw > high + _TOL:
            reasons.append(f"outside_yaw_range: yaw {yaw:.3f} outside [{low:.3f}, {high:.3f}]; "
                           "only turns back in are allowed")
        lo_eff, hi_eff = min(low, yaw), max(high, yaw)
        target = yaw + safe[5]
        bounded = min(max(target, lo_eff), hi_eff)
        if abs(bounded - target) > _TOL:
            op, bound = (">", hi_eff) if target > hi_eff else ("<", lo_eff)
            reasons.append(f"yaw_clamped: yaw {target:.4f} {op} {bound:.4f}, dyaw {safe[5]:.4f} "
                           f"-> {bounded - yaw:.4f}")
        safe[5] = bounded - yaw
        return reasons

    def _clamp_workspace(self, pos: np.ndarray, safe: np.ndarray) -> list[str]:
        """Shrinks ``safe[:3]`` in place so the target stays in the box; returns the reasons."""
        low = np.asarray(self.config.workspace_low)
        high = np.asarray(self.config.workspace_high)
        reasons = []
        outside = [
            f"{_XYZ[i]} {pos[i]:.3f} {'<' if pos[i] < low[i] else '>'} "
            f"{low[i] if pos[i] < low[i] else high[i]:.3f}"
            for i in range(3)
            if pos[i] < low[i] - _TOL or pos[i] > high[i] + _TOL
        ]
        if outside:
            reasons.append(
                f"outside_workspace: tool at {', '.join(outside)}; only moves back in are allowed"
            )
        # Never further out than now: the box grows to include the current position per axis.
        lo_eff, hi_eff = np.minimum(low, pos), np.maximum(high, pos)
        target = pos + safe[:3]
        bounded = np.clip(target, lo_eff, hi_eff)
        for i in np.flatnonzero(np.abs(bounded - target) > _TOL):
            op, bound = (">", hi_eff[i]) if target[i] > hi_eff[i] else ("<", lo_eff[i])
            new = bounded[i] - pos[i]
            reasons.append(
                f"workspace_clamped: {_XYZ[i]} {target[i]:.4f} {op} {bound:.4f}, "
                f"{AXES[i]} {safe[i]:.4f} -> {new:.4f}"
            )
        safe[:3] = bounded - pos
        return reasons
