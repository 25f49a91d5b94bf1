"""The launcher's lifecycle client over real DDS: lost requests and lost responses recover,
failures and stuck nodes are reported, and a stuck node shows where it is stuck."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.task import Future  # noqa: E402

from vgps.graph.description import describe  # noqa: E402
from vgps.graph.lifecycle import Lifecycle, TransitionError  # noqa: E402
from vgps.graph.processes import NodeProcesses, isolate  # noqa: E402
from vgps_ros.lifecycle import ManagedNode, Param  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]


class Echo(ManagedNode):
    PARAMETERS = (Param("fail", False, "configure raises", live=False),
                  Param("sleep_s", 0.0, "configure takes this long", live=False))
    CONFIGURED_BY = "fail"

    def configure(self) -> None:
        time.sleep(self.param("sleep_s"))
        if self.param("fail"):
            raise RuntimeError("asked to fail")


@pytest.fixture
def graph_of():
    """Starts managed nodes and a launcher node in one context, each spun by a thread."""
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    launcher = rclpy.create_node("launcher", context=context)
    executor.add_node(launcher)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    nodes = []

    def start(**managed) -> object:
        for name, overrides in managed.items():
            node = Echo(name, context=context, parameter_overrides=[
                rclpy.parameter.Parameter(k, value=v) for k, v in overrides.items()])
            nodes.append(node)
            executor.add_node(node)
        spinner.start()
        return launcher

    yield start
    executor.shutdown(timeout_sec=1.0)
    spinner.join(timeout=5.0)
    for node in nodes:
        node.destroy_node()
    launcher.destroy_node()
    rclpy.try_shutdown(context=context)


def _none_exited() -> dict[str, int]:
    return {}


class LosesFirstRequest(Lifecycle):
    """Sends the first request to a service nobody serves: it is lost on the way."""

    lost = False

    def _send(self, name: str, transition: str):
        if self.lost:
            return super()._send(name, transition)
        self.lost = True
        return super()._send(f"nobody_{name}", transition)


class LosesFirstResponse(Lifecycle):
    """Sends every request but never sees the first response."""

    dropped = False

    def _send(self, name: str, transition: str):
        future = super()._send(name, transition)
        if self.dropped:
            return future
        self.dropped = True
        return Future()


def test_configure_and_activate_report_the_state(graph_of):
    launcher = graph_of(a={}, b={})
    lifecycle = Lifecycle(launcher)
    lifecycle.transition(["a", "b"], "configure", 30.0, _none_exited)
    assert lifecycle.state("a") == "inactive"
    lifecycle.transition(["a", "b"], "activate", 30.0, _none_exited)
    assert lifecycle.state("a") == lifecycle.state("b") == "active"
    assert lifecycle.resent == {}


def test_a_lost_request_is_sent_again(graph_of):
    launcher = graph_of(a={})
    lifecycle = LosesFirstRequest(launcher, probe_s=0.5)
    lifecycle.transition(["a"], "configure", 30.0, _none_exited)
    assert lifecycle.state("a") == "inactive"
    assert lifecycle.resent == {"a": 1}


def test_a_lost_response_is_read_from_the_state(graph_of):
    launcher = graph_of(a={})
    lifecycle = LosesFirstResponse(launcher, probe_s=0.5)
    lifecycle.transition(["a"], "configure", 30.0, _none_exited)
    assert lifecycle.state("a") == "inactive"
    assert lifecycle.resent == {}  # it was done: nothing sent twice


def test_a_slow_configure_is_waited_for_not_repeated(graph_of):
    launcher = graph_of(a={"sleep_s": 2.0})
    lifecycle = Lifecycle(launcher, probe_s=0.3)
    lifecycle.transition(["a"], "configure", 30.0, _none_exited)
    assert lifecycle.resent == {}
    assert lifecycle.state("a") == "inactive"


def test_a_failed_configure_names_the_node(graph_of):
    launcher = graph_of(a={}, bad={"fail": True})
    with pytest.raises(TransitionError, match="bad: configure failed") as info:
        Lifecycle(launcher).transition(["a", "bad"], "configure", 30.0, _none_exited)
    assert info.value.node == "bad"


def test_a_node_that_never_finishes_is_reported_with_its_state(graph_of):
    launcher = graph_of(slow={"sleep_s": 5.0})
    lifecycle = Lifecycle(launcher, probe_s=0.5)
    with pytest.raises(TransitionError, match=r"configure did not finish in 2 s \(state: "
                                              r"not answering\)"):
        lifecycle.transition(["slow"], "configure", 2.0, _none_exited)


def test_a_stuck_node_writes_every_threads_stack_to_its_log(tmp_path: Path):
    code = ("import time, threading\n"
            "from rclpy.node import Node\n"
            "from vgps_ros.runtime import spin\n"
            "def stuck_here():\n"
            "    time.sleep(60)\n"
            "threading.Thread(target=stuck_here, daemon=True).start()\n"
            "print('up', flush=True)\n"
            "spin(lambda: Node('stuck'))\n")
    procs = NodeProcesses(describe({}), tmp_path, isolate(os.environ))
    log = tmp_path / "stuck.log"
    with log.open("wb") as handle:
        procs.procs["stuck"] = subprocess.Popen([sys.executable, "-c", code], stdout=handle,
                                                stderr=subprocess.STDOUT, env=procs.env,
                                                start_new_session=True)
    procs.logs["stuck"] = log
    try:
        deadline = time.monotonic() + 30
        while "up" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(1.0)  # into spin (faulthandler registered)
        assert procs.dump_stacks("stuck")
        text = procs.log_tail("stuck", 80)
        assert "stuck_here" in text and "spin" in text, text
        assert procs.procs["stuck"].poll() is None  # the dump does not stop the node
    finally:
        procs.shutdown()
    assert procs.dump_stacks("stuck") is False  # exited: nothing to ask
