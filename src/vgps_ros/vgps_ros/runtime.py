"""What every node's ``main()`` and parameter/diagnostic code shares (ROS glue, no logic).

* :func:`spin` - init, a ``SingleThreadedExecutor``, and the shutdown that works on Jazzy and
  Kilted: try/finally with ``destroy_node()`` and ``rclpy.try_shutdown()``, catching
  ``KeyboardInterrupt`` and ``ExternalShutdownException``.

  Every node spins single-threaded on purpose. rclpy's ``MultiThreadedExecutor`` stalls timers
  and subscriptions for hundreds of milliseconds at a time (ros2/rclpy#1223): measured here, the
  selector's 50 ms watchdog timer went 1.2 s without running while no callback was busy, and the
  KEEP_LAST 5 queue of ``vgps/scored`` overflowed, so whole bursts of 5 Hz control steps got
  their decision too late or never. Work that must overlap the callbacks (the critic's image
  encoding, the arm backend) runs on the node's own worker thread instead, and callbacks never
  wait for another callback.
* :func:`describe` - a ``ParameterDescriptor`` with its description and range.
* :func:`diagnostic` - one ``DiagnosticArray`` holding one ``DiagnosticStatus``.

Usage::

    def main(args=None):
        spin(CriticNode, args)
"""

from __future__ import annotations

import faulthandler
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def spin(node_factory: Callable[[], Node], args: list[str] | None = None) -> None:
    """Builds the node and spins it on a single-threaded executor until shutdown."""
    # SIGINT must stop the node even when its parent ignored SIGINT (a background job of a
    # non-interactive shell passes that on); rclpy chains its handler to this one.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # SIGUSR1 writes every thread's Python stack to stderr (the node's log): ``vgps up`` sends
    # it to a node whose transition does not finish, to show where it is stuck.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    rclpy.init(args=args)
    node = None
    try:
        node = node_factory()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    sys.stdout.flush()


def describe(description: str, *, int_range: tuple[int, int] | None = None,
             float_range: tuple[float, float] | None = None,
             choices: tuple[str, ...] | None = None, read_only: bool = False
             ) -> ParameterDescriptor:
    """A ParameterDescriptor with a description, a range or the allowed values."""
    desc = ParameterDescriptor(description=description, read_only=read_only)
    if int_range is not None:
        desc.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1],
                                           step=1)]
    if float_range is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=float(float_range[0]),
                                                        to_value=float(float_range[1]),
                                                        step=0.0)]
    if choices:
        desc.additional_constraints = f"one of: {', '.join(choices)}"
    return desc


def result(reason: str = "") -> SetParametersResult:
    """SetParametersResult: successful when ``reason`` is empty."""
    return SetParametersResult(successful=not reason, reason=reason)


def diagnostic(node: Node, level: int, message: str, values: Mapping[str, Any]
               ) -> DiagnosticArray:
    """A DiagnosticArray with one status named after the node."""
    status = DiagnosticStatus(level=level, name=f"vgps: {node.get_name()}", message=message,
                              hardware_id=node.get_fully_qualified_name())
    status.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
    array = DiagnosticArray()
    array.header.stamp = node.get_clock().now().to_msg()
    array.status = [status]
    return array


def now_s(node: Node) -> float:
    """The node's clock in seconds (same clock as the message stamps)."""
    return node.get_clock().now().nanoseconds * 1e-9
