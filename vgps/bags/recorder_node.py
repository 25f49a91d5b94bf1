"""recorder: records the steering topics into a rosbag2 bag (MCAP) - ``vgps up ... --record DIR``.

A plain rclpy node (not managed): it subscribes at start-up, so started before the episode it
sees every step. Messages arrive raw (CDR bytes, ``raw=True``) and go to a
:class:`~vgps.bags.writer.BagWriter` from one thread (a single-threaded executor); the receive
time is the
log time, the publisher's source time the publish time. Each topic is registered in the bag with
the QoS profiles its publishers offer. Subscriptions use the graph's named QoS
(:mod:`vgps_ros.qos`: ``SENSOR`` for the camera, ``LATCHED`` for the instruction,
``DIAGNOSTICS_QOS`` for ``/diagnostics``, ``COMMAND`` for the rest) with a deeper history, so
a slow disk does not drop messages. Other topics named in ``topics`` (and ``vgps/overlay`` where
``vgps_ros.qos`` does not name it) are subscribed once a publisher appears, with its type and a QoS
that matches it.

SIGINT or SIGTERM: the bag is finalised (summary, footer, metadata.yaml) and the node exits 0.
Chunks (``chunk_size``) and ``metadata.yaml`` go to disk every ``flush_period_s``, so a SIGKILL
loses at most the last period.

Parameters: ``path`` (bag directory, must not exist yet), ``topics`` (default:
:data:`STEERING_TOPICS`, the steering topics and ``vgps/overlay``), ``chunk_size``,
``compression``, ``flush_period_s``.

Usage::

    vgps-recorder --ros-args -p path:=out/run1               # or python -m vgps.bags.recorder_node
    vgps-recorder --ros-args -p path:=out/cam -p "topics:=[camera/image_raw]"
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.signals import SignalHandlerOptions

from vgps.bags import COMPRESSIONS, RECORDER_PARAMETERS, BagError, BagWriter, message_class
from vgps_ros import qos
from vgps_ros.runtime import describe

RECORD_DEPTH = 100  # subscription history: no drops while a chunk is compressed and written

# topic -> (type, the graph's QoS for it)
STEERING_TOPICS: dict[str, tuple[str, QoSProfile]] = {
    qos.CAMERA: ("sensor_msgs/msg/Image", qos.SENSOR),
    qos.INSTRUCTION: ("std_msgs/msg/String", qos.LATCHED),
    qos.CANDIDATES: ("vgps_interfaces/msg/ActionCandidates", qos.COMMAND),
    qos.SCORED: ("vgps_interfaces/msg/ScoredCandidates", qos.COMMAND),
    qos.SELECTED: ("vgps_interfaces/msg/SelectedAction", qos.COMMAND),
    qos.EPISODE: ("vgps_interfaces/msg/EpisodeStatus", qos.COMMAND),
    qos.INTERVENTION: ("vgps_interfaces/msg/Intervention", qos.COMMAND),  # take-overs
    qos.JOINT_STATES: ("sensor_msgs/msg/JointState", qos.COMMAND),
    qos.Q_VALUES: ("std_msgs/msg/Float32MultiArray", qos.COMMAND),
    qos.Q_SELECTED: ("std_msgs/msg/Float32", qos.COMMAND),
    qos.Q_MARGIN: ("std_msgs/msg/Float32", qos.COMMAND),
    qos.DIAGNOSTICS: ("diagnostic_msgs/msg/DiagnosticArray", qos.DIAGNOSTICS_QOS),
}
# The candidate overlay (an Image, best effort as for the camera: any publisher QoS matches);
# where vgps_ros.qos does not name it, it is recorded once a publisher shows its type.
OVERLAY = getattr(qos, "OVERLAY", None)
if OVERLAY is not None:
    STEERING_TOPICS[OVERLAY] = ("sensor_msgs/msg/Image", qos.SENSOR)
DEFAULT_TOPICS = (*STEERING_TOPICS, *(() if OVERLAY else ("vgps/overlay",)))


def run_info(text: str) -> dict[str, str]:
    """The ``run_info`` parameter (a JSON object) as string pairs for ``custom_data``."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise BagError(f"parameter 'run_info' is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BagError(f"parameter 'run_info' must be a JSON object, got {text!r}")
    return {str(k): str(v) for k, v in value.items()}


def recording_qos(profile: QoSProfile) -> QoSProfile:
    """``profile`` with a history of at least :data:`RECORD_DEPTH` (compatibility unchanged)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(profile.depth, RECORD_DEPTH),
                      reliability=profile.reliability, durability=profile.durability)


def steering_topic(topic: str) -> tuple[str, QoSProfile] | None:
    """(type, QoS) of a steering topic, named relative or absolute (root namespace), else None."""
    bare = topic.lstrip("/")
    return STEERING_TOPICS.get(bare) or STEERING_TOPICS.get("/" + bare)


def expected_subscriptions(topics: list[str] | None = None) -> list[str]:
    """Absolute names of the topics the recorder subscribes to at start-up (known types)."""
    names = DEFAULT_TOPICS if topics is None else topics
    return ["/" + t.lstrip("/") for t in names if steering_topic(t)]


class RecorderNode(Node):
    """Records topics into a bag (see the module docstring)."""

    def __init__(self, name: str = "recorder"):
        super().__init__(name)
        self.declare_parameter("path", "", describe(
            "bag directory to create (must not exist or be empty)", read_only=True))
        self.declare_parameter("topics", list(DEFAULT_TOPICS), describe(
            "topics to record (relative names follow the node's namespace)", read_only=True))
        defaults = RECORDER_PARAMETERS  # the graph description passes the same values
        self.declare_parameter("chunk_size", defaults["chunk_size"], describe(
            "uncompressed bytes per MCAP chunk", int_range=(4096, 64 * 1024 * 1024),
            read_only=True))
        self.declare_parameter("compression", defaults["compression"], describe(
            "chunk compression", choices=COMPRESSIONS, read_only=True))
        self.declare_parameter("flush_period_s", defaults["flush_period_s"], describe(
            "write the chunk in progress and metadata.yaml this often (SIGKILL loses at most "
            "this much)", float_range=(0.1, 3600.0), read_only=True))
        self.declare_parameter("run_info", defaults["run_info"], describe(
            "JSON object of strings stored as metadata.yaml custom_data (vgps up puts the "
            "critic, policy, k and beta there, for vgps replay)", read_only=True))
        path = self.get_parameter("path").value
        if not path:
            raise BagError("parameter 'path' (the bag directory) is required")
        compression = self.get_parameter("compression").value
        self.writer = BagWriter(path, chunk_size=self.get_parameter("chunk_size").value,
                                compression=compression,
                                custom_data={**run_info(self.get_parameter("run_info").value),
                                             "recorder": self.get_fully_qualified_name()})
        self._registered: set[str] = set()
        self._failed: set[str] = set()
        self._pending: list[str] = []  # topics whose type is learned from their publishers
        self._subs: list[Any] = []
        for topic in self.get_parameter("topics").value:
            known = steering_topic(topic)
            if known:
                self._subscribe(topic, known[0], recording_qos(known[1]))
            else:
                self._pending.append(topic)
        self.create_timer(float(self.get_parameter("flush_period_s").value), self._flush)
        if self._pending:
            self._discovery = self.create_timer(0.5, self._discover)
            self._discover()
        self.get_logger().info(f"recording {len(self._subs)} topics to {self.writer.path}"
                               + (f"; waiting for {self._pending}" if self._pending else ""))

    def _subscribe(self, topic: str, msgtype: str, profile: QoSProfile) -> None:
        holder: list[str] = []

        def on_message(data: bytes, info: Any) -> None:
            self._record(holder[0], msgtype, data, info)

        sub = self.create_subscription(message_class(msgtype), topic, on_message, profile,
                                       raw=True)
        holder.append(sub.topic_name)
        self._subs.append(sub)

    def _record(self, topic: str, msgtype: str, data: bytes, info: Any) -> None:
        if topic in self._failed:
            return
        log_ns = int(info.get("received_timestamp") or 0) or time.time_ns()
        source_ns = int(info.get("source_timestamp") or 0) or log_ns
        try:
            if topic not in self._registered:
                offered = [e.qos_profile for e in self.get_publishers_info_by_topic(topic)]
                self.writer.add_topic(topic, msgtype, offered)
                self._registered.add(topic)
            self.writer.write(topic, msgtype, data, log_ns, source_ns)
        except BagError as exc:
            self._failed.add(topic)
            self.get_logger().error(f"not recording {topic}: {exc}")

    def _discover(self) -> None:
        types = dict(self.get_topic_names_and_types())
        for topic in list(self._pending):
            name = self.resolve_topic_name(topic)
            if not types.get(name):
                continue
            self._pending.remove(topic)
            msgtype = types[name][0]
            try:
                self._subscribe(topic, msgtype, self._matching_qos(name))
                self.get_logger().info(f"recording {name} ({msgtype})")
            except (ImportError, BagError) as exc:
                self.get_logger().error(f"cannot record {name} ({msgtype}): {exc}")
        if not self._pending:
            self.destroy_timer(self._discovery)

    def _matching_qos(self, topic: str) -> QoSProfile:
        """Reliable / transient local only when every publisher offers it (as rosbag2 does)."""
        offered = [e.qos_profile for e in self.get_publishers_info_by_topic(topic)]
        reliable = offered and all(q.reliability == ReliabilityPolicy.RELIABLE for q in offered)
        latched = offered and all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL
                                  for q in offered)
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=RECORD_DEPTH,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)

    def _flush(self) -> None:
        try:
            self.writer.flush()
        except (BagError, OSError) as exc:
            self.get_logger().error(f"flushing the bag failed: {exc}")

    def close(self) -> None:
        """Finalises the bag (idempotent)."""
        self.writer.close()
        counts = self.writer.counts
        self.get_logger().info(f"bag {self.writer.path} closed: {sum(counts.values())} "
                               f"messages on {len(counts)} topics")


def main(args: list[str] | None = None) -> int:
    """Runs the recorder until SIGINT/SIGTERM, then finalises the bag."""
    # Our own signal handling: a signal only stops the loop, so a write in progress completes
    # and the bag is closed after the last callback.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    node = None
    code = 0
    try:
        node = RecorderNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except BagError as exc:
        print(f"recorder: error: {exc}", file=sys.stderr)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)  # closing the bag is not interrupted
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
