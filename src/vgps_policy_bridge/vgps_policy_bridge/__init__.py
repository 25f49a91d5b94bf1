"""vgps_policy_bridge: policies that propose K candidate actions in the Bridge action space.

Contract: ``policy.sample(observation, instruction, k, rng) -> float32 (K, H, 7)`` in the robot
action space (base-frame end-effector deltas + gripper in [0, 1], 1 = open), plus ``reset()``.
"""

__version__ = "0.1.0"
