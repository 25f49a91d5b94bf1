"""Writing rosbag2 bags (MCAP storage) from pure Python: no rosbag2, no ``ros2 bag``.

:class:`BagWriter` makes a standard rosbag2 bag directory: ``<path>/<name>_0.mcap`` (profile
``ros2``, ``ros2msg`` schemas holding the complete message definitions, ``cdr`` messages, zstd or
lz4 compressed chunks) and ``<path>/metadata.yaml`` (rosbag2 format version 9, with per-topic
message counts and offered QoS profiles). ``metadata.yaml`` is written when the bag opens, after
every :meth:`BagWriter.flush` and at :meth:`BagWriter.close`; chunks go to the file as soon as
they are complete, so a writer killed with SIGKILL leaves a bag readable up to its last chunk.
The layout is rosbag2's own (its MCAP storage plugin), for ``ros2 bag`` and Foxglove; the tests
read the bags back with ``rosbags`` and the ``mcap`` library.

:func:`read_bag` / :func:`iter_messages` read a bag directory or a bare ``.mcap`` file into
rclpy message objects, in log-time order. Reading is tolerant (:mod:`vgps.bags.mcap_scan`): a
truncated
or damaged file gives every message of its intact chunks plus ``problems`` describing what was
lost; :class:`BagError` is raised only when nothing is readable (no such path, not an MCAP file).

Usage::

    from rclpy.serialization import serialize_message
    with BagWriter("out/run1") as bag:
        bag.write("/vgps/selected", "vgps_interfaces/msg/SelectedAction",
                  serialize_message(msg), log_time_ns=time.time_ns())

    result = read_bag("out/run1")
    result.counts        # {'/vgps/selected': 1}
    result.problems      # [] for a bag that was closed
    for item in iter_messages("out/run1", topics=["/vgps/selected"]):
        item.topic, item.msgtype, item.log_time_ns, item.message
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from vgps import __version__
from vgps.bags.definitions import DefinitionError, full_definition, normalize, type_hash
from vgps.bags.reader import METADATA_FILE, BagError

__all__ = ["COMPRESSIONS", "RECORDER_PARAMETERS", "BagWriter", "qos_to_dict"]

METADATA_VERSION = 9
COMPRESSIONS = ("zstd", "lz4", "none")
DEFAULT_CHUNK_SIZE = 512 * 1024
# The recorder node's parameters (vgps.bags.recorder_node) and their defaults, which the graph
# description also passes; None = the node's own default (topics: the steering topics), left out
# of the parameter file.
RECORDER_PARAMETERS: dict[str, Any] = {"path": "", "topics": None,
                                       "chunk_size": DEFAULT_CHUNK_SIZE, "compression": "zstd",
                                       "flush_period_s": 2.0, "run_info": "{}"}


# -- QoS ------------------------------------------------------------------------------------------

_QOS_KEYS = ("history", "depth", "reliability", "durability", "deadline", "lifespan",
             "liveliness", "liveliness_lease_duration", "avoid_ros_namespace_conventions")


def _duration(value: Any) -> dict[str, int]:
    if isinstance(value, Mapping):
        return {"sec": int(value["sec"]), "nsec": int(value["nsec"])}
    ns = int(getattr(value, "nanoseconds", value))
    return {"sec": ns // 1_000_000_000, "nsec": ns % 1_000_000_000}


def _policy(value: Any) -> str:
    return str(getattr(value, "name", value)).lower()


def qos_to_dict(profile: Any) -> dict[str, Any]:
    """An rclpy ``QoSProfile`` (or such a dict) in rosbag2's version-9 metadata form.

    Policies become lower-case names (``keep_last``, ``reliable``, ``transient_local``,
    ``automatic``), durations ``{sec, nsec}``.
    """
    get = profile.get if isinstance(profile, Mapping) else lambda key: getattr(profile, key)
    try:
        return {
            "history": _policy(get("history")), "depth": int(get("depth")),
            "reliability": _policy(get("reliability")), "durability": _policy(get("durability")),
            "deadline": _duration(get("deadline")), "lifespan": _duration(get("lifespan")),
            "liveliness": _policy(get("liveliness")),
            "liveliness_lease_duration": _duration(get("liveliness_lease_duration")),
            "avoid_ros_namespace_conventions": bool(get("avoid_ros_namespace_conventions")),
        }
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise BagError(f"not a QoS profile ({exc!r}); give an rclpy QoSProfile or a dict with "
                       f"{', '.join(_QOS_KEYS)}") from None


# -- writing --------------------------------------------------------------------------------------


class _DirectFile:
    """An unbuffered output file for ``mcap.writer.Writer``: every chunk reaches the OS at once."""

    def __init__(self, path: Path):
        self._raw = open(path, "xb", buffering=0)  # noqa: SIM115 - closed by BagWriter.close

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[self._raw.write(view):]
        return len(data)

    def tell(self) -> int:
        return self._raw.tell()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._raw.close()


@dataclasses.dataclass
class _Topic:
    channel_id: int
    msgtype: str
    qos: list[dict[str, Any]]
    type_hash: str
    count: int = 0


class BagWriter:
    """Writes one rosbag2 bag directory (MCAP storage); see the module docstring.

    Args:
        path: the bag directory; created, and must not exist or be empty (as with rosbag2).
        chunk_size: uncompressed bytes per chunk; a killed writer loses at most the chunk in
            progress (and what :meth:`flush` has not written yet).
        compression: ``zstd``, ``lz4`` or ``none`` (per chunk).
        name: file name stem (default: the directory name), the file is ``<name>_0.mcap``.
        custom_data: ``custom_data`` of metadata.yaml (string keys and values).

    Raises:
        BagError: the directory exists and is not empty, or a bad argument.
    """

    def __init__(self, path: str | os.PathLike, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 compression: str = "zstd", name: str | None = None,
                 custom_data: Mapping[str, str] | None = None):
        from mcap.writer import CompressionType, Writer

        if compression not in COMPRESSIONS:
            raise BagError(f"compression={compression!r}: use one of {COMPRESSIONS}")
        if chunk_size < 1024:
            raise BagError(f"chunk_size={chunk_size}: use at least 1024 bytes")
        self.path = Path(path)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise BagError(f"{self.path} already exists and is not an empty directory: "
                           "record into a new path")
        self.path.mkdir(parents=True, exist_ok=True)
        self.file = self.path / f"{name or self.path.resolve().name}_0.mcap"
        self.custom_data = dict(custom_data or {})
        self.ros_distro = os.environ.get("ROS_DISTRO", "")
        self._topics: dict[str, _Topic] = {}
        self._schemas: dict[str, int] = {}
        self._start: int | None = None
        self._end = 0
        self._closed = False
        self._stream = _DirectFile(self.file)
        kind = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4,
                "none": CompressionType.NONE}[compression]
        self._writer = Writer(self._stream, chunk_size=chunk_size, compression=kind)
        self._writer.start(profile="ros2", library=f"vgps {__version__} (mcap python)")
        self.write_metadata()

    # -- topics and messages ------------------------------------------------------------------

    def add_topic(self, topic: str, msgtype: str, offered_qos: Iterable[Any] = ()) -> None:
        """Registers a topic (done by :meth:`write` for a topic seen first).

        Args:
            topic: absolute topic name (``/vgps/selected``).
            msgtype: ``pkg/msg/Name``; its definition must be installed (ament index).
            offered_qos: the publishers' QoS profiles (rclpy ``QoSProfile`` or dicts).

        Raises:
            BagError: the topic has another type already, or the type is not installed.
        """
        self._check_open()
        msgtype = self._normalize(msgtype)
        known = self._topics.get(topic)
        if known is not None:
            if known.msgtype != msgtype:
                raise BagError(f"{topic}: recorded as {known.msgtype}, cannot add {msgtype}")
            return
        if msgtype not in self._schemas:
            try:
                definition = full_definition(msgtype)
            except DefinitionError as exc:
                raise BagError(f"{topic}: {exc}") from None
            self._schemas[msgtype] = self._writer.register_schema(
                name=msgtype, encoding="ros2msg", data=definition.encode("utf-8"))
        qos = [qos_to_dict(q) for q in offered_qos]
        digest = type_hash(msgtype)
        metadata = {"offered_qos_profiles": _dump_qos(qos), "topic_type_hash": digest}
        channel = self._writer.register_channel(topic=topic, message_encoding="cdr",
                                                schema_id=self._schemas[msgtype],
                                                metadata=metadata)
        self._topics[topic] = _Topic(channel, msgtype, qos, digest)

    def write(self, topic: str, msgtype: str, cdr_bytes: bytes, log_time_ns: int,
              publish_time_ns: int | None = None) -> None:
        """Appends one CDR-serialised message (``rclpy.serialization.serialize_message``)."""
        self._check_open()
        entry = self._topics.get(topic)
        if entry is None:
            self.add_topic(topic, msgtype)
            entry = self._topics[topic]
        elif entry.msgtype != msgtype and entry.msgtype != self._normalize(msgtype):
            raise BagError(f"{topic}: recorded as {entry.msgtype}, got a {msgtype}")
        log_time_ns = int(log_time_ns)
        self._writer.add_message(channel_id=entry.channel_id, log_time=log_time_ns,
                                 data=bytes(cdr_bytes), sequence=entry.count,
                                 publish_time=int(publish_time_ns if publish_time_ns is not None
                                                  else log_time_ns))
        entry.count += 1
        self._start = log_time_ns if self._start is None else min(self._start, log_time_ns)
        self._end = max(self._end, log_time_ns)

    @property
    def counts(self) -> dict[str, int]:
        """Messages written per topic."""
        return {name: t.count for name, t in self._topics.items()}

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self._topics.values())

    # -- flushing and closing ---------------------------------------------------------------------

    def flush(self) -> None:
        """Writes the chunk in progress and brings metadata.yaml up to date with the file."""
        self._check_open()
        self._writer.flush()
        self.write_metadata()

    def close(self) -> None:
        """Finishes the MCAP file (summary, indexes, footer) and writes metadata.yaml."""
        if self._closed:
            return
        self._closed = True
        try:
            info = self.metadata()["rosbag2_bagfile_information"]
            self._writer.add_metadata("rosbag2", {
                "serialized_metadata": yaml.safe_dump(info, sort_keys=False),
                "ROS_DISTRO": self.ros_distro})
            self._writer.finish()
        finally:
            self._stream.close()
            self.write_metadata()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def metadata(self) -> dict[str, Any]:
        """The metadata.yaml content for what was written so far."""
        start = self._start or 0
        duration = self._end - start if self._start is not None else 0
        count = self.message_count
        return {"rosbag2_bagfile_information": {
            "version": METADATA_VERSION,
            "storage_identifier": "mcap",
            "duration": {"nanoseconds": duration},
            "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": count,
            "topics_with_message_count": [
                {"topic_metadata": {"name": name, "type": t.msgtype,
                                    "serialization_format": "cdr",
                                    "offered_qos_profiles": t.qos,
                                    "type_description_hash": t.type_hash},
                 "message_count": t.count}
                for name, t in self._topics.items()],
            "compression_format": "",
            "compression_mode": "",
            "relative_file_paths": [self.file.name],
            "files": [{"path": self.file.name,
                       "starting_time": {"nanoseconds_since_epoch": start},
                       "duration": {"nanoseconds": duration}, "message_count": count}],
            "custom_data": dict(self.custom_data) or None,
            "ros_distro": self.ros_distro,
        }}

    def write_metadata(self) -> None:
        """(Re)writes metadata.yaml atomically."""
        target = self.path / METADATA_FILE
        tmp = target.with_name(f".{METADATA_FILE}.tmp")
        tmp.write_text(yaml.safe_dump(self.metadata(), sort_keys=False), encoding="utf-8")
        os.replace(tmp, target)

    def _check_open(self) -> None:
        if self._closed:
            raise BagError(f"bag {self.path} is closed")

    @staticmethod
    def _normalize(msgtype: str) -> str:
        try:
            return normalize(msgtype)
        except DefinitionError as exc:
            raise BagError(str(exc)) from None


def _dump_qos(qos: Sequence[Mapping[str, Any]]) -> str:
    return yaml.safe_dump(list(qos), sort_keys=False).strip() if qos else ""

