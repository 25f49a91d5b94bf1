"""benchmarks/flywheel_sim.py --merge: parts run one per K become one table and one decision."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from vgps.flywheel.compare_sim import SimCondition

ROOT = Path(__file__).resolve().parents[1]


def _benchmark():
    spec = importlib.util.spec_from_file_location("flywheel_sim",
                                                  ROOT / "benchmarks" / "flywheel_sim.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _part(k: int, new: list[bool], old: list[bool], release: list | None = None,
          seed: int = 7) -> dict:
    tasks = ("carrot_on_plate", "stack_blocks")
    conditions = [SimCondition(task, k, tuple(range(len(new))), tuple(new), tuple(old))
                  .summary(n_boot=200) for task in tasks]
    return {"command": f"part K={k}", "new": {"id": "sim-critic@aaaaaaaaaaaa"},
            "old": {"id": "sim-critic@bbbbbbbbbbbb"},
            "settings": {"margin": 0.05, "seed": seed, "episodes": len(new), "k": [k],
                         "sim_tasks": list(tasks)},
            "sim": {"conditions": conditions}, "decision": {}, "release_decision": release or []}


def test_parts_merge_into_one_table_and_one_decision(tmp_path):
    bench = _benchmark()
    better = [True] * 90 + [False] * 10
    worse = [True] * 60 + [False] * 40
    release = [{"critic_id": "sim-critic@bbbbbbbbbbbb", "mixed_release_steps": 0,
                "success": {"success_rate": 0.5}}]
    a = tmp_path / "p10.json"
    b = tmp_path / "p50.json"
    a.write_text(json.dumps(_part(10, better, worse, release)))
    # At K = 50 the new critic is the worse one: the merged decision must refuse.
    b.write_text(json.dumps(_part(50, worse, better)))
    out = tmp_path / "merged"
    assert bench.main(["--merge", str(a), str(b), "--out", str(out)]) == 0
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert [(c["task"], c["k"]) for c in merged["sim"]["conditions"]] == [
        ("carrot_on_plate", 10), ("stack_blocks", 10), ("carrot_on_plate", 50),
        ("stack_blocks", 50)]
    assert merged["settings"]["k"] == [10, 50]
    assert merged["decision"]["promote"] is False
    assert "K=50" in merged["decision"]["reason"] and "K=10" not in merged["decision"]["reason"]
    assert merged["release_decision"] == release
    assert merged["command"].startswith("part K=10; part K=50; ")
    text = (tmp_path / "merged.md").read_text()
    assert "| old K=10 | new K=10 |" in text and "| old K=50 |" in text and "REFUSE" in text
    # K = 10 alone is a promotion.
    assert bench.main(["--merge", str(a), "--out", str(tmp_path / "only10")]) == 0
    assert json.loads((tmp_path / "only10.json").read_text())["decision"]["promote"] is True


def test_parts_of_other_critics_or_seeds_are_refused(tmp_path):
    bench = _benchmark()
    runs = [True] * 10
    with pytest.raises(ValueError, match="seed"):
        bench.merge([_part(10, runs, runs), _part(50, runs, runs, seed=8)])
    other = _part(50, runs, runs)
    other["new"]["id"] = "sim-critic@cccccccccccc"
    with pytest.raises(ValueError, match="other critics"):
        bench.merge([_part(10, runs, runs), other])
    with pytest.raises(ValueError, match="twice"):
        bench.merge([_part(10, runs, runs), _part(10, runs, runs)])
