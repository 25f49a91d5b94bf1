"""MCAP records: opcodes, the record types, and checked parsing of record bodies and chunks.

The building blocks of :mod:`vgps.bags.mcap_scan`. Every parser raises :class:`Malformed` for a
body it cannot read (never struct.error or IndexError), so the scanner can skip the damage. Pure
Python (``zstandard``, ``lz4``); no ROS.
"""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

MAGIC = b"\x89MCAP0\r\n"
HEADER, FOOTER, SCHEMA, CHANNEL, MESSAGE, CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
STATISTICS, METADATA, DATA_END = 0x0B, 0x0C, 0x0F
NAMES = {0x01: "header", 0x02: "footer", 0x03: "schema", 0x04: "channel", 0x05: "message",
         0x06: "chunk", 0x07: "message index", 0x08: "chunk index", 0x09: "attachment",
         0x0A: "attachment index", 0x0B: "statistics", 0x0C: "metadata", 0x0D: "metadata index",
         0x0E: "summary offset", 0x0F: "data end"}
COMPRESSIONS = ("", "zstd", "lz4")
RESYNC = re.compile(rb"[\x02\x06\x0f]")
CHUNK_FIXED = 8 + 8 + 8 + 4 + 4 + 8  # times, uncompressed size, crc, string length, records len


class NotMcapError(ValueError):
    """The file is not an MCAP file (or is empty)."""


class Malformed(ValueError):
    """A record body that cannot be parsed (truncated, bad length, bad string, bad CRC)."""


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


class Cursor:
    """Little-endian reads from a buffer; running past its end raises ``Malformed``."""

    def __init__(self, data: bytes | memoryview, pos: int = 0):
        self.data = data
        self.pos = pos

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise Malformed(f"needs {n} bytes at {self.pos}, {len(self.data) - self.pos} left")
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
            raise Malformed(f"bad UTF-8 string: {exc}") from None

    def prefixed(self) -> bytes:
        (n,) = self.unpack("<I")
        return bytes(self.take(n))

    def string_map(self) -> dict[str, str]:
        (n,) = self.unpack("<I")
        inner = Cursor(self.take(n))
        out = {}
        while inner.pos < n:
            key = inner.string()
            out[key] = inner.string()
        return out


def parse_schema(body: memoryview) -> Schema:
    cur = Cursor(body)
    (sid,) = cur.unpack("<H")
    return Schema(sid, cur.string(), cur.string(), cur.prefixed())


def parse_channel(body: memoryview) -> Channel:
    cur = Cursor(body)
    cid, schema_id = cur.unpack("<HH")
    return Channel(cid, schema_id, cur.string(), cur.string(), cur.string_map())


def parse_message(body: memoryview, copy: bool = True) -> RawMessage:
    cur = Cursor(body)
    cid, seq, log_time, publish_time = cur.unpack("<HIQQ")
    data = bytes(body[cur.pos:]) if copy else b""
    return RawMessage(cid, seq, log_time, publish_time, data)


def chunk_header(body: memoryview) -> tuple[int, int, int, int, str, int]:
    """(start, end, uncompressed size, crc, compression, offset of the records) or Malformed."""
    cur = Cursor(body)
    start, end, size, crc = cur.unpack("<QQQI")
    compression = cur.string()
    (records_len,) = cur.unpack("<Q")
    if compression not in COMPRESSIONS:
        raise Malformed(f"unknown compression {compression[:16]!r}")
    if records_len != len(body) - cur.pos:
        raise Malformed(f"records length {records_len} != {len(body) - cur.pos} bytes present")
    return start, end, size, crc, compression, cur.pos


def decompress(body: memoryview) -> bytes:
    """The uncompressed records of a chunk record body, checked, or ``Malformed``."""
    _, _, size, crc, compression, pos = chunk_header(body)
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
        raise Malformed(f"{compression} decompression failed ({exc})") from None
    if len(out) != size:
        raise Malformed(f"decompressed to {len(out)} bytes, expected {size}")
    if crc and zlib.crc32(out) != crc:
        raise Malformed("CRC mismatch")
    return out


def records(data: bytes | memoryview) -> Iterator[tuple[int, memoryview]]:
    """(opcode, body) of the records in a chunk's uncompressed data."""
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        if len(view) - pos < 9:
            raise Malformed(f"{len(view) - pos} stray bytes at the end of the chunk")
        op, length = struct.unpack_from("<BQ", view, pos)
        if pos + 9 + length > len(view):
            raise Malformed(f"{NAMES.get(op, f'opcode {op:#x}')} record overruns the chunk")
        yield op, view[pos + 9:pos + 9 + length]
        pos += 9 + length
