"""sim_corrector: the sim's scripted corrector takes over before a known failure (plain node).

Wraps :class:`~vgps_widowx.sim.corrector.Corrector`. For each new ``vgps/sim_state`` (the
privileged state the sim arm driver publishes after every executed step) it checks the failure
rules; when one fires it takes over with the scripted solver's actions until the failure is
averted (or the correction gives up), then releases. While correcting it publishes
``vgps/intervention`` (``take_over`` true, the solver's action for the newest state, source
``sim_corrector``) on every new state and again every ``1 / rate_hz`` s, so the take-over stays
fresh for the selector; on release, at an episode's end and when states stop coming for
``state_timeout_s``, it publishes one ``take_over`` false. A new episode (``vgps/episode``
started) resets it.

Started by the graph with ``intervention:=sim`` (``vgps up ... intervention:=sim``; sim only).
Subscribes: ``vgps/sim_state``, ``vgps/episode`` (only from ``arm_driver``, with
``trusted_publishers``). Publishes: ``vgps/intervention``, ``/diagnostics`` (take-overs per
failure, averted, given up).

Usage::

    vgps-sim-corrector --ros-args -p hold_steps:=4 -p hover_steps:=8 -p max_steps:=30
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import String

from vgps_interfaces.msg import EpisodeStatus, Intervention
from vgps_ros import qos
from vgps_ros.conversions import float_array, sim_state_from_msg
from vgps_ros.input_guard import MessageError
from vgps_ros.parameters import Param, declare, watch
from vgps_ros.runtime import OK, WARN, diagnostic, spin
from vgps_ros.trust import TRUST_PARAM, TrustedPublishers
from vgps_widowx.sim.corrector import Corrector, CorrectorConfig

SOURCE = "sim_corrector"
_D = CorrectorConfig()
PARAMETERS = (
    Param("rate_hz", 10.0, "re-publish the take-over this often while correcting",
          range=(1.0, 100.0), live=False),
    Param("state_timeout_s", 1.0, "no sim state this long while correcting -> release",
          range=(0.1, 60.0), live=False),
    Param("hold_steps", _D.hold_steps, "steps held at the place pose before taking over",
          range=(1, 100), live=False),
    Param("hover_steps", _D.hover_steps, "steps open at the grasp pose before taking over",
          range=(1, 100), live=False),
    Param("max_steps", _D.max_steps, "a correction gives up after this many steps",
          range=(1, 1000), live=False),
    TRUST_PARAM,
)
ENDED = (EpisodeStatus.EVENT_SUCCEEDED, EpisodeStatus.EVENT_FAILED, EpisodeStatus.EVENT_TIMEOUT)


class SimCorrectorNode(Node):
    """The scripted corrector as a ROS node (see the module docstring)."""

    def __init__(self, name: str = "sim_corrector"):
        super().__init__(name)
        declare(self, PARAMETERS)
        watch(self, PARAMETERS)
        self._corrector = Corrector(CorrectorConfig(
            hold_steps=self.get_parameter("hold_steps").value,
            hover_steps=self.get_parameter("hover_steps").value,
            max_steps=self.get_parameter("max_steps").value))
        self._trust = TrustedPublishers(
            self, (qos.SIM_STATE, qos.EPISODE), self._reject,
            lambda: self.get_parameter("trusted_publishers").value,
            expected={qos.SIM_STATE: ("arm_driver",), qos.EPISODE: ("arm_driver",)})
        self._pub = self.create_publisher(Intervention, qos.INTERVENTION, qos.COMMAND)
        self._diag_pub = self.create_publisher(DiagnosticArray, qos.DIAGNOSTICS,
                                               qos.DIAGNOSTICS_QOS)
        self.create_subscription(String, qos.SIM_STATE,
                                 self._trust.wrap(qos.SIM_STATE, self._on_state), qos.COMMAND)
        self.create_subscription(EpisodeStatus, qos.EPISODE,
                                 self._trust.wrap(qos.EPISODE, self._on_episode), qos.COMMAND)
        self.create_timer(1.0 / self.get_parameter("rate_hz").value, self._on_tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self._action: np.ndarray | None = None  # the take-over's action while correcting
        self._last_stamp: int | None = None
        self._last_state_s = time.monotonic()
        self.counts: Counter[str] = Counter()
        self._last_detail = "watching"

    # -- callbacks --------------------------------------------------------------------------------
    def _on_state(self, msg: String) -> None:
        try:
            stamp_ns, state = sim_state_from_msg(msg)
        except MessageError as exc:
            self._reject(exc)
            return
        if stamp_ns == self._last_stamp:
            return  # the same step's state again (a republished observation)
        self._last_stamp, self._last_state_s = stamp_ns, time.monotonic()
        try:
            out = self._corrector.step(state)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            self._reject(MessageError("bad_sim_state", f"cannot read the state ({exc})"))
            return
        if out.event:
            self.counts[out.event] += 1
            self._last_detail = out.detail
            self.get_logger().info(f"{out.event}: {out.detail}")
        if out.take_over:
            self._action = out.action
            self._publish(True)
        elif self._action is not None:
            self._release()

    def _on_episode(self, msg: EpisodeStatus) -> None:
        if msg.event in ENDED or msg.event == EpisodeStatus.EVENT_STARTED:
            if self._action is not None:
                self._release()
            self._corrector.reset()
            self._last_stamp = None

    def _on_tick(self) -> None:
        if self._action is None:
            return
        if time.monotonic() - self._last_state_s > self.get_parameter("state_timeout_s").value:
            self.get_logger().warn("no sim state while correcting: releasing the take-over")
            self._corrector.reset()
            self._release()
            return
        self._publish(True)

    def _reject(self, exc: MessageError) -> None:
        self.counts[f"rejected.{exc.kind}"] += 1
        self.get_logger().warn(f"ignoring input: {exc.kind}: {exc.detail}",
                               throttle_duration_sec=5)

    # -- output -----------------------------------------------------------------------------------
    def _release(self) -> None:
        self._action = None
        self._publish(False)

    def _publish(self, take_over: bool) -> None:
        msg = Intervention()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.take_over = bool(take_over)
        if take_over and self._action is not None:
            msg.action = float_array(self._action)
        msg.source = SOURCE
        self._pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        correcting = self._corrector.failure
        level = WARN if any(k.startswith("rejected.") for k in self.counts) else OK
        message = f"correcting {correcting}" if correcting else self._last_detail
        values = {"correcting": correcting or "no",
                  **{k: n for k, n in sorted(self.counts.items())}, **self._trust.values()}
        self._diag_pub.publish(diagnostic(self, level, message, values))


def main(args: list[str] | None = None) -> None:
    spin(SimCorrectorNode, args)


if __name__ == "__main__":
    main()
