"""What a served policy implements (:class:`ServedPolicy`) and what the server checks around it.

A served policy is one model in its own environment: it declares its inputs and outputs once
(:meth:`ServedPolicy.metadata`, checked by :func:`validate_metadata`), forgets an episode on
:meth:`ServedPolicy.reset` and draws K candidate chunks per :meth:`ServedPolicy.sample`. The
server checks every observation against the metadata before the policy sees it
(:func:`check_observation`) and every result before it is sent (:func:`check_actions`).
Policies that keep per-episode history hold it in an :class:`EpisodeStore` (bounded: the
oldest episode is dropped first), so one server serves any number of episodes.

Usage::

    class MyPolicy:                                  # satisfies ServedPolicy
        def metadata(self):
            return make_metadata("mine", "1.0", horizon=4, images={"primary": (256, 256)})
        def reset(self, episode_id): ...
        def sample(self, observation, instruction, k, seed, episode_id, step):
            return np.zeros((k, 4, 7), np.float32)

    meta = validate_metadata(MyPolicy().metadata())
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from vgps_policy_server.protocol import ProtocolError

ACTION_DIM = 7  # [dx, dy, dz, droll, dpitch, dyaw, gripper]
ACTION_SPACE = "bridge_ee_delta"  # base-frame end-effector deltas, gripper in [0, 1], 1 = open
DEFAULT_MAX_K = 256
METADATA_KEYS = ("policy", "action_dim", "action_space", "horizon", "images", "state",
                 "window", "max_k", "needs_privileged", "episodes")


@runtime_checkable
class ServedPolicy(Protocol):
    """One model behind ``vgps-policy-server``; the server calls it under one lock."""

    def metadata(self) -> dict[str, Any]:
        """The metadata reply without ``type`` and ``protocol`` (see :func:`make_metadata`)."""
        ...

    def reset(self, episode_id: str) -> None:
        """Forgets the history of ``episode_id`` (other episodes are untouched)."""
        ...

    def sample(self, observation: dict[str, Any], instruction: str, k: int, seed: int,
               episode_id: str, step: int) -> np.ndarray:
        """Draws K candidate chunks for one observation.

        Args:
            observation: ``{"images": {name: uint8 (h, w, 3)}, "state": {name: float (n,)},
                "privileged": map}`` (privileged only when sent), arrays read-only.
            instruction: the language instruction.
            k: the number of candidates, 1..max_k.
            seed: the only source of randomness: the same seed gives the same samples.
            episode_id: the episode this observation belongs to.
            step: the step number within the episode (0 first).

        Returns:
            float32 (K, H, 7) in the robot action space: base-frame end-effector deltas and an
            absolute gripper command in [0, 1], 1 = open.
        """
        ...


def make_metadata(name: str, version: str, horizon: int, images: Mapping[str, Any],
                  state: list[str] | tuple[str, ...] = (), window: int = 1,
                  max_k: int = DEFAULT_MAX_K, needs_privileged: bool = False) -> dict[str, Any]:
    """A policy's metadata dict (validated).

    Args:
        name, version: the model's name and version.
        horizon: H, actions per chunk.
        images: camera name -> (height, width) the policy takes; 0 for a side means any size.
        state: names of the proprioceptive inputs it takes (each a float array).
        window: observations of history the policy uses per sample.
        max_k: the largest K one request may ask for.
        needs_privileged: it needs ``observation["privileged"]`` (simulation only).
    """
    return validate_metadata({
        "policy": {"name": name, "version": version}, "action_dim": ACTION_DIM,
        "action_space": ACTION_SPACE, "horizon": horizon,
        "images": {key: [int(v) for v in size] for key, size in images.items()},
        "state": list(state), "window": window, "max_k": max_k,
        "needs_privileged": needs_privileged, "episodes": "many"})


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def validate_metadata(meta: Any) -> dict[str, Any]:
    """Checks a policy's metadata; returns it as a plain dict.

    Raises:
        ValueError: naming the first missing or bad key.
    """
    if not isinstance(meta, Mapping):
        raise ValueError(f"metadata() returned a {type(meta).__name__}, not a dict")
    meta = dict(meta)
    missing = [key for key in METADATA_KEYS if key not in meta]
    if missing:
        raise ValueError(f"metadata() lacks {missing}; it needs {list(METADATA_KEYS)}")
    policy = meta["policy"]
    if not (isinstance(policy, Mapping) and isinstance(policy.get("name"), str)
            and isinstance(policy.get("version"), str)):
        raise ValueError(f"metadata()['policy']={policy!r}: need {{'name': str, "
                         "'version': str}")
    checks: list[tuple[str, Callable[[Any], bool], str]] = [
        ("action_dim", lambda v: v == ACTION_DIM and not isinstance(v, bool), f"{ACTION_DIM}"),
        ("action_space", lambda v: v == ACTION_SPACE, repr(ACTION_SPACE)),
        ("horizon", _positive_int, "an integer >= 1"),
        ("window", _positive_int, "an integer >= 1"),
        ("max_k", _positive_int, "an integer >= 1"),
        ("needs_privileged", lambda v: isinstance(v, bool), "a bool"),
        ("episodes", lambda v: v == "many", "'many'"),
        ("state", lambda v: isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v),
         "a list of names"),
        ("images", lambda v: isinstance(v, Mapping) and all(
            isinstance(name, str) and isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in size)
            for name, size in v.items()), "{name: [height, width]} (0 = any size)"),
    ]
    for key, ok, need in checks:
        if not ok(meta[key]):
            raise ValueError(f"metadata()[{key!r}]={meta[key]!r}: need {need}")
    meta["images"] = {name: [int(d) for d in size] for name, size in meta["images"].items()}
    meta["state"] = list(meta["state"])
    meta["policy"] = {"name": policy["name"], "version": policy["version"]}
    return meta


def check_observation(observation: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Checks a sample request's observation against the metadata.

    Every declared image must be there as uint8 (height, width, 3) (a side of 0 in the metadata
    takes any size); every declared state as a finite float32/float64 array; undeclared images
    and states are checked the same way and passed on. ``privileged`` must be a map if present.

    Returns:
        ``{"images": ..., "state": ...}`` plus ``privileged`` when it was sent.

    Raises:
        ProtocolError: ``bad_observation`` naming the input and what is wrong with it.
    """
    images = observation.get("images")
    state = observation.get("state", {})
    if not isinstance(images, dict):
        raise ProtocolError("bad_observation", "observation['images'] must be a map of name -> "
                                               "uint8 (H, W, 3) array")
    if not isinstance(state, dict):
        raise ProtocolError("bad_observation", "observation['state'] must be a map of name -> "
                                               "float array")
    for name in meta["images"]:
        if name not in images:
            raise ProtocolError("bad_observation", f"image {name!r} missing; this policy takes "
                                                   f"{sorted(meta['images'])}")
    for name, image in images.items():
        want = meta["images"].get(name, [0, 0])
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            what = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
            raise ProtocolError("bad_observation", f"image {name!r} is {what}: need uint8")
        if (image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape
                or any(w and w != s for w, s in zip(want, image.shape[:2]))):
            size = "any size" if not any(want) else f"{want[0]}x{want[1]}"
            raise ProtocolError("bad_observation", f"image {name!r} has shape {image.shape}: "
                                                   f"need (height, width, 3), {size}")
    for name in meta["state"]:
        if name not in state:
            raise ProtocolError("bad_observation", f"state {name!r} missing; this policy takes "
                                                   f"{meta['state']}")
    for name, value in state.items():
        if not isinstance(value, np.ndarray) or value.dtype not in (np.float32, np.float64):
            what = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise ProtocolError("bad_observation", f"state {name!r} is {what}: need a float32 "
                                                   "or float64 array")
        if not np.isfinite(value).all():
            raise ProtocolError("bad_observation", f"state {name!r} holds NaN or inf")
    checked: dict[str, Any] = {"images": images, "state": state}
    if "privileged" in observation:
        if not isinstance(observation["privileged"], dict):
            raise ProtocolError("bad_observation", "observation['privileged'] must be a map")
        checked["privileged"] = observation["privileged"]
    elif meta["needs_privileged"]:
        raise ProtocolError("bad_observation", "this policy needs observation['privileged'] "
                                               "(simulation state)")
    return checked


def check_actions(actions: Any, k: int, horizon: int) -> np.ndarray:
    """Checks what a policy returned: float32 (K, H, 7), all finite.

    Raises:
        ProtocolError: ``bad_actions`` saying what is wrong (nothing of it is sent on).
    """
    if not isinstance(actions, np.ndarray):
        raise ProtocolError("bad_actions", f"the policy returned a {type(actions).__name__}, "
                                           "not a numpy array")
    if actions.dtype != np.float32:
        raise ProtocolError("bad_actions", f"the policy returned {actions.dtype} actions: need "
                                           "float32")
    if actions.shape != (k, horizon, ACTION_DIM):
        raise ProtocolError("bad_actions", f"the policy returned shape {actions.shape}: need "
                                           f"(K, H, 7) = {(k, horizon, ACTION_DIM)}")
    if not np.isfinite(actions).all():
        bad = int(math.prod(actions.shape) - np.isfinite(actions).sum())
        raise ProtocolError("bad_actions", f"the policy returned {bad} NaN/inf action values")
    return actions


T = TypeVar("T")


class EpisodeStore(Generic[T]):
    """Per-episode state for any number of episode ids, the least recently used dropped first.

    Args:
        factory: makes the state of a new (or reset) episode.
        max_episodes: how many episodes are kept.

    Usage::

        store = EpisodeStore(list, max_episodes=64)
        store.reset("ep-1")                  # fresh state for ep-1
        store.get("ep-1").append(frame)      # created on first use
    """

    def __init__(self, factory: Callable[[], T], max_episodes: int = 64):
        if not _positive_int(max_episodes):
            raise ValueError(f"EpisodeStore.max_episodes={max_episodes!r}: need an integer >= 1")
        self.factory, self.max_episodes = factory, max_episodes
        self._episodes: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, episode_id: str) -> T:
        """The episode's state, created when unknown (or evicted)."""
        with self._lock:
            if episode_id not in self._episodes:
                return self._put(episode_id)
            self._episodes.move_to_end(episode_id)
            return self._episodes[episode_id]

    def reset(self, episode_id: str) -> T:
        """Replaces the episode's state by a fresh one; returns it."""
        with self._lock:
            return self._put(episode_id)

    def _put(self, episode_id: str) -> T:
        self._episodes.pop(episode_id, None)
        state = self._episodes[episode_id] = self.factory()
        while len(self._episodes) > self.max_episodes:
            self._episodes.popitem(last=False)
        return state

    def __contains__(self, episode_id: object) -> bool:
        with self._lock:
            return episode_id in self._episodes

    def __len__(self) -> int:
        with self._lock:
            return len(self._episodes)
