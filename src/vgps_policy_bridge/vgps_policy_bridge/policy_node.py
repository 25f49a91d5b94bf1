"""policy_node: proposes K candidate action chunks for every new camera image (lifecycle).

configure: builds the policy named by ``policy`` - ``sim`` (plans from the simulator's privileged
state on ``vgps/sim_state``), ``octo`` (loads ``octo_model``, a path or ``hf://`` id, and warms up
its sampler; fails with the install command when ``octo`` is missing) or ``remote`` (an
OpenVLA-style HTTP ``/act`` server at ``remote_url``). activate: starts sampling.

Per image: samples K (``k``, live) chunks of H (``horizon``) actions with
``default_rng([seed, step])`` and publishes ``vgps/candidates`` stamped with the image's stamp.
``step`` counts the images sampled for since the node started (monotonic across episodes; the
arm driver matches decisions by stamp). The instruction is the newest ``vgps/instruction``, else
the ``instruction`` parameter, else (sim) the simulator's own. A ``started`` event on
``vgps/episode`` resets the policy's history.

Subscribes: ``camera/image_raw`` (sensor QoS), ``vgps/instruction`` (transient local),
``vgps/sim_state`` (policy sim), ``vgps/episode``. Publishes: ``vgps/candidates``,
``/diagnostics``.
"""

from __future__ import annotations

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vgps_interfaces.msg import ActionCandidates, EpisodeStatus
from vgps_policy_bridge.policy import check_k
from vgps_policy_bridge.proposer import POLICIES, PolicySettings, Proposer, make_policy
from vgps_policy_bridge.ros_conversions import candidates_msg
from vgps_ros import qos
from vgps_ros.conversions import image_from_msg, stamp_to_ns
from vgps_ros.input_guard import MessageError, RejectionLog
from vgps_ros.runtime import OK, WARN, autostart, describe, diagnostic, result, spin

CONFIGURE_ONLY = ("policy", "horizon", "octo_model", "octo_dataset_key", "remote_url",
                  "remote_timeout_s", "remote_batched")


class PolicyNode(LifecycleNode):
    """The policy as a managed node (see the module docstring)."""

    def __init__(self, name: str = "policy_node"):
        super().__init__(name)
        d = PolicySettings()
        self.declare_parameter("policy", d.policy, describe(
            "policy adapter, built at configure", choices=POLICIES))
        self.declare_parameter("k", 10, describe("candidates per step (live)",
                                                 int_range=(1, 4096)))
        self.declare_parameter("horizon", d.horizon, describe(
            "actions per chunk (sim plans H steps; octo keeps the first H)", int_range=(1, 64)))
        self.declare_parameter("seed", 0, describe("sampling seed: step s uses rng([seed, s])",
                                                   int_range=(0, 2**31 - 1)))
        self.declare_parameter("instruction", "", describe(
            "instruction used until one arrives on vgps/instruction"))
        self.declare_parameter("octo_model", d.octo_model, describe(
            "Octo checkpoint directory or hf:// id (policy octo)"))
        self.declare_parameter("octo_dataset_key", d.octo_dataset_key, describe(
            "dataset statistics Octo unnormalises actions with (policy octo)"))
        self.declare_parameter("remote_url", d.remote_url, describe(
            "OpenVLA-style /act endpoint (policy remote)"))
        self.declare_parameter("remote_timeout_s", d.remote_timeout_s, describe(
            "per-request timeout (policy remote)", float_range=(0.01, 120.0)))
        self.declare_parameter("remote_batched", d.remote_batched, describe(
            "one request with n = K instead of K requests (policy remote)"))
        self.add_on_set_parameters_callback(self._on_set)
        self._group = MutuallyExclusiveCallbackGroup()  # sampling, one at a time
        self._diag_pub = self.create_publisher(DiagnosticArray, qos.DIAGNOSTICS,
                                               qos.DIAGNOSTICS_QOS)
        self._proposer: Proposer | None = None
        self._pub = None
        self._subs: list = []
        self._active = False
        self._instruction = ""
        self._rejections = RejectionLog()
        self._status, self._error = "unconfigured", ""
        self._last_sample_ms = float("nan")
        self._published = 0
        self.create_timer(1.0, self._publish_diagnostics)
        autostart(self)

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _on_set(self, params):
        for p in params:
            if p.name == "policy" and p.value not in POLICIES:
                return result(f"policy must be one of {POLICIES}, got {p.value!r}")
            if p.name in CONFIGURE_ONLY and self._proposer is not None:
                return result(f"{p.name} is applied at configure; cleanup and configure again")
            if p.name == "k" and self._proposer is not None:
                try:
                    self._proposer.k = check_k(p.value)
                except ValueError as exc:
                    return result(str(exc))
        return result()

    # -- lifecycle --------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            settings = PolicySettings(**{n: self._param(n) for n in CONFIGURE_ONLY})
            policy = make_policy(settings)
            if settings.policy == "octo":  # compile the sampler now, not at the first image
                policy.sample({"image": np.zeros((256, 256, 3), np.uint8)}, "warm up",
                              self._param("k"), np.random.default_rng(0))
                policy.reset()
        except Exception as exc:  # noqa: BLE001 - missing package, bad model, bad settings
            self._status, self._error = "unconfigured", f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"cannot configure policy={self._param('policy')!r}: "
                                    f"{self._error}")
            self._publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        self._proposer = Proposer(policy, self._param("k"), self._param("seed"),
                                  needs_state=settings.policy == "sim")
        self._pub = self.create_lifecycle_publisher(ActionCandidates, qos.CANDIDATES,
                                                    qos.COMMAND)
        sub = self.create_subscription
        self._subs = [
            sub(Image, qos.CAMERA, self._on_image, qos.SENSOR,
                callback_group=self._group),
            sub(String, qos.INSTRUCTION, self._on_instruction, qos.LATCHED),
            sub(EpisodeStatus, qos.EPISODE, self._on_episode, qos.COMMAND,
                callback_group=self._group),
        ]
        if settings.policy == "sim":
            from vgps_widowx.ros_conversions import sim_state_from_msg

            self._sim_state_from_msg = sim_state_from_msg
            self._subs.append(sub(String, qos.SIM_STATE, self._on_sim_state,
                                  qos.COMMAND, callback_group=self._group))
        self._status, self._error = "configured", ""
        self.get_logger().info(f"policy {policy.name} ready (k={self._param('k')}, "
                               f"horizon={settings.horizon})")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._active, self._status = True, "active"
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active, self._status = False, "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        for s in self._subs:
            self.destroy_subscription(s)
        if self._pub is not None:
            self.destroy_lifecycle_publisher(self._pub)
        self._subs, self._pub, self._proposer = [], None, None
        self._status = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        return TransitionCallbackReturn.SUCCESS

    # -- callbacks --------------------------------------------------------------------------------
    def _on_instruction(self, msg: String) -> None:
        self._instruction = msg.data.strip()

    def _on_episode(self, msg: EpisodeStatus) -> None:
        if msg.event == EpisodeStatus.EVENT_STARTED and self._proposer is not None:
            self._proposer.reset()

    def _on_image(self, msg: Image) -> None:
        if not self._active or self._proposer is None:
            return
        try:
            image = image_from_msg(msg)
        except MessageError as exc:
            self._reject(exc)
            return
        observation = self._proposer.add_image(stamp_to_ns(msg.header.stamp), image)
        if observation is not None:
            self._sample(observation)

    def _on_sim_state(self, msg: String) -> None:
        if not self._active or self._proposer is None:
            return
        try:
            stamp_ns, state = self._sim_state_from_msg(msg)
        except MessageError as exc:
            self._reject(exc)
            return
        observation = self._proposer.add_state(stamp_ns, state)
        if observation is not None:
            self._sample(observation)

    def _sample(self, observation: dict) -> None:
        privileged = observation.get("privileged") or {}
        instruction = (self._instruction or self._param("instruction")
                       or str(privileged.get("instruction", "")))
        if not instruction:
            self._reject(MessageError("empty_instruction", "no instruction: publish one on "
                                      "vgps/instruction or set the instruction parameter"))
            return
        try:
            chunks, step, sample_ms = self._proposer.propose(observation, instruction)
            msg = candidates_msg(chunks, observation["stamp_ns"], step, instruction,
                                 self._proposer.policy.name, sample_ms)
        except MessageError as exc:
            self._reject(exc)
            return
        except Exception as exc:  # noqa: BLE001 - a policy/server failure must not kill the node
            self._reject(MessageError("policy_error", f"{type(exc).__name__}: {exc}"))
            return
        self._pub.publish(msg)
        self._published += 1
        self._last_sample_ms = sample_ms

    # -- diagnostics ------------------------------------------------------------------------------
    def _reject(self, exc: MessageError) -> None:
        self.get_logger().warn(str(exc), throttle_duration_sec=2.0)
        if self._rejections.add(exc.kind, exc.detail, time.monotonic()):
            self._publish_diagnostics(fresh=True)

    def _publish_diagnostics(self, fresh: bool = False) -> None:
        recent = self._rejections.reported(time.monotonic())
        level, message = OK, self._status
        if self._error:
            level, message = WARN, f"{self._status}: {self._error}"
        elif fresh or recent:
            kind, detail = self._rejections.last
            level, message = WARN, f"rejected {kind}: {detail}"
        values = {"status": self._status, "policy": self._param("policy"),
                  "k": self._param("k"), "published": self._published,
                  "last_sample_ms": f"{self._last_sample_ms:.2f}",
                  **{f"rejected.{k}": v for k, v in sorted(self._rejections.counts.items())}}
        self._diag_pub.publish(diagnostic(self, level, message, values))


def main(args: list[str] | None = None) -> None:
    spin(PolicyNode, args)


if __name__ == "__main__":
    main()
