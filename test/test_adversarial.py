"""The adversarial run as a test: a hostile node in the graph's ROS domain (issue 17).

``vgps up`` runs one sim episode while a node named ``mallory`` (same domain, no security) learns
the real image stamps from ``camera/image_raw`` and publishes, timed to them, forged
``vgps/selected`` decisions (several actions each), ``vgps/scored``, ``vgps/candidates`` with a
wild step (2**40) and forged ``succeeded`` episode events. Without DDS security the graph cannot
stop her from publishing; the trusted-publisher checks (``vgps_ros.trust``) must make sure that:

* no forged message is obeyed: each node counts them as ``rejected.foreign_publisher`` on
  ``/diagnostics``; the arm driver reports the unexpected publisher as an ERROR and holds until
  an operator acknowledges it (``vgps/acknowledge_publishers``);
* the real steps go on after the acknowledgement (the wild step does not stall the selector),
  every executed step comes from a real decision;
* ``vgps up --episodes 1`` exits 0 after the real episode with its true count and outcome.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
sys.path.insert(0, str(Path(__file__).parent))  # test_graph's helpers (importlib import mode)

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from test_graph import EXECUTING, Probe, start_up, stop  # noqa: E402

from vgps_interfaces.msg import (  # noqa: E402
    ActionCandidates,
    EpisodeStatus,
    ScoredCandidates,
    SelectedAction,
)
from vgps_ros import qos  # noqa: E402
from vgps_ros.conversions import candidates_to_msg, scored_to_msg, stamp_to_ns  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
WILD_STEP = 2**40
FORGED = "mallory"  # the forged messages' text fields, to tell them apart in the probe's log


class Mallory:
    """The hostile node: the camera's stamps in, forged commands out."""

    def __init__(self, probe: Probe):
        self.node = rclpy.create_node(FORGED, context=probe.context)
        self.stamps: list[int] = []
        self.node.create_subscription(Image, qos.CAMERA, self._on_image, qos.SENSOR)
        pub = self.node.create_publisher
        self.selected = pub(SelectedAction, qos.SELECTED, qos.COMMAND)
        self.scored = pub(ScoredCandidates, qos.SCORED, qos.COMMAND)
        self.candidates = pub(ActionCandidates, qos.CANDIDATES, qos.COMMAND)
        self.episode = pub(EpisodeStatus, qos.EPISODE, qos.COMMAND)
        self.sent = dict.fromkeys(("selected", "scored", "candidates", "episode"), 0)
        probe.executor.add_node(self.node)

    def _on_image(self, msg: Image) -> None:
        self.stamps.append(stamp_to_ns(msg.header.stamp))

    def matched(self) -> bool:
        """Her publishers reach the graph: arm driver (+ probe, monitor) on selected, ..."""
        return (self.selected.get_subscription_count() >= 2
                and self.scored.get_subscription_count() >= 2
                and self.candidates.get_subscription_count() >= 3
                and self.episode.get_subscription_count() >= 3)

    def attack(self, stamp_ns: int) -> None:
        """One round of forgeries for the image with ``stamp_ns``."""
        chunks = np.full((4, 1, 7), 0.04, np.float32)
        chunks[..., 6] = 1.0
        cands = candidates_to_msg(chunks, stamp_ns, 1, "put carrot on plate", FORGED)
        self.scored.publish(scored_to_msg(cands, np.arange(4.0), FORGED, 0.0, 0.0, True))
        self.candidates.publish(candidates_to_msg(chunks, stamp_ns, WILD_STEP,
                                                  "put carrot on plate", FORGED))
        actions = np.full((10, 7), 0.04, np.float32)  # ten in-limit actions in one decision
        actions[:, 6] = 1.0
        msg = SelectedAction(index=0, reason="argmax", detail=FORGED, k=4, step=1,
                             num_actions=10, action_dim=7)
        msg.header.stamp = cands.header.stamp
        msg.actions = actions.reshape(-1).tolist()
        self.selected.publish(msg)
        event = EpisodeStatus(episode=0, task="carrot_on_plate", instruction=FORGED, step=1,
                              event=EpisodeStatus.EVENT_SUCCEEDED, success=True)
        self.episode.publish(event)
        for key in self.sent:
            self.sent[key] += 1


def _diagnostics(probe: Probe, node: str, t0: float = 0.0) -> list:
    return [s for m in probe.since("diagnostics", t0) for s in m.status
            if s.name == f"vgps: {node}"]


def _values(probe: Probe, node: str) -> dict[str, str]:
    statuses = _diagnostics(probe, node)
    return {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}


def test_forged_commands_are_never_obeyed_and_the_true_episode_is_reported(critic_dir,
                                                                             tmp_path):
    probe = Probe()
    out = tmp_path / "up"
    proc = start_up(critic_dir, out, "--episodes", "1", "--timeout", "200")
    try:
        probe.wait(lambda: len(probe.steps(0)) >= 2 or proc.poll() is not None, 150,
                   "two executed steps")
        assert proc.poll() is None, "vgps up ended before the attack"
        mallory = Mallory(probe)
        probe.wait(mallory.matched, 20, "mallory's publishers matching the graph")
        # The arm driver sees an unexpected publisher on vgps/selected: ERROR, and it holds.
        probe.wait(lambda: any(s.level == DiagnosticStatus.ERROR and FORGED in s.message
                               for s in _diagnostics(probe, "arm_driver")), 10,
                   "the arm driver's ERROR naming mallory")
        for _ in range(3):  # forged decisions while the arm holds
            mallory.attack(mallory.stamps[-1])
            time.sleep(0.2)
        reply = probe.call(Trigger, "vgps/acknowledge_publishers", Trigger.Request())
        assert reply.success and FORGED in reply.message, reply.message
        acknowledged = time.monotonic()
        attacked: set[int] = set()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and proc.poll() is None:
            stamp = mallory.stamps[-1]
            if stamp not in attacked:  # each real image gets its forgeries, in time
                attacked.add(stamp)
                mallory.attack(stamp)
            time.sleep(0.01)
        proc.wait(timeout=150)
    finally:
        log = stop(proc, out)
        probe.close()
    assert proc.returncode == 0, log[-3000:]

    # The true episode: one, its outcome and steps from the arm driver's own events.
    summary = json.loads((out / "summary.json").read_text())
    [episode] = summary["episodes"]
    real_events = [m for m in probe.steps(0) if m.instruction != FORGED]
    ended = [m for m in real_events if m.event != "step"]
    assert len(ended) == 1 and episode["steps"] == ended[0].step
    assert episode["success"] == ended[0].success
    print(f"episode {episode}; anomalies {summary.get('anomalies')}; sent {mallory.sent}")

    # The real steps went on after the acknowledgement, each from a real decision.
    after = [m for m in probe.steps(acknowledged) if m.instruction != FORGED]
    assert after, "no real step executed while mallory was publishing"
    real = {stamp_to_ns(m.header.stamp) for m in probe.since("selected", 0)
            if m.reason in EXECUTING and m.detail != FORGED}
    steps = [m for m in real_events if m.event in ("step", "succeeded", "timeout", "failed")
             and m.step > 0]
    assert len(steps) <= len(real) and [m.step for m in steps] == list(
        range(1, len(steps) + 1))

    # Every node counted the forgeries addressed to it.
    for node, key in (("arm_driver", f"foreign.{qos.SELECTED}"),
                      ("selector_node", f"foreign.{qos.SCORED}"),
                      ("selector_node", f"foreign.{qos.CANDIDATES}"),
                      ("critic_node", f"foreign.{qos.CANDIDATES}"),
                      ("policy_node", f"foreign.{qos.EPISODE}")):
        values = _values(probe, node)
        assert int(values.get("rejected.foreign_publisher", 0)) > 0, (node, values)
        assert int(values.get(key, 0)) > 0, (node, key, values)
    arm = _values(probe, "arm_driver")
    assert int(arm[f"foreign.{qos.SELECTED}"]) >= mallory.sent["selected"] - 1, arm
