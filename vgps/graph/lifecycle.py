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


class TransitionError(RuntimeError):
    """A lifecycle transition failed; ``node`` names the node."""

    def __init__(self, node: str, message: str):
        super().__init__(f"{node}: {message}")
        self.node = node


class Lifecycle:
    """Calls ``/<node>/change_state`` on lifecycle nodes from the launcher's own node."""

    def __init__(self, node: Any):
        from lifecycle_msgs.srv import ChangeState

        self.node = node
        self._type = ChangeState
        self._clients: dict[str, Any] = {}

    def transition(self, names: list[str], transition: str, timeout_s: float,
                   alive: Callable[[], dict[str, int]]) -> None:
        """Requests ``transition`` on every node in ``names`` concurrently and waits.

        Args:
            names: the nodes.
            transition: ``configure`` or ``activate``.
            timeout_s: for the services to appear and every transition to finish.
            alive: the nodes that exited so far (``NodeProcesses.exited``).

        Raises:
            TransitionError: a service never appeared, a node died, or a transition failed.
        """
        from lifecycle_msgs.msg import Transition

        deadline = time.monotonic() + timeout_s
        futures = {}
        for name in names:
            client = self._clients.setdefault(
                name, self.node.create_client(self._type, f"/{name}/change_state"))
            while not client.service_is_ready():
                if name in alive():
                    raise TransitionError(name, f"exited before it could {transition}")
                if time.monotonic() > deadline:
                    raise TransitionError(name, f"/{name}/change_state never appeared")
                time.sleep(0.1)
            request = self._type.Request()
            request.transition = Transition(id=TRANSITIONS[transition])
            futures[name] = client.call_async(request)
        for name, future in futures.items():
            while not future.done():
                if name in alive():
                    raise TransitionError(name, f"exited during {transition}")
                if time.monotonic() > deadline:
                    raise TransitionError(name, f"{transition} did not finish in {timeout_s:g} s")
                time.sleep(0.05)
            if not future.result().success:
                raise TransitionError(name, f"{transition} failed (see its log)")


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
        echo(f"--- last lines of {procs.logs[exc.node]} ---\n{procs.log_tail(exc.node)}")
        return 2
    echo(f"graph up in {time.monotonic() - start:.1f} s")
    return 0
