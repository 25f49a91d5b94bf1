"""critic_node: scores each step's K candidate actions with the V-GPS Q-function (lifecycle).

configure: loads the checkpoint (``critic``) and its language encoder, warms up the jitted encoder
and Q head (K = 1 and K = ``k``); a bad checkpoint fails the transition with the reason and the
node stays unconfigured (and running). activate: starts scoring.

Encode-once, ahead of time: every camera image is encoded as soon as it arrives (its own callback
group, concurrently with the policy's sampling) and cached by stamp; when the candidates for that
stamp arrive only the Q head runs. Bad inputs (image encoding/size/step, NaN/inf actions, wrong
K/dims/lengths, stale or future stamps, empty instruction, unknown image) produce a WARN
diagnostic with the class and no score; the node keeps running.

Subscribes: ``camera/image_raw`` (sensor QoS), ``vgps/candidates``, ``vgps/instruction``
(transient local). Publishes: ``vgps/scored``, ``vgps/q_values``, ``vgps/q_max``,
``vgps/q_mean``, ``/diagnostics``.
"""

from __future__ import annotations

import math
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, Float32MultiArray, String

from vgps_critic import ros_qos
from vgps_critic.encode_cache import StampedEncoder
from vgps_critic.input_guard import MessageError, RejectionLog, check_stamp
from vgps_critic.ros_conversions import (
    candidates_from_msg,
    image_from_msg,
    scored_to_msg,
    stamp_to_ns,
)
from vgps_critic.ros_runtime import OK, WARN, autostart, describe, diagnostic, now_s, result, spin
from vgps_interfaces.msg import ActionCandidates, ScoredCandidates


class CriticNode(LifecycleNode):
    """The critic as a managed node (see the module docstring)."""

    def __init__(self, name: str = "critic_node"):
        super().__init__(name)
        self.declare_parameter("critic", "", describe(
            "critic checkpoint directory (card.json + params/); loaded at configure"))
        self.declare_parameter("beta", 0.0, describe(
            "unused by the critic (selection happens in the selector); accepted so one "
            "parameter file can set beta everywhere", float_range=(0.0, 100.0)))
        self.declare_parameter("k", 10, describe(
            "expected candidates per step: the Q head is warmed up for K = 1 and K = k",
            int_range=(1, 4096)))
        self.declare_parameter("max_cached_encodings", 8, describe(
            "camera images (and their encodings) kept by stamp", int_range=(1, 256)))
        self.declare_parameter("pre_encode", True, describe(
            "encode each image when it arrives (true) or only when its candidates arrive"))
        self.declare_parameter("max_age_s", 1.0, describe(
            "images and candidates with older stamps are rejected", float_range=(0.01, 60.0)))
        self.declare_parameter("instruction", "", describe(
            "instruction for pre-encoding until one arrives on vgps/instruction"))
        self.add_on_set_parameters_callback(self._on_set)
        self._encode_group = MutuallyExclusiveCallbackGroup()
        self._score_group = MutuallyExclusiveCallbackGroup()
        self._diag_pub = self.create_publisher(DiagnosticArray, ros_qos.DIAGNOSTICS,
                                               ros_qos.DIAGNOSTICS_QOS)
        self._rejections = RejectionLog()
        self._encoder: StampedEncoder | None = None
        self._active = False
        self._instruction = ""
        self._counts = {"images": 0, "scored": 0, "pre_encoded": 0}
        self._last = {"encode_ms": math.nan, "score_ms": math.nan, "latency_ms": math.nan}
        self._status, self._error = "unconfigured", ""
        self._subs: list = []
        self._pubs: dict = {}
        self.create_timer(1.0, self._publish_diagnostics)
        autostart(self)

    # -- parameters -------------------------------------------------------------------------------
    def _on_set(self, params):
        for p in params:
            if p.name == "max_cached_encodings" and self._encoder is not None:
                self._encoder.max_entries = int(p.value)
            if p.name == "critic" and self._encoder is not None:
                return result("critic: the checkpoint is loaded at configure; cleanup first")
        return result()

    def _param(self, name: str):
        return self.get_parameter(name).value

    # -- lifecycle --------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        path = self._param("critic")
        try:
            critic = self._load(path)
        except Exception as exc:  # noqa: BLE001 - any load failure leaves the node unconfigured
            self._status, self._error = "unconfigured", f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"cannot configure with critic={path!r}: {self._error}")
            self._publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        self._encoder = StampedEncoder(critic, self._param("max_cached_encodings"))
        self._instruction = self._param("instruction")
        pub = self.create_lifecycle_publisher
        self._pubs = {
            "scored": pub(ScoredCandidates, ros_qos.SCORED, ros_qos.COMMAND),
            "q_values": pub(Float32MultiArray, ros_qos.Q_VALUES, ros_qos.COMMAND),
            "q_max": pub(Float32, ros_qos.Q_MAX, ros_qos.COMMAND),
            "q_mean": pub(Float32, ros_qos.Q_MEAN, ros_qos.COMMAND),
        }
        self._subs = [
            self.create_subscription(Image, ros_qos.CAMERA, self._on_image, ros_qos.SENSOR,
                                     callback_group=self._encode_group),
            self.create_subscription(ActionCandidates, ros_qos.CANDIDATES, self._on_candidates,
                                     ros_qos.COMMAND, callback_group=self._score_group),
            self.create_subscription(String, ros_qos.INSTRUCTION, self._on_instruction,
                                     ros_qos.LATCHED),
        ]
        self._status, self._error = "configured", ""
        self.get_logger().info(f"critic {critic.critic_id} loaded from {path} "
                               f"({critic.image_size[0]}x{critic.image_size[1]}, language "
                               f"{critic.card.language_encoder}), warmed up")
        return TransitionCallbackReturn.SUCCESS

    def _load(self, path: str):
        import vgps_critic

        if not path:
            raise ValueError("parameter 'critic' is empty: set it to a checkpoint directory")
        critic = vgps_critic.load(path)
        language = critic.embed(self._param("instruction") or "warm up")
        h, w = critic.image_size
        features = critic.encode(np.zeros((h, w, 3), np.uint8), language)
        for k in sorted({1, int(self._param("k"))}):
            critic.q(features, np.zeros((k, critic.config.action_dim), np.float32))
        return critic

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._active, self._status = True, "active"
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active, self._status = False, "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        for sub in self._subs:
            self.destroy_subscription(sub)
        for p in self._pubs.values():
            self.destroy_lifecycle_publisher(p)
        self._subs, self._pubs, self._encoder = [], {}, None
        self._status = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        return TransitionCallbackReturn.SUCCESS

    # -- callbacks --------------------------------------------------------------------------------
    def _on_instruction(self, msg: String) -> None:
        if msg.data.strip():
            self._instruction = msg.data
        else:
            self._reject(MessageError("empty_instruction", "vgps/instruction is empty"))

    def _on_image(self, msg: Image) -> None:
        if not self._active or self._encoder is None:
            return
        try:
            stamp_ns = stamp_to_ns(msg.header.stamp)
            check_stamp(stamp_ns * 1e-9, now_s(self), self._param("max_age_s"))
            image = image_from_msg(msg)
            self._encoder.add_image(stamp_ns, image)
            self._counts["images"] += 1
            if self._param("pre_encode") and self._instruction:
                self._encoder.pre_encode(stamp_ns, self._instruction)
                self._counts["pre_encoded"] += 1
        except MessageError as exc:
            self._reject(exc)

    def _on_candidates(self, msg: ActionCandidates) -> None:
        if not self._active or self._encoder is None:
            return
        received = time.perf_counter()
        try:
            cands = candidates_from_msg(msg, self._encoder.critic.config.action_dim)
            check_stamp(cands.stamp_ns * 1e-9, now_s(self), self._param("max_age_s"))
            score = self._encoder.score(cands.stamp_ns, cands.instruction, cands.chunks[:, 0])
            scored = scored_to_msg(msg, score.q, self._encoder.critic.critic_id,
                                   score.encode_ms, score.score_ms, score.pre_encoded)
        except MessageError as exc:
            self._reject(exc)
            return
        except (ValueError, TypeError) as exc:  # the critic's own input checks
            self._reject(MessageError("bad_candidates", str(exc)))
            return
        self._pubs["scored"].publish(scored)
        q = score.q
        self._pubs["q_values"].publish(Float32MultiArray(data=[float(v) for v in q]))
        self._pubs["q_max"].publish(Float32(data=float(q.max())))
        self._pubs["q_mean"].publish(Float32(data=float(q.mean())))
        self._counts["scored"] += 1
        self._last = {"encode_ms": score.encode_ms, "score_ms": score.score_ms,
                      "latency_ms": (time.perf_counter() - received) * 1e3}

    # -- diagnostics ------------------------------------------------------------------------------
    def _reject(self, exc: MessageError) -> None:
        if self._rejections.add(exc.kind, exc.detail, time.monotonic()):
            self._publish_diagnostics(fresh=exc)

    def _publish_diagnostics(self, fresh: MessageError | None = None) -> None:
        recent = self._rejections.reported(time.monotonic())
        level, message = OK, self._status
        if self._error:
            level, message = WARN, f"{self._status}: {self._error}"
        elif fresh is not None or recent:
            kind, detail = self._rejections.last
            level, message = WARN, f"rejected {kind}: {detail}"
        values = {"status": self._status,
                  "critic_id": self._encoder.critic.critic_id if self._encoder else "",
                  "pre_encode": self._param("pre_encode"),
                  **{f"last_{k}": f"{v:.2f}" for k, v in self._last.items()},
                  **self._counts, "rejected_total": self._rejections.total,
                  **{f"rejected.{k}": v for k, v in sorted(self._rejections.counts.items())}}
        self._diag_pub.publish(diagnostic(self, level, message, values))


def main(args: list[str] | None = None) -> None:
    spin(CriticNode, args)


if __name__ == "__main__":
    main()
