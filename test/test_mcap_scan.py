"""The tolerant MCAP scanner (:mod:`vgps.bags.mcap_scan`) on plain bytes: no ROS needed.

Files are written with the ``mcap`` library (the ros2 profile, opaque payloads), checked against
that library's own reader, then damaged (cut, garbage, zeroed) and scanned again: every intact
chunk must still be read and every damage named. The same files through rclpy and rosbags, and
a recorder killed mid-write, are in test_bag.py (the ``ros`` tier).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer

from vgps.bags import BagError, BagReader, iter_messages, mcap_scan, read_bag

T0 = 1_700_000_000_000_000_000
TOPICS = {  # topic: (schema name, payload bytes); random payloads do not compress
    "/camera/image_raw": ("sensor_msgs/msg/Image", 600),
    "/vgps/candidates": ("vgps_interfaces/msg/ActionCandidates", 180),
    "/vgps/selected": ("vgps_interfaces/msg/SelectedAction", 60),
    "/vgps/instruction": ("std_msgs/msg/String", 24),
}
COMPRESSION = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4,
               "none": CompressionType.NONE}

Written = list[tuple[str, int, bytes]]  # (topic, log time ns, payload), in write order


def write_mcap(file: Path, rounds: int, chunk_size: int = 4096,
               compression: str = "zstd") -> Written:
    """An MCAP file of ``rounds`` messages on every topic; returns what was written."""
    rng = np.random.default_rng(rounds)
    written: Written = []
    with file.open("wb") as handle:
        writer = Writer(handle, chunk_size=chunk_size, compression=COMPRESSION[compression])
        writer.start(profile="ros2", library="test_mcap_scan")
        channels = {}
        for topic, (schema, _) in TOPICS.items():
            sid = writer.register_schema(schema, "ros2msg", f"# {schema}\n".encode())
            channels[topic] = writer.register_channel(
                topic, "cdr", sid, {"offered_qos_profiles": "", "topic_type_hash": "RIHS01_x"})
        t = T0
        for i in range(rounds):
            for topic, (_, size) in TOPICS.items():
                t += 1_000_000
                data = i.to_bytes(4, "little") + rng.integers(0, 256, size, np.uint8).tobytes()
                writer.add_message(channels[topic], t, data, publish_time=t - 5, sequence=i)
                written.append((topic, t, data))
        writer.finish()
    return written


def raw_messages(result: mcap_scan.Scan) -> Written:
    """What the scanner yields, as (topic, log time, payload)."""
    return [(result.channels[m.channel_id].topic, m.log_time, m.data)
            for m in mcap_scan.iter_raw(result)]


@pytest.fixture(scope="module")
def long_file(tmp_path_factory) -> tuple[bytes, mcap_scan.Scan, Written]:
    """A closed file of many chunks: its bytes, its chunk layout and what was written."""
    file = tmp_path_factory.mktemp("mcap") / "long.mcap"
    written = write_mcap(file, rounds=30)
    layout = mcap_scan.scan(file)
    assert len(layout.chunks) >= 8 and layout.problems == [] and layout.footer
    return file.read_bytes(), layout, written


def scan_damaged(tmp_path: Path, data: bytes) -> tuple[mcap_scan.Scan, Written]:
    file = tmp_path / "damaged.mcap"
    file.write_bytes(data)
    result = mcap_scan.scan(file)
    return result, raw_messages(result)


def expected_chunks(layout: mcap_scan.Scan, written: Written, chunks: list[int]) -> Written:
    """The messages of ``chunks`` (indexes into the layout of the intact file)."""
    n_before = [sum(c.messages for c in layout.chunks[:i]) for i in range(len(layout.chunks))]
    return [w for i in chunks for w in
            written[n_before[i]:n_before[i] + layout.chunks[i].messages]]


def test_scan_of_an_intact_file_agrees_with_the_mcap_library(long_file):
    data, layout, written = long_file
    assert (layout.profile, layout.library) == ("ros2", "test_mcap_scan")
    assert layout.size == len(data) and layout.loose == []
    assert {c.topic: layout.schemas[c.schema_id].name for c in layout.channels.values()} == {
        topic: schema for topic, (schema, _) in TOPICS.items()}
    assert {c.message_encoding for c in layout.channels.values()} == {"cdr"}
    assert layout.message_count == len(written) == sum(c.messages for c in layout.chunks)
    assert raw_messages(layout) == written
    ours = list(mcap_scan.iter_raw(layout))
    assert [m.publish_time for m in ours] == [t - 5 for _, t, _ in written]
    with (layout.path).open("rb") as handle:
        reader = make_reader(handle)
        theirs = [(c.topic, m.log_time, m.data) for _, c, m in reader.iter_messages()]
        summary = reader.get_summary()
    assert theirs == written
    assert sorted((c.offset, c.length) for c in layout.chunks) == sorted(
        (i.chunk_start_offset + 9, i.chunk_length - 9) for i in summary.chunk_indexes)


def test_iter_raw_filters_channels(long_file):
    _, layout, written = long_file
    [selected] = [cid for cid, c in layout.channels.items() if c.topic == "/vgps/selected"]
    got = [(m.log_time, m.data) for m in mcap_scan.iter_raw(layout, channels=[selected])]
    assert got == [(t, d) for topic, t, d in written if topic == "/vgps/selected"]


@pytest.mark.parametrize("compression", ["lz4", "none"])
def test_lz4_and_uncompressed_chunks(tmp_path, compression):
    file = tmp_path / f"{compression}.mcap"
    written = write_mcap(file, rounds=6, compression=compression)
    result = mcap_scan.scan(file)
    assert result.problems == [] and len(result.chunks) > 1
    assert raw_messages(result) == written


def test_reader_without_deserialising_needs_no_ros(long_file, tmp_path):
    data, _, written = long_file
    (tmp_path / "bag.mcap").write_bytes(data)
    reader = BagReader(tmp_path / "bag.mcap")
    assert {name: t.count for name, t in reader.topics.items()} == {topic: 30 for topic in TOPICS}
    got = [(m.topic, m.log_time_ns, m.data) for m in reader.messages(deserialize=False)]
    assert got == written and reader.problems == []


def test_truncated_in_a_chunk(tmp_path, long_file):
    data, layout, written = long_file
    k = len(layout.chunks) // 2
    cut = layout.chunks[k].offset + layout.chunks[k].length // 2
    result, got = scan_damaged(tmp_path, data[:cut])
    assert got == expected_chunks(layout, written, list(range(k)))
    [problem] = result.problems
    assert f"truncated at byte {cut}" in problem and "summary missing" in problem
    assert f"from {k} complete chunks" in problem
    assert not result.footer


def test_garbage_after_a_complete_file(tmp_path, long_file):
    data, _, written = long_file
    result, got = scan_damaged(tmp_path, data + b"\xde\xad\xbe\xef" * 100)
    assert got == written
    [problem] = result.problems
    assert "400 bytes of unexpected data" in problem


def test_truncated_then_garbage(tmp_path, long_file):
    data, layout, written = long_file
    k = 3
    cut = layout.chunks[k].offset + 10
    garbage = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    result, got = scan_damaged(tmp_path, data[:cut] + garbage)
    assert got == expected_chunks(layout, written, list(range(k)))
    assert any("summary missing" in p for p in result.problems), result.problems


def test_zeroed_region_loses_only_the_chunks_it_hits(tmp_path, long_file):
    data, layout, written = long_file
    k = 4
    others = [i for i in range(len(layout.chunks)) if i != k]
    start = layout.chunks[k].offset - 9  # the record header of chunk k and some of its data
    damaged = bytearray(data)
    damaged[start:start + 100] = bytes(100)
    result, got = scan_damaged(tmp_path, bytes(damaged))
    assert got == expected_chunks(layout, written, others)
    assert any(f"bytes {start}-" in p and "unreadable" in p for p in result.problems)
    damaged = bytearray(data)  # inside the compressed data of chunk k: fails its checks
    inside = layout.chunks[k].offset + layout.chunks[k].length // 2
    damaged[inside:inside + 64] = bytes(64)
    result, got = scan_damaged(tmp_path, bytes(damaged))
    assert got == expected_chunks(layout, written, others)
    assert any(f"chunk at byte {start}" in p and "damaged" in p for p in result.problems)


def test_not_mcap_is_a_clear_error(tmp_path):
    (tmp_path / "text.mcap").write_text("this is not an MCAP file")
    with pytest.raises(mcap_scan.NotMcapError, match="not an MCAP file"):
        mcap_scan.scan(tmp_path / "text.mcap")
    with pytest.raises(BagError, match="not an MCAP file"):
        read_bag(tmp_path / "text.mcap")
    (tmp_path / "empty.mcap").write_bytes(b"")
    with pytest.raises(mcap_scan.NotMcapError, match="too short"):
        mcap_scan.scan(tmp_path / "empty.mcap")
    with pytest.raises(BagError, match="too short"):
        read_bag(tmp_path / "empty.mcap")
    with pytest.raises(BagError, match="no bag at"):
        read_bag(tmp_path / "missing")
    (tmp_path / "dir").mkdir()
    with pytest.raises(BagError, match=r"no \.mcap file"):
        read_bag(tmp_path / "dir")
    with pytest.raises(BagError, match="not an MCAP file"):
        list(iter_messages(tmp_path / "text.mcap"))
