"""SelectorLoop: fallback when scores are overdue, command limits, live settings, rejections."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vgps_widowx.safety import SafetyConfig
from vgps_widowx.selector import SelectorConfig
from vgps_widowx.selector_loop import SelectorLoop

LIMITS = SafetyConfig()


def chunks(k=3, value=0.01):
    c = np.full((k, 1, 7), value, np.float32)
    c[..., 6] = 1.0
    return c


def loop(**cfg):
    return SelectorLoop(SelectorConfig(**{"k": 3, "watchdog_timeout_s": 0.3, **cfg}))


def test_scored_candidates_execute_the_argmax():
    sel = loop()
    d = sel.on_scored(0, 100.0, chunks(), np.array([0.1, 0.5, 0.2]), now=100.05)
    assert (d.reason, d.index, d.actions.shape) == ("argmax", 1, (1, 7))
    assert sel.mode == "nominal" and sel.reasons["argmax"] == 1


def test_overdue_scores_fall_back_to_the_policys_first_sample():
    sel = loop(fallback="policy_first")
    sel.on_candidates(4, 1_000_000_000, chunks(), now=1.0)
    assert sel.on_tick(1.2) == []  # not overdue yet (watchdog 0.3 s)
    [(d, stamp)] = sel.on_tick(1.35)
    assert (d.reason, d.index, d.step, stamp) == ("fallback", 0, 4, 1_000_000_000)
    assert "scores missing" in d.detail and sel.mode == "fallback"
    late = sel.on_scored(4, 1.0, chunks(), np.zeros(3), now=1.4)  # the late scores
    assert late.reason == "rejected" and late.detail.startswith("duplicate_step")


def test_fallback_hold_keeps_still():
    sel = loop(fallback="hold")
    sel.on_candidates(0, 1_000_000_000, chunks(), now=1.0)
    [(d, _)] = sel.on_tick(1.5)
    assert d.reason == "hold" and not d.executes


def test_scores_in_time_cancel_the_fallback():
    sel = loop(fallback="policy_first")
    sel.on_candidates(0, 1_000_000_000, chunks(), now=1.0)
    sel.on_scored(0, 1.0, chunks(), np.zeros(3), now=1.1)
    assert all(d.reason != "fallback" for d, _ in sel.on_tick(1.5))


@pytest.mark.parametrize("value", [0.3, -0.3])
def test_executed_actions_are_clamped_to_the_safety_limits(value):
    sel = loop()
    d = sel.on_scored(0, 1.0, chunks(value=value), np.zeros(3), now=1.0)
    assert d.reason == "argmax"
    assert np.all(d.actions[0, :3] == pytest.approx(np.sign(value) * LIMITS.max_translation))
    assert np.all(np.abs(d.actions[0, 3:6]) <= LIMITS.max_rotation + 1e-6)
    assert "limited" in d.detail


def test_absurd_actions_are_rejected_not_executed():
    sel = loop()
    d = sel.on_scored(0, 1.0, chunks(value=50.0), np.zeros(3), now=1.0)
    assert d.reason == "rejected" and not d.executes and d.detail.startswith("unsafe_action")
    assert sel.rejections.counts == {"unsafe_action": 1}


def test_reject_counts_conversion_failures_by_class():
    sel = loop()
    d = sel.reject("nan_q", "q_values has NaN", step=2, now=1.0)
    assert (d.reason, d.step, d.index, math.isnan(d.q)) == ("rejected", 2, -1, True)
    assert sel.rejections.counts == {"nan_q": 1}
    sel.estop()
    assert sel.reject("bad_k", "k=0", step=3, now=1.0).reason == "estop"


def test_live_settings_apply_to_the_next_decision():
    sel = loop()
    sel.configure(k=5, beta=0.5)
    d = sel.on_scored(0, 1.0, chunks(5), np.arange(5.0), now=1.0)
    assert (d.k, d.beta, d.reason) == (5, 0.5, "softmax")
    with pytest.raises(ValueError):
        sel.configure(beta=-1.0)
    assert sel.config.beta == 0.5


def test_rebuilding_settings_keep_the_estop_latched():
    sel = loop()
    sel.estop()
    sel.configure(max_age_s=2.0, fallback="policy_first")
    assert sel.config.max_age_s == 2.0
    assert sel.on_scored(0, 1.0, chunks(), np.zeros(3), now=1.0).reason == "estop"
    sel.reset_estop()
    assert sel.on_scored(0, 1.0, chunks(), np.zeros(3), now=1.0).reason == "argmax"
