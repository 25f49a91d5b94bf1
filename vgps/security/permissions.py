"""Who may publish and subscribe what: the DDS permissions of every node of the graph.

Pure Python. :data:`NODE_TOPICS` is the table, keyed by node name: the ROS topics each node
publishes and subscribes and the services it serves and calls, as the node modules create them
(names from ``vgps_ros.qos``, all in the root namespace; the README's node table says the same,
``test/test_security.py`` checks it against the node sources, the recorder's default topics and
``vgps.graph.description.NODES``). :func:`grants` turns it into DDS names for a resolved graph:
``rt/<topic>`` for topics, ``rq/<service>Request`` / ``rr/<service>Reply`` for services, plus the
base grants every ROS node needs (:func:`base_grants`: discovery info, rosout, parameter
events, its own parameter and lifecycle services). Nothing else is granted (default DENY).

Read-only nodes: ``recorder`` and ``vgps_up`` (the monitor of ``vgps up``, which also drives the
lifecycle transitions: it calls ``/<node>/change_state``) publish no topic of the graph.

Usage::

    for node, grant in grants(describe({"robot": "sim"})).items():
        grant.publish, grant.subscribe   # frozensets of DDS names
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from vgps.security import MONITOR

CAMERA = "/camera/image_raw"
DIAGNOSTICS = "/diagnostics"
# The recorder's default topics (vgps.bags.recorder_node.DEFAULT_TOPICS, absolute).
RECORDER_TOPICS = ("/camera/image_raw", "/vgps/instruction", "/vgps/candidates", "/vgps/scored",
                   "/vgps/selected", "/vgps/episode", "/joint_states", "/vgps/q_values",
                   "/vgps/q_selected", "/vgps/q_margin", "/diagnostics", "/vgps/overlay",
                   "/vgps/intervention")


@dataclasses.dataclass(frozen=True)
class NodeTopics:
    """A node's ROS names (absolute): topics it publishes/subscribes, services it serves/calls."""

    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    serve: tuple[str, ...] = ()
    call: tuple[str, ...] = ()
    lifecycle: bool = False  # a managed node: also publishes /<node>/transition_event


NODE_TOPICS: dict[str, NodeTopics] = {
    "critic_node": NodeTopics(
        publish=("/vgps/scored", "/vgps/q_values", "/vgps/q_max", "/vgps/q_mean", DIAGNOSTICS),
        subscribe=(CAMERA, "/vgps/candidates", "/vgps/instruction"), lifecycle=True),
    "policy_node": NodeTopics(
        publish=("/vgps/candidates", DIAGNOSTICS),
        subscribe=(CAMERA, "/vgps/instruction", "/vgps/episode", "/vgps/sim_state"),
        lifecycle=True),
    "selector_node": NodeTopics(
        publish=("/vgps/selected", "/vgps/q_selected", "/vgps/q_margin", DIAGNOSTICS),
        subscribe=("/vgps/scored", "/vgps/candidates", "/vgps/episode", "/vgps/intervention"),
        serve=("/vgps/estop", "/vgps/reset_estop")),
    "arm_driver": NodeTopics(
        publish=(CAMERA, "/joint_states", "/vgps/episode", "/vgps/instruction",
                 "/vgps/sim_state", DIAGNOSTICS),
        subscribe=("/vgps/selected",),  # robot:=real adds its camera source (see grants)
        serve=("/vgps/start_episode", "/vgps/reset"), lifecycle=True),
    "overlay_node": NodeTopics(
        publish=("/vgps/overlay",),
        subscribe=(CAMERA, "/joint_states", "/vgps/scored", "/vgps/selected")),
    # Take-overs (intervention:=sim adds the corrector; the keyboard teleop is run by hand).
    "sim_corrector": NodeTopics(publish=("/vgps/intervention", DIAGNOSTICS),
                                subscribe=("/vgps/sim_state", "/vgps/episode")),
    "teleop_keyboard": NodeTopics(publish=("/vgps/intervention",)),
    "recorder": NodeTopics(subscribe=RECORDER_TOPICS),
    MONITOR: NodeTopics(
        subscribe=("/vgps/candidates", "/vgps/scored", "/vgps/selected", "/vgps/episode",
                   CAMERA),
        call=tuple(f"/{n}/change_state" for n in ("critic_node", "policy_node", "arm_driver"))),
}


@dataclasses.dataclass(frozen=True)
class Grants:
    """DDS topic names (with their ``rt/``/``rq/``/``rr/`` prefixes) one enclave may use."""

    publish: frozenset[str]
    subscribe: frozenset[str]


def base_grants(node: str, lifecycle: bool = False) -> Grants:
    """What every ROS node needs: discovery info, rosout, parameter events, its own services."""
    publish = {"ros_discovery_info", "rt/rosout", "rt/parameter_events", f"rr/{node}/*"}
    if lifecycle:
        publish.add(f"rt/{node}/transition_event")
    return Grants(frozenset(publish), frozenset({"ros_discovery_info", f"rq/{node}/*"}))


def dds_grants(node: str, topics: NodeTopics) -> Grants:
    """``topics`` as DDS names, plus :func:`base_grants`."""
    base = base_grants(node, topics.lifecycle)
    publish = {*_rt(topics.publish), *(f"rr{s}Reply" for s in topics.serve),
               *(f"rq{s}Request" for s in topics.call)}
    subscribe = {*_rt(topics.subscribe), *(f"rq{s}Request" for s in topics.serve),
                 *(f"rr{s}Reply" for s in topics.call)}
    return Grants(base.publish | publish, base.subscribe | subscribe)


def node_topics(graph: Any = None) -> dict[str, NodeTopics]:
    """:data:`NODE_TOPICS` for a resolved graph (``vgps.graph.description.Graph``; None: sim).

    ``robot:=real``: the arm driver also subscribes its camera source (the ``camera:=``
    remapping) and uses Interbotix's driver topics and services under ``/<robot_name>``;
    ``record:=``: the recorder subscribes its ``topics`` parameter where set.
    """
    table = dict(NODE_TOPICS)
    if graph is None:
        return table
    names = {n.name: n for n in graph.nodes}
    arm = names.get("arm_driver")
    if arm is not None and arm.parameters.get("backend") == "interbotix":
        source = dict(arm.remappings).get("camera/source", "camera/source")
        namespace = "/" + str(arm.parameters.get("robot_name")
                              or arm.parameters.get("robot_model", "wx250s")).strip("/")
        base = table["arm_driver"]
        table["arm_driver"] = dataclasses.replace(
            base, subscribe=(*base.subscribe, _absolute(source), f"{namespace}/*"),
            publish=(*base.publish, f"{namespace}/*"),
            call=(*base.call, f"{namespace}/*"))
    recorder = names.get("recorder")
    if recorder is not None and recorder.parameters.get("topics"):
        table["recorder"] = NodeTopics(
            subscribe=tuple(_absolute(t) for t in recorder.parameters["topics"]))
    return table


def grants(graph: Any = None, nodes: Iterable[str] | None = None) -> dict[str, Grants]:
    """The DDS grants of ``nodes`` (default: every node of the table) for ``graph``."""
    table = node_topics(graph)
    return {n: dds_grants(n, table[n]) for n in (nodes if nodes is not None else table)}


def publishers_of(all_grants: Mapping[str, Grants], dds_name: str) -> set[str]:
    """The nodes granted publishing on ``dds_name`` (an exact name, not a pattern)."""
    return {n for n, g in all_grants.items() if dds_name in g.publish}


def _absolute(name: str) -> str:
    return "/" + name.strip().lstrip("/")


def _rt(names: Iterable[str]) -> set[str]:
    return {"rt" + _absolute(n) for n in names}
