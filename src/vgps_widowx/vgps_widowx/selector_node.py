"""selector_node: picks the action to execute from the critic's scores (plain node, always on).

Wraps :class:`~vgps_widowx.selector_loop.SelectorLoop` (the V-GPS rule, fallback, command limits).
Every decision - argmax, softmax, fallback, hold, rejected, estop - is published on
``vgps/selected``; executed ones carry actions already inside the safety filter's action limits.
K, beta, execute, max_age_s, watchdog_timeout_s and fallback are live parameters, validated in the
on-set callback, and apply from the next step on. The e-stop latches until ``vgps/reset_estop``.

Interventions (:mod:`vgps_widowx.intervention`): while the newest ``vgps/intervention`` holds
``take_over`` and is younger than ``intervention_timeout_s`` (live), every executing decision
becomes reason ``"intervention"`` (index -1) carrying the intervention's action after the same
command limits; a release or a stale command gives control back to the critic. Malformed
interventions are counted as ``rejected.bad_intervention`` and never move the arm; they are
obeyed only from the node names in ``intervention_publishers`` (the keyboard teleop and the sim
corrector of the graph).

Subscribes: ``vgps/scored``, ``vgps/candidates`` (for the fallback), ``vgps/episode``,
``vgps/intervention``; each only from its graph node (critic_node, policy_node, arm_driver,
``intervention_publishers``): other publishers' messages are counted
as ``rejected.foreign_publisher`` and make no decision; an unexpected publisher is an ERROR on
``/diagnostics`` (``vgps_ros.trust``, parameter ``trusted_publishers``).
Publishes: ``vgps/selected``, ``vgps/q_selected``, ``vgps/q_margin``, ``/diagnostics``.
Services: ``vgps/estop``, ``vgps/reset_estop`` (std_srvs/Trigger).
"""

from __future__ import annotations

import math
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from std_msgs.msg import Float32
from std_srvs.srv import Trigger

from vgps_interfaces.msg import (
    ActionCandidates,
    EpisodeStatus,
    Intervention,
    ScoredCandidates,
    SelectedAction,
)
from vgps_ros import qos
from vgps_ros.conversions import candidates_from_msg, scored_from_msg, stamp_to_ns
from vgps_ros.input_guard import MessageError
from vgps_ros.parameters import Param, Update, declare, watch
from vgps_ros.runtime import ERROR, OK, WARN, diagnostic, now_s, spin
from vgps_ros.trust import EXPECTED, TRUST_PARAM, TrustedPublishers
from vgps_widowx.ros_conversions import selected_to_msg
from vgps_widowx.selector import EXECUTE_MODES, FALLBACKS, Decision, SelectorConfig
from vgps_widowx.selector_loop import SelectorLoop

_D = SelectorConfig()
PARAMETERS = (
    Param("k", _D.k, "expected candidates per step (decisions over another K are noted)",
          range=(1, 4096)),
    Param("beta", _D.beta, "selection temperature: 0 = greedy argmax, > 0 = sample "
          "softmax(Q / beta)", range=(0.0, 100.0)),
    Param("execute", _D.execute, "what a decision executes: the chosen chunk's first action, "
          "the whole chunk, or Octo temporal ensembling", choices=EXECUTE_MODES),
    Param("max_age_s", _D.max_age_s, "candidates whose source image is older than this are "
          "rejected", range=(0.01, 60.0)),
    Param("watchdog_timeout_s", _D.watchdog_timeout_s, "scores missing this long after their "
          "candidates -> fallback; nothing selected this long -> a hold decision",
          range=(0.01, 60.0)),
    Param("fallback", _D.fallback, "when scores are missing: hold still, or execute the "
          "policy's first sample", choices=FALLBACKS),
    Param("seed", _D.seed, "seed of the softmax sampling keys (fold_in(key(seed), step))",
          range=(0, 2**31 - 1)),
    Param("tick_period_s", 0.05, "watchdog timer period", range=(0.005, 1.0), live=False),
    Param("intervention_timeout_s", 0.5, "a take-over on vgps/intervention holds this long "
          "after its newest message", range=(0.01, 10.0)),
    Param("intervention_publishers", ("teleop_keyboard", "sim_corrector"), "node names "
          "obeyed on vgps/intervention (with trusted_publishers)", live=False),
    TRUST_PARAM,
)
LIVE = ("k", "beta", "execute", "max_age_s", "watchdog_timeout_s", "fallback")


class SelectorNode(Node):
    """The selector as a ROS node (see the module docstring)."""

    def __init__(self, name: str = "selector_node"):
        super().__init__(name)
        declare(self, PARAMETERS)
        self._loop = SelectorLoop(
            SelectorConfig(**{n: self.get_parameter(n).value for n in (*LIVE, "seed")}),
            intervention_timeout_s=self.get_parameter("intervention_timeout_s").value)
        watch(self, PARAMETERS, apply=self._apply)

        expected = {**EXPECTED, qos.INTERVENTION: tuple(
            self.get_parameter("intervention_publishers").value)}
        self._trust = TrustedPublishers(
            self, (qos.SCORED, qos.CANDIDATES, qos.EPISODE, qos.INTERVENTION),
            self._reject_foreign, lambda: self.get_parameter("trusted_publishers").value,
            expected=expected)
        trusted = self._trust.wrap
        group = MutuallyExclusiveCallbackGroup()  # decisions in order, one at a time
        self._selected_pub = self.create_publisher(SelectedAction, qos.SELECTED,
                                                   qos.COMMAND)
        self._q_selected_pub = self.create_publisher(Float32, qos.Q_SELECTED,
                                                     qos.COMMAND)
        self._q_margin_pub = self.create_publisher(Float32, qos.Q_MARGIN, qos.COMMAND)
        self._diag_pub = self.create_publisher(DiagnosticArray, qos.DIAGNOSTICS,
                                               qos.DIAGNOSTICS_QOS)
        self.create_subscription(ScoredCandidates, qos.SCORED,
                                 trusted(qos.SCORED, self._on_scored),
                                 qos.COMMAND, callback_group=group)
        self.create_subscription(ActionCandidates, qos.CANDIDATES,
                                 trusted(qos.CANDIDATES, self._on_candidates),
                                 qos.COMMAND, callback_group=group)
        self.create_subscription(EpisodeStatus, qos.EPISODE,
                                 trusted(qos.EPISODE, self._on_episode),
                                 qos.COMMAND, callback_group=group)
        self.create_subscription(Intervention, qos.INTERVENTION,
                                 trusted(qos.INTERVENTION, self._on_intervention),
                                 qos.COMMAND, callback_group=group)
        self.create_service(Trigger, qos.ESTOP, self._on_estop, callback_group=group)
        self.create_service(Trigger, qos.RESET_ESTOP, self._on_reset_estop,
                            callback_group=group)
        self.create_timer(self.get_parameter("tick_period_s").value, self._on_tick,
                          callback_group=group)
        self.create_timer(1.0, self._publish_diagnostics)
        self._last_mode = ""
        self._last_diag = 0.0

    # -- parameters -------------------------------------------------------------------------------
    def _apply(self, update: Update) -> None:
        changes = {name: value for name, value in update.changes.items() if name in LIVE}
        if "intervention_timeout_s" in update.changes:
            self._loop.takeover.timeout_s = update.changes["intervention_timeout_s"]
        if changes:
            self._loop.configure(**changes)  # ValueError: refused, nothing changes
            self.get_logger().info(f"live settings: {changes} (from the next step)")

    # -- callbacks --------------------------------------------------------------------------------
    def _on_scored(self, msg: ScoredCandidates) -> None:
        now = now_s(self)
        try:
            cands, q = scored_from_msg(msg, self._loop.config.action_dim)
        except MessageError as exc:
            step = int(msg.candidates.step)
            self._publish(self._loop.reject(exc.kind, exc.detail, step, now),
                          stamp_to_ns(msg.header.stamp))
            return
        decision = self._loop.on_scored(cands.step, cands.stamp_ns * 1e-9, cands.chunks, q, now)
        self._publish(decision, cands.stamp_ns)

    def _on_candidates(self, msg: ActionCandidates) -> None:
        try:
            cands = candidates_from_msg(msg, self._loop.config.action_dim)
        except MessageError:
            return  # the critic reports malformed candidates; nothing to fall back on
        self._loop.on_candidates(cands.step, cands.stamp_ns, cands.chunks, now_s(self))

    def _on_episode(self, msg: EpisodeStatus) -> None:
        if msg.event == EpisodeStatus.EVENT_STARTED:
            self._loop.new_episode()

    def _on_intervention(self, msg: Intervention) -> None:
        was = self._loop.takeover.active(now_s(self))
        action = np.asarray(msg.action, np.float64)
        if not self._loop.on_intervention(bool(msg.take_over), action, msg.source, now_s(self)):
            self.get_logger().warn(f"ignoring an intervention: {self._loop.last_detail}",
                                   throttle_duration_sec=2)
            self._publish_diagnostics()
            return
        if bool(was) != bool(msg.take_over):
            verb = "takes over" if msg.take_over else "releases"
            self.get_logger().info(f"intervention: {msg.source or 'unknown'} {verb}")

    def _reject_foreign(self, exc: MessageError) -> None:
        """A message from an unexpected publisher: counted, no decision (vgps_ros.trust)."""
        if self._loop.rejections.add(exc.kind, exc.detail, now_s(self)):
            self._publish_diagnostics()

    def _on_tick(self) -> None:
        for decision, stamp_ns in self._loop.on_tick(now_s(self)):
            self._publish(decision, stamp_ns)

    def _on_estop(self, request, response):
        self._loop.estop()
        self.get_logger().warn("E-STOP engaged: nothing executes until vgps/reset_estop")
        response.success, response.message = True, "e-stop engaged (latched)"
        self._publish_diagnostics()
        return response

    def _on_reset_estop(self, request, response):
        self._loop.reset_estop()
        self.get_logger().info("e-stop released")
        response.success, response.message = True, "e-stop released"
        self._publish_diagnostics()
        return response

    # -- output -----------------------------------------------------------------------------------
    def _publish(self, decision: Decision, stamp_ns: int) -> None:
        self._selected_pub.publish(selected_to_msg(decision, stamp_ns))
        if not math.isnan(decision.q):
            self._q_selected_pub.publish(Float32(data=float(decision.q)))
        if not math.isnan(decision.margin):
            self._q_margin_pub.publish(Float32(data=float(decision.margin)))
        mode = self._loop.mode
        urgent = mode != self._last_mode and mode in ("fallback", "hold", "estop")
        if urgent or (mode == "rejected" and time.monotonic() - self._last_diag > 0.1):
            self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        loop = self._loop
        mode = loop.mode
        level = OK if mode in ("nominal", "waiting", "intervention") else WARN
        message = f"{mode}: {loop.last_detail}"
        alarm = self._trust.alarm()
        if alarm:
            level, message = ERROR, alarm
        cfg = loop.config
        values = {"mode": mode, "k": cfg.k, "beta": cfg.beta, "execute": cfg.execute,
                  "fallback": cfg.fallback, "estopped": loop.selector.estopped,
                  **{f"decisions.{r}": n for r, n in sorted(loop.reasons.items())},
                  **{f"rejected.{k}": n for k, n in sorted(loop.rejections.counts.items())},
                  **self._trust.values()}
        self._diag_pub.publish(diagnostic(self, level, message, values))
        self._last_mode, self._last_diag = mode, time.monotonic()


def main(args: list[str] | None = None) -> None:
    spin(SelectorNode, args)


if __name__ == "__main__":
    main()
