"""ros2 launch vgps steer_widowx.launch.py [robot:=sim|real] [policy:=...] [critic:=...] [k:=..]

The V-GPS steering graph: policy_node -> critic_node -> selector_node -> arm_driver. The nodes,
their parameters (config/steer_widowx.yaml, keyed by node name) and remappings come from the one
graph description in ``vgps.graph.description``, which ``vgps up`` also uses. Lifecycle nodes
configure and
activate themselves here (``autostart``); the arm driver starts its first episode once policy,
critic and selector are up. ``record:=DIR`` adds the bag recorder (``vgps-recorder``, a plain
node), which subscribes within a second or two, well before the critic has warmed up.

    ros2 launch vgps steer_widowx.launch.py critic:=models/sim_critic
    ros2 launch vgps steer_widowx.launch.py robot:=real policy:=octo-small-1.5 \
        critic:=critics/vgps-release k:=50 instruction:="put the eggplant in the basket"
    ros2 launch vgps steer_widowx.launch.py critic:=models/sim_critic record:=bags/run1
"""


def generate_launch_description():
    # launch / launch_ros come with a full ROS 2 install; imported here so that the file can be
    # parsed and checked where they are missing (pip-only machines).
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch_ros.actions import Node

    from launch import LaunchDescription
    from vgps.graph.description import LAUNCH_ARGUMENTS, describe

    def nodes(context, *args, **kwargs):
        arguments = {name: context.launch_configurations[name] for name in LAUNCH_ARGUMENTS}
        graph = describe(arguments, autostart=True)
        return [
            Node(package=node.package, executable=node.executable, name=node.name,
                 parameters=[node.parameters], remappings=list(node.remappings),
                 output="screen", emulate_tty=True)
            for node in graph.nodes
        ]

    declared = [DeclareLaunchArgument(name, default_value=arg.default, description=arg.help)
                for name, arg in LAUNCH_ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
