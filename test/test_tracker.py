"""The pure step tracker shared by ``vgps monitor`` and ``vgps up``'s summary (no ROS).

Hand-computed: latencies from arrival times, percentiles, Q statistics, decisions by reason,
episode outcomes; and bad input (empty or NaN Q arrays, stamps that never match, arrivals out of
order, unreadable values) that must never raise.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from vgps.monitoring.tracker import EXECUTING, QStats, StepTracker, percentile

NAN = float("nan")


def test_module_does_not_need_ros():
    code = ("import sys, vgps.monitoring.tracker; "
            "sys.exit(any(m.split('.')[0] in ('rclpy', 'rich') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


@pytest.mark.parametrize("values, expected", [
    ([1.0, 2.0, 3.0, 6.0], (4, 6.0, 3.0, math.sqrt(3.5))),  # var = (4+1+0+9)/4
    (np.array([0.5], np.float32), (1, 0.5, 0.5, 0.0)),
    ([1.0, NAN, 3.0, float("inf")], (4, 3.0, 2.0, 1.0)),  # finite entries only; k counts all
    ([], (0, NAN, NAN, NAN)),  # the empty array that killed the old monitor thread
    (np.zeros(0, np.float32), (0, NAN, NAN, NAN)),
    ([NAN, NAN], (2, NAN, NAN, NAN)),
    (np.array([[1.0, 2.0], [3.0, 4.0]]), (4, 4.0, 2.5, math.sqrt(1.25))),
    (iter([2.0, 4.0]), (2, 4.0, 3.0, 1.0)),
    (None, (0, NAN, NAN, NAN)),  # unreadable: empty, no exception
    (["a", "b"], (0, NAN, NAN, NAN)),
])
def test_q_stats_by_hand(values, expected):
    stats = QStats.of(values)
    got = (stats.k, stats.max, stats.mean, stats.std)
    np.testing.assert_allclose(got, expected, equal_nan=True)
    assert isinstance(stats.k, int)


def test_percentile_by_hand():
    assert percentile([10.0, 20.0, 30.0, 40.0], 50) == 25.0
    assert percentile([10.0, 20.0, 30.0, 40.0], 95) == pytest.approx(38.5)  # 30 + 0.85 * 10
    assert math.isnan(percentile([], 50))


def test_a_step_is_matched_by_stamp():
    t = StepTracker()
    assert math.isnan(t.candidates(1_000, now=10.0))  # no previous arrival: no rate
    t.scored(1_000, [0.1, 0.4, -0.2], encode_ms=3.0, score_ms=1.5, pre_encoded=True,
             critic_id="abc")
    rec = t.selected(1_000, now=10.042, step=7, index=1, reason="argmax")
    assert rec.latency_ms == pytest.approx(42.0)
    assert rec.executing and rec.first and not rec.idle
    assert (rec.stamp_ns, rec.step, rec.index, rec.reason) == (1_000, 7, 1, "argmax")
    assert rec.scores is not None and rec.scores.critic_id == "abc" and rec.scores.pre_encoded
    assert (rec.scores.q.k, rec.scores.q.max) == (3, pytest.approx(0.4))
    assert rec.scores.q.mean == pytest.approx(0.1)
    assert (rec.scores.encode_ms, rec.scores.score_ms) == (3.0, 1.5)
    assert t.step == 7 and list(t.latencies_ms) == [pytest.approx(42.0)]
    assert t.candidates(2_000, now=10.2) == pytest.approx(5.0)  # 1 / 0.2 s


def test_summary_of_a_short_run_by_hand():
    t = StepTracker()
    t.selected(0, now=0.5, reason="hold")  # watchdog hold before the first image: idle
    t.episode_event(0, "carrot_on_plate", "put carrot on plate", 0, "started", False)
    arrivals = [(1, 1.0, 1.010, "argmax"), (2, 1.2, 1.220, "argmax"),
                (3, 1.4, 1.430, "fallback"), (4, 1.6, 1.640, "softmax"),
                (5, 1.8, 1.900, "rejected")]  # rejected: not an executed step
    for stamp, sent, got, reason in arrivals:
        t.candidates(stamp, sent)
        t.selected(stamp, got, step=stamp, reason=reason)
    t.selected(99, 2.0, step=6, reason="argmax")  # no candidates heard: no latency
    t.episode_event(0, "carrot_on_plate", "put carrot on plate", 6, "succeeded", True)
    t.episode_event(1, "eggplant", "put eggplant in basket", 0, "started", False)
    t.episode_event(1, "eggplant", "put eggplant in basket", 3, "step", False)
    t.episode_event(1, "eggplant", "put eggplant in basket", 9, "timeout", False)
    summary = t.summary()
    assert summary == {
        "episodes": [
            {"episode": 0, "task": "carrot_on_plate", "success": True, "steps": 6,
             "outcome": "succeeded"},
            {"episode": 1, "task": "eggplant", "success": False, "steps": 9,
             "outcome": "timeout"},
        ],
        # executed latencies 10, 20, 30, 40 ms: p50 25, p95 38.5
        "step_latency_ms": {"p50": 25.0, "p95": 38.5, "n": 4},
        "decisions": {"argmax": 3, "fallback": 1, "softmax": 1, "rejected": 1},
        "idle_holds": 1,
    }
    assert list(summary) == ["episodes", "step_latency_ms", "decisions", "idle_holds"]
    assert t.episodes_done == 2 and t.episode == 1 and t.step == 6
    assert dict(t.outcomes) == {"succeeded": 1, "timeout": 1}
    assert t.all_decisions() == {"argmax": 3, "fallback": 1, "softmax": 1, "rejected": 1,
                                 "hold": 1}
    assert t.last_episode is not None and t.last_episode.event == "timeout"


def test_empty_summary_has_the_same_shape():
    assert StepTracker().summary() == {
        "episodes": [], "step_latency_ms": {"p50": None, "p95": None, "n": 0},
        "decisions": {}, "idle_holds": 0}


def test_a_second_decision_for_one_image_is_not_first():
    t = StepTracker()
    t.candidates(5, 1.0)
    first = t.selected(5, 1.1, reason="fallback")
    again = t.selected(5, 1.3, reason="argmax")
    assert first.first and not again.first
    assert again.latency_ms == pytest.approx(300.0)  # still matched, measured from candidates
    assert list(t.latencies_ms) == [pytest.approx(100.0), pytest.approx(300.0)]


def test_out_of_order_and_unmatched_arrivals_do_not_raise():
    t = StepTracker()
    early = t.selected(7, 1.0, step=1, reason="argmax")  # decision before its candidates
    assert math.isnan(early.latency_ms) and early.scores is None
    t.candidates(7, 1.1)
    t.scored(7, [])  # an empty Q array, after the decision
    late = t.selected(7, 1.2, step=1, reason="argmax")
    assert late.latency_ms == pytest.approx(100.0)
    assert late.scores is not None and late.scores.q.k == 0 and math.isnan(late.scores.q.max)
    assert math.isnan(t.candidates(8, 1.0))  # the clock went back: no rate, no error
    never = t.selected(123_456, 2.0, reason="argmax")
    assert math.isnan(never.latency_ms) and never.scores is None


@pytest.mark.parametrize("stamp", [0, -5, None, "x", NAN, float("inf")])
def test_unreadable_stamps_never_match(stamp):
    t = StepTracker()
    t.candidates(stamp, 1.0)
    t.scored(stamp, [NAN], encode_ms="bad")  # type: ignore[arg-type]
    rec = t.selected(stamp, 1.1, step=None, index="?", reason="argmax")
    assert rec.stamp_ns == 0 and math.isnan(rec.latency_ms) and rec.scores is None
    assert (rec.step, rec.index) == (-1, -1)
    assert t.summary()["step_latency_ms"]["n"] == 0 and t.decisions["argmax"] == 1


def test_caches_are_bounded():
    t = StepTracker(keep=3, max_records=4)
    for stamp in range(1, 11):
        t.candidates(stamp, float(stamp))
        t.scored(stamp, [float(stamp)])
    assert len(t._candidates) == len(t._scores) == 3
    assert math.isnan(t.selected(7, 20.0, reason="argmax").latency_ms)  # forgotten
    assert t.selected(8, 20.0, reason="argmax").latency_ms == pytest.approx(12_000.0)
    for i in range(10):
        t.selected(1000 + i, 30.0, reason="hold")
        t.episode_event(i, "task", "", i, "failed", False)
    assert len(t._decided) == 3 and len(t.latencies_ms) <= 4
    assert len(t.summary()["episodes"]) == 4 and t.episodes_done == 10
    assert t.summary()["episodes"][-1]["episode"] == 9
    with pytest.raises(ValueError, match="keep=0"):
        StepTracker(keep=0)


def test_only_executing_reasons_count_as_steps():
    t = StepTracker()
    for i, reason in enumerate(("hold", "stale", "estop", "rejected", *EXECUTING)):
        t.candidates(i + 1, 0.0)
        t.selected(i + 1, 0.01, step=i, reason=reason)
    assert t.summary()["step_latency_ms"]["n"] == len(EXECUTING)
    assert t.idle_holds == 0  # a hold with a source image is a control step
    assert t.decisions["hold"] == 1 and t.step == 3 + len(EXECUTING)  # the last one's step


# -- strict episodes (vgps up) and hostile input ------------------------------------------------
def _events(t: StepTracker, *events: tuple) -> list:
    return [t.episode_event(ep, "task", "", step, event, event == "succeeded")
            for ep, step, event in events]


def test_strict_episodes_count_only_started_then_ended():
    t = StepTracker(strict_episodes=True)
    records = _events(t, (0, 0, "succeeded"),  # never started
                      (0, 0, "started"), (0, 0, "step"), (0, 0, "succeeded"),
                      (0, 0, "succeeded"), (0, 0, "started"),  # already ended, started twice
                      (1, 0, "started"), (1, 0, "Succeeded"), (-1, 0, "started"),
                      (1, -1, "failed"), (1, 0, ""), (1, 0, "timeout"))
    assert [r.problem for r in records] == [
        "never started", "", "", "", "already ended", "started twice", "", "unknown event",
        "negative number", "negative number", "unknown event", ""]
    assert t.episodes_done == 2 and dict(t.outcomes) == {"succeeded": 1, "timeout": 1}
    assert [e["episode"] for e in t.summary()["episodes"]] == [0, 1]
    assert sum(t.rejected_episode_events.values()) == 7
    assert t.rejected_episode_events["unknown event"] == 2
    assert t.episode == 1 and t.last_episode is not None and t.last_episode.event == "timeout"
    assert not records[0].ended and not records[0].accepted  # a refused outcome did not end


def test_lenient_episodes_stay_as_before():
    t = StepTracker()  # vgps monitor: shows whatever it hears
    records = _events(t, (3, 5, "succeeded"), (3, 5, "succeeded"), (2, 0, "bogus"))
    assert t.episodes_done == 2 and all(r.accepted for r in records)
    assert not t.rejected_episode_events and records[0].seen_steps is None


def test_strict_outcome_steps_are_checked_against_executed_decisions():
    t = StepTracker(strict_episodes=True)
    _events(t, (0, 0, "started"))
    for stamp in range(1, 5):  # 4 images, each decided twice (a watchdog fallback first)
        t.selected(stamp, 1.0, step=stamp, reason="fallback")
        t.selected(stamp, 1.1, step=stamp, reason="argmax")
    t.selected(0, 1.2, reason="hold")  # not executed
    t.selected(9, 1.3, reason="stale")  # not executed
    ok = _events(t, (0, 4, "succeeded"))[0]
    assert ok.seen_steps == 4 and not ok.steps_disagree and t.step_mismatches == 0
    _events(t, (1, 0, "started"))
    t.selected(10, 2.0, step=10, reason="argmax")
    near = _events(t, (1, 2, "timeout"))[0]  # one step off: a decision may cross the start
    assert near.seen_steps == 1 and not near.steps_disagree
    _events(t, (2, 0, "started"))
    lie = _events(t, (2, 50, "succeeded"))[0]
    assert lie.ended and lie.steps_disagree and lie.seen_steps == 0 and t.step_mismatches == 1
    assert t.episodes_done == 3  # flagged, still counted


def test_strict_bookkeeping_is_bounded():
    t = StepTracker(keep=4, max_records=8, strict_episodes=True)
    for ep in range(100):
        _events(t, (ep, 0, "started"))
    assert len(t._running) == 4
    for ep in range(96, 100):
        _events(t, (ep, 0, "failed"))
    assert t.episodes_done == 4 and not t._running and len(t._ended) == 4
    assert t.rejected_episode_events == {}


HOSTILE = [0, -1, 1, 2**31, 2**32 - 1, 2**63, -(2**63), 2**64 + 5, 10**400, NAN,
           float("inf"), -float("inf"), 1e308, "", "x" * 10_000, None, b"\xff", [1], {}, 3.5,
           "\x1b[2J", "\ud800"]
HOSTILE_Q = [[], [NAN], [float("inf"), -float("inf")], np.full(4096, 3.4e38, np.float32),
             np.zeros((0, 3)), np.array([1e308, -1e308]), "abc", None, [None], object(),
             np.full(100_000, NAN, np.float32), np.array(["1", "2"])]


@pytest.mark.parametrize("strict", [False, True])
def test_hostile_values_never_raise(strict):
    rng = np.random.default_rng(0)

    def pick(values: list) -> object:
        return values[int(rng.integers(len(values)))]

    events = ["started", "step", "succeeded", "failed", "timeout", *HOSTILE]
    t = StepTracker(keep=8, max_records=16, strict_episodes=strict)
    for i in range(3000):
        stamp = pick(HOSTILE) if i % 3 else int(rng.integers(1, 20))
        kind = i % 4
        if kind == 0:
            t.candidates(stamp, float(rng.random()))
        elif kind == 1:
            t.scored(stamp, pick(HOSTILE_Q), pick(HOSTILE), pick(HOSTILE), pick(HOSTILE),
                     pick(HOSTILE))
        elif kind == 2:
            rec = t.selected(stamp, float(rng.random()), pick(HOSTILE), pick(HOSTILE),
                             pick([*EXECUTING, "hold", *HOSTILE]))
            assert isinstance(rec.latency_ms, float)
        else:
            rec = t.episode_event(pick(HOSTILE), pick(HOSTILE), pick(HOSTILE), pick(HOSTILE),
                                  pick(events), pick(HOSTILE))
            assert isinstance(rec.problem, str)
    summary = t.summary()
    assert set(summary) == {"episodes", "step_latency_ms", "decisions", "idle_holds"}
    assert len(summary["episodes"]) <= 16 and len(t._running) <= 8 and len(t._ended) <= 16
    if strict:  # only well-formed outcomes of started episodes
        assert all(e["steps"] >= 0 and e["episode"] >= 0 for e in summary["episodes"])
    assert t.all_decisions()  # something was counted
