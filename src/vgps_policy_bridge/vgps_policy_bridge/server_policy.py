"""A policy served by ``vgps-policy-server`` (the vgps policy-server protocol), as a ``Policy``.

The generalist runs in its own environment (Octo's pins cannot live beside the critic), behind
a server; this adapter is the robot side of ``docs/policy_protocol.md``:

* at construction it asks for the server's metadata and checks it: protocol version, the Bridge
  action space with 7 dimensions, a chunk length H of at least the ``horizon`` asked for, an
  image input; a mismatch raises :class:`~vgps_policy_bridge.policy.PolicyUnavailableError`
  naming both sides, so the policy node's configure fails with that message;
* every episode gets an id of its own (:meth:`reset` sends it; the server clears that episode's
  observation history); every step sends the step number and a seed drawn from the caller's
  generator (the same generator state gives the same candidates);
* the camera frame goes as the server's first image key; simulation servers that plan from the
  simulator's state (``needs_privileged``) also get ``observation["privileged"]``;
* failures raise the client's typed errors (timeouts, lost connections, error replies); the
  policy node reports them on ``/diagnostics`` and publishes nothing for that image, so the
  selector's watchdog holds the arm. The client reconnects on the next call.

Usage::

    policy = ServerPolicy("ws://127.0.0.1:8000", timeout_s=2.0)
    policy.reset()                                             # each episode
    chunks = policy.sample({"image": frame}, "put carrot on plate", k=50, rng=rng)  # (50, H, 7)
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from vgps_policy_bridge.policy import ACTION_DIM, Policy, PolicyUnavailableError, check_k

ACTION_SPACE = "bridge_ee_delta"
WARM_UP_TIMEOUT_S = 300.0  # a served model compiles on its first call (Octo: seconds to minutes)
SERVER_INSTALL = "pip install -e src/vgps_policy_server"


def _client_module() -> Any:
    try:
        from vgps_policy_server import client
    except ImportError as exc:
        raise PolicyUnavailableError(
            f"policy 'remote' needs the policy-server client ({exc}); install it with: "
            f"{SERVER_INSTALL}") from exc
    return client


class ServerPolicy(Policy):
    """The policy behind a ``vgps-policy-server`` (see the module docstring).

    Args:
        url: ``ws://host:port`` of the server.
        timeout_s: longest wait for one answer.
        connect_timeout_s: longest wait for the connection (and the metadata).
        horizon: actions kept per chunk (None: the server's H).
        client: a ready client (tests); default: a new ``PolicyClient``.

    Raises:
        PolicyUnavailableError: no server answers at ``url``, or its metadata does not fit.
    """

    def __init__(self, url: str, timeout_s: float = 2.0, connect_timeout_s: float = 10.0,
                 horizon: int | None = None, client: Any = None):
        module = _client_module()
        self.url = url
        self.client = client or module.PolicyClient(url, timeout_s=timeout_s,
                                                    connect_timeout_s=connect_timeout_s)
        try:
            meta = self.client.metadata()
        except module.PolicyClientError as exc:
            raise PolicyUnavailableError(
                f"no policy server answers at {url}: {exc}; start one with "
                "`vgps-policy-server --policy NAME --port PORT` (docs/policy_protocol.md)"
            ) from exc
        self.metadata = meta
        self.horizon, self.image_key = self._check(meta, horizon)
        self.needs_privileged = bool(meta.get("needs_privileged", False))
        self.name = f"remote:{meta['policy']['name']}"
        self.last_timing: dict[str, float] = {}
        self._episode = ""
        self._step = 0
        self._reset_pending = True

    def _check(self, meta: dict[str, Any], horizon: int | None) -> tuple[int, str]:
        where = f"the policy server at {self.url}"
        try:
            name = str(meta["policy"]["name"])
            server_h = int(meta["horizon"])
            images = dict(meta["images"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyUnavailableError(f"{where} sent incomplete metadata ({exc!r})") from None
        if meta.get("action_dim") != ACTION_DIM or meta.get("action_space") != ACTION_SPACE:
            raise PolicyUnavailableError(
                f"{where} serves {name!r} with actions {meta.get('action_space')!r} of "
                f"{meta.get('action_dim')} dimensions; the arm takes {ACTION_SPACE!r} with "
                f"{ACTION_DIM}")
        if server_h < 1 or (horizon is not None and horizon > server_h):
            raise PolicyUnavailableError(
                f"{where} serves chunks of H={server_h} actions; horizon={horizon} asks for "
                "more: lower the policy node's horizon")
        if not images:
            raise PolicyUnavailableError(f"{where} takes no image input: {name!r} cannot see "
                                         "the camera")
        return (horizon or server_h), next(iter(images))

    def warm_up(self, k: int, image_shape: tuple[int, int] = (256, 256)) -> None:
        """One sample on a grey frame with a long timeout (the server compiles for this K)."""
        if self.needs_privileged:
            return  # a simulation server needs a real state; it compiles nothing anyway
        size = self.metadata["images"][self.image_key]
        height, width = (int(size[0]), int(size[1])) if min(size) > 0 else image_shape
        frame = np.full((height, width, 3), 128, np.uint8)
        observation = {"images": {self.image_key: frame}, "state": {}}
        client = _client_module().PolicyClient(self.url, timeout_s=WARM_UP_TIMEOUT_S,
                                               connect_timeout_s=WARM_UP_TIMEOUT_S)
        try:
            client.reset("warm-up")
            client.sample(observation, "warm up", check_k(k), 0, "warm-up", 0)
        finally:
            client.close()

    def reset(self) -> None:
        """A new episode id; the server is told before the next sample (never raises here)."""
        self._episode = uuid.uuid4().hex
        self._step = 0
        self._reset_pending = True

    def sample(self, observation: dict[str, Any], instruction: str, k: int,
               rng: np.random.Generator) -> np.ndarray:
        k = check_k(k)
        if not self._episode:
            self.reset()
        if self._reset_pending:
            self.client.reset(self._episode)
            self._reset_pending = False
        wire = {"images": {self.image_key: np.ascontiguousarray(observation["image"])},
                "state": {}}
        if self.needs_privileged:
            wire["privileged"] = observation.get("privileged") or {}
        seed = int(rng.integers(0, 2**31 - 1))
        actions, timing = self.client.sample(wire, instruction, k, seed, self._episode,
                                             self._step)
        self._step += 1
        self.last_timing = dict(timing)
        return np.asarray(actions, np.float32)[:, : self.horizon]
