"""Reward labelling, TD masks and Monte-Carlo returns (the V-GPS / Cal-QL convention).

Rewards (paper, Appendix B): in a successful episode the last ``H = 3`` steps get reward 0 and
every other step -1; an episode labelled as a failure gets -1 throughout. Demonstration datasets
(Bridge, Fractal) are successful by definition; ``vgps_sim`` carries a per-episode label.

Done / mask: the last ``min(H, T)`` steps of a successful episode are terminal (``done``; the
goal is reached, nothing is bootstrapped after them), as in V-GPS's public data code
(``td_mask = 0`` there). A failed episode is terminal only at its last step and only when RLDS
marks it ``is_terminal``; otherwise it was cut off (time limit) and its last transition
bootstraps (its next observation is itself, see the pipeline). ``mask = 1 - done``.

Monte-Carlo return, per trajectory, with the value after the last step taken as 0::

    G_t = r_t + gamma * mask_t * G_{t+1},     G_T = 0

In a successful episode rewards are 0 wherever ``mask = 0``, so this equals the plain
discounted sum ``G_t = r_t + gamma * G_{t+1}`` to the end of the episode, exactly as the brief and
the V-GPS code define it. A cut-off failed episode has no terminal, and its truncated sum
(-(1 - gamma^(T - t)) / (1 - gamma)) over-estimates the return of a policy that keeps failing;
``failure_return="infinite_horizon"`` instead gives every step of such an episode
``r / (1 - gamma) = -1 / (1 - gamma)`` (-50 at gamma = 0.98), the convention of Cal-QL's own
reference code for episodes that never reach the goal. The default is the truncated sum.

Take-overs (deployment data, ``is_intervention`` per step): when a person or the simulation's
corrector takes control, the policy's steps that led there were heading into a failure, whatever
the episode's final outcome. With ``takeover="failure"`` (the default) the last autonomous step
before each take-over is terminal with reward ``-1 / (1 - gamma)``, the value of never reaching
the goal, so every step of that autonomous stretch gets that Monte-Carlo return and the TD target
does not bootstrap into the corrector's value. The steps from the take-over on keep the episode's
outcome. ``takeover="outcome"`` labels every step with the episode's outcome (the corrector's
save then credits the actions that needed saving). Each step also gets ``outcome``: whether its
return chain ends at the goal (the episode succeeded and no take-over comes later), which
validation ranks Q-values against.

The numpy functions are the reference; ``label_trajectory`` is the TensorFlow version the
pipeline maps over trajectories. Both are tested against hand-computed values.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

FAILURE_RETURNS = ("discounted", "infinite_horizon")
TAKEOVERS = ("failure", "outcome")


@dataclasses.dataclass(frozen=True)
class LabelConfig:
    """How rewards, terminals and Monte-Carlo returns are assigned."""

    success_horizon: int = 3  # H: the last H steps of a successful episode get reward 0
    discount: float = 0.98  # gamma of the Monte-Carlo return (the critic's discount)
    failure_return: Literal["discounted", "infinite_horizon"] = "discounted"  # module docstring
    takeover: Literal["failure", "outcome"] = "failure"  # steps before a take-over: see docstring

    def __post_init__(self) -> None:
        if not isinstance(self.success_horizon, int) or self.success_horizon < 1:
            raise ValueError(f"LabelConfig.success_horizon={self.success_horizon!r}: "
                             "must be an integer >= 1")
        if not 0.0 <= self.discount < 1.0:
            raise ValueError(f"LabelConfig.discount={self.discount!r}: must be in [0, 1)")
        if self.failure_return not in FAILURE_RETURNS:
            raise ValueError(f"LabelConfig.failure_return={self.failure_return!r}: "
                             f"choose from {FAILURE_RETURNS}")
        if self.takeover not in TAKEOVERS:
            raise ValueError(f"LabelConfig.takeover={self.takeover!r}: choose from {TAKEOVERS}")

    @property
    def failure_value(self) -> float:
        """``-1 / (1 - gamma)``: the return of an agent that never reaches the goal."""
        return -1.0 / (1.0 - self.discount)


def handoffs(interventions: np.ndarray) -> np.ndarray:
    """bool (T,): the autonomous steps immediately followed by an intervention step."""
    iv = np.asarray(interventions, bool)
    out = np.zeros_like(iv)
    out[:-1] = ~iv[:-1] & iv[1:]
    return out


def rewards_and_done(length: int, success: bool, terminal: bool,
                     success_horizon: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Rewards and terminal flags of one episode (numpy reference).

    Args:
        length: number of steps T (>= 0).
        success: whether the episode succeeded.
        terminal: whether RLDS marks the last step ``is_terminal`` (matters for failures only).
        success_horizon: H.

    Returns:
        ``(reward, done)``: float32 (T,) in {-1, 0} and bool (T,).
    """
    if length < 0:
        raise ValueError(f"length={length!r}: must be >= 0")
    t = np.arange(length)
    if success:
        done = t >= length - success_horizon
        reward = np.where(done, 0.0, -1.0).astype(np.float32)
    else:
        done = (t == length - 1) & bool(terminal)
        reward = np.full(length, -1.0, np.float32)
    return reward, done


def mc_returns(reward: np.ndarray, mask: np.ndarray, discount: float) -> np.ndarray:
    """Discounted returns to go ``G_t = r_t + discount * mask_t * G_{t+1}``, ``G_T = 0``.

    Args:
        reward: float (T,) rewards.
        mask: float or bool (T,); 0 where the step is terminal.
        discount: gamma.

    Returns:
        float32 (T,) returns (accumulated in float64).
    """
    reward = np.asarray(reward, np.float64)
    mask = np.asarray(mask, np.float64)
    out = np.zeros_like(reward)
    g = 0.0
    for t in range(reward.shape[0] - 1, -1, -1):
        g = reward[t] + discount * mask[t] * g
        out[t] = g
    return out.astype(np.float32)


def label_episode(length: int, success: bool, terminal: bool,
                  config: LabelConfig | None = None,
                  interventions: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Reward, done, mask, Monte-Carlo return and per-step outcome of one episode (numpy).

    Args:
        length: number of steps T.
        success: whether the episode succeeded.
        terminal: whether its last step is ``is_terminal``.
        config: the labelling settings (None: the defaults).
        interventions: bool (T,), True where a person or the corrector chose the action
            (None: none did).

    Returns:
        ``reward`` float32 (T,), ``done`` bool (T,), ``mask`` float32 (T,),
        ``mc_return`` float32 (T,), ``outcome`` bool (T,).
    """
    config = config or LabelConfig()
    reward, done = rewards_and_done(length, success, terminal, config.success_horizon)
    if interventions is None:
        interventions = np.zeros(length, bool)
    if np.shape(interventions) != (length,):
        raise ValueError(f"interventions has shape {np.shape(interventions)}, "
                         f"expected ({length},)")
    failed_later = np.zeros(length, bool)
    if config.takeover == "failure":
        handoff = handoffs(interventions)
        done = done | handoff
        reward = np.where(handoff, np.float32(config.failure_value), reward).astype(np.float32)
        failed_later = np.cumsum(handoff[::-1])[::-1] > 0
    mask = (~done).astype(np.float32)
    if not success and not terminal and config.failure_return == "infinite_horizon":
        ret = np.full(length, config.failure_value, np.float32)
    else:
        ret = mc_returns(reward, mask, config.discount)
    return {"reward": reward, "done": done, "mask": mask, "mc_return": ret,
            "outcome": np.logical_and(success, ~failed_later)}


def mc_returns_tf(reward: Any, mask: Any, discount: float) -> Any:
    """TensorFlow ``mc_returns``: float32 (T,) rewards and masks -> float32 (T,) returns."""
    import tensorflow as tf

    reward = tf.cast(reward, tf.float32)
    mask = tf.cast(mask, tf.float32)
    return tf.scan(lambda g, x: x[0] + discount * x[1] * g, (reward, mask),
                   initializer=tf.constant(0.0), reverse=True)


def label_trajectory(traj: dict[str, Any], config: LabelConfig | None = None) -> dict[str, Any]:
    """Adds ``reward``, ``done``, ``mask`` and ``mc_return`` to a standard trajectory (TF).

    Args:
        traj: a standard trajectory (``standardize``): uses ``action`` (T, A) for T,
            ``success`` (), ``is_terminal`` (T,) and, where present, ``is_intervention`` (T,).
        config: the labelling settings (None: the defaults).

    Returns:
        The trajectory with ``reward`` float32 (T,), ``done`` bool (T,), ``mask`` float32 (T,),
        ``mc_return`` float32 (T,) and ``outcome`` bool (T,) added.
    """
    import tensorflow as tf

    config = config or LabelConfig()
    n = tf.shape(traj["action"])[0]
    t = tf.range(n)
    success = tf.cast(traj["success"], tf.bool)
    terminal = tf.logical_and(n > 0, tf.reduce_any(tf.logical_and(
        tf.cast(traj["is_terminal"], tf.bool), tf.equal(t, n - 1))))
    goal = t >= n - config.success_horizon
    done = tf.where(success, goal, tf.logical_and(tf.equal(t, n - 1), terminal))
    reward = tf.where(tf.logical_and(success, goal), 0.0, -1.0)
    failed_later = tf.zeros([n], tf.bool)
    if config.takeover == "failure" and "is_intervention" in traj:
        iv = tf.cast(traj["is_intervention"], tf.bool)
        handoff = tf.logical_and(tf.logical_not(iv), tf.concat([iv[1:], [False]], 0)[:n])
        done = tf.logical_or(done, handoff)
        reward = tf.where(handoff, tf.constant(config.failure_value, tf.float32), reward)
        failed_later = tf.cumsum(tf.cast(handoff, tf.int32), reverse=True) > 0
    mask = 1.0 - tf.cast(done, tf.float32)
    ret = mc_returns_tf(reward, mask, config.discount)
    if config.failure_return == "infinite_horizon":
        cut_off_failure = tf.logical_not(tf.logical_or(success, terminal))
        ret = tf.where(cut_off_failure, tf.fill([n], config.failure_value), ret)
    outcome = tf.logical_and(success, tf.logical_not(failed_later))
    return {**traj, "reward": reward, "done": done, "mask": mask, "mc_return": ret,
            "outcome": outcome}
