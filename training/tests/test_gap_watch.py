"""The conservative-gap warning: once, when the recent mean of ``cql_gap`` falls below 0."""

from __future__ import annotations

import logging

import pytest

from vgps_training.gap_watch import GapWatch


def test_it_warns_once_when_the_recent_gap_turns_negative(caplog):
    watch = GapWatch(window=3)
    gaps = [5.9, 2.9, 1.0, 0.4, -0.2, -0.3, -0.4, -0.5]
    with caplog.at_level(logging.WARNING, logger="vgps_training.gap_watch"):
        messages = [watch.update(50 * (i + 1), {"cql_gap": g, "critic_loss": 1.0})
                    for i, g in enumerate(gaps)]
    # means of the last three: ... (1.0, 0.4, -0.2) = 0.4, (0.4, -0.2, -0.3) = -0.033 -> warn
    assert [m is not None for m in messages] == [False] * 5 + [True] + [False] * 2
    assert watch.warned_at == 300
    assert "averaged -0.033" in messages[5] and "step 300" in messages[5]
    assert [r.getMessage() for r in caplog.records] == [messages[5]]


def test_a_healthy_gap_and_metrics_without_one_never_warn():
    watch = GapWatch(window=2)
    assert watch.update(1, {"critic_loss": 3.0}) is None  # IQL logs no cql_gap
    assert watch.update(2, {"cql_gap": float("nan")}) is None
    for step, gap in enumerate([6.0, 1.2, 0.01, 0.3, 2.0], start=3):
        assert watch.update(step, {"cql_gap": gap}) is None
    assert watch.warned_at is None


def test_the_window_must_hold_a_log():
    with pytest.raises(ValueError, match="window"):
        GapWatch(window=0)
