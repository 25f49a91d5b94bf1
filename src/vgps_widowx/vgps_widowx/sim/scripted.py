"""Noiseless scripted pick-and-place from privileged simulator state.

The plan is a fixed sequence of phases, each a waypoint (tool position, yaw, gripper command)
computed from :meth:`WidowXSimEnv.privileged_state`::

    approach -> descend -> grasp -> lift -> carry -> lower -> release -> retreat -> done

:func:`plan_waypoint` gives the waypoint of a phase and :func:`waypoint_action` turns a waypoint
into one bounded Bridge action, so other policies (e.g. a noisy data-collection policy) can reuse
the plan and perturb either step. :class:`ScriptedPolicy` strings them together.

Usage::

    policy = ScriptedPolicy(env.task)
    obs, info = env.reset(seed=0)
    policy.reset()
    while not done:
        action = policy.act(env.privileged_state())
        obs, reward, terminated, truncated, info = env.step(action)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from vgps_widowx.robot import description as robot
from vgps_widowx.robot import rotations
from vgps_widowx.sim import scene, tasks

PHASES = ("approach", "descend", "grasp", "lift", "carry", "lower", "release", "retreat", "done")
OPEN, CLOSED = 1.0, 0.0


@dataclasses.dataclass(frozen=True)
class ScriptConfig:
    """Heights, tolerances and timings of the scripted plan (metres, radians, steps)."""

    hover_height: float = 0.09  # tool height above the grasp point before descending
    carry_height: float = 0.13  # tool height (above the table) while carrying
    place_clearance: float = 0.012  # gap under the held object when it is released
    coarse_tol: float = 0.015  # position tolerance of free-space waypoints
    fine_tol: float = 0.005  # position tolerance of grasp and place waypoints
    yaw_tol: float = 0.06  # yaw tolerance before descending
    grasp_steps: int = 2  # steps spent closing the gripper
    release_steps: int = 1  # steps spent opening it
    retreat_height: float = 0.06  # how far to rise after releasing

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"ScriptConfig.{field.name}={value!r}: must be > 0")


@dataclasses.dataclass(frozen=True)
class Waypoint:
    """Where a phase wants the tool.

    Attributes:
        pos: (3,) tool position (m), base frame.
        yaw: Bridge state yaw (rad); roll and pitch are always 0 (pointing down).
        gripper: gripper command, 1 = open.
        tol: position tolerance (m) for the waypoint to count as reached.
    """

    pos: np.ndarray
    yaw: float
    gripper: float
    tol: float


def _wrap(angle: float, period: float) -> float:
    """Wraps ``angle`` into [-period / 2, period / 2)."""
    return float((angle + period / 2) % period - period / 2)


def grasp_pose(task: tasks.TaskSpec, state: dict[str, Any]) -> tuple[np.ndarray, float]:
    """Top-down grasp of the task's object.

    Args:
        task: the task.
        state: :meth:`WidowXSimEnv.privileged_state` output.

    Returns:
        ``(pos, yaw)``: (3,) tool position (m) and gripper yaw (rad) that closes the fingers
        across the object's narrow side.
    """
    spec = scene.PROPS[task.object]
    obj = state["objects"][task.object]
    heading = tasks.quat_yaw(obj["quat"])
    offset = spec.grasp_x * np.array([np.cos(heading), np.sin(heading)])
    bottom = obj["pos"][2] - spec.rest_z
    pos = np.array([obj["pos"][0] + offset[0], obj["pos"][1] + offset[1], bottom + spec.grasp_z])
    return pos, _wrap(heading, task.grasp_symmetry)


def place_position(
    task: tasks.TaskSpec, state: dict[str, Any], held_offset: float, clearance: float
) -> np.ndarray:
    """Tool position that holds the object ``clearance`` above the target's support surface.

    Args:
        task: the task.
        state: privileged state.
        held_offset: tool height above the held object's bottom (m).
        clearance: gap (m) between the object's bottom and the surface.

    Returns:
        (3,) tool position (m) above the target's centre.
    """
    spec = scene.PROPS[task.target]
    tgt = state["objects"][task.target]["pos"]
    surface = tgt[2] - spec.rest_z + spec.top_z
    return np.array([tgt[0], tgt[1], surface + held_offset + clearance])


def plan_waypoint(
    task: tasks.TaskSpec,
    state: dict[str, Any],
    phase: str,
    memory: dict[str, Any],
    config: ScriptConfig | None = None,
) -> Waypoint:
    """Waypoint of one phase of the plan.

    Args:
        task: the task.
        state: privileged state.
        phase: one of :data:`PHASES`.
        memory: values recorded by earlier phases (``grasp_yaw``, ``held_offset``,
            ``release_pos``); missing keys fall back to the current state.
        config: plan settings.

    Returns:
        The phase's :class:`Waypoint`.
    """
    cfg = config or ScriptConfig()
    ee = np.asarray(state["ee_pos"], float)
    yaw = memory.get("grasp_yaw", float(state["ee_euler"][2]))
    if phase in ("approach", "descend", "grasp"):
        grasp, grasp_yaw = grasp_pose(task, state)
        if phase == "approach":
            hover = grasp + np.array([0.0, 0.0, cfg.hover_height])
            return Waypoint(hover, grasp_yaw, OPEN, cfg.coarse_tol)
        if phase == "descend":
            return Waypoint(grasp, grasp_yaw, OPEN, cfg.fine_tol)
        return Waypoint(memory.get("grasp_pos", grasp), yaw, CLOSED, cfg.fine_tol)
    if phase == "lift":
        return Waypoint(np.array([ee[0], ee[1], cfg.carry_height]), yaw, CLOSED, cfg.coarse_tol)
    offset = memory.get("held_offset", scene.PROPS[task.object].grasp_z)
    place = place_position(task, state, offset, cfg.place_clearance)
    if phase == "carry":
        return Waypoint(
            np.array([place[0], place[1], cfg.carry_height]), yaw, CLOSED, cfg.fine_tol
        )
    if phase == "lower":
        return Waypoint(place, yaw, CLOSED, cfg.fine_tol)
    release = memory.get("release_pos", ee)
    if phase == "release":
        return Waypoint(release, yaw, OPEN, cfg.fine_tol)
    if phase in ("retreat", "done"):
        above = release + np.array([0.0, 0.0, cfg.retreat_height])
        return Waypoint(above, yaw, OPEN, cfg.coarse_tol)
    raise ValueError(f"unknown phase {phase!r}; choose from {PHASES}")


def waypoint_action(
    state: dict[str, Any],
    waypoint: Waypoint,
    max_translation: float = robot.MAX_TRANSLATION,
    max_rotation: float = robot.MAX_ROTATION,
) -> np.ndarray:
    """One bounded Bridge action that moves the tool towards a waypoint, pointing down.

    Deltas are taken from the commanded pose (``ee_command_pos``/``ee_command_euler``) when the
    state has it, since actions are applied to the commanded pose; otherwise from the measured.

    Args:
        state: privileged state (``ee_pos``, ``ee_euler``, optionally the commanded pose).
        waypoint: where to go.
        max_translation: per-axis translation bound (m).
        max_rotation: bound (rad) on the rotation's largest euler component.

    Returns:
        (7,) float64 action ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``.
    """
    pos = state.get("ee_command_pos", state["ee_pos"])
    euler = state.get("ee_command_euler", state["ee_euler"])
    delta = np.clip(waypoint.pos - np.asarray(pos, float), -max_translation, max_translation)
    current = rotations.euler_to_rotation(euler)
    goal = rotations.euler_to_rotation([0.0, 0.0, waypoint.yaw])
    rotvec = rotations.so3_log(goal @ current.T)
    rot = rotations.rotation_to_euler(rotations.so3_exp(rotvec))
    scale = np.max(np.abs(rot)) / max_rotation
    if scale > 1.0:
        rot = rotations.rotation_to_euler(rotations.so3_exp(rotvec / scale))
    return np.concatenate([delta, rot, [waypoint.gripper]])


def reached(state: dict[str, Any], waypoint: Waypoint, yaw_tol: float) -> bool:
    """Whether the tool is within the waypoint's position tolerance and ``yaw_tol`` of its yaw."""
    err = np.linalg.norm(waypoint.pos - np.asarray(state["ee_pos"], float))
    yaw_err = abs(_wrap(float(state["ee_euler"][2]) - waypoint.yaw, 2 * np.pi))
    return bool(err <= waypoint.tol and yaw_err <= yaw_tol)


class ScriptedPolicy:
    """Phase machine over :func:`plan_waypoint`: reach, grasp, lift, carry, release.

    Args:
        task: the task (or its name).
        config: plan settings.
    """

    def __init__(self, task: tasks.TaskSpec | str, config: ScriptConfig | None = None):
        self.task = tasks.get_task(task) if isinstance(task, str) else task
        self.config = config or ScriptConfig()
        self.reset()

    def reset(self) -> None:
        """Forgets the current episode."""
        self.phase = PHASES[0]
        self.memory: dict[str, Any] = {}
        self._counter = 0

    def _advance(self, phase: str) -> None:
        self.phase = phase
        self._counter = 0

    def act(self, state: dict[str, Any]) -> np.ndarray:
        """Next action for the privileged state of the current step.

        Args:
            state: :meth:`WidowXSimEnv.privileged_state` output.

        Returns:
            (7,) float64 Bridge action.
        """
        cfg, mem = self.config, self.memory
        for _ in range(len(PHASES)):
            wp = plan_waypoint(self.task, state, self.phase, mem, cfg)
            if self.phase == "grasp":
                mem.setdefault("grasp_pos", np.asarray(state["ee_pos"], float).copy())
                if self._counter >= cfg.grasp_steps:
                    self._advance("lift")
                    continue
                self._counter += 1
            elif self.phase == "release":
                mem.setdefault("release_pos", np.asarray(state["ee_pos"], float).copy())
                if self._counter >= cfg.release_steps:
                    self._advance("retreat")
                    continue
                self._counter += 1
            elif self.phase == "lift" and reached(state, wp, np.inf):
                if not state["object_grasped"]:  # missed or dropped: try again
                    mem.clear()
                    self._advance("approach")
                    continue
                bottom = (
                    state["objects"][self.task.object]["pos"][2]
                    - scene.PROPS[self.task.object].rest_z
                )
                mem["held_offset"] = float(state["ee_pos"][2] - bottom)
                self._advance("carry")
                continue
            elif self.phase not in ("done", "grasp", "release") and reached(
                state, wp, cfg.yaw_tol if self.phase in ("approach", "descend") else np.inf
            ):
                if self.phase == "descend":
                    mem["grasp_yaw"] = wp.yaw
                self._advance(PHASES[PHASES.index(self.phase) + 1])
                continue
            return waypoint_action(state, wp)
        return waypoint_action(state, wp)
