"""Critic latency: encode-once scoring vs the paper's repeat-K design, side by side in one run.

Paper configuration (ResNet-34 FiLM, 256x256, 512-d language, 2 members) on this machine's CPU.
For each K the same image, language and K actions are scored both ways in the same process;
each figure is the median of N calls after a warm-up call (which compiles). Encode-once calls
for the different K alternate, so their ratio is measured under the same conditions. Writes
benchmarks/results/critic_latency.{json,md}.

    python benchmarks/critic_latency.py            # K = 1, 10, 50, 100; 15 calls each
    python benchmarks/critic_latency.py --quick    # K = 1, 10, 50; 3 calls each (smoke run)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from vgps_critic import PRESETS, ActionSpace, Critic, CriticCard
from vgps_critic.model import init_params

RESULTS = Path(__file__).parent / "results"


def interleaved_median_ms(fns, calls: int) -> list[float]:
    """Median wall time of each function, calling them in turn so they share machine state."""
    for fn in fns:
        fn()  # warm-up: compiles for this shape
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(calls):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            bucket.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="K up to 50, 3 calls each")
    parser.add_argument("--calls", type=int, default=None, help="timed calls per figure")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    ks = [1, 10, 50] if args.quick else [1, 10, 50, 100]
    calls = args.calls or (3 if args.quick else 15)

    config = PRESETS["paper"]
    card = CriticCard(config=config, action_space=ActionSpace.named("bridge"),
                      language_encoder="muse", name="benchmark")
    critic = Critic(card, init_params(config, jax.random.key(0)))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*config.image_size, 3), dtype=np.uint8)
    language = rng.normal(size=config.language_dim).astype(np.float32) * 0.05
    space = card.action_space

    low, high = np.asarray(space.low), np.asarray(space.high)
    actions = {k: (low + (high - low) * rng.random((k, 7))).astype(np.float32) for k in ks}
    # Encode-once for every K in turn (so K = 1 and K = 50 share the machine's state), then
    # repeat-K; alternating encode-once with the multi-second repeat-K calls would charge
    # encode-once for the allocator and cache churn those leave behind.
    once = dict(zip(ks, interleaved_median_ms(
        [lambda a=actions[k]: critic.q(critic.encode(image, language), a) for k in ks], calls)))
    repeat = {}
    for k in tqdm(ks, desc="repeat-K", file=sys.stderr):
        repeat[k] = interleaved_median_ms(
            [lambda a=actions[k]: critic.repeat_k_q(image, language, a)], calls)[0]
    results: dict[str, dict[str, float]] = {}
    for k in ks:
        results[str(k)] = {"encode_once_ms": round(once[k], 2), "repeat_ms": round(repeat[k], 2),
                           "speedup": round(repeat[k] / once[k], 2)}
        print(f"K={k:>3}: encode-once {once[k]:8.1f} ms   repeat-K {repeat[k]:9.1f} ms   "
              f"x{repeat[k] / once[k]:.1f}", file=sys.stderr)

    command = "python benchmarks/critic_latency.py" + (" --quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "critic_latency.json").write_text(json.dumps(results, indent=2) + "\n")
    k1 = results["1"]["encode_once_ms"]
    lines = [
        "# Critic latency: encode-once vs repeat-K",
        "",
        f"Command: `{command}` (median of {calls} calls after a warm-up call).",
        f"Machine: {platform.machine()} CPU, {jax.device_count()} JAX device(s) "
        f"({jax.devices()[0].platform}), jax {jax.__version__}. Critic: paper configuration, "
        f"ResNet-34 FiLM at {config.image_size[0]}x{config.image_size[1]}, "
        f"{card.param_count or 25_563_201:,} parameters.",
        "",
        "| K | encode-once (ms) | repeat-K (ms) | speed-up | encode-once vs K=1 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for k, r in results.items():
        lines.append(f"| {k} | {r['encode_once_ms']:.1f} | {r['repeat_ms']:.1f} | "
                     f"{r['speedup']:.1f}x | {r['encode_once_ms'] / k1:.2f}x |")
    (args.out / "critic_latency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
