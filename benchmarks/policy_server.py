"""Wire overhead of the policy server: ``random`` served over loopback vs. called in-process.

One run, side by side, for K = 50 candidates of H = 4 actions and one 256x256x3 uint8 image:

1. served: a real ``vgps-policy-server --policy random --horizon 4`` process on 127.0.0.1
   (port 0), this script its :class:`~vgps_policy_server.client.PolicyClient`. Per request the
   client's round trip (encoding the request to decoding the reply) and the server's reported
   ``sample_ms`` (the policy's own sampling) and ``server_ms`` (decode + checks + sample +
   encode); wire overhead = round trip - sample_ms;
2. in-process: the same policy's ``sample`` called directly with the same inputs.

p50/p95 over ``--requests`` requests after ``--warmup`` warm-up requests. Target: overhead p50
<= 3 ms, p95 <= 6 ms. Writes ``benchmarks/results/policy_server.{json,md}`` with the command.

    python benchmarks/policy_server.py                   # 500 requests
    python benchmarks/policy_server.py --requests 200    # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vgps_policy_server.client import PolicyClient
from vgps_policy_server.policies.random import RandomPolicy
from vgps_policy_server.protocol import pack

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
READY = re.compile(r"serving .* on (ws://\S+)")
TARGET_P50_MS, TARGET_P95_MS = 3.0, 6.0


def percentiles(values: list[float]) -> dict[str, float]:
    array = np.asarray(values)
    return {"p50_ms": round(float(np.percentile(array, 50)), 3),
            "p95_ms": round(float(np.percentile(array, 95)), 3),
            "max_ms": round(float(array.max()), 3)}


def start_server(horizon: int) -> tuple[subprocess.Popen, str]:
    exe = Path(sys.executable).parent / "vgps-policy-server"
    cmd = [str(exe), "--policy", "random", "--horizon", str(horizon), "--host", "127.0.0.1",
           "--port", "0", "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = READY.search(line)
    if not match:
        proc.kill()
        raise RuntimeError(f"{' '.join(cmd)} did not start: {line!r}")
    return proc, match.group(1)


def run(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.image_size, args.image_size, 3), dtype=np.uint8)
              for _ in range(8)]
    instruction = "put the carrot on the plate"
    proc, url = start_server(args.horizon)
    served: dict[str, list[float]] = {"round_trip": [], "sample": [], "server": [],
                                      "overhead": [], "server_side": []}
    try:
        client = PolicyClient(url, timeout_s=10.0)
        client.metadata()
        client.reset("bench")
        for i in range(args.warmup + args.requests):
            observation = {"images": {"primary": images[i % len(images)]}, "state": {}}
            actions, timing = client.sample(observation, instruction, args.k, seed=i,
                                            episode_id="bench", step=i)
            if i < args.warmup:
                continue
            served["round_trip"].append(timing["round_trip_ms"])
            served["sample"].append(timing["sample_ms"])
            served["server"].append(timing["server_ms"])
            served["overhead"].append(timing["round_trip_ms"] - timing["sample_ms"])
            served["server_side"].append(timing["server_ms"] - timing["sample_ms"])
        request_bytes = len(pack({"type": "sample", "episode_id": "bench", "step": 0,
                                  "k": args.k, "seed": 0, "instruction": instruction,
                                  "observation": observation}))
        reply_bytes = len(pack({"type": "actions", "actions": actions,
                                "timing": {"sample_ms": 0.0, "server_ms": 0.0}}))
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    policy = RandomPolicy(horizon=args.horizon, image_size=args.image_size)
    in_process = []
    for i in range(args.warmup + args.requests):
        observation = {"images": {"primary": images[i % len(images)]}, "state": {}}
        start = time.perf_counter()
        policy.sample(observation, instruction, args.k, i, "bench", i)
        if i >= args.warmup:
            in_process.append((time.perf_counter() - start) * 1e3)
    results = {name: percentiles(values) for name, values in served.items()}
    results["in_process_sample"] = percentiles(in_process)
    overhead = results["overhead"]
    return {
        "settings": {"k": args.k, "horizon": args.horizon,
                     "image": [args.image_size, args.image_size, 3], "requests": args.requests,
                     "warmup": args.warmup, "request_bytes": request_bytes,
                     "reply_bytes": reply_bytes},
        "results": results,
        "target": {"p50_ms": TARGET_P50_MS, "p95_ms": TARGET_P95_MS,
                   "met": overhead["p50_ms"] <= TARGET_P50_MS
                   and overhead["p95_ms"] <= TARGET_P95_MS},
    }


def markdown(record: dict) -> str:
    s, r, m, t = record["settings"], record["results"], record["machine"], record["target"]
    rows = [("wire overhead (round trip - sample_ms)", "overhead"),
            ("round trip (client)", "round_trip"),
            ("server_ms (decode + checks + sample + encode)", "server"),
            ("server side without sampling (server_ms - sample_ms)", "server_side"),
            ("sample_ms (served, the policy's own)", "sample"),
            ("in-process `sample` (same policy, same inputs)", "in_process_sample")]
    met = "met" if t["met"] else "MISSED"
    return "\n".join([
        "# Policy server: wire overhead over loopback",
        "",
        f"Command: `{record['command']}`",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}, numpy "
        f"{m['numpy']}, websockets {m['websockets']}, msgpack {m['msgpack']}; 1-min load "
        f"average {m['load_average_1m']} at the end.",
        f"Setting: the `random` policy (K = {s['k']}, H = {s['horizon']}, one "
        f"{s['image'][0]}x{s['image'][1]}x3 uint8 image) in a real `vgps-policy-server` process "
        "on 127.0.0.1, this script its `PolicyClient`; then the same policy's `sample` "
        f"in-process. {s['requests']} requests after {s['warmup']} warm-up requests; request "
        f"{s['request_bytes']:,} bytes, reply {s['reply_bytes']:,} bytes.",
        "",
        "| measure | p50 (ms) | p95 (ms) | max (ms) |",
        "|---|---:|---:|---:|",
        *[f"| {label} | {r[key]['p50_ms']:.3f} | {r[key]['p95_ms']:.3f} | "
          f"{r[key]['max_ms']:.3f} |" for label, key in rows],
        "",
        f"Target: wire overhead p50 <= {t['p50_ms']:g} ms and p95 <= {t['p95_ms']:g} ms: "
        f"**{met}**.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--horizon", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    command = " ".join(["python benchmarks/policy_server.py", *(argv or sys.argv[1:])])
    record = run(args)
    import msgpack
    import websockets

    record = {
        "command": command,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "websockets": websockets.__version__,
                    "msgpack": ".".join(map(str, msgpack.version)),
                    "load_average_1m": round(os.getloadavg()[0], 2)},
        **record,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "policy_server.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "policy_server.md").write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
