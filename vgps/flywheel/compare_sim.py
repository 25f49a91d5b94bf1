"""The simulation part of ``vgps critic compare``: both critics, closed loop, identical seeds.

For every K and every task, episode ``i`` runs once steered by the new critic and once by the old
one, with the same :func:`~vgps.evaluation.runner.episode_seed` (layout, policy noise), greedy
selection (beta 0) and the same policy: the outcomes are paired per episode. Episodes run through
:func:`vgps.evaluation.runner.run_tasks`, the code ``vgps eval`` runs.

Seeds: the master ``seed`` must be one no data collection of either critic used; the collection
seeds recorded in the critics' cards (``collections: [{"seed": ...}]`` in an ensemble's notes)
are checked (:func:`collection_seeds`) and a collision is refused.

MuJoCo must render headless: set ``MUJOCO_GL=egl`` before this module is imported.

Usage::

    conditions = run_sim_comparison("out/new", "models/sim_critic", ("carrot_on_plate",),
                                    episodes=50, ks=(10, 50), seed=31000)
    conditions[0].summary()   # rates, Wilson intervals, paired difference with its interval
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vgps.flywheel.compare_stats import (
    LEVEL,
    N_BOOT,
    paired_bootstrap_interval,
    wilson_interval,
)

__all__ = ["SimCondition", "collection_seeds", "pooled_summary", "run_sim_comparison"]


@dataclasses.dataclass(frozen=True)
class SimCondition:
    """Paired outcomes of one (task, K) condition.

    Attributes:
        task: task name ("all" for the pooled condition).
        k: candidates per step.
        seeds: (N,) episode seeds, one per pair.
        new_success: (N,) outcome of each episode under the new critic.
        old_success: (N,) outcome of the same episode under the old critic.
    """

    task: str
    k: int
    seeds: tuple[int, ...]
    new_success: tuple[bool, ...]
    old_success: tuple[bool, ...]

    def __post_init__(self) -> None:
        if not self.seeds or len(self.new_success) != len(self.seeds) \
                or len(self.old_success) != len(self.seeds):
            raise ValueError(f"SimCondition({self.task}, K={self.k}): need one outcome per "
                             f"seed for both critics, got {len(self.seeds)} seeds, "
                             f"{len(self.new_success)} new and {len(self.old_success)} old")

    @property
    def episodes(self) -> int:
        return len(self.seeds)

    def counts(self) -> dict[str, int]:
        """The paired 2x2 table: both succeed, only new, only old, neither."""
        new = np.asarray(self.new_success, bool)
        old = np.asarray(self.old_success, bool)
        return {"both": int(np.sum(new & old)), "new_only": int(np.sum(new & ~old)),
                "old_only": int(np.sum(~new & old)), "neither": int(np.sum(~new & ~old))}

    def summary(self, level: float = LEVEL, n_boot: int = N_BOOT) -> dict[str, Any]:
        """Every number of the condition (JSON-ready).

        Returns:
            ``{"task", "k", "episodes", "new": {"successes", "rate", "ci95"}, "old": {...},
            "pairs": counts(), "difference", "difference_ci95"}``; the difference is
            ``rate(new) - rate(old)`` and its interval the paired bootstrap's.
        """
        n = self.episodes
        out: dict[str, Any] = {"task": self.task, "k": self.k, "episodes": n}
        for name, outcomes in (("new", self.new_success), ("old", self.old_success)):
            wins = int(sum(outcomes))
            lo, hi = wilson_interval(wins, n)
            out[name] = {"successes": wins, "rate": wins / n, "ci95": [lo, hi]}
        diffs = np.asarray(self.new_success, float) - np.asarray(self.old_success, float)
        lo, hi = paired_bootstrap_interval(diffs, level=level, n_boot=n_boot)
        out.update(pairs=self.counts(), difference=float(diffs.mean()),
                   difference_ci95=[lo, hi])
        return out


def pooled_summary(conditions: Sequence[SimCondition], level: float = LEVEL,
                   n_boot: int = N_BOOT) -> dict[str, Any]:
    """The summary of every pair of every condition together (reported; not the decision)."""
    if not conditions:
        raise ValueError("pooled_summary: no conditions")
    pooled = SimCondition(
        task="all", k=0, seeds=tuple(s for c in conditions for s in c.seeds),
        new_success=tuple(x for c in conditions for x in c.new_success),
        old_success=tuple(x for c in conditions for x in c.old_success))
    return {**pooled.summary(level, n_boot), "k": sorted({c.k for c in conditions})}


def collection_seeds(path: str | os.PathLike) -> set[int]:
    """Master seeds of the data collections a critic's card records.

    Looks at every ``"collections": [{"seed": S, ...}, ...]`` in ``card.json`` (an ensemble's
    notes) and in each member's ``card.json``.

    Args:
        path: critic or ensemble checkpoint directory.

    Returns:
        The seeds (empty when the cards record none).
    """
    seeds: set[int] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "collections" and isinstance(value, list):
                    seeds.update(int(c["seed"]) for c in value
                                 if isinstance(c, dict) and isinstance(c.get("seed"), int))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    root = Path(path)
    for card in [root / "card.json", *sorted(root.glob("members/*/card.json"))]:
        if card.is_file():
            try:
                walk(json.loads(card.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue  # loading the critic reports a corrupt card properly
    return seeds


def run_sim_comparison(new: str | os.PathLike, old: str | os.PathLike, tasks: Sequence[str],
                       episodes: int, ks: Sequence[int], seed: int, image_size: int = 256,
                       policy: str = "sim", progress: bool = True) -> list[SimCondition]:
    """Runs every (task, K) condition with both critics on identical episode seeds.

    Args:
        new: the candidate critic's checkpoint directory.
        old: the deployed critic's checkpoint directory.
        tasks: task names (see ``vgps_widowx.sim.TASKS``).
        episodes: episodes per task and K (pairs).
        ks: candidates per step, one condition each.
        seed: master seed (episode ``i`` of task ``t``: ``episode_seed(seed, t, i)``).
        image_size: rendered camera size (square); each critic resizes to its own.
        policy: an in-process policy or a policy server's ``ws://host:port``.
        progress: show tqdm bars on stderr.

    Returns:
        One :class:`SimCondition` per (K, task), K-major.

    Raises:
        ValueError: bad settings, or a seed one of the critics' data collections used.
    """
    from vgps.evaluation.runner import (
        EpisodeResult,
        EvalConfig,
        episode_seed,
        in_process_policy,
        load_steerer,
        run_tasks,
    )
    from vgps_widowx.sim import SimEnvConfig, WidowXSimEnv

    ks = tuple(int(k) for k in ks)
    if not ks:
        raise ValueError("run_sim_comparison: need at least one K")
    for path in (new, old):  # validates tasks, episodes, K, image size, policy and the paths
        for k in ks:
            EvalConfig(tasks=tuple(tasks), out=Path("."), episodes=episodes, policy=policy,
                       critic=str(path), k=k, seed=seed, image_size=image_size)
        used = collection_seeds(path)
        if seed in used:
            raise ValueError(f"seed {seed} was used by a data collection of {path} "
                             f"(collection seeds {sorted(used)}): compare on seeds no round "
                             "used, e.g. --seed " + str(max(used) + 1000))
    steerers = {"new": load_steerer(str(new), 0.0), "old": load_steerer(str(old), 0.0)}
    runner_policy = in_process_policy(policy)
    env = WidowXSimEnv(SimEnvConfig(image_size=(image_size, image_size)))
    outcomes: dict[tuple[str, str, int], dict[int, bool]] = {}
    try:
        for k in ks:
            for name, steerer in steerers.items():
                def on_episode(ep: EpisodeResult, name: str = name, k: int = k) -> None:
                    outcomes.setdefault((name, ep.task, k), {})[ep.index] = ep.success

                run_tasks(tuple(tasks), episodes, seed, runner_policy, env, k, steerer, None,
                          lambda task, i: False, on_episode, progress, desc=f"{name} K={k}")
    finally:
        env.close()
    conditions = []
    for k in ks:
        for task in tasks:
            new_out, old_out = outcomes[("new", task, k)], outcomes[("old", task, k)]
            conditions.append(SimCondition(
                task=task, k=k, seeds=tuple(episode_seed(seed, task, i) for i in range(episodes)),
                new_success=tuple(bool(new_out[i]) for i in range(episodes)),
                old_success=tuple(bool(old_out[i]) for i in range(episodes))))
    return conditions
