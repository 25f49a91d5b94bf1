"""numpy <-> ActionCandidates / ScoredCandidates / Image / sim state: round trips and every
rejection class; the input guard's stamp checks and rejection log."""

from __future__ import annotations

import array

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from vgps_ros.conversions import (
    candidates_from_msg,
    candidates_to_msg,
    image_from_msg,
    image_to_msg,
    scored_from_msg,
    scored_to_msg,
    sim_state_from_msg,
    sim_state_to_msg,
    stamp_from_ns,
    stamp_to_ns,
)
from vgps_ros.input_guard import MessageError, RejectionLog, check_stamp

pytestmark = pytest.mark.ros

STAMP = 1_700_000_000_123_456_789


def chunks(k=4, h=2, d=7, seed=0):
    return np.random.default_rng(seed).uniform(-0.05, 0.05, (k, h, d)).astype(np.float32)


def test_stamp_round_trip():
    assert stamp_to_ns(stamp_from_ns(STAMP)) == STAMP


def test_candidates_round_trip_keeps_row_major_layout():
    c = chunks()
    msg = candidates_to_msg(c, STAMP, step=3, instruction="put carrot on plate",
                            policy_name="sim", sample_ms=1.5)
    assert (msg.k, msg.horizon, msg.action_dim, len(msg.actions)) == (4, 2, 7, 56)
    assert msg.actions[(1 * 2 + 1) * 7 + 3] == pytest.approx(c[1, 1, 3])
    back = candidates_from_msg(msg)
    np.testing.assert_array_equal(back.chunks, c)
    assert (back.step, back.stamp_ns, back.k, back.instruction) == (3, STAMP, 4,
                                                                   "put carrot on plate")


def test_two_dimensional_chunks_become_horizon_one():
    msg = candidates_to_msg(chunks()[:, 0], STAMP, 0, "x", "sim")
    assert msg.horizon == 1 and candidates_from_msg(msg).chunks.shape == (4, 1, 7)


def _bad(field, value):
    msg = candidates_to_msg(chunks(), STAMP, 0, "put carrot on plate", "sim")
    if field == "actions_nan":
        values = np.frombuffer(msg.actions.tobytes(), np.float32).copy()
        values[5] = np.nan
        msg.actions = array.array("f", values.tobytes())
    elif field == "actions_inf":
        values = np.frombuffer(msg.actions.tobytes(), np.float32).copy()
        values[0] = np.inf
        msg.actions = array.array("f", values.tobytes())
    elif field == "actions_short":
        msg.actions = array.array("f", [0.0] * 10)
    else:
        setattr(msg, field, value)
    return msg


@pytest.mark.parametrize("field, value, kind", [
    ("k", 0, "bad_k"),
    ("k", 5, "bad_length"),
    ("k", 100_000, "bad_k"),
    ("horizon", 0, "bad_horizon"),
    ("action_dim", 6, "bad_dims"),
    ("actions_short", None, "bad_length"),
    ("actions_nan", None, "nan_actions"),
    ("actions_inf", None, "nan_actions"),
    ("instruction", "", "empty_instruction"),
    ("instruction", "   ", "empty_instruction"),
])
def test_malformed_candidates_name_their_class(field, value, kind):
    with pytest.raises(MessageError) as info:
        candidates_from_msg(_bad(field, value))
    assert info.value.kind == kind


def test_producer_side_validates_too():
    with pytest.raises(MessageError, match="nan_actions"):
        candidates_to_msg(np.full((2, 1, 7), np.nan), STAMP, 0, "x", "sim")
    with pytest.raises(MessageError, match="empty_instruction"):
        candidates_to_msg(chunks(), STAMP, 0, "", "sim")


def test_scored_round_trip_and_checks():
    cands = candidates_to_msg(chunks(), STAMP, 7, "x", "sim")
    q = np.array([0.1, -0.2, 0.3, 0.0], np.float32)
    msg = scored_to_msg(cands, q, "critic@1", 2.0, 0.5, True)
    back, q_back = scored_from_msg(msg)
    np.testing.assert_array_equal(q_back, q)
    assert back.step == 7 and msg.pre_encoded and msg.critic_id == "critic@1"
    msg.q_values = array.array("f", [0.0] * 3)
    with pytest.raises(MessageError, match="bad_q"):
        scored_from_msg(msg)
    msg.q_values = array.array("f", [0.0, np.nan, 0.0, 0.0])
    with pytest.raises(MessageError, match="nan_q"):
        scored_from_msg(msg)
    msg.q_values = array.array("f", [0.0] * 4)
    msg.header.stamp = stamp_from_ns(STAMP + 1)
    with pytest.raises(MessageError, match="stamp_mismatch"):
        scored_from_msg(msg)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_image_round_trip_with_row_padding(encoding):
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    msg = image_to_msg(image, STAMP, "camera")
    assert (msg.encoding, msg.step, stamp_to_ns(msg.header.stamp)) == ("rgb8", 90, STAMP)
    np.testing.assert_array_equal(image_from_msg(msg), image)
    rows = image[:, :, ::-1] if encoding == "bgr8" else image
    padded = np.zeros((20, 96), np.uint8)
    padded[:, :90] = rows.reshape(20, 90)
    msg.encoding, msg.step, msg.data = encoding, 96, padded.tobytes()
    np.testing.assert_array_equal(image_from_msg(msg), image)


@pytest.mark.parametrize("change, kind", [
    ({"encoding": "mono8"}, "bad_encoding"),
    ({"encoding": "rgba8"}, "bad_encoding"),
    ({"encoding": ""}, "bad_encoding"),
    ({"width": 0}, "bad_image_size"),
    ({"height": 8}, "bad_image_size"),
    ({"height": 10_000}, "bad_image_size"),
    ({"step": 10}, "bad_step"),
    ({"step": 10_000}, "bad_step"),
    ({"data": b"\x00" * 100}, "bad_data_length"),
])
def test_malformed_images_name_their_class(change, kind):
    msg = image_to_msg(np.zeros((20, 30, 3), np.uint8), STAMP)
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(MessageError) as info:
        image_from_msg(msg)
    assert info.value.kind == kind


def test_check_stamp_classes():
    assert check_stamp(99.9, 100.0, max_age_s=0.5) == pytest.approx(0.1)
    for stamp, kind in ((98.0, "stale_stamp"), (101.0, "future_stamp"), (0.0, "bad_stamp")):
        with pytest.raises(MessageError) as info:
            check_stamp(stamp, 100.0, max_age_s=0.5)
        assert info.value.kind == kind


def test_rejection_log_reports_first_of_each_class_then_rate_limits():
    log = RejectionLog(min_interval_s=1.0)
    assert log.add("a", "x", now=0.0)
    assert not log.add("a", "x", now=0.1)
    assert log.add("b", "y", now=0.2)
    assert log.add("a", "x", now=1.5)
    assert log.counts == {"a": 3, "b": 1} and log.total == 4 and log.last == ("a", "x")


def test_sim_state_round_trip_restores_arrays():
    state = {"task": "carrot_on_plate", "step": 3, "ee_pos": np.array([0.1, 0.2, 0.3]),
             "object_grasped": np.bool_(True),
             "objects": {"carrot": {"pos": np.zeros(3), "quat": np.array([1.0, 0, 0, 0])}}}
    stamp, back = sim_state_from_msg(sim_state_to_msg(state, 77))
    assert stamp == 77 and back["task"] == "carrot_on_plate" and back["object_grasped"] is True
    np.testing.assert_array_equal(back["ee_pos"], state["ee_pos"])
    assert isinstance(back["objects"]["carrot"]["quat"], np.ndarray)
    with pytest.raises(MessageError, match="bad_sim_state"):
        sim_state_from_msg(type(sim_state_to_msg(state, 1))(data="{not json"))
