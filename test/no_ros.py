"""Pytest plugin for the pure test tier: ROS 2 cannot be imported while it is loaded.

``make test`` runs the tests twice over: the pure tier, ``-m "not ros"`` with this plugin, then
the ``ros`` tier (``-m ros``: rclpy and a DDS domain). The plugin puts a finder first on
``sys.meta_path`` that refuses rclpy, rcl*, rosidl*, rmw*, ament_*, launch, launch_ros,
rosbag2*, rpyutils and every ``*_msgs``, ``*_srvs`` and ``*_interfaces`` package (vgps_interfaces
included), so a pure test that still needs ROS fails instead of passing by accident.

A test (or test module) that is not marked ``ros`` and fails or skips after such an import is
reported as a failure naming the module it tried, also where ``pytest.importorskip`` would have
made it a skip (a test that catches the ImportError and passes stays passed). A module marked
``ros`` (``pytestmark = pytest.mark.ros``) that cannot even be imported without ROS is skipped:
it runs in the ``ros`` tier.

Usage::

    PYTHONPATH=test python -m pytest -p no_ros -m "not ros" src test
"""

from __future__ import annotations

import ast
import importlib.abc
import sys
from pathlib import Path

import pytest

_PREFIXES = ("rclpy", "rcl_", "rcutils", "rosidl", "rmw", "ament_", "rosbag2", "launch_ros",
             "rpyutils")
_SUFFIXES = ("_msgs", "_srvs", "_interfaces")
_NAMES = frozenset({"launch"})
_NEEDS_ROS = "needs ROS but is not marked `ros`"


def is_ros(name: str) -> bool:
    """Whether ``name`` (a dotted module name) belongs to ROS 2 or to generated messages."""
    top = name.partition(".")[0]
    return top in _NAMES or top.startswith(_PREFIXES) or top.endswith(_SUFFIXES)


class RosBlocker(importlib.abc.MetaPathFinder):
    """Refuses every ROS import and remembers what was refused (``attempts``)."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def find_spec(self, fullname, path=None, target=None):
        if is_ros(fullname):
            self.attempts.append(fullname)
            raise ModuleNotFoundError(f"{fullname} is blocked: pure test tier (test/no_ros.py)",
                                      name=fullname)
        return None

    def take(self) -> list[str]:
        """The refused imports since the last call, each once, in order."""
        attempts, self.attempts = list(dict.fromkeys(self.attempts)), []
        return attempts


def module_marked_ros(path: Path) -> bool:
    """Whether the module's source assigns a ``pytestmark`` that includes ``pytest.mark.ros``.

    Read from the source because a module that fails to import has no markers to ask.
    """
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return False
    for node in tree.body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets):
            return any(isinstance(sub, ast.Attribute) and sub.attr == "ros"
                       and isinstance(sub.value, ast.Attribute) and sub.value.attr == "mark"
                       for sub in ast.walk(node.value))
    return False


_BLOCKER = RosBlocker()


def pytest_configure(config: pytest.Config) -> None:
    loaded = sorted(name for name in sys.modules if is_ros(name))
    if loaded:
        raise pytest.UsageError(f"no_ros: ROS is already imported ({', '.join(loaded[:5])}); "
                                "load the plugin with -p no_ros")
    sys.meta_path.insert(0, _BLOCKER)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _BLOCKER in sys.meta_path:
        sys.meta_path.remove(_BLOCKER)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    _BLOCKER.take()
    report = yield
    attempts = _BLOCKER.take()
    if not attempts or report.passed or not isinstance(collector, pytest.Module):
        return report
    if module_marked_ros(collector.path):
        report.outcome = "skipped"
        report.longrepr = (str(collector.path), 0, "Skipped: marked ros: runs in the ros tier")
    else:
        report.outcome = "failed"
        report.longrepr = (f"{collector.nodeid} {_NEEDS_ROS}: it imports "
                           f"{', '.join(attempts)}")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    attempts = _BLOCKER.take()  # those of this phase (setup, call or teardown)
    if attempts and not report.passed and item.get_closest_marker("ros") is None:
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} {_NEEDS_ROS}: it imports {', '.join(attempts)}"
    return report


def pytest_runtest_logstart(nodeid: str, location: tuple) -> None:
    _BLOCKER.take()
