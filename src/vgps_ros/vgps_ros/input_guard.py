"""Input checks shared by the nodes: a classified error, stamp freshness, instruction text,
rejection counts.

ROS-free. A node converts each message inside ``try``; a :class:`MessageError` carries the class
of the problem (``kind``, e.g. ``"nan_actions"``) that goes into ``/diagnostics``, and the node
keeps running. :class:`RejectionLog` counts rejections per class and says when a diagnostic is due.

Usage::

    log = RejectionLog()
    try:
        check_stamp(stamp_s, now_s, max_age_s=1.0)
    except MessageError as exc:
        log.add(exc.kind, str(exc))
"""

from __future__ import annotations

import math
import threading
import unicodedata
from collections import Counter

# Longest instruction accepted (characters). Bridge's instructions are a short sentence (under 100
# characters); the language encoders truncate at their own token limits anyway, so a longer text
# is a bug or an attack (a 1 MB instruction is embedded on every step).
MAX_INSTRUCTION_CHARS = 512


class MessageError(ValueError):
    """A message that cannot be used, with the class of the problem.

    Args:
        kind: short machine-readable class (``"bad_encoding"``, ``"nan_actions"``, ...).
        detail: what exactly is wrong, for people.
    """

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def check_stamp(stamp_s: float, now_s: float, max_age_s: float,
                max_future_s: float = 0.05) -> float:
    """Raises :class:`MessageError` for a stamp older than ``max_age_s`` or too far ahead.

    Args:
        stamp_s: the message stamp (s).
        now_s: now on the same clock (s).
        max_age_s: oldest accepted age (s).
        max_future_s: how far ahead of now a stamp may be (clock skew allowance, s).

    Returns:
        The age in seconds (negative for stamps slightly in the future).
    """
    if not math.isfinite(stamp_s) or stamp_s <= 0:
        raise MessageError("bad_stamp", f"stamp {stamp_s!r} is not a positive time")
    age = now_s - stamp_s
    if age > max_age_s:
        raise MessageError("stale_stamp", f"stamp is {age:.3f} s old > max_age_s {max_age_s:g}")
    if -age > max_future_s:
        raise MessageError("future_stamp",
                           f"stamp is {-age:.3f} s in the future > {max_future_s:g} s")
    return age


def check_instruction(text: object, max_chars: int = MAX_INSTRUCTION_CHARS) -> str:
    """Raises :class:`MessageError` (``bad_instruction``) for an unusable instruction text.

    An instruction is one line of printable text of at most ``max_chars`` characters. Control
    characters (Unicode category Cc: NUL, newlines, escapes, ...) are refused: a NUL silently
    truncates the string in the C layers of ROS and the tokenizers, so the text embedded would
    not be the text received. Emptiness is the callers' own check (``empty_instruction``).

    Returns:
        ``text`` unchanged.
    """
    if not isinstance(text, str):
        raise MessageError("bad_instruction", f"instruction must be a str, got "
                                              f"{type(text).__name__}")
    if len(text) > max_chars:
        raise MessageError("bad_instruction", f"instruction has {len(text)} characters > "
                                              f"{max_chars}")
    for index, char in enumerate(text):
        if unicodedata.category(char) == "Cc":
            raise MessageError("bad_instruction", f"control character {char!r} at index {index} "
                                                  "(one line of printable text only)")
    return text


class RejectionLog:
    """Thread-safe counts of rejected inputs per class, plus the newest detail.

    Args:
        min_interval_s: :meth:`add` returns True (publish a diagnostic now) at most this often,
            and always for the first rejection of a class.
    """

    def __init__(self, min_interval_s: float = 0.1):
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._last_detail = ""
        self._last_kind = ""
        self._last_report = -math.inf
        self._min_interval = min_interval_s
        self._since_report = 0

    def add(self, kind: str, detail: str, now: float) -> bool:
        """Records one rejection; returns whether a diagnostic should be published now."""
        with self._lock:
            first = kind not in self._counts
            self._counts[kind] += 1
            self._last_kind, self._last_detail = kind, detail
            self._since_report += 1
            due = first or now - self._last_report >= self._min_interval
            if due:
                self._last_report = now
                self._since_report = 0
            return due

    def reported(self, now: float) -> int:
        """Marks a diagnostic as published; returns the rejections since the previous one."""
        with self._lock:
            n, self._since_report = self._since_report, 0
            self._last_report = now
            return n

    @property
    def counts(self) -> dict[str, int]:
        """Rejections so far per class."""
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    @property
    def last(self) -> tuple[str, str]:
        """``(kind, detail)`` of the newest rejection (empty strings before the first)."""
        with self._lock:
            return self._last_kind, self._last_detail
