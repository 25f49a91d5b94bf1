"""A stochastic stand-in for a generalist policy in the MuJoCo sim, with Octo's failure modes.

``SimPolicy`` plans from privileged simulator state (the evaluation harness and the ROS sim
backend put :meth:`WidowXSimEnv.privileged_state` into ``observation["privileged"]``) and follows
the task's pick-and-place plan: approach, descend, grasp, lift, carry, lower, release, retreat.
The phase is inferred afresh from the state at every call (is the object grasped, lifted, over
the target?), never from the policy's own earlier samples, so the plan stays consistent whichever
candidate was executed; the only memory is the previous observed state, to notice a stalled arm
or gripper. Each of the K candidates is then drawn independently from the same per-step
distribution, with the failure modes the V-GPS paper reports for Octo:

- imprecise grasp points: each candidate sees the grasp point with its own offset
  (``grasp_offset_std``, ``grasp_height_std``), moves there and closes when the tool is at the
  point it sees, so an executed candidate may close beside the object;
- premature release: the gripper opens while carrying (``premature_release_prob``);
- holding too long: at the place pose the gripper stays closed and the arm lifts the object
  back up (``hold_prob``);
- gripper chatter: the gripper command flips (``chatter_prob``);
- Gaussian noise on the translation and rotation deltas (``action_noise``, ``rotation_noise``)
  and a per-candidate offset of the place point (``place_offset_std``).

``task_noise_scale`` scales all of these per task; the defaults give a base success (K = 1, the
policy alone) of 20-70 % on every task (see ``benchmarks/results/sim_base_success.md``). Chunks
with H > 1 roll the plan forward with the nominal actions and perturb each step the same way.

Instructions: the policy always follows the privileged task. When the instruction it is given
matches none of the known task instructions and paraphrases (word overlap below
``instruction_match``) or looks like another task, it logs one warning per distinct instruction
and carries on with the privileged task.

Usage::

    policy = SimPolicy()
    policy.reset()
    observation = {**obs, "privileged": env.privileged_state()}
    chunks = policy.sample(observation, env.instruction, k=10, rng=np.random.default_rng(0))
    env.step(chunks[0, 0])
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any, NamedTuple

import numpy as np

from vgps_policy_bridge.policy import ACTION_DIM, Policy, check_k
from vgps_widowx.robot import kinematics
from vgps_widowx.sim import scene, scripted
from vgps_widowx.sim.control import ACTION_HIGH, ACTION_LOW
from vgps_widowx.sim.scripted import ScriptConfig, Waypoint
from vgps_widowx.sim.tasks import TASKS, get_task, quat_yaw

logger = logging.getLogger(__name__)

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
    """Noise levels and plan tolerances of :class:`SimPolicy` (metres, radians, per step)."""

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


def _roll_forward(task_name: str, state: dict[str, Any], action: np.ndarray) -> dict[str, Any]:
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


class SimPolicy(Policy):
    """Noisy scripted generalist for the MuJoCo sim (see the module docstring).

    Args:
        config: noise levels, horizon and tolerances; defaults give 20-70 % base success.
    """

    name = "sim"

    def __init__(self, config: SimPolicyConfig | None = None):
        self.config = config or SimPolicyConfig()
        self._warned: set[str] = set()
        self.reset()

    def reset(self) -> None:
        """Forgets the previous observation (the only memory, used to detect a stalled arm)."""
        self._previous: tuple[int, np.ndarray, float, tuple[bool, bool]] | None = None

    def observe(self, state: dict[str, Any]) -> dict[str, Any]:
        """The state with two flags from the previous step's observation added.

        ``stalled``: the tool's height barely changed (blocked short of the grasp point);
        ``gripper_stuck``: the gripper is partly closed on nothing and stopped moving.

        Derived from two consecutive observed states, i.e. from the executed outcome; asking
        again for the same step gives the same answer.
        """
        step, ee = int(state.get("step", -1)), np.asarray(state["ee_pos"], float)
        gripper, prev, cfg = float(state["gripper"]), self._previous, self.config
        if prev is not None and step == prev[0]:
            flags = prev[3]
        elif prev is not None and step == prev[0] + 1:
            closing = gripper < cfg.open_threshold and not state["object_grasped"]
            flags = (bool(abs(ee[2] - prev[1][2]) < cfg.stall_distance),
                     bool(closing and abs(gripper - prev[2]) < cfg.stall_gripper))
        else:
            flags = (False, False)
        self._previous = (step, ee.copy(), gripper, flags)
        return {**state, "stalled": flags[0], "gripper_stuck": flags[1]}

    def check_instruction(self, instruction: str, task_name: str) -> None:
        """Logs a warning (once per instruction) when it does not describe the privileged task."""
        if instruction in self._warned:
            return
        best, score = match_instruction(instruction)
        if score < self.config.instruction_match:
            self._warned.add(instruction)
            logger.warning("instruction %r matches no known task instruction (best overlap "
                           "%.2f); following the privileged task %r", instruction, score,
                           task_name)
        elif best != task_name:
            self._warned.add(instruction)
            logger.warning("instruction %r reads like task %r but the privileged task is %r; "
                           "following %r", instruction, best, task_name, task_name)

    def plan(self, state: dict[str, Any]) -> list[tuple[Phase, dict[str, Any]]]:
        """The nominal (noise-free) plan for the next H steps.

        Args:
            state: privileged state of the current step.

        Returns:
            H pairs ``(phase, state)``; each state is the one the step starts from (the first
            is ``state`` itself, later ones are rolled forward with the nominal actions).
        """
        task_name = str(state["task"])
        steps, current = [], state
        for _ in range(self.config.horizon):
            phase = infer_phase(task_name, current, self.config)
            steps.append((phase, current))
            action = scripted.waypoint_action(current, phase.waypoint)
            current = _roll_forward(task_name, current, action)
        return steps

    def sample(
        self, observation: dict[str, Any], instruction: str, k: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Draws K independent candidate chunks.

        Args:
            observation: must hold ``"privileged"``: :meth:`WidowXSimEnv.privileged_state`
                of the current step (``"image"`` and ``"state"`` are not used).
            instruction: the instruction; see the module docstring for mismatches.
            k: number of candidates, >= 1.
            rng: numpy generator, the only source of randomness.

        Returns:
            float32 (K, H, 7) chunks inside ``ACTION_LOW``/``ACTION_HIGH``.

        Raises:
            ValueError: no privileged state in the observation, or a bad ``k``.
        """
        k = check_k(k)
        state = observation.get("privileged") if isinstance(observation, dict) else None
        if not isinstance(state, dict) or "task" not in state:
            raise ValueError(
                "SimPolicy needs observation['privileged'] = env.privileged_state() (the sim "
                "evaluation and the ROS sim backend provide it); it cannot act from images"
            )
        self.check_instruction(instruction, str(state["task"]))
        state = self.observe(state)
        cfg, horizon = self.config.for_task(str(state["task"])), self.config.horizon
        offset = rng.normal(size=(k, 3)) * np.array(
            [cfg.grasp_offset_std, cfg.grasp_offset_std, cfg.grasp_height_std]
        )
        place_offset = rng.normal(size=(k, 2)) * cfg.place_offset_std
        noise = rng.normal(size=(k, horizon, 6)) * ([cfg.action_noise] * 3
                                                     + [cfg.rotation_noise] * 3)
        u_drop, u_hold, u_chatter = rng.random((3, k, horizon))
        chunks = np.empty((k, horizon, ACTION_DIM))
        for h, (step, current) in enumerate(self.plan(state)):
            phase, waypoint = step.name, step.waypoint
            nominal = scripted.waypoint_action(current, waypoint)
            start = np.asarray(current.get("ee_command_pos", current["ee_pos"]), float)
            goal = np.broadcast_to(waypoint.pos, (k, 3)).copy()
            gripper = np.full(k, waypoint.gripper)
            if phase in GRASP_PHASES:
                # Each candidate sees the grasp point with its own error and closes when the
                # tool is at the point it sees: imprecise grasps when that one is executed.
                goal += offset
                ee_xy = np.asarray(current["ee_pos"], float)[:2]
                near = (np.linalg.norm(ee_xy - step.grasp[:2] - offset[:, :2], axis=1)
                        <= cfg.grasp_xy_tol) & (step.height - offset[:, 2] <= cfg.grasp_z_tol)
                gripper = np.where(near & step.can_close, CLOSED, OPEN)
            elif phase in CARRY_PHASES:
                gripper[u_drop[:, h] < cfg.premature_release_prob] = OPEN
                if phase == "lower":
                    goal[:, :2] += place_offset
            elif phase == "release":
                goal[:, :2] += place_offset
                hold = u_hold[:, h] < cfg.hold_prob
                goal[hold, 2] = cfg.script.carry_height
                gripper[hold] = CLOSED
            flip = u_chatter[:, h] < cfg.chatter_prob
            gripper[flip] = 1.0 - gripper[flip]
            chunks[:, h, :3] = np.clip(goal - start, ACTION_LOW[:3], ACTION_HIGH[:3])
            chunks[:, h, 3:6] = nominal[3:6]
            chunks[:, h, 6] = gripper
        chunks[..., :6] += noise
        return np.clip(chunks, ACTION_LOW, ACTION_HIGH).astype(np.float32)
