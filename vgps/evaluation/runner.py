"""In-process evaluation in the MuJoCo sim: a policy proposes K chunks, a critic may pick one.

No ROS: each control step renders the camera, asks the policy for K candidate chunks, lets the
critic's :class:`~vgps_critic.steering.Steerer` (the same code the critic node runs) choose one
when a critic is given, and executes the chosen chunk's first action. Without a critic the
policy's first sample is executed, so only one is drawn (K = 1, the base policy).

Seeding: episode ``i`` of task ``t`` runs with :func:`episode_seed` ``(seed, t, i)``; the layout,
the policy's noise and (for beta > 0) the selection key all derive from it, so the same
settings give the same results.

MuJoCo must render headless: set ``MUJOCO_GL=egl`` before this module is imported.

Usage::

    config = EvalConfig(tasks=("carrot_on_plate",), episodes=10, out=Path("out/eval"))
    results = evaluate(config)   # {task: {"episodes", "successes", "success_rate", "ci95"}}
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from vgps.evaluation.results import results_markdown, task_results
from vgps_policy_bridge.policy import Policy
from vgps_policy_bridge.registry import IN_PROCESS, PolicySettings, make_policy
from vgps_widowx.sim import TASKS, SimEnvConfig, WidowXSimEnv

if TYPE_CHECKING:  # jax and the critic load only when a critic is given
    import jax

    from vgps_critic import Scorer
    from vgps_critic.steering import Steerer

POLICIES = IN_PROCESS  # the registry's policies that run in-process (Octo: behind a server)
REMOTE_TIMEOUT_S = 60.0  # a served policy's answer, per step
DEFAULT_K_WITH_CRITIC = 10  # the paper's smaller simulated setting (K in {10, 50})


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation run."""

    tasks: tuple[str, ...]  # task names (see vgps_widowx.sim.TASKS)
    out: Path  # output directory
    episodes: int = 50  # episodes per task
    policy: str = "sim"  # one of POLICIES (vgps_policy_bridge.registry), or ws://host:port
    critic: str | None = None  # critic checkpoint directory; None = base policy
    k: int | None = None  # candidates per step; None = 10 with a critic, 1 without
    beta: float = 0.0  # selection temperature: 0 = greedy argmax, > 0 = softmax(Q / beta)
    seed: int = 0  # master seed
    instruction: str | None = None  # overrides the task's instruction for policy and critic
    video: bool = False  # write the first episode of each task to out/videos/
    image_size: int = 256  # rendered camera size (square); the critic resizes to its own

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "out", Path(self.out))
        if not self.tasks:
            raise ValueError(f"{name}.tasks: need at least one task")
        for task in self.tasks:
            if task not in TASKS:
                raise ValueError(f"{name}.tasks: unknown task {task!r}; choose from "
                                 f"{sorted(TASKS)} or 'all'")
        if self.episodes < 1:
            raise ValueError(f"{name}.episodes={self.episodes!r}: must be >= 1")
        if self.policy not in POLICIES and not self.policy.startswith(("ws://", "wss://")):
            raise ValueError(f"{name}.policy={self.policy!r}: choose from {list(POLICIES)} or "
                             "a policy server's ws://host:port")
        if self.k is not None and self.k < 1:
            raise ValueError(f"{name}.k={self.k!r}: must be >= 1")
        if not math.isfinite(self.beta) or self.beta < 0:
            raise ValueError(f"{name}.beta={self.beta!r}: must be finite and >= 0")
        if self.beta > 0 and self.critic is None:
            raise ValueError(f"{name}.beta={self.beta!r}: only meaningful with a critic")
        if not 16 <= self.image_size <= 1024:
            raise ValueError(f"{name}.image_size={self.image_size!r}: need 16..1024")
        if self.instruction is not None and not self.instruction.strip():
            raise ValueError(f"{name}.instruction: must not be empty")
        if self.critic is not None and not Path(self.critic).is_dir():
            raise FileNotFoundError(f"{name}.critic={self.critic!r}: no such checkpoint directory")

    @property
    def candidates(self) -> int:
        """K actually sampled per step: 1 without a critic (nothing to choose with)."""
        if self.critic is None:
            return 1
        return self.k or DEFAULT_K_WITH_CRITIC


@dataclasses.dataclass
class EpisodeResult:
    """One episode. ``images``/``states``/``actions`` are filled only when recording.

    Attributes:
        images: uint8 (T + 1, H, W, 3) observations including the final one.
        states: float32 (T + 1, 7) proprio.
        actions: float32 (T, 7) executed actions.
        q: (T,) Q-value of each executed candidate (critic runs only).
    """

    task: str
    index: int
    seed: int
    instruction: str
    success: bool = False
    steps: int = 0
    q: list[float] = dataclasses.field(default_factory=list)
    images: list[np.ndarray] = dataclasses.field(default_factory=list)
    states: list[np.ndarray] = dataclasses.field(default_factory=list)
    actions: list[np.ndarray] = dataclasses.field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready line for ``episodes.jsonl``."""
        line: dict[str, Any] = {"task": self.task, "index": self.index, "seed": self.seed,
                                "success": self.success, "steps": self.steps,
                                "instruction": self.instruction}
        if self.q:
            line.update(q_mean=float(np.mean(self.q)), q_min=float(np.min(self.q)),
                        q_max=float(np.max(self.q)))
        return line


def episode_seed(seed: int, task: str, index: int) -> int:
    """Seed of episode ``index`` of ``task`` under master ``seed`` (stable across runs)."""
    sequence = np.random.SeedSequence([seed & 0xFFFFFFFF, zlib.crc32(task.encode()), index])
    return int(sequence.generate_state(1)[0])


def in_process_policy(name: str) -> Policy:
    """The policy called ``name``, built by the one registry of policies: an in-process one
    (:data:`POLICIES`) or a policy server's ``ws://host:port`` (each step waits for its answer
    up to ``REMOTE_TIMEOUT_S``: an evaluation is not real-time).

    Raises:
        ValueError: ``name`` is neither.
        PolicyUnavailableError: no server answers at the URL, or it does not fit the arm.
    """
    if name.startswith(("ws://", "wss://")):
        return make_policy(PolicySettings(policy="remote", remote_url=name,
                                          remote_timeout_s=REMOTE_TIMEOUT_S))
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; evaluation supports {list(POLICIES)} or "
                         "a policy server's ws://host:port")
    return make_policy(name)


def selection_key(seed: int, step: int) -> jax.Array:
    """The jax key for sampling the selection (beta > 0) at ``step`` of episode ``seed``."""
    import jax

    return jax.random.fold_in(jax.random.key(seed), step)


def load_steerer(path: str | None, beta: float) -> Steerer | None:
    """A :class:`~vgps_critic.steering.Steerer` for the checkpoint at ``path`` (None: none)."""
    if path is None:
        return None
    import vgps_critic
    from vgps_critic.steering import Steerer

    critic: Scorer = vgps_critic.load(path)  # a critic or an ensemble
    return Steerer(critic, beta=beta)


def run_episode(
    env: WidowXSimEnv,
    policy: Policy,
    task: str,
    index: int,
    seed: int,
    k: int = 1,
    steerer: Steerer | None = None,
    instruction: str | None = None,
    record: bool = False,
) -> EpisodeResult:
    """Runs one episode until success or the task's step limit.

    Args:
        env: the simulator (any image size).
        policy: proposes (K, H, 7) chunks; gets ``env.privileged_state()`` as
            ``observation["privileged"]``.
        task: task name.
        index: episode number within the task (recorded only).
        seed: episode seed (layout, policy noise, selection key).
        k: candidates per step; without ``steerer`` the first one is executed.
        steerer: critic-based selector, or None for the base policy.
        instruction: overrides the task's instruction for policy and critic.
        record: keep images, states and executed actions.

    Returns:
        The :class:`EpisodeResult`.
    """
    obs, info = env.reset(seed=seed, options={"task": task})
    policy.reset()
    rng = np.random.default_rng([seed, 1])
    text = instruction or env.instruction
    result = EpisodeResult(task=task, index=index, seed=seed, instruction=text)
    if record:
        result.images.append(obs["image"])
        result.states.append(obs["state"])
    for step in range(env.max_steps):
        observation = {**obs, "privileged": env.privileged_state()}
        chunks = policy.sample(observation, text, k, rng)
        choice = 0
        if steerer is not None:
            key = selection_key(seed, step) if steerer.beta > 0 else None
            decision = steerer.choose(obs["image"], text, chunks, key)
            choice = decision.index
            result.q.append(float(decision.q_values[choice]))
        action = chunks[choice, 0]
        obs, _, terminated, truncated, info = env.step(action)
        result.steps = step + 1
        if record:
            result.images.append(obs["image"])
            result.states.append(obs["state"])
            result.actions.append(np.asarray(action, np.float32))
        if terminated or truncated:
            break
    result.success = bool(info["success"])
    return result


def run_tasks(
    tasks: Sequence[str],
    episodes: int,
    seed: int,
    policy: Policy,
    env: WidowXSimEnv,
    k: int,
    steerer: Steerer | None,
    instruction: str | None,
    record: Callable[[str, int], bool],
    on_episode: Callable[[EpisodeResult], None],
    progress: bool = True,
    desc: str = "eval",
) -> dict[str, dict[str, Any]]:
    """Runs ``episodes`` per task; returns the per-task results (see :func:`task_results`)."""
    results = {}
    for task in tasks:
        successes = 0
        bar = tqdm(range(episodes), desc=f"{desc} {task}", unit="ep", disable=not progress,
                   dynamic_ncols=True, leave=True)
        for i in bar:
            ep = run_episode(env, policy, task, i, episode_seed(seed, task, i), k, steerer,
                             instruction, record=record(task, i))
            successes += ep.success
            on_episode(ep)
            bar.set_postfix(success=f"{successes}/{i + 1}")
        results[task] = task_results(successes, episodes)
    return results


def write_video(frames: Sequence[np.ndarray], path: Path, fps: int = 5) -> Path:
    """Writes frames as MP4 (imageio-ffmpeg) or, when ffmpeg is unavailable, as a GIF.

    Args:
        frames: uint8 (H, W, 3) images.
        path: destination without or with a suffix (it is replaced).
        fps: frame rate (the sim runs at 5 Hz).

    Returns:
        The file written.
    """
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import imageio_ffmpeg  # noqa: F401

        mp4 = path.with_suffix(".mp4")
        with warnings.catch_warnings():
            # ffmpeg runs as a subprocess (fork + exec at once), which is safe next to JAX's
            # threads; JAX warns about any fork all the same.
            warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
            imageio.mimwrite(mp4, list(frames), fps=fps, macro_block_size=2, codec="libx264")
        return mp4
    except (ImportError, RuntimeError, OSError):
        gif = path.with_suffix(".gif")
        imageio.mimwrite(gif, list(frames), duration=1000 / fps, loop=0)
        return gif


def evaluate(config: EvalConfig, progress: bool = True,
             command: str | None = None) -> dict[str, dict[str, Any]]:
    """Runs the evaluation and writes ``results.json``, ``results.md`` and ``episodes.jsonl``.

    Args:
        config: what to run.
        progress: show tqdm bars on stderr.
        command: the command line, recorded in ``results.md``.

    Returns:
        ``{task: {"episodes", "successes", "success_rate", "ci95": [lo, hi]}}``.
    """
    steerer = load_steerer(config.critic, config.beta)
    policy = in_process_policy(config.policy)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    size = config.image_size
    env = WidowXSimEnv(SimEnvConfig(image_size=(size, size)))
    videos: list[Path] = []
    try:
        with (out / "episodes.jsonl").open("w") as lines:

            def on_episode(ep: EpisodeResult) -> None:
                lines.write(json.dumps(ep.summary()) + "\n")
                lines.flush()
                if ep.images:
                    videos.append(write_video(ep.images, out / "videos" / ep.task))

            results = run_tasks(config.tasks, config.episodes, config.seed, policy, env,
                                config.candidates, steerer, config.instruction,
                                lambda task, i: config.video and i == 0, on_episode, progress)
    finally:
        env.close()
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    settings = settings_of(config, steerer, policy)
    (out / "results.md").write_text(results_markdown(results, settings, command))
    return results


def settings_of(config: EvalConfig, steerer: Steerer | None, policy: Policy) -> dict[str, Any]:
    """The settings recorded next to the results."""
    return {
        "policy": policy.name,
        "critic": None if steerer is None else steerer.critic.critic_id,
        "critic_path": config.critic,
        "K": config.candidates,
        "beta": config.beta,
        "seed": config.seed,
        "instruction_override": config.instruction,
        "image_size": config.image_size,
        "episodes_per_task": config.episodes,
    }
