"""Selector decision logic with an injected clock: selection, staleness, watchdog, e-stop."""

import jax
import numpy as np
import pytest

from vgps_widowx.selector import REASONS, Decision, Selector, SelectorConfig

K, H, A = 4, 3, 7


def _chunks(k=K, h=H, offset=0.0):
    """(k, h, 7) chunks whose entries encode (candidate, row): value = offset + 10 i + j."""
    i = np.arange(k)[:, None, None]
    j = np.arange(h)[None, :, None]
    return (offset + 10.0 * i + j + np.zeros((k, h, A))).astype(np.float32) / 100.0


Q = np.array([0.1, 0.7, 0.3, 0.2])


def _fresh(step, chunks=None, q=Q, now=10.0, selector=None, **cfg):
    selector = selector or Selector(SelectorConfig(k=K, **cfg))
    chunks = _chunks() if chunks is None else chunks
    return selector, selector.on_scored(step, now - 0.1, chunks, q, now=now)


def test_argmax_executes_the_best_chunks_first_action():
    _, d = _fresh(0)
    assert isinstance(d, Decision) and d.reason == "argmax" and d.index == 1
    np.testing.assert_array_equal(d.actions, _chunks()[1, :1])
    assert d.actions.dtype == np.float32 and d.actions.shape == (1, A)
    assert d.q == pytest.approx(0.7) and d.margin == pytest.approx(0.4)
    assert (d.k, d.beta, d.step) == (K, 0.0, 0)


def test_softmax_samples_with_the_key_and_defaults_to_a_step_key():
    sel = Selector(SelectorConfig(k=K, beta=0.05))
    d = sel.on_scored(
        0, 9.9, _chunks(), np.array([0.0, 5.0, 0.0, 0.0]), now=10.0, key=jax.random.key(3)
    )
    assert d.reason == "softmax" and d.index == 1  # exp(100) dominates
    # No key: fold_in(key(seed), step), so the same step and seed give the same choice.
    q = np.zeros(K)
    a = Selector(SelectorConfig(k=K, beta=1.0)).on_scored(7, 9.9, _chunks(), q, now=10.0)
    b = Selector(SelectorConfig(k=K, beta=1.0)).on_scored(7, 9.9, _chunks(), q, now=10.0)
    assert a.reason == "softmax" and a.index == b.index
    picks = {
        Selector(SelectorConfig(k=K, beta=1.0)).on_scored(s, 9.9, _chunks(), q, now=10.0).index
        for s in range(30)
    }
    assert len(picks) > 1  # uniform over 4: 30 draws hit more than one


@pytest.mark.parametrize(
    ("stamp", "code"),
    [(10.0 - 0.51, "stale"), (10.0 - 3.0, "stale"), (10.0 + 0.06, "future_stamp")],
)
def test_stale_and_future_stamps_are_rejected(stamp, code):
    sel = Selector(SelectorConfig(k=K))
    d = sel.on_scored(0, stamp, _chunks(), Q, now=10.0)
    assert d.reason == "rejected" and d.detail.startswith(code + ":")
    assert d.index == -1 and d.actions.shape == (0, A) and np.isnan(d.q)
    # Within the tolerances the same message is accepted.
    assert sel.on_scored(0, 10.0 + 0.04, _chunks(), Q, now=10.0).reason == "argmax"
    assert sel.on_scored(1, 10.0 - 0.49, _chunks(), Q, now=10.0).reason == "argmax"


def test_duplicate_and_out_of_order_steps_are_rejected():
    sel, d = _fresh(3)
    assert d.reason == "argmax"
    dup = sel.on_scored(3, 9.9, _chunks(), Q, now=10.0)
    assert dup.reason == "rejected" and dup.detail.startswith("duplicate_step:")
    old = sel.on_scored(2, 9.9, _chunks(), Q, now=10.0)
    assert old.reason == "rejected" and old.detail.startswith("out_of_order:")
    # A rejected message does not advance the step counter.
    assert sel.on_scored(5, 1.0, _chunks(), Q, now=10.0).reason == "rejected"
    assert sel.on_scored(5, 9.9, _chunks(), Q, now=10.0).reason == "argmax"
    sel.reset()  # new episode: the counter starts over
    assert sel.on_scored(0, 9.9, _chunks(), Q, now=10.0).reason == "argmax"


def test_a_wild_step_is_rejected_and_never_stalls_the_real_steps():
    sel, d = _fresh(5000)
    assert d.reason == "argmax"
    wild = sel.on_scored(2**40, 9.9, _chunks(), Q, now=10.0)
    assert wild.reason == "rejected" and wild.detail.startswith("step_jump:")
    assert sel.on_scored(5001, 9.9, _chunks(), Q, now=10.0).reason == "argmax"
    assert sel.on_scored(5001 + 1000, 9.9, _chunks(), Q, now=10.0).reason == "argmax"  # bound
    # A wild step adopted before any real one (nothing to compare with) does not stall either:
    # a real step far behind it is a restarted counter.
    sel = Selector(SelectorConfig(k=K, max_step_jump=50))
    assert sel.on_scored(2**40, 9.9, _chunks(), Q, now=10.0).reason == "argmax"
    real = sel.on_scored(7, 9.9, _chunks(), Q, now=10.0)
    assert real.reason == "argmax" and "step_restart:" in real.detail
    assert sel.on_scored(6, 9.9, _chunks(), Q, now=10.0).detail.startswith("out_of_order:")


def test_watchdog_holds_once_per_timeout():
    sel = Selector(SelectorConfig(k=K, watchdog_timeout_s=1.0))
    assert sel.on_tick(0.0) is None  # arms
    assert sel.on_tick(0.9) is None
    d = sel.on_tick(1.1)
    assert d.reason == "hold" and not d.executes and d.detail.startswith("watchdog:")
    assert sel.on_tick(1.5) is None  # one alarm per timeout
    assert sel.on_tick(2.2).reason == "hold"
    assert sel.scores_overdue(2.2)
    sel.on_scored(0, 2.4, _chunks(), Q, now=2.5)
    assert not sel.scores_overdue(3.0) and sel.on_tick(3.0) is None
    assert sel.on_tick(3.6).reason == "hold"


def test_fallback_hold_versus_policy_first():
    hold = Selector(SelectorConfig(k=K, fallback="hold"))
    hold.on_tick(0.0)
    assert hold.on_tick(1.5).reason == "hold"
    d = hold.on_candidates_only(0, 1.4, _chunks(), now=1.5)
    assert d.reason == "hold" and not d.executes

    first = Selector(SelectorConfig(k=K, fallback="policy_first"))
    first.on_tick(0.0)
    alarm = first.on_tick(1.5)
    assert alarm.reason == "hold" and "on_candidates_only" in alarm.detail
    d = first.on_candidates_only(0, 1.4, _chunks(), now=1.5)
    assert d.reason == "fallback" and d.index == 0 and np.isnan(d.q)
    np.testing.assert_array_equal(d.actions, _chunks()[0, :1])
    # The usual checks still apply to the fallback path.
    assert first.on_candidates_only(0, 1.4, _chunks(), now=1.5).detail.startswith("duplicate")
    assert first.on_candidates_only(1, 0.1, _chunks(), now=1.5).detail.startswith("stale")
    assert first.scores_overdue(1.5)  # fallbacks do not count as scored selections


def test_estop_latches_until_reset_and_emits_nothing():
    sel = Selector(SelectorConfig(k=K, fallback="policy_first"))
    assert sel.on_scored(0, 9.9, _chunks(), Q, now=10.0).reason == "argmax"
    sel.estop()
    assert sel.estopped
    decisions = [
        sel.on_scored(1, 10.0, _chunks(), Q, now=10.1),
        sel.on_candidates_only(2, 10.1, _chunks(), now=10.2),
        sel.on_scored(3, 10.2, _chunks(), np.full(K, np.nan), now=10.3),
        sel.on_tick(12.0),
    ]
    for d in decisions:
        assert d.reason == "estop" and not d.executes and d.index == -1
    sel.reset_estop()
    assert sel.on_scored(4, 12.0, _chunks(), Q, now=12.1).reason == "argmax"


def test_live_k_and_beta_take_effect_on_the_next_decision():
    sel, d = _fresh(0)
    assert d.k == K and "k_mismatch" not in d.detail
    sel.set_k(8)
    d = sel.on_scored(1, 9.9, _chunks(), Q, now=10.0)
    assert d.reason == "argmax" and d.k == 8 and d.index == 1
    assert "k_mismatch: received K=4, configured k=8" in d.detail
    sel.set_beta(0.5)
    d = sel.on_scored(2, 9.9, _chunks(), Q, now=10.0)
    assert d.reason == "softmax" and d.beta == 0.5
    with pytest.raises(ValueError, match="beta"):
        sel.set_beta(-1.0)
    with pytest.raises(ValueError, match="k="):
        sel.set_k(0)
    with pytest.raises(ValueError, match="execute"):
        sel.set_execute("all")
    assert sel.config.beta == 0.5 and sel.config.k == 8  # a refused setting changes nothing


def test_execute_chunk_returns_the_whole_chunk():
    _, d = _fresh(0, execute="chunk")
    np.testing.assert_array_equal(d.actions, _chunks()[1])


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_ensemble_averages_covering_predictions_by_hand(decay):
    sel = Selector(SelectorConfig(k=K, execute="ensemble", ensemble_decay=decay))
    picks = {0: 1, 1: 2, 2: 0, 4: 3}  # step -> candidate made best; step 3 never arrives
    chosen = {}
    got = {}
    for step, best in picks.items():
        chunks = _chunks(offset=step)
        q = np.zeros(K)
        q[best] = 1.0
        got[step] = sel.on_scored(step, 9.9, chunks, q, now=10.0)
        chosen[step] = chunks[best]

    def expected(step, sources):  # sources oldest first; weight exp(-decay * i), i=0 oldest
        w = np.exp(-decay * np.arange(len(sources)))
        preds = np.stack([chosen[s][step - s] for s in sources])
        return (w / w.sum()) @ preds

    np.testing.assert_allclose(got[0].actions[0], chosen[0][0], rtol=1e-6)
    np.testing.assert_allclose(got[1].actions[0], expected(1, [0, 1]), rtol=1e-6)
    np.testing.assert_allclose(got[2].actions[0], expected(2, [0, 1, 2]), rtol=1e-6)
    # H = 3: at step 4 only the chunks of steps 2 and 4 still cover it.
    np.testing.assert_allclose(got[4].actions[0], expected(4, [2, 4]), rtol=1e-6)
    assert got[4].actions.shape == (1, A) and "ensembled 2 predictions" in got[4].detail
    assert got[2].index == 0 and got[4].index == 3


def test_two_dimensional_candidates_are_single_step_chunks():
    _, d = _fresh(0, chunks=_chunks()[:, 0, :])
    np.testing.assert_array_equal(d.actions, _chunks()[1, :1])


BAD_CANDIDATES = {
    "nan": np.where(np.arange(K * H * A).reshape(K, H, A) == 5, np.nan, _chunks()),
    "inf": np.full((K, H, A), np.inf),
    "wrong_A": np.zeros((K, H, 6)),
    "1d": np.zeros(A),
    "4d": np.zeros((K, H, A, 1)),
    "empty_K": np.zeros((0, H, A)),
    "empty_H": np.zeros((K, 0, A)),
    "strings": np.full((K, H, A), "a"),
    "none": None,
    "ragged": [[0.0] * A, [0.0] * 3],
    "overflow": np.full((K, H, A), 1e300),
}


@pytest.mark.parametrize("name", sorted(BAD_CANDIDATES))
def test_malformed_candidates_are_rejected_with_detail(name):
    sel = Selector(SelectorConfig(k=K))
    d = sel.on_scored(0, 9.9, BAD_CANDIDATES[name], Q, now=10.0)
    assert d.reason == "rejected" and d.detail.startswith("bad_candidates:"), d.detail
    d = sel.on_candidates_only(0, 9.9, BAD_CANDIDATES[name], now=10.0)
    assert d.reason == "rejected" and not d.executes


@pytest.mark.parametrize(
    "q",
    [
        np.array([0.1, np.nan, 0.2, 0.3]),
        np.zeros(K + 1),
        np.zeros((K, 1)),
        "high",
        None,
        np.array([1, 2, 3, 4j]),
    ],
)
def test_malformed_q_is_rejected_with_detail(q):
    d = Selector(SelectorConfig(k=K)).on_scored(0, 9.9, _chunks(), q, now=10.0)
    assert d.reason == "rejected" and d.detail.startswith("bad_q:"), d.detail


@pytest.mark.parametrize(
    ("step", "stamp", "now", "code"),
    [
        (-1, 9.9, 10.0, "bad_step"),
        (1.5, 9.9, 10.0, "bad_step"),
        (True, 9.9, 10.0, "bad_step"),
        ("3", 9.9, 10.0, "bad_step"),
        (0, float("nan"), 10.0, "bad_stamp"),
        (0, None, 10.0, "bad_stamp"),
        (0, 9.9, float("inf"), "bad_now"),
    ],
)
def test_malformed_step_and_times_are_rejected(step, stamp, now, code):
    d = Selector(SelectorConfig(k=K)).on_scored(step, stamp, _chunks(), Q, now=now)
    assert d.reason == "rejected" and d.detail.startswith(code + ":"), d.detail


def test_bad_key_is_rejected_not_raised():
    sel = Selector(SelectorConfig(k=K, beta=1.0))
    d = sel.on_scored(0, 9.9, _chunks(), Q, now=10.0, key="not a key")
    assert d.reason == "rejected" and d.detail.startswith("selection_failed:")


def test_decisions_only_use_known_reasons():
    assert set(REASONS) == {"argmax", "softmax", "fallback", "hold", "rejected", "estop"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"k": 0}, "k"),
        ({"beta": -0.1}, "beta"),
        ({"execute": "all"}, "execute"),
        ({"max_age_s": 0.0}, "max_age_s"),
        ({"max_future_s": float("nan")}, "max_future_s"),
        ({"watchdog_timeout_s": -1.0}, "watchdog_timeout_s"),
        ({"fallback": "random"}, "fallback"),
        ({"ensemble_decay": -1.0}, "ensemble_decay"),
        ({"max_step_jump": 0}, "max_step_jump"),
        ({"max_step_jump": 1.5}, "max_step_jump"),
    ],
)
def test_config_names_the_bad_field(kwargs, field):
    with pytest.raises(ValueError, match=f"SelectorConfig.{field}="):
        SelectorConfig(**kwargs)
