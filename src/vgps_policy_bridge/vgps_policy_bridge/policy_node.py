"""policy_node: proposes K candidate action chunks for every new camera image (lifecycle).

configure: builds the policy named by ``policy`` - ``sim`` (plans from the simulator's privileged
state on ``vgps/sim_state``), ``octo`` (loads ``octo_model``, a path or ``hf://`` id, and warms up
its sampler; fails with the install command when ``octo`` is missing) or ``remote``: a
``vgps-policy-server`` at ``remote_url`` (``ws://host:port``; its metadata is checked and its
sampler warmed up for ``k``; a server that plans from the simulator's state also gets
``vgps/sim_state``) or an OpenVLA-style HTTP ``/act`` endpoint (``http://.../act``).
activate: starts sampling. A policy or server failure (timeout, lost connection, error reply)
publishes nothing for that image and is counted and reported on ``/diagnostics``; the
selector's watchdog holds the arm meanwhile.

Per image: samples K (``k``, live) chunks of H (``horizon``) actions with
``default_rng([seed, step])`` and publishes ``vgps/candidates`` stamped with the image's stamp.
Images stamped more than ``max_age_s`` in the past or in the future (beyond the shared clock-skew
allowance), as the critic checks them, are rejected (``stale_stamp``, ``future_stamp``,
``bad_stamp``): candidates sampled from them would be stale for the selector anyway. The camera
stamps with the graph's clock at capture; replayed bags must be played with ``--restamp``.
Instructions on ``vgps/instruction`` are one printable line of at most 512 characters
(``bad_instruction`` otherwise; the previous instruction stays).
``step`` counts the images sampled for since the node started (monotonic across episodes; the
arm driver matches decisions by stamp). The instruction is the newest ``vgps/instruction``, else
the ``instruction`` parameter, else (sim) the simulator's own. A ``started`` event on
``vgps/episode`` resets the policy's history; episode events from any node but ``arm_driver``
are dropped (``rejected.foreign_publisher``; ``vgps_ros.trust``, parameter ``trusted_publishers``).

Subscribes: ``camera/image_raw`` (sensor QoS), ``vgps/instruction`` (transient local),
``vgps/sim_state`` (policy sim, or a server that needs it), ``vgps/episode``. Publishes:
``vgps/candidates``, ``/diagnostics``.
"""

from __future__ import annotations

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vgps_interfaces.msg import ActionCandidates, EpisodeStatus
from vgps_policy_bridge.policy import check_k
from vgps_policy_bridge.proposer import POLICIES, PolicySettings, Proposer, make_policy
from vgps_policy_bridge.ros_conversions import candidates_msg
from vgps_ros import qos
from vgps_ros.conversions import image_from_msg, sim_state_from_msg, stamp_to_ns
from vgps_ros.input_guard import MessageError, check_instruction, check_stamp
from vgps_ros.lifecycle import ManagedNode, Param, Update
from vgps_ros.runtime import now_s, spin
from vgps_ros.trust import TRUST_PARAM, TrustedPublishers, publish_alarm

_D = PolicySettings()


class PolicyNode(ManagedNode):
    """The policy as a managed node (see the module docstring)."""

    PARAMETERS = (
        Param("policy", _D.policy, "policy adapter, built at configure", choices=POLICIES,
              live=False),
        Param("k", 10, "candidates per step (live)", range=(1, 4096)),
        Param("horizon", _D.horizon,
              "actions per chunk (sim plans H steps; octo keeps the first H)", range=(1, 64),
              live=False),
        Param("seed", 0, "sampling seed: step s uses rng([seed, s])", range=(0, 2**31 - 1)),
        Param("instruction", "", "instruction used until one arrives on vgps/instruction"),
        Param("max_age_s", 1.0, "camera images with older (or future) stamps are rejected",
              range=(0.01, 60.0)),
        Param("octo_model", _D.octo_model, "Octo checkpoint directory or hf:// id (policy octo)",
              live=False),
        Param("octo_dataset_key", _D.octo_dataset_key,
              "dataset statistics Octo unnormalises actions with (policy octo)", live=False),
        Param("remote_url", _D.remote_url, "policy server: ws://host:port (vgps-policy-server) "
              "or an OpenVLA-style http://host:port/act (policy remote)", live=False),
        Param("remote_timeout_s", _D.remote_timeout_s, "per-request timeout (policy remote)",
              range=(0.01, 120.0), live=False),
        Param("remote_batched", _D.remote_batched,
              "one request with n = K instead of K requests (policy remote)", live=False),
        TRUST_PARAM,
    )
    CONFIGURED_BY = "policy"
    DIAGNOSTICS = True

    def __init__(self, name: str = "policy_node", **kwargs):
        super().__init__(name, **kwargs)
        self._group = MutuallyExclusiveCallbackGroup()  # sampling, one at a time
        self._proposer: Proposer | None = None
        self._pub = None
        self._instruction = ""
        self._last_sample_ms = float("nan")
        self._published = 0
        self._trust = TrustedPublishers(self, (qos.EPISODE,), self.reject,
                                        lambda: self.param("trusted_publishers"))

    def apply(self, update: Update) -> None:
        if "k" in update and self._proposer is not None:
            self._proposer.k = check_k(update.value("k"))

    # -- lifecycle --------------------------------------------------------------------------------
    def configure(self) -> None:
        # The configure-only parameters are exactly the PolicySettings fields.
        settings = PolicySettings(**{p.name: self.param(p.name) for p in self.PARAMETERS
                                     if not p.live})
        policy = make_policy(settings)
        if settings.policy == "octo":  # compile the sampler now, not at the first image
            policy.sample({"image": np.zeros((256, 256, 3), np.uint8)}, "warm up",
                          self.param("k"), np.random.default_rng(0))
            policy.reset()
        elif hasattr(policy, "warm_up"):  # a served model compiles for this K now
            policy.warm_up(self.param("k"))
        needs_state = settings.policy == "sim" or getattr(policy, "needs_privileged", False)
        self.own("_proposer", Proposer(policy, self.param("k"), self.param("seed"),
                                       needs_state=needs_state))
        self._pub = self.publisher(ActionCandidates, qos.CANDIDATES, qos.COMMAND)
        self.subscription(Image, qos.CAMERA, self._on_image, qos.SENSOR,
                          callback_group=self._group)
        self.subscription(String, qos.INSTRUCTION, self._on_instruction, qos.LATCHED)
        self.subscription(EpisodeStatus, qos.EPISODE,
                          self._trust.wrap(qos.EPISODE, self._on_episode), qos.COMMAND,
                          callback_group=self._group)
        if needs_state:
            self.subscription(String, qos.SIM_STATE, self._on_sim_state, qos.COMMAND,
                              callback_group=self._group)
        self.get_logger().info(f"policy {policy.name} ready (k={self.param('k')}, "
                               f"horizon={settings.horizon})")

    # -- callbacks --------------------------------------------------------------------------------
    def _on_instruction(self, msg: String) -> None:
        try:
            self._instruction = check_instruction(msg.data).strip()
        except MessageError as exc:  # the previous instruction stays
            self.reject(exc)

    def _on_episode(self, msg: EpisodeStatus) -> None:
        if msg.event == EpisodeStatus.EVENT_STARTED and self._proposer is not None:
            self._proposer.reset()

    def _on_image(self, msg: Image) -> None:
        if not self.active or self._proposer is None:
            return
        try:
            stamp_ns = stamp_to_ns(msg.header.stamp)
            check_stamp(stamp_ns * 1e-9, now_s(self), self.param("max_age_s"))
            image = image_from_msg(msg)
        except MessageError as exc:
            self.reject(exc)
            return
        observation = self._proposer.add_image(stamp_ns, image)
        if observation is not None:
            self._sample(observation)

    def _on_sim_state(self, msg: String) -> None:
        if not self.active or self._proposer is None:
            return
        try:
            stamp_ns, state = sim_state_from_msg(msg)
        except MessageError as exc:
            self.reject(exc)
            return
        observation = self._proposer.add_state(stamp_ns, state)
        if observation is not None:
            self._sample(observation)

    def _sample(self, observation: dict) -> None:
        privileged = observation.get("privileged") or {}
        instruction = (self._instruction or self.param("instruction")
                       or str(privileged.get("instruction", "")))
        if not instruction:
            self.reject(MessageError("empty_instruction", "no instruction: publish one on "
                                     "vgps/instruction or set the instruction parameter"))
            return
        try:
            chunks, step, sample_ms = self._proposer.propose(observation, instruction)
            msg = candidates_msg(chunks, observation["stamp_ns"], step, instruction,
                                 self._proposer.policy.name, sample_ms)
        except MessageError as exc:
            self.reject(exc)
            return
        except Exception as exc:  # noqa: BLE001 - a policy/server failure must not kill the node
            self.reject(MessageError("policy_error", f"{type(exc).__name__}: {exc}"))
            return
        self._pub.publish(msg)
        self._published += 1
        self._last_sample_ms = sample_ms

    # -- diagnostics ------------------------------------------------------------------------------
    def reject(self, exc: MessageError) -> None:
        self.get_logger().warn(str(exc), throttle_duration_sec=2.0)
        super().reject(exc)

    def publish_diagnostics(self, fresh: bool = False) -> None:
        """ERROR while vgps/episode has an unexpected publisher, else the base's status."""
        if not publish_alarm(self, self._trust):
            super().publish_diagnostics(fresh)

    def diagnostic_values(self) -> dict:
        return {"policy": self.param("policy"), "k": self.param("k"),
                "published": self._published,
                "last_sample_ms": f"{self._last_sample_ms:.2f}", **self._trust.values()}


def main(args: list[str] | None = None) -> None:
    spin(PolicyNode, args)


if __name__ == "__main__":
    main()
