"""critic_node: scores each step's K candidate actions with the V-GPS Q-function (lifecycle).

configure: loads the checkpoint (``critic``) and its language encoder, warms up the jitted encoder
and Q head (K = 1 and K = ``k``); a bad checkpoint fails the transition with the reason and the
node stays unconfigured (and running). activate: starts scoring.

Encode-once, ahead of time: every camera image is handed to the node's encoder thread as soon as
it arrives (so it is encoded while the policy samples; the executor stays free for the next
message) and cached by stamp; when the candidates for that stamp arrive only the Q head runs. If
they arrive while their image is still being encoded, scoring waits for that one encoding; if
they arrive before their image (the two topics are not ordered), they wait for it up to
``image_wait_s`` and are scored the moment it comes.

Bad inputs (image encoding/size/step, NaN/inf actions, wrong K/dims/lengths, stale or future
stamps, an empty, over-long (512 characters) or control-character instruction, unknown image)
produce a WARN diagnostic with the class and no score; the node keeps running. Candidates from any
node but ``policy_node`` are dropped (``rejected.foreign_publisher``) and an unexpected publisher
on ``vgps/candidates`` is an ERROR (``vgps_ros.trust``; parameter ``trusted_publishers``).

Subscribes: ``camera/image_raw`` (sensor QoS), ``vgps/candidates``, ``vgps/instruction``
(transient local). Publishes: ``vgps/scored``, ``vgps/q_values``, ``vgps/q_max``,
``vgps/q_mean``, ``/diagnostics``.
"""

from __future__ import annotations

import math
import time

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, Float32MultiArray, String

from vgps_critic.encode_cache import StampedEncoder
from vgps_interfaces.msg import ActionCandidates, ScoredCandidates
from vgps_ros import qos
from vgps_ros.conversions import (
    candidates_from_msg,
    image_from_msg,
    scored_to_msg,
    stamp_to_ns,
)
from vgps_ros.input_guard import MessageError, check_instruction, check_stamp
from vgps_ros.lifecycle import ManagedNode, Param, Update
from vgps_ros.runtime import now_s, spin
from vgps_ros.trust import TRUST_PARAM, TrustedPublishers, publish_alarm


class CriticNode(ManagedNode):
    """The critic as a managed node (see the module docstring)."""

    PARAMETERS = (
        Param("critic", "",
              "critic checkpoint directory (card.json + params/); loaded at configure",
              live=False),
        Param("beta", 0.0, "unused by the critic (selection happens in the selector); accepted so "
              "one parameter file can set beta everywhere", range=(0.0, 100.0)),
        Param("k", 10, "expected candidates per step: the Q head is warmed up for K = 1 and K = k",
              range=(1, 4096)),
        Param("max_cached_encodings", 8, "camera images (and their encodings) kept by stamp",
              range=(1, 256)),
        Param("pre_encode", True,
              "encode each image when it arrives (true) or only when its candidates arrive"),
        Param("max_age_s", 1.0, "images and candidates with older stamps are rejected",
              range=(0.01, 60.0)),
        Param("instruction", "",
              "instruction for pre-encoding until one arrives on vgps/instruction"),
        Param("image_wait_s", 0.25,
              "candidates that arrive before their camera image wait this long for it",
              range=(0.0, 5.0)),
        TRUST_PARAM,
    )
    CONFIGURED_BY = "critic"
    DIAGNOSTICS = True

    def __init__(self, name: str = "critic_node"):
        super().__init__(name)
        self._encoder: StampedEncoder | None = None
        self._pubs: dict = {}
        self._instruction = ""
        self._newest_image = 0  # stamp (ns) of the camera image that arrived last
        self._parked: dict[int, tuple] = {}  # stamp -> candidates that came before their image
        self._counts = {"images": 0, "scored": 0, "pre_encoded": 0}
        self._last = {"encode_ms": math.nan, "score_ms": math.nan, "latency_ms": math.nan}
        self._trust = TrustedPublishers(self, (qos.CANDIDATES,), self.reject,
                                        lambda: self.param("trusted_publishers"))
        self.create_timer(0.02, self._expire_parked)

    def apply(self, update: Update) -> None:
        if "max_cached_encodings" in update and self._encoder is not None:
            self._encoder.max_entries = int(update.value("max_cached_encodings"))

    # -- lifecycle --------------------------------------------------------------------------------
    def configure(self) -> None:
        path = self.param("critic")
        critic = self._load(path)
        # One worker: JAX releases the GIL while it computes, so encoding overlaps the callbacks.
        self._encode_thread = self.worker("encode")
        self.own("_encoder", StampedEncoder(critic, self.param("max_cached_encodings")))
        self.hold(self._parked, dict.clear)
        self._instruction = self.param("instruction")
        self._pubs = {
            "scored": self.publisher(ScoredCandidates, qos.SCORED, qos.COMMAND),
            "q_values": self.publisher(Float32MultiArray, qos.Q_VALUES, qos.COMMAND),
            "q_max": self.publisher(Float32, qos.Q_MAX, qos.COMMAND),
            "q_mean": self.publisher(Float32, qos.Q_MEAN, qos.COMMAND),
        }
        self.subscription(Image, qos.CAMERA, self._on_image, qos.SENSOR)
        self.subscription(ActionCandidates, qos.CANDIDATES,
                          self._trust.wrap(qos.CANDIDATES, self._on_candidates), qos.COMMAND)
        self.subscription(String, qos.INSTRUCTION, self._on_instruction, qos.LATCHED)
        self.get_logger().info(f"critic {critic.critic_id} loaded from {path} "
                               f"({critic.image_size[0]}x{critic.image_size[1]}, language "
                               f"{critic.card.language_encoder}), warmed up")

    def _load(self, path: str):
        import vgps_critic

        if not path:
            raise ValueError("parameter 'critic' is empty: set it to a checkpoint directory")
        critic = vgps_critic.load(path)
        language = critic.embed(self.param("instruction") or "warm up")
        h, w = critic.image_size
        features = critic.encode(np.zeros((h, w, 3), np.uint8), language)
        for k in sorted({1, int(self.param("k"))}):
            critic.q(features, np.zeros((k, critic.config.action_dim), np.float32))
        return critic

    # -- callbacks --------------------------------------------------------------------------------
    def _on_instruction(self, msg: String) -> None:
        try:
            if not check_instruction(msg.data).strip():
                raise MessageError("empty_instruction", "vgps/instruction is empty")
        except MessageError as exc:  # the previous instruction stays
            self.reject(exc)
            return
        self._instruction = msg.data

    def _on_image(self, msg: Image) -> None:
        if not self.active or self._encoder is None:
            return
        try:
            stamp_ns = stamp_to_ns(msg.header.stamp)
            check_stamp(stamp_ns * 1e-9, now_s(self), self.param("max_age_s"))
            image = image_from_msg(msg)
            self._encoder.add_image(stamp_ns, image)
            self._newest_image = stamp_ns
            self._counts["images"] += 1
            if stamp_ns in self._parked:  # its candidates came first: score them now
                msg_c, cands, received, _ = self._parked.pop(stamp_ns)
                self._score(msg_c, cands, received)
            elif self.param("pre_encode") and self._instruction:
                self._encode_thread.submit(self._pre_encode, self._encoder, stamp_ns,
                                           self._instruction)
        except MessageError as exc:
            self.reject(exc)

    def _pre_encode(self, encoder: StampedEncoder, stamp_ns: int, instruction: str) -> None:
        """Encoder thread: encodes one image ahead of its candidates (the newest only: when
        images come faster than they encode, older ones are encoded on demand, if ever)."""
        if stamp_ns != self._newest_image:
            return
        try:
            encoder.pre_encode(stamp_ns, instruction)
            self._counts["pre_encoded"] += 1
        except MessageError:
            pass  # evicted before its turn: its candidates (if any) report unknown_image
        except Exception as exc:  # noqa: BLE001 - keep the thread alive; scoring re-raises it
            self.get_logger().error(f"encoding image {stamp_ns} failed: "
                                    f"{type(exc).__name__}: {exc}")

    def _on_candidates(self, msg: ActionCandidates) -> None:
        if not self.active or self._encoder is None:
            return
        received = time.perf_counter()
        try:
            cands = candidates_from_msg(msg, self._encoder.critic.config.action_dim)
            check_instruction(cands.instruction)
            check_stamp(cands.stamp_ns * 1e-9, now_s(self), self.param("max_age_s"))
        except MessageError as exc:
            self.reject(exc)
            return
        if cands.stamp_ns not in self._encoder and self.param("image_wait_s") > 0:
            # Images and candidates travel on different topics and may arrive in either order:
            # wait (image_wait_s) for this one; _on_image scores it, _expire_parked gives up.
            self._parked[cands.stamp_ns] = (msg, cands, received, time.monotonic())
            while len(self._parked) > self.param("max_cached_encodings"):
                self._give_up(next(iter(self._parked)))
            return
        self._score(msg, cands, received)

    def _score(self, msg: ActionCandidates, cands, received: float) -> None:
        try:
            score = self._encoder.score(cands.stamp_ns, cands.instruction, cands.chunks[:, 0])
            scored = scored_to_msg(msg, score.q, self._encoder.critic.critic_id,
                                   score.encode_ms, score.score_ms, score.pre_encoded)
        except MessageError as exc:
            self.reject(exc)
            return
        except (ValueError, TypeError) as exc:  # the critic's own input checks
            self.reject(MessageError("bad_candidates", str(exc)))
            return
        self._pubs["scored"].publish(scored)
        q = score.q
        self._pubs["q_values"].publish(Float32MultiArray(data=[float(v) for v in q]))
        self._pubs["q_max"].publish(Float32(data=float(q.max())))
        self._pubs["q_mean"].publish(Float32(data=float(q.mean())))
        self._counts["scored"] += 1
        self._last = {"encode_ms": score.encode_ms, "score_ms": score.score_ms,
                      "latency_ms": (time.perf_counter() - received) * 1e3}

    def _expire_parked(self) -> None:
        """Rejects parked candidates whose image did not come within ``image_wait_s``."""
        limit = time.monotonic() - self.param("image_wait_s")
        for stamp_ns in [s for s, entry in self._parked.items() if entry[3] < limit]:
            self._give_up(stamp_ns)

    def _give_up(self, stamp_ns: int) -> None:
        msg, _, _, parked = self._parked.pop(stamp_ns)
        self.reject(MessageError("unknown_image", f"no camera image with stamp {stamp_ns} ns "
                                                   f"{time.monotonic() - parked:.2f} s after "
                                                   f"its candidates (step {msg.step})"))

    # -- diagnostics ------------------------------------------------------------------------------
    def publish_diagnostics(self, fresh: bool = False) -> None:
        """ERROR while vgps/candidates has an unexpected publisher, else the base's status."""
        if not publish_alarm(self, self._trust):
            super().publish_diagnostics(fresh)

    def diagnostic_values(self) -> dict:
        return {"critic_id": self._encoder.critic.critic_id if self._encoder else "",
                "pre_encode": self.param("pre_encode"),
                **{f"last_{k}": f"{v:.2f}" for k, v in self._last.items()},
                **self._counts, "rejected_total": self.rejections.total,
                **self._trust.values()}


def main(args: list[str] | None = None) -> None:
    spin(CriticNode, args)


if __name__ == "__main__":
    main()
