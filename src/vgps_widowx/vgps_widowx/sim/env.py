"""Gymnasium environment: the simulated WidowX 250 on a toy-kitchen table, Bridge conventions.

Set ``MUJOCO_GL=egl`` (or ``osmesa``) in the environment before ``mujoco`` is first imported to
render headless; this module does not touch the environment itself.

Usage::

    env = WidowXSimEnv(SimEnvConfig(task="carrot_on_plate"))
    obs, info = env.reset(seed=0, options={"task": "stack_blocks"})
    obs, reward, terminated, truncated, info = env.step(np.array([0, 0, -0.02, 0, 0, 0, 1.0]))
    obs["image"]   # uint8 (H, W, 3) from the fixed over-the-shoulder camera
    obs["state"]   # float32 (7,): ee x, y, z (m), roll, pitch, yaw (rad), gripper in [0, 1]
    env.privileged_state()   # poses for scripted planners, see its docstring
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from vgps_widowx.robot import description as robot
from vgps_widowx.robot import kinematics
from vgps_widowx.sim import scene, tasks
from vgps_widowx.sim.control import ArmController, ControlConfig


@dataclasses.dataclass(frozen=True)
class SimEnvConfig:
    """Settings of :class:`WidowXSimEnv`."""

    task: str = "carrot_on_plate"  # default task; reset(options={"task": ...}) overrides it
    image_size: tuple[int, int] = (256, 256)  # (height, width) of observation images
    n_distractors: int = 2  # extra props scattered on the table besides object and target
    max_steps: int | None = None  # episode step limit; None uses the task's own
    paraphrase_instructions: bool = False  # sample an instruction paraphrase per episode
    settle_time: float = 0.3  # seconds of physics after placing props, before the first frame
    control: ControlConfig = dataclasses.field(default_factory=ControlConfig)  # action execution

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.task not in tasks.TASKS:
            raise ValueError(
                f"{name}.task={self.task!r}: unknown task; choose from {sorted(tasks.TASKS)}"
            )
        if not isinstance(self.control, ControlConfig):
            raise ValueError(f"{name}.control={self.control!r}: must be a ControlConfig")
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        if len(self.image_size) != 2 or not all(16 <= v <= 2048 for v in self.image_size):
            raise ValueError(
                f"{name}.image_size={self.image_size!r}: need (height, width), each in 16..2048"
            )
        if not 0 <= self.n_distractors <= len(scene.PROPS) - 2:
            raise ValueError(
                f"{name}.n_distractors={self.n_distractors!r}: need 0..{len(scene.PROPS) - 2}"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"{name}.max_steps={self.max_steps!r}: must be >= 1 or None")
        if not 0.0 <= self.settle_time <= 5.0:
            raise ValueError(f"{name}.settle_time={self.settle_time!r}: need 0..5 s")


class WidowXSimEnv(gym.Env):
    """Simulated WidowX 250 tabletop with Bridge's 7-D delta end-effector actions at 5 Hz.

    Observations are ``{"image": uint8 (H, W, 3), "state": float32 (7,)}``; the reward is 0 on
    success and -1 otherwise; an episode terminates on success and truncates at the step limit.
    The same seed (and task) always gives identical observations and outcomes.

    Args:
        config: environment settings; defaults to :class:`SimEnvConfig()`.
        render_mode: only ``"rgb_array"`` (the observation image) is supported.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(self, config: SimEnvConfig | None = None, render_mode: str | None = "rgb_array"):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}: only 'rgb_array' is supported")
        self.config = config or SimEnvConfig()
        self.render_mode = render_mode
        self._model = mujoco.MjModel.from_xml_string(scene.build_scene_xml(self.config.image_size))
        self._data = mujoco.MjData(self._model)
        self._index = tasks.SceneIndex(self._model)
        self._controller = ArmController(self._model, self._data, self.config.control)
        self._renderer: mujoco.Renderer | None = None
        height, width = self.config.image_size
        cfg = self.config.control
        self.action_space = gym.spaces.Box(
            cfg.action_low.astype(np.float32), cfg.action_high.astype(np.float32), dtype=np.float32
        )
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, (height, width, 3), dtype=np.uint8),
                "state": gym.spaces.Box(
                    np.array([-1, -1, -1, -np.pi, -np.pi, -np.pi, 0], dtype=np.float32),
                    np.array([1, 1, 1, np.pi, np.pi, np.pi, 1], dtype=np.float32),
                    dtype=np.float32,
                ),
            }
        )
        self._task = tasks.get_task(self.config.task)
        self._instruction = self._task.instruction
        self._steps = 0
        self._success = False
        self._needs_reset = True

    # ----------------------------------------------------------------------------------------
    # Gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Starts an episode: props at seeded poses, arm at the BridgeData neutral pose, open.

        Args:
            seed: seeds the episode's randomness (layout, paraphrase); same seed, same episode.
            options: ``{"task": name}`` selects the task (it then stays selected).

        Returns:
            ``(observation, info)``.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"task"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; supported: ['task']")
        if "task" in options:
            self._task = tasks.get_task(options["task"])
        rng = self.np_random
        layout = tasks.sample_layout(self._task, rng, self.config.n_distractors)
        self._instruction = self._task.instruction
        if self.config.paraphrase_instructions:
            choices = self._task.instructions
            self._instruction = choices[int(rng.integers(len(choices)))]
        mujoco.mj_resetData(self._model, self._data)
        self._index.place(self._data, layout)
        self._controller.set_pose(robot.NEUTRAL_POSE, gripper=1.0)
        n_settle = round(self.config.settle_time / self._model.opt.timestep)
        if n_settle:
            mujoco.mj_step(self._model, self._data, nstep=n_settle)
        self._controller.set_pose(robot.NEUTRAL_POSE, gripper=1.0)
        self._steps = 0
        self._success = False
        self._needs_reset = False
        return self._observation(), self._info()

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Executes one blocking 0.2 s action (see :mod:`vgps_widowx.sim.control`).

        Args:
            action: (7,) ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``, base frame, 1 = open.

        Returns:
            ``(observation, reward, terminated, truncated, info)``.

        Raises:
            ValueError: malformed action (wrong shape, NaN/inf); the arm does not move.
            RuntimeError: ``step`` before the first ``reset``.

        Stepping on after the episode ended is allowed (the arm keeps obeying); callers that
        follow Gymnasium's contract reset instead.
        """
        if self._needs_reset:
            raise RuntimeError("call reset() before the first step()")
        diag = self._controller.step(action)
        self._steps += 1
        self._success = tasks.is_success(self._task, self._index, self._data)
        truncated = not self._success and self._steps >= self.max_steps
        info = self._info()
        info["control"] = diag
        return self._observation(), 0.0 if self._success else -1.0, self._success, truncated, info

    def render(self) -> np.ndarray:
        """Frame from the over-the-shoulder camera: uint8 (H, W, 3)."""
        if self._renderer is None:
            height, width = self.config.image_size
            self._renderer = mujoco.Renderer(self._model, height, width)
        self._renderer.update_scene(self._data, scene.CAMERA)
        return self._renderer.render().copy()

    def close(self) -> None:
        """Frees the renderer's GL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ----------------------------------------------------------------------------------------
    # Extras

    @property
    def task(self) -> tasks.TaskSpec:
        """The current task."""
        return self._task

    @property
    def instruction(self) -> str:
        """The current episode's language instruction."""
        return self._instruction

    @property
    def max_steps(self) -> int:
        """Step limit of the current episode."""
        return self.config.max_steps or self._task.max_steps

    def proprio(self) -> np.ndarray:
        """Bridge proprio: float32 (7,) ee xyz (m), roll/pitch/yaw (rad), gripper in [0, 1]."""
        pos, rot = self._controller.ee_pose()
        return np.concatenate(
            [pos, kinematics.state_euler(rot), [self._controller.gripper_state()]]
        ).astype(np.float32)

    def success_report(self) -> dict[str, bool]:
        """Every physical success condition of the current state (see :mod:`tasks`)."""
        return tasks.success_report(self._task, self._index, self._data)

    def privileged_state(self) -> dict[str, Any]:
        """Simulator ground truth for scripted planners (never an observation for learning).

        Returns:
            A dict with
            ``task`` (str), ``instruction`` (str), ``step`` (int),
            ``ee_pos`` (3,) tool position (m), ``ee_quat`` (4,) tool orientation (w, x, y, z),
            ``ee_euler`` (3,) Bridge roll/pitch/yaw (rad), ``gripper`` (float, 1 = open),
            ``ee_command_pos`` (3,) and ``ee_command_euler`` (3,): the commanded tool pose the
            next action is applied to (the measured pose lags it by up to ~2 cm while moving),
            ``joint_pos`` (6,) arm joints (rad),
            ``object`` and ``target`` (str prop names),
            ``objects``: ``{name: {"pos": (3,), "quat": (4,)}}`` world poses of the object
            and the target, ``distractors``: the same for other props on the table,
            ``object_grasped`` (bool: both finger pads touch the object).
            All frames are the arm's base frame; arrays are float64 copies.
        """
        pos, rot = self._controller.ee_pose()
        cmd_pos, cmd_rot = self._controller.command_pose()
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, rot.reshape(-1))
        task = self._task

        def pose(name: str) -> dict[str, np.ndarray]:
            p, q = self._index.pose(self._data, name)
            return {"pos": p, "quat": q}

        distractors = {
            name: pose(name)
            for name in scene.PROPS
            if name not in (task.object, task.target)
            and self._index.pose(self._data, name)[0][2] > -0.1
        }
        return {
            "task": task.name,
            "instruction": self._instruction,
            "step": self._steps,
            "ee_pos": pos,
            "ee_quat": quat,
            "ee_euler": kinematics.state_euler(rot),
            "ee_command_pos": cmd_pos,
            "ee_command_euler": kinematics.state_euler(cmd_rot),
            "gripper": self._controller.gripper_state(),
            "joint_pos": self._controller.arm_joints(),
            "object": task.object,
            "target": task.target,
            "objects": {task.object: pose(task.object), task.target: pose(task.target)},
            "distractors": distractors,
            "object_grasped": self._index.grasped(self._data, task.object),
        }

    def _observation(self) -> dict[str, np.ndarray]:
        return {"image": self.render(), "state": self.proprio()}

    def _info(self) -> dict[str, Any]:
        return {
            "success": self._success,
            "task": self._task.name,
            "instruction": self._instruction,
            "step": self._steps,
        }
