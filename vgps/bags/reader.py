"""Reading rosbag2 MCAP bags into rclpy messages, tolerating damage: the reading half of
:mod:`vgps.bags` (whose ``__init__`` is the public API; import from there). :class:`BagError`,
used by both halves, is defined here.

A bag directory (its ``metadata.yaml`` names the files; without one, its ``*.mcap`` files) or a
bare ``.mcap`` file is indexed with :func:`vgps.bags.mcap_scan.scan`: per-topic types and counts of
the readable messages, and ``problems`` describing what is not readable (a cut or damaged file,
``metadata.yaml`` disagreeing with the file). Messages are deserialised with
``rclpy.serialization.deserialize_message`` into the classes of the installed message packages
(``rosidl_runtime_py`` where available). :class:`BagError` is raised only when nothing
at all is readable.

Usage::

    reader = BagReader("out/run1")
    reader.topics["/vgps/selected"].count, reader.problems
    for item in reader.messages(["/vgps/selected"]):
        item.log_time_ns, item.message.reason
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from vgps.bags import mcap_scan
from vgps.bags.definitions import normalize

__all__ = ["METADATA_FILE", "BagError", "BagMessage", "BagReadResult", "BagReader", "BagTopic",
           "iter_messages", "message_class", "read_bag"]

METADATA_FILE = "metadata.yaml"


class BagError(RuntimeError):
    """A bag cannot be written, or nothing at all can be read from it."""


@dataclasses.dataclass(frozen=True)
class BagMessage:
    """One recorded message; ``message`` is the rclpy object (None when not deserialised)."""

    topic: str
    msgtype: str  # pkg/msg/Name
    log_time_ns: int
    publish_time_ns: int
    data: bytes  # CDR
    message: Any = None


@dataclasses.dataclass(frozen=True)
class BagTopic:
    """A topic of a bag as the MCAP file describes it; ``count``: readable messages."""

    name: str
    msgtype: str
    count: int
    offered_qos: list[dict[str, Any]]
    type_hash: str
    definition: str


@dataclasses.dataclass
class BagReadResult:
    """Everything :func:`read_bag` could read, and what it could not (``problems``)."""

    path: Path  # the MCAP file(s) read: the first one
    topics: dict[str, BagTopic]
    messages: list[BagMessage]
    problems: list[str]
    metadata: dict[str, Any] | None  # metadata.yaml's rosbag2_bagfile_information, if any
    chunks: int  # intact chunks read

    @property
    def counts(self) -> dict[str, int]:
        """Messages read per topic."""
        return {name: topic.count for name, topic in self.topics.items()}

    def on(self, topic: str) -> list[Any]:
        """The deserialised messages of one topic, in log-time order."""
        return [m.message for m in self.messages if m.topic == topic]


@functools.cache
def message_class(msgtype: str) -> type:
    """The rclpy class of ``pkg/msg/Name`` (``rosidl_runtime_py`` where installed).

    Raises:
        ImportError: the type's Python package is not installed here.
    """
    try:
        from rosidl_runtime_py.utilities import get_message
    except ImportError:
        package, namespace, name = normalize(msgtype).split("/")
        try:
            return getattr(importlib.import_module(f"{package}.{namespace}"), name)
        except AttributeError:
            raise ImportError(f"{package}.{namespace} has no type {name}") from None
    try:
        return get_message(normalize(msgtype))
    except (AttributeError, ValueError) as exc:
        raise ImportError(str(exc)) from None


class BagReader:
    """Opens a bag directory or a bare ``.mcap`` file and indexes it tolerantly.

    Attributes:
        files: the MCAP files, in order; ``metadata``: metadata.yaml's content (or None);
        topics: ``{name: BagTopic}``; problems: what could not be read (grows while iterating).

    Raises:
        BagError: no such path, no MCAP file, or no file that is MCAP at all.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.problems: list[str] = []
        self.metadata = None
        self.files = self._files()
        self.scans: list[mcap_scan.Scan] = []
        for file in self.files:
            try:
                self.scans.append(mcap_scan.scan(file))
            except mcap_scan.NotMcapError as exc:
                self.problems.append(str(exc))
            except OSError as exc:
                self.problems.append(f"{file}: cannot be read ({exc})")
        if not self.scans:
            raise BagError(f"nothing readable in {self.path}: " + "; ".join(self.problems))
        for scan in self.scans:
            self.problems += [f"{scan.path.name}: {p}" for p in scan.problems]
        self.topics = self._topics()
        self._check_metadata()

    def _files(self) -> list[Path]:
        if not self.path.exists():
            raise BagError(f"no bag at {self.path}: no such file or directory")
        if not self.path.is_dir():
            return [self.path]
        meta_path = self.path / METADATA_FILE
        listed: list[Path] = []
        if meta_path.is_file():
            try:
                info = yaml.safe_load(meta_path.read_text())["rosbag2_bagfile_information"]
                storage = info.get("storage_identifier", "mcap")
                if storage != "mcap":
                    raise BagError(f"{self.path}: storage {storage!r} is not supported "
                                   "(MCAP bags only)")
                self.metadata = info
                listed = [self.path / Path(p).name for p in info.get("relative_file_paths", [])]
            except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
                self.problems.append(f"{meta_path} is unreadable ({type(exc).__name__}: "
                                     f"{exc}); reading the .mcap files of the directory")
        missing = [p.name for p in listed if not p.is_file()]
        if missing:
            self.problems.append(f"metadata.yaml lists missing files {missing}")
        files = [p for p in listed if p.is_file()] or sorted(self.path.glob("*.mcap"))
        if not files:
            raise BagError(f"nothing readable in {self.path}: no .mcap file"
                           + (f" ({'; '.join(self.problems)})" if self.problems else ""))
        return files

    def _topics(self) -> dict[str, BagTopic]:
        topics: dict[str, BagTopic] = {}
        for scan in self.scans:
            for cid, channel in scan.channels.items():
                schema = scan.schemas.get(channel.schema_id)
                msgtype = schema.name if schema else ""
                count = scan.counts.get(cid, 0)
                known = topics.get(channel.topic)
                if known is not None:
                    if known.msgtype != msgtype:
                        self.problems.append(f"{channel.topic} has two types: {known.msgtype} "
                                             f"and {msgtype}; reading the first")
                    topics[channel.topic] = dataclasses.replace(known, count=known.count + count)
                    continue
                qos_text = channel.metadata.get("offered_qos_profiles", "")
                try:
                    qos = (yaml.safe_load(qos_text) or []) if qos_text else []
                except yaml.YAMLError:
                    qos = []
                    self.problems.append(f"{channel.topic}: offered_qos_profiles unreadable")
                definition = schema.data.decode("utf-8", "replace") if schema else ""
                topics[channel.topic] = BagTopic(channel.topic, msgtype, count, qos,
                                                 channel.metadata.get("topic_type_hash", ""),
                                                 definition)
            orphans = {cid: n for cid, n in scan.counts.items() if cid not in scan.channels}
            if orphans:
                self.problems.append(f"{scan.path.name}: {sum(orphans.values())} messages on "
                                     f"channels {sorted(orphans)} whose channel record was lost")
        return topics

    def _check_metadata(self) -> None:
        if not self.metadata:
            return
        try:
            listed = {t["topic_metadata"]["name"]: int(t["message_count"])
                      for t in self.metadata.get("topics_with_message_count") or []}
        except (KeyError, TypeError, ValueError):
            self.problems.append("metadata.yaml: topics_with_message_count is malformed")
            return
        read = {name: t.count for name, t in self.topics.items()}
        differ = sorted(n for n in set(listed) | set(read) if listed.get(n, 0) != read.get(n, 0))
        if differ:
            self.problems.append(
                f"metadata.yaml counts {sum(listed.values())} messages, "
                f"{sum(read.values())} are readable (differing: {', '.join(differ)}); the "
                "writer did not finish or the file is damaged")

    def messages(self, topics: Iterable[str] | None = None, *,
                 deserialize: bool = True) -> Iterator[BagMessage]:
        """The messages (of ``topics``, default all) in log-time order within each file.

        A message whose type is not importable here or that fails to deserialise is skipped and
        noted in ``problems``; ``deserialize=False`` yields the CDR bytes only.
        """
        wanted = None if topics is None else set(topics)
        for scan in self.scans:
            channels = {cid: ch for cid, ch in scan.channels.items()
                        if wanted is None or ch.topic in wanted}
            skipped: dict[str, int] = {}
            known = len(scan.problems)  # iter_raw notes chunks it cannot read again
            for raw in mcap_scan.iter_raw(scan, channels):
                channel = channels[raw.channel_id]
                schema = scan.schemas.get(channel.schema_id)
                msgtype = schema.name if schema else ""
                message = None
                if deserialize:
                    try:
                        message = _deserialize(raw.data, msgtype)
                    except Exception as exc:  # noqa: BLE001 - reported, reading goes on
                        if channel.topic not in skipped:
                            self.problems.append(f"{channel.topic}: cannot deserialise "
                                                 f"{msgtype or 'a schemaless message'} ({exc})")
                        skipped[channel.topic] = skipped.get(channel.topic, 0) + 1
                        continue
                yield BagMessage(channel.topic, msgtype, raw.log_time, raw.publish_time,
                                 raw.data, message)
            self.problems += [f"{scan.path.name}: {p}" for p in scan.problems[known:]]
            for topic, n in skipped.items():
                self.problems.append(f"{topic}: {n} messages skipped (not deserialisable)")


def _deserialize(data: bytes, msgtype: str) -> Any:
    from rclpy.serialization import deserialize_message

    return deserialize_message(data, message_class(msgtype))


def read_bag(path: str | os.PathLike, topics: Iterable[str] | None = None) -> BagReadResult:
    """Reads a whole bag (directory or ``.mcap`` file) into memory; see the module docstring.

    Raises:
        BagError: nothing is readable (no such path, not an MCAP file).
    """
    reader = BagReader(path)
    messages = sorted(reader.messages(topics), key=lambda m: m.log_time_ns)
    wanted = None if topics is None else set(topics)
    shown = {n: t for n, t in reader.topics.items() if wanted is None or n in wanted}
    return BagReadResult(path=reader.files[0], topics=shown, messages=messages,
                         problems=reader.problems, metadata=reader.metadata,
                         chunks=sum(len(s.chunks) for s in reader.scans))


def iter_messages(path: str | os.PathLike,
                  topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
    """Yields the messages of a bag one by one (log-time order), deserialised.

    What cannot be read is skipped silently here; use :class:`BagReader` to see ``problems``.

    Raises:
        BagError: nothing is readable (raised on the first ``next()``).
    """
    yield from BagReader(path).messages(topics)
