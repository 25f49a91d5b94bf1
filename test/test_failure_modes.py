"""benchmarks/failure_modes.py at small scale: the first alarm is the corrector's, the episode is
``vgps eval``'s (the watching corrector never steers), and the counts add up."""

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
TASK, K, SEED = "stack_blocks", 3, 540001


def _benchmark():
    spec = importlib.util.spec_from_file_location(
        "failure_modes", ROOT / "benchmarks" / "failure_modes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_summary_counts_first_alarms_apart_for_successes_and_failures():
    bench = _benchmark()
    rows = [{"success": False, "alarm": "beside"}, {"success": False, "alarm": "beside"},
            {"success": True, "alarm": "beside"}, {"success": True, "alarm": "none"},
            {"success": False, "alarm": "hold"}, {"success": False, "alarm": "hover"}]
    s = bench.summarize(rows)
    assert s["episodes"] == 6 and s["successes"] == 2
    assert s["failures_by_alarm"] == {"beside": 2, "early": 0, "hover": 1, "release": 0,
                                      "hold": 1, "none": 0}
    assert s["successes_by_alarm"] == {"beside": 1, "early": 0, "hover": 0, "release": 0,
                                       "hold": 0, "none": 1}


def test_episodes_are_the_critics_own_and_match_eval(tmp_path, critic_dir):
    bench = _benchmark()
    out = tmp_path / "res" / "failure_modes"
    argv = ["--critic", str(critic_dir), "--task", TASK, "--k", str(K), "--episodes", "2",
            "--seed", str(SEED), "--out", str(out), "--quiet"]
    assert bench.main(argv) == 0
    md = (out.parent / "failure_modes.md").read_text()
    saved = json.loads((out.parent / "failure_modes.json").read_text())
    assert saved["command"] in md and "| critic | success |" in md
    (row,) = saved["critics"]
    detail = row["episodes_detail"]
    assert [d["seed"] for d in detail] == [episode_seed(SEED, TASK, i) for i in range(2)]
    assert row["successes"] == sum(d["success"] for d in detail)
    assert sum(row["failures_by_alarm"].values()) + sum(row["successes_by_alarm"].values()) == 2
    for d in detail:
        assert d["alarm"] in bench.ALARMS
        assert (d["alarm_step"] is None) == (d["alarm"] == "none")
        if d["alarm_step"] is not None:
            assert 0 <= d["alarm_step"] < d["steps"]
    # The watching corrector never steers: vgps eval's run_episode gives the same episodes.
    env = WidowXSimEnv(SimEnvConfig(image_size=(64, 64)))
    try:
        for i, d in enumerate(detail):
            ep = run_episode(env, in_process_policy("sim"), TASK, i, d["seed"], K,
                             load_steerer(str(critic_dir), 0.0))
            assert (ep.steps, ep.success) == (d["steps"], d["success"])
    finally:
        env.close()


def test_bad_arguments_are_refused(tmp_path):
    bench = _benchmark()
    with pytest.raises(SystemExit):
        bench.main(["--critic", str(tmp_path / "none"), "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit):
        bench.main(["--critic", str(tmp_path), "--task", "fly", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x.md").exists()
