"""benchmarks/release_decision.py at small scale: output structure, consistent counts, and the
same episode as ``vgps eval``'s :func:`run_episode`."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first mujoco import

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from vgps.evaluation.runner import episode_seed, in_process_policy, load_steerer, run_episode
from vgps_widowx.sim import SimEnvConfig, WidowXSimEnv

ROOT = Path(__file__).resolve().parents[1]
TASK, K, SEED = "carrot_on_plate", 4, 3000


def _benchmark():
    spec = importlib.util.spec_from_file_location(
        "release_decision", ROOT / "benchmarks" / "release_decision.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_counts_are_consistent_and_episodes_match_eval(tmp_path, critic_dir):
    bench = _benchmark()
    out = tmp_path / "res" / "release_decision"
    argv = ["--critic", str(critic_dir), "--critic", str(critic_dir), "--task", TASK,
            "--k", str(K), "--episodes", "1", "--seed", str(SEED), "--out", str(out), "--quiet"]
    assert bench.main(argv) == 0
    md = (out.parent / "release_decision.md").read_text()
    saved = json.loads((out.parent / "release_decision.json").read_text())
    assert saved["command"].startswith("MUJOCO_GL=egl python benchmarks/release_decision.py ")
    assert saved["command"] in md and "| critic | success |" in md
    assert saved["settings"] == {"task": TASK, "K": K, "episodes": 1, "seed": SEED,
                                 "image_size": 64, "beta": 0.0, "policy": "sim",
                                 "decision": "release", "release_phases": ["release"],
                                 "open_at": 0.5}
    rows = saved["critics"]
    assert len(rows) == 2 and md.count(f"| {critic_dir} (`") == 2
    for row in rows:
        n = row["mixed_release_steps"]
        assert 0 <= n <= row["release_steps"] <= row["steps"] <= 60
        assert [e["index"] for e in row["episodes"]] == [0]
        assert row["episodes"][0]["seed"] == episode_seed(SEED, TASK, 0)
        assert row["steps"] == sum(e["steps"] for e in row["episodes"])
        assert row["release_steps"] == sum(e["release_steps"] for e in row["episodes"])
        assert row["success"]["episodes"] == 1
        assert len(row["mixed_steps"]) == n and row["chose_hold"] <= n
        for m in row["mixed_steps"]:
            assert m["n_open"] >= 1 and m["n_hold"] >= 1 and m["n_open"] + m["n_hold"] == K
            assert m["chose"] in ("open", "hold")
            assert np.isfinite(m["q_open"]) and np.isfinite(m["q_hold"])
        if n:
            lo, hi = row["chose_hold_ci95"]
            assert lo <= row["chose_hold_fraction"] <= hi
            assert 0 <= row["open_q_higher_fraction"] <= 1
        else:
            assert row["chose_hold_fraction"] is None and row["chose_hold_ci95"] is None
        if row["release_steps"]:
            assert 0 <= row["policy_open_fraction"] <= 1
    # The same critic on the same seeds: the same episode, step for step.
    first, second = ({k: v for k, v in r.items() if k != "critic"} for r in rows)
    assert first == second

    # The benchmark's loop is vgps eval's: run_episode gives the same episode.
    env = WidowXSimEnv(SimEnvConfig(image_size=(64, 64)))
    try:
        ep = run_episode(env, in_process_policy("sim"), TASK, 0, episode_seed(SEED, TASK, 0), K,
                         load_steerer(str(critic_dir), 0.0))
    finally:
        env.close()
    assert (ep.steps, ep.success) == (rows[0]["episodes"][0]["steps"],
                                      rows[0]["episodes"][0]["success"])


def test_release_step_bookkeeping_by_hand():
    bench = _benchmark()
    run = bench.CriticRun(critic="c", critic_id="c@0")
    chunks = np.zeros((4, 1, 7), np.float32)
    chunks[:, 0, 6] = [1.0, 0.0, 0.5, 0.49]  # open, hold, open (>= 0.5), hold
    q = np.array([1.0, 4.0, 3.0, 0.0])
    bench._count_release(run, 0, 7, chunks, q, choice=1)  # argmax 1: hold
    bench._count_release(run, 0, 8, chunks, q, choice=2)  # open chosen
    chunks[:, 0, 6] = 0.0
    bench._count_release(run, 0, 9, chunks, q, choice=0)  # all hold: not mixed
    run.steps, run.episodes = 10, [{"index": 0, "seed": 1, "success": True, "steps": 10,
                                    "release_steps": 3}]
    assert run.mixed[0] == bench.MixedStep(episode=0, step=7, n_open=2, n_hold=2, chose="hold",
                                           q_open=2.0, q_hold=2.0)
    assert run.mixed[1].chose == "open" and len(run.mixed) == 2
    s = run.summary()
    assert (s["release_steps"], s["mixed_release_steps"], s["chose_hold"]) == (3, 2, 1)
    assert s["chose_hold_fraction"] == 0.5 and s["open_q_higher_fraction"] == 0.0
    assert s["policy_open_fraction"] == round(4 / 12, 4)
    assert s["executed_open_fraction"] == round(1 / 3, 4)
    assert s["mean_q_gap_open_minus_hold"] == 0.0 and s["success"]["successes"] == 1


def test_the_grasp_decision_counts_steps_at_the_grasp_pose(tmp_path, critic_dir):
    bench = _benchmark()
    out = tmp_path / "grasp_decision"
    argv = ["--decision", "grasp", "--critic", str(critic_dir), "--task", "stack_blocks",
            "--k", str(K), "--episodes", "2", "--seed", str(SEED), "--out", str(out), "--quiet"]
    assert bench.main(argv) == 0
    md = (tmp_path / "grasp_decision.md").read_text()
    saved = json.loads((tmp_path / "grasp_decision.json").read_text())
    assert md.startswith("# Grasp decision at the grasp pose") and "chose to close" in md
    assert saved["settings"]["decision"] == "grasp"
    assert saved["settings"]["release_phases"] == ["grasp"]
    (row,) = saved["critics"]
    assert row["release_steps"] == sum(e["release_steps"] for e in row["episodes"])
    assert all(0 <= e["release_steps"] <= e["steps"] for e in row["episodes"])
    assert len(row["mixed_steps"]) == row["mixed_release_steps"] <= row["release_steps"]
