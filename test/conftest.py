"""Cross-package tests: ROS 2 traffic stays on this machine, in a domain of its own."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

# Set before any rclpy context exists (every test process gets its own domain).
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))


@pytest.fixture(scope="session")
def critic_dir(tmp_path_factory) -> Path:
    """A random simulation-size critic checkpoint (``vgps critic init --config sim``)."""
    from vgps.cli.main import main

    out = tmp_path_factory.mktemp("critic") / "random_sim"
    if main(["critic", "init", "--config", "sim", "--out", str(out)]) != 0:
        raise RuntimeError("vgps critic init failed")
    return out
