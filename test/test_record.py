"""Recording the steering graph: the recorder in the one graph description, the recorder node over
real DDS (finalised on SIGINT/SIGTERM, readable after SIGKILL), and ``vgps up --record`` in sim.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from vgps.graph.description import LAUNCH_ARGUMENTS, RECORDER, describe
from vgps.graph.processes import NodeProcesses, executable, ros_arguments

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from rclpy.qos import DurabilityPolicy  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float32, String  # noqa: E402

from vgps.bags import read_bag  # noqa: E402
from vgps.bags.recorder_node import STEERING_TOPICS, expected_subscriptions  # noqa: E402
from vgps_ros import qos  # noqa: E402
from vgps_ros.conversions import stamp_to_ns  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXECUTING = ("argmax", "softmax", "fallback")
TERMINAL = ("succeeded", "timeout", "failed")


# -- the graph description -----------------------------------------------------------------------


def test_record_adds_the_recorder_first_and_unmanaged(tmp_path):
    plain = describe()
    graph = describe({"record": str(tmp_path / "bag")},
                     overrides={"recorder": {"chunk_size": "65536", "topics": ["vgps/selected"]}})
    assert [n.name for n in graph.nodes] == ["recorder"] + [n.name for n in plain.nodes]
    spec = graph.node("recorder")
    assert (spec.package, spec.executable, spec.lifecycle) == (RECORDER.package,
                                                               RECORDER.executable, False)
    params = dict(spec.parameters)
    run_info = json.loads(params.pop("run_info"))
    assert params == {"path": str(tmp_path / "bag"), "topics": ["vgps/selected"],
                               "chunk_size": 65536, "compression": "zstd",
                               "flush_period_s": 2.0}
    # what vgps replay needs to re-score the run (metadata.yaml custom_data)
    assert run_info["vgps.critic"] == graph.node("critic_node").parameters["critic"]
    assert run_info["vgps.k"] == graph.node("selector_node").parameters["k"]
    assert "autostart" not in spec.parameters and spec.remappings == ()
    assert graph.params_file()["recorder"]["ros__parameters"] == spec.parameters
    assert ros_arguments(spec, tmp_path / "p.yaml")[:3] == ["--ros-args", "-r",
                                                             "__node:=recorder"]
    relative = describe({"record": "out/bag"}).node("recorder").parameters
    assert relative["path"] == str(Path("out/bag").resolve()) and "topics" not in relative
    assert "recorder" not in {n.name for n in plain.nodes}
    with pytest.raises(ValueError, match="record:=DIR"):
        describe(overrides={"recorder": {"chunk_size": 1}})
    assert "bag" in LAUNCH_ARGUMENTS["record"].help


def test_recorder_executable_is_installed_for_vgps_up_and_launch():
    spec = describe({"record": "bag"}).node("recorder")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[spec.executable] == "vgps.bags.recorder_node:main"
    assert importlib.util.find_spec("vgps.bags.recorder_node") is not None
    assert Path(executable(spec)).is_file()


def test_recorder_subscribes_to_every_steering_topic_with_the_graphs_qos():
    assert set(STEERING_TOPICS) >= {qos.CAMERA, qos.INSTRUCTION, qos.CANDIDATES,
                                    qos.SCORED, qos.SELECTED, qos.EPISODE,
                                    qos.JOINT_STATES, qos.Q_VALUES, qos.Q_SELECTED,
                                    qos.Q_MARGIN, qos.DIAGNOSTICS}
    assert STEERING_TOPICS[qos.CAMERA][1] is qos.SENSOR
    assert STEERING_TOPICS[qos.INSTRUCTION][1] is qos.LATCHED
    assert STEERING_TOPICS[qos.DIAGNOSTICS][1] is qos.DIAGNOSTICS_QOS
    assert STEERING_TOPICS[qos.SELECTED][1] is qos.COMMAND
    assert "/vgps/episode" in expected_subscriptions() and "/diagnostics" in \
        expected_subscriptions()
    # relative or absolute names; a topic of unknown type is subscribed once it has a publisher
    assert expected_subscriptions(["/vgps/selected", "diagnostics", "other/topic"]) == [
        "/vgps/selected", "/diagnostics"]


STOPPING = """
import signal, sys, time
out, delay = sys.argv[1], float(sys.argv[2])
def stop(signum, frame):
    start = time.time_ns()
    time.sleep(delay)  # like a node finishing its shutdown
    open(out, "w").write(f"{start} {time.time_ns()}")
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
open(out + ".ready", "w").close()
while True:
    time.sleep(0.02)
"""


def test_shutdown_stops_the_recorder_after_every_other_node(tmp_path):
    procs = NodeProcesses(describe({"record": str(tmp_path / "bag")}), tmp_path, os.environ)
    for name, delay in (("recorder", 0.0), ("policy_node", 0.5), ("arm_driver", 0.3)):
        procs.procs[name] = subprocess.Popen(
            [sys.executable, "-c", STOPPING, str(tmp_path / name), str(delay)],
            start_new_session=True)
    for name in procs.procs:
        deadline = time.monotonic() + 30
        while not (tmp_path / f"{name}.ready").exists():
            assert time.monotonic() < deadline, f"{name} never started"
            time.sleep(0.02)
    procs.shutdown(last=[RECORDER.name])
    assert all(p.returncode == 0 for p in procs.procs.values())  # SIGINT was enough
    times = {n: [int(t) for t in (tmp_path / n).read_text().split()] for n in procs.procs}
    others_done = max(times["policy_node"][1], times["arm_driver"][1])
    assert times["recorder"][0] >= others_done  # its SIGINT came after they had exited


# -- the recorder node over DDS ------------------------------------------------------------------


class Publisher:
    """A test node in its own context publishing on steering topics with the graph's QoS."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"pub_{os.getpid()}", context=self.context)
        self.instruction = self.node.create_publisher(String, qos.INSTRUCTION,
                                                      qos.LATCHED)
        self.margin = self.node.create_publisher(Float32, qos.Q_MARGIN, qos.COMMAND)
        self.joints = self.node.create_publisher(JointState, qos.JOINT_STATES,
                                                 qos.COMMAND)
        self.chatter = self.node.create_publisher(String, "test/chatter", qos.COMMAND)

    def wait_for_recorder(self, timeout: float = 60.0, topics=(qos.Q_MARGIN,)) -> None:
        deadline = time.monotonic() + timeout
        while any(self.node.count_subscribers(t) < 1 for t in topics):
            assert time.monotonic() < deadline, "the recorder never subscribed"
            time.sleep(0.05)
        time.sleep(0.3)  # discovery in the other direction

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def start_recorder(cmd: list[str], path: Path, log: Path, *params: str) -> subprocess.Popen:
    args = [*cmd, "--ros-args", "-p", f"path:={path}", "-p", "flush_period_s:=0.2"]
    for param in params:
        args += ["-p", param]
    with log.open("wb") as handle:
        return subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT,
                                env=os.environ.copy())


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_recorder_finalises_the_bag_on_sigint_and_sigterm(tmp_path, stop):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    pub = Publisher()
    pub.instruction.publish(String(data="put the carrot on the plate"))  # before: latched
    bag = tmp_path / "bag"
    # steering topics and one whose type the recorder learns from its publisher
    proc = start_recorder([str(BIN / "vgps-recorder")], bag, tmp_path / "recorder.log",
                          "topics:=[vgps/instruction, vgps/q_margin, joint_states, test/chatter]")
    try:
        pub.wait_for_recorder(topics=(qos.Q_MARGIN, qos.JOINT_STATES, "test/chatter"))
        for i in range(20):
            pub.margin.publish(Float32(data=float(i)))
            pub.joints.publish(JointState(name=["waist"], position=[0.01 * i]))
            pub.chatter.publish(String(data=f"chat {i}"))
            time.sleep(0.01)
        time.sleep(0.5)
        proc.send_signal(stop)
        assert proc.wait(timeout=30) == 0, (tmp_path / "recorder.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.close()
    result = read_bag(bag)
    assert result.problems == []
    assert result.counts == {"/vgps/instruction": 1, "/vgps/q_margin": 20,
                             "/joint_states": 20, "/test/chatter": 20}
    assert [m.data for m in result.on("/test/chatter")] == [f"chat {i}" for i in range(20)]
    assert [m.data for m in result.on("/vgps/q_margin")] == [float(i) for i in range(20)]
    assert result.on("/vgps/instruction")[0].data == "put the carrot on the plate"
    assert np.allclose([m.position[0] for m in result.on("/joint_states")],
                       0.01 * np.arange(20))
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    listed = {t["topic_metadata"]["name"]: t for t in info["topics_with_message_count"]}
    assert {n: t["message_count"] for n, t in listed.items()} == result.counts
    [offered] = listed["/vgps/instruction"]["topic_metadata"]["offered_qos_profiles"]
    assert (offered["reliability"], offered["durability"]) == ("reliable", "transient_local")
    assert qos.LATCHED.durability == DurabilityPolicy.TRANSIENT_LOCAL
    # what arrives over DDS is exact CDR: rosbags reads the recorded JointStates (empty arrays)
    store = get_typestore(Stores.EMPTY)
    with Reader(bag) as reader:
        [conn] = [c for c in reader.connections if c.topic == "/joint_states"]
        store.register(get_types_from_msg(conn.msgdef.data, conn.msgtype))
        positions = [store.deserialize_cdr(raw, conn.msgtype).position[0]
                     for _, _, raw in reader.messages([conn])]
    assert np.allclose(positions, 0.01 * np.arange(20))


def test_sigkilled_recorder_leaves_a_readable_bag(tmp_path):
    pub = Publisher()
    bag = tmp_path / "bag"
    proc = start_recorder([sys.executable, "-m", "vgps.bags.recorder_node"], bag,
                          tmp_path / "recorder.log")
    try:
        pub.wait_for_recorder()
        for i in range(30):
            pub.margin.publish(Float32(data=float(i)))
            time.sleep(0.01)
        time.sleep(1.0)  # > flush_period_s: on disk
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.close()
    result = read_bag(bag)
    assert [m.data for m in result.on("/vgps/q_margin")] == [float(i) for i in range(30)]
    assert any("summary" in p for p in result.problems), result.problems
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["message_count"] == 30  # metadata.yaml as of the last flush


# -- vgps up --record ----------------------------------------------------------------------------


@pytest.mark.timeout(420)
def test_vgps_up_records_a_sim_episode(critic_dir, tmp_path):
    out, bag = tmp_path / "up", tmp_path / "bag"
    out.mkdir()
    cmd = [str(BIN / "vgps"), "up", f"critic:={critic_dir}", "--task", "carrot_on_plate",
           "--episodes", "1", "--timeout", "300", "--out", str(out), "--quiet",
           "--record", str(bag), "--set", "arm_driver.image_size=64",
           "--set", "arm_driver.max_steps=8"]
    with (out / "vgps_up.log").open("wb") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=360,
                              env=os.environ.copy(), check=False)
    text = (out / "vgps_up.log").read_text(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    [episode] = summary["episodes"]
    steps = episode["steps"]
    assert 1 <= steps <= 8
    pids = json.loads((out / "processes.json").read_text())
    assert "recorder" in pids

    result = read_bag(bag)
    assert result.problems == []  # finalised: stopped with SIGINT after the other nodes
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    listed = {t["topic_metadata"]["name"]: t["message_count"]
              for t in info["topics_with_message_count"]}
    assert listed == result.counts and info["message_count"] == len(result.messages)
    assert summary["bag"]["messages"] == result.counts
    custom = info["custom_data"]  # the run, for vgps replay
    assert Path(custom["vgps.critic"]) == Path(critic_dir).resolve()
    assert custom["vgps.policy"] == "sim" and custom["vgps.k"] == "10"

    events = result.on("/vgps/episode")
    assert events[0].event == "started" and events[-1].event in TERMINAL
    assert [e.step for e in events[1:]] == list(range(1, steps + 1))
    assert events[-1].success == episode["success"]

    candidates = result.on("/vgps/candidates")
    stamps = [stamp_to_ns(m.header.stamp) for m in candidates]
    assert len(set(stamps)) == len(stamps) >= steps  # one candidates message per observation
    assert all(m.k == 10 and len(m.actions) == m.k * m.horizon * m.action_dim
               for m in candidates)
    scored = result.on("/vgps/scored")
    assert {stamp_to_ns(m.header.stamp) for m in scored} <= set(stamps)
    assert len(scored) <= len(candidates)
    executed = [m for m in result.on("/vgps/selected") if m.reason in EXECUTING]
    per_stamp = Counter(stamp_to_ns(m.header.stamp) for m in executed)
    assert set(per_stamp) <= set(stamps) and len(per_stamp) >= steps
    print(f"{steps} steps: {len(candidates)} candidates, {len(scored)} scored, "
          f"{len(executed)} executed decisions; counts {result.counts}")
    if len(candidates) == steps:  # no observation was republished: one of each per step
        assert len(executed) == steps and list(per_stamp.values()) == [1] * steps

    images = result.on("/camera/image_raw")
    assert images and (images[0].height, images[0].width, images[0].encoding) == (64, 64,
                                                                                   "rgb8")
    assert result.on("/vgps/instruction")[0].data == events[0].instruction
    assert result.counts["/joint_states"] >= 1 and result.counts["/diagnostics"] >= 1
    assert f"bag {bag}" in text
