"""Scripted corrector: takes over from the steered policy when the sim arm heads into a failure.

Deterministic rules over the simulator's privileged state (:meth:`WidowXSimEnv.privileged_state`),
one call per executed step. They watch for the simulation policy's known failure modes
(``vgps_policy_bridge.sim_policy``) and hand the arm to the scripted solver
(:class:`~vgps_widowx.sim.scripted.ScriptedPolicy`) until the failure is averted:

* ``hold`` - holding too long at the place pose (the shipped critic's weak decision): the object
  is held over the target at the place height for more than ``hold_steps`` steps, or it is
  lifted back up (``rise_tol``) after reaching it. Correction: lower, release, retreat; averted
  once the scripted plan has released the object (its phase is ``retreat``).
* ``release`` - premature release while carrying: the object was held clear of the table away
  from the target and the gripper starts opening (by more than ``open_rate`` in a step) or lets
  it go. Correction: close and lift again, or grasp afresh after a drop; averted when the object
  is held at the carry height (the plan reaches ``carry``).
* ``beside`` - a grasp beside the object: the gripper closes on nothing with the tool low
  (``low_height`` above the grasp point) but more than ``beside_tol`` (xy) from the grasp point.
  Correction: open, rise, approach and grasp properly; averted as for ``release``.
* ``early`` - a gripper closed high on the way to the object: closed on nothing for more than
  ``early_steps`` steps in a row with the tool more than ``low_height`` above the grasp point and
  the object resting away from the target (also after a missed grasp, rising empty). A shorter
  flicker is let be. Correction and aversion as for ``beside``.
  (Fine-tuned critics closed early on stack_blocks: benchmarks/results/flywheel_sim_round3.md.)
* ``hover`` - hovering open at the grasp pose: the gripper open, the tool within ``low_height``
  above and ``hover_tol`` (xy) of the grasp point, the object resting away from the target, for
  more than ``hover_steps`` steps in a row. Steered episodes often pause there a few steps before
  closing; a fine-tuned critic waited to the end (benchmarks/results/flywheel_sim_round4.md).
  Correction: descend onto the grasp point, close, lift; averted as for ``release``.

A correction that has not succeeded after ``max_steps`` steps, or whose tool has not moved for
``stuck_steps`` steps (the object pushed out of reach, say), gives up (releases the take-over) and
is reported as such. Nothing here reads images, so tests drive it with real MuJoCo states.

Usage::

    corrector = Corrector(CorrectorConfig())
    corrector.reset()                                  # a new episode
    out = corrector.step(env.privileged_state())       # one call per executed step
    if out.take_over:
        env.step(out.action)                           # (7,) float32, the scripted solver's
    out.event                                          # "take_over:hold" | "release:averted" | ""
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from vgps_widowx.sim import scene, scripted, tasks

FAILURES = ("hold", "release", "beside", "early", "hover")
# The plan phase at which each correction has averted its failure.
AVERTED_AT = {"hold": "retreat", "release": "carry", "beside": "carry", "early": "carry",
              "hover": "carry"}


@dataclasses.dataclass(frozen=True)
class CorrectorConfig:
    """Thresholds of the corrector's rules (metres, steps)."""

    hold_steps: int = 4  # steps held at the place pose without releasing before taking over
    rise_tol: float = 0.01  # held object lifted this far above its lowest point at the place pose
    place_height: float = 0.02  # tool within this above the place height: at the place pose
    lifted: float = 0.02  # object bottom this far above the table: carried, not resting
    open_rate: float = 0.1  # measured gripper opening rising this much in a step: a release
    open_threshold: float = 0.9  # measured opening below this: the gripper is (partly) closed
    beside_tol: float = 0.015  # tool this far (xy) from the grasp point: a grasp beside it
    low_height: float = 0.02  # tool at most this far above the grasp point: low enough to grasp
    early_steps: int = 2  # steps closed high on the way to the object before taking over
    hover_tol: float = 0.03  # tool this close (xy) to the grasp point: hovering over it
    hover_steps: int = 8  # steps hovering open at the grasp pose before taking over
    max_steps: int = 30  # a correction gives up after this many steps
    stuck_steps: int = 4  # ... or after this many steps without the tool moving (out of reach)
    stuck_distance: float = 0.002  # tool moved less than this (m) in a step ...
    stuck_turn: float = 0.02  # ... and turned less than this (rad): no progress
    script: scripted.ScriptConfig = dataclasses.field(default_factory=scripted.ScriptConfig)

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "script":
                if not isinstance(value, scripted.ScriptConfig):
                    raise ValueError(f"{name}.script={value!r}: must be a ScriptConfig")
            elif field.name in ("hold_steps", "early_steps", "hover_steps", "max_steps",
                                "stuck_steps"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{name}.{field.name}={value!r}: must be an integer >= 1")
            elif (isinstance(value, bool) or not isinstance(value, (int, float))
                  or not np.isfinite(value) or value <= 0):
                raise ValueError(f"{name}.{field.name}={value!r}: must be a finite number > 0")


@dataclasses.dataclass(frozen=True)
class Correction:
    """The corrector's output for one step.

    Attributes:
        take_over: whether the corrector steers this step.
        action: float32 (7,) Bridge action while taking over, else None.
        failure: the failure being corrected (one of ``FAILURES``), else "".
        event: what changed this step: ``"take_over:<failure>"``, ``"release:averted"``,
            ``"release:gave_up"`` or "".
        detail: human-readable reason.
    """

    take_over: bool
    action: np.ndarray | None = None
    failure: str = ""
    event: str = ""
    detail: str = ""


class Corrector:
    """Failure watch and scripted take-over for one task at a time (module docstring).

    Args:
        config: the thresholds.
    """

    def __init__(self, config: CorrectorConfig | None = None):
        self.config = config or CorrectorConfig()
        self.reset()

    def reset(self) -> None:
        """Forgets the episode: no correction, no history."""
        self.failure = ""
        self._solver: scripted.ScriptedPolicy | None = None
        self._steps = self._stuck = 0
        self._previous: dict[str, Any] | None = None
        self._at_place = 0
        self._lowest: float | None = None
        self._closed_high = self._hovering = 0

    @property
    def correcting(self) -> bool:
        return self._solver is not None

    def step(self, state: dict[str, Any]) -> Correction:
        """Watches one executed step's state and, while correcting, acts.

        Args:
            state: privileged state (``task``, ``ee_pos``, ``ee_euler``, ``gripper``,
                ``objects``, ``object_grasped``, optionally the commanded pose).

        Returns:
            The :class:`Correction` for this step.
        """
        task = tasks.get_task(str(state["task"]))
        previous, self._previous = self._previous, state
        solver, event = self._solver, ""
        if solver is None:
            failure, why = self._detect(task, state, previous)
            if not failure:
                return Correction(False)
            solver = self._start(task, state, failure)
            event, detail = f"take_over:{failure}", f"{failure}: {why}"
        else:
            detail = f"{self.failure}: correcting ({solver.phase})"
            self._stuck = 0 if _progress(state, previous, self.config) else self._stuck + 1
        phase = solver.phase
        action = solver.act(state)
        if solver.phase != phase:
            self._stuck = 0
        if _reached(solver.phase, AVERTED_AT[self.failure]):
            done = self.failure
            self._finish()
            return Correction(False, None, done, "release:averted",
                              f"{done}: averted (scripted plan at {solver.phase})")
        self._steps += 1
        cfg = self.config
        if self._steps > cfg.max_steps or self._stuck >= cfg.stuck_steps:
            done, why = self.failure, (f"not averted after {cfg.max_steps} steps"
                                       if self._steps > cfg.max_steps else
                                       f"no progress for {self._stuck} steps (out of reach?)")
            self._finish()
            return Correction(False, None, done, "release:gave_up", f"{done}: {why}")
        return Correction(True, action.astype(np.float32), self.failure, event, detail)

    # -- rules ------------------------------------------------------------------------------------
    def _detect(self, task: tasks.TaskSpec, state: dict[str, Any],
                previous: dict[str, Any] | None) -> tuple[str, str]:
        """``(failure, why)`` when the state heads into one, else ``("", "")``."""
        cfg = self.config
        ee = np.asarray(state["ee_pos"], float)
        obj = np.asarray(state["objects"][task.object]["pos"], float)
        gripper = float(state["gripper"])
        held = bool(state["object_grasped"])
        bottom = obj[2] - scene.PROPS[task.object].rest_z
        if held and over_target(task, state):
            place = scripted.place_position(task, state, float(ee[2] - bottom),
                                            cfg.script.place_clearance)
            if ee[2] <= place[2] + cfg.place_height:
                self._at_place += 1
                self._lowest = float(ee[2]) if self._lowest is None else min(self._lowest, ee[2])
                if self._at_place > cfg.hold_steps:
                    return "hold", (f"held at the place pose for {self._at_place} steps "
                                    f"without releasing")
            elif self._lowest is not None and ee[2] > self._lowest + cfg.rise_tol:
                return "hold", (f"lifting the object back up from the place pose "
                                f"({ee[2] - self._lowest:.3f} m)")
        else:
            self._at_place, self._lowest = 0, None
        if previous is not None and previous["object_grasped"]:
            prev_obj = np.asarray(previous["objects"][task.object]["pos"], float)
            carried = prev_obj[2] - scene.PROPS[task.object].rest_z > cfg.lifted
            away = not over_target(task, previous)
            opening = gripper - float(previous["gripper"])
            if carried and away and (opening > cfg.open_rate or not held):
                what = "let the object go" if not held else f"opening by {opening:.2f}"
                return "release", f"gripper {what} while carrying, away from the target"
        grasp, _ = scripted.grasp_pose(task, state)
        off, above = float(np.linalg.norm(ee[:2] - grasp[:2])), float(ee[2] - grasp[2])
        resting = not held and bottom <= cfg.lifted and not over_target(task, state)
        high = False
        if not held and gripper < cfg.open_threshold:
            closing = previous is None or gripper < float(previous["gripper"]) - 1e-3
            if closing and above <= cfg.low_height and off > cfg.beside_tol:
                return "beside", (f"closing {off:.3f} m beside the grasp point "
                                  f"(> {cfg.beside_tol:g})")
            high = resting and above > cfg.low_height
        self._closed_high = self._closed_high + 1 if high else 0
        if self._closed_high > cfg.early_steps:
            return "early", (f"gripper closed for {self._closed_high} steps "
                             f"{above:.3f} m above the grasp point, the object "
                             f"resting away from the target")
        hovering = (resting and gripper >= cfg.open_threshold and above <= cfg.low_height
                    and off <= cfg.hover_tol)
        self._hovering = self._hovering + 1 if hovering else 0
        if self._hovering > cfg.hover_steps:
            return "hover", (f"open at the grasp pose for {self._hovering} steps "
                             f"({off:.3f} m from the grasp point, {above:+.3f} m above it)")
        return "", ""

    def _start(self, task: tasks.TaskSpec, state: dict[str, Any],
               failure: str) -> scripted.ScriptedPolicy:
        solver = scripted.ScriptedPolicy(task, self.config.script)
        if failure == "hold":
            bottom = (float(state["objects"][task.object]["pos"][2])
                      - scene.PROPS[task.object].rest_z)
            solver.memory["held_offset"] = float(state["ee_pos"][2]) - bottom
            solver.memory["grasp_yaw"] = float(state["ee_euler"][2])
            solver.phase = "lower"
        elif failure == "release" and state["object_grasped"]:
            solver.memory["grasp_yaw"] = float(state["ee_euler"][2])
            solver.phase = "lift"  # close again and carry on
        elif failure == "hover":
            solver.phase = "descend"  # already over the object: onto the grasp point, close
        self._solver, self.failure, self._steps, self._stuck = solver, failure, 0, 0
        return solver

    def _finish(self) -> None:
        self._solver, self.failure, self._steps, self._stuck = None, "", 0, 0
        self._at_place, self._lowest, self._closed_high, self._hovering = 0, None, 0, 0


def over_target(task: tasks.TaskSpec, state: dict[str, Any]) -> bool:
    """Whether the object's centre is over the target's support region (xy, target frame)."""
    obj = np.asarray(state["objects"][task.object]["pos"], float)
    tgt = state["objects"][task.target]
    spec = scene.PROPS[task.target]
    yaw = -tasks.quat_yaw(tgt["quat"])
    rel = obj[:2] - np.asarray(tgt["pos"], float)[:2]
    local = np.array([np.cos(yaw) * rel[0] - np.sin(yaw) * rel[1],
                      np.sin(yaw) * rel[0] + np.cos(yaw) * rel[1]])
    hx, hy = spec.inner_half
    if spec.round:
        return bool(np.hypot(*local) <= hx)
    return bool(abs(local[0]) <= hx and abs(local[1]) <= hy)


def _progress(state: dict[str, Any], previous: dict[str, Any] | None,
              config: CorrectorConfig) -> bool:
    """Whether the tool moved, turned or worked its gripper since ``previous``."""
    if previous is None:
        return True
    moved = np.linalg.norm(np.subtract(state["ee_pos"], previous["ee_pos"]))
    turn = abs(float(state["ee_euler"][2]) - float(previous["ee_euler"][2]))
    turn = min(turn, 2 * np.pi - turn)
    grip = abs(float(state["gripper"]) - float(previous["gripper"]))
    return bool(moved >= config.stuck_distance or turn >= config.stuck_turn or grip >= 0.05)


def _reached(phase: str, goal: str) -> bool:
    """Whether the scripted plan's ``phase`` is at or past ``goal``."""
    return scripted.PHASES.index(phase) >= scripted.PHASES.index(goal)
