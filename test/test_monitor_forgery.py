"""``vgps up``'s monitor against another process's forgeries in the same ROS domain.

An adversarial run killed the monitor's executor thread with an empty ``q_values`` message and
made ``vgps up --episodes 3`` exit 0 after one real episode with three forged ``succeeded``
events. Here, in one process: the monitor on its own node, a node NAMED ``arm_driver`` (the real
one, as far as the ROS graph can tell) and a forger node of another name, all spun by one
executor. Only the arm driver's episodes count, the forged events are counted as refused, and
the monitor still hears the arm driver afterwards. Also without DDS: every callback called
directly with hostile field values never raises.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]


class _FakeNode:
    """Collects a GraphMonitor's subscriptions so a test can call them with messages."""

    def __init__(self):
        self.callbacks = {}

    def create_subscription(self, msg_type, topic, callback, qos):
        self.callbacks[topic] = callback


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def ros() -> Iterator[tuple]:
    """A private rclpy context with an executor spinning in a thread: (context, add_node)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    nodes = []

    def make_node(name: str):
        node = rclpy.create_node(name, context=context)
        nodes.append(node)
        executor.add_node(node)
        return node

    def spin() -> None:
        with contextlib.suppress(ExternalShutdownException):  # shut down at the end
            executor.spin()

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        yield make_node, spinner
    finally:
        executor.shutdown(timeout_sec=1.0)
        spinner.join(timeout=5.0)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_only_the_arm_drivers_episodes_count_and_the_monitor_survives(ros):
    from std_msgs.msg import Header

    from vgps.graph.monitor import GraphMonitor
    from vgps_interfaces.msg import (
        ActionCandidates,
        EpisodeStatus,
        ScoredCandidates,
        SelectedAction,
    )
    from vgps_ros import qos
    from vgps_ros.conversions import stamp_from_ns

    make_node, spinner = ros
    lines: list[str] = []
    monitor = GraphMonitor(make_node("vgps_up"), echo=lines.append)
    arm, forger = make_node("arm_driver"), make_node("mallory")
    real = arm.create_publisher(EpisodeStatus, qos.EPISODE, qos.COMMAND)
    fake = forger.create_publisher(EpisodeStatus, qos.EPISODE, qos.COMMAND)
    scored = forger.create_publisher(ScoredCandidates, qos.SCORED, qos.COMMAND)
    selected = forger.create_publisher(SelectedAction, qos.SELECTED, qos.COMMAND)
    candidates = forger.create_publisher(ActionCandidates, qos.CANDIDATES, qos.COMMAND)
    pubs = (real, fake, scored, selected, candidates)
    assert _wait(lambda: all(p.get_subscription_count() >= 1 for p in pubs))

    def episode(pub, number: int, event: str, step: int = 0) -> None:
        pub.publish(EpisodeStatus(episode=number, task="t", step=step, event=event,
                                  success=event == "succeeded"))

    episode(real, 0, "started")
    assert _wait(lambda: monitor.episode == 0)
    # The adversarial run: hostile scores and a decision with their stamp, forged outcomes.
    stamp = 2_000_000_000
    header = Header(stamp=stamp_from_ns(stamp))
    candidates.publish(ActionCandidates(header=header, k=3))
    for q in ([], [math.nan] * 3, [math.inf, -math.inf], [3.4e38] * 4096):
        scored.publish(ScoredCandidates(header=header, q_values=q, encode_ms=math.nan))
    selected.publish(SelectedAction(header=header, step=2**64 - 1, index=-(2**31), k=2**32 - 1,
                                    reason="argmax", q_value=math.inf, q_margin=math.nan,
                                    beta=-math.inf, detail="\x1b[2J" * 100))
    selected.publish(SelectedAction(header=Header(stamp=stamp_from_ns(0)), reason=""))
    for number in (0, 1, 2):
        episode(fake, number, "succeeded", step=1)
    episode(fake, 7, "started")
    assert _wait(lambda: monitor.summary()["anomalies"].get("foreign_episode_events") == 4)
    assert monitor.episodes_done() == 0 and monitor.episode == 0

    # The real arm driver is still heard: one decision executed, then its outcome.
    episode(real, 0, "succeeded", step=1)
    assert _wait(lambda: monitor.episodes_done() == 1)
    episode(real, 0, "succeeded", step=1)  # a repeat: refused by the ordering check
    episode(real, 1, "started")
    episode(real, 1, "failed", step=40)  # 40 steps, none heard: counted, flagged
    assert _wait(lambda: monitor.episodes_done() == 2)
    assert _wait(lambda: monitor.summary()["anomalies"].get("unexpected_episode_events") == 1)
    summary = monitor.summary()
    assert [(e["episode"], e["outcome"]) for e in summary["episodes"]] == [
        (0, "succeeded"), (1, "failed")]
    assert summary["anomalies"] == {"foreign_episode_events": 4, "unexpected_episode_events": 1,
                                    "episode_step_mismatches": 1}
    assert summary["decisions"] == {"argmax": 1, "": 1}  # decisions are not authenticated
    assert spinner.is_alive()
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 3  # the first of each kind; more only at 10, 100, ...
    assert "from node 'mallory', not 'arm_driver'" in warnings[0]
    assert not any("\x1b" in line for line in lines)
    assert "episode 1 FAILED after 40 steps (success=False)" in lines


def test_callbacks_are_total_on_hostile_messages():
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from vgps.graph.monitor import GraphMonitor
    from vgps_interfaces.msg import (
        ActionCandidates,
        EpisodeStatus,
        ScoredCandidates,
        SelectedAction,
    )
    from vgps_ros import qos
    from vgps_ros.conversions import stamp_from_ns

    node, lines = _FakeNode(), []
    monitor = GraphMonitor(node, video=True, echo=lines.append)
    call = node.callbacks
    stamps = [0, 1, 2**31 * 10**9 - 1, 999_999_999]
    floats = [math.nan, math.inf, -math.inf, 0.0, 3.4e38, -3.4e38]
    call[qos.EPISODE](EpisodeStatus(episode=0, task="", event="started"))
    for i, stamp in enumerate(stamps * 6):
        header = Header(stamp=stamp_from_ns(stamp))
        value = floats[i % len(floats)]
        call[qos.CANDIDATES](ActionCandidates(header=header, k=2**32 - 1, step=2**64 - 1))
        call[qos.SCORED](ScoredCandidates(header=header, q_values=[value] * (i % 3),
                                          encode_ms=value, score_ms=value, critic_id="\n" * i))
        for reason in ("argmax", "hold", "", "x" * 1000):
            call[qos.SELECTED](SelectedAction(header=header, step=(2**64 - 1) if i % 2 else 0,
                                              index=-(2**31), reason=reason, q_value=value,
                                              q_margin=value, beta=value, k=i,
                                              detail="\x00\x1b" * 50))
        call[qos.EPISODE](EpisodeStatus(episode=2**32 - 1 if i % 2 else 0, step=2**64 - 1,
                                        event=("", "succeeded", "step", "??", "started")[i % 5]))
        call[qos.CAMERA](Image(height=2**32 - 1, width=i, encoding="rgb8" if i % 2 else "",
                               step=3, data=b"\x00" * i))
    summary = monitor.summary()
    assert summary["anomalies"].get("callback_errors", 0) == 0  # validation, not the guard
    assert summary["anomalies"]["unexpected_episode_events"] > 0
    assert monitor.episodes_done() <= 2  # ep 0 and 2**32 - 1 at most, once each
    assert not any("\x1b" in line or "\x00" in line for line in lines)


def test_a_raising_callback_is_counted_not_raised():
    from vgps.graph.monitor import GraphMonitor
    from vgps_ros import qos

    node, lines = _FakeNode(), []
    monitor = GraphMonitor(node, echo=lines.append)
    for _ in range(12):
        node.callbacks[qos.SCORED](object())  # no header: AttributeError inside
    assert monitor.summary()["anomalies"] == {"callback_errors": 12}
    assert [line.split(":")[0] for line in lines] == ["warning"] * 2  # the 1st and the 10th
    assert "scored callback failed: AttributeError" in lines[0]


@pytest.mark.parametrize("info", [None, {}, {"publisher_gid": None}, {"publisher_gid": {}},
                                  {"publisher_gid": {"data": b"\x01" * 16}},
                                  {"publisher_gid": {"data": "not bytes"}}, "garbage"])
def test_episode_identity_with_odd_message_info(info):
    from vgps.graph.monitor import GraphMonitor
    from vgps_interfaces.msg import EpisodeStatus

    class _GraphNode(_FakeNode):
        def get_publishers_info_by_topic(self, topic):
            return []  # nobody known: an identified GID is foreign

    node = _GraphNode()
    monitor = GraphMonitor(node, echo=None)
    callback = monitor._on_episode_with_info
    callback(EpisodeStatus(episode=0, event="started"), info)
    callback(EpisodeStatus(episode=0, step=0, event="succeeded"), info)
    anomalies = monitor.summary()["anomalies"]
    assert "callback_errors" not in anomalies
    if isinstance(info, dict) and isinstance(info.get("publisher_gid"), dict) \
            and isinstance(info["publisher_gid"].get("data"), bytes):
        assert monitor.episodes_done() == 0 and anomalies == {"foreign_episode_events": 2}
    else:  # no identity to check (an rmw without GIDs): accepted, and counted
        assert monitor.episodes_done() == 1
        assert anomalies == {"unidentified_episode_events": 2}
