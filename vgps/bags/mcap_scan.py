"""Tolerant MCAP reading: every message of every intact chunk, and a list of what was not.

A recorder that was killed leaves an MCAP file without summary or footer, possibly ending inside
a chunk; a disk problem can overwrite a region with zeros or garbage. Standard readers stop at
the first damage. :func:`scan` walks the records from the start instead: chunks are decompressed
and checked (length, CRC) one by one; a damaged chunk is skipped, and after an unreadable region
the scan re-synchronises on the next intact chunk (or the data-end/footer records). Whatever was
unreadable is described in ``Scan.problems``; nothing raises except a file that is not MCAP at
all (:class:`NotMcapError`). :func:`iter_raw` then yields the messages in log-time order, reading
one chunk at a time. Pure Python (``zstandard``, ``lz4``); no ROS.

Usage::

    result = scan("bag/bag_0.mcap")
    result.problems        # ['file truncated at byte 81234: ...']
    for msg in iter_raw(result):
        result.channels[msg.channel_id].topic, msg.log_time, msg.data
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import mmap
import re
import struct
import zlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import BinaryIO

MAGIC = b"\x89MCAP0\r\n"
HEADER, FOOTER, SCHEMA, CHANNEL, MESSAGE, CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
STATISTICS, METADATA, DATA_END = 0x0B, 0x0C, 0x0F
NAMES = {0x01: "header", 0x02: "footer", 0x03: "schema", 0x04: "channel", 0x05: "message",
         0x06: "chunk", 0x07: "message index", 0x08: "chunk index", 0x09: "attachment",
         0x0A: "attachment index", 0x0B: "statistics", 0x0C: "metadata", 0x0D: "metadata index",
         0x0E: "summary offset", 0x0F: "data end"}
COMPRESSIONS = ("", "zstd", "lz4")
_RESYNC = re.compile(rb"[\x02\x06\x0f]")
_CHUNK_FIXED = 8 + 8 + 8 + 4 + 4 + 8  # times, uncompressed size, crc, string length, records len


class NotMcapError(ValueError):
    """The file is not an MCAP file (or is empty)."""


class _Malformed(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Schema:
    id: int
    name: str
    encoding: str
    data: bytes


@dataclasses.dataclass(frozen=True)
class Channel:
    id: int
    schema_id: int
    topic: str
    message_encoding: str
    metadata: dict[str, str]


@dataclasses.dataclass(frozen=True)
class RawMessage:
    channel_id: int
    sequence: int
    log_time: int
    publish_time: int
    data: bytes


@dataclasses.dataclass(frozen=True)
class ChunkRef:
    """An intact chunk: where its record body is and the log-time range of its messages."""

    offset: int  # of the record body (after opcode and length)
    length: int
    start_time: int
    end_time: int
    messages: int


@dataclasses.dataclass
class Scan:
    """What :func:`scan` found in one MCAP file."""

    path: Path
    size: int
    profile: str = ""
    library: str = ""
    schemas: dict[int, Schema] = dataclasses.field(default_factory=dict)
    channels: dict[int, Channel] = dataclasses.field(default_factory=dict)
    chunks: list[ChunkRef] = dataclasses.field(default_factory=list)
    loose: list[RawMessage] = dataclasses.field(default_factory=list)  # outside chunks
    counts: dict[int, int] = dataclasses.field(default_factory=dict)  # channel id -> messages
    metadata: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)
    footer: bool = False  # summary/footer and closing magic present

    @property
    def message_count(self) -> int:
        return sum(self.counts.values())


class _Cursor:
    """Little-endian reads from a buffer; running past its end raises ``_Malformed``."""

    def __init__(self, data: bytes | memoryview, pos: int = 0):
        self.data = data
        self.pos = pos

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise _Malformed(f"needs {n} bytes at {self.pos}, {len(self.data) - self.pos} left")
        view = memoryview(self.data)[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def string(self) -> str:
        (n,) = self.unpack("<I")
        try:
            return bytes(self.take(n)).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Malformed(f"bad UTF-8 string: {exc}") from None

    def prefixed(self) -> bytes:
        (n,) = self.unpack("<I")
        return bytes(self.take(n))

    def string_map(self) -> dict[str, str]:
        (n,) = self.unpack("<I")
        inner = _Cursor(self.take(n))
        out = {}
        while inner.pos < n:
            key = inner.string()
            out[key] = inner.string()
        return out


def _schema(body: memoryview) -> Schema:
    cur = _Cursor(body)
    (sid,) = cur.unpack("<H")
    return Schema(sid, cur.string(), cur.string(), cur.prefixed())


def _channel(body: memoryview) -> Channel:
    cur = _Cursor(body)
    cid, schema_id = cur.unpack("<HH")
    return Channel(cid, schema_id, cur.string(), cur.string(), cur.string_map())


def _message(body: memoryview, copy: bool = True) -> RawMessage:
    cur = _Cursor(body)
    cid, seq, log_time, publish_time = cur.unpack("<HIQQ")
    data = bytes(body[cur.pos:]) if copy else b""
    return RawMessage(cid, seq, log_time, publish_time, data)


def _chunk_header(body: memoryview) -> tuple[int, int, int, int, str, int]:
    """(start, end, uncompressed size, crc, compression, offset of the records) or _Malformed."""
    cur = _Cursor(body)
    start, end, size, crc = cur.unpack("<QQQI")
    compression = cur.string()
    (records_len,) = cur.unpack("<Q")
    if compression not in COMPRESSIONS:
        raise _Malformed(f"unknown compression {compression[:16]!r}")
    if records_len != len(body) - cur.pos:
        raise _Malformed(f"records length {records_len} != {len(body) - cur.pos} bytes present")
    return start, end, size, crc, compression, cur.pos


def _decompress(body: memoryview) -> bytes:
    """The uncompressed records of a chunk record body, checked, or ``_Malformed``."""
    _, _, size, crc, compression, pos = _chunk_header(body)
    data = body[pos:]
    try:
        if compression == "zstd":
            import zstandard

            out = zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
        elif compression == "lz4":
            import lz4.frame

            out = lz4.frame.decompress(data)
        else:
            out = bytes(data)
    except Exception as exc:  # noqa: BLE001 - any codec failure means a damaged chunk
        raise _Malformed(f"{compression} decompression failed ({exc})") from None
    if len(out) != size:
        raise _Malformed(f"decompressed to {len(out)} bytes, expected {size}")
    if crc and zlib.crc32(out) != crc:
        raise _Malformed("CRC mismatch")
    return out


def _records(data: bytes | memoryview) -> Iterator[tuple[int, memoryview]]:
    """(opcode, body) of the records in a chunk's uncompressed data."""
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        if len(view) - pos < 9:
            raise _Malformed(f"{len(view) - pos} stray bytes at the end of the chunk")
        op, length = struct.unpack_from("<BQ", view, pos)
        if pos + 9 + length > len(view):
            raise _Malformed(f"{NAMES.get(op, f'opcode {op:#x}')} record overruns the chunk")
        yield op, view[pos + 9:pos + 9 + length]
        pos += 9 + length


def scan(path: str | Path) -> Scan:
    """Walks an MCAP file record by record, tolerating damage (see the module docstring).

    Raises:
        NotMcapError: the file does not start with the MCAP magic.
        OSError: the file cannot be opened.
    """
    path = Path(path)
    with path.open("rb") as handle:
        head = handle.read(len(MAGIC))
        if len(head) < len(MAGIC):
            raise NotMcapError(f"{path}: {len(head)} bytes, too short to be an MCAP file")
        if head != MAGIC:
            raise NotMcapError(f"{path}: not an MCAP file (starts with {head!r}, expected "
                               f"{MAGIC!r})")
        mm = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        result = Scan(path=path, size=len(mm))
        try:
            _Walker(mm, result).run()
        finally:
            with contextlib.suppress(BufferError):  # a view still alive: closed when collected
                mm.close()
        return result


class _Walker:
    """The state of one :func:`scan`."""

    def __init__(self, mm: mmap.mmap, result: Scan):
        self.mm = mm
        self.view = memoryview(mm)
        self.out = result
        self.size = result.size
        self.bad_chunks = 0
        self.statistics: int | None = None

    def run(self) -> None:
        try:
            self._walk()
        finally:
            self.view.release()

    def _walk(self) -> None:
        out, size = self.out, self.size
        pos = len(MAGIC)
        cut: str | None = None
        while pos < size:
            if size - pos < 9:
                cut = f"{size - pos} bytes of a record header"
                break
            op, length = struct.unpack_from("<BQ", self.mm, pos)
            end = pos + 9 + length
            if op == 0 or 0x0F < op < 0x80 or end > size:
                resume = self._resync(pos + 1)
                if resume is None:
                    cut = (f"{NAMES[op]} at byte {pos} needs {length} bytes, "
                           f"{size - pos - 9} present" if op in NAMES
                           else f"unreadable bytes from byte {pos} on")
                    break
                out.problems.append(f"bytes {pos}-{resume} are unreadable (overwritten or "
                                    "corrupt); continued at the next intact record")
                pos = resume
                continue
            if op == FOOTER:
                self._footer(pos, end)
                break
            self._record(op, self.view[pos + 9:end], pos)
            pos = end
        if out.footer:
            if self.statistics is not None and self.statistics != out.message_count:
                out.problems.append(f"the summary counts {self.statistics} messages, "
                                    f"{out.message_count} are readable")
            return
        read = (f"read {out.message_count} messages from {len(out.chunks)} complete chunks"
                + (f" ({self.bad_chunks} damaged chunk(s) skipped)" if self.bad_chunks else ""))
        if cut is not None:
            out.problems.append(f"file truncated at byte {size}: summary missing ({cut}); {read}")
        else:
            out.problems.append(f"file ends at byte {size} without summary or footer (the "
                                f"writer did not finish); {read}")

    def _record(self, op: int, body: memoryview, pos: int) -> None:
        out = self.out
        try:
            if op == HEADER:
                cur = _Cursor(body)
                out.profile, out.library = cur.string(), cur.string()
            elif op == SCHEMA:
                schema = _schema(body)
                out.schemas.setdefault(schema.id, schema)
            elif op == CHANNEL:
                channel = _channel(body)
                out.channels.setdefault(channel.id, channel)
            elif op == MESSAGE:
                msg = _message(body)
                out.loose.append(msg)
                out.counts[msg.channel_id] = out.counts.get(msg.channel_id, 0) + 1
            elif op == CHUNK:
                self._chunk(body, pos)
            elif op == METADATA:
                cur = _Cursor(body)
                name = cur.string()
                out.metadata[name] = cur.string_map()
            elif op == STATISTICS:
                (self.statistics,) = _Cursor(body).unpack("<Q")
        except _Malformed as exc:
            out.problems.append(f"{NAMES.get(op, hex(op))} record at byte {pos} is malformed "
                                f"({exc}); skipped")

    def _chunk(self, body: memoryview, pos: int) -> None:
        out = self.out
        try:
            data = _decompress(body)
            counts: dict[int, int] = {}
            start, end = None, None
            for op, rec in _records(data):
                if op == SCHEMA:
                    schema = _schema(rec)
                    out.schemas.setdefault(schema.id, schema)
                elif op == CHANNEL:
                    channel = _channel(rec)
                    out.channels.setdefault(channel.id, channel)
                elif op == MESSAGE:
                    msg = _message(rec, copy=False)
                    counts[msg.channel_id] = counts.get(msg.channel_id, 0) + 1
                    start = msg.log_time if start is None else min(start, msg.log_time)
                    end = msg.log_time if end is None else max(end, msg.log_time)
        except _Malformed as exc:
            self.bad_chunks += 1
            out.problems.append(f"chunk at byte {pos} ({len(body)} bytes) is damaged ({exc}); "
                                "its messages are lost")
            return
        for cid, n in counts.items():
            out.counts[cid] = out.counts.get(cid, 0) + n
        if counts:
            out.chunks.append(ChunkRef(pos + 9, len(body), start or 0, end or 0,
                                       sum(counts.values())))

    def _footer(self, pos: int, end: int) -> None:
        out = self.out
        tail = self.mm[end:end + len(MAGIC)]
        if tail != MAGIC:
            out.problems.append(f"footer at byte {pos} is not followed by the closing magic")
            return
        out.footer = True
        extra = self.size - end - len(MAGIC)
        if extra:
            out.problems.append(f"{extra} bytes of unexpected data after the end of the MCAP "
                                f"(byte {end + len(MAGIC)}); ignored")

    def _resync(self, start: int) -> int | None:
        """Offset of the next plausible chunk, data-end or footer record at/after ``start``."""
        size = self.size
        for match in _RESYNC.finditer(self.mm, start):
            pos = match.start()
            if size - pos < 9:
                return None
            op, length = struct.unpack_from("<BQ", self.mm, pos)
            end = pos + 9 + length
            if end > size:
                continue
            if op == CHUNK and length >= _CHUNK_FIXED:
                try:
                    _chunk_header(self.view[pos + 9:end])
                except _Malformed:
                    continue
                return pos
            if op == DATA_END and length == 4 and (end == size or self.mm[end] in NAMES):
                return pos
            if op == FOOTER and length == 20 and self.mm[end:end + len(MAGIC)] == MAGIC:
                return pos
        return None


def chunk_messages(handle: BinaryIO, ref: ChunkRef, channels: Collection[int] | None = None
                   ) -> list[RawMessage]:
    """The messages of one intact chunk (``handle``: the MCAP file opened for binary reading)."""
    handle.seek(ref.offset)
    body = memoryview(handle.read(ref.length))
    out = []
    for op, rec in _records(_decompress(body)):
        if op == MESSAGE:
            (cid,) = struct.unpack_from("<H", rec)
            if channels is None or cid in channels:
                out.append(_message(rec))
    return out


def iter_raw(result: Scan, channels: Collection[int] | None = None) -> Iterator[RawMessage]:
    """The messages of the intact chunks (and loose messages) in log-time order.

    Equal log times keep file order. Only the chunks whose time range overlaps the messages not
    yet yielded are held in memory. A chunk that cannot be read again is reported in
    ``result.problems`` and skipped.
    """
    wanted = None if channels is None else set(channels)
    refs = sorted(result.chunks, key=lambda c: (c.start_time, c.offset))
    order = itertools.count()
    heap = [(m.log_time, next(order), m) for m in result.loose
            if wanted is None or m.channel_id in wanted]
    heapq.heapify(heap)
    with result.path.open("rb") as handle:
        i = 0
        while i < len(refs) or heap:
            while i < len(refs) and (not heap or refs[i].start_time <= heap[0][0]):
                try:
                    for msg in chunk_messages(handle, refs[i], wanted):
                        heapq.heappush(heap, (msg.log_time, next(order), msg))
                except (_Malformed, OSError) as exc:
                    result.problems.append(f"chunk at byte {refs[i].offset - 9} could not be "
                                           f"read again ({exc}); its messages are skipped")
                i += 1
            if heap:
                yield heapq.heappop(heap)[2]
