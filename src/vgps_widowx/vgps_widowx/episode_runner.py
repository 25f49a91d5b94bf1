"""Episode bookkeeping of the arm driver: which decision may move the arm, and when episodes end.

ROS-free core of the arm driver node. One rule keeps the arm safe from stale or duplicated
decisions: a decision is executed only when its stamp is the stamp of the LAST image the driver
published (each step's candidates are sampled from exactly that image; the driver publishes the
next image only after the action finished), its reason executes (``argmax``, ``softmax``,
``fallback``, ``intervention``), and that image has not been acted on yet. Everything goes through
:meth:`ArmBackend.apply`, the shared safety path.

One decision is one control period, however many actions it carries (``execute: chunk`` sends
H): the tool's motion within one decision is capped at what ONE action may do. The absolute
deltas of the executed actions are summed per axis (dx, dy, dz against the safety config's
``max_translation``; droll, dpitch, dyaw against ``max_rotation``); each further action's pose
delta is scaled down (translation and rotation each by one factor, keeping their direction) to
what is left of that budget. Once the budget is spent, the remaining actions are dropped, except
one that changes the gripper command, which still executes without motion. The first action is
never scaled (the safety filter bounds it alone), so single-action decisions are unchanged. Each
scaling and the truncation is reported in :attr:`StepOutcome.clamps`; the runner also counts
ignored decisions, refused actions and clamps for the node's diagnostics (:attr:`counts`).

Usage::

    runner = EpisodeRunner(arm, RunnerConfig(task="carrot_on_plate", episodes=2))
    runner.start_episode()
    runner.mark_image(stamp_ns)                      # the image just published
    ok, why = runner.accepts(stamp_ns, "argmax")
    outcome = runner.execute(actions)                # (N, 7) -> StepOutcome
"""

from __future__ import annotations

import collections
import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from vgps_widowx.robot.description import NAMED_POSES
from vgps_widowx.sticky_gripper import StickyGripper

if TYPE_CHECKING:  # the arm module imports MuJoCo; nodes import it only at configure
    from vgps_widowx.arms.base import ArmBackend

EXECUTABLE = ("argmax", "softmax", "fallback", "intervention")
REAL_MAX_STEPS = 120  # step budget on the real arm when none is configured (24 s at 5 Hz)
_TOL = 1e-6  # budget left below this is spent (float32 noise), as in the safety filter
GRIPPER_CHANGE = 1e-3  # a motionless action executes only to change the gripper by more


class EpisodeStartError(RuntimeError):
    """An episode could not start (the reset failed); it counts as a failed episode."""


@dataclasses.dataclass(frozen=True)
class RunnerConfig:
    """Settings of :class:`EpisodeRunner`."""

    task: str = "carrot_on_plate"  # sim task name; recorded only on the real arm
    episodes: int = 1  # episodes to run back to back after activation (0: only on request)
    seed: int = 0  # episode i is seeded with seed + i (sim layouts)
    max_steps: int = 0  # step budget per episode; 0 = the sim task's own (real: 120)
    instruction: str = ""  # overrides the task's instruction ("" = the task's own)
    reset_pose: str = "neutral"  # real arm: the named pose each episode starts from
    sticky_gripper_steps: int = 0  # consecutive requests that change the gripper (0: off)

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("episodes", "max_steps", "sticky_gripper_steps"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}.{field}={value!r}: must be an integer >= 0")
        if not isinstance(self.task, str) or not self.task:
            raise ValueError(f"{name}.task={self.task!r}: need a task name")
        if self.reset_pose not in NAMED_POSES:
            raise ValueError(f"{name}.reset_pose={self.reset_pose!r}: choose from "
                             f"{sorted(NAMED_POSES)}")


@dataclasses.dataclass(frozen=True)
class StepOutcome:
    """What executing one decision did.

    Attributes:
        executed: actions executed (0: nothing moved).
        refusals: reasons the backend refused actions (the rest of the chunk is dropped).
        event: ``"step"``, ``"succeeded"``, ``"timeout"``, ``"failed"``, or ``""`` when nothing
            was executed.
        success: the task's success condition holds.
        step: steps taken in the episode so far.
        clamps: ``"code: detail"`` for each action scaled down or dropped by the per-decision
            motion cap (``chunk_clamped``, ``chunk_truncated``); empty when the chunk fit.
    """

    executed: int
    refusals: tuple[str, ...]
    event: str
    success: bool
    step: int
    clamps: tuple[str, ...] = ()

    @property
    def ended(self) -> bool:
        return self.event in ("succeeded", "timeout", "failed")


class EpisodeRunner:
    """Step gating and episode state around an arm backend (call from one thread at a time).

    Args:
        arm: a connected arm backend (``SimArm`` gets new layouts per episode).
        config: the settings.
    """

    def __init__(self, arm: ArmBackend, config: RunnerConfig | None = None):
        self.arm = arm
        self.config = config or RunnerConfig()
        self.episode = -1
        self.step = 0
        self.running = False
        self.success = False
        self.instruction = self.config.instruction
        self.image_stamp_ns: int | None = None
        self._acted_on: int | None = None
        self.gripper = StickyGripper(self.config.sticky_gripper_steps)
        # Diagnostics: "ignored.<class>" decisions, "refused" actions, "clamped" decisions.
        self.counts: collections.Counter[str] = collections.Counter()

    @property
    def is_sim(self) -> bool:
        return hasattr(self.arm, "start_episode")

    @property
    def max_steps(self) -> int:
        if self.config.max_steps:
            return self.config.max_steps
        env = getattr(self.arm, "env", None)
        return int(env.max_steps) if env is not None else REAL_MAX_STEPS

    @property
    def episodes_left(self) -> int:
        return max(self.config.episodes - (self.episode + 1), 0)

    def start_episode(self) -> str:
        """Starts the next episode (sim: new seeded layout; real: ``reset_pose``).

        Returns:
            The episode's instruction.

        Raises:
            EpisodeStartError: the layout or the reset failed; the episode counts (as failed)
                and none is running.
        """
        self.episode += 1
        self.running = False
        try:
            if self.is_sim:
                self.arm.start_episode(self.config.task, self.config.seed + self.episode)
                own = self.arm.env.instruction
            else:
                self.arm.reset(self.config.reset_pose)
                own = ""
        except Exception as exc:  # reported as a failed episode, never escapes
            raise EpisodeStartError(f"episode {self.episode} cannot start: "
                                    f"{type(exc).__name__}: {exc}") from exc
        self.instruction = self.config.instruction or own
        self.step, self.success, self.running = 0, False, True
        self.image_stamp_ns, self._acted_on = None, None
        self.gripper.reset()  # the reset opened the gripper
        return self.instruction

    def stop(self) -> None:
        """Ends the episode without an outcome (nothing executes until the next start)."""
        self.running = False

    def mark_image(self, stamp_ns: int) -> None:
        """Records the stamp of the image just published: decisions must carry it."""
        self.image_stamp_ns = int(stamp_ns)

    def accepts(self, stamp_ns: int, reason: str) -> tuple[bool, str]:
        """Whether a decision with this source stamp and reason may be executed now.

        A decision turned down is counted in :attr:`counts` as ``ignored.<class>``
        (``not_running``, ``not_executable``, ``stale``, ``acted_on``).
        """
        ignored, why = "", ""
        if not self.running:
            ignored, why = "not_running", "no episode is running"
        elif reason not in EXECUTABLE:
            ignored, why = "not_executable", f"reason {reason!r} does not execute"
        elif self.image_stamp_ns is None or int(stamp_ns) != self.image_stamp_ns:
            ignored, why = "stale", (f"stamp {stamp_ns} is not the current image's "
                                     f"{self.image_stamp_ns}: stale or foreign decision")
        elif self._acted_on == self.image_stamp_ns:
            ignored, why = "acted_on", "this image was already acted on"
        if ignored:
            self.counts[f"ignored.{ignored}"] += 1
            return False, why
        return True, ""

    def ignore(self, kind: str) -> None:
        """Counts a decision the node turned down itself (``malformed``) as ``ignored.<kind>``."""
        self.counts[f"ignored.{kind}"] += 1

    def execute(self, actions: np.ndarray) -> StepOutcome:
        """Executes (N, 7) actions in order through ``ArmBackend.apply`` (safety filter).

        Each action's gripper goes through the sticky gripper first (``sticky_gripper_steps``).
        The chunk's motion is capped at one action's per-step limits (module docstring). Stops
        at the first refused action. Counts one step when anything was executed.
        """
        self._acted_on = self.image_stamp_ns
        actions = np.asarray(actions, np.float32).reshape(-1, 7)
        limits, max_abs = self._step_limits(), self.arm.safety.config.max_abs_action
        budget = limits.copy()  # per-axis motion left in this control period
        executed, refusals, clamps, info = 0, [], [], {}
        dropped, gripper = 0, None
        for index, action in enumerate(actions):
            action = self.gripper.propose(action)
            if executed:
                action, clamp = _fit_budget(action, budget, max_abs, index, len(actions))
                if (clamp and not np.any(action[:6])
                        and abs(float(action[6]) - gripper) <= GRIPPER_CHANGE):
                    dropped += 1  # the budget is spent and the gripper stays
                    continue
                if clamp:
                    clamps.append(clamp)
            result = self.arm.apply(action)
            if not result.ok:
                refusals.extend(result.reasons)
                self.counts["refused"] += 1
                break
            self.gripper.commit()
            executed += 1
            info = result.info
            budget = budget - np.abs(result.action[:6].astype(np.float64))
            budget[budget < _TOL] = 0.0  # float32 noise of a full step: spent
            gripper = float(result.action[6])
        if dropped:
            clamps.append(f"chunk_truncated: {dropped} of {len(actions)} actions dropped, the "
                          f"per-step motion budget ({limits[0]:.3f} m, {limits[3]:.3f} rad per "
                          "axis) was spent")
        if clamps:
            self.counts["clamped"] += 1
        if not executed:
            return StepOutcome(0, tuple(refusals), "", self.success, self.step, tuple(clamps))
        self.step += 1
        self.success = bool(info.get("success", False))
        event = "step"
        if self.success:
            event = "succeeded"
        elif self.step >= self.max_steps or info.get("truncated", False):
            event = "timeout"
        if event != "step":
            self.running = False
        return StepOutcome(executed, tuple(refusals), event, self.success, self.step,
                           tuple(clamps))

    def _step_limits(self) -> np.ndarray:
        """(6,) per-axis motion one control period allows: the safety filter's per-step limits."""
        config = self.arm.safety.config
        return np.array([config.max_translation] * 3 + [config.max_rotation] * 3, np.float64)

    def camera_image(self) -> np.ndarray | None:
        """The backend's current camera frame (sim: the rendered observation) or None."""
        return self.arm.camera_image()

    def capture(self) -> tuple[dict[str, Any] | None, np.ndarray | None, np.ndarray, float]:
        """(sim state or None, own camera frame or None, (6,) joints, gripper) for one
        observation (call on the backend's thread)."""
        return self.privileged_state(), self.camera_image(), self.arm.joints(), self.arm.gripper()

    def privileged_state(self) -> dict[str, Any] | None:
        """Simulator ground truth (sim only)."""
        return self.arm.privileged_state() if self.is_sim else None


def _fit_budget(action: np.ndarray, budget: np.ndarray, max_abs: float, index: int,
                total: int) -> tuple[np.ndarray, str]:
    """Scales an action's pose delta into the motion ``budget`` left (see the module docstring).

    Translation and rotation are each scaled by one factor (their direction is kept), the
    largest that keeps every axis within its budget. A non-finite action, or one with a
    component above ``max_abs`` (the safety filter's ``max_abs_action``: a unit bug), is
    returned unchanged so the filter refuses it rather than the cap hiding it.

    Returns:
        (action, clamp): clamp is ``""`` when the action fits unchanged, else the
        ``"chunk_clamped: ..."`` reason.
    """
    if not np.all(np.isfinite(action)) or np.any(np.abs(action[:6]) > max_abs):
        return action, ""
    delta = action[:6].astype(np.float64)
    out = np.array(action, np.float32)
    scales = []
    for axes in (slice(0, 3), slice(3, 6)):
        need, left = np.abs(delta[axes]), budget[axes]
        moving = need > _TOL
        scale = 1.0
        if np.any(moving):
            scale = float(min(1.0, np.min(left[moving] / need[moving])))
        out[axes] = (delta[axes] * scale).astype(np.float32)
        scales.append(scale)
    if min(scales) >= 1.0:
        return out, ""
    return out, (f"chunk_clamped: action {index + 1} of {total} scaled to "
                 f"{scales[0]:.2f} (translation) and {scales[1]:.2f} (rotation) of its motion: "
                 "one decision may move the tool at most one step's limits per axis")


def connect_backend(backend: str, config: RunnerConfig, image_size: int,
                    real: dict[str, Any] | None = None) -> ArmBackend:
    """Builds and connects the arm driver's backend (call on the backend's thread).

    Args:
        backend: "sim" or a real backend name of ``vgps_widowx.arms.BACKENDS``.
        config: the runner's settings (sim: task and seed).
        image_size: sim camera size (square, px).
        real: keyword arguments of the real backend (config, safety, ros).
    """
    from vgps_widowx.arms import make_arm

    if backend == "sim":
        from vgps_widowx.sim import SimEnvConfig

        env_config = SimEnvConfig(task=config.task, image_size=(image_size, image_size))
        arm = make_arm("sim", env_config=env_config, task=config.task, seed=config.seed)
    else:
        arm = make_arm(backend, **(real or {}))
    arm.connect()
    return arm
