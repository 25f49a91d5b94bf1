"""benchmarks/approach_gripper.py: the shares are computed as defined, on the states of
``vgps eval``'s own episodes, the same states for every critic."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first mujoco import

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from vgps.evaluation.runner import episode_seed, in_process_policy, load_steerer, run_episode
from vgps_widowx.sim import SimEnvConfig, WidowXSimEnv

ROOT = Path(__file__).resolve().parents[1]
TASK, K, SEED = "stack_blocks", 8, 870000


def _benchmark():
    spec = importlib.util.spec_from_file_location(
        "approach_gripper", ROOT / "benchmarks" / "approach_gripper.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_shares_follow_their_definitions():
    bench = _benchmark()
    close = [False, False, True, True]
    rows = [  # on the way: open rated higher, argmax open
        {"expert_closes": False, "close": close, "q": {"a": [-1.0, -2.0, -3.0, -3.0]}},
        # on the way: close rated higher on the mean, argmax closes
        {"expert_closes": False, "close": close, "q": {"a": [-5.0, -5.0, -1.0, -4.0]}},
        # on the way: open rated higher on the mean, yet the argmax closes (the maximum is
        # a close candidate): the two shares are not the same thing
        {"expert_closes": False, "close": close, "q": {"a": [-2.0, -2.0, -1.0, -9.0]}},
        # at the grasp: argmax closes
        {"expert_closes": True, "close": close, "q": {"a": [-3.0, -3.0, -1.0, -3.0]}},
    ]
    s = bench.summarize(rows, "a")
    assert (s["on_the_way"], s["at_grasp"]) == (3, 1)
    assert s["open_higher"] == pytest.approx(2 / 3)
    assert s["early_close"] == pytest.approx(2 / 3)
    assert s["close_at_grasp"] == 1.0
    assert bench.summarize(rows[:1], "a")["close_at_grasp"] is None


def test_states_come_from_the_steering_critics_own_episodes(tmp_path, critic_dir):
    bench = _benchmark()
    out = tmp_path / "res" / "approach_gripper"
    argv = ["--critic", str(critic_dir), "--critic", str(critic_dir), "--task", TASK,
            "--k", str(K), "--episodes", "2", "--seed", str(SEED), "--out", str(out),
            "--quiet"]
    assert bench.main(argv) == 0
    saved = json.loads((out.parent / "approach_gripper.json").read_text())
    assert saved["command"] in (out.parent / "approach_gripper.md").read_text()
    states = saved["states"]
    assert states, "two episodes at K = 8 give approach states"
    seeds = {episode_seed(SEED, TASK, i) for i in range(2)}
    for row in states:
        assert row["seed"] in seeds and len(row["close"]) == K
        assert 0 < sum(row["close"]) < K
        (q,) = set(map(tuple, row["q"].values()))  # one critic twice: the same scores
        assert len(q) == K
    first, second = saved["critics"]
    assert {k: v for k, v in first.items() if k != "critic"} == \
        {k: v for k, v in second.items() if k != "critic"}
    assert first["on_the_way"] + first["at_grasp"] == len(states)
    # The watching solver never steers: vgps eval's run_episode gives the same episodes, and
    # every recorded step lies inside them.
    env = WidowXSimEnv(SimEnvConfig(image_size=(64, 64)))
    try:
        for i in range(2):
            s = episode_seed(SEED, TASK, i)
            ep = run_episode(env, in_process_policy("sim"), TASK, i, s, K,
                             load_steerer(str(critic_dir), 0.0))
            assert all(r["step"] < ep.steps for r in states if r["seed"] == s)
    finally:
        env.close()


def test_bad_arguments_are_refused(tmp_path, critic_dir):
    bench = _benchmark()
    for argv in (["--critic", str(tmp_path / "none")],
                 ["--critic", str(critic_dir), "--task", "fly"],
                 ["--critic", str(critic_dir), "--k", "1"]):
        with pytest.raises(SystemExit):
            bench.main([*argv, "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x.md").exists()
