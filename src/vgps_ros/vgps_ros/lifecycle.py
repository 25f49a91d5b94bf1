"""The lifecycle base of the managed vgps nodes (critic, policy, arm driver).

The ros2/demos ``lifecycle_py`` pattern, written once (as nav2_common does for nav2):

* parameters come from the subclass's ``PARAMETERS`` (typed :class:`~vgps_ros.parameters.Param`
  descriptions) plus ``autostart``, each declared with its descriptor; live updates go through
  one validated path (type, range or choices, the configure lock of non-live parameters, the
  node's :meth:`ManagedNode.validate` hook returning a reason, then its
  :meth:`ManagedNode.apply` hook);
* configure (:meth:`ManagedNode.configure`) loads models and creates publishers,
  subscriptions, services, timers and worker threads through :meth:`ManagedNode.publisher`,
  :meth:`~ManagedNode.subscription`, :meth:`~ManagedNode.service`, :meth:`~ManagedNode.timer`,
  :meth:`~ManagedNode.worker` and :meth:`~ManagedNode.own`; a configure that raises fails the
  transition with the reason (logged, and on ``/diagnostics`` for nodes that publish them) and
  leaves the node unconfigured and running;
* cleanup, shutdown, error and ``destroy_node`` release all of it, newest first
  (:meth:`ManagedNode.release`);
* ``autostart`` (``ros2 launch`` has no lifecycle manager here) configures and activates the
  node at start-up; ``vgps up`` leaves it false and drives the transitions itself.

Usage::

    class EchoNode(ManagedNode):
        PARAMETERS = (Param("model", "", "loaded at configure", live=False),
                      Param("gain", 1.0, "output gain (live)", range=(0.0, 10.0)))
        CONFIGURED_BY = "model"

        def configure(self) -> None:
            self.own("_model", load(self.param("model")))
            self._pub = self.publisher(Float32, "out", 10)
            self.subscription(Float32, "in", self._on_input, 10)

        def _on_input(self, msg):
            if self.active:
                self._pub.publish(Float32(data=self.param("gain") * self._model(msg.data)))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecyclePublisher, Node, State, TransitionCallbackReturn

from vgps_ros import qos
from vgps_ros.input_guard import MessageError, RejectionLog
from vgps_ros.parameters import Param, Update, declare, watch
from vgps_ros.runtime import OK, WARN, diagnostic

__all__ = ["AUTOSTART", "ManagedNode", "Param", "Update"]

T = TypeVar("T")
AUTOSTART = Param("autostart", False, "configure and activate at start-up (ros2 launch); "
                                      "vgps up drives the transitions")
CONFIGURE_LOCK = "is applied at configure; cleanup first"


class ManagedNode(Node):
    """A lifecycle node whose parameters, transitions and resources follow one pattern.

    Subclasses set ``PARAMETERS`` and ``CONFIGURED_BY`` (the parameter a failed configure names)
    and implement :meth:`configure`; they may override :meth:`activate`, :meth:`deactivate`,
    :meth:`validate`, :meth:`apply` and (calling ``super()``) :meth:`release`. With
    ``DIAGNOSTICS`` the node publishes its status on ``/diagnostics`` once a second and at once
    on a new class of rejected input (:meth:`reject`), with :meth:`diagnostic_values`.

    Attributes:
        active: between activate and deactivate (callbacks do nothing otherwise).
        status: ``unconfigured``, ``configured``, ``active``, ``inactive`` or ``finalized``.
        error: why the last configure failed ("" after a successful one).

    Args:
        name: node name.
        **kwargs: passed to ``rclpy.lifecycle.Node`` (``context``, ``parameter_overrides``).
    """

    PARAMETERS: ClassVar[tuple[Param, ...]] = ()
    CONFIGURED_BY: ClassVar[str] = ""
    DIAGNOSTICS: ClassVar[bool] = False

    def __init__(self, name: str, **kwargs: Any):
        super().__init__(name, **kwargs)
        declare(self, (*self.PARAMETERS, AUTOSTART))
        watch(self, self.PARAMETERS, validate=self.validate, apply=self.apply,
              locked=lambda: CONFIGURE_LOCK if self._configured else "")
        self.active = False
        self.status, self.error = "unconfigured", ""
        self._held: list[tuple[Any, Callable[[Any], object] | None]] = []
        self._configured = False
        self.rejections = RejectionLog()
        if self.DIAGNOSTICS:
            self._diag_pub = self.create_publisher(DiagnosticArray, qos.DIAGNOSTICS,
                                                   qos.DIAGNOSTICS_QOS)
            self.create_timer(1.0, self.publish_diagnostics)
        self._start_timer = (self.create_timer(0.1, self._autostart)
                             if self.param("autostart") else None)

    def param(self, name: str) -> Any:
        """The current value of parameter ``name``."""
        return self.get_parameter(name).value

    # -- hooks ------------------------------------------------------------------------------------
    def configure(self) -> None:
        """Loads and creates what the node works with; raise to fail the transition."""
        raise NotImplementedError

    def activate(self) -> None:
        """Starts work (``active`` is already true and lifecycle publishers are on)."""

    def deactivate(self) -> None:
        """Stops work (``active`` is already false)."""

    def validate(self, update: Update) -> str:
        """Why a batch of parameter changes is refused ("" accepts it)."""
        return ""

    def apply(self, update: Update) -> None:
        """Applies an accepted batch (raise ``ValueError`` to refuse it, changing nothing)."""

    def diagnostic_values(self) -> dict[str, Any]:
        """Key/values published after ``status`` (``rejected.<kind>`` counts follow)."""
        return {}

    # -- resources: whatever configure creates is released, newest first --------------------------
    def own(self, attribute: str, value: T, close: Callable[[T], object] | None = None) -> T:
        """Sets ``self.<attribute> = value`` until release, which closes it and sets None."""
        setattr(self, attribute, value)

        def drop(held: T) -> None:
            setattr(self, attribute, None)
            if close is not None:
                close(held)

        return self.hold(value, drop)

    def hold(self, resource: T, release: Callable[[T], object] | None = None) -> T:
        """Registers ``release(resource)`` to run at release (cleanup, shutdown, error)."""
        self._held.append((resource, release))
        return resource

    def publisher(self, msg_type: type, topic: str, qos_profile: Any) -> LifecyclePublisher:
        """A lifecycle publisher: publishes only while active."""
        pub = self.create_lifecycle_publisher(msg_type, topic, qos_profile)
        return self.hold(pub, self.destroy_lifecycle_publisher)

    def subscription(self, msg_type: type, topic: str, callback: Callable, qos_profile: Any,
                     **kwargs: Any) -> Any:
        return self.hold(self.create_subscription(msg_type, topic, callback, qos_profile,
                                                  **kwargs), self.destroy_subscription)

    def service(self, srv_type: type, name: str, callback: Callable, **kwargs: Any) -> Any:
        return self.hold(self.create_service(srv_type, name, callback, **kwargs),
                         self.destroy_service)

    def timer(self, period_s: float, callback: Callable, **kwargs: Any) -> Any:
        return self.hold(self.create_timer(period_s, callback, **kwargs), self.destroy_timer)

    def worker(self, name: str) -> ThreadPoolExecutor:
        """One worker thread; release waits for its running task and cancels queued ones."""
        return self.hold(ThreadPoolExecutor(max_workers=1, thread_name_prefix=name),
                         lambda pool: pool.shutdown(wait=True, cancel_futures=True))

    def release(self) -> None:
        """Releases everything configure created, newest first (idempotent)."""
        self._configured = False
        while self._held:
            resource, release = self._held.pop()
            if release is None:
                continue
            try:
                release(resource)
            except Exception as exc:  # noqa: BLE001 - release the rest whatever one did
                self.get_logger().error(f"releasing {type(resource).__name__} failed: "
                                        f"{type(exc).__name__}: {exc}")

    # -- transitions ------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        self.get_logger().info("configuring")
        try:
            reason = next(filter(None, (p.check(self.param(p.name)) for p in self.PARAMETERS)),
                          "")
            if reason:
                raise ValueError(reason)
            self.configure()
        except Exception as exc:  # noqa: BLE001 - any failure leaves the node unconfigured
            self.release()
            self.status, self.error = "unconfigured", f"{type(exc).__name__}: {exc}"
            key = self.CONFIGURED_BY
            subject = f" with {key}={self.param(key)!r}" if key else ""
            self.get_logger().error(f"cannot configure{subject}: {self.error}")
            if self.DIAGNOSTICS:
                self.publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        self._configured = True
        self.status, self.error = "configured", ""
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # lifecycle publishers on
        self.active, self.status = True, "active"
        self.activate()
        return ret

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.active, self.status = False, "inactive"
        self.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        return self._end(state, super().on_cleanup, "unconfigured")

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        return self._end(state, super().on_shutdown, "finalized")

    def on_error(self, state: State) -> TransitionCallbackReturn:
        return self._end(state, super().on_error, "unconfigured")

    def _end(self, state: State, entities: Callable, status: str) -> TransitionCallbackReturn:
        self.active = False
        entities(state)
        self.release()
        self.status = status
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self.active = False
        self.release()
        super().destroy_node()

    def _autostart(self) -> None:
        self.destroy_timer(self._start_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # -- diagnostics ------------------------------------------------------------------------------
    def reject(self, exc: MessageError) -> None:
        """Counts a rejected input; a new class of problem is published at once."""
        if self.rejections.add(exc.kind, exc.detail, time.monotonic()):
            self.publish_diagnostics(fresh=True)

    def publish_diagnostics(self, fresh: bool = False) -> None:
        """WARN with the configure error or the newest rejection (recent or ``fresh``), else
        OK with the status (nodes without ``DIAGNOSTICS`` publish nothing)."""
        if not self.DIAGNOSTICS:
            return
        recent = self.rejections.reported(time.monotonic())
        level, message = OK, self.status
        if self.error:
            level, message = WARN, f"{self.status}: {self.error}"
        elif fresh or recent:
            kind, detail = self.rejections.last
            level, message = WARN, f"rejected {kind}: {detail}"
        values = {"status": self.status, **self.diagnostic_values(),
                  **{f"rejected.{k}": v for k, v in sorted(self.rejections.counts.items())}}
        self._diag_pub.publish(diagnostic(self, level, message, values))
