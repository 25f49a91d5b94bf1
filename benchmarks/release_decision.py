"""The critic's release decision at the place pose (or grasp decision at the grasp pose), step
by step, in simulation.

At the place pose the simulation policy proposes a mix of "open the gripper" and "keep holding
and lift back up" (``SimPolicyConfig.hold_prob``). This benchmark measures which of the two the
critic picks.

Definition. Steered episodes run in-process on the same code path as ``vgps eval`` (policy
``sim``, :func:`~vgps.evaluation.runner.load_steerer` with beta 0 = greedy argmax, episode ``i``
seeded with :func:`~vgps.evaluation.runner.episode_seed`, the policy's noise from
``default_rng([episode seed, 1])``, images of 64 px); only the bookkeeping is added. At every
step the state is classified with the policy's own phase inference
(:func:`~vgps_policy_bridge.sim_plan.infer_phase` on the privileged state, the policy's config):

- a *release step* is one whose phase is ``release``: the object is grasped and the tool is at
  the place pose, where the plan opens the gripper (the stall flags the policy adds to the
  state only matter before the grasp);
- each of the K candidates' first action is *open* (gripper command >= 0.5) or *hold* (< 0.5);
- a *mixed release step* has candidates of both kinds. For each one the record holds the number
  of open and hold candidates, the kind the critic chose and the mean Q of each kind.

Reported per critic: episode success (Wilson 95 % interval); steps, release steps and mixed
release steps; the fraction of mixed steps on which the critic chose hold (Wilson 95 %); the
fraction of mixed steps on which the open candidates' mean Q is the higher; the policy's own open
fraction (open candidates over all candidates of all release steps). Several critics run on the
same episode seeds, one row each (their episodes part ways at their first different choice).
Writes ``<out>.md`` (a table and the command) and ``<out>.json`` (also every mixed step).

With ``--decision grasp`` the same counts are taken at the other gripper decision: steps whose
phase is ``grasp`` (the object not yet held, the tool at the grasp pose, where the plan closes
the gripper). There a *hold* candidate (command < 0.5) closes on the object, the plan's choice,
and an *open* one keeps hovering: "chose hold" reads "chose to close".

    MUJOCO_GL=egl python benchmarks/release_decision.py --critic models/sim_critic
    MUJOCO_GL=egl python benchmarks/release_decision.py --critic A --critic B --episodes 10
    MUJOCO_GL=egl python benchmarks/release_decision.py --decision grasp --task stack_blocks \\
        --critic A --critic B
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

RESULTS = Path(__file__).parent / "results"
RELEASE_PHASES = ("release",)  # sim_plan.infer_phase: grasped, tool at the place pose
# The phases measured by each decision (sim_plan.infer_phase's names).
DECISIONS = {"release": RELEASE_PHASES, "grasp": ("grasp",)}
OPEN_AT = 0.5  # gripper command >= this opens (the sim's and roll_forward's threshold)
IMAGE_SIZE = 64  # px: what the simulation critics see


@dataclasses.dataclass(frozen=True)
class MixedStep:
    """One release step whose K candidates include both kinds."""

    episode: int
    step: int
    n_open: int
    n_hold: int
    chose: str  # "open" or "hold"
    q_open: float  # mean Q of the open candidates
    q_hold: float  # mean Q of the hold candidates


@dataclasses.dataclass
class CriticRun:
    """The counts of one critic over all episodes."""

    critic: str  # path as given
    critic_id: str
    episodes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    mixed: list[MixedStep] = dataclasses.field(default_factory=list)
    steps: int = 0
    release_steps: int = 0
    release_open_candidates: int = 0  # over all release steps
    release_candidates: int = 0
    release_opened: int = 0  # release steps whose executed action opens (mixed or not)

    def summary(self) -> dict[str, Any]:
        """JSON-ready totals and fractions (None where there is nothing to divide)."""
        from vgps.evaluation.results import task_results, wilson_interval

        successes = sum(e["success"] for e in self.episodes)
        n = len(self.mixed)
        hold = sum(m.chose == "hold" for m in self.mixed)
        open_higher = sum(m.q_open > m.q_hold for m in self.mixed)
        return {
            "critic": self.critic, "critic_id": self.critic_id,
            "success": task_results(successes, len(self.episodes)),
            "steps": self.steps, "release_steps": self.release_steps, "mixed_release_steps": n,
            "chose_hold": hold,
            "chose_hold_fraction": _ratio(hold, n),
            "chose_hold_ci95": [round(v, 4) for v in wilson_interval(hold, n)] if n else None,
            "open_q_higher_fraction": _ratio(open_higher, n),
            "mean_q_gap_open_minus_hold": (round(float(np.mean(
                [m.q_open - m.q_hold for m in self.mixed])), 4) if n else None),
            "policy_open_fraction": _ratio(self.release_open_candidates,
                                           self.release_candidates),
            "executed_open_fraction": _ratio(self.release_opened, self.release_steps),
        }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def run_critic(critic: str, task: str, k: int, episodes: int, seed: int,
               progress: bool = True, decision: str = "release") -> CriticRun:
    """Runs ``episodes`` steered episodes of ``task`` with the critic at ``critic``.

    The loop is :func:`vgps.evaluation.runner.run_episode` (beta 0) plus, at each step, the
    phase and candidate bookkeeping of the module docstring, at the phases of ``decision``
    (a key of :data:`DECISIONS`; the counts keep the release decision's names).
    """
    phases = DECISIONS[decision]
    from vgps.evaluation.runner import episode_seed, in_process_policy, load_steerer
    from vgps_policy_bridge.sim_plan import infer_phase
    from vgps_widowx.sim import SimEnvConfig, WidowXSimEnv

    steerer = load_steerer(critic, 0.0)
    policy = in_process_policy("sim")
    env = WidowXSimEnv(SimEnvConfig(image_size=(IMAGE_SIZE, IMAGE_SIZE)))
    run = CriticRun(critic=critic, critic_id=steerer.critic.critic_id)
    bar = tqdm(range(episodes), desc=f"{decision} {Path(critic).name}", unit="ep",
               disable=not progress, dynamic_ncols=True)
    try:
        for index in bar:
            ep_seed = episode_seed(seed, task, index)
            obs, info = env.reset(seed=ep_seed, options={"task": task})
            policy.reset()
            rng = np.random.default_rng([ep_seed, 1])
            text = env.instruction
            steps = release = 0
            for step in range(env.max_steps):
                state = env.privileged_state()
                phase = infer_phase(task, state, policy.config).name
                chunks = policy.sample({**obs, "privileged": state}, text, k, rng)
                chosen = steerer.choose(obs["image"], text, chunks, None)
                choice = chosen.index
                if phase in phases:
                    release += 1
                    _count_release(run, index, step, chunks, np.asarray(chosen.q_values),
                                   choice)
                obs, _, terminated, truncated, info = env.step(chunks[choice, 0])
                steps = step + 1
                if terminated or truncated:
                    break
            run.steps += steps
            run.episodes.append({"index": index, "seed": ep_seed, "success": bool(info["success"]),
                                 "steps": steps, "release_steps": release})
            bar.set_postfix(success=sum(e["success"] for e in run.episodes),
                            mixed=len(run.mixed))
    finally:
        env.close()
    return run


def _count_release(run: CriticRun, episode: int, step: int, chunks: np.ndarray, q: np.ndarray,
                   choice: int) -> None:
    """Adds one release step to ``run`` (and its :class:`MixedStep` when it is mixed)."""
    opens = chunks[:, 0, 6] >= OPEN_AT
    run.release_steps += 1
    run.release_candidates += len(opens)
    run.release_open_candidates += int(opens.sum())
    run.release_opened += bool(opens[choice])
    if opens.all() or not opens.any():
        return
    run.mixed.append(MixedStep(
        episode=episode, step=step, n_open=int(opens.sum()), n_hold=int((~opens).sum()),
        chose="open" if opens[choice] else "hold",
        q_open=float(q[opens].mean()), q_hold=float(q[~opens].mean())))


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def markdown(rows: list[dict[str, Any]], settings: dict[str, Any], command: str) -> str:
    """The results table with the command and the settings."""
    if settings.get("decision", "release") == "grasp":
        title, where = "Grasp decision at the grasp pose", (
            "A release step here is one whose phase, by the policy's own inference from the "
            "privileged state, is `grasp` (object not held, tool at the grasp pose, where the "
            "plan closes); a hold candidate closes there (the plan's choice), an open one "
            "hovers: chose hold = chose to close")
    else:
        title, where = "Release decision at the place pose", (
            "A release step is one whose phase, by the policy's own inference from the "
            "privileged state, is `release` (object grasped, tool at the place pose)")
    lines = [
        f"# {title} (simulation)", "", "```", command, "```", "",
        f"Task {settings['task']}, K = {settings['K']}, {settings['episodes']} episodes, seed "
        f"{settings['seed']} (the episode seeds of `vgps eval`), {settings['image_size']} px, "
        f"beta 0, policy `sim`. {where}; a "
        "candidate opens when its first action's gripper command is >= 0.5; a mixed release "
        "step has both open and hold candidates. Intervals are Wilson 95 %.", "",
        "| critic | success | steps | release steps | mixed | chose hold | 95% CI "
        "| open mean Q higher | Q gap (open − hold) | policy open fraction "
        "| executed open at release |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r["success"]
        ci = r["chose_hold_ci95"]
        gap = r["mean_q_gap_open_minus_hold"]
        lines.append(
            f"| {r['critic']} (`{r['critic_id']}`) | {s['successes']}/{s['episodes']} "
            f"({s['success_rate']:.2f}, {s['ci95'][0]:.2f}–{s['ci95'][1]:.2f}) | {r['steps']} "
            f"| {r['release_steps']} | {r['mixed_release_steps']} "
            f"| {r['chose_hold']} ({_pct(r['chose_hold_fraction'])}) "
            f"| {'–' if ci is None else f'{100 * ci[0]:.0f}–{100 * ci[1]:.0f} %'} "
            f"| {_pct(r['open_q_higher_fraction'])} | {'–' if gap is None else f'{gap:+.3f}'} "
            f"| {_pct(r['policy_open_fraction'])} | {_pct(r['executed_open_fraction'])} |")
    lines += ["", "- chose hold: mixed release steps on which the critic's argmax was a hold "
              "candidate; open mean Q higher: mixed steps on which the open candidates' mean Q "
              "exceeds the hold candidates'; Q gap: its mean over mixed steps.",
              "- policy open fraction: open candidates among all candidates of all release "
              "steps; executed open at release: release steps (mixed or not) whose executed "
              "action opens."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--critic", action="append", required=True,
                        help="critic checkpoint directory; repeat to compare critics")
    parser.add_argument("--decision", choices=sorted(DECISIONS), default="release",
                        help="release: at the place pose (default); grasp: at the grasp pose")
    parser.add_argument("--task", default="carrot_on_plate")
    parser.add_argument("--k", type=int, default=50, help="candidates per step")
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=3000, help="master seed, as `vgps eval`")
    parser.add_argument("--out", type=Path, default=RESULTS / "release_decision",
                        help="output path without suffix: writes <out>.md and <out>.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    from vgps_widowx.sim import TASKS

    if args.task not in TASKS:
        parser.error(f"--task {args.task!r}: choose from {sorted(TASKS)}")
    if args.k < 1 or args.episodes < 1:
        parser.error("--k and --episodes must be >= 1")
    for critic in args.critic:
        if not Path(critic).is_dir():
            parser.error(f"--critic {critic!r}: no such checkpoint directory")
    shown = sys.argv[1:] if argv is None else argv
    command = "MUJOCO_GL=egl python benchmarks/release_decision.py " + shlex.join(shown)
    settings = {"task": args.task, "K": args.k, "episodes": args.episodes, "seed": args.seed,
                "image_size": IMAGE_SIZE, "beta": 0.0, "policy": "sim",
                "decision": args.decision, "release_phases": list(DECISIONS[args.decision]),
                "open_at": OPEN_AT}
    runs = [run_critic(c, args.task, args.k, args.episodes, args.seed, not args.quiet,
                       args.decision) for c in args.critic]
    rows = [run.summary() for run in runs]
    payload = {"command": command, "settings": settings,
               "critics": [{**row, "episodes": run.episodes,
                            "mixed_steps": [dataclasses.asdict(m) for m in run.mixed]}
                           for row, run in zip(rows, runs, strict=True)]}
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, settings, command)
    (out.parent / f"{out.name}.md").write_text(text)
    (out.parent / f"{out.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
