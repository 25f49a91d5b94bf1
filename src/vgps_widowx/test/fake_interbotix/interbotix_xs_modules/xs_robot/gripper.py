"""Fake ``interbotix_xs_modules.xs_robot.gripper``: release/grasp block for ``delay``."""

from __future__ import annotations

import fake_xs_sdk


class InterbotixGripperXSInterface:
    def __init__(self, core, gripper_name: str, gripper_pressure: float = 0.5,
                 gripper_pressure_lower_limit: int = 150, gripper_pressure_upper_limit: int = 350):
        self.core, self.gripper_name, self.gripper_pressure = core, gripper_name, gripper_pressure
        self.calls: list[tuple[str, float]] = []

    def release(self, delay: float = 1.0) -> None:
        self.calls.append(("release", delay))
        self.core.driver.set_fingers(fake_xs_sdk.FINGER_OPEN)

    def grasp(self, delay: float = 1.0) -> None:
        self.calls.append(("grasp", delay))
        self.core.driver.set_fingers(fake_xs_sdk.FINGER_CLOSED)
