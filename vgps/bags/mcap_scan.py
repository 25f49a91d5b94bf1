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
import heapq
import itertools
import mmap
import struct
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import BinaryIO

from vgps.bags.mcap_records import (
    CHANNEL,
    CHUNK,
    CHUNK_FIXED,
    DATA_END,
    FOOTER,
    HEADER,
    MAGIC,
    MESSAGE,
    METADATA,
    NAMES,
    RESYNC,
    SCHEMA,
    STATISTICS,
    ChunkRef,
    Cursor,
    Malformed,
    NotMcapError,
    RawMessage,
    Scan,
    chunk_header,
    decompress,
    parse_channel,
    parse_message,
    parse_schema,
    records,
)

__all__ = ["ChunkRef", "NotMcapError", "RawMessage", "Scan", "chunk_messages", "iter_raw", "scan"]


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
                cur = Cursor(body)
                out.profile, out.library = cur.string(), cur.string()
            elif op == SCHEMA:
                schema = parse_schema(body)
                out.schemas.setdefault(schema.id, schema)
            elif op == CHANNEL:
                channel = parse_channel(body)
                out.channels.setdefault(channel.id, channel)
            elif op == MESSAGE:
                msg = parse_message(body)
                out.loose.append(msg)
                out.counts[msg.channel_id] = out.counts.get(msg.channel_id, 0) + 1
            elif op == CHUNK:
                self._chunk(body, pos)
            elif op == METADATA:
                cur = Cursor(body)
                name = cur.string()
                out.metadata[name] = cur.string_map()
            elif op == STATISTICS:
                (self.statistics,) = Cursor(body).unpack("<Q")
        except Malformed as exc:
            out.problems.append(f"{NAMES.get(op, hex(op))} record at byte {pos} is malformed "
                                f"({exc}); skipped")

    def _chunk(self, body: memoryview, pos: int) -> None:
        out = self.out
        try:
            data = decompress(body)
            counts: dict[int, int] = {}
            start, end = None, None
            for op, rec in records(data):
                if op == SCHEMA:
                    schema = parse_schema(rec)
                    out.schemas.setdefault(schema.id, schema)
                elif op == CHANNEL:
                    channel = parse_channel(rec)
                    out.channels.setdefault(channel.id, channel)
                elif op == MESSAGE:
                    msg = parse_message(rec, copy=False)
                    counts[msg.channel_id] = counts.get(msg.channel_id, 0) + 1
                    start = msg.log_time if start is None else min(start, msg.log_time)
                    end = msg.log_time if end is None else max(end, msg.log_time)
        except Malformed as exc:
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
        for match in RESYNC.finditer(self.mm, start):
            pos = match.start()
            if size - pos < 9:
                return None
            op, length = struct.unpack_from("<BQ", self.mm, pos)
            end = pos + 9 + length
            if end > size:
                continue
            if op == CHUNK and length >= CHUNK_FIXED:
                try:
                    chunk_header(self.view[pos + 9:end])
                except Malformed:
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
    for op, rec in records(decompress(body)):
        if op == MESSAGE:
            (cid,) = struct.unpack_from("<H", rec)
            if channels is None or cid in channels:
                out.append(parse_message(rec))
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
                except (Malformed, OSError) as exc:
                    result.problems.append(f"chunk at byte {refs[i].offset - 9} could not be "
                                           f"read again ({exc}); its messages are skipped")
                i += 1
            if heap:
                yield heapq.heappop(heap)[2]
