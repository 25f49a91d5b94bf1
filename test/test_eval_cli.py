"""``vgps eval`` and ``vgps collect`` end to end, in-process, at small scale."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first mujoco import

import json
import math

import numpy as np
import pytest

from vgps.cli.main import main
from vgps.evaluation.results import wilson_interval
from vgps.evaluation.rollouts import episode_strip, load_episode
from vgps.evaluation.runner import episode_seed

TASK = "carrot_on_plate"
SMALL = ["--task", TASK, "--episodes", "3", "--image-size", "48"]


def _eval(out, *extra):
    assert main(["eval", *SMALL, "--out", str(out), *extra]) == 0
    return json.loads((out / "results.json").read_text())


def _episodes(out):
    return [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "base"
    return out, _eval(out, "--seed", "3")


@pytest.fixture(scope="module")
def critic_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("critic") / "sim"
    assert main(["critic", "init", "--config", "sim", "--out", str(path)]) == 0
    return path


def test_results_schema(base_run):
    out, results = base_run
    assert list(results) == [TASK]
    r = results[TASK]
    assert set(r) == {"episodes", "successes", "success_rate", "ci95"}
    assert r["episodes"] == 3 and 0 <= r["successes"] <= 3
    assert r["success_rate"] == pytest.approx(r["successes"] / 3, abs=1e-4)
    lo, hi = r["ci95"]
    assert 0.0 <= lo <= r["success_rate"] <= hi <= 1.0
    table = (out / "results.md").read_text()
    assert f"| {TASK} | 3 | {r['successes']} |" in table
    assert "- K: 1" in table and "- critic: -" in table and "- seed: 3" in table
    lines = _episodes(out)
    assert [line["index"] for line in lines] == [0, 1, 2]
    assert [line["seed"] for line in lines] == [episode_seed(3, TASK, i) for i in range(3)]
    assert sum(line["success"] for line in lines) == r["successes"]
    assert all("q_mean" not in line for line in lines)


def test_same_seed_same_results(base_run, tmp_path):
    out, results = base_run
    again = _eval(tmp_path / "again", "--seed", "3")
    assert again == results
    assert _episodes(tmp_path / "again") == _episodes(out)


def test_different_seed_different_episodes(base_run, tmp_path):
    _eval(tmp_path / "other", "--seed", "4")
    seeds = {line["seed"] for line in _episodes(tmp_path / "other")}
    assert not seeds & {line["seed"] for line in _episodes(base_run[0])}


@pytest.mark.parametrize(("successes", "n"), [(0, 10), (5, 10), (10, 10), (1, 3), (36, 50)])
def test_wilson_interval(successes, n):
    lo, hi = wilson_interval(successes, n)
    p = successes / n
    assert 0.0 <= lo <= p <= hi <= 1.0
    assert hi - lo < 1.0
    # Symmetric: swapping successes and failures mirrors the interval.
    lo2, hi2 = wilson_interval(n - successes, n)
    assert lo == pytest.approx(1 - hi2) and hi == pytest.approx(1 - lo2)


def test_wilson_interval_known_value():
    lo, hi = wilson_interval(5, 10)  # textbook: 0.2366 .. 0.7634
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(4, 3)


def test_critic_steering_records_q(critic_dir, tmp_path):
    out = tmp_path / "vgps"
    _eval(out, "--critic", str(critic_dir), "--k", "4", "--beta", "0.5", "--episodes", "2",
          "--instruction", "place the carrot on the plate")
    lines = _episodes(out)
    assert len(lines) == 2
    for line in lines:
        assert math.isfinite(line["q_mean"])
        assert line["q_min"] <= line["q_mean"] <= line["q_max"]
        assert line["instruction"] == "place the carrot on the plate"
    table = (out / "results.md").read_text()
    assert "- K: 4" in table and "- beta: 0.5" in table
    assert "random-sim@" in table
    assert "- instruction_override: place the carrot on the plate" in table


def test_an_ensemble_built_on_the_command_line_steers_an_evaluation(critic_dir, tmp_path,
                                                                     capsys):
    other = tmp_path / "other"
    assert main(["critic", "init", "--config", "sim", "--seed", "1", "--out", str(other)]) == 0
    notes = tmp_path / "notes.json"
    notes.write_text(json.dumps({"lineage": "two random critics"}))
    ens = tmp_path / "ens"
    assert main(["critic", "ensemble", str(critic_dir), str(other), "--out", str(ens),
                 "--name", "pair", "--head-reduction", "mean", "--notes", str(notes)]) == 0
    capsys.readouterr()
    assert main(["critic", "info", str(ens)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "vgps-critic-ensemble" and info["critic_id"].startswith("pair@")
    assert [c["name"] for c in info["member_cards"]] == ["random-sim", "random-sim"]
    assert info["notes"] == {"lineage": "two random critics"}
    assert info["head_reduction"] == "mean" and info["reduction"] == "mean"
    out = tmp_path / "vgps"
    _eval(out, "--critic", str(ens), "--k", "4", "--episodes", "1")
    assert info["critic_id"] in (out / "results.md").read_text()
    assert all(math.isfinite(line["q_mean"]) for line in _episodes(out))
    # One member is not an ensemble.
    assert main(["critic", "ensemble", str(critic_dir), "--out", str(tmp_path / "one"),
                 "--name", "one"]) == 2
    assert "at least 2 members" in capsys.readouterr().err


def test_instruction_override_and_video(tmp_path):
    out = tmp_path / "para"
    _eval(out, "--episodes", "1", "--instruction", "move the carrot onto the plate", "--video")
    assert _episodes(out)[0]["instruction"] == "move the carrot onto the plate"
    videos = list((out / "videos").iterdir())
    assert [v.stem for v in videos] == [TASK] and videos[0].suffix in (".mp4", ".gif")
    assert videos[0].stat().st_size > 1000


def test_bad_arguments_fail_cleanly(tmp_path, capsys):
    assert main(["eval", "--task", "fly_to_moon", "--out", str(tmp_path / "x")]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert main(["eval", *SMALL, "--beta", "0.3", "--out", str(tmp_path / "y")]) == 2
    assert "beta" in capsys.readouterr().err
    assert main(["eval", *SMALL, "--critic", str(tmp_path / "none"),
                 "--out", str(tmp_path / "z")]) == 2
    assert "critic" in capsys.readouterr().err


def test_collect_writes_loadable_episodes(tmp_path):
    out = tmp_path / "data"
    argv = ["collect", "--task", TASK, "--episodes", "2", "--image-size", "32", "--out", str(out)]
    assert main(argv) == 0
    index = json.loads((out / "index.json").read_text())
    assert len(index["episodes"]) == 2
    assert index["summary"][TASK]["episodes"] == 2
    for entry in index["episodes"]:
        ep = load_episode(out / entry["file"])
        steps = ep["actions"].shape[0]
        assert steps == entry["steps"] >= 1
        assert ep["images"].shape == (steps + 1, 32, 32, 3) and ep["images"].dtype == np.uint8
        assert ep["states"].shape == (steps + 1, 7) and ep["states"].dtype == np.float32
        assert ep["actions"].dtype == np.float32
        assert ep["task"] == TASK and ep["instruction"] == "put carrot on plate"
        assert ep["success"] == entry["success"] and ep["seed"] == entry["seed"]
    strip = episode_strip(ep["images"], frames=4, size=16)
    assert strip.shape == (16, 64, 3)


def test_an_interpolated_critic_is_written_and_steers(critic_dir, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["critic", "init", "--config", "sim", "--seed", "1", "--out", str(other)]) == 0
    mid = tmp_path / "mid"
    assert main(["critic", "interpolate", str(other), str(critic_dir), "--weight", "0.3",
                 "--out", str(mid), "--name", "blend"]) == 0
    capsys.readouterr()
    assert main(["critic", "info", str(mid)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "blend" and info["training"]["interpolation"]["weight"] == 0.3
    critic_id = "blend@" + info["params"]["sha256"][:12]
    out = tmp_path / "vgps"
    _eval(out, "--critic", str(mid), "--k", "4", "--episodes", "1")
    assert critic_id in (out / "results.md").read_text()
    # A weight outside [0, 1]: a clear error, nothing written.
    assert main(["critic", "interpolate", str(other), str(critic_dir), "--weight", "2",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "weight" in capsys.readouterr().err and not (tmp_path / "bad").exists()
