"""The lifecycle base and the parameter path over real rclpy: a tiny managed node, a plain one."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from lifecycle_msgs.msg import State as StateMsg  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import Float32  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from vgps_ros.lifecycle import ManagedNode, Param, Update  # noqa: E402
from vgps_ros.parameters import declare, watch  # noqa: E402

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class Tiny(ManagedNode):
    """A managed node with one resource of every kind."""

    PARAMETERS = (
        Param("model", "one", "model to load at configure", choices=("one", "two"), live=False),
        Param("gain", 1.0, "output gain (live)", range=(0.0, 10.0)),
        Param("size", 4, "cache size (live)", range=(1, 16)),
        Param("fail", False, "configure raises after creating a publisher"),
        Param("explode", False, "activate raises"),
    )
    CONFIGURED_BY = "model"

    def __init__(self, **kwargs):
        super().__init__("tiny", **kwargs)
        self._model = None
        self.applied: list[dict] = []
        self.closed: list[str] = []

    def validate(self, update: Update) -> str:
        if update.value("size") > 8 and update.value("gain") > 5.0:
            return "size > 8 needs gain <= 5"
        return ""

    def apply(self, update: Update) -> None:
        self.applied.append(dict(update.changes))

    def activate(self) -> None:
        if self.param("explode"):
            raise RuntimeError("boom")

    def configure(self) -> None:
        self.own("_model", f"model {self.param('model')}", close=self.closed.append)
        self.pool = self.worker("tiny")
        self.out = self.publisher(Float32, "tiny/out", 10)
        if self.param("fail"):
            raise RuntimeError("no model")
        self.subscription(Float32, "tiny/in", lambda msg: None, 10)
        self.service(Trigger, "tiny/go", lambda request, response: response)
        self.timer(1.0, lambda: None)


@pytest.fixture()
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.fixture()
def tiny(context):
    node = Tiny(context=context)
    yield node
    node.destroy_node()


def counts(node: Node) -> tuple[int, int, int, int]:
    """(publishers, subscriptions, services, timers) as rclpy lists them."""
    return (len(list(node.publishers)), len(list(node.subscriptions)),
            len(list(node.services)), len(list(node.timers)))


def state_id(node: ManagedNode) -> int:
    return node._state_machine.current_state[0]


def set_one(node: Node, name: str, value):
    return node.set_parameters([Parameter(name, value=value)])[0]


def test_parameters_are_declared_with_their_descriptors(tiny):
    gain, size, model = (tiny.describe_parameter(n) for n in ("gain", "size", "model"))
    assert gain.description == "output gain (live)"
    assert (gain.floating_point_range[0].from_value, gain.floating_point_range[0].to_value) == (
        0.0, 10.0)
    assert (size.integer_range[0].from_value, size.integer_range[0].to_value) == (1, 16)
    assert model.additional_constraints == "one of: one, two"
    assert tiny.param("gain") == 1.0 and tiny.param("autostart") is False


def test_live_update_rejected_with_a_reason_changes_nothing(tiny):
    result = tiny.set_parameters_atomically([Parameter("size", value=12),
                                             Parameter("gain", value=6.0)])
    assert not result.successful and result.reason == "size > 8 needs gain <= 5"
    assert set_one(tiny, "model", "three").reason == (
        "model must be one of ('one', 'two'), got 'three'")
    assert not set_one(tiny, "size", 99).successful  # out of range
    assert not set_one(tiny, "gain", "loud").successful  # wrong type
    assert (tiny.param("size"), tiny.param("gain"), tiny.param("model")) == (4, 1.0, "one")
    assert tiny.applied == []


def test_live_update_accepted_is_applied(tiny):
    assert set_one(tiny, "gain", 2.5).successful
    assert tiny.param("gain") == 2.5 and tiny.applied == [{"gain": 2.5}]
    assert set_one(tiny, "size", 12).successful  # gain 2.5 <= 5: fine
    assert tiny.applied[-1] == {"size": 12}


def test_configure_only_parameters_are_locked_while_configured(tiny):
    assert set_one(tiny, "model", "two").successful  # unconfigured: accepted
    assert tiny.trigger_configure() == SUCCESS and tiny._model == "model two"
    refused = set_one(tiny, "model", "one")
    assert refused.reason == "model is applied at configure; cleanup first"
    assert tiny.param("model") == "two"
    assert tiny.trigger_cleanup() == SUCCESS
    assert set_one(tiny, "model", "one").successful


def test_configure_creates_and_cleanup_releases_everything(tiny):
    before = counts(tiny)
    assert tiny.trigger_configure() == SUCCESS
    assert counts(tiny) == tuple(n + 1 for n in before)
    assert tiny.status == "configured" and tiny._model == "model one"
    assert tiny.trigger_activate() == SUCCESS
    assert tiny.active and tiny.out.is_activated and tiny.status == "active"
    assert tiny.trigger_deactivate() == SUCCESS
    assert not tiny.active and not tiny.out.is_activated
    pool = tiny.pool
    assert tiny.trigger_cleanup() == SUCCESS
    assert counts(tiny) == before
    assert tiny._model is None and tiny.closed == ["model one"] and tiny.status == "unconfigured"
    with pytest.raises(RuntimeError):
        pool.submit(print)  # the worker thread is shut down
    assert tiny.trigger_configure() == SUCCESS and counts(tiny) == tuple(n + 1 for n in before)


def test_failed_configure_releases_what_it_made_and_reports(tiny):
    before = counts(tiny)
    assert set_one(tiny, "fail", True).successful
    assert tiny.trigger_configure() == FAILURE
    assert state_id(tiny) == StateMsg.PRIMARY_STATE_UNCONFIGURED
    assert counts(tiny) == before and tiny._model is None
    assert (tiny.status, tiny.error) == ("unconfigured", "RuntimeError: no model")
    assert set_one(tiny, "fail", False).successful
    assert tiny.trigger_configure() == SUCCESS and tiny.error == ""


def test_shutdown_from_active_releases_everything(tiny):
    before = counts(tiny)
    assert tiny.trigger_configure() == SUCCESS and tiny.trigger_activate() == SUCCESS
    assert tiny.trigger_shutdown() == SUCCESS
    assert state_id(tiny) == StateMsg.PRIMARY_STATE_FINALIZED
    assert counts(tiny) == before and not tiny.active and tiny.status == "finalized"


def test_error_in_a_transition_releases_everything(tiny):
    before = counts(tiny)
    assert set_one(tiny, "explode", True).successful
    assert tiny.trigger_configure() == SUCCESS
    assert tiny.trigger_activate() == TransitionCallbackReturn.ERROR
    assert state_id(tiny) == StateMsg.PRIMARY_STATE_UNCONFIGURED
    assert counts(tiny) == before and tiny._model is None and not tiny.active


def test_autostart_configures_and_activates(context):
    node = Tiny(context=context, parameter_overrides=[Parameter("autostart", value=True)])
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 10.0
        while node.status != "active" and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert node.status == "active" and state_id(node) == StateMsg.PRIMARY_STATE_ACTIVE
    finally:
        executor.shutdown()
        node.destroy_node()


def test_plain_node_refuses_start_up_parameters_and_failed_applies(context):
    node = Node("plain", context=context)
    params = (Param("period_s", 0.05, "timer period", range=(0.005, 1.0), live=False),
              Param("level", 3, "level (live)", range=(0, 10)))
    seen = []

    def apply(update: Update) -> None:
        if update.value("level") == 7:
            raise ValueError("level 7 is reserved")
        seen.append(update.value("level"))

    try:
        declare(node, params)
        watch(node, params, apply=apply)
        assert set_one(node, "period_s", 0.1).reason == "period_s is read at start-up only"
        assert set_one(node, "level", 7).reason == "level 7 is reserved"
        assert set_one(node, "level", 5).successful and seen == [5]
        assert (node.get_parameter("period_s").value, node.get_parameter("level").value) == (
            0.05, 5)
    finally:
        node.destroy_node()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"default": "x", "range": (0, 1)}, "numeric default"),
    ({"default": 3, "range": (0.0, 1.0)}, "non-integer range"),
    ({"default": 1.0, "choices": ("a",)}, "string default"),
    ({"default": 5, "range": (0, 1)}, "outside"),
    ({"default": "c", "choices": ("a", "b")}, "one of"),
    ({"default": None}, "not a parameter value"),
])
def test_param_descriptions_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Param("p", description="d", **kwargs)


def test_param_check_names_type_range_and_choices():
    p = Param("k", 10, "candidates", range=(1, 4096))
    assert p.check(5) == "" and p.check(2.0) == "k must be of type integer, got 2.0"
    assert p.check(0) == "k=0 is outside [1, 4096]"
    assert Param("xyz", (0.0, 0.0), "array").value == [0.0, 0.0]
