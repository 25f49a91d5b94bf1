"""Shared fixtures for the simulator tests; renders headless through EGL."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first mujoco import

import sys
from pathlib import Path

import pytest

# Import the package from the source tree when it is not installed.
_PKG_ROOT = str(Path(__file__).resolve().parents[1])
if _PKG_ROOT not in sys.path:
    sys.path.insert(0, _PKG_ROOT)

from vgps_widowx.sim import SimEnvConfig, WidowXSimEnv  # noqa: E402


@pytest.fixture(scope="module")
def env():
    """One environment per test module (building the model and GL context takes a moment)."""
    sim = WidowXSimEnv(SimEnvConfig())
    yield sim
    sim.close()


@pytest.fixture(scope="module")
def bare_env():
    """An environment without distractors, for rollouts that place objects deliberately."""
    sim = WidowXSimEnv(SimEnvConfig(n_distractors=0))
    yield sim
    sim.close()


_FAKE_INTERBOTIX = str(Path(__file__).resolve().parent / "fake_interbotix")


@pytest.fixture
def interbotix_sdk(monkeypatch):
    """The fake Interbotix API importable (``fake_interbotix/``) and the host's default rclpy
    context up; yields the fake driver module (``fake_xs_sdk``). ROS tests only."""
    import rclpy

    monkeypatch.syspath_prepend(_FAKE_INTERBOTIX)
    if not rclpy.ok():
        rclpy.init()
    import fake_xs_sdk

    yield fake_xs_sdk
    for driver in list(fake_xs_sdk.RUNNING.values()):
        driver.stop()
    fakes = ("interbotix_xs_modules", "interbotix_common_modules", "fake_xs_sdk")
    for name in [n for n in sys.modules if n.split(".")[0] in fakes]:
        del sys.modules[name]  # fresh Interbotix globals for the next test
    rclpy.try_shutdown()
