"""Reward labelling, terminal masks and Monte-Carlo returns against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from vgps_training.data import labels
from vgps_training.data.labels import LabelConfig

G = 0.98
# Hand-computed returns, G_t = r_t + 0.98 G_{t+1}, G_T = 0.
R1 = -1.0
R2 = -1.0 + G * R1  # -1.98
R3 = -1.0 + G * R2  # -2.9404
R4 = -1.0 + G * R3  # -3.881592

CASES = {
    # name: (T, success, terminal, reward, done, mc_return)
    "success_T5": (5, True, True, [-1, -1, 0, 0, 0], [0, 0, 1, 1, 1], [R2, R1, 0, 0, 0]),
    "success_T5_not_terminal": (5, True, False, [-1, -1, 0, 0, 0], [0, 0, 1, 1, 1],
                                [R2, R1, 0, 0, 0]),
    "failure_T4_cut_off": (4, False, False, [-1] * 4, [0, 0, 0, 0], [R4, R3, R2, R1]),
    "failure_T4_terminal": (4, False, True, [-1] * 4, [0, 0, 0, 1], [R4, R3, R2, R1]),
    "success_shorter_than_H": (2, True, False, [0, 0], [1, 1], [0, 0]),
    "success_equal_to_H": (3, True, True, [0, 0, 0], [1, 1, 1], [0, 0, 0]),
    "failure_T1": (1, False, False, [-1], [0], [R1]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_numpy_labels_match_hand_values(name: str) -> None:
    length, success, terminal, reward, done, ret = CASES[name]
    out = labels.label_episode(length, success, terminal, LabelConfig())
    np.testing.assert_array_equal(out["reward"], np.array(reward, np.float32))
    np.testing.assert_array_equal(out["done"], np.array(done, bool))
    np.testing.assert_array_equal(out["mask"], 1.0 - np.array(done, np.float32))
    np.testing.assert_allclose(out["mc_return"], ret, rtol=0, atol=1e-6)
    assert out["reward"].dtype == np.float32 and out["mc_return"].dtype == np.float32


def _tf_traj(length: int, success: bool, terminal: bool) -> dict:
    import tensorflow as tf

    is_terminal = np.zeros(length, bool)
    if length:
        is_terminal[-1] = terminal
    return {"action": tf.zeros([length, 7]), "success": tf.constant(success),
            "is_terminal": tf.constant(is_terminal)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tensorflow_labels_match_hand_values(name: str) -> None:
    length, success, terminal, reward, done, ret = CASES[name]
    out = labels.label_trajectory(_tf_traj(length, success, terminal), LabelConfig())
    np.testing.assert_array_equal(out["reward"].numpy(), np.array(reward, np.float32))
    np.testing.assert_array_equal(out["done"].numpy(), np.array(done, bool))
    np.testing.assert_array_equal(out["mask"].numpy(), 1.0 - np.array(done, np.float32))
    np.testing.assert_allclose(out["mc_return"].numpy(), ret, rtol=0, atol=1e-5)


def test_infinite_horizon_failures_get_r_over_one_minus_gamma() -> None:
    cfg = LabelConfig(failure_return="infinite_horizon")
    cut_off = labels.label_episode(4, success=False, terminal=False, config=cfg)
    np.testing.assert_allclose(cut_off["mc_return"], [-50.0] * 4, rtol=1e-6)
    tf_cut_off = labels.label_trajectory(_tf_traj(4, False, False), cfg)
    np.testing.assert_allclose(tf_cut_off["mc_return"].numpy(), [-50.0] * 4, rtol=1e-6)
    # Terminal failures and successes keep their finite discounted returns.
    terminal = labels.label_episode(4, success=False, terminal=True, config=cfg)
    np.testing.assert_allclose(terminal["mc_return"], [R4, R3, R2, R1], atol=1e-6)
    tf_success = labels.label_trajectory(_tf_traj(5, True, False), cfg)
    np.testing.assert_allclose(tf_success["mc_return"].numpy(), [R2, R1, 0, 0, 0], atol=1e-6)


def test_mc_returns_equal_the_discounted_sum_and_respect_the_mask() -> None:
    rng = np.random.default_rng(0)
    reward = rng.choice([-1.0, 0.0], size=12)
    direct = [sum(G**k * reward[t + k] for k in range(12 - t)) for t in range(12)]
    np.testing.assert_allclose(labels.mc_returns(reward, np.ones(12), G), direct, atol=1e-5)
    np.testing.assert_allclose(labels.mc_returns_tf(reward, np.ones(12), G).numpy(), direct,
                               atol=1e-5)
    # mask = 0 at t = 5 cuts the bootstrap: G_5 = r_5.
    mask = np.ones(12)
    mask[5] = 0
    assert labels.mc_returns(reward, mask, G)[5] == pytest.approx(reward[5])


def test_label_config_names_the_bad_field() -> None:
    with pytest.raises(ValueError, match="success_horizon"):
        LabelConfig(success_horizon=0)
    with pytest.raises(ValueError, match="discount"):
        LabelConfig(discount=1.0)
    with pytest.raises(ValueError, match="failure_return"):
        LabelConfig(failure_return="zero")  # type: ignore[arg-type]


def test_sim_preset_rewards_only_the_step_that_reaches_the_goal() -> None:
    # simulated episodes end at the goal: with the paper's H = 3 the two steps before the
    # release would be terminal with reward 0 as well, however the arm moved in them
    from vgps_training.config import preset

    config = preset("sim", "data")
    reward, done = labels.rewards_and_done(5, True, True, config.data.labels.success_horizon)
    assert reward.tolist() == [-1, -1, -1, -1, 0]
    assert done.tolist() == [False, False, False, False, True]
    g = config.data.labels.discount
    np.testing.assert_allclose(labels.mc_returns(reward, 1.0 - done, g),
                               [-(1 + g + g**2 + g**3), -(1 + g + g**2), -(1 + g), -1.0, 0.0],
                               rtol=1e-6)
    assert preset("paper", "data").data.labels.success_horizon == 3


# A corrected success, T = 8, gamma = 0.98, reward 0 only on the goal step (H = 1): the policy
# acts at 0-2, the corrector takes over at 3-4, the policy again at 5, the corrector at 6-7.
TAKEOVER_IV = [0, 0, 0, 1, 1, 0, 1, 1]
FAIL = -1.0 / (1.0 - G)  # -50
H1 = LabelConfig(success_horizon=1)


def _takeover_expected() -> tuple[list, list, list, list]:
    # 2 and 5: the last autonomous steps before take-overs
    reward = [-1, -1, FAIL, -1, -1, FAIL, -1, 0]
    done = [0, 0, 1, 0, 0, 1, 0, 1]
    # -1 + 0.98 * -50 = -50: every step before step 5 chains into a failure value
    ret = [FAIL, FAIL, FAIL, FAIL, FAIL, FAIL, -1, 0]
    outcome = [False] * 6 + [True, True]
    return reward, done, ret, outcome


def test_steps_before_a_take_over_are_labelled_failures() -> None:
    reward, done, ret, outcome = _takeover_expected()
    iv = np.array(TAKEOVER_IV, bool)
    out = labels.label_episode(8, True, True, H1, interventions=iv)
    np.testing.assert_allclose(out["reward"], reward, rtol=1e-6)
    np.testing.assert_array_equal(out["done"], np.array(done, bool))
    np.testing.assert_allclose(out["mc_return"], ret, rtol=1e-6)
    assert out["outcome"].tolist() == outcome
    traj = {**_tf_traj(8, True, True), "is_intervention": iv}
    tf_out = labels.label_trajectory(traj, H1)
    np.testing.assert_allclose(tf_out["reward"].numpy(), reward, rtol=1e-6)
    np.testing.assert_array_equal(tf_out["done"].numpy(), np.array(done, bool))
    np.testing.assert_allclose(tf_out["mc_return"].numpy(), ret, rtol=1e-5)
    assert tf_out["outcome"].numpy().tolist() == outcome


def test_takeover_outcome_keeps_the_episode_label_and_no_interventions_change_nothing() -> None:
    iv = np.array(TAKEOVER_IV, bool)
    plain = labels.label_episode(8, True, True, LabelConfig())
    as_outcome = labels.label_episode(8, True, True, LabelConfig(takeover="outcome"),
                                      interventions=iv)
    for key in ("reward", "done", "mc_return", "outcome"):
        np.testing.assert_array_equal(as_outcome[key], plain[key])
    assert plain["outcome"].all()
    tf_none = labels.label_trajectory({**_tf_traj(8, True, True),
                                       "is_intervention": np.zeros(8, bool)}, LabelConfig())
    np.testing.assert_allclose(tf_none["mc_return"].numpy(), plain["mc_return"], rtol=1e-5)
    # an episode that starts under the corrector has no autonomous step before it
    first = labels.label_episode(3, True, True, H1, interventions=np.array([1, 0, 0]))
    assert not first["done"][0] and first["outcome"].all()
    # a failed, cut-off episode keeps -1/(1-gamma) throughout under the infinite-horizon rule
    cfg = LabelConfig(failure_return="infinite_horizon")
    failed = labels.label_episode(8, False, False, cfg, interventions=iv)
    np.testing.assert_allclose(failed["mc_return"], [FAIL] * 8, rtol=1e-6)
    tf_failed = labels.label_trajectory({**_tf_traj(8, False, False), "is_intervention": iv}, cfg)
    np.testing.assert_allclose(tf_failed["mc_return"].numpy(), [FAIL] * 8, rtol=1e-5)
    with pytest.raises(ValueError, match="takeover"):
        LabelConfig(takeover="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="interventions"):
        labels.label_episode(8, True, True, LabelConfig(), interventions=np.zeros(7, bool))
