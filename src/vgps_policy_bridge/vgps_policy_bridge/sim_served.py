"""The simulation policy served by ``vgps-policy-server --policy sim`` (entry point ``sim``).

So the simulated arm runs the same wire path as a real robot's policy: the policy node talks the
policy-server protocol to a separate process, which plans from the simulator's state sent along
with each image (``observation["privileged"]``; metadata ``needs_privileged``). One
:class:`~vgps_policy_bridge.sim_policy.SimPolicy` per episode id (it remembers the previous
state to notice a stalled arm), the oldest dropped past ``MAX_EPISODES``.

Usage::

    vgps-policy-server --policy sim --port 8000 [--horizon 4]
"""

from __future__ import annotations

import argparse
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

MAX_EPISODES = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--horizon", type=int, default=1,
                        help="actions per candidate chunk (default 1)")


def build(args: argparse.Namespace) -> SimServed:
    return SimServed(horizon=args.horizon)


class SimServed:
    """``ServedPolicy`` over :class:`~vgps_policy_bridge.sim_policy.SimPolicy`."""

    def __init__(self, horizon: int = 1):
        from vgps_policy_bridge.sim_plan import SimPolicyConfig

        self.config = SimPolicyConfig(horizon=horizon)  # validates horizon
        self._episodes: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def metadata(self) -> dict[str, Any]:
        from vgps_policy_bridge import __version__

        return {"policy": {"name": "sim", "version": __version__}, "action_dim": 7,
                "action_space": "bridge_ee_delta", "horizon": self.config.horizon,
                "images": {"primary": [0, 0]},  # any size: the plan ignores the image
                "state": [], "window": 1, "max_k": 4096, "needs_privileged": True,
                "episodes": "many"}

    def _policy(self, episode_id: str, fresh: bool) -> Any:
        from vgps_policy_bridge.sim_policy import SimPolicy

        with self._lock:
            policy = None if fresh else self._episodes.get(episode_id)
            if policy is None:
                policy = SimPolicy(self.config)
                self._episodes[episode_id] = policy
                while len(self._episodes) > MAX_EPISODES:
                    self._episodes.popitem(last=False)
            self._episodes.move_to_end(episode_id)
            return policy

    def reset(self, episode_id: str) -> None:
        self._policy(episode_id, fresh=True)

    def sample(self, observation: dict[str, Any], instruction: str, k: int, seed: int,
               episode_id: str, step: int) -> np.ndarray:
        privileged = observation.get("privileged")
        if not isinstance(privileged, dict) or "task" not in privileged:
            raise ValueError("the simulation policy plans from the simulator's state: send it "
                             "as observation['privileged'] (robot:=sim only)")
        images = observation.get("images") or {}
        image = next(iter(images.values()), None)
        return self._policy(episode_id, fresh=False).sample(
            {"image": image, "privileged": privileged}, instruction, k,
            np.random.default_rng(seed))
