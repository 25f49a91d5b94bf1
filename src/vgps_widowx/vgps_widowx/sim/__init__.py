"""MuJoCo simulation of a WidowX 250 on a Bridge-like toy-kitchen table.

Render headless by setting ``MUJOCO_GL=egl`` before ``mujoco`` is first imported.

Usage::

    from vgps_widowx.sim import TASKS, ScriptedPolicy, WidowXSimEnv

    env = WidowXSimEnv()
    obs, info = env.reset(seed=0, options={"task": "carrot_on_plate"})
"""

from vgps_widowx.sim.control import ACTION_HIGH, ACTION_LOW, ControlConfig
from vgps_widowx.sim.env import SimEnvConfig, WidowXSimEnv
from vgps_widowx.sim.scripted import ScriptConfig, ScriptedPolicy
from vgps_widowx.sim.tasks import TASKS, TaskSpec, get_task

__all__ = [
    "ACTION_HIGH",
    "ACTION_LOW",
    "TASKS",
    "ControlConfig",
    "ScriptConfig",
    "ScriptedPolicy",
    "SimEnvConfig",
    "TaskSpec",
    "WidowXSimEnv",
    "get_task",
]
