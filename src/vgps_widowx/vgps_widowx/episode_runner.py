"""Episode bookkeeping of the arm driver: which decision may move the arm, and when episodes end.

ROS-free core of the arm driver node. One rule keeps the arm safe from stale or duplicated
decisions: a decision is executed only when its stamp is the stamp of the LAST image the driver
published (each step's candidates are sampled from exactly that image; the driver publishes the
next image only after the action finished), its reason executes (``argmax``, ``softmax``,
``fallback``), and that image has not been acted on yet. Everything goes through
:meth:`ArmBackend.apply`, the shared safety path.

Usage::

    runner = EpisodeRunner(arm, RunnerConfig(task="carrot_on_plate", episodes=2))
    runner.start_episode()
    runner.mark_image(stamp_ns)                      # the image just published
    ok, why = runner.accepts(stamp_ns, "argmax")
    outcome = runner.execute(actions)                # (N, 7) -> StepOutcome
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from vgps_widowx.robot.description import NAMED_POSES
from vgps_widowx.sticky_gripper import StickyGripper

if TYPE_CHECKING:  # the arm module imports MuJoCo; nodes import it only at configure
    from vgps_widowx.arms.base import ArmBackend

EXECUTABLE = ("argmax", "softmax", "fallback")
REAL_MAX_STEPS = 120  # step budget on the real arm when none is configured (24 s at 5 Hz)


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
    """

    executed: int
    refusals: tuple[str, ...]
    event: str
    success: bool
    step: int

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
        """Whether a decision with this source stamp and reason may be executed now."""
        if not self.running:
            return False, "no episode is running"
        if reason not in EXECUTABLE:
            return False, f"reason {reason!r} does not execute"
        if self.image_stamp_ns is None or int(stamp_ns) != self.image_stamp_ns:
            return False, (f"stamp {stamp_ns} is not the current image's "
                           f"{self.image_stamp_ns}: stale or foreign decision")
        if self._acted_on == self.image_stamp_ns:
            return False, "this image was already acted on"
        return True, ""

    def execute(self, actions: np.ndarray) -> StepOutcome:
        """Executes (N, 7) actions in order through ``ArmBackend.apply`` (safety filter).

        Each action's gripper goes through the sticky gripper first (``sticky_gripper_steps``).
        Stops at the first refused action. Counts one step when anything was executed.
        """
        self._acted_on = self.image_stamp_ns
        actions = np.asarray(actions, np.float32).reshape(-1, 7)
        executed, refusals, info = 0, [], {}
        for action in actions:
            result = self.arm.apply(self.gripper.propose(action))
            if not result.ok:
                refusals.extend(result.reasons)
                break
            self.gripper.commit()
            executed += 1
            info = result.info
        if not executed:
            return StepOutcome(0, tuple(refusals), "", self.success, self.step)
        self.step += 1
        self.success = bool(info.get("success", False))
        event = "step"
        if self.success:
            event = "succeeded"
        elif self.step >= self.max_steps or info.get("truncated", False):
            event = "timeout"
        if event != "step":
            self.running = False
        return StepOutcome(executed, tuple(refusals), event, self.success, self.step)

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
