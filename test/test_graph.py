"""The steering graph over real DDS: every node its own process, started by ``vgps up``.

* a full sim episode (``vgps up --task carrot_on_plate --episodes 1 --out DIR``, 64 px images,
  random sim critic): summary.json, a SelectedAction per step, K and beta changed live through
  the parameter services take effect on the next step;
* faults on one running graph: e-stop latches until reset; the camera stopped (arm driver
  deactivated) -> no motion; the critic killed -> the selector falls back within one control
  period and says so on /diagnostics; the policy killed -> the arm holds; no orphan processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from vgps_interfaces.msg import (  # noqa: E402
    ActionCandidates,
    EpisodeStatus,
    ScoredCandidates,
    SelectedAction,
)
from vgps_ros import qos  # noqa: E402
from vgps_ros.conversions import stamp_to_ns  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(420)]
EXECUTING = ("argmax", "softmax", "fallback")
VGPS = str(Path(sys.executable).parent / "vgps")


class Probe:
    """A test node in its own rclpy context that records what the graph publishes."""

    TOPICS: ClassVar[dict] = {
        "selected": (SelectedAction, qos.SELECTED, qos.COMMAND),
        "scored": (ScoredCandidates, qos.SCORED, qos.COMMAND),
        "candidates": (ActionCandidates, qos.CANDIDATES, qos.COMMAND),
        "episode": (EpisodeStatus, qos.EPISODE, qos.COMMAND),
        "joints": (JointState, qos.JOINT_STATES, qos.COMMAND),
        "camera": (Image, qos.CAMERA, qos.SENSOR),
        "diagnostics": (DiagnosticArray, qos.DIAGNOSTICS, qos.DIAGNOSTICS_QOS),
    }

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"probe_{os.getpid()}", context=self.context)
        self.lock = threading.Lock()
        self.log: dict[str, list] = {name: [] for name in self.TOPICS}
        for name, (kind, topic, profile) in self.TOPICS.items():
            self.node.create_subscription(kind, topic, self._recorder(name), profile)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _recorder(self, name):
        def record(msg):
            with self.lock:
                self.log[name].append((time.monotonic(), msg))
        return record

    def since(self, name: str, t0: float, t1: float = float("inf")) -> list:
        with self.lock:
            return [m for t, m in self.log[name] if t0 <= t <= t1]

    def steps(self, t0: float, t1: float = float("inf")) -> list:
        return [m for m in self.since("episode", t0, t1) if m.event != "started"]

    def wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def call(self, kind, name: str, request, timeout: float = 30.0):
        client = self.node.create_client(kind, name)
        assert client.wait_for_service(timeout_sec=timeout), f"{name} never appeared"
        future = client.call_async(request)
        self.wait(future.done, timeout, name)
        self.node.destroy_client(client)
        return future.result()

    def set_parameters(self, node: str, **values):
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        results = self.call(SetParameters, f"/{node}/set_parameters", request).results
        assert all(r.successful for r in results), [r.reason for r in results]

    def transition(self, node: str, transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(ChangeState, f"/{node}/change_state", request).success

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def start_up(critic: Path, out: Path, *extra: str) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "vgps_up.log").open("wb")
    cmd = [VGPS, "up", f"critic:={critic}", "--task", "carrot_on_plate", "--out", str(out),
           "--quiet", "--set", "arm_driver.image_size=64", *extra]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())


def stop(proc: subprocess.Popen, out: Path, timeout: float = 60.0) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return (out / "vgps_up.log").read_text(errors="replace")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_no_orphans(out: Path) -> None:
    pids = json.loads((out / "processes.json").read_text())
    assert set(pids) == {"critic_node", "policy_node", "selector_node", "arm_driver"}
    assert not [name for name, pid in pids.items() if alive(pid)], "orphan node processes"


def test_sim_episode_through_all_nodes_with_live_k_and_beta(critic_dir, tmp_path):
    """The simulation policy runs in a vgps-policy-server process: the real robot's wire path."""
    probe = Probe()
    out = tmp_path / "up"
    proc = start_up(critic_dir, out, "--episodes", "1", "--timeout", "300",
                    "--serve-policy", "sim")
    try:
        probe.wait(lambda: len(probe.steps(0)) >= 3 or proc.poll() is not None, 180,
                   "three executed steps")
        probe.set_parameters("selector_node", k=6, beta=0.5)
        probe.set_parameters("policy_node", k=6)
        set_at_ns = time.time_ns()  # images stamped later are sampled and decided on anew
        proc.wait(timeout=240)
    finally:
        log = stop(proc, out)
        probe.close()
    assert proc.returncode == 0, log[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    [episode] = summary["episodes"]
    assert episode["task"] == "carrot_on_plate" and isinstance(episode["success"], bool)
    assert 1 <= episode["steps"] <= 60
    latency = summary["step_latency_ms"]
    print(f"episode {episode}, step latency {latency}, decisions {summary['decisions']}")
    assert latency["p50"] > 0 and latency["p95"] >= latency["p50"]

    executed = [m for m in probe.since("selected", 0) if m.reason in EXECUTING]
    assert len({stamp_to_ns(m.header.stamp) for m in executed}) >= episode["steps"]
    step_events = [m for m in probe.steps(0) if m.event in ("step", "succeeded", "timeout")]
    assert [m.step for m in step_events] == list(range(1, episode["steps"] + 1))

    after = [m for m in probe.since("scored", 0) if stamp_to_ns(m.header.stamp) > set_at_ns]
    assert after, "no step after the live parameter change"
    assert {m.candidates.k for m in after} == {6} and all(len(m.q_values) == 6 for m in after)
    # The first three steps were executed before the change: K = 10. An image stamped just
    # before the change may still be sampled after it, with either K.
    third = sorted({stamp_to_ns(m.header.stamp) for m in executed})[2]
    scored = probe.since("scored", 0)
    early = [m for m in scored if stamp_to_ns(m.header.stamp) <= third]
    assert early and {m.candidates.k for m in early} == {10}
    before = [m for m in scored if stamp_to_ns(m.header.stamp) < set_at_ns]
    assert {m.candidates.k for m in before} <= {6, 10}
    decided = [m for m in executed if stamp_to_ns(m.header.stamp) > set_at_ns]
    assert decided and all((m.k, m.beta) == (6, 0.5) for m in decided)
    assert {m.reason for m in decided} <= {"softmax", "fallback"}
    assert {m.candidates.policy_name for m in scored} == {"remote:sim"}  # over the wire
    assert "policy server sim at ws://127.0.0.1:" in log
    assert_no_orphans(out)
    assert "serving sim on ws://127.0.0.1:" in (out / "logs" / "policy_server.log").read_text()


def _selector_mode(probe: Probe, t0: float) -> set[str]:
    modes = set()
    for array in probe.since("diagnostics", t0):
        for status in array.status:
            if status.name == "vgps: selector_node":
                modes |= {kv.value for kv in status.values if kv.key == "mode"}
    return modes


def test_faults_estop_camera_critic_and_policy(critic_dir, tmp_path):
    period = 0.5  # control period of this run
    probe = Probe()
    out = tmp_path / "faults"
    proc = start_up(critic_dir, out, "--episodes", "0", "--timeout", "300",
                    "--set", f"arm_driver.control_period_s={period}",
                    "--set", "arm_driver.republish_after_s=1.0",
                    "--set", "arm_driver.max_steps=100000",
                    "--set", "selector_node.watchdog_timeout_s=0.2",
                    "--set", "selector_node.fallback=policy_first")
    grace, window = 1.5, 2.5
    try:
        probe.wait(lambda: len(probe.steps(0)) >= 2 or proc.poll() is not None, 180,
                   "the first steps")
        assert proc.poll() is None

        # -- e-stop latches: nothing moves until reset -----------------------------------------
        assert probe.call(Trigger, "/" + qos.ESTOP, Trigger.Request()).success
        t0 = time.monotonic()
        time.sleep(grace + window)
        assert not probe.steps(t0 + grace), "the arm moved while the e-stop was engaged"
        late = probe.since("selected", t0 + grace)
        assert late and {m.reason for m in late} <= {"estop", "hold"}
        assert probe.call(Trigger, "/" + qos.RESET_ESTOP, Trigger.Request()).success
        t1 = time.monotonic()
        probe.wait(lambda: len(probe.steps(t1)) >= 2, 30, "steps after the e-stop reset")

        # -- camera stopped (arm driver inactive): no images, no motion ----------------------
        assert probe.transition("arm_driver", Transition.TRANSITION_DEACTIVATE)
        t0 = time.monotonic()
        time.sleep(grace + window)
        assert not probe.steps(t0 + grace) and not probe.since("camera", t0 + grace)
        assert not [m for m in probe.since("selected", t0 + grace) if m.reason in EXECUTING]
        assert probe.transition("arm_driver", Transition.TRANSITION_ACTIVATE)
        t1 = time.monotonic()
        probe.wait(lambda: len(probe.steps(t1)) >= 2, 30, "steps after re-activation")

        pids = json.loads((out / "processes.json").read_text())
        # -- critic killed: fallback within one control period, on /diagnostics ---------------
        os.kill(pids["critic_node"], signal.SIGKILL)
        t0 = time.monotonic()
        probe.wait(lambda: any(m.reason == "fallback" for m in probe.since("selected", t0)),
                   20, "a fallback decision")
        fallback = next(m for m in probe.since("selected", t0) if m.reason == "fallback")
        stamp = stamp_to_ns(fallback.header.stamp)
        with probe.lock:
            sent = [t for t, m in probe.log["candidates"] if stamp_to_ns(m.header.stamp) == stamp]
            decided = [t for t, m in probe.log["selected"] if m is fallback]
        delay = decided[0] - sent[0]
        print(f"fallback {delay * 1e3:.0f} ms after the candidates (control period {period} s)")
        assert delay <= period, f"fallback {delay:.3f} s after the candidates > {period} s"
        probe.wait(lambda: "fallback" in _selector_mode(probe, t0), 10, "fallback diagnostics")
        probe.wait(lambda: len(probe.steps(t0)) >= 2, 30, "steps on the fallback")

        # -- policy killed: no candidates, the arm holds ---------------------------------------
        os.kill(pids["policy_node"], signal.SIGKILL)
        t0 = time.monotonic()
        time.sleep(grace + window)
        assert not probe.steps(t0 + grace), "the arm moved without a policy"
        assert not [m for m in probe.since("selected", t0 + grace) if m.reason in EXECUTING]
        joints = [np.array(m.position) for m in probe.since("joints", t0 + grace)]
        assert joints, "the arm driver stopped re-publishing observations"
        assert all(np.allclose(j, joints[0]) for j in joints)
        assert proc.poll() is None, "vgps up ended although only policy and critic died"
    finally:
        log = stop(proc, out)
        probe.close()
    assert "critic_node exited" in log and "policy_node exited" in log, log[-3000:]
    assert json.loads((out / "summary.json").read_text())["decisions"]["fallback"] >= 1
    assert_no_orphans(out)


def test_the_real_arm_without_its_driver_fails_fast_naming_it(critic_dir, tmp_path):
    """robot:=real with no Interbotix driver in the domain: exit 2 before any node starts."""
    out = tmp_path / "up"
    proc = subprocess.run(
        [VGPS, "up", "robot:=real", "policy:=random", f"critic:={critic_dir}", "--out", str(out),
         "--episodes", "1", "--set", "arm_driver.connect_timeout_s=1.0"],
        capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no Interbotix driver for wx250s under /wx250s" in proc.stdout
    assert "xsarm_control.launch.py robot_model:=wx250s" in proc.stdout
    assert json.loads((out / "summary.json").read_text())["exit_code"] == 2
    assert not (out / "processes.json").exists()  # no node was started
