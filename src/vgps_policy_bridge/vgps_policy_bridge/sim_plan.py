"""The simulation policy's plan: its settings and the task phase inferred from privileged state.

:class:`SimPolicyConfig` holds the noise levels and tolerances of
:class:`~vgps_policy_bridge.sim_policy.SimPolicy`; :func:`infer_phase` reads, from one privileged
simulator state alone, where the pick-and-place plan stands (approach, descend, grasp, lift, carry,
lower, release, retreat) and where the nominal plan sends the tool; :func:`roll_forward` predicts
the state after a nominal action (for chunks with H > 1); :func:`match_instruction` tells which
task an instruction describes. Pure numpy over the sim's task and scene descriptions.

Usage::

    phase = infer_phase("carrot_on_plate", env.privileged_state(), SimPolicyConfig())
    phase.name, phase.waypoint.pos                        # "approach", (3,) target (m)
    task, score = match_instruction("put the carrot on the plate")
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, NamedTuple

import numpy as np

from vgps_widowx.robot import kinematics
from vgps_widowx.sim import scene, scripted
from vgps_widowx.sim.scripted import ScriptConfig, Waypoint
from vgps_widowx.sim.tasks import TASKS, get_task, quat_yaw

OPEN, CLOSED = 1.0, 0.0
GRASP_PHASES = ("descend", "grasp")  # candidates aim at their own noisy grasp point
CARRY_PHASES = ("lift", "carry", "lower")  # premature release can happen in these
NOISE_FIELDS = ("action_noise", "rotation_noise", "grasp_offset_std", "grasp_height_std",
                "place_offset_std", "premature_release_prob", "hold_prob", "chatter_prob")
MAX_YAW = 1.5  # rad: grasp yaws beyond this are out of the wrist's comfortable range
_STOPWORDS = frozenset(
    ("a", "an", "the", "it", "its", "and", "onto", "into", "on", "in", "to", "of", "top", "up")
)


@dataclasses.dataclass(frozen=True)
class SimPolicyConfig:
    """Noise levels and plan tolerances of the simulation policy (metres, radians, per step)."""

    horizon: int = 1  # H: actions per chunk; later ones roll the plan forward nominally
    action_noise: float = 0.006  # std (m) of Gaussian noise on dx, dy, dz
    rotation_noise: float = 0.05  # std (rad) of Gaussian noise on droll, dpitch, dyaw
    grasp_offset_std: float = 0.025  # std (m) of a candidate's error in the grasp point (x, y)
    grasp_height_std: float = 0.005  # std (m) of a candidate's error in the grasp height
    place_offset_std: float = 0.006  # std (m) of the per-candidate horizontal place offset
    premature_release_prob: float = 0.08  # P(open) per candidate per step while carrying
    hold_prob: float = 0.7  # P(keep closed and lift back up) per candidate at the place pose
    chatter_prob: float = 0.03  # P(flip the gripper command) per candidate per step
    grasp_xy_tol: float = 0.012  # tool within this of the grasp point (xy) starts closing
    grasp_z_tol: float = 0.006  # ... and at most this far above it
    descend_tol: float = 0.02  # horizontal error (m) below which the tool descends
    yaw_tol: float = 0.1  # yaw error (rad) allowed before descending and grasping
    place_tol: float = 0.012  # horizontal error (m) over the place point that allows release
    release_height_tol: float = 0.01  # height error (m) over the place point that allows release
    stall_distance: float = 0.002  # tool height changed less than this (m) in a step: stalled
    stall_slack: float = 0.015  # a stalled tool may close this much (m) above grasp_z_tol
    stall_gripper: float = 0.03  # closing gripper moved less than this in a step: stuck
    open_threshold: float = 0.9  # measured gripper opening above which it counts as open
    empty_closed: float = 0.08  # measured opening below which a closing gripper holds nothing
    instruction_match: float = 0.5  # word-overlap score under which an instruction is unknown
    # Per-task multiplier on every noise level above: tasks differ in how forgiving their
    # objects are, and the defaults put each task's base success (K = 1) between 20 and 70 %.
    task_noise_scale: tuple[tuple[str, float], ...] = (
        ("carrot_on_plate", 1.1),
        ("eggplant_in_basket", 1.1),
        ("spoon_on_towel", 0.85),
    )
    script: ScriptConfig = dataclasses.field(default_factory=ScriptConfig)  # heights

    def __post_init__(self) -> None:
        name = type(self).__name__
        if type(self.horizon) is not int or not 1 <= self.horizon <= 64:
            raise ValueError(f"{name}.horizon={self.horizon!r}: need an int in 1..64")
        if not isinstance(self.script, ScriptConfig):
            raise ValueError(f"{name}.script={self.script!r}: must be a ScriptConfig")
        object.__setattr__(self, "task_noise_scale", tuple(
            (str(t), float(v)) for t, v in dict(self.task_noise_scale).items()))
        for task, scale in self.task_noise_scale:
            if task not in TASKS or not np.isfinite(scale) or scale < 0:
                raise ValueError(f"{name}.task_noise_scale[{task!r}]={scale!r}: need a known "
                                 f"task ({sorted(TASKS)}) and a finite scale >= 0")
        for field in dataclasses.fields(self):
            if field.name in ("horizon", "script", "task_noise_scale"):
                continue
            value = getattr(self, field.name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name}.{field.name}={value!r}: must be a finite number >= 0")
            if field.name.endswith(("_prob", "threshold", "closed", "match")) and value > 1:
                raise ValueError(f"{name}.{field.name}={value!r}: must be in [0, 1]")

    @classmethod
    def noise_free(cls, **overrides: Any) -> SimPolicyConfig:
        """The plan without any failure mode or noise (solves every task)."""
        return cls(**{**dict.fromkeys(NOISE_FIELDS, 0.0), **overrides})

    def for_task(self, task: str) -> SimPolicyConfig:
        """This config with every noise level scaled by ``task_noise_scale[task]`` (default 1)."""
        scale = dict(self.task_noise_scale).get(task, 1.0)
        if scale == 1.0:
            return self
        scaled = {f: getattr(self, f) * scale for f in NOISE_FIELDS}
        scaled.update({f: min(scaled[f], 1.0) for f in NOISE_FIELDS if f.endswith("_prob")})
        return dataclasses.replace(self, task_noise_scale=(), **scaled)


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def _words(text: str) -> frozenset[str]:
    return frozenset(w for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOPWORDS)


def match_instruction(instruction: str) -> tuple[str | None, float]:
    """The task whose instruction or paraphrase shares most words with ``instruction``.

    Args:
        instruction: free text.

    Returns:
        ``(task name or None, score)``: the best Jaccard overlap of content words over every
        task's instructions, in [0, 1] (None when nothing overlaps).
    """
    words = _words(instruction)
    best, score = None, 0.0
    for task in TASKS.values():
        for known in task.instructions:
            ref = _words(known)
            overlap = len(words & ref) / max(len(words | ref), 1)
            if overlap > score:
                best, score = task.name, overlap
    return best, score


def placed(task_name: str, state: dict[str, Any]) -> bool:
    """Whether the released object rests over the target's support region (a planner's guess)."""
    task = get_task(task_name)
    obj = np.asarray(state["objects"][task.object]["pos"], float)
    tgt = state["objects"][task.target]
    spec = scene.PROPS[task.target]
    yaw = -quat_yaw(tgt["quat"])
    rel = obj[:2] - np.asarray(tgt["pos"], float)[:2]
    local = np.array([np.cos(yaw) * rel[0] - np.sin(yaw) * rel[1],
                      np.sin(yaw) * rel[0] + np.cos(yaw) * rel[1]])
    hx, hy = spec.inner_half
    over = np.hypot(*local) <= hx if spec.round else abs(local[0]) <= hx and abs(local[1]) <= hy
    surface = float(tgt["pos"][2]) - spec.rest_z + spec.top_z
    bottom = float(obj[2]) - scene.PROPS[task.object].rest_z
    return bool(over and bottom >= surface - 0.004 and not state["object_grasped"])


class Phase(NamedTuple):
    """One step of the plan: the phase, its waypoint and what a candidate needs to grasp.

    Attributes:
        name: ``approach, descend, grasp, lift, carry, lower, release`` or ``retreat``.
        waypoint: where the nominal plan sends the tool.
        grasp: (3,) grasp point (m) in the reaching phases, else None.
        height: tool height (m) above the grasp point (the command's when the arm stalled).
        can_close: whether closing is allowed now (yaw aligned, not already closed on nothing).
    """

    name: str
    waypoint: Waypoint
    grasp: np.ndarray | None = None
    height: float = np.inf
    can_close: bool = False


def infer_phase(task_name: str, state: dict[str, Any], config: SimPolicyConfig) -> Phase:
    """The plan's phase and waypoint for one privileged state, from the state alone.

    Args:
        task_name: the task being solved.
        state: :meth:`WidowXSimEnv.privileged_state` output (or a rolled-forward copy).
        config: tolerances and heights.

    Returns:
        The :class:`Phase`.
    """
    task, cfg, script = get_task(task_name), config, config.script
    ee = np.asarray(state["ee_pos"], float)
    yaw_now = float(state.get("ee_command_euler", state["ee_euler"])[2])
    obj = np.asarray(state["objects"][task.object]["pos"], float)
    if not state["object_grasped"]:
        if placed(task_name, state):
            up = np.array([*ee[:2], script.carry_height])
            return Phase("retreat", Waypoint(up, yaw_now, OPEN, script.coarse_tol))
        grasp, grasp_yaw = scripted.grasp_pose(task, state)
        # Of the object's symmetric grasp yaws, take the one nearest the tool's (within reach).
        sym = task.grasp_symmetry
        turn = np.round((yaw_now - grasp_yaw) / sym) * sym
        if abs(grasp_yaw + turn) <= MAX_YAW:
            grasp_yaw = float(grasp_yaw + turn)
        xy_err = float(np.linalg.norm(ee[:2] - grasp[:2]))
        yaw_ok = abs(_wrap(yaw_now - grasp_yaw)) <= cfg.yaw_tol
        height = float(ee[2]) - grasp[2]
        if state.get("stalled"):  # blocked by contact short of the grasp point: close there
            height = min(height - cfg.stall_slack, float(state["ee_command_pos"][2]) - grasp[2])
        closing = float(state["gripper"]) < cfg.open_threshold
        empty = float(state["gripper"]) <= cfg.empty_closed or state.get("gripper_stuck")
        can_close = bool(yaw_ok and not (closing and empty))
        if can_close and xy_err <= cfg.grasp_xy_tol and height <= cfg.grasp_z_tol:
            wp = Waypoint(grasp, grasp_yaw, CLOSED, script.fine_tol)
            return Phase("grasp", wp, grasp, height, can_close)
        hovering = ee[2] - grasp[2] < script.hover_height - 0.02  # already below hover height
        if not closing and xy_err <= cfg.descend_tol * (2.0 if hovering else 1.0):
            if yaw_ok:
                wp = Waypoint(grasp, grasp_yaw, OPEN, script.fine_tol)
                return Phase("descend", wp, grasp, height, can_close)
            align = np.array([*grasp[:2], max(float(ee[2]), grasp[2] + cfg.grasp_z_tol)])
            wp = Waypoint(align, grasp_yaw, OPEN, script.fine_tol)  # turn before going down
            return Phase("descend", wp, grasp, height, False)
        hover = grasp + np.array([0.0, 0.0, script.hover_height])
        return Phase("approach", Waypoint(hover, grasp_yaw, OPEN, script.coarse_tol))
    bottom = obj[2] - scene.PROPS[task.object].rest_z
    place = scripted.place_position(task, state, float(ee[2] - bottom), script.place_clearance)
    goal = place[:2] + ee[:2] - obj[:2]  # put the object's centre, not the tool, over the target
    dist = float(np.linalg.norm(ee[:2] - goal))
    high = ee[2] >= script.carry_height - 0.03
    if not high and dist > 2.5 * cfg.place_tol:
        lift = np.array([*ee[:2], script.carry_height])
        return Phase("lift", Waypoint(lift, yaw_now, CLOSED, script.coarse_tol))
    if high and dist > cfg.place_tol:
        carry = np.array([*goal, script.carry_height])
        return Phase("carry", Waypoint(carry, yaw_now, CLOSED, script.fine_tol))
    if ee[2] > place[2] + cfg.release_height_tol or dist > cfg.place_tol:
        lower = np.array([*goal, place[2]])
        return Phase("lower", Waypoint(lower, yaw_now, CLOSED, script.fine_tol))
    return Phase("release", Waypoint(ee.copy(), yaw_now, OPEN, script.fine_tol))


def roll_forward(task_name: str, state: dict[str, Any], action: np.ndarray) -> dict[str, Any]:
    """The privileged state predicted after a nominal action (reached exactly, grasp succeeds)."""
    task = get_task(task_name)
    nxt = {**state, "stalled": False, "gripper_stuck": False}
    delta = np.asarray(action[:3], float)
    for key in ("ee_pos", "ee_command_pos"):
        if key in state:
            nxt[key] = np.asarray(state[key], float) + delta
    for key in ("ee_euler", "ee_command_euler"):
        if key in state:
            rot = kinematics.euler_to_rotation(action[3:6]) @ kinematics.euler_to_rotation(
                state[key])
            nxt[key] = kinematics.rotation_to_euler(rot)
    closed = action[6] < 0.5
    near_grasp = not state["object_grasped"] and closed and state["gripper"] > 0.5
    grasped = bool(closed and (state["object_grasped"] or near_grasp))
    nxt["object_grasped"] = grasped
    nxt["gripper"] = 0.35 if grasped else float(action[6])
    if grasped:
        objects = {k: dict(v) for k, v in state["objects"].items()}
        objects[task.object]["pos"] = np.asarray(objects[task.object]["pos"], float) + delta
        nxt["objects"] = objects
    return nxt
