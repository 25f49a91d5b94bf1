"""WidowX 250 side of vgps: the robot model, the simulator, the arm backends and the selector.

* ``robot/``: the one robot model (MJCF and constants, rotations, kinematics, camera model) that
  the simulator and the real arm share.
* ``sim/``: the MuJoCo tabletop (scene, controller, tasks, scripted policy, Gymnasium env).
* ``arms/``: :class:`~vgps_widowx.arms.base.ArmBackend` and its backends side by side (sim,
  Interbotix), built by name with :func:`~vgps_widowx.arms.make_arm`.
* ``safety``, ``selector`` (+ ``selector_types``), ``selector_loop``, ``episode_runner``,
  ``overlay``: ROS-free logic; the ``*_node`` modules adapt it to ROS 2.
"""
