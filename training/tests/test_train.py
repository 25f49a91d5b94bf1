"""End-to-end training runs on the real Bridge slice: both agents, export, exact resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import vgps_critic
from vgps_training.cli import main as train_main
from vgps_training.logger import read_metrics

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bridge_debug"
pytestmark = pytest.mark.skipif(not (DATA_DIR / "bridge_dataset" / "1.0.0").is_dir(),
                                reason=f"Bridge debug slice not found at {DATA_DIR}")


def _train(run_dir: Path, *overrides: str, tensorboard: bool = False) -> int:
    args = ["--config", "debug", "--data-dir", str(DATA_DIR), "--run-dir", str(run_dir)]
    if not tensorboard:
        args.append("--no-tensorboard")
    for item in overrides:
        args += ["--set", item]
    return train_main(args)


def _by_step(run_dir: Path, prefix: str = "train/") -> dict[int, dict[str, float]]:
    rows = {}
    for row in read_metrics(run_dir):  # later rows (after a resume) replace earlier ones
        values = {k: v for k, v in row.items() if k.startswith(prefix)}
        if values:
            rows[row["step"]] = values
    return rows


@pytest.mark.parametrize("agent", ["calql", "iql"])
def test_agents_train_on_the_bridge_slice_and_export(agent, tmp_path):
    assert _train(tmp_path / "run", f"agent={agent}", "steps=3", tensorboard=True) == 0
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    rows = _by_step(tmp_path / "run")
    assert sorted(rows) == [1, 2, 3]
    assert all(np.isfinite(v) for r in rows.values() for v in r.values())
    val = _by_step(tmp_path / "run", "val/")
    assert {"val/td_loss", "val/calibration_bias", "val/calibration_corr"} <= set(val[2])
    assert train_main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "critic")]) == 0
    critic = vgps_critic.load(tmp_path / "critic")
    assert critic.card.training["algorithm"] == agent and critic.card.training["steps"] == 3
    assert critic.card.training["seed"] == 0
    assert critic.card.language_encoder == "minilm-l6-v2"
    low = np.asarray(critic.action_space.low)
    assert low.shape == (7,) and low[6] == 0.0 and np.all(low[:6] < 0)
    image = np.zeros((32, 32, 3), np.uint8)
    q = critic.score(image, "put the cup in the sink", np.zeros((5, 7), np.float32))
    assert q.shape == (5,) and np.all(np.isfinite(q))


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    common = ["steps=30", "save_every=4", "log_every=1", "val_every=0"]
    assert _train(tmp_path / "straight", *common) == 0
    straight = _by_step(tmp_path / "straight")

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vgps_training.cli", "--config", "debug", "--data-dir",
           str(DATA_DIR), "--run-dir", str(killed), "--no-tensorboard"]
    for item in common:
        cmd += ["--set", item]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if max(_by_step(killed), default=0) >= 10:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = max(_by_step(killed))
    assert 10 <= interrupted_at < 30

    assert _train(killed, *common) == 0  # resumes from the last complete checkpoint
    resumed = _by_step(killed)
    assert sorted(resumed) == sorted(straight) == list(range(1, 31))
    for step in range(1, 31):
        for key, value in straight[step].items():
            assert resumed[step][key] == pytest.approx(value, rel=1e-6, abs=1e-7), (step, key)


def test_a_run_refuses_a_different_config(tmp_path, capsys):
    assert _train(tmp_path / "run", "steps=2") == 0
    assert _train(tmp_path / "run", "steps=2", "calql.cql_alpha=1.0") == 2
    assert "(calql differ)" in capsys.readouterr().err
    assert _train(tmp_path / "run", "steps=3", "calql.cql_alpha=1.0") == 2


def test_a_finished_run_trains_further_like_one_given_more_steps(tmp_path):
    common = ["log_every=1", "val_every=0", "save_every=100"]
    assert _train(tmp_path / "straight", "steps=6", *common) == 0
    assert _train(tmp_path / "extended", "steps=3", *common) == 0
    assert max(_by_step(tmp_path / "extended")) == 3
    assert _train(tmp_path / "extended", "steps=6", *common) == 0
    straight, extended = _by_step(tmp_path / "straight"), _by_step(tmp_path / "extended")
    assert sorted(extended) == sorted(straight) == list(range(1, 7))
    for step in range(1, 7):
        for key, value in straight[step].items():
            assert extended[step][key] == pytest.approx(value, rel=1e-6, abs=1e-7), (step, key)
    saved = json.loads((tmp_path / "extended" / "config.json").read_text())
    assert saved["steps"] == 6


def test_bad_override_is_reported(tmp_path, capsys):
    assert _train(tmp_path / "run", "calql.nonsense=1") == 2
    assert "has no field 'nonsense'" in capsys.readouterr().err


def test_dependent_fields_are_overridden_together():
    from vgps_training.config import apply_overrides, preset

    base = preset("sim", "data")
    config = apply_overrides(base, ["data.labels.discount=0.95", "calql.discount=0.95",
                                    "calql.cql_alpha=2", "steps=10"])
    assert config.data.labels.discount == config.calql.discount == 0.95
    assert config.calql.cql_alpha == 2.0 and isinstance(config.calql.cql_alpha, float)
    assert config.steps == 10 and config.critic == base.critic
    with pytest.raises(ValueError, match="must equal"):  # validated once, after all of them
        apply_overrides(base, ["calql.discount=0.95"])
    with pytest.raises(ValueError, match="has no field 'nope'"):
        apply_overrides(base, ["data.nope=1"])


@pytest.mark.parametrize("agent", ["calql", "iql"])
def test_bridge_plus_fractal_mixture_trains(agent, tmp_path):
    """The real Bridge slice mixed with a Fractal-schema dataset: two steps of each agent."""
    import dataclasses

    from vgps_training.config import preset
    from vgps_training.data.pipeline import DatasetSpec
    from vgps_training.data.synthetic import write_synthetic_fractal
    from vgps_training.trainer import train

    fractal = write_synthetic_fractal(tmp_path / "rlds", num_episodes=6,
                                      image_shape=(64, 80, 3))
    config = preset("debug", str(DATA_DIR))
    data = dataclasses.replace(
        config.data, cache_dir=str(tmp_path / "cache"),
        datasets=(*config.data.datasets, DatasetSpec(str(fractal), action_bounds="fractal")))
    config = dataclasses.replace(config, agent=agent, steps=2, val_every=0, data=data)
    metrics = train(config, tmp_path / "run", tensorboard=False, progress=False)
    assert np.isfinite(metrics["critic_loss"])
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert set(info["datasets"]) == {"bridge_dataset", "fractal20220817_data"}
    assert info["deploy_dataset"] == "bridge_dataset"
    assert info["datasets"]["fractal20220817_data"]["bounds"]["high"][1] == pytest.approx(
        22.09052849)


def test_a_closing_conservative_gap_is_reported_while_training(tmp_path, monkeypatch, caplog):
    import logging

    from vgps_training import gap_watch, trainer

    # The real watch on a real run, made to fire at the first log: the trainer must feed it.
    monkeypatch.setattr(trainer, "GapWatch",
                        lambda: gap_watch.GapWatch(window=1, threshold=float("inf")))
    with caplog.at_level(logging.WARNING, logger="vgps_training.gap_watch"):
        assert _train(tmp_path / "run", "steps=2", "log_every=1") == 0
    reported = [r.getMessage() for r in caplog.records if r.name == "vgps_training.gap_watch"]
    assert len(reported) == 1 and reported[0].startswith("step 1: the conservative gap")
