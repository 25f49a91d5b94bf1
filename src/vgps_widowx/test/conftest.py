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
