"""Driving the managed nodes: configure and activate over ``lifecycle_msgs``, in graph order.

:class:`Lifecycle` calls ``/<node>/change_state`` from the launcher's own node; :func:`bring_up`
configures every managed node (loads models, warms up JIT), activates all but the last, waits
until the bag recorder (if any) subscribes to the steering topics, and activates the arm driver
last, because its activation starts the first episode.

Usage::

    lifecycle = Lifecycle(node)
    lifecycle.transition(["critic_node"], "configure", 240.0, procs.exited)
    code = bring_up(graph, procs, lifecycle, startup_timeout_s=240.0, echo=print)   # 0 or 2
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vgps.graph.description import RECORDER, Graph, NodeSpec
from vgps.graph.processes import NodeProcesses

TRANSITIONS = {"configure": 1, "activate": 3}  # lifecycle_msgs/msg/Transition ids
GOAL = {"configure": "inactive", "activate": "active"}  # the state after the transition
START = {"configure": "unconfigured", "activate": "inactive"}  # ... and before it


class TransitionError(RuntimeError):
    """A lifecycle transition failed; ``node`` names the node."""

    def __init__(self, node: str, message: str):
        super().__init__(f"{node}: {message}")
        self.node = node


class Lifecycle:
    """Calls ``/<node>/change_state`` on lifecycle nodes from the launcher's own node.

    A request or its response can be lost while DDS discovery is still matching the service's
    endpoints (the client sees the server before the server sees the client). So a transition
    that has not answered after ``probe_s`` asks ``/<node>/get_state``: a node already in the
    transition's goal state succeeded (the response was lost); a node still in the start state
    never got the request, which is sent again; a node that does not answer is busy in the
    transition (the executor is single-threaded) and is waited for.

    Args:
        node: the launcher's node (spun by another thread).
        probe_s: seconds without an answer before the node's state is asked.
    """

    def __init__(self, node: Any, probe_s: float = 10.0):
        from lifecycle_msgs.srv import ChangeState, GetState

        self.node = node
        self.probe_s = probe_s
        self.resent: dict[str, int] = {}  # node -> requests sent again (lost on the way)
        self._types = {"change_state": ChangeState, "get_state": GetState}
        self._clients: dict[tuple[str, str], Any] = {}

    def _client(self, name: str, service: str) -> Any:
        key = (name, service)
        if key not in self._clients:
            self._clients[key] = self.node.create_client(self._types[service],
                                                         f"/{name}/{service}")
        return self._clients[key]

    def _send(self, name: str, transition: str) -> Any:
        from lifecycle_msgs.msg import Transition

        request = self._types["change_state"].Request()
        request.transition = Transition(id=TRANSITIONS[transition])
        return self._client(name, "change_state").call_async(request)

    def state(self, name: str, timeout_s: float = 2.0) -> str | None:
        """The node's lifecycle state label, or None when it does not answer in time."""
        client = self._client(name, "get_state")
        if not client.service_is_ready():
            return None
        future = client.call_async(self._types["get_state"].Request())
        deadline = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not future.done():
            return None
        return future.result().current_state.label

    def transition(self, names: list[str], transition: str, timeout_s: float,
                   alive: Callable[[], dict[str, int]]) -> None:
        """Requests ``transition`` on every node in ``names`` concurrently and waits.

        Args:
            names: the nodes.
            transition: ``configure`` or ``activate``.
            timeout_s: for the services to appear and every transition to finish.
            alive: the nodes that exited so far (``NodeProcesses.exited``).

        Raises:
            TransitionError: a service never appeared, a node died, a transition failed or
                did not finish (the message names the node's last known state).
        """
        deadline = time.monotonic() + timeout_s
        futures: dict[str, list[Any]] = {}
        for name in names:
            client = self._client(name, "change_state")
            while not client.service_is_ready():
                if name in alive():
                    raise TransitionError(name, f"exited before it could {transition}")
                if time.monotonic() > deadline:
                    raise TransitionError(name, f"/{name}/change_state never appeared")
                time.sleep(0.1)
            futures[name] = [self._send(name, transition)]
        for name, sent in futures.items():
            probe_at, state = time.monotonic() + self.probe_s, None
            while True:
                done = [f for f in sent if f.done()]
                if any(f.result().success for f in done):
                    break
                if done and len(done) == len(sent):
                    raise TransitionError(name, f"{transition} failed (see its log)")
                if name in alive():
                    raise TransitionError(name, f"exited during {transition}")
                now = time.monotonic()
                if now > deadline:
                    raise TransitionError(
                        name, f"{transition} did not finish in {timeout_s:g} s (state: "
                              f"{state or 'not answering'})")
                if now > probe_at:
                    state = self.state(name)
                    if state == GOAL[transition]:  # done; the response was lost
                        break
                    if state == START[transition]:  # the request was lost
                        self.resent[name] = self.resent.get(name, 0) + 1
                        sent.append(self._send(name, transition))
                    probe_at = time.monotonic() + self.probe_s
                time.sleep(0.05)


def wait_subscribed(node: Any, spec: NodeSpec, procs: NodeProcesses, timeout_s: float) -> None:
    """Waits until the recorder subscribes to the steering topics (it must see episode 0).

    Raises:
        TransitionError: it exited or did not subscribe in time.
    """
    from rclpy.node import NodeNameNonExistentError

    from vgps.bags.recorder_node import expected_subscriptions

    wanted = set(expected_subscriptions(spec.parameters.get("topics")))
    deadline = time.monotonic() + timeout_s
    while True:
        if spec.name in procs.exited():
            raise TransitionError(spec.name, "exited at start-up")
        try:
            found = {t for t, _ in node.get_subscriber_names_and_types_by_node(spec.name, "/")}
        except NodeNameNonExistentError:  # not discovered yet
            found = set()
        if wanted <= found:
            return
        if time.monotonic() > deadline:
            raise TransitionError(spec.name, f"not subscribed to {sorted(wanted - found)} "
                                             f"after {timeout_s:g} s")
        time.sleep(0.1)


def bring_up(graph: Graph, procs: NodeProcesses, lifecycle: Lifecycle, startup_timeout_s: float,
             echo: Callable[[str], None]) -> int:
    """Configures and activates the managed nodes (the arm driver last).

    Returns:
        0 when the graph is up; 2 when a transition failed (echoed with the node's log tail).
    """
    managed = [n.name for n in graph.nodes if n.lifecycle]
    first, last = managed[:-1], managed[-1:]  # the arm driver activates last (starts episodes)
    recorders = [n for n in graph.nodes if n.name == RECORDER.name]
    start = time.monotonic()
    try:
        echo(f"configuring {', '.join(managed)} (loads models, warms up JIT) ...")
        lifecycle.transition(managed, "configure", startup_timeout_s, procs.exited)
        lifecycle.transition(first, "activate", 30.0, procs.exited)
        for spec in recorders:  # subscribed before the first episode starts
            wait_subscribed(lifecycle.node, spec, procs, 30.0)
        lifecycle.transition(last, "activate", 30.0, procs.exited)
    except TransitionError as exc:
        echo(f"vgps up: error: {exc}")
        lines = 15
        if "did not finish" in str(exc) and procs.dump_stacks(exc.node):
            lines = 60  # where it is stuck: every thread's Python stack, in its log
        echo(f"--- last lines of {procs.logs[exc.node]} ---\n{procs.log_tail(exc.node, lines)}")
        return 2
    for name, count in lifecycle.resent.items():
        echo(f"{name}: a lost transition request was sent again ({count}x)")
    echo(f"graph up in {time.monotonic() - start:.1f} s")
    return 0
