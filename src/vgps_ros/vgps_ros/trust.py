"""Trusted publishers: a command topic is obeyed only from the graph node that owns it.

Without DDS security any process in the ROS domain can publish on ``vgps/candidates``,
``vgps/scored``, ``vgps/selected`` and ``vgps/episode``. Each subscribing node therefore knows the
node that publishes each of these topics in the steering graph (:data:`EXPECTED`) and, per message,
the publisher's GID from rclpy's message info (a subscription callback of two arguments):

* the GID is looked up in the endpoint infos of the topic (``get_publishers_info_by_topic``: node
  name and GID), remembered, and refreshed when an unknown GID shows up - at most every
  ``REFRESH_S`` per topic, so a flood from unknown publishers cannot stall the node;
* a message from any other node, or from a publisher not (yet) in the ROS graph, is dropped and
  counted as ``rejected.foreign_publisher`` through the node's reject path (``/diagnostics``);
* :meth:`TrustedPublishers.scan` (run with each diagnostic) lists the unexpected publishers of the
  trusted topics: while there are any the node's ``/diagnostics`` status is ERROR, and the arm
  driver holds (executes nothing) until they are gone or an operator acknowledges them
  (``vgps/acknowledge_publishers``);
* the ``trusted_publishers`` parameter (:data:`TRUST_PARAM`, default true) turns all of it off,
  for benchmarks and for labs whose graph has another layout.

What this does NOT stop without ROS security (SROS2 / DDS-Security): a node name is not a
credential. A forger that creates a node with the expected name (``selector_node``,
``critic_node``, ...) passes the identity check, and one that starts first with the right name is
the publisher the graph trusts; then only the other input checks (stamps, steps, limits) remain.
It stops forgers under any other node name and makes an extra publisher on a command topic
visible. Only DDS-Security (an enclave per node, per-topic permissions) authenticates publishers.

The e-stop (``vgps/estop``) and its release (``vgps/reset_estop``) are services: rclpy does not
tell a service who called it, so their callers cannot be checked here. Engaging the e-stop from
anyone is safe by design; releasing it is an operator's act that needs SROS2 permissions to be
restricted.

Usage::

    trust = TrustedPublishers(node, (qos.SELECTED,), reject=node.reject,
                              enabled=lambda: node.param("trusted_publishers"))
    node.create_subscription(SelectedAction, qos.SELECTED,
                             trust.wrap(qos.SELECTED, self._on_selected), qos.COMMAND)
    alarm = trust.alarm()     # "" or "vgps/selected has unexpected publishers: mallory"
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from vgps_ros import qos
from vgps_ros.input_guard import MessageError
from vgps_ros.parameters import Param
from vgps_ros.runtime import ERROR, diagnostic

__all__ = ["ACKNOWLEDGE", "EXPECTED", "REFRESH_S", "TRUST_PARAM", "PublisherHold",
           "TrustedPublishers", "gid_bytes", "publish_alarm"]

# The steering graph's publisher of each command topic (vgps.graph.description: its outputs).
EXPECTED: Mapping[str, tuple[str, ...]] = {
    qos.CANDIDATES: ("policy_node",),
    qos.SCORED: ("critic_node",),
    qos.SELECTED: ("selector_node",),
    qos.EPISODE: ("arm_driver",),
}
TRUST_PARAM = Param("trusted_publishers", True, "obey vgps/candidates, scored, selected and "
                    "episode only from the graph node that publishes them (publisher GID); an "
                    "unexpected publisher is an ERROR on /diagnostics")
REFRESH_S = 0.05  # unknown GIDs refresh a topic's endpoint infos at most this often
UNKNOWN_NODE = "_NODE_NAME_UNKNOWN_"  # rmw's name of an endpoint whose node is not known yet
MAX_KNOWN = 1024  # GIDs remembered per topic


def gid_bytes(value: Any) -> bytes | None:
    """A publisher GID as bytes: rclpy's message info ``{"data": ...}`` or an endpoint info's
    ``endpoint_gid`` (None: absent or unreadable)."""
    if isinstance(value, dict):
        value = value.get("data")
    if value is None:
        return None
    try:
        gid = bytes(value)
    except (TypeError, ValueError):
        return None
    return gid or None


class TrustedPublishers:
    """Publisher identity checks for one node's command subscriptions (module docstring).

    Args:
        node: the rclpy node (its graph API: ``get_publishers_info_by_topic``).
        topics: the node's trusted subscriptions (keys of ``expected``).
        reject: called with a ``MessageError("foreign_publisher", ...)`` per dropped message.
        enabled: whether the checks are on (read per message: the parameter is live).
        expected: topic -> the node names allowed to publish it.
        clock: monotonic seconds (tests).
    """

    def __init__(self, node: Any, topics: tuple[str, ...],
                 reject: Callable[[MessageError], None],
                 enabled: Callable[[], bool] = lambda: True,
                 expected: Mapping[str, tuple[str, ...]] = EXPECTED,
                 clock: Callable[[], float] = time.monotonic):
        self.node, self._reject, self.enabled = node, reject, enabled
        self.expected = {t: tuple(expected[t]) for t in topics}
        self._clock = clock
        self._lock = threading.Lock()
        self._names: dict[str, dict[bytes, str]] = {t: {} for t in self.expected}
        self._refreshed: dict[str, float] = {}
        self.foreign: Counter[str] = Counter()  # dropped messages per topic
        self.intruders: dict[str, tuple[str, ...]] = {}  # topic -> unexpected node names
        self._seen: dict[str, set[str]] = {}  # foreign publishers heard since the last scan
        self.on_scan: list[Callable[[dict[str, tuple[str, ...]]], None]] = []

    # -- per message ------------------------------------------------------------------------------
    def wrap(self, topic: str, callback: Callable[[Any], None]) -> Callable[[Any, Any], None]:
        """A two-argument subscription callback that calls ``callback(msg)`` for trusted
        publishers only."""
        if topic not in self.expected:
            raise ValueError(f"{topic} has no expected publisher (one of {sorted(self.expected)})")

        def guarded(msg: Any, message_info: Any) -> None:  # two arguments: rclpy passes the info
            if self.trusts(topic, message_info):
                callback(msg)

        return guarded

    def trusts(self, topic: str, message_info: Any) -> bool:
        """Whether a message on ``topic`` with this message info comes from its expected node
        (always true when disabled or when the rmw does not say who published)."""
        if not self.enabled():
            return True
        gid = gid_bytes(message_info.get("publisher_gid")
                        if isinstance(message_info, dict) else None)
        if gid is None:
            return True  # nothing to check against (an rmw without publisher GIDs)
        name = self._name(topic, gid)
        if name in self.expected[topic]:
            return True
        who = name or "a publisher not in the ROS graph"
        with self._lock:
            self.foreign[topic] += 1
            self._seen.setdefault(topic, set()).add(who)
        self._reject(MessageError("foreign_publisher", f"{topic} from {who}, expected "
                                                       f"{' or '.join(self.expected[topic])}"))
        return False

    def _name(self, topic: str, gid: bytes) -> str:
        """The node name of publisher ``gid`` on ``topic`` ("" while unknown)."""
        names = self._names[topic]
        name = names.get(gid)
        if name:
            return name
        now = self._clock()
        if now - self._refreshed.get(topic, -1e9) >= REFRESH_S:
            self._refreshed[topic] = now
            if len(names) > MAX_KNOWN:
                names.clear()
            for info in self._publishers(topic):
                key = gid_bytes(info.endpoint_gid)
                if key is not None and info.node_name and info.node_name != UNKNOWN_NODE:
                    names[key] = info.node_name
        return names.get(gid, "")

    def _publishers(self, topic: str) -> list:
        try:
            return list(self.node.get_publishers_info_by_topic(topic))
        except Exception:  # noqa: BLE001 - a node shutting down: nothing is known
            return []

    # -- the graph --------------------------------------------------------------------------------
    def scan(self) -> dict[str, tuple[str, ...]]:
        """Lists the unexpected publishers of each trusted topic now (also kept in
        :attr:`intruders`); a foreign publisher heard since the last scan counts too."""
        found: dict[str, tuple[str, ...]] = {}
        if self.enabled():
            for topic, allowed in self.expected.items():
                names = {i.node_name for i in self._publishers(topic)
                         if i.node_name not in allowed and i.node_name != UNKNOWN_NODE}
                with self._lock:
                    names |= self._seen.pop(topic, set())
                if names:
                    found[topic] = tuple(sorted(names))
        with self._lock:
            self._seen.clear()
            self.intruders = found
        for listener in self.on_scan:
            listener(found)
        return found

    def alarm(self, scan: bool = True) -> str:
        """"" or the ERROR message naming the unexpected publishers (after a :meth:`scan`)."""
        found = self.scan() if scan else self.intruders
        return "; ".join(f"{topic} has unexpected publishers: {', '.join(names)}"
                         for topic, names in sorted(found.items()))

    def values(self) -> dict[str, Any]:
        """Diagnostic key/values: the setting and the foreign messages dropped per topic."""
        with self._lock:
            return {"trusted_publishers": bool(self.enabled()),
                    **{f"foreign.{t}": n for t, n in sorted(self.foreign.items())}}


def publish_alarm(node: Any, trust: TrustedPublishers | None) -> bool:
    """A ManagedNode's ERROR diagnostic while its trusted topics have unexpected publishers
    (True: published; the caller publishes its usual status otherwise)."""
    alarm = trust.alarm() if trust is not None else ""
    if not alarm:
        return False
    values = {"status": node.status, **node.diagnostic_values(),
              **{f"rejected.{k}": v for k, v in sorted(node.rejections.counts.items())}}
    node._diag_pub.publish(diagnostic(node, ERROR, alarm, values))
    return True


ACKNOWLEDGE = "vgps/acknowledge_publishers"  # std_srvs/Trigger of the arm driver


class PublisherHold:
    """The arm driver's hold: while ``topic`` has an unexpected publisher that no operator
    acknowledged, decisions from the trusted publisher are not executed either.

    The hold lifts when the publisher is gone (the next :meth:`TrustedPublishers.scan`, run with
    each diagnostic) or after :meth:`on_acknowledge` (a Trigger service callback), which accepts
    the publishers present now; a publisher that leaves and comes back, or a new one, holds again.
    """

    def __init__(self, trust: TrustedPublishers, topic: str, log: Any = None):
        self.trust, self.topic, self._log = trust, topic, log
        self.acknowledged: set[str] = set()
        self.held = 0  # decisions not executed because of the hold
        self._reason = ""
        trust.on_scan.append(self._forget_gone)

    def _forget_gone(self, found: dict[str, tuple[str, ...]]) -> None:
        self.acknowledged &= set(found.get(self.topic, ()))  # back again: holds again

    def reason(self) -> str:
        """"" or why the arm holds now (from the newest scan)."""
        present = set(self.trust.intruders.get(self.topic, ()))
        pending = sorted(present - self.acknowledged) if self.trust.enabled() else []
        reason = (f"holding: {self.topic} has unexpected publishers {', '.join(pending)} "
                  f"(call {ACKNOWLEDGE} to accept them)") if pending else ""
        if reason and reason != self._reason and self._log is not None:
            self._log.error(reason)
        self._reason = reason
        return reason

    def wrap(self, callback: Callable[[Any], None]) -> Callable[[Any, Any], None]:
        """A two-argument callback: trusted publishers only, nothing while holding."""
        trusted = self.trust.wrap(self.topic, callback)

        def guarded(msg: Any, message_info: Any) -> None:
            if self.reason():
                if self.trust.trusts(self.topic, message_info):  # foreign ones count there
                    self.held += 1
                return
            trusted(msg, message_info)

        return guarded

    def on_acknowledge(self, request: Any, response: Any) -> Any:
        """std_srvs/Trigger: accept the unexpected publishers present now."""
        present = set(self.trust.scan().get(self.topic, ()))
        self.acknowledged |= present
        response.success = True
        response.message = (f"acknowledged {', '.join(sorted(present))} on {self.topic}"
                            if present else f"{self.topic} has no unexpected publisher")
        if self._log is not None:
            self._log.warn(response.message)
        return response

    def values(self) -> dict[str, Any]:
        return {**self.trust.values(), "publisher_hold": bool(self._reason),
                "ignored.publisher_hold": self.held}
