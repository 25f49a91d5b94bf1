"""The one registry of policies: name -> factory, for the CLI, the evaluation and the policy node.

Every way to build a policy by name goes through :func:`make_policy`; :data:`FACTORIES` is the
only list of names (``vgps eval --policy``, the policy node's ``policy`` parameter and
:class:`PolicySettings` all check against it). Each factory imports its adapter when called, so
optional dependencies stay optional: Octo fails with its install command, the simulation policy
with the ``sim`` extra's.

==========  ===================================================================================
``sim``     :class:`~vgps_policy_bridge.sim_policy.SimPolicy`: plans from the simulator's state
            (``observation["privileged"]``); runs in-process (``vgps eval``, ``vgps collect``)
``octo``    :class:`~vgps_policy_bridge.octo_policy.OctoPolicy` (optional ``octo`` package),
            chunks cut to ``horizon`` actions
``remote``  a policy server: ``ws://`` -> :class:`~vgps_policy_bridge.server_policy.ServerPolicy`
            (``vgps-policy-server``, docs/policy_protocol.md); ``http(s)://.../act`` ->
            :class:`~vgps_policy_bridge.remote_policy.RemotePolicy` (an OpenVLA-style endpoint)
``random``  :class:`~vgps_policy_bridge.random_policy.RandomPolicy`: Gaussian steps that ignore
            the image (plumbing checks of a real arm); runs in-process
==========  ===================================================================================

Usage::

    policy = make_policy(PolicySettings(policy="sim", horizon=2))   # or make_policy("sim")
    policy.reset()
    chunks = policy.sample(observation, "put carrot on plate", k=10, rng=rng)   # (10, 2, 7)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from vgps_policy_bridge.policy import Policy, PolicyUnavailableError

SIM_INSTALL = 'pip install -e "src/vgps_policy_bridge[sim]"'  # the simulator (vgps_widowx)


@dataclasses.dataclass(frozen=True)
class PolicySettings:
    """Which policy to build and its options (the policy node's parameters)."""

    policy: str = "sim"  # a name of FACTORIES: sim | octo | remote | random
    horizon: int = 1  # H: sim plans H actions; octo keeps the first H of its chunk
    octo_model: str = "hf://rail-berkeley/octo-small-1.5"  # checkpoint path or hf:// id
    octo_dataset_key: str = "bridge_dataset"  # dataset statistics to unnormalise with
    remote_url: str = "ws://127.0.0.1:8000"  # vgps-policy-server, or an OpenVLA-style /act URL
    remote_timeout_s: float = 2.0  # per request
    remote_batched: bool = False  # /act only: one request with "n": K instead of K requests

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.policy not in FACTORIES:
            raise ValueError(f"{name}.policy={self.policy!r}: choose from {POLICIES}")
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or not (
                1 <= self.horizon <= 64):
            raise ValueError(f"{name}.horizon={self.horizon!r}: need an integer in 1..64")
        if not self.remote_timeout_s > 0:
            raise ValueError(f"{name}.remote_timeout_s={self.remote_timeout_s!r}: must be > 0")


PolicyFactory = Callable[[PolicySettings], Policy]


class _Truncated(Policy):
    """Keeps the first ``horizon`` actions of another policy's chunks."""

    def __init__(self, inner: Policy, horizon: int):
        self.inner, self.horizon, self.name = inner, horizon, inner.name

    def sample(self, observation, instruction, k, rng) -> np.ndarray:
        return self.inner.sample(observation, instruction, k, rng)[:, : self.horizon]

    def reset(self) -> None:
        self.inner.reset()


def _sim(settings: PolicySettings) -> Policy:
    try:
        from vgps_policy_bridge.sim_policy import SimPolicy, SimPolicyConfig
    except ImportError as exc:
        if not (exc.name or "").startswith(("vgps_widowx", "mujoco")):
            raise
        raise PolicyUnavailableError(f"policy 'sim' needs the simulator ({exc}); install it "
                                     f"with: {SIM_INSTALL}") from exc
    return SimPolicy(SimPolicyConfig(horizon=settings.horizon))


def _octo(settings: PolicySettings) -> Policy:
    from vgps_policy_bridge.octo_policy import OctoPolicy

    octo = OctoPolicy(settings.octo_model, settings.octo_dataset_key)
    return _Truncated(octo, settings.horizon)


def _remote(settings: PolicySettings) -> Policy:
    if settings.remote_url.startswith(("ws://", "wss://")):
        from vgps_policy_bridge.server_policy import ServerPolicy

        return ServerPolicy(settings.remote_url, settings.remote_timeout_s,
                            horizon=settings.horizon)
    from vgps_policy_bridge.remote_policy import RemotePolicy

    return RemotePolicy(settings.remote_url, settings.remote_timeout_s, settings.remote_batched)


def _random(settings: PolicySettings) -> Policy:
    from vgps_policy_bridge.random_policy import RandomPolicy

    return RandomPolicy(horizon=settings.horizon)


FACTORIES: dict[str, PolicyFactory] = {"sim": _sim, "octo": _octo, "remote": _remote,
                                       "random": _random}
POLICIES: tuple[str, ...] = tuple(FACTORIES)
# Policies that plan from the simulator's state: the policy node pairs each image with the
# state published for it, the evaluation passes ``env.privileged_state()``.
NEEDS_PRIVILEGED_STATE = frozenset({"sim"})
# Policies ``vgps eval`` and ``vgps collect`` run in-process (Octo and remote servers run behind
# the policy node).
IN_PROCESS: tuple[str, ...] = ("sim", "random")


def make_policy(settings: PolicySettings | str) -> Policy:
    """Builds the policy adapter (loads models: call at configure time).

    Args:
        settings: the settings, or just a policy name (default settings).

    Returns:
        The :class:`~vgps_policy_bridge.policy.Policy`.

    Raises:
        PolicyUnavailableError: an optional package is missing (the message has the install
            command).
        ValueError: bad settings or an unknown name.
    """
    if isinstance(settings, str):
        settings = PolicySettings(policy=settings)
    return FACTORIES[settings.policy](settings)
