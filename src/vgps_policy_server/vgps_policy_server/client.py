"""The robot side of ``vgps-policy/1``: a blocking client with typed errors.

One WebSocket connection, opened on the first call and again on the first call after any
failure (lazy reconnection; a call is never retried behind the caller's back, since a sample
may have changed the episode's history on the server). Every failure raises a
:class:`PolicyClientError`:

* :class:`PolicyServerError` - the server answered with an error reply (``.code``, ``.message``);
  also ``version_mismatch`` when the server speaks another protocol version, and ``too_large``
  when it closed the connection over an oversize message;
* :class:`PolicyTimeoutError` - no answer within ``timeout_s``: the connection is dropped (a late
  answer can never be taken for the next request's);
* :class:`PolicyConnectionError` - cannot connect within ``connect_timeout_s``, or the connection
  was lost.

Usage::

    with PolicyClient("ws://127.0.0.1:8000", timeout_s=2.0) as client:
        meta = client.metadata()                              # checked protocol version
        client.reset("ep-3")
        actions, timing = client.sample({"images": {"primary": frame}, "state": {}},
                                        "put the carrot on the plate", k=50, seed=123,
                                        episode_id="ep-3", step=0)
        actions.shape, timing["round_trip_ms"]                # (50, H, 7) float32
"""

from __future__ import annotations

import contextlib
import operator
import socket
import threading
import time
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect

from vgps_policy_server.protocol import (
    DEFAULT_MAX_MESSAGE_BYTES,
    PROTOCOL,
    ProtocolError,
    pack,
    unpack,
)

MESSAGE_TOO_BIG = 1009  # WebSocket close code


class PolicyClientError(RuntimeError):
    """Any failure of a :class:`PolicyClient` call."""


class PolicyServerError(PolicyClientError):
    """The server answered with an error reply.

    Attributes:
        code: one of ``vgps_policy_server.protocol.ERROR_CODES``.
        message: the server's explanation.
    """

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class PolicyTimeoutError(PolicyClientError):
    """No answer within the client's ``timeout_s`` (the connection was dropped)."""


class PolicyConnectionError(PolicyClientError):
    """The server cannot be reached, or the connection was lost."""


class PolicyClient:
    """A connection to one ``vgps-policy-server`` (see the module docstring). Thread-safe:
    calls from several threads are serialised.

    Args:
        url: ``ws://host:port``.
        timeout_s: the longest wait for one answer.
        connect_timeout_s: the longest wait for the connection (TCP and WebSocket handshake).
        max_message_bytes: the largest reply accepted.
    """

    def __init__(self, url: str, timeout_s: float = 2.0, connect_timeout_s: float = 5.0,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"url={url!r}: need a ws:// or wss:// URL")
        for what, value in (("timeout_s", timeout_s), ("connect_timeout_s", connect_timeout_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"PolicyClient.{what}={value!r}: need a number > 0")
        self.url, self.timeout_s = url, float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.max_message_bytes = max_message_bytes
        self._ws: ClientConnection | None = None
        self._lock = threading.RLock()

    # -- the protocol's requests ------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The server's metadata (everything but ``type``), its protocol version checked.

        Raises:
            PolicyServerError: ``version_mismatch`` when the server speaks another version.
        """
        reply, _ = self._request({"type": "metadata"}, expect="metadata")
        if reply.get("protocol") != PROTOCOL:
            raise PolicyServerError("version_mismatch", f"the server at {self.url} speaks "
                                                        f"{reply.get('protocol')!r}, this "
                                                        f"client {PROTOCOL!r}")
        reply.pop("type")
        return reply

    def reset(self, episode_id: str) -> None:
        """Tells the server that ``episode_id`` starts (it forgets that episode's history)."""
        self._request({"type": "reset", "episode_id": episode_id}, expect="ok")

    def sample(self, observation: dict[str, Any], instruction: str, k: int, seed: int,
               episode_id: str, step: int) -> tuple[np.ndarray, dict[str, float]]:
        """K candidate chunks for one observation.

        Args:
            observation: ``{"images": {name: uint8 (h, w, 3)}, "state": {name: float array}}``
                (+ ``"privileged"`` for simulation servers), names and sizes as the metadata
                says.
            instruction: the language instruction.
            k: the number of candidates, 1..max_k.
            seed: the server's only source of randomness, 0..2**64-1.
            episode_id: the episode (as sent to :meth:`reset`).
            step: the step within the episode, from 0.

        Returns:
            ``(actions, timing)``: float32 (K, H, 7) and ``{"sample_ms", "server_ms",
            "round_trip_ms"}`` (round trip: from encoding the request to decoding the reply).

        Raises:
            TypeError: an array of a dtype the protocol cannot carry, or k, seed or step not an
                integer.
        """
        k = operator.index(k)
        request = {"type": "sample", "episode_id": episode_id, "step": operator.index(step),
                   "k": k, "seed": operator.index(seed), "instruction": instruction,
                   "observation": observation}
        reply, round_trip_ms = self._request(request, expect="actions")
        actions = reply.get("actions")
        if not (isinstance(actions, np.ndarray) and actions.dtype == np.float32
                and actions.ndim == 3 and actions.shape[0] == k and actions.shape[2] == 7):
            what = (f"{actions.dtype} {actions.shape}" if isinstance(actions, np.ndarray)
                    else type(actions).__name__)
            raise PolicyClientError(f"the server at {self.url} sent actions of {what}; "
                                    f"expected float32 ({k}, H, 7)")
        timing = reply.get("timing")
        timing = {key: float(value) for key, value in timing.items()
                  if isinstance(value, (int, float))} if isinstance(timing, dict) else {}
        timing["round_trip_ms"] = round_trip_ms
        return np.array(actions), timing

    def close(self) -> None:
        """Closes the connection (the next call opens a new one)."""
        with self._lock:
            self._drop()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the connection ---------------------------------------------------------------------

    def _connection(self) -> ClientConnection:
        if self._ws is not None and self._ws.protocol.state is not State.OPEN:
            self._drop()  # closed by the server since the last call: nothing was sent yet
        if self._ws is None:
            try:
                self._ws = connect(self.url, open_timeout=self.connect_timeout_s,
                                   close_timeout=1.0, compression=None,
                                   max_size=self.max_message_bytes)
            except (OSError, TimeoutError, WebSocketException) as exc:
                raise PolicyConnectionError(
                    f"cannot connect to the policy server at {self.url} within "
                    f"{self.connect_timeout_s:g} s: {type(exc).__name__}: {exc}") from None
        return self._ws

    def _drop(self, abort: bool = False) -> None:
        ws, self._ws = self._ws, None
        if ws is None:
            return
        if abort:  # do not wait for a closing handshake from a stalled server
            with contextlib.suppress(OSError):
                ws.socket.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):  # the connection is being thrown away
            ws.close()

    def _request(self, message: dict[str, Any], expect: str) -> tuple[dict[str, Any], float]:
        with self._lock:
            ws = self._connection()
            start = time.perf_counter()
            data = pack({**message, "protocol": PROTOCOL})
            try:
                ws.send(data)
                raw = ws.recv(timeout=self.timeout_s)
            except TimeoutError:
                self._drop(abort=True)
                raise PolicyTimeoutError(
                    f"no answer from the policy server at {self.url} to {message['type']!r} "
                    f"within {self.timeout_s:g} s; the connection was dropped, the next call "
                    "reconnects") from None
            except ConnectionClosed as exc:
                self._drop()
                received = exc.rcvd
                if received is not None and received.code == MESSAGE_TOO_BIG:
                    raise PolicyServerError(
                        "too_large", f"the server closed the connection: {message['type']!r} "
                                     f"request of {len(data)} bytes is too big "
                                     f"({received.reason or 'message too big'})") from None
                raise PolicyConnectionError(f"lost the connection to the policy server at "
                                            f"{self.url}: {exc}") from None
            except OSError as exc:
                self._drop()
                raise PolicyConnectionError(f"lost the connection to the policy server at "
                                            f"{self.url}: {type(exc).__name__}: {exc}") from None
            try:
                reply = unpack(raw) if isinstance(raw, bytes) else None
            except ProtocolError as exc:
                self._drop()
                raise PolicyClientError(f"unreadable reply from {self.url}: {exc}") from None
            round_trip_ms = (time.perf_counter() - start) * 1e3
        if not isinstance(reply, dict):
            raise PolicyClientError(f"the server at {self.url} sent a "
                                    f"{type(raw).__name__} frame that is not a msgpack map")
        if reply.get("type") == "error":
            raise PolicyServerError(str(reply.get("code")), str(reply.get("message")))
        if reply.get("type") != expect:
            raise PolicyClientError(f"the server at {self.url} answered {reply.get('type')!r} "
                                    f"to {message['type']!r}; expected {expect!r}")
        return reply, round_trip_ms
