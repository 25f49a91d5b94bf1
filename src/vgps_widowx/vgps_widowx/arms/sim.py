"""The simulated WidowX behind the arm interface: :class:`SimArm` over
:class:`~vgps_widowx.sim.WidowXSimEnv`.

Usage::

    with SimArm(SimEnvConfig(task="carrot_on_plate")) as arm:     # or make_arm("sim", ...)
        arm.reset("neutral")
        result = arm.apply(np.array([0, 0, -0.02, 0, 0, 0, 1.0]))
        arm.privileged_state()["ee_pos"], arm.camera_image()
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vgps_widowx.arms.base import ArmBackend
from vgps_widowx.robot import rotations
from vgps_widowx.safety import SafetyConfig
from vgps_widowx.sim.env import SimEnvConfig, WidowXSimEnv


class SimArm(ArmBackend):
    """The simulated WidowX (:class:`~vgps_widowx.sim.WidowXSimEnv`) behind the arm interface.

    ``connect`` starts an episode; :meth:`start_episode` starts another (new prop layout), while
    :meth:`reset` only moves the arm (teleports it, as a simulator may). Actions apply to the
    commanded tool pose as the simulator's controller does (to the measured pose after it lagged
    behind), so the workspace check sees the same start. The simulator's controller also bounds
    the target to its own workspace box and euler bounds: reset to "neutral" before steering,
    since after "sleep" or "home" (outside those bounds) its first action pulls the commanded
    pose back inside them in one step, whatever the safety filter allowed.

    Args:
        env_config: simulator settings, used when ``env`` is None.
        safety: safety limits.
        env: an existing environment to drive (not closed on disconnect).
        task: task of the first episode (None: the environment's default).
        seed: seed of the first episode.
    """

    def __init__(
        self,
        env_config: SimEnvConfig | None = None,
        safety: SafetyConfig | None = None,
        *,
        env: WidowXSimEnv | None = None,
        task: str | None = None,
        seed: int | None = 0,
    ):
        super().__init__(safety)
        self._owns_env = env is None
        self.env = env if env is not None else WidowXSimEnv(env_config or SimEnvConfig())
        self._task, self._seed = task, seed
        self.info: dict[str, Any] = {}  # the last step's (or reset's) info
        self.observation: dict[str, np.ndarray] | None = None  # the last observation

    @property
    def _controller(self):  # the environment's ArmController (same package)
        return self.env._controller

    def start_episode(
        self, task: str | None = None, seed: int | None = None
    ) -> dict[str, np.ndarray]:
        """Resets the simulator: props at seeded poses, arm at neutral, open.

        Args:
            task: task name (None keeps the current one).
            seed: episode seed.

        Returns:
            The first observation ``{"image": uint8 (H, W, 3), "state": float32 (7,)}``.
        """
        options = {"task": task} if task is not None else None
        self.observation, self.info = self.env.reset(seed=seed, options=options)
        return self.observation

    def privileged_state(self) -> dict[str, Any]:
        """Simulator ground truth (see :meth:`WidowXSimEnv.privileged_state`)."""
        return self.env.privileged_state()

    def joints(self) -> np.ndarray:
        return self._controller.arm_joints().astype(np.float32)

    def gripper(self) -> float:
        return float(self._controller.gripper_state())

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        pos, rot = self._controller.ee_pose()
        return pos, rotations.state_euler(rot)

    def camera_image(self) -> np.ndarray | None:
        return None if self.observation is None else self.observation["image"].copy()

    def _connect(self) -> None:
        self.start_episode(self._task, self._seed)

    def _disconnect(self) -> None:
        if self._owns_env:
            self.env.close()

    def _reset(self, joints: np.ndarray) -> None:
        self._controller.set_pose(joints, gripper=1.0)
        self.observation = {"image": self.env.render(), "state": self.env.proprio()}

    def _execute(self, action: np.ndarray) -> dict[str, Any]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.observation, self.info = obs, info
        return {**info, "reward": reward, "terminated": terminated, "truncated": truncated}

    def _reference_position(self) -> np.ndarray:
        ctrl = self._controller
        cmd_pos, cmd_rot = ctrl.command_pose()
        pos, rot = ctrl.ee_pose()
        lagging = (
            np.linalg.norm(pos - cmd_pos) > ctrl.config.resync_distance
            or rotations.rotation_angle(rot, cmd_rot) > ctrl.config.resync_angle
        )
        return pos if lagging else cmd_pos
