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

import logging
from typing import Any

import numpy as np

from vgps_policy_bridge.policy import ACTION_DIM, Policy, check_k
from vgps_policy_bridge.sim_plan import (
    CARRY_PHASES,
    CLOSED,
    GRASP_PHASES,
    OPEN,
    Phase,
    SimPolicyConfig,
    infer_phase,
    match_instruction,
    roll_forward,
)
from vgps_widowx.sim import scripted
from vgps_widowx.sim.control import ACTION_HIGH, ACTION_LOW

__all__ = ["Phase", "SimPolicy", "SimPolicyConfig", "infer_phase", "match_instruction"]

logger = logging.getLogger(__name__)


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
            current = roll_forward(task_name, current, action)
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
