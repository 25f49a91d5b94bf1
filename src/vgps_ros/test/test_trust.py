"""vgps_ros.trust: publisher identity per message, intruder scans, the arm driver's hold."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from vgps_ros import qos  # noqa: E402
from vgps_ros.input_guard import MessageError  # noqa: E402
from vgps_ros.trust import (  # noqa: E402
    EXPECTED,
    REFRESH_S,
    PublisherHold,
    TrustedPublishers,
)


class FakeGraph:
    """A node's graph API: the publishers per topic as (node name, gid) pairs."""

    def __init__(self, **topics):
        self.topics = {t: list(v) for t, v in topics.items()}
        self.queries = 0

    def get_publishers_info_by_topic(self, topic):
        self.queries += 1
        return [SimpleNamespace(node_name=n, node_namespace="/", endpoint_gid=list(g))
                for n, g in self.topics.get(topic, [])]


def info(gid: bytes) -> dict:
    return {"publisher_gid": {"data": gid, "implementation_identifier": "rmw_fastrtps_cpp"}}


SEL = qos.SELECTED


def make(graph, enabled=True, clock=None):
    rejected: list[MessageError] = []
    trust = TrustedPublishers(graph, (SEL,), rejected.append, lambda: enabled,
                              clock=clock or time.monotonic)
    return trust, rejected


def test_graph_publishers_are_the_pipeline():
    assert EXPECTED == {qos.CANDIDATES: ("policy_node",), qos.SCORED: ("critic_node",),
                        qos.SELECTED: ("selector_node",), qos.EPISODE: ("arm_driver",)}


def test_only_the_expected_node_is_obeyed_and_foreign_messages_are_counted():
    graph = FakeGraph(**{SEL: [("selector_node", b"\x01" * 16), ("mallory", b"\x02" * 16)]})
    trust, rejected = make(graph)
    got = []
    callback = trust.wrap(SEL, got.append)
    callback("real", info(b"\x01" * 16))
    callback("forged", info(b"\x02" * 16))
    callback("ghost", info(b"\x03" * 16))  # not in the ROS graph at all
    assert got == ["real"]
    assert [e.kind for e in rejected] == ["foreign_publisher"] * 2
    assert "mallory" in rejected[0].detail and "selector_node" in rejected[0].detail
    assert trust.values() == {"trusted_publishers": True, f"foreign.{SEL}": 2}
    assert trust.alarm() == f"{SEL} has unexpected publishers: a publisher not in the ROS " \
                            f"graph, mallory"
    graph.topics[SEL] = graph.topics[SEL][:1]  # mallory left
    assert trust.alarm() == "" and trust.intruders == {}


def test_unknown_gids_refresh_the_graph_at_a_bounded_rate():
    now = [0.0]
    graph = FakeGraph(**{SEL: [("selector_node", b"\x01" * 16)]})
    trust, rejected = make(graph, clock=lambda: now[0])
    callback = trust.wrap(SEL, lambda msg: None)
    for i in range(1000):  # a flood from unknown publishers within one refresh period
        callback("x", info(bytes([9, i % 256]) * 8))
    assert graph.queries == 1 and len(rejected) == 1000
    now[0] += REFRESH_S
    graph.topics[SEL].append(("selector_node", b"\x05" * 16))  # a restarted selector
    got = []
    trust.wrap(SEL, got.append)("new", info(b"\x05" * 16))
    assert got == ["new"] and graph.queries == 2


def test_disabled_checks_pass_everything_and_report_nothing():
    graph = FakeGraph(**{SEL: [("mallory", b"\x02" * 16)]})
    trust, rejected = make(graph, enabled=False)
    got = []
    trust.wrap(SEL, got.append)("forged", info(b"\x02" * 16))
    assert got == ["forged"] and not rejected and trust.alarm() == ""
    with pytest.raises(ValueError):
        trust.wrap(qos.SCORED, got.append)  # not one of this node's trusted topics


def test_the_hold_lasts_until_the_intruder_is_gone_or_acknowledged():
    graph = FakeGraph(**{SEL: [("selector_node", b"\x01" * 16), ("mallory", b"\x02" * 16)]})
    trust, _ = make(graph)
    hold = PublisherHold(trust, SEL)
    got = []
    callback = hold.wrap(got.append)
    trust.scan()
    callback("real", info(b"\x01" * 16))
    assert got == [] and hold.held == 1 and "mallory" in hold.reason()
    response = hold.on_acknowledge(None, SimpleNamespace(success=False, message=""))
    assert response.success and "mallory" in response.message
    callback("real", info(b"\x01" * 16))
    callback("forged", info(b"\x02" * 16))  # still never obeyed
    assert got == ["real"]
    graph.topics[SEL] = graph.topics[SEL][:1]
    trust.scan()  # her forged message since the last scan still counts once
    assert not hold.reason()
    trust.scan()  # mallory left: the acknowledgement is forgotten
    graph.topics[SEL].append(("mallory", b"\x07" * 16))
    trust.scan()  # ... and her return holds again
    assert hold.reason() and hold.values()["publisher_hold"] is True


def test_over_dds_the_publisher_gid_names_the_node():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        topic = "vgps_trust_test"
        listener = rclpy.create_node("listener", context=context)
        good = rclpy.create_node("policy_node", context=context)
        bad = rclpy.create_node("mallory", context=context)
        rejected: list[MessageError] = []
        trust = TrustedPublishers(listener, (topic,), rejected.append,
                                  expected={topic: ("policy_node",)})
        got: list[str] = []
        callback = trust.wrap(topic, lambda m: got.append(m.data))
        listener.create_subscription(String, topic, callback, 10)
        pubs = [(good.create_publisher(String, topic, 10), "good"),
                (bad.create_publisher(String, topic, 10), "bad")]
        executor = SingleThreadedExecutor(context=context)
        for node in (listener, good, bad):
            executor.add_node(node)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (len(got) < 3 or len(rejected) < 3):
            for pub, text in pubs:
                pub.publish(String(data=text))
            executor.spin_once(timeout_sec=0.05)
            executor.spin_once(timeout_sec=0.05)
        assert got and set(got) == {"good"}
        assert rejected and all("mallory" in e.detail or "not in the ROS graph" in e.detail
                                for e in rejected)
        assert trust.alarm() == f"{topic} has unexpected publishers: mallory"
    finally:
        rclpy.try_shutdown(context=context)
