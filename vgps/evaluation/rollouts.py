"""Record simulated episodes as training data: one ``.npz`` per episode plus ``index.json``.

Each episode file holds ``images`` uint8 (T + 1, H, W, 3) (the final observation included),
``states`` float32 (T + 1, 7), ``actions`` float32 (T, 7) as executed, ``instruction`` (str),
``task`` (str), ``success`` (bool) and ``seed`` (int). ``index.json`` lists the episodes with
their outcome and the settings they were collected with. Outcomes are mixed (the base sim policy
succeeds on roughly half of the episodes), which is what offline critic training needs.

Usage::

    summary = collect(CollectConfig(tasks=("carrot_on_plate",), episodes=20, out=Path("data")))
    episode = load_episode("data/episodes/carrot_on_plate_0000.npz")
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vgps.evaluation.runner import (
    EpisodeResult,
    EvalConfig,
    in_process_policy,
    load_steerer,
    run_tasks,
    settings_of,
)
from vgps_widowx.sim import SimEnvConfig, WidowXSimEnv

EPISODE_KEYS = ("images", "states", "actions", "instruction", "task", "success", "seed")


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    """Settings of one collection run (validated like :class:`EvalConfig`)."""

    tasks: tuple[str, ...]  # task names
    out: Path  # output directory
    episodes: int = 50  # episodes per task
    policy: str = "sim"  # in-process policy
    k: int = 1  # candidates per step (used only with a critic)
    critic: str | None = None  # steer collection with this critic checkpoint
    beta: float = 0.0  # selection temperature with a critic
    image_size: int = 64  # recorded image size (square)
    seed: int = 0  # master seed
    instruction: str | None = None  # overrides the task instruction

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "out", Path(self.out))
        self.as_eval()  # same validation, same messages

    def as_eval(self) -> EvalConfig:
        """The equivalent evaluation settings (for validation and the recorded settings)."""
        return EvalConfig(tasks=self.tasks, out=self.out, episodes=self.episodes,
                          policy=self.policy, critic=self.critic, k=self.k, beta=self.beta,
                          seed=self.seed, instruction=self.instruction,
                          image_size=self.image_size)


def save_episode(path: Path, episode: EpisodeResult) -> None:
    """Writes one recorded episode as a compressed ``.npz`` (see the module docstring)."""
    np.savez_compressed(
        path,
        images=np.stack(episode.images).astype(np.uint8),
        states=np.stack(episode.states).astype(np.float32),
        actions=np.stack(episode.actions).astype(np.float32).reshape(-1, 7),
        instruction=np.array(episode.instruction),
        task=np.array(episode.task),
        success=np.array(episode.success),
        seed=np.array(episode.seed, dtype=np.int64),
    )


def load_episode(path: str | Path) -> dict[str, Any]:
    """Reads an episode file back: arrays as numpy, scalars as Python values."""
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in EPISODE_KEYS if key not in data]
        if missing:
            raise ValueError(f"{path}: not an episode file, missing {missing}")
        return {
            "images": data["images"],
            "states": data["states"],
            "actions": data["actions"],
            "instruction": str(data["instruction"]),
            "task": str(data["task"]),
            "success": bool(data["success"]),
            "seed": int(data["seed"]),
        }


def collect(config: CollectConfig, progress: bool = True) -> dict[str, Any]:
    """Runs and records the episodes; writes ``out/episodes/*.npz`` and ``out/index.json``.

    Args:
        config: what to collect.
        progress: show tqdm bars on stderr.

    Returns:
        The index (``settings``, ``summary`` per task, ``episodes`` list).
    """
    eval_config = config.as_eval()
    steerer = load_steerer(config.critic, config.beta)
    policy = in_process_policy(config.policy)
    folder = config.out / "episodes"
    folder.mkdir(parents=True, exist_ok=True)
    size = config.image_size
    env = WidowXSimEnv(SimEnvConfig(image_size=(size, size)))
    entries: list[dict[str, Any]] = []

    def on_episode(ep: EpisodeResult) -> None:
        name = f"{ep.task}_{ep.index:04d}.npz"
        save_episode(folder / name, ep)
        entries.append({"file": f"episodes/{name}", **ep.summary()})

    try:
        summary = run_tasks(config.tasks, config.episodes, config.seed, policy, env,
                            eval_config.candidates, steerer, config.instruction,
                            lambda task, i: True, on_episode, progress, desc="collect")
    finally:
        env.close()
    index = {"settings": settings_of(eval_config, steerer, policy), "summary": summary,
             "episodes": entries}
    (config.out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return index


def episode_strip(images: np.ndarray, frames: int = 6, size: int = 128) -> np.ndarray:
    """Evenly spaced frames of an episode side by side, for documentation.

    Args:
        images: uint8 (T, H, W, 3).
        frames: how many to take (first and last included).
        size: edge length of each frame in the strip (pixels).

    Returns:
        uint8 (size, frames * size, 3).
    """
    picks = np.linspace(0, len(images) - 1, frames).round().astype(int)
    tiles = [np.asarray(Image.fromarray(images[i]).resize((size, size), Image.LANCZOS))
             for i in picks]
    return np.concatenate(tiles, axis=1)
