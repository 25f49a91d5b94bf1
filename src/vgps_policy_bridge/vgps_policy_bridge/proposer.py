"""The policy node's logic (ROS-free): build the policy, pair images with sim states, sample.

* :func:`make_policy` builds the adapter named by the node's ``policy`` parameter through the
  one registry of policies (:mod:`vgps_policy_bridge.registry`, re-exported here with
  :class:`PolicySettings` and :data:`POLICIES` for the node).
* :class:`Proposer` numbers the steps and pairs each camera image with the simulator state
  published for the same stamp (``policy:=sim`` plans from privileged state; the two arrive on
  different topics in either order), then samples K chunks.

Steps: the step counter counts the images the node sampled for since activation, so it increases
monotonically across episodes (the selector rejects steps that are not newer than the last one it
executed); the arm driver does not rely on it, it matches decisions by image stamp.

Usage::

    proposer = Proposer(make_policy(PolicySettings(policy="sim")), k=10, seed=0)
    proposer.add_state(stamp_ns, privileged_state)
    ready = proposer.add_image(stamp_ns, image)          # the observation once both arrived
    chunks, step, sample_ms = proposer.propose(ready, "put carrot on plate")
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from vgps_policy_bridge.policy import Policy, check_k
from vgps_policy_bridge.registry import POLICIES, PolicySettings, make_policy

__all__ = ["POLICIES", "PolicySettings", "Proposer", "make_policy"]


class Proposer:
    """Step numbering, image/state pairing and sampling around a policy (thread-safe).

    Args:
        policy: the adapter.
        k: candidates per step (live-settable attribute).
        seed: sampling seed; step ``s`` samples with ``default_rng([seed, s])``.
        needs_state: pair images with simulator states (``policy:=sim``).
        max_pending: unpaired images/states kept.
    """

    def __init__(self, policy: Policy, k: int = 10, seed: int = 0, needs_state: bool = False,
                 max_pending: int = 8):
        self.policy = policy
        self.k = check_k(k)
        self.seed = int(seed)
        self.needs_state = needs_state
        self.step = 0
        self._max = max_pending
        self._lock = threading.Lock()
        self._images: OrderedDict[int, np.ndarray] = OrderedDict()
        self._states: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def reset(self) -> None:
        """New episode: the policy forgets its history (the step counter keeps counting)."""
        with self._lock:
            self.policy.reset()
            self._images.clear()
            self._states.clear()

    def add_image(self, stamp_ns: int, image: np.ndarray) -> dict[str, Any] | None:
        """Returns the observation for ``stamp_ns`` when complete, else keeps the image."""
        with self._lock:
            if not self.needs_state:
                return {"stamp_ns": stamp_ns, "image": image}
            state = self._states.pop(stamp_ns, None)
            if state is None:
                self._push(self._images, stamp_ns, image)
                return None
            return {"stamp_ns": stamp_ns, "image": image, "privileged": state}

    def add_state(self, stamp_ns: int, state: dict[str, Any]) -> dict[str, Any] | None:
        """Returns the observation for ``stamp_ns`` when its image already arrived."""
        with self._lock:
            image = self._images.pop(stamp_ns, None)
            if image is None:
                self._push(self._states, stamp_ns, state)
                return None
            return {"stamp_ns": stamp_ns, "image": image, "privileged": state}

    def propose(self, observation: dict[str, Any], instruction: str
                ) -> tuple[np.ndarray, int, float]:
        """Samples K chunks for one observation.

        Returns:
            ``(chunks float32 (K, H, 7), step, sample_ms)``.
        """
        with self._lock:
            step = self.step
            self.step += 1
            k = self.k
        rng = np.random.default_rng([self.seed, step])
        start = time.perf_counter()
        chunks = self.policy.sample(observation, instruction, k, rng)
        return np.asarray(chunks, np.float32), step, (time.perf_counter() - start) * 1e3

    def _push(self, buffer: OrderedDict, key: int, value: Any) -> None:
        buffer[key] = value
        while len(buffer) > self._max:
            buffer.popitem(last=False)
