"""Publish a recorded bag back onto live ROS 2 topics, paced like the recording (``vgps replay
BAG --publish``), so nodes can be debugged against a real run.

Every readable message goes out on its topic with the recorded type and the graph's QoS for that
topic (:mod:`vgps_ros.qos`: sensor QoS for images, transient local for the instruction,
the diagnostics profile for ``/diagnostics``, reliable keep-last-5 otherwise). Topic names are
made relative again (``/vgps/scored`` -> ``vgps/scored``; ``/diagnostics`` stays absolute), so
``namespace`` moves them like the graph's own. Messages are sent at their recorded log times
scaled by ``1 / rate`` and, unless ``restamp``, unchanged (the CDR bytes as recorded). Nodes that
reject old stamps (the critic's and selector's ``max_age_s``) need ``restamp=True``: every
``std_msgs/Header`` stamp (nested ones included) is moved by the same offset, so that the first
message's log time becomes now and stamps still match across topics.

Usage::

    from vgps.bags.publish import publish_bag
    publish_bag("out/bags/run1", rate=4.0)                      # 4x faster than recorded
    publish_bag("out/bags/run1", topics=["/camera/image_raw", "/vgps/candidates"],
                restamp=True, namespace="/debug")
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

__all__ = ["publish_bag", "topic_name_and_qos"]


def topic_name_and_qos(topic: str) -> tuple[str, Any]:
    """The name to publish a recorded topic on, and its QoS profile from ``vgps_ros.qos``.

    Args:
        topic: the absolute name in the bag (``/vgps/scored``).

    Returns:
        ``(name, qos)``: a relative name (absolute only for the graph's absolute topics).
    """
    from vgps_ros import qos

    relative = topic.lstrip("/")
    special = {qos.CAMERA: qos.SENSOR, qos.CAMERA_SOURCE: qos.SENSOR,
               qos.INSTRUCTION: qos.LATCHED, qos.DIAGNOSTICS: qos.DIAGNOSTICS_QOS}
    for name, profile in special.items():
        if relative == name.lstrip("/"):
            return name, profile  # spelled as in vgps_ros.qos: relative, absolute for /diagnostics
    return relative, qos.COMMAND


def _shift_stamps(msg: Any, offset_ns: int) -> None:
    """Adds ``offset_ns`` to every ``std_msgs/Header`` stamp in ``msg`` (recursively)."""
    from vgps_ros.conversions import stamp_from_ns, stamp_to_ns

    fields = getattr(msg, "get_fields_and_field_types", None)
    if fields is None:
        return
    for name, kind in fields().items():
        value = getattr(msg, name)
        if kind == "std_msgs/Header":
            value.stamp = stamp_from_ns(max(0, stamp_to_ns(value.stamp) + offset_ns))
        elif "/" in kind and not kind.startswith("sequence") and "[" not in kind:
            _shift_stamps(value, offset_ns)
        elif "/" in kind and isinstance(value, (list, tuple)):
            for item in value:
                _shift_stamps(item, offset_ns)


def _wait_for_subscribers(publishers: dict[str, Any], wait_for: set[str], wait_s: float,
                          stop: threading.Event) -> dict[str, int]:
    """Waits up to ``wait_s`` for subscribers on all ``wait_for`` topics (empty: on any)."""
    deadline = time.monotonic() + wait_s
    while True:
        counts = {t: p.get_subscription_count() for t, p in publishers.items()}
        ready = (all(counts.get(t, 0) > 0 for t in wait_for) if wait_for
                 else any(counts.values()))
        if ready or time.monotonic() >= deadline or stop.is_set():
            return counts
        time.sleep(0.05)


def publish_bag(bag: str | os.PathLike, *, rate: float = 1.0,
                topics: Iterable[str] | None = None, namespace: str = "",
                restamp: bool = False, wait_s: float = 2.0, wait_for: Iterable[str] = (),
                linger_s: float = 0.5, stop: threading.Event | None = None,
                progress: bool = False) -> dict[str, Any]:
    """Publishes a bag's messages onto live topics (see the module docstring).

    Args:
        bag: bag directory or ``.mcap`` file.
        rate: playback speed (2 = twice as fast as recorded); > 0.
        topics: recorded topic names to publish (default: all).
        namespace: ROS namespace of the publishing node (relative topics follow it).
        restamp: shift every header stamp so the first message is stamped now.
        wait_s: before the first message, wait up to this long for subscribers (discovery).
        wait_for: recorded topic names that must have a subscriber before starting (default:
            any topic having one is enough); after ``wait_s`` it starts anyway.
        linger_s: keep the publishers alive this long after the last message (delivery).
        stop: set it to stop early (from another thread).
        progress: show a progress bar.

    Returns:
        ``{"published": {topic: n}, "duration_s", "rate", "subscribers": {topic: n},
        "skipped_topics": {topic: why}, "problems": [...]}``.

    Raises:
        ValueError: a bad ``rate``, or ``topics`` not in the bag.
        vgps.bags.writer.BagError: nothing readable in ``bag``.
    """
    import rclpy
    from tqdm import tqdm

    from vgps.bags import BagReader, message_class

    if not (isinstance(rate, (int, float)) and rate > 0 and rate < float("inf")):
        raise ValueError(f"rate={rate!r}: must be a finite number > 0")
    reader = BagReader(bag)
    wanted = None if topics is None else {"/" + t.lstrip("/") for t in topics}
    if wanted is not None and (unknown := wanted - set(reader.topics)):
        raise ValueError(f"topics {sorted(unknown)} are not in {bag} (it has "
                         f"{', '.join(sorted(reader.topics))})")
    skipped: dict[str, str] = {}
    classes: dict[str, type] = {}
    for name, info in reader.topics.items():
        if wanted is not None and name not in wanted:
            continue
        try:
            classes[name] = message_class(info.msgtype)
        except ImportError as exc:
            skipped[name] = f"type {info.msgtype} is not installed here ({exc})"
    messages = sorted((m for m in reader.messages(list(classes), deserialize=restamp)),
                      key=lambda m: m.log_time_ns)
    stop = stop or threading.Event()
    context = rclpy.Context()
    rclpy.init(context=context)
    counts: Counter[str] = Counter()
    node = None
    started = time.monotonic()
    try:
        node = rclpy.create_node("vgps_bag_publisher", namespace=namespace, context=context)
        publishers = {}
        for name, cls in classes.items():
            out_name, profile = topic_name_and_qos(name)
            publishers[name] = node.create_publisher(cls, out_name, profile)
        wait = {"/" + t.lstrip("/") for t in wait_for}
        _wait_for_subscribers(publishers, wait, wait_s, stop)
        subscribers = {t: p.get_subscription_count() for t, p in publishers.items()}
        started = time.monotonic()
        if messages:
            first = messages[0].log_time_ns
            offset = time.time_ns() - first
            for item in tqdm(messages, desc="publish", unit="msg", disable=not progress):
                due = started + (item.log_time_ns - first) * 1e-9 / rate
                while not stop.is_set() and (left := due - time.monotonic()) > 0:
                    time.sleep(min(left, 0.05))
                if stop.is_set():
                    break
                if restamp:
                    _shift_stamps(item.message, offset)
                    publishers[item.topic].publish(item.message)
                else:
                    publishers[item.topic].publish(item.data)
                counts[item.topic] += 1
        duration = time.monotonic() - started
        stop.wait(linger_s)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
    return {"published": dict(counts), "duration_s": round(duration, 3), "rate": rate,
            "subscribers": subscribers, "skipped_topics": skipped,
            "problems": list(reader.problems)}
