"""A policy behind an HTTP server (OpenVLA-style ``/act`` deployment endpoint).

Protocol (OpenVLA's ``vla-scripts/deploy.py`` with ``json_numpy``): ``POST <url>`` with a JSON
body ``{"image": <uint8 (H, W, 3)>, "instruction": str}``, the image encoded as json_numpy does
(``{"__numpy__": base64 bytes, "dtype": "|u1", "shape": [H, W, 3]}``) or, with
``image_format="list"``, as nested lists. The reply is one 7-D action: a JSON list, a json_numpy
object, or ``{"action": ...}``. A server that samples should return a different action per call;
K candidates take K requests, or one with ``batched=True``: the body gains ``"n": K`` and the reply
must hold K actions (``{"actions": [[...], ...]}``, a (K, 7) list or json_numpy array).
Single-step actions become chunks with H = 1.

Only ``urllib.request`` is used (no extra dependency); every failure raises
:class:`RemotePolicyError` naming the URL and what went wrong.

Usage::

    policy = RemotePolicy("http://127.0.0.1:8000/act", timeout_s=2.0)
    chunks = policy.sample({"image": frame}, "put carrot on plate", k=10, rng=rng)  # (10, 1, 7)
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from vgps_policy_bridge.policy import ACTION_DIM, Policy, check_k


class RemotePolicyError(RuntimeError):
    """The policy server could not be reached or answered something unusable."""


def encode_image(image: np.ndarray, image_format: str = "json_numpy") -> Any:
    """uint8 (H, W, 3) -> the JSON value sent as ``"image"``."""
    image = np.ascontiguousarray(image, np.uint8)
    if image_format == "list":
        return image.tolist()
    return {"__numpy__": base64.b64encode(image.tobytes()).decode("ascii"),
            "dtype": image.dtype.str, "shape": list(image.shape)}


def decode_array(value: Any) -> np.ndarray:
    """A JSON list or json_numpy object -> float64 array."""
    if isinstance(value, dict) and "__numpy__" in value:
        raw = base64.b64decode(value["__numpy__"])
        return np.frombuffer(raw, np.dtype(value["dtype"])).reshape(value["shape"]).astype(float)
    return np.asarray(value, dtype=float)


class RemotePolicy(Policy):
    """Samples K candidates from an HTTP policy server.

    Args:
        url: the endpoint (``http://host:port/act``).
        timeout_s: per-request timeout.
        batched: one request with ``"n": K`` instead of K requests.
        image_format: ``"json_numpy"`` (OpenVLA's deploy server) or ``"list"``.
    """

    name = "remote"

    def __init__(self, url: str, timeout_s: float = 2.0, batched: bool = False,
                 image_format: str = "json_numpy"):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"remote_url={url!r}: need an http:// or https:// URL")
        if not timeout_s > 0:
            raise ValueError(f"remote_timeout_s={timeout_s!r}: must be > 0")
        if image_format not in ("json_numpy", "list"):
            raise ValueError(f"image_format={image_format!r}: use 'json_numpy' or 'list'")
        self.url, self.timeout_s, self.batched = url, float(timeout_s), bool(batched)
        self.image_format = image_format
        self.name = f"remote:{url}"

    def sample(self, observation: dict[str, Any], instruction: str, k: int,
               rng: np.random.Generator) -> np.ndarray:
        """K chunks (K, 1, 7) from the server for ``observation["image"]``.

        ``rng`` is not used: the server samples (requests carry no seed).
        """
        del rng
        k = check_k(k)
        body = {"image": encode_image(observation["image"], self.image_format),
                "instruction": instruction}
        if self.batched:
            reply = self._post({**body, "n": k})
            actions = decode_array(reply.get("actions", reply) if isinstance(reply, dict)
                                   else reply)
            if actions.shape != (k, ACTION_DIM):
                raise RemotePolicyError(f"{self.url} returned actions of shape {actions.shape} "
                                        f"for n={k}; expected ({k}, {ACTION_DIM})")
        else:
            payload = json.dumps(body).encode()
            actions = np.stack([self._action(self._post(body, payload)) for _ in range(k)])
        if not np.all(np.isfinite(actions)):
            raise RemotePolicyError(f"{self.url} returned NaN or inf actions")
        return actions[:, None, :].astype(np.float32)

    def _action(self, reply: Any) -> np.ndarray:
        value = reply.get("action", reply) if isinstance(reply, dict) else reply
        try:
            action = decode_array(value).reshape(-1)
        except (TypeError, ValueError, KeyError) as exc:
            raise RemotePolicyError(f"{self.url} returned no usable action ({exc})") from None
        if action.shape != (ACTION_DIM,):
            raise RemotePolicyError(f"{self.url} returned an action of shape {action.shape}; "
                                    f"expected ({ACTION_DIM},)")
        return action

    def _post(self, body: dict[str, Any], payload: bytes | None = None) -> Any:
        data = payload if payload is not None else json.dumps(body).encode()
        request = urllib.request.Request(self.url, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode(errors="replace")
            raise RemotePolicyError(f"{self.url} answered HTTP {exc.code}: {detail}") from None
        except TimeoutError:
            raise RemotePolicyError(f"{self.url} did not answer within "
                                    f"{self.timeout_s:g} s (remote_timeout_s)") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise RemotePolicyError(f"{self.url} did not answer within "
                                        f"{self.timeout_s:g} s (remote_timeout_s)") from None
            raise RemotePolicyError(f"cannot reach the policy server at {self.url}: "
                                    f"{reason}") from None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise RemotePolicyError(f"{self.url} did not return JSON ({exc})") from None
