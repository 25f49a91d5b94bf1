"""Arm backends behind one interface: the MuJoCo simulator and the real WidowX 250 (Interbotix).

:func:`make_arm` builds one by name; the Interbotix backend imports its driver only when built.
"""

from vgps_widowx.arms.base import (
    ApplyResult,
    ArmBackend,
    ArmCommandError,
    ArmUnavailableError,
    SimArm,
    make_arm,
)

__all__ = ["ApplyResult", "ArmBackend", "ArmCommandError", "ArmUnavailableError", "SimArm",
           "make_arm"]
