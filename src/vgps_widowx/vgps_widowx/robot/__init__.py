"""The WidowX 250 model that the simulator and the real arm share: the one place for its numbers.

* :mod:`~vgps_widowx.robot.description`: the MJCF (built from primitive geoms) and its named
  constants: joint names and limits, finger travel, tool offset, named poses, Bridge's action
  bounds, the tool workspace box, the gripper threshold.
* :mod:`~vgps_widowx.robot.rotations`: rotation conventions (Bridge euler angles relative to the
  gripper pointing down, ``so3_log``/``so3_exp``), pure numpy.
* :mod:`~vgps_widowx.robot.kinematics`: forward kinematics and damped-least-squares IK on a MuJoCo
  model; :func:`~vgps_widowx.robot.kinematics.kinematic_model` is the bare arm the real driver and
  replay solve on.
* :mod:`~vgps_widowx.robot.camera`: the pinhole :class:`~vgps_widowx.robot.camera.CameraModel`
  seen from the arm's base frame (pure numpy); the simulator's camera is built in
  :mod:`vgps_widowx.sim.camera`.

Users: ``vgps_widowx.sim`` (scene, controller, environment), ``vgps_widowx.arms`` (every backend),
``vgps_widowx.safety`` (default limits) and the overlay.
"""
