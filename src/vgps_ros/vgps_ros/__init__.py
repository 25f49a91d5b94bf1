"""vgps_ros: what every vgps node shares, so no domain package is borrowed for it.

* :mod:`vgps_ros.qos` - topic and service names of the steering graph and their QoS profiles;
* :mod:`vgps_ros.runtime` - single-threaded spin and shutdown, parameter descriptors,
  diagnostics;
* :mod:`vgps_ros.parameters` - typed parameter descriptions (:class:`~vgps_ros.parameters.Param`)
  and the one validated path for live updates, for plain and managed nodes alike;
* :mod:`vgps_ros.lifecycle` - the lifecycle base of the managed nodes (parameters from a typed
  description, configure/activate/deactivate/cleanup, autostart, resources released once);
* :mod:`vgps_ros.input_guard` - the classified :class:`MessageError` and rejection counts
  (pure Python: the critic's and the selector's cores use it without ROS);
* :mod:`vgps_ros.conversions` - numpy <-> message conversions of the steering messages.

Only :mod:`vgps_ros.input_guard` may be imported where rclpy is absent.
"""
