"""ros2 launch vgps steer_widowx.launch.py [robot:=sim|real] [policy:=...] [critic:=...] [k:=..]

The V-GPS steering graph: policy_node -> critic_node -> selector_node -> arm_driver. The nodes,
their parameters (config/steer_widowx.yaml, keyed by node name) and remappings come from the one
graph description in ``vgps.graph.description``, which ``vgps up`` also uses. Lifecycle nodes
configure and activate themselves here (``autostart``); the arm driver starts its first episode
once policy, critic and selector are up. ``record:=DIR`` adds the bag recorder
(``vgps-recorder``, a plain node), which subscribes within a second or two, well before the
critic has warmed up.

- String parameters go to the nodes as strings (``ParameterValue(..., value_type=str)``):
  launch_ros would otherwise read each through YAML, so ``instruction:="put x: here"`` would
  fail and ``yes``/``on``/``1.0`` would arrive as a bool or a number.
- A relative ``critic`` is looked up in this package's share directory first (where the shipped
  ``models/sim_critic``, the parameter file's default, is installed), then in the working
  directory; an absolute path is taken as it is.
- ``security:=KEYSTORE`` (``vgps security init``): every node runs in its enclave
  (``--enclave /vgps/<node>``) with ``ROS_SECURITY_ENABLE=true`` and
  ``ROS_SECURITY_STRATEGY=Enforce``; on an RMW without DDS-Security (the PyPI wheels) the launch
  fails with a clear message instead of running in the clear.
- Every node runs with ``XLA_PYTHON_CLIENT_PREALLOCATE=false``: JAX takes GPU memory as it
  needs it instead of 75 % of it per process, leaving room for the other nodes.

    ros2 launch vgps steer_widowx.launch.py
    ros2 launch vgps steer_widowx.launch.py robot:=real policy:=octo-small-1.5 \
        critic:=/data/critics/vgps-release k:=50 instruction:="put the eggplant in the basket"
    ros2 launch vgps steer_widowx.launch.py record:=bags/run1
"""

from __future__ import annotations

import os
from pathlib import Path

# The environment every node of the graph gets on top of the launching shell's.
NODE_ENV = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def resolve_critic(critic: str, share: Path, cwd: Path) -> str:
    """The critic checkpoint directory for ``critic`` (the argument or the parameter file's).

    Args:
        critic: an absolute path, or a path relative to the package share directory or to the
            working directory (in that order); ``~`` is expanded.
        share: the ``vgps`` package's share directory.
        cwd: the working directory of ``ros2 launch``.

    Returns:
        An absolute path: the first candidate that is a directory, else the share-directory one
        (the critic node then names it in its error).
    """
    path = Path(critic).expanduser()
    if path.is_absolute():
        return str(path)
    candidates = (share / path, cwd / path)
    return str(next((c for c in candidates if c.is_dir()), candidates[0]).resolve())


def typed_parameters(parameters: dict, parameter_value) -> dict:
    """``parameters`` with every string (or list of strings) wrapped as a typed parameter value.

    Args:
        parameters: ``{name: value}`` of one node.
        parameter_value: ``launch_ros.parameter_descriptions.ParameterValue``.

    Returns:
        The same mapping; strings as ``parameter_value(v, value_type=str)``, non-empty lists of
        strings as ``parameter_value(v, value_type=list[str])``, other values unchanged.
    """
    out = {}
    for name, value in parameters.items():
        if isinstance(value, str):
            value = parameter_value(value, value_type=str)
        elif (isinstance(value, (list, tuple)) and value
              and all(isinstance(v, str) for v in value)):
            value = parameter_value(list(value), value_type=list[str])
        out[name] = value
    return out


def generate_launch_description():
    # launch / launch_ros come with a full ROS 2 install; imported here so that the file can be
    # parsed and checked where they are missing (pip-only machines).
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    from launch import LaunchDescription
    from vgps.graph.description import LAUNCH_ARGUMENTS, describe, load_config
    from vgps.security import security_env
    from vgps.security.probe import require_security

    def nodes(context, *args, **kwargs):
        arguments = {name: context.launch_configurations[name] for name in LAUNCH_ARGUMENTS}
        critic = arguments["critic"] or load_config()["critic_node"].get("critic", "")
        if critic:
            share = Path(get_package_share_directory("vgps"))
            arguments["critic"] = resolve_critic(critic, share, Path.cwd())
        graph = describe(arguments, autostart=True)
        secure = {}
        if graph.arguments["security"]:  # refuse (RuntimeError) rather than run in the clear
            secure = security_env(graph.arguments["security"])
            require_security({**os.environ, **NODE_ENV, **secure})
        return [
            Node(package=node.package, executable=node.executable, name=node.name,
                 parameters=[typed_parameters(node.parameters, ParameterValue)],
                 remappings=list(node.remappings), additional_env={**NODE_ENV, **secure},
                 ros_arguments=["--enclave", node.enclave] if node.enclave else [],
                 output="screen", emulate_tty=True)
            for node in graph.nodes
        ]

    declared = [DeclareLaunchArgument(name, default_value=arg.default, description=arg.help)
                for name, arg in LAUNCH_ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
