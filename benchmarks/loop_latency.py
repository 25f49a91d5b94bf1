"""Loop latency of the steering graph: candidates published -> action selected, over real DDS.

The paper-size critic (ResNet-34 FiLM, 256x256, K = 50; a random one made with ``vgps critic init
--config paper --language-encoder minilm-l6-v2`` unless ``--critic`` is given) runs in the real
``critic_node`` process, the real ``selector_node`` picks; this script stands in for the camera
and the policy: it publishes a 256x256 image, waits ``--policy-ms`` (the policy's sampling time,
during which the critic can pre-encode the image), publishes K = 50 candidates and times the
``vgps/selected`` decision for them. Three phases in one run:

1. ``pre_encode`` on: p50/p95 of candidates -> selected;
2. ``pre_encode`` off (set live through the parameter service): the same;
3. a sustained 5 Hz run with ``pre_encode`` on for ``--duration-s``: a step is missed when its
   decision is not back before the next image is due (200 ms later).

Writes ``benchmarks/results/loop_latency.{json,md}`` with the command. The nodes run in their own
ROS domain (a random one unless ``ROS_DOMAIN_ID`` is set), which this script joins through rclpy;
set ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` to keep its own node's discovery on this host.

    python benchmarks/loop_latency.py --quick          # 30 s sustained run
    python benchmarks/loop_latency.py                  # 300 s sustained run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
EXECUTING = ("argmax", "softmax", "fallback")


def make_paper_critic(path: Path) -> Path:
    if not (path / "card.json").is_file():
        cmd = [str(Path(sys.executable).parent / "vgps"), "critic", "init", "--config", "paper",
               "--language-encoder", "minilm-l6-v2", "--out", str(path), "--force"]
        subprocess.run(cmd, check=True)
    return path


def describe_critic(path: Path) -> tuple[str, str]:
    """The critic's id and a few words on its network (from its card)."""
    from vgps_critic.loading import describe

    card = describe(path, verify=False)
    members = card.get("member_cards") or [card]
    arch, size = members[0]["architecture"], members[0]["image_size"]
    stages = arch["stage_sizes"]
    stages = "ResNet-34" if stages == [3, 4, 6, 3] else f"ResNet stages {stages}"
    words = f"{stages} FiLM, {arch['num_filters']} filters, {size[0]}x{size[1]} input"
    if len(members) > 1:
        words += f", an ensemble of {len(members)}"
    critic_id = card.get("critic_id") or f"{card['name']}@{card['params']['sha256'][:12]}"
    return critic_id, words


def critic_and_selector(critic: Path, k: int):
    """The graph's critic and selector nodes (this script plays policy and arm), lenient ages."""
    from vgps.graph.description import Graph, describe

    full = describe({"critic": str(critic), "k": str(k)},
                    overrides={"selector_node": {"max_age_s": 5.0, "watchdog_timeout_s": 10.0,
                                                 "fallback": "hold"},
                               "critic_node": {"max_age_s": 5.0}})
    return Graph(nodes=tuple(n for n in full.nodes if n.name in ("critic_node",
                                                                 "selector_node")),
                 arguments=full.arguments)


class Bench:
    """Publishes images and candidates, records when the decision for each stamp arrives."""

    # It stands in for the policy node: the critic and the selector take candidates only from a
    # node of that name (vgps_ros.trust).
    def __init__(self, k: int, image_size: int, domain_id: int, seed: int = 0,
                 name: str = "policy_node"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from vgps_interfaces.msg import ActionCandidates, SelectedAction
        from vgps_ros import qos

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.k, self.size = k, image_size
        self.rng = np.random.default_rng(seed)
        self.decided: dict[int, tuple[float, str]] = {}
        self.cond = threading.Condition()
        self.pub_image = self.node.create_publisher(Image, qos.CAMERA, qos.SENSOR)
        self.pub_cands = self.node.create_publisher(ActionCandidates, qos.CANDIDATES,
                                                    qos.COMMAND)
        self.pub_instr = self.node.create_publisher(String, qos.INSTRUCTION, qos.LATCHED)
        self.node.create_subscription(SelectedAction, qos.SELECTED, self._on_selected,
                                      qos.COMMAND)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        self.pub_instr.publish(String(data="put carrot on plate"))
        self.step = 0

    def _on_selected(self, msg) -> None:
        from vgps_ros.conversions import stamp_to_ns

        with self.cond:
            self.decided[stamp_to_ns(msg.header.stamp)] = (time.perf_counter(), msg.reason)
            self.cond.notify_all()

    def wait_for_subscribers(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while (self.pub_image.get_subscription_count() < 1
               or self.pub_cands.get_subscription_count() < 2):
            if time.monotonic() > deadline:
                raise RuntimeError("critic_node/selector_node never subscribed")
            time.sleep(0.1)

    def run_step(self, policy_s: float, deadline_s: float) -> float | None:
        """One step; returns candidates -> selected in ms, or None when missed."""
        from vgps_ros.conversions import candidates_to_msg, image_to_msg

        stamp = time.time_ns()
        image = self.rng.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8)
        self.pub_image.publish(image_to_msg(image, stamp))
        time.sleep(policy_s)
        chunks = self.rng.uniform(-0.04, 0.04, (self.k, 1, 7)).astype(np.float32)
        chunks[..., 6] = 1.0
        msg = candidates_to_msg(chunks, stamp, self.step, "put carrot on plate", "bench")
        self.step += 1
        sent = time.perf_counter()
        self.pub_cands.publish(msg)
        with self.cond:
            self.cond.wait_for(lambda: stamp in self.decided,
                               timeout=max(deadline_s - policy_s, 0.001))
            got = self.decided.get(stamp)
        if got is None or got[1] not in EXECUTING:
            return None
        return (got[0] - sent) * 1e3

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def set_parameter(bench: Bench, node: str, name: str, value) -> None:
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = bench.node.create_client(SetParameters, f"/{node}/set_parameters")
    if not client.wait_for_service(timeout_sec=30):
        raise RuntimeError(f"/{node}/set_parameters never appeared")
    future = client.call_async(SetParameters.Request(
        parameters=[Parameter(name, value=value).to_parameter_msg()]))
    deadline = time.monotonic() + 30
    while not future.done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"setting {node}.{name} timed out")
        time.sleep(0.02)
    if not future.result().results[0].successful:
        raise RuntimeError(future.result().results[0].reason)


def latency_phase(bench: Bench, steps: int, policy_s: float, period_s: float) -> dict:
    from tqdm import tqdm

    times, missed = [], 0
    for _ in tqdm(range(steps), desc="steps", leave=False):
        start = time.perf_counter()
        ms = bench.run_step(policy_s, deadline_s=5.0)
        if ms is None:
            missed += 1
        else:
            times.append(ms)
        time.sleep(max(period_s - (time.perf_counter() - start), 0.0))
    return _stats(times, missed, steps)


def sustained_phase(bench: Bench, duration_s: float, policy_s: float, period_s: float) -> dict:
    from tqdm import tqdm

    times, missed, steps = [], 0, 0
    end = time.perf_counter() + duration_s
    bar = tqdm(total=int(duration_s / period_s), desc="5 Hz", leave=False)
    next_tick = time.perf_counter()
    while time.perf_counter() < end:
        ms = bench.run_step(policy_s, deadline_s=period_s)
        steps += 1
        if ms is None or ms / 1e3 + policy_s > period_s:
            missed += 1
        else:
            times.append(ms)
        bar.update(1)
        next_tick += period_s
        time.sleep(max(next_tick - time.perf_counter(), 0.0))
    bar.close()
    return _stats(times, missed, steps)


def _stats(times: list[float], missed: int, steps: int) -> dict:
    arr = np.asarray(times) if times else np.array([np.nan])
    return {"steps": steps, "missed": missed, "p50_ms": round(float(np.percentile(arr, 50)), 2),
            "p95_ms": round(float(np.percentile(arr, 95)), 2),
            "max_ms": round(float(np.max(arr)), 2)}


def _display_path(path: Path) -> str:
    """The critic's path relative to the working directory when inside it (no machine paths)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return Path(path).name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--critic", type=Path, default=None,
                        help="critic checkpoint (default: a random paper-size one in out/bench)")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--policy-ms", type=float, default=60.0,
                        help="policy sampling time between image and candidates")
    parser.add_argument("--steps", type=int, default=60, help="steps per latency phase")
    parser.add_argument("--duration-s", type=float, default=300.0, help="sustained 5 Hz run")
    parser.add_argument("--quick", action="store_true", help="30 s sustained run, 30 steps")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.duration_s, args.steps = 30.0, 30
    command = " ".join(["python benchmarks/loop_latency.py", *(argv or sys.argv[1:])])

    from vgps.graph.lifecycle import Lifecycle
    from vgps.graph.processes import NodeProcesses, isolate

    critic = make_paper_critic(args.critic or ROOT / "out" / "bench" / "paper_critic")
    critic_id, critic_net = describe_critic(critic)
    graph = critic_and_selector(critic, args.k)
    workdir = Path(tempfile.mkdtemp(prefix="vgps-loop-latency-"))
    env = isolate(os.environ)  # the nodes' environment; this process's is left alone
    procs = NodeProcesses(graph, workdir, env)
    bench = Bench(args.k, args.image_size, domain_id=int(env["ROS_DOMAIN_ID"]))
    period, policy_s = 0.2, args.policy_ms / 1e3
    results: dict = {}
    try:
        procs.start()
        lifecycle = Lifecycle(bench.node)
        print("configuring critic_node (loads the paper-size critic, compiles) ...")
        lifecycle.transition(["critic_node"], "configure", 600, procs.exited)
        lifecycle.transition(["critic_node"], "activate", 60, procs.exited)
        bench.wait_for_subscribers()
        latency_phase(bench, 5, policy_s, period)  # warm-up
        print("phase 1: pre_encode on")
        results["pre_encode_on"] = latency_phase(bench, args.steps, policy_s, period)
        set_parameter(bench, "critic_node", "pre_encode", False)
        print("phase 2: pre_encode off")
        results["pre_encode_off"] = latency_phase(bench, args.steps, policy_s, period)
        set_parameter(bench, "critic_node", "pre_encode", True)
        print(f"phase 3: sustained 5 Hz for {args.duration_s:g} s")
        results["sustained_5hz"] = sustained_phase(bench, args.duration_s, policy_s, period)
    finally:
        bench.close()
        procs.shutdown()
    record = {
        "command": command,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_1m": round(os.getloadavg()[0], 2)},
        "settings": {"critic": _display_path(critic), "critic_id": critic_id,
                     "critic_network": critic_net, "k": args.k, "image_size": args.image_size,
                     "policy_ms": args.policy_ms, "period_s": period,
                     "duration_s": args.duration_s, "steps": args.steps},
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loop_latency.json").write_text(json.dumps(record, indent=2))
    (args.out / "loop_latency.md").write_text(markdown(record))
    print(markdown(record))
    return 0


def markdown(record: dict) -> str:
    r, s, m = record["results"], record["settings"], record["machine"]
    on, off, sus = r["pre_encode_on"], r["pre_encode_off"], r["sustained_5hz"]
    return "\n".join([
        "# Loop latency: candidates published -> action selected",
        "",
        f"Command: `{record['command']}`",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, 1-min load average {m['load_average_1m']}"
        " at the end (other jobs share the CPUs).",
        f"Graph: the real critic_node and selector_node processes over Fast DDS; this script "
        f"publishes a {s['image_size']}x{s['image_size']} image, waits {s['policy_ms']:g} ms "
        f"(the policy's sampling time) and publishes K = {s['k']} candidates. Critic: "
        f"`{s['critic_id']}` ({s['critic_network']}), `{s['critic']}`.",
        "",
        "| phase | steps | missed | p50 (ms) | p95 (ms) | max (ms) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| pre_encode on | {on['steps']} | {on['missed']} | {on['p50_ms']} | {on['p95_ms']} | "
        f"{on['max_ms']} |",
        f"| pre_encode off | {off['steps']} | {off['missed']} | {off['p50_ms']} | "
        f"{off['p95_ms']} | {off['max_ms']} |",
        f"| sustained 5 Hz ({s['duration_s']:g} s, pre_encode on) | {sus['steps']} | "
        f"{sus['missed']} | {sus['p50_ms']} | {sus['p95_ms']} | {sus['max_ms']} |",
        "",
        "A sustained-run step is missed when its decision is not back before the next image is "
        f"due ({s['period_s'] * 1e3:.0f} ms after the previous one, including the "
        f"{s['policy_ms']:g} ms of sampling). Pre-encoding moves the image encoding off the "
        "critical path: the critic encodes while the policy samples, so only the Q head for "
        "the K actions runs between candidates and decision.",
        "",
    ])


if __name__ == "__main__":
    sys.exit(main())
