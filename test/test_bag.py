"""rosbag2 MCAP bags: written by :class:`vgps.bags.writer.BagWriter` from rclpy messages, read
back by our reader, by the ``mcap`` library and by ``rosbags`` (registering our types from the
definitions embedded in the file); a damaged bag directory and a writer killed mid-write read
tolerantly. The scanner itself on damaged bytes, without ROS, is in test_mcap_scan.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Float32, Float32MultiArray, Header, String  # noqa: E402

from vgps.bags import (  # noqa: E402
    BagError,
    BagReader,
    BagWriter,
    iter_messages,
    mcap_scan,
    qos_to_dict,
    read_bag,
)
from vgps.bags.definitions import SEPARATOR, full_definition, msg_text, type_hash  # noqa: E402
from vgps_interfaces.msg import (  # noqa: E402
    ActionCandidates,
    EpisodeStatus,
    ScoredCandidates,
    SelectedAction,
)
from vgps_ros import qos  # noqa: E402

T0 = 1_700_000_000_000_000_000


def header(i: int) -> Header:
    return Header(stamp=Time(sec=1000 + i, nanosec=7 * i), frame_id="base")


def candidates(i: int) -> ActionCandidates:
    actions = np.arange(3 * 2 * 7, dtype=np.float32) * 0.01 + i
    return ActionCandidates(header=header(i), step=i, instruction="put carrot on plate",
                            policy_name="sim", k=3, horizon=2, action_dim=7,
                            actions=actions.tolist(), sample_ms=1.5)


def steering_messages(i: int) -> dict[str, tuple[str, object]]:
    """One real message of every steering type (values depend on ``i``)."""
    rng = np.random.default_rng(i)
    image = Image(header=header(i), height=6, width=8, encoding="rgb8", step=24,
                  data=rng.integers(0, 256, 6 * 24, dtype=np.uint8).tobytes())
    diag = DiagnosticArray(header=header(i), status=[DiagnosticStatus(
        level=DiagnosticStatus.WARN, name="vgps: selector_node", message="fallback",
        values=[KeyValue(key="mode", value="fallback"), KeyValue(key="i", value=str(i))])])
    return {
        "/" + qos.CAMERA: ("sensor_msgs/msg/Image", image),
        "/" + qos.INSTRUCTION: ("std_msgs/msg/String", String(data=f"instruction {i}")),
        "/" + qos.CANDIDATES: ("vgps_interfaces/msg/ActionCandidates", candidates(i)),
        "/" + qos.SCORED: ("vgps_interfaces/msg/ScoredCandidates", ScoredCandidates(
            header=header(i), candidates=candidates(i), q_values=[0.5 + i, -1.25, 3.0],
            critic_id="sim@1", encode_ms=2.0, score_ms=0.25, pre_encoded=True)),
        "/" + qos.SELECTED: ("vgps_interfaces/msg/SelectedAction", SelectedAction(
            header=header(i), step=i, index=2, q_value=3.0, q_margin=2.5, num_actions=1,
            action_dim=7, actions=[0.01, -0.02, 0.0, 0.0, 0.0, 0.1, 1.0], reason="argmax",
            detail="", beta=0.0, k=3)),
        "/" + qos.EPISODE: ("vgps_interfaces/msg/EpisodeStatus", EpisodeStatus(
            header=header(i), episode=0, task="carrot_on_plate", instruction="put carrot",
            step=i, event="step" if i else "started", success=False)),
        # velocity and effort filled: for empty float64 sequences rclpy's serialize_message
        # returns 8 bytes more than the CDR needs (a size estimate), which rosbags refuses;
        # messages received over DDS (the recorder's) are exact, see test_record.py
        "/" + qos.JOINT_STATES: ("sensor_msgs/msg/JointState", JointState(
            header=header(i), name=["waist", "shoulder"], position=[0.1 * i, -0.2],
            velocity=[0.0, 0.5], effort=[1.0, 2.0])),
        "/" + qos.Q_VALUES: ("std_msgs/msg/Float32MultiArray",
                                 Float32MultiArray(data=[0.5 + i, -1.25, 3.0])),
        "/" + qos.Q_SELECTED: ("std_msgs/msg/Float32", Float32(data=3.0 + i)),
        "/" + qos.Q_MARGIN: ("std_msgs/msg/Float32", Float32(data=2.5)),
        qos.DIAGNOSTICS: ("diagnostic_msgs/msg/DiagnosticArray", diag),
    }


ROUNDS = 4


def write_steering_bag(path: Path, rounds: int = ROUNDS, **kwargs) -> list[tuple]:
    """A bag with ``rounds`` messages of every steering type; returns what was written."""
    written = []
    with BagWriter(path, **kwargs) as bag:
        bag.add_topic("/" + qos.SELECTED, "vgps_interfaces/msg/SelectedAction",
                      [qos.COMMAND])
        bag.add_topic("/" + qos.CAMERA, "sensor_msgs/msg/Image", [qos.SENSOR])
        t = T0
        for i in range(rounds):
            for topic, (msgtype, msg) in steering_messages(i).items():
                t += 1_000_000
                bag.write(topic, msgtype, serialize_message(msg), t, publish_time_ns=t - 5)
                written.append((topic, msgtype, t, msg))
    return written


@pytest.fixture(scope="module")
def steering_bag(tmp_path_factory) -> tuple[Path, list[tuple]]:
    path = tmp_path_factory.mktemp("bags") / "steering"
    return path, write_steering_bag(path, chunk_size=4096)


def test_our_reader_round_trips_every_steering_type(steering_bag):
    path, written = steering_bag
    result = read_bag(path)
    assert result.problems == []
    assert result.counts == {topic: ROUNDS for topic in steering_messages(0)}
    assert {n: t.msgtype for n, t in result.topics.items()} == {
        topic: msgtype for topic, (msgtype, _) in steering_messages(0).items()}
    assert [(m.topic, m.msgtype, m.log_time_ns) for m in result.messages] == [
        (topic, msgtype, t) for topic, msgtype, t, _ in written]
    for got, (_, _, t, msg) in zip(result.messages, written):
        assert got.message == msg, got.topic
        assert got.publish_time_ns == t - 5
    scored = result.on("/vgps/scored")
    np.testing.assert_array_equal(scored[3].q_values, np.float32([3.5, -1.25, 3.0]))
    np.testing.assert_array_equal(scored[3].candidates.actions,
                                  np.arange(42, dtype=np.float32) * 0.01 + 3)
    assert bytes(result.on("/camera/image_raw")[2].data) == bytes(
        steering_messages(2)["/camera/image_raw"][1].data)
    assert result.chunks > 1  # 4 KiB chunks: the images alone fill several
    assert [m.topic for m in iter_messages(path, topics=["/vgps/selected"])] == [
        "/vgps/selected"] * ROUNDS
    assert read_bag(result.path).counts == result.counts  # the bare .mcap file too


def test_metadata_yaml_is_rosbag2_version_9(steering_bag):
    path, written = steering_bag
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 9 and info["storage_identifier"] == "mcap"
    assert info["relative_file_paths"] == ["steering_0.mcap"]
    assert (path / "steering_0.mcap").is_file()
    assert info["message_count"] == len(written) == info["files"][0]["message_count"]
    assert info["starting_time"]["nanoseconds_since_epoch"] == written[0][2]
    assert info["duration"]["nanoseconds"] == written[-1][2] - written[0][2]
    topics = {t["topic_metadata"]["name"]: t for t in info["topics_with_message_count"]}
    assert {n: t["message_count"] for n, t in topics.items()} == read_bag(path).counts
    selected = topics["/vgps/selected"]["topic_metadata"]
    assert selected["serialization_format"] == "cdr"
    assert selected["type_description_hash"] == type_hash("vgps_interfaces/msg/SelectedAction")
    assert selected["type_description_hash"].startswith("RIHS01_")
    [qos] = selected["offered_qos_profiles"]
    assert (qos["history"], qos["depth"], qos["reliability"], qos["durability"]) == (
        "keep_last", 5, "reliable", "volatile")
    [camera_qos] = topics["/camera/image_raw"]["topic_metadata"]["offered_qos_profiles"]
    assert camera_qos["reliability"] == "best_effort"


def test_mcap_library_reads_schemas_channels_and_counts(steering_bag):
    from mcap.reader import make_reader

    path, written = steering_bag
    with (path / "steering_0.mcap").open("rb") as handle:
        reader = make_reader(handle)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
        for schema in summary.schemas.values():
            assert schema.data.decode() == full_definition(schema.name)
        channels = {c.id: c for c in summary.channels.values()}
        assert {c.message_encoding for c in channels.values()} == {"cdr"}
        counts = {channels[cid].topic: n
                  for cid, n in summary.statistics.channel_message_counts.items()}
        assert counts == {topic: ROUNDS for topic in steering_messages(0)}
        assert {i.compression for i in summary.chunk_indexes} == {"zstd"}
        assert len(summary.chunk_indexes) > 1
        data = [(c.topic, m.log_time, deserialize_message(m.data, type(original)))
                for (_, c, m), (_, _, _, original) in zip(reader.iter_messages(), written)]
    # (not the CDR bytes: rmw serialisation leaves alignment padding uninitialised)
    assert data == [(topic, t, msg) for topic, _, t, msg in written]


def test_rosbags_reads_it_with_types_from_the_embedded_definitions(steering_bag):
    from rosbags.interfaces import QosReliability
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    path, written = steering_bag
    store = get_typestore(Stores.EMPTY)  # nothing known but what the bag defines
    with Reader(path) as reader:
        assert reader.message_count == len(written)
        conns = {c.topic: c for c in reader.connections}
        for conn in conns.values():
            store.register(get_types_from_msg(conn.msgdef.data, conn.msgtype))
        for conn in conns.values():  # the definitions hash to the installed type hashes
            assert store.hash_rihs01(conn.msgtype) == type_hash(conn.msgtype) == conn.digest
        qos = conns["/vgps/selected"].ext.offered_qos_profiles
        assert [q.reliability for q in qos] == [QosReliability.RELIABLE]
        got = [(c.topic, t, store.deserialize_cdr(raw, c.msgtype))
               for c, t, raw in reader.messages()]
    assert [(topic, t) for topic, t, _ in got] == [(topic, t) for topic, _, t, _ in written]
    for (topic, _, msg), (_, _, _, original) in zip(got, written):
        if topic == "/vgps/scored":
            np.testing.assert_array_equal(msg.q_values, original.q_values)
            np.testing.assert_array_equal(msg.candidates.actions, original.candidates.actions)
            assert (msg.candidates.k, msg.candidates.horizon) == (3, 2)
        elif topic == "/camera/image_raw":
            assert bytes(msg.data) == bytes(original.data) and msg.encoding == "rgb8"
        elif topic == "/vgps/selected":
            np.testing.assert_array_equal(msg.actions, original.actions)
            assert msg.reason == "argmax" and msg.header.stamp.sec == original.header.stamp.sec
        elif topic == "/diagnostics":
            assert msg.status[0].values[1].value == original.status[0].values[1].value
        elif topic == "/vgps/episode":
            assert msg.event == original.event and msg.step == original.step


def test_definition_text_has_rosbag2s_layout():
    text = full_definition("vgps_interfaces/msg/ScoredCandidates")
    parts = text.split(f"\n{SEPARATOR}\n")
    assert parts[0] == msg_text("vgps_interfaces/msg/ScoredCandidates")
    headers = [p.split("\n", 1)[0] for p in parts[1:]]
    # sorted per message, depth first, each type once
    assert headers == ["MSG: std_msgs/Header", "MSG: builtin_interfaces/Time",
                       "MSG: vgps_interfaces/ActionCandidates"]
    assert parts[2].split("\n", 1)[1] == msg_text("builtin_interfaces/msg/Time")
    assert full_definition("std_msgs/msg/String") == msg_text("std_msgs/String")


def test_metadata_is_written_at_open_and_on_flush(tmp_path):
    path = tmp_path / "live"
    bag = BagWriter(path)
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["message_count"] == 0 and info["topics_with_message_count"] == []
    bag.write("/vgps/q_margin", "std_msgs/msg/Float32", serialize_message(Float32(data=1.0)), T0)
    bag.flush()
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["message_count"] == 1
    assert read_bag(path).counts == {"/vgps/q_margin": 1}  # flushed: on disk before close
    bag.close()
    assert read_bag(path).problems == []


def test_writer_refuses_bad_input(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BagError, match="not an empty directory"):
        BagWriter(tmp_path / "full")
    with BagWriter(tmp_path / "b") as bag:
        bag.write("/a", "std_msgs/msg/Float32", serialize_message(Float32()), T0)
        with pytest.raises(BagError, match="recorded as std_msgs/msg/Float32"):
            bag.write("/a", "std_msgs/msg/String", serialize_message(String()), T0)
        with pytest.raises(BagError, match="no_such_pkg"):
            bag.add_topic("/b", "no_such_pkg/msg/Nope")
        with pytest.raises(BagError, match="not a ROS 2 message type"):
            bag.add_topic("/c", "Float32")
    with pytest.raises(BagError, match="compression"):
        BagWriter(tmp_path / "c", compression="gzip")
    assert qos_to_dict(qos.LATCHED)["durability"] == "transient_local"


def test_lz4_and_uncompressed_bags(tmp_path):
    for compression in ("lz4", "none"):
        written = write_steering_bag(tmp_path / compression, rounds=2, compression=compression)
        result = read_bag(tmp_path / compression)
        assert result.problems == [] and len(result.messages) == len(written)


# -- damaged bags (the scanner on damaged bytes: test_mcap_scan.py) ----------------------------


def test_bag_directory_with_a_damaged_file_reports_the_metadata_mismatch(tmp_path):
    path = tmp_path / "bag"
    write_steering_bag(path, rounds=30, chunk_size=4096)
    file = path / "bag_0.mcap"
    layout = mcap_scan.scan(file)
    file.write_bytes(file.read_bytes()[:layout.chunks[2].offset + 50])
    reader = BagReader(path)
    assert any("metadata.yaml counts" in p for p in reader.problems), reader.problems
    assert any("truncated" in p for p in reader.problems)
    assert sum(t.count for t in reader.topics.values()) == sum(
        c.messages for c in layout.chunks[:2])


# -- a writer killed with SIGKILL ----------------------------------------------------------------

KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from rclpy.serialization import serialize_message
    from std_msgs.msg import String
    from vgps.bags import BagWriter

    bag = BagWriter(sys.argv[1], chunk_size=8192)
    for i in range(10**7):
        bag.write("/vgps/instruction", "std_msgs/msg/String",
                  serialize_message(String(data=f"message {i:08d} " + "x" * 200)),
                  1_700_000_000_000_000_000 + i)
        if i % 500 == 499:
            bag.flush()
            print(f"flushed {i + 1}", flush=True)
""")


def test_sigkilled_writer_leaves_a_bag_readable_to_its_last_chunk(tmp_path):
    path = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)],
                            stdout=subprocess.PIPE, text=True)
    flushed = 0
    try:
        deadline = time.monotonic() + 120
        while flushed < 3000 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            flushed = int(line.split()[1])
    finally:
        proc.kill()  # SIGKILL, mid-way through the next chunks
        proc.wait()
        proc.stdout.close()
    assert flushed >= 3000, "the writer did not get far enough"
    result = read_bag(path)
    n = len(result.messages)
    assert n >= flushed  # everything flushed before the kill, and whole chunks after it
    assert [m.message.data[:16] for m in result.messages] == [
        f"message {i:08d}" for i in range(n)]
    assert any("summary" in p for p in result.problems), result.problems
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert flushed <= info["message_count"] <= n  # metadata.yaml as of the last flush
