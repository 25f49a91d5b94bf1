"""benchmarks/steering_sim.py: the table, the relative change and the per-task verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(eval_dir: Path, name: str, rates: dict[str, int], critic: str | None,
         seed: int = 1000) -> None:
    out = eval_dir / name
    out.mkdir(parents=True)
    results = {t: {"episodes": 100, "successes": s, "success_rate": s / 100,
                   "ci95": [s / 100 - 0.1, s / 100 + 0.1]} for t, s in rates.items()}
    (out / "results.json").write_text(json.dumps(results))
    (out / "results.md").write_text("Settings:\n\n- policy: sim\n"
                                    + (f"- critic: {critic}\n" if critic else "")
                                    + f"- K: 10\n- seed: {seed}\n")


def test_table_compares_every_run_with_base(tmp_path):
    _run(tmp_path / "eval", "base", {"a": 40, "b": 50}, None)
    _run(tmp_path / "eval", "k10", {"a": 70, "b": 65}, "sim-critic@abc")
    _run(tmp_path / "eval", "k50", {"a": 80, "b": 45}, "sim-critic@abc")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "steering_sim.py"),
                           "--eval-dir", str(tmp_path / "eval"), "--out", str(tmp_path / "res"),
                           "--note", "Critic: a test."], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "res" / "steering_sim.md").read_text()
    assert "| task | base | k10 | k50 |" in md and "Critic: a test." in md
    assert "| a | 0.40 (0.30–0.50) | 0.70 (0.60–0.80) | 0.80 (0.70–0.90) |" in md
    assert "| **all** | **0.45** | **0.68** | **0.62** |" in md
    # (0.675 - 0.45) / 0.45 = +50 %; k50 loses task b
    assert ("- k10: 0.675 vs base 0.450 (+50.0% relative); better than base on 2 of 2 tasks; "
            "critic sim-critic@abc") in md
    assert "better than base on 1 of 2 tasks" in md
    saved = json.loads((tmp_path / "res" / "steering_sim.json").read_text())
    assert saved["mean_success"]["k50"] == 0.625
    assert saved["critics"] == {"k10": "sim-critic@abc", "k50": "sim-critic@abc"}
    assert saved["seed"] == 1000


def test_runs_on_other_seeds_are_refused(tmp_path):
    _run(tmp_path / "eval", "base", {"a": 40}, None)
    _run(tmp_path / "eval", "k10", {"a": 70}, "sim-critic@abc", seed=3000)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "steering_sim.py"),
                           "--eval-dir", str(tmp_path / "eval"), "--out", str(tmp_path / "res")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "must share one master seed" in proc.stderr
    assert "'base': '1000'" in proc.stderr and "'k10': '3000'" in proc.stderr
    assert not (tmp_path / "res").exists()


def test_missing_base_is_an_error(tmp_path):
    _run(tmp_path / "eval", "k10", {"a": 70}, "x")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "steering_sim.py"),
                           "--eval-dir", str(tmp_path / "eval"), "--out", str(tmp_path / "res")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "no base run" in proc.stderr
