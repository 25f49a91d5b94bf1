"""Simulator throughput: control steps per second and episodes per minute, rendering included.

Runs the base sim policy (K = 1) through whole episodes of every task at each image size and
times the three parts of a control step: the policy's sample, ``env.step`` (0.2 s of physics
plus IK and rendering the camera) and, separately, one camera render. Episodes, seeds and
policy are the same for every size, so the sizes differ only in rendering. Writes
benchmarks/results/sim_throughput.{json,md}.

    MUJOCO_GL=egl python benchmarks/sim_throughput.py               # 256 and 64 px, 8 per task
    MUJOCO_GL=egl python benchmarks/sim_throughput.py --episodes 2  # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

RESULTS = Path(__file__).parent / "results"


def measure(size: int, episodes: int, seed: int) -> dict[str, float]:
    """Times ``episodes`` per task at ``size`` x ``size`` pixels; returns rates and means."""
    from vgps.evaluation.runner import episode_seed
    from vgps_policy_bridge.registry import make_policy
    from vgps_widowx.sim import TASKS, SimEnvConfig, WidowXSimEnv

    env = WidowXSimEnv(SimEnvConfig(image_size=(size, size)))
    policy = make_policy("sim")
    env.reset(seed=0)
    env.render()  # first render creates the GL context
    sample_s = step_s = reset_s = 0.0
    steps = done = 0
    start = time.perf_counter()
    runs = [(task, i) for task in TASKS for i in range(episodes)]
    for task, i in tqdm(runs, desc=f"{size}x{size}", unit="ep", file=sys.stderr):
        ep_seed = episode_seed(seed, task, i)
        t0 = time.perf_counter()
        obs, _ = env.reset(seed=ep_seed, options={"task": task})
        policy.reset()
        reset_s += time.perf_counter() - t0
        rng = np.random.default_rng([ep_seed, 1])
        for _ in range(env.max_steps):
            t0 = time.perf_counter()
            chunks = policy.sample({**obs, "privileged": env.privileged_state()},
                                   env.instruction, 1, rng)
            t1 = time.perf_counter()
            obs, _, terminated, truncated, _ = env.step(chunks[0, 0])
            t2 = time.perf_counter()
            sample_s += t1 - t0
            step_s += t2 - t1
            steps += 1
            if terminated or truncated:
                break
        done += 1
    total = time.perf_counter() - start
    renders = []
    for _ in range(50):
        t0 = time.perf_counter()
        env.render()
        renders.append(time.perf_counter() - t0)
    env.close()
    return {
        "image_size": size,
        "episodes": done,
        "steps": steps,
        "wall_s": round(total, 2),
        "steps_per_s": round(steps / total, 1),
        "episodes_per_min": round(done / total * 60, 1),
        "mean_steps_per_episode": round(steps / done, 1),
        "policy_ms": round(sample_s / steps * 1e3, 2),
        "env_step_ms": round(step_s / steps * 1e3, 2),
        "render_ms": round(float(np.median(renders)) * 1e3, 2),
        "reset_ms": round(reset_s / done * 1e3, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=8, help="episodes per task and size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is first imported

    results = [measure(size, args.episodes, args.seed) for size in args.sizes]
    command = "MUJOCO_GL=egl python benchmarks/sim_throughput.py"
    if args.episodes != 8:
        command += f" --episodes {args.episodes}"
    if args.sizes != [256, 64]:
        command += " --sizes " + " ".join(map(str, args.sizes))
    machine = {"platform": platform.platform(), "processor": platform.processor() or "?",
               "cpus": os.cpu_count(), "python": platform.python_version(),
               "mujoco_gl": os.environ.get("MUJOCO_GL")}
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "machine": machine, "results": results}
    (args.out / "sim_throughput.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Simulator throughput (CPU, headless rendering)", "",
        "```", command, "```", "",
        f"Machine: {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}, "
        f"MUJOCO_GL={machine['mujoco_gl']}. Base sim policy (K = 1), every task, same seeds "
        "for every size; an episode ends on success or at the task's 60-step limit.", "",
        "| image | steps/s | episodes/min | steps/episode | policy ms | env.step ms "
        "| render ms | reset ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['image_size']}x{r['image_size']} | {r['steps_per_s']} | "
            f"{r['episodes_per_min']} | {r['mean_steps_per_episode']} | {r['policy_ms']} | "
            f"{r['env_step_ms']} | {r['render_ms']} | {r['reset_ms']} |")
    lines += ["", "env.step includes 0.2 s of simulated physics, IK and the camera render; "
              "render ms is one extra render timed on its own (median of 50). A real WidowX "
              "runs 5 steps/s, so any figure above 5 is faster than real time.", ""]
    (args.out / "sim_throughput.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
