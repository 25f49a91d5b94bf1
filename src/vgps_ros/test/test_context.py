"""OwnContext: a context, node and executor of their own beside a host node's default context."""

from __future__ import annotations

import sys
import threading

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
from rclpy.node import Node  # noqa: E402

from vgps_ros.context import OwnContext  # noqa: E402


@pytest.fixture
def default_context():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def test_the_process_ros_arguments_do_not_rename_the_own_node(default_context, monkeypatch):
    monkeypatch.setattr(sys, "argv", [sys.argv[0], "--ros-args", "-r", "__node:=arm_driver"])
    session = OwnContext()
    node = session.open(Node, "vgps_interbotix")
    try:
        assert node.get_name() == "vgps_interbotix"
        assert node.context is not rclpy.get_default_context()
    finally:
        session.close()
    assert rclpy.ok()  # the host's context lives on


def test_an_outside_shutdown_ends_the_spin_thread_quietly(default_context, monkeypatch):
    errors = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    session = OwnContext()
    node = session.open(Node, "own")
    session.spin()
    thread = session._thread
    rclpy.try_shutdown(context=node.context)  # what rclpy's SIGINT handler does to every context
    thread.join(timeout=5.0)
    assert not thread.is_alive() and errors == []
    session.close()
    assert rclpy.ok()


def test_open_needs_the_default_context():
    with pytest.raises(RuntimeError, match=r"rclpy\.init"):
        OwnContext().open(Node, "own")
