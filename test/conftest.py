"""Cross-package tests: ROS 2 traffic stays on this machine, in a domain of its own."""

from __future__ import annotations

import os
import random

# Set before any rclpy context exists (every test process gets its own domain).
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
