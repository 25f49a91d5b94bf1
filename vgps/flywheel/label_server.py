"""The ``vgps label`` web server: recorded episodes, their frames and value traces, and labels.

A stdlib :class:`http.server.ThreadingHTTPServer` on 127.0.0.1 only (a free port by default)
serves the labelling page (:mod:`vgps.flywheel.label_page`) and a small JSON API over the
episodes of one or more ``vgps up --record`` bags (:func:`vgps.flywheel.episodes.read_episodes`):

* ``GET /api/episodes``: every episode (key, bag, task, instruction, steps, the robot's outcome,
  the current label, interventions) and ``resume``, the first unlabelled one;
* ``GET /api/episodes/<n>``: episode ``n`` with one row per executed decision (step, reason,
  intervened, chosen index, Q of the executed action, margin and Q statistics of the candidates);
* ``GET /frames/<n>/<t>.png``: the camera frame of decision ``t`` of episode ``n`` (cached);
* ``POST /api/label`` ``{"key", "outcome": success|failure|skip, "failed_at_step": int|null}``:
  saved with :func:`vgps.flywheel.labels.save_label` in the sidecar beside the bag
  (``<bag>.labels.json``); bags are only ever read. Bad input gets 400 with a message.

``failed_at_step`` is the recorded step counter (``SelectedAction.step``) of one of the
episode's decisions, and only goes with ``outcome == "failure"``.

Usage::

    session = LabelSession.load(["out/bags/run1", "out/bags/run2"])
    server = make_server(session, port=0)          # 127.0.0.1, a free port
    print(server_url(server)); server.serve_forever()
"""

from __future__ import annotations

import collections
import datetime
import io
import json
import math
import os
import re
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from vgps.flywheel.label_page import PAGE

__all__ = ["LOCAL_HOSTS", "LabelSession", "RequestError", "make_server", "server_url"]

LOCAL_HOSTS = ("127.0.0.1", "localhost")  # the page is never served beyond this machine
MAX_BODY = 64 * 1024  # bytes of a POST body
FRAME_CACHE = 512  # encoded PNG frames kept
_EPISODE = re.compile(r"^/api/episodes/(\d+)$")
_FRAME = re.compile(r"^/frames/(\d+)/(\d+)\.png$")


class RequestError(ValueError):
    """A request the server refuses (answered with 400/404 and this message)."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def _finite(value: Any) -> float | None:
    """A JSON-safe float: None for NaN/inf/None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def q_stats(q_values: np.ndarray | None) -> dict[str, float | None]:
    """Margin (best - second best), min, mean and max of one decision's (K,) Q-values."""
    q = np.asarray([] if q_values is None else q_values, dtype=np.float64).ravel()
    q = q[np.isfinite(q)]
    if q.size == 0:
        return {"q_margin": None, "q_min": None, "q_mean": None, "q_max": None}
    top = np.sort(q)[::-1]
    return {"q_margin": _finite(top[0] - top[1]) if q.size > 1 else None,
            "q_min": _finite(top[-1]), "q_mean": _finite(q.mean()), "q_max": _finite(top[0])}


class LabelSession:
    """The episodes of some bags and their labels; thread-safe.

    Args:
        bags: what :func:`vgps.flywheel.episodes.read_episodes` returned for each bag.
        lazy_frames: the episodes were read without images; each bag's camera frames are read
            on the first frame request of one of its episodes.
    """

    def __init__(self, bags: Sequence[Any], lazy_frames: bool = False):
        from vgps.flywheel.labels import load_labels

        self.bags = list(bags)
        self.episodes = [ep for bag in self.bags for ep in bag.episodes]
        self.by_key = {ep.key: ep for ep in self.episodes}
        if len(self.by_key) != len(self.episodes):
            counts = collections.Counter(ep.key for ep in self.episodes)
            dupes = sorted(k for k, c in counts.items() if c > 1)
            raise ValueError(f"episode keys {dupes} appear twice: is one bag given twice?")
        self.labels: dict[str, Any] = {}
        for bag in self.bags:
            self.labels.update(load_labels(bag.bag))
        self.lazy_frames = lazy_frames
        self._lock = threading.Lock()
        self._pngs: collections.OrderedDict[tuple[int, int], bytes] = collections.OrderedDict()
        self._frames: dict[Path, dict[int, np.ndarray]] = {}  # lazy: bag -> {stamp: image}

    @classmethod
    def load(cls, bags: Sequence[str | os.PathLike], lazy_frames: bool = False) -> LabelSession:
        """Reads the episodes of ``bags`` (with their frames unless ``lazy_frames``).

        Raises:
            FileNotFoundError: a bag does not exist.
            ValueError: a bag cannot be read, or has no episode at all.
        """
        from vgps.bags import BagError
        from vgps.flywheel.episodes import read_episodes

        read = []
        for bag in bags:
            path = Path(bag)
            if not path.exists():
                raise FileNotFoundError(f"no bag at {path}")
            try:
                read.append(read_episodes(path, images=not lazy_frames))
            except BagError as exc:
                raise ValueError(f"cannot read bag {path}: {exc}") from None
        session = cls(read, lazy_frames=lazy_frames)
        if not session.episodes:
            raise ValueError("no episode in " + ", ".join(str(b) for b in bags)
                             + " (was it recorded with `vgps up --record`?)")
        return session

    # -- queries -------------------------------------------------------------------------------

    def episode(self, n: int) -> Any:
        """Episode ``n`` (0-based position over all bags).

        Raises:
            RequestError: (404) no such episode.
        """
        if not 0 <= n < len(self.episodes):
            raise RequestError(f"no episode {n} (there are {len(self.episodes)})",
                             HTTPStatus.NOT_FOUND)
        return self.episodes[n]

    def label_json(self, key: str) -> dict[str, Any] | None:
        label = self.labels.get(key)
        if label is None:
            return None
        return {"outcome": label.outcome, "failed_at_step": label.failed_at_step,
                "labelled_at": label.labelled_at}

    def resume_index(self) -> int:
        """The first episode without a label (0 when all are labelled)."""
        return next((n for n, ep in enumerate(self.episodes) if ep.key not in self.labels), 0)

    def summary(self, n: int) -> dict[str, Any]:
        """What the episode list shows of episode ``n``."""
        ep = self.episode(n)
        return {"n": n, "key": ep.key, "bag": ep.bag.name, "run_id": ep.run_id,
                "index": ep.index, "task": ep.task, "instruction": ep.instruction,
                "steps": len(ep.steps), "end_event": ep.end_event, "complete": ep.complete,
                "robot_outcome": (None if ep.success is None
                                  else "success" if ep.success else "failure"),
                "interventions": sum(1 for s in ep.steps if s.intervened),
                "label": self.label_json(ep.key)}

    def listing(self) -> dict[str, Any]:
        """``GET /api/episodes``."""
        with self._lock:
            return {"episodes": [self.summary(n) for n in range(len(self.episodes))],
                    "resume": self.resume_index(),
                    "losses": [f"{b.bag.name}: {loss}" for b in self.bags for loss in b.losses]}

    def detail(self, n: int) -> dict[str, Any]:
        """``GET /api/episodes/<n>``: the summary plus one row per executed decision."""
        ep = self.episode(n)
        rows = []
        for t, s in enumerate(ep.steps):
            rows.append({"t": t, "step": int(s.step), "stamp_ns": int(s.stamp_ns),
                         "reason": s.reason, "intervened": bool(s.intervened),
                         "index": int(s.index), "q_selected": _finite(s.q_selected),
                         "candidates": 0 if s.candidates is None else len(s.candidates),
                         "action": [round(float(a), 5) for a in s.actions[:1].ravel()],
                         "has_frame": self.lazy_frames or s.image is not None,
                         **q_stats(s.q_values)})
        with self._lock:
            return {**self.summary(n), "rows": rows}

    def frame_png(self, n: int, t: int) -> bytes:
        """The PNG of the camera frame of decision ``t`` of episode ``n``.

        Raises:
            RequestError: (404) no such episode or step, or its frame was not recorded.
        """
        ep = self.episode(n)
        if not 0 <= t < len(ep.steps):
            raise RequestError(f"episode {n} has no step {t} (it has {len(ep.steps)})",
                             HTTPStatus.NOT_FOUND)
        with self._lock:
            cached = self._pngs.get((n, t))
            if cached is not None:
                self._pngs.move_to_end((n, t))
                return cached
            image = self._image(ep, ep.steps[t])
            if image is None:
                raise RequestError(f"episode {n} step {t}: its camera frame is not in the bag",
                                 HTTPStatus.NOT_FOUND)
            png = encode_png(image)
            self._pngs[(n, t)] = png
            while len(self._pngs) > FRAME_CACHE:
                self._pngs.popitem(last=False)
            return png

    def _image(self, ep: Any, step: Any) -> np.ndarray | None:
        if not self.lazy_frames:
            return step.image
        frames = self._frames.get(ep.bag)
        if frames is None:  # one pass over the bag's camera topic, frames of decisions only
            frames = self._frames[ep.bag] = read_frames(
                ep.bag, {s.stamp_ns for e in self.episodes if e.bag == ep.bag for s in e.steps})
        return frames.get(int(step.stamp_ns))

    # -- labelling -----------------------------------------------------------------------------

    def set_label(self, payload: Any) -> dict[str, Any]:
        """``POST /api/label``: validates ``payload`` and saves it in the bag's sidecar.

        Raises:
            RequestError: (400) not an object, unknown key or outcome, a bad ``failed_at_step``.
        """
        from vgps.flywheel.labels import OUTCOMES, Label, LabelError, save_label

        if not isinstance(payload, dict):
            raise RequestError(f"the body must be a JSON object, not {type(payload).__name__}")
        unknown = sorted(set(payload) - {"key", "outcome", "failed_at_step"})
        if unknown:
            raise RequestError(f"unknown fields {unknown}; expected key, outcome, failed_at_step")
        key, outcome = payload.get("key"), payload.get("outcome")
        step = payload.get("failed_at_step")
        if not isinstance(key, str) or key not in self.by_key:
            raise RequestError(f"unknown episode key {key!r}")
        if outcome not in OUTCOMES:
            raise RequestError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        ep = self.by_key[key]
        if step is not None:
            steps = [int(s.step) for s in ep.steps]
            if isinstance(step, bool) or not isinstance(step, int):
                raise RequestError(f"failed_at_step {step!r} is not an integer or null")
            if outcome != "failure":
                raise RequestError(f"failed_at_step {step} only goes with outcome failure, "
                                 f"not {outcome}")
            if step not in steps:
                span = f"{steps[0]}..{steps[-1]}" if steps else "none"
                raise RequestError(f"failed_at_step {step} is not a step of episode {key} "
                                 f"(its steps: {span})")
        label = Label(outcome=outcome, failed_at_step=step,
                      labelled_at=datetime.datetime.now(datetime.timezone.utc)
                      .isoformat(timespec="seconds"))
        with self._lock:
            try:
                path = save_label(ep.bag, key, label)
            except LabelError as exc:  # e.g. the sidecar was damaged meanwhile: left alone
                raise RequestError(str(exc)) from None
            self.labels[key] = label
            return {"key": key, "label": self.label_json(key), "sidecar": path.name,
                    "resume": self.resume_index()}


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a (H, W, 3) or (H, W) uint8 image."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def read_frames(bag: Path, stamps: set[int]) -> dict[int, np.ndarray]:
    """The camera frames of ``bag`` whose header stamp is in ``stamps``: {stamp_ns: (H, W, 3)}."""
    from vgps.bags import BagReader
    from vgps.replay.recorded import CAMERA
    from vgps_ros.conversions import image_from_msg, stamp_to_ns

    frames: dict[int, np.ndarray] = {}
    for item in BagReader(bag).messages([CAMERA]):
        stamp = stamp_to_ns(item.message.header.stamp)
        if stamp in stamps and stamp not in frames:
            try:
                frames[stamp] = image_from_msg(item.message)
            except ValueError:
                continue  # a frame the bag cannot give back is a 404, as a lost one
    return frames


class _Handler(BaseHTTPRequestHandler):
    server: _LabelServer
    server_version = "vgps-label"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _local(self) -> bool:
        """Refuses requests for another host name (DNS rebinding) with 403."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if host in (*LOCAL_HOSTS, "::1"):
            return True
        self._json(HTTPStatus.FORBIDDEN, {"error": f"host {host!r} is not served"})
        return False

    def do_GET(self) -> None:
        if not self._local():
            return
        path = self.path.split("?", 1)[0]
        session = self.server.session
        try:
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/api/episodes":
                self._json(HTTPStatus.OK, session.listing())
            elif match := _EPISODE.match(path):
                self._json(HTTPStatus.OK, session.detail(int(match[1])))
            elif match := _FRAME.match(path):
                self._send(HTTPStatus.OK, session.frame_png(int(match[1]), int(match[2])),
                           "image/png")
            else:
                raise RequestError(f"no such page {path}", HTTPStatus.NOT_FOUND)
        except RequestError as exc:
            self._json(exc.status, {"error": str(exc)})

    def do_POST(self) -> None:
        if not self._local():
            return
        try:
            if self.path != "/api/label":
                raise RequestError(f"no such endpoint {self.path}", HTTPStatus.NOT_FOUND)
            kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if kind != "application/json":  # no cross-site form posts
                raise RequestError(f"Content-Type {kind!r} is not application/json")
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                raise RequestError(f"body length {length} is not in 1..{MAX_BODY}")
            try:
                payload = json.loads(self.rfile.read(length))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise RequestError(f"the body is not JSON ({exc})") from None
            self._json(HTTPStatus.OK, self.server.session.set_label(payload))
        except RequestError as exc:
            self._json(exc.status, {"error": str(exc)})
        except ValueError as exc:  # Content-Length not a number
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})


class _LabelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], session: LabelSession, verbose: bool):
        self.session, self.verbose = session, verbose
        super().__init__(address, _Handler)


def make_server(session: LabelSession, host: str = "127.0.0.1", port: int = 0,
                verbose: bool = False) -> ThreadingHTTPServer:
    """A server for ``session`` on 127.0.0.1:``port`` (0: a free port); not yet serving.

    Raises:
        ValueError: ``host`` is not this machine's loopback, or ``port`` is out of range.
    """
    if host not in LOCAL_HOSTS:
        raise ValueError(f"host {host!r} refused: the labelling page is served on 127.0.0.1 "
                         "only (it writes label files)")
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is not in 0..65535")
    return _LabelServer(("127.0.0.1", port), session, verbose)


def server_url(server: ThreadingHTTPServer) -> str:
    """The page's address, ``http://127.0.0.1:PORT/``."""
    return f"http://127.0.0.1:{server.server_address[1]}/"
