"""Take-over rules: intervention checks, freshness, and the selector loop's override + limits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vgps_ros.input_guard import MessageError
from vgps_widowx.intervention import TakeOver, check_intervention
from vgps_widowx.safety import SafetyConfig
from vgps_widowx.selector import SelectorConfig
from vgps_widowx.selector_loop import SelectorLoop

LIMITS = SafetyConfig()
PUSH = [0.01, -0.005, 0.0, 0.0, 0.0, 0.02, 0.0]  # inside every limit, gripper closed


def chunks(k=3, value=0.002):
    c = np.full((k, 1, 7), value, np.float32)
    c[..., 6] = 1.0
    return c


def loop(timeout=0.5):
    return SelectorLoop(SelectorConfig(k=3), intervention_timeout_s=timeout)


def scored(sel, step, now, q=(0.1, 0.9, 0.2)):
    return sel.on_scored(step, now - 0.01, chunks(), np.array(q), now=now)


def test_a_valid_take_over_keeps_the_action_as_float32():
    cmd = check_intervention(True, PUSH, "keyboard", 3.0)
    assert cmd.take_over and cmd.source == "keyboard" and cmd.received_s == 3.0
    assert cmd.action.dtype == np.float32 and np.allclose(cmd.action, PUSH)
    release = check_intervention(False, [], "keyboard", 4.0)
    assert not release.take_over and release.action is None


@pytest.mark.parametrize(("take_over", "action", "needle"), [
    (True, [0.0] * 6, "6 entries"),
    (True, [0.0] * 8, "8 entries"),
    (True, [0.0, math.nan, 0, 0, 0, 0, 1], "NaN/inf at indices [1]"),
    (True, [0.0, 0, 0, 0, 0, math.inf, 1], "NaN/inf at indices [5]"),
    (True, [0.0, 0, 0, 0, 0, 0, 1.5], "gripper 1.5 outside [0, 1]"),
    (True, [0.0, 0, 0, 0, 0, 0, -0.1], "gripper -0.1 outside [0, 1]"),
    (True, ["a"] * 7, "not numeric"),
    (1, PUSH, "take_over=1 is not a bool"),
])
def test_malformed_interventions_are_rejected_with_the_bad_value(take_over, action, needle):
    with pytest.raises(MessageError) as err:
        check_intervention(take_over, action, "mallory", 0.0)
    assert err.value.kind == "bad_intervention" and needle in err.value.detail


def test_a_take_over_holds_until_released_or_stale():
    takeover = TakeOver(timeout_s=0.5)
    assert takeover.active(0.0) is None
    takeover.update(True, PUSH, "keyboard", 10.0)
    assert takeover.active(10.4) is not None
    assert takeover.active(10.6) is None  # stale
    takeover.update(True, PUSH, "keyboard", 10.6)
    takeover.update(False, [], "keyboard", 10.7)
    assert takeover.active(10.7) is None  # released


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, True])
def test_the_timeout_must_be_positive(bad):
    with pytest.raises(ValueError, match="timeout_s"):
        TakeOver(bad)


def test_take_over_overrides_the_critics_choice_and_names_the_source():
    sel = loop()
    assert sel.on_intervention(True, PUSH, "keyboard", now=1.0)
    d = scored(sel, 0, now=1.1)
    assert (d.reason, d.index, d.step) == ("intervention", -1, 0)
    assert np.allclose(d.actions, [PUSH]) and math.isnan(d.q) and math.isnan(d.margin)
    assert "intervention by keyboard" in d.detail and "argmax candidate 1" in d.detail
    assert sel.reasons["intervention"] == 1 and sel.mode == "intervention"


def test_the_filter_clamps_a_large_intervention():
    sel = loop()
    sel.on_intervention(True, [0.3, -0.3, 0.0, 0.0, 0.0, 1.0, 1.0], "keyboard", now=1.0)
    d = scored(sel, 0, now=1.1)
    t, r = LIMITS.max_translation, LIMITS.max_rotation
    assert d.reason == "intervention"
    assert np.allclose(d.actions[0, :3], [t, -t, 0.0]) and math.isclose(d.actions[0, 5], r,
                                                                          rel_tol=1e-5)
    assert "limited (rotation_clamped, translation_clamped)" in d.detail


def test_the_filter_rejects_an_absurd_intervention_and_nothing_moves():
    sel = loop()
    sel.on_intervention(True, [5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], "keyboard", now=1.0)
    d = scored(sel, 0, now=1.1)
    assert d.reason == "rejected" and not d.executes and d.index == -1
    assert d.detail.startswith("unsafe_action: out_of_range") and "keyboard" in d.detail
    assert sel.rejections.counts["unsafe_action"] == 1


def test_a_stale_or_released_take_over_returns_control_to_the_critic():
    sel = loop(timeout=0.3)
    sel.on_intervention(True, PUSH, "sim_corrector", now=1.0)
    assert scored(sel, 0, now=1.2).reason == "intervention"
    stale = scored(sel, 1, now=1.5)  # 0.5 s since the take-over > 0.3 s
    assert (stale.reason, stale.index) == ("argmax", 1)
    sel.on_intervention(True, PUSH, "sim_corrector", now=1.6)
    assert scored(sel, 2, now=1.7).reason == "intervention"
    sel.on_intervention(False, [], "sim_corrector", now=1.75)
    assert scored(sel, 3, now=1.8).reason == "argmax"


def test_malformed_interventions_are_counted_and_keep_the_previous_state():
    sel = loop()
    assert not sel.on_intervention(True, [0.0] * 7 + [1.0], "mallory", now=1.0)
    assert sel.rejections.counts["bad_intervention"] == 1
    assert scored(sel, 0, now=1.1).reason == "argmax"  # nothing took over
    sel.on_intervention(True, PUSH, "keyboard", now=1.2)
    assert not sel.on_intervention(True, [math.nan] * 7, "mallory", now=1.25)
    d = scored(sel, 1, now=1.3)
    assert d.reason == "intervention" and np.allclose(d.actions, [PUSH])


def test_an_intervention_never_bypasses_the_stamp_checks_or_the_estop():
    sel = loop()
    sel.on_intervention(True, PUSH, "keyboard", now=1.0)
    stale = sel.on_scored(0, 0.0, chunks(), np.zeros(3), now=1.1)  # image 1.1 s old
    assert stale.reason == "rejected" and stale.detail.startswith("stale")
    sel.estop()
    assert scored(sel, 1, now=1.2).reason == "estop"
