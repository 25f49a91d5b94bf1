"""arm_driver_node: runs episodes on the arm backend and closes the blocking control loop.

configure: builds the backend with ``make_arm`` (``sim``: the MuJoCo WidowX; ``interbotix``: the
real arm, failing with the install hint when its package is missing) and connects. activate:
starts the first episode when ``episodes`` > 0 (else waits for ``vgps/start_episode``) and
publishes its first camera image. deactivate: stops publishing and executing (the camera is off;
nothing moves); the episode resumes with a fresh image on the next activate.

Control loop (blocking, BridgeData-style): a ``vgps/selected`` decision is executed only when its
stamp equals the stamp of the last image published here, its reason executes (argmax, softmax,
fallback, intervention) and that image was not acted on yet - so every step's action comes from the
image taken after the previous action finished. Actions go through ``ArmBackend.apply`` (the shared
safety filter). After the action the driver waits out the rest of ``control_period_s`` and
publishes the next observation: ``vgps/sim_state`` (sim), ``joint_states``, ``camera/image_raw``
(rgb8, stamped now), and ``vgps/episode`` events (started, step, succeeded, timeout, failed). One
decision moves the tool at most one step's limits, however many actions it carries (EpisodeRunner).
``/diagnostics`` counts refused actions, clamped decisions and ``ignored.<class>`` decisions.

Recovery: when no executable decision arrives for ``republish_after_s`` (>= ``control_period_s``;
a node died or restarted, an image was dropped) the driver publishes a fresh observation of the
unchanged scene with a new stamp, so a recovering graph continues. It never moves without a
decision. The real arm has no camera of its own: frames from ``camera/source`` (remap it to the
camera driver's topic) are forwarded, the first one stamped after the action finished.

Trusted publishers (``vgps_ros.trust``, parameter ``trusted_publishers``): decisions only from
``selector_node``; while ``vgps/selected`` has another publisher the arm holds (ERROR on
``/diagnostics``) until it is gone or ``vgps/acknowledge_publishers`` accepts it.

Services: ``vgps/start_episode`` (next episode, aborting a running one as failed),
``vgps/reset`` (the reset pose), ``vgps/acknowledge_publishers`` - std_srvs/Trigger.

Real arm: every setting is a parameter; Interbotix's node lives in its own context
(:class:`vgps_ros.context.OwnContext`); no driver within ``connect_timeout_s`` fails configure.
A failed reset is a failed episode and an ERROR on ``/diagnostics``; the node keeps running.
"""

from __future__ import annotations

import os
import threading
import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vgps_interfaces.msg import EpisodeStatus, SelectedAction
from vgps_ros import qos, trust
from vgps_ros.context import OwnContext
from vgps_ros.conversions import image_from_msg, image_to_msg, sim_state_to_msg, stamp_to_ns
from vgps_ros.input_guard import MessageError
from vgps_ros.lifecycle import ManagedNode, Param, Update
from vgps_ros.runtime import ERROR, diagnostic, spin
from vgps_widowx.arms.interbotix_config import REAL_ARM_SETTINGS, real_arm_configs
from vgps_widowx.episode_runner import (
    EpisodeRunner,
    EpisodeStartError,
    RunnerConfig,
    connect_backend,
)
from vgps_widowx.robot import description as robot
from vgps_widowx.ros_conversions import episode_msg, joint_state_msg, selected_actions

BACKENDS = ("sim", "interbotix")  # of vgps_widowx.arms.BACKENDS, offered as `backend`
FRAME_WAIT_S = 0.5  # real arm: how long to wait for a camera frame taken after the action
REAL_ARM_PARAMETERS = tuple(Param(*spec, live=False) for spec in REAL_ARM_SETTINGS)


class ArmDriverNode(ManagedNode):
    """The arm driver as a managed node (see the module docstring)."""

    PARAMETERS = (
        Param("backend", "sim", "arm backend: the MuJoCo sim or the real WidowX 250 through "
              "Interbotix", choices=BACKENDS, live=False),
        Param("task", "carrot_on_plate", "sim task name"),
        Param("episodes", 1, "episodes to run back to back after activation (0: only on "
              "vgps/start_episode)", range=(0, 1_000_000)),
        Param("seed", 0, "episode i uses seed + i", range=(0, 2**31 - 1)),
        Param("image_size", 256, "rendered camera size (square, sim)", range=(16, 1024)),
        Param("control_period_s", 0.2, "minimum time between observations (5 Hz blocking control)",
              range=(0.0, 10.0)),
        Param("republish_after_s", 1.0, "no executable decision for this long -> publish a fresh "
              "observation (>= control_period_s)", range=(0.05, 60.0)),
        Param("max_steps", 0, "step budget per episode (0: the sim task's own; real: 120)",
              range=(0, 100_000)),
        Param("instruction", "", "instruction to publish on vgps/instruction ('' = the sim task's "
              "own)"),
        Param("camera_frame", "camera", "frame_id of the published camera images"),
        Param("startup_timeout_s", 30.0, "after activation the first episode waits until policy "
              "and critic subscribe to the camera and a selector publishes, at most this long",
              range=(0.0, 600.0)),
        Param("reset_pose", "neutral", "real arm: named pose each episode starts from",
              choices=tuple(robot.NAMED_POSES), live=False),
        Param("sticky_gripper_steps", 0, "consecutive actions asking for the other gripper "
              "state before it changes (V-GPS on the WidowX: 3; 0: off)", range=(0, 100),
              live=False),
        *REAL_ARM_PARAMETERS, trust.TRUST_PARAM,
    )
    CONFIGURED_BY = "backend"
    DIAGNOSTICS = True

    def __init__(self, name: str = "arm_driver", **kwargs):
        super().__init__(name, **kwargs)
        self._exec_group = MutuallyExclusiveCallbackGroup()
        self._lock = threading.Lock()  # one motion or observation at a time
        self._runner: EpisodeRunner | None = None
        self._pubs: dict = {}
        self._last_obs = 0.0  # monotonic time of the last observation
        self._frame: Image | None = None  # newest camera/source frame (real arm)
        self._action_end_ns = 0
        self._frame_deadline: float | None = None  # set while waiting for a camera/source frame
        self._start_after: float | None = None  # first episode waits for the graph
        self._trust = trust.TrustedPublishers(self, (qos.SELECTED,), self.reject,
                                              lambda: self.param("trusted_publishers"))
        self._hold = trust.PublisherHold(self._trust, qos.SELECTED, self.get_logger())

    def _on_arm(self, fn, *args):
        """Runs ``fn(*args)`` on the backend's thread and returns its result."""
        return self._arm_thread.submit(fn, *args).result()

    def validate(self, update: Update) -> str:
        period, after = update.value("control_period_s"), update.value("republish_after_s")
        if after < period:
            return f"republish_after_s={after} must be >= control_period_s={period}"
        return ""

    # -- lifecycle --------------------------------------------------------------------------------
    def configure(self) -> None:
        config = RunnerConfig(task=self.param("task"), episodes=self.param("episodes"),
                              seed=self.param("seed"), max_steps=self.param("max_steps"),
                              instruction=self.param("instruction"),
                              reset_pose=self.param("reset_pose"),
                              sticky_gripper_steps=self.param("sticky_gripper_steps"))
        real = self._real_arm() if self.param("backend") != "sim" else {}
        self._fault = ""
        # The backend lives on one thread: MuJoCo's EGL context is current in one thread only.
        self._arm_thread = self.worker("arm")
        arm = self.hold(self._on_arm(connect_backend, self.param("backend"), config,
                                     int(self.param("image_size")), real),
                        lambda a: self._on_arm(a.disconnect))
        has_camera = self._on_arm(arm.camera_image) is not None
        self.own("_runner", EpisodeRunner(arm, config))
        pub = self.publisher
        self.own("_pubs", {
            "image": pub(Image, qos.CAMERA, qos.SENSOR),
            "joints": pub(JointState, qos.JOINT_STATES, qos.COMMAND),
            "episode": pub(EpisodeStatus, qos.EPISODE, qos.COMMAND),
            "instruction": pub(String, qos.INSTRUCTION, qos.LATCHED),
            **({"sim_state": pub(String, qos.SIM_STATE, qos.COMMAND)}
               if self._runner.is_sim else {}),
        })
        self.subscription(SelectedAction, qos.SELECTED, self._hold.wrap(self._on_selected),
                          qos.COMMAND, callback_group=self._exec_group)
        self.service(Trigger, trust.ACKNOWLEDGE, self._hold.on_acknowledge)
        if not has_camera and not self._runner.is_sim:
            self.subscription(Image, qos.CAMERA_SOURCE, self._on_frame, qos.SENSOR)
        self.service(Trigger, qos.START_EPISODE, self._on_start_episode,
                     callback_group=self._exec_group)
        self.service(Trigger, qos.RESET_ARM, self._on_reset, callback_group=self._exec_group)
        self.timer(0.05, self._on_timer, callback_group=self._exec_group)
        self.get_logger().info(f"backend {self.param('backend')} connected; task {config.task}")

    def _real_arm(self) -> dict:
        """The real arm's settings from the parameters (ValueError names a bad one)."""
        values = {spec[0]: self.param(spec[0]) for spec in REAL_ARM_SETTINGS}
        return {**real_arm_configs(values), "ros": OwnContext()}

    def publish_diagnostics(self, fresh: bool = False) -> None:
        """ERROR while the last episode could not start, else the base's status."""
        if getattr(self, "_fault", ""):
            self._diag_pub.publish(diagnostic(self, ERROR, self._fault,
                                              {"status": self.status, "episode_error": "1"}))
            return
        if not trust.publish_alarm(self, self._trust):
            super().publish_diagnostics(fresh)

    def diagnostic_values(self) -> dict:
        """Refused actions, clamped decisions and ignored decisions by class (runner counts)."""
        counts = self._runner.counts if self._runner is not None else {}
        return {"refused": 0, "clamped": 0, **dict(sorted(counts.items())), **self._hold.values()}

    def activate(self) -> None:
        with self._lock:
            if self._runner.running:
                self._observe()
            elif self._runner.episodes_left:
                self._start_after = time.monotonic()  # once the graph is up, see _on_timer

    def deactivate(self) -> None:
        self._start_after = None
        with self._lock:  # wait for a running motion to finish
            pass

    def release(self) -> None:
        with self._lock:
            super().release()
            self._frame_deadline = None

    # -- control loop -----------------------------------------------------------------------------
    def _on_selected(self, msg: SelectedAction) -> None:
        runner = self._runner
        if not self.active or runner is None:
            return
        with self._lock:
            ok, _why = runner.accepts(stamp_to_ns(msg.header.stamp), msg.reason)
            if not ok:
                return
            try:
                actions = selected_actions(msg)
            except MessageError as exc:
                self.get_logger().warn(f"ignoring a malformed decision: {exc}",
                                       throttle_duration_sec=5)
                runner.ignore("malformed")
                self.reject(exc)  # counted as rejected.<kind> on /diagnostics
                return
            outcome = self._on_arm(runner.execute, actions)
            self._action_end_ns = self.get_clock().now().nanoseconds
            if outcome.clamps:
                self.get_logger().warn(f"step {runner.step}: {'; '.join(outcome.clamps)}",
                                       throttle_duration_sec=5)
            if not outcome.executed:
                self.get_logger().warn(f"step {runner.step}: nothing executed: "
                                       f"{'; '.join(outcome.refusals)}")
                return  # the same image stays current; republish_after_s brings a fresh one
            self._episode_event(outcome.event, outcome.step, outcome.success)
            if outcome.ended:
                self.get_logger().info(f"episode {runner.episode} {outcome.event} after "
                                       f"{outcome.step} steps")
                if runner.episodes_left and self.active:
                    self._wait_period()
                    self._start_episode()
                return
            self._wait_period()
            if self.active:
                self._observe()

    def _graph_ready(self) -> bool:
        """Policy and critic listen to the camera and a selector publishes decisions."""
        waited = time.monotonic() - self._start_after
        listening = (self.count_subscribers(qos.CAMERA) >= 2
                     and self.count_publishers(qos.SELECTED) >= 1)
        return listening or waited > self.param("startup_timeout_s")

    def _on_timer(self) -> None:
        runner = self._runner
        if not self.active or runner is None:
            return
        if self._start_after is not None and self._graph_ready():
            self._start_after = None
            with self._lock:
                self._start_episode()
            return
        if not runner.running:
            return
        if self._frame_deadline is not None:  # waiting for a fresh camera/source frame
            if time.monotonic() >= self._frame_deadline:
                with self._lock:
                    self._observe()
            return
        if time.monotonic() - self._last_obs < self.param("republish_after_s"):
            return
        if self._lock.acquire(blocking=False):
            try:
                if runner.running and self.active:
                    self._observe()
            finally:
                self._lock.release()

    def _wait_period(self) -> None:
        remaining = self._last_obs + self.param("control_period_s") - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def _start_episode(self) -> bool:
        """Starts the next episode; a failed start is a failed episode (the node keeps running)."""
        runner = self._runner
        try:
            instruction = self._on_arm(runner.start_episode)
        except EpisodeStartError as exc:
            self._fault = str(exc)
            self.get_logger().error(f"{exc}; call vgps/start_episode to try again")
            self._episode_event(EpisodeStatus.EVENT_FAILED, 0, False)
            self.publish_diagnostics()
            return False
        # The episode's first image is a frame taken after the reset, not one from before it.
        self._action_end_ns = self.get_clock().now().nanoseconds
        if self._fault:
            self._fault = ""
            self.publish_diagnostics()
        if instruction:
            self._pubs["instruction"].publish(String(data=instruction))
        self._episode_event(EpisodeStatus.EVENT_STARTED, 0, False)
        self.get_logger().info(f"episode {runner.episode} started: {runner.config.task} "
                               f"({instruction!r})")
        self._observe()
        return True

    def _observe(self) -> None:
        """Publishes sim state, joints and a camera image, all stamped alike (lock held).

        With an external camera (real arm) the image must be taken after the last action
        finished: until such a frame arrives on ``camera/source`` (``_on_frame`` calls back
        here), at most ``FRAME_WAIT_S``, nothing is published; then the newest frame is used.
        Nothing blocks: the node spins single-threaded and the frame arrives by callback.
        """
        runner = self._runner
        frame_id = self.param("camera_frame")
        state, own, joints, gripper = self._on_arm(runner.capture)
        if own is not None:
            stamp_ns = self.get_clock().now().nanoseconds
            if state is not None:
                self._pubs["sim_state"].publish(sim_state_to_msg(state, stamp_ns))
            image = image_to_msg(own, stamp_ns, frame_id)
        else:
            frame = self._frame
            fresh = frame is not None and stamp_to_ns(frame.header.stamp) >= self._action_end_ns
            if not fresh:
                if self._frame_deadline is None:
                    self._frame_deadline = time.monotonic() + FRAME_WAIT_S
                    return  # _on_frame or the timer comes back
                if time.monotonic() < self._frame_deadline:
                    return
            self._frame_deadline = None
            if frame is None:
                self.get_logger().warn("no camera frame on camera/source yet",
                                       throttle_duration_sec=5)
                return
            stamp_ns = stamp_to_ns(frame.header.stamp)
            image = image_to_msg(image_from_msg(frame), stamp_ns, frame_id)
        self._pubs["joints"].publish(joint_state_msg(joints, gripper, stamp_ns))
        runner.mark_image(stamp_ns)
        self._pubs["image"].publish(image)
        self._last_obs = time.monotonic()

    def _on_frame(self, msg: Image) -> None:
        try:
            image_from_msg(msg)
        except MessageError as exc:
            self.get_logger().warn(f"camera/source: {exc}", throttle_duration_sec=5)
            return
        self._frame = msg
        if (self._frame_deadline is not None and self.active and self._runner is not None
                and stamp_to_ns(msg.header.stamp) >= self._action_end_ns):
            with self._lock:
                self._observe()

    def _episode_event(self, event: str, step: int, success: bool) -> None:
        runner = self._runner
        self._pubs["episode"].publish(episode_msg(
            max(runner.episode, 0), runner.config.task, runner.instruction, step, event,
            success, self.get_clock().now().nanoseconds))

    # -- services ---------------------------------------------------------------------------------
    def _on_start_episode(self, request, response):
        runner = self._runner
        if not self.active or runner is None:
            response.success, response.message = False, "arm driver is not active"
            return response
        with self._lock:
            if runner.running:
                runner.stop()
                self._episode_event(EpisodeStatus.EVENT_FAILED, runner.step, False)
            response.success = self._start_episode()
        response.message = (f"episode {runner.episode} started" if response.success
                            else self._fault)
        return response

    def _on_reset(self, request, response):
        runner = self._runner
        if runner is None:
            response.success, response.message = False, "arm driver is not configured"
            return response
        with self._lock:
            try:
                self._on_arm(runner.arm.reset, runner.config.reset_pose)
            except (RuntimeError, ValueError) as exc:
                response.success, response.message = False, str(exc)
                return response
            self._action_end_ns = self.get_clock().now().nanoseconds
            if self.active and runner.running:
                self._observe()
        response.success, response.message = True, f"arm at the {runner.config.reset_pose} pose"
        return response


def main(args: list[str] | None = None) -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering, before mujoco is imported
    spin(ArmDriverNode, args)


if __name__ == "__main__":
    main()
