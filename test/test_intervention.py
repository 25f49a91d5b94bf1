"""Interventions over real DDS: the selector node obeys a take-over, the filter still applies, the
keyboard teleop in a pseudo-terminal, and a recorded sim run whose bag marks the steps.

* the real ``selector_node`` process with stand-in ``critic_node`` and ``teleop_keyboard`` nodes
  (the trusted names): a take-over overrides the critic's choice (reason ``intervention``, the
  intervention's action executed), an out-of-limits action is clamped or rejected by the safety
  filter, a stale or released take-over returns control to the critic, malformed and foreign
  interventions never move the arm;
* ``vgps-teleop-keyboard`` in a pty: space takes over, w moves, g closes, Esc releases and quits
  with the terminal restored;
* ``vgps up ... intervention:=sim --record BAG`` with a person taking over for a few steps: the
  bag holds ``/vgps/intervention`` and the ``intervention`` decisions, the critic's around them.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from vgps_interfaces.msg import (  # noqa: E402
    EpisodeStatus,
    Intervention,
    ScoredCandidates,
    SelectedAction,
)
from vgps_ros import qos  # noqa: E402
from vgps_ros.conversions import (  # noqa: E402
    candidates_to_msg,
    float_array,
    scored_to_msg,
    stamp_to_ns,
)

pytestmark = [pytest.mark.ros, pytest.mark.timeout(400)]
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
PUSH = [0.01, -0.005, 0.0, 0.0, 0.0, 0.02, 0.0]
MAX_TRANSLATION = 0.05  # vgps_widowx.robot.description.MAX_TRANSLATION (Bridge)


class Stand:
    """The test's side of the graph, in its own rclpy context: a critic stand-in, the teleop's
    name, a foreign node, and a probe recording what the selector publishes."""

    def __init__(self, critic: bool = True):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        make = lambda name: rclpy.create_node(name, context=self.context)  # noqa: E731
        self.probe = make(f"probe_{os.getpid()}")
        teleop, mallory = make("teleop_keyboard"), make("mallory")
        self.nodes = [self.probe, teleop, mallory]
        self.teleop_pub = teleop.create_publisher(Intervention, qos.INTERVENTION, qos.COMMAND)
        self.mallory_pub = mallory.create_publisher(Intervention, qos.INTERVENTION, qos.COMMAND)
        if critic:  # the stand-in critic (the real graph brings its own)
            self.nodes.append(make("critic_node"))
            self.scored_pub = self.nodes[-1].create_publisher(ScoredCandidates, qos.SCORED,
                                                              qos.COMMAND)
        self.lock = threading.Lock()
        self.log: dict[str, list] = {"selected": [], "diagnostics": [], "intervention": [],
                                     "episode": []}
        for name, kind, topic, profile in (
                ("selected", SelectedAction, qos.SELECTED, qos.COMMAND),
                ("diagnostics", DiagnosticArray, qos.DIAGNOSTICS, qos.DIAGNOSTICS_QOS),
                ("intervention", Intervention, qos.INTERVENTION, qos.COMMAND),
                ("episode", EpisodeStatus, qos.EPISODE, qos.COMMAND)):
            self.probe.create_subscription(kind, topic, self._recorder(name), profile)
        self.executor = SingleThreadedExecutor(context=self.context)
        for node in self.nodes:
            self.executor.add_node(node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.step = 0

    def _recorder(self, name):
        def record(msg):
            with self.lock:
                self.log[name].append(msg)
        return record

    def messages(self, name: str) -> list:
        with self.lock:
            return list(self.log[name])

    def wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)

    def decide(self, timeout: float = 5.0) -> SelectedAction:
        """Publishes one scored step (Q favours candidate 1) and returns the selector's
        decision on it."""
        self.step += 1
        stamp_ns = time.time_ns()
        chunks = np.full((3, 1, 7), 0.002, np.float32)
        chunks[..., 6] = 1.0
        cands = candidates_to_msg(chunks, stamp_ns, self.step, "put the carrot on the plate",
                                  "test")
        self.scored_pub.publish(scored_to_msg(cands, np.array([0.1, 0.9, 0.2]), "test", 0.0,
                                              0.0, False))
        return self.wait(lambda: next((m for m in self.messages("selected")
                                       if stamp_to_ns(m.header.stamp) == stamp_ns), None),
                         timeout, f"the decision of step {self.step}")

    def intervene(self, take_over: bool, action=PUSH, publisher=None, source="keyboard"):
        msg = Intervention(take_over=take_over, source=source)
        msg.header.stamp = self.probe.get_clock().now().to_msg()
        msg.action = float_array(np.asarray(action, np.float32))
        (publisher or self.teleop_pub).publish(msg)
        time.sleep(0.1)  # delivered before the next scored step

    def diagnostic_value(self, key: str) -> int:
        for array in reversed(self.messages("diagnostics")):
            for status in array.status:
                if status.name.endswith("selector_node"):
                    values = {kv.key: kv.value for kv in status.values}
                    if key in values:
                        return int(values[key])
        return 0

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        for node in self.nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(scope="class")
def stand():
    proc = subprocess.Popen([str(BIN / "selector_node"), "--ros-args", "-p", "k:=3",
                             "-p", "watchdog_timeout_s:=30.0",
                             "-p", "intervention_timeout_s:=0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    side = Stand()
    try:
        # Until the selector has discovered the stand-in publishers it drops their messages.
        side.wait(lambda: _try(side.decide).reason == "argmax", 60, "the selector's first argmax")
        yield side
    finally:
        side.close()
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT, then SIGKILL after 10 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _try(decide) -> SelectedAction:
    try:
        return decide(timeout=1.0)
    except AssertionError:
        return SelectedAction()


def _take_over(stand: Stand, action=PUSH) -> SelectedAction:
    """Takes over (repeating until the selector knows the teleop publisher); the decision."""
    def attempt():
        stand.intervene(True, action)
        decision = stand.decide()
        return decision if decision.reason != "argmax" else None
    return stand.wait(attempt, 30, "a decision under the take-over")


class TestSelectorNode:
    """The real selector node and the keyboard teleop, with the stand-in critic."""

    def test_a_take_over_overrides_the_critics_choice(self, stand):
        stand.intervene(False)
        assert stand.decide().reason == "argmax"
        decision = _take_over(stand)
        assert (decision.reason, decision.index) == (SelectedAction.REASON_INTERVENTION, -1)
        assert (decision.num_actions, decision.action_dim) == (1, 7)
        assert np.allclose(np.asarray(decision.actions), PUSH, atol=1e-6)
        assert "intervention by keyboard" in decision.detail
        assert "argmax candidate 1" in decision.detail


    def test_the_safety_filter_still_clamps_and_rejects(self, stand):
        clamped = _take_over(stand, [0.3, -0.3, 0.0, 0.0, 0.0, 0.0, 1.0])
        assert clamped.reason == "intervention"
        assert np.allclose(np.asarray(clamped.actions)[:3], [MAX_TRANSLATION, -MAX_TRANSLATION, 0])
        assert "translation_clamped" in clamped.detail
        stand.intervene(True, [5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
        rejected = stand.decide()
        assert rejected.reason == "rejected" and rejected.num_actions == 0
        assert rejected.detail.startswith("unsafe_action: out_of_range")


    def test_a_stale_or_released_take_over_returns_control_to_the_critic(self, stand):
        assert _take_over(stand).reason == "intervention"
        time.sleep(0.7)  # > intervention_timeout_s
        stale = stand.decide()
        assert (stale.reason, stale.index) == ("argmax", 1)
        assert _take_over(stand).reason == "intervention"
        stand.intervene(False)
        assert stand.decide().reason == "argmax"


    def test_malformed_and_foreign_interventions_never_move_the_arm(self, stand):
        stand.intervene(False)
        stand.intervene(True, [0.0] * 6 + [2.0])  # gripper out of range
        stand.intervene(True, [0.01] * 6)  # one entry short
        assert stand.decide().reason == "argmax"
        stand.wait(lambda: stand.diagnostic_value("rejected.bad_intervention") >= 2, 5,
                   "rejected.bad_intervention on /diagnostics")
        stand.intervene(True, PUSH, publisher=stand.mallory_pub, source="mallory")
        assert stand.decide().reason == "argmax"
        stand.wait(lambda: stand.diagnostic_value(f"foreign.{qos.INTERVENTION}") >= 1, 5,
                   "the foreign take-over counted")


    def test_the_keyboard_teleop_takes_over_in_a_terminal(self, stand):
        master, slave = pty.openpty()
        saved = termios.tcgetattr(slave)
        proc = subprocess.Popen([str(BIN / "vgps-teleop-keyboard"), "--ros-args",
                                 "-p", "rate_hz:=20.0", "-p", "source:=pty"],
                                stdin=slave, stdout=slave, stderr=subprocess.PIPE)
        screen = bytearray()

        def read_screen():
            while select.select([master], [], [], 0)[0]:
                screen.extend(os.read(master, 4096))
            return screen

        def published(predicate, what):
            return stand.wait(lambda: next((m for m in stand.messages("intervention")
                                            if m.source == "pty" and predicate(m)), None),
                              20, what)
        try:
            stand.wait(lambda: b"space take over" in read_screen(), 60, "the teleop's help line")
            os.write(master, b" ")
            first = published(lambda m: m.take_over, "a take-over on space")
            assert len(first.action) == 7 and first.action[6] == 1.0
            os.write(master, b"w")
            published(lambda m: m.take_over and m.action[0] > 0, "a +x action on w")
            os.write(master, b"g")
            published(lambda m: m.take_over and m.action[6] == 0.0, "the gripper closed on g")
            os.write(master, b"\x1b")
            published(lambda m: not m.take_over, "the release on Esc")
            assert proc.wait(timeout=20) == 0, proc.stderr.read().decode()[-2000:]
            assert termios.tcgetattr(slave) == saved  # raw mode undone
            assert b"TAKE-OVER" in read_screen()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
            os.close(slave)


def test_a_recorded_sim_run_marks_the_intervention_steps(tmp_path):
    from vgps.bags.reader import read_bag

    stand = Stand(critic=False)  # a person at the keyboard (the teleop's node name)

    out, bag = tmp_path / "up", tmp_path / "bag"
    out.mkdir()
    log = (out / "vgps_up.log").open("wb")
    cmd = [str(BIN / "vgps"), "up", f"critic:={ROOT / 'models' / 'sim_critic'}",
           "intervention:=sim", "--task", "carrot_on_plate", "--episodes", "1", "--timeout",
           "300", "--out", str(out), "--quiet", "--record", str(bag),
           "--set", "arm_driver.image_size=64", "--set", "arm_driver.max_steps=12"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    action = [0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    try:
        def episode_step() -> int:
            steps = [m.step for m in stand.messages("episode")]
            return max(steps, default=0)
        stand.wait(lambda: episode_step() >= 2 or proc.poll() is not None, 240, "step 2")
        while 2 <= episode_step() < 6 and proc.poll() is None:  # a person holds steps 3-6
            stand.intervene(True, action)
        stand.intervene(False)
        proc.wait(timeout=240)
    finally:
        stand.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    text = (out / "vgps_up.log").read_text(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "sim_corrector" in json.loads((out / "processes.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["decisions"].get("intervention", 0) >= 1
    assert "episode_step_mismatches" not in summary.get("anomalies", {})  # counted as steps
    recorded = read_bag(bag, ["/vgps/intervention", "/vgps/selected"])
    takes = [m.message for m in recorded.messages if m.topic == "/vgps/intervention"]
    assert any(m.take_over and m.source == "keyboard" for m in takes)
    assert any(not m.take_over for m in takes)
    selected = [m.message for m in recorded.messages if m.topic == "/vgps/selected"]
    marked = [m for m in selected if m.reason == "intervention"]
    assert marked and all(m.index == -1 and "keyboard" in m.detail for m in marked)
    assert all(np.allclose(np.asarray(m.actions), action, atol=1e-6) for m in marked)
    assert any(m.reason in ("argmax", "softmax") for m in selected)  # the critic, around it


def test_the_sim_corrector_node_takes_over_a_held_object_until_it_is_placed(tmp_path):
    """Real MuJoCo states to the real corrector node over DDS; its actions drive the sim."""
    from std_msgs.msg import String

    from vgps_ros.conversions import sim_state_to_msg
    from vgps_widowx.sim import ScriptedPolicy, SimEnvConfig, WidowXSimEnv

    proc = subprocess.Popen([str(BIN / "vgps-sim-corrector")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    stand = Stand(critic=False)
    arm = rclpy.create_node("arm_driver", context=stand.context)  # the states' trusted source
    stand.executor.add_node(arm)
    stand.nodes.append(arm)
    state_pub = arm.create_publisher(String, qos.SIM_STATE, qos.COMMAND)
    episode_pub = arm.create_publisher(EpisodeStatus, qos.EPISODE, qos.COMMAND)
    env = WidowXSimEnv(SimEnvConfig(image_size=(32, 32), n_distractors=0))
    try:
        stand.wait(lambda: state_pub.get_subscription_count() >= 1, 60, "the corrector")
        time.sleep(1.0)  # its graph cache knows this publisher (trusted_publishers)
        env.reset(seed=0, options={"task": "carrot_on_plate"})
        policy, corrected, success = ScriptedPolicy("carrot_on_plate"), 0, False
        episode_pub.publish(EpisodeStatus(event="started", task="carrot_on_plate"))
        for _ in range(60):
            seen = len(stand.messages("intervention"))
            state = env.privileged_state()
            state_pub.publish(sim_state_to_msg(state, time.time_ns()))
            time.sleep(0.15)  # the corrector answers within a step when it takes over
            news = [m for m in stand.messages("intervention")[seen:]
                    if m.source == "sim_corrector"]
            if news and news[-1].take_over:
                action, corrected = np.asarray(news[-1].action, np.float32), corrected + 1
            else:
                action = policy.act(state)
                if not corrected and policy.phase in ("release", "retreat", "done"):
                    action[2], action[6] = 0.02, 0.0  # hold on and lift back up
            _, _, success, truncated, _ = env.step(action)
            if success or truncated:
                break
        takes = [m for m in stand.messages("intervention") if m.source == "sim_corrector"]
        assert corrected > 0 and success
        assert takes[0].take_over and len(takes[0].action) == 7
        episode_pub.publish(EpisodeStatus(event="succeeded", task="carrot_on_plate"))
        stand.wait(lambda: not stand.messages("intervention")[-1].take_over, 5,
                   "the corrector's release")
    finally:
        env.close()
        stand.close()
        _stop(proc)
