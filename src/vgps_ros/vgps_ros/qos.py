"""Topic and service names of the steering graph and their named QoS profiles (the ONE module).

Every node of the graph (critic, policy, selector, arm driver) and the launcher's monitor import
their names and QoS from here, so a publisher and its subscribers can never disagree. It lives in
``vgps_critic`` because every other package already depends on it (``vgps_interfaces`` is an
ament_cmake package without Python code of its own).

Profiles:

* ``SENSOR`` - camera images: best effort, keep last 5, volatile (``qos_profile_sensor_data``).
  A late image is worth nothing; blocking control publishes one per step anyway.
* ``COMMAND`` - candidates, scores, selections, interventions, sim state, episode status, Q
  statistics: reliable, keep last 5, volatile. Small messages that must not be dropped, and
  never queue up for long.
* ``LATCHED`` - the instruction: reliable, transient local, keep last 1, so a node that starts
  (or restarts) after the instruction was published still receives it.
* ``DIAGNOSTICS`` - ``/diagnostics``: reliable, keep last 10 (the usual diagnostic_aggregator QoS).

Usage::

    from vgps_ros import qos
    node.create_subscription(Image, qos.CAMERA, cb, qos.SENSOR)
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

# -- topics (relative names: they follow the node's namespace and remappings) -----------------
CAMERA = "camera/image_raw"  # sensor_msgs/Image rgb8, stamped when captured (after the action)
CAMERA_SOURCE = "camera/source"  # a real camera driver's frames, forwarded after each action
INSTRUCTION = "vgps/instruction"  # std_msgs/String
CANDIDATES = "vgps/candidates"  # vgps_interfaces/ActionCandidates
SCORED = "vgps/scored"  # vgps_interfaces/ScoredCandidates
SELECTED = "vgps/selected"  # vgps_interfaces/SelectedAction
EPISODE = "vgps/episode"  # vgps_interfaces/EpisodeStatus
INTERVENTION = "vgps/intervention"  # vgps_interfaces/Intervention: teleop / corrector take-over
SIM_STATE = "vgps/sim_state"  # std_msgs/String: JSON of the simulator's privileged state
JOINT_STATES = "joint_states"  # sensor_msgs/JointState
Q_VALUES = "vgps/q_values"  # std_msgs/Float32MultiArray (K,)
Q_MAX = "vgps/q_max"  # std_msgs/Float32
Q_MEAN = "vgps/q_mean"  # std_msgs/Float32
Q_SELECTED = "vgps/q_selected"  # std_msgs/Float32
Q_MARGIN = "vgps/q_margin"  # std_msgs/Float32
DIAGNOSTICS = "/diagnostics"  # diagnostic_msgs/DiagnosticArray
OVERLAY = "vgps/overlay"  # sensor_msgs/Image rgb8: candidates drawn on the frame (overlay_node)

# -- services (std_srvs/Trigger) ----------------------------------------------------------------
ESTOP = "vgps/estop"  # selector: latch the e-stop
RESET_ESTOP = "vgps/reset_estop"  # selector: release it
START_EPISODE = "vgps/start_episode"  # arm driver: start the next episode
RESET_ARM = "vgps/reset"  # arm driver: move to the neutral pose

# -- QoS ----------------------------------------------------------------------------------------
SENSOR: QoSProfile = qos_profile_sensor_data
COMMAND = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
DIAGNOSTICS_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
