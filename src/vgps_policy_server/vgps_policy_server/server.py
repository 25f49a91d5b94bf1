"""The WebSocket server of ``vgps-policy/1``: one policy, any number of clients and episodes.

Each connection gets a thread; requests on one connection are answered in order, and the
policy is called under one lock (one model). Every request gets exactly one reply: a bad one
gets ``{"type": "error", "code", "message"}`` and the connection stays open; a policy that
raises or returns bad actions gets ``policy_error`` / ``bad_actions`` and its output is never
sent. Messages up to ``max_message_bytes`` are served; larger ones up to twice that are read
and answered ``too_large``; beyond that the WebSocket layer refuses the frame before reading it
and closes the connection with code 1009 (the client reports ``too_large`` too).

Usage::

    server = PolicyServer(RandomPolicy(horizon=4), "127.0.0.1", port=0).start()
    server.url                                   # ws://127.0.0.1:PORT (a free port)
    ...
    server.stop()

    PolicyServer(policy, "0.0.0.0", 8000).serve_forever()    # blocks; stop() from elsewhere
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from vgps_policy_server.policy import (
    ServedPolicy,
    check_actions,
    check_observation,
    validate_metadata,
)
from vgps_policy_server.protocol import (
    DEFAULT_MAX_MESSAGE_BYTES,
    PROTOCOL,
    ProtocolError,
    Request,
    error_reply,
    pack,
    parse_request,
)

log = logging.getLogger("vgps_policy_server")
CLIENT_ERRORS = ("bad_message", "version_mismatch", "too_large", "bad_observation", "bad_k")
_OK = pack({"type": "ok"})


class PolicyServer:
    """Serves one :class:`~vgps_policy_server.policy.ServedPolicy` (see the module docstring).

    The port is bound at construction (``port=0`` picks a free one: read :attr:`port`).

    Args:
        policy: the policy; its metadata is read and validated once, here.
        host: the address to listen on.
        port: the TCP port; 0 for any free one.
        max_message_bytes: the largest request served.

    Raises:
        ValueError: the policy's metadata is invalid, or ``max_message_bytes`` < 1.
        OSError: the address cannot be bound.
    """

    def __init__(self, policy: ServedPolicy, host: str = "127.0.0.1", port: int = 8000,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        if isinstance(max_message_bytes, bool) or not isinstance(max_message_bytes, int) or (
                max_message_bytes < 1):
            raise ValueError(f"max_message_bytes={max_message_bytes!r}: need an integer >= 1")
        self.policy = policy
        self.metadata = validate_metadata(policy.metadata())
        self.max_message_bytes = max_message_bytes
        self.horizon, self.max_k = self.metadata["horizon"], self.metadata["max_k"]
        self._metadata_reply = pack({"type": "metadata", "protocol": PROTOCOL,
                                     **self.metadata})
        self._policy_lock = threading.Lock()
        self._connections: set[ServerConnection] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family)
        self.host, self.port = host, int(sock.getsockname()[1])
        self._server = serve(self._serve_connection, sock=sock, compression=None,
                             max_size=2 * max_message_bytes)

    @property
    def url(self) -> str:
        """``ws://HOST:PORT`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether :meth:`start`'s thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def serve_forever(self) -> None:
        """Serves until :meth:`stop` is called (from another thread or a signal handler)."""
        if self._stopped:
            raise RuntimeError("this PolicyServer was stopped; make a new one")
        self._server.serve_forever()

    def start(self) -> PolicyServer:
        """Serves in a background thread; returns self."""
        if self._thread is not None:
            raise RuntimeError("PolicyServer.start() called twice")
        self._thread = threading.Thread(target=self.serve_forever, name="policy-server",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops listening and closes every connection (waits for a running sample first)."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:  # websockets < 13 leaves them open
            connection.close()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one connection ---------------------------------------------------------------------

    def _serve_connection(self, connection: ServerConnection) -> None:
        with self._connections_lock:
            self._connections.add(connection)
        try:
            while True:
                try:
                    data = connection.recv()
                except ConnectionClosed:
                    return
                reply = self.handle(data)
                try:
                    connection.send(reply)
                except ConnectionClosed:
                    return
        finally:
            with self._connections_lock:
                self._connections.discard(connection)

    def handle(self, data: bytes | str) -> bytes:
        """One request message -> its reply message (never raises)."""
        received = time.perf_counter()
        try:
            request = parse_request(data, self.max_message_bytes)
            if request.type == "metadata":
                return self._metadata_reply
            if request.type == "reset":
                with self._policy_lock:
                    self._call(self.policy.reset, request.episode_id)
                return _OK
            return self._sample(request, received)
        except ProtocolError as exc:
            if exc.code in CLIENT_ERRORS:
                log.info("%s: %s", exc.code, exc.message)
            else:
                log.warning("%s: %s", exc.code, exc.message)
            return pack(error_reply(exc.code, exc.message))
        except Exception as exc:  # the server must answer, whatever happened
            log.exception("internal error")
            return pack(error_reply("policy_error", f"server error: {type(exc).__name__}: "
                                                    f"{exc}"))

    def _sample(self, request: Request, received: float) -> bytes:
        if not 1 <= request.k <= self.max_k:
            raise ProtocolError("bad_k", f"k={request.k}: this server draws 1..{self.max_k} "
                                         "candidates per request")
        observation = check_observation(request.observation, self.metadata)
        with self._policy_lock:
            start = time.perf_counter()
            actions = self._call(self.policy.sample, observation, request.instruction,
                                 request.k, request.seed, request.episode_id, request.step)
            sample_ms = (time.perf_counter() - start) * 1e3
        actions = check_actions(actions, request.k, self.horizon)
        return self._actions_reply(actions, sample_ms, received)

    @staticmethod
    def _actions_reply(actions: np.ndarray, sample_ms: float, received: float) -> bytes:
        # packed by hand so that server_ms covers encoding the actions too
        head = (msgpack.Packer().pack_map_header(3) + pack("type") + pack("actions")
                + pack("actions") + pack(actions) + pack("timing"))
        timing = {"sample_ms": sample_ms, "server_ms": (time.perf_counter() - received) * 1e3}
        return head + pack(timing)

    @staticmethod
    def _call(method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except Exception as exc:  # reported to the client as policy_error
            log.exception("the policy's %s raised", method.__name__)
            raise ProtocolError("policy_error", f"the policy's {method.__name__} raised "
                                                f"{type(exc).__name__}: {exc}") from None
