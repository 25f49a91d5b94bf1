"""Arm backends side by side behind one interface: the MuJoCo simulator and the real WidowX 250.

* :mod:`~vgps_widowx.arms.base`: :class:`ArmBackend` (lifecycle, named poses, the shared safety
  path in ``apply``), :class:`ApplyResult` and the errors; it imports no backend.
* :mod:`~vgps_widowx.arms.sim`: :class:`SimArm` on :class:`~vgps_widowx.sim.WidowXSimEnv`.
* :mod:`~vgps_widowx.arms.interbotix`: ``InterbotixArm`` (imports its driver when built).
* :mod:`~vgps_widowx.arms.registry`: :func:`make_arm` builds one by name; the Interbotix module
  is imported only when that backend is built.

Usage::

    with make_arm("sim") as arm:                      # or make_arm("interbotix")
        arm.reset("neutral")
        result = arm.apply(np.array([0, 0, -0.02, 0, 0, 0, 1.0]))
        result.ok, result.reasons, arm.ee_pose()
"""

from vgps_widowx.arms.base import ApplyResult, ArmBackend, ArmCommandError, ArmUnavailableError
from vgps_widowx.arms.registry import BACKENDS, make_arm
from vgps_widowx.arms.sim import SimArm

__all__ = [
    "BACKENDS",
    "ApplyResult",
    "ArmBackend",
    "ArmCommandError",
    "ArmUnavailableError",
    "SimArm",
    "make_arm",
]
