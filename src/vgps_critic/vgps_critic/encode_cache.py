"""Encode each camera image once, as soon as it arrives; score candidates against it later.

ROS-free core of the critic node. Images are kept (resized to the critic's size) by their stamp;
the encoding of ``(stamp, instruction)`` is computed once, either ahead of time by
:meth:`StampedEncoder.pre_encode` (the node's camera callback, running while the policy samples)
or on demand by :meth:`StampedEncoder.score` when the candidates arrive first. Concurrent requests
for the same encoding wait for the one computation instead of repeating it. Only the newest
``max_entries`` images are kept.

Usage::

    encoder = StampedEncoder(critic, max_entries=8)
    encoder.add_image(stamp_ns, image)                # any size uint8 (H, W, 3)
    encoder.pre_encode(stamp_ns, "put carrot on plate")
    score = encoder.score(stamp_ns, "put carrot on plate", first_actions)   # (K, 7)
    score.q, score.pre_encoded, score.encode_ms, score.score_ms
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future

import numpy as np

from vgps_critic.scorer import Scorer
from vgps_critic.steering import resize_image
from vgps_ros.input_guard import MessageError


@dataclasses.dataclass(frozen=True)
class Score:
    """Q-values of one candidate set.

    Attributes:
        q: float32 (K,) Q of each first action.
        encode_ms: how long the encoding took (whenever it ran).
        score_ms: how long the Q head took for the K actions.
        pre_encoded: the encoding was started before the candidates arrived.
    """

    q: np.ndarray
    encode_ms: float
    score_ms: float
    pre_encoded: bool


@dataclasses.dataclass
class _Encoding:
    future: Future
    ahead: bool  # started by pre_encode
    ms: float = 0.0


class StampedEncoder:
    """Per-stamp image buffer and encode-once cache around a critic (thread-safe).

    Args:
        critic: a :class:`~vgps_critic.scorer.Scorer` (a critic or an ensemble).
        max_entries: images (and their encodings) kept, newest first.
    """

    def __init__(self, critic: Scorer, max_entries: int = 8):
        if int(max_entries) < 1:
            raise ValueError(f"max_entries={max_entries!r}: must be >= 1")
        self.critic = critic
        self._max = int(max_entries)
        self._lock = threading.Lock()
        self._images: OrderedDict[int, np.ndarray] = OrderedDict()
        self._encodings: dict[tuple[int, str], _Encoding] = {}

    @property
    def max_entries(self) -> int:
        return self._max

    @max_entries.setter
    def max_entries(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f"max_entries={value!r}: must be >= 1")
        with self._lock:
            self._max = int(value)
            self._evict()

    def __contains__(self, stamp_ns: int) -> bool:
        with self._lock:
            return stamp_ns in self._images

    def add_image(self, stamp_ns: int, image: np.ndarray) -> None:
        """Keeps ``image`` (uint8 (H, W, 3), any size; resized here) under ``stamp_ns``."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise MessageError("bad_image", f"need uint8 (H, W, 3), got {image.dtype} "
                                            f"{image.shape}")
        resized = resize_image(image, self.critic.image_size)
        with self._lock:
            self._images[int(stamp_ns)] = resized
            self._images.move_to_end(int(stamp_ns))
            self._evict()

    def pre_encode(self, stamp_ns: int, instruction: str) -> float:
        """Encodes the image at ``stamp_ns`` under ``instruction`` now; returns the ms spent
        (0 when it was already encoded or in progress)."""
        enc, owner = self._claim(int(stamp_ns), instruction, ahead=True)
        return self._run(enc, int(stamp_ns), instruction) if owner else 0.0

    def score(self, stamp_ns: int, instruction: str, actions: np.ndarray) -> Score:
        """Q of K first actions for the image at ``stamp_ns``, encoding it if still needed.

        Args:
            stamp_ns: the candidates' (source image) stamp.
            instruction: the instruction the candidates were sampled for.
            actions: float32 (K, A) first action of each candidate chunk.

        Raises:
            MessageError: ``unknown_image`` when no image with this stamp is buffered.
        """
        stamp_ns = int(stamp_ns)
        enc, owner = self._claim(stamp_ns, instruction, ahead=False)
        if owner:
            self._run(enc, stamp_ns, instruction)
        features = enc.future.result()
        start = time.perf_counter()
        q = np.asarray(self.critic.q(features, actions), np.float32)
        score_ms = (time.perf_counter() - start) * 1e3
        return Score(q=q, encode_ms=enc.ms, score_ms=score_ms, pre_encoded=enc.ahead)

    # -- internals ----------------------------------------------------------------------------
    def _claim(self, stamp_ns: int, instruction: str, ahead: bool) -> tuple[_Encoding, bool]:
        with self._lock:
            if stamp_ns not in self._images:
                raise MessageError("unknown_image", f"no camera image with stamp {stamp_ns} ns "
                                                    f"(kept: the newest {self._max})")
            key = (stamp_ns, instruction)
            enc = self._encodings.get(key)
            if enc is not None:
                return enc, False
            enc = self._encodings[key] = _Encoding(Future(), ahead)
            return enc, True

    def _run(self, enc: _Encoding, stamp_ns: int, instruction: str) -> float:
        with self._lock:
            image = self._images.get(stamp_ns)
        start = time.perf_counter()
        try:
            if image is None:
                raise MessageError("unknown_image", f"image {stamp_ns} was evicted")
            language = self.critic.embed(instruction)
            features = self.critic.encode(image, language)
            if hasattr(features, "block_until_ready"):
                features.block_until_ready()
        except BaseException as exc:
            enc.future.set_exception(exc)
            with self._lock:
                self._encodings.pop((stamp_ns, instruction), None)
            raise
        enc.ms = (time.perf_counter() - start) * 1e3
        enc.future.set_result(features)
        return enc.ms

    def _evict(self) -> None:
        while len(self._images) > self._max:
            old, _ = self._images.popitem(last=False)
            for key in [k for k in self._encodings if k[0] == old]:
                del self._encodings[key]
