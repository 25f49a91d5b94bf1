"""``vgps dataset collections``: the simulated runs behind a critic's data, with their seeds.

Pure tier: a real ``vgps collect`` run, the parent's collections from the shipped cards, and the
refusals. ROS tier: a real ``vgps up`` run on the simulator, recorded to a bag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vgps.cli.main import main
from vgps.flywheel.sim_collections import parent_records, run_records

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PREVIOUS = ROOT / "models" / "sim_critic_prev"
SHIPPED = ROOT / "models" / "sim_critic"


def _run(cmd: list[str], log: Path) -> None:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    with log.open("wb") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=600, env=env,
                              check=False)
    assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]


def test_a_collect_run_is_one_record_with_its_master_seed(tmp_path):
    run = tmp_path / "collect"
    _run([str(BIN / "vgps"), "collect", "--task", "spoon_on_towel", "--episodes", "2",
          "--policy", "sim", "--critic", str(SHIPPED), "--k", "3", "--seed", "4711",
          "--image-size", "32", "--out", str(run)], tmp_path / "collect.log")
    (record,) = run_records([run])
    index = json.loads((run / "index.json").read_text())
    assert record == {"name": run.as_posix(), "source": "vgps collect", "episodes": 2,
                      "seed": 4711, "k": 3, "steered_by": index["settings"]["critic"],
                      "tasks": ["spoon_on_towel"]}
    assert record["steered_by"].startswith("sim-critic@")

    out = tmp_path / "collections.json"
    assert main(["dataset", "collections", str(run), "--parent", str(PREVIOUS),
                 "--parent-member", "1", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written[0] == record and len(written) == 1 + len(parent_records(PREVIOUS, 1))


@pytest.mark.ros  # vgps up starts the graph's nodes
def test_a_simulated_up_run_gives_the_drivers_seed_and_the_bags_run_id(tmp_path):
    out, bag = tmp_path / "up", tmp_path / "bag"
    out.mkdir()
    _run([str(BIN / "vgps"), "up", f"critic:={SHIPPED}", "k:=4", "--task", "carrot_on_plate",
          "--episodes", "1", "--timeout", "300", "--out", str(out), "--quiet", "--record",
          str(bag), "--set", "arm_driver.image_size=64", "--set", "arm_driver.max_steps=6",
          "--set", "arm_driver.seed=4242"], out / "vgps_up.log")
    (record,) = run_records([out])
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())
    run_id = meta["rosbag2_bagfile_information"]["custom_data"]["vgps.run_id"]
    assert record == {"name": out.as_posix(), "source": "vgps up", "episodes": 1, "seed": 4242,
                      "k": 4, "critic": str(SHIPPED), "tasks": ["carrot_on_plate"],
                      "intervention": "none", "bag": str(bag), "run_id": run_id}


def _fake_up(run: Path, robot: str) -> Path:
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "arguments": {"robot": robot, "k": "10", "critic": "c", "record": ""},
        "episodes": [{"task": "t", "success": True}]}))
    (run / "params.yaml").write_text("arm_driver:\n  ros__parameters:\n    seed: 5\n")
    return run


def test_what_is_not_a_simulated_collection_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="robot:='real' has no simulator seed"):
        run_records([_fake_up(tmp_path / "real", "real")])
    assert run_records([_fake_up(tmp_path / "sim", "sim")])[0]["seed"] == 5
    (tmp_path / "sim_noseed").mkdir()
    (tmp_path / "sim_noseed" / "summary.json").write_text(
        json.dumps({"arguments": {"robot": "sim"}, "episodes": []}))
    with pytest.raises(ValueError, match=r"params\.yaml: no arm_driver seed"):
        run_records([tmp_path / "sim_noseed"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a `vgps collect` output"):
        run_records([tmp_path / "empty"])
    out = tmp_path / "c.json"
    assert main(["dataset", "collections", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "neither a `vgps collect` output" in capsys.readouterr().err and not out.exists()
    assert main(["dataset", "collections", "--out", str(out)]) == 2
    assert "give RUN directories, --parent, or both" in capsys.readouterr().err


def test_a_parents_collections_are_carried_and_marked():
    card = json.loads((PREVIOUS / "card.json").read_text())
    member1 = card["members"][1]["critic_id"]
    (notes,) = [m for m in card["notes"]["members"] if m["critic_id"] == member1]
    records = parent_records(PREVIOUS, member=1)
    assert [(r["name"], r["seed"], r["episodes"]) for r in records] == [
        (f"parent/{c['name']}", c["seed"], c["episodes"]) for c in notes["collections"]]
    assert {r["via"] for r in records} == {f"parent {member1}"}
    # every member's, each collection once (both members share the first five)
    both = parent_records(PREVIOUS)
    assert len(both) == len({(r["name"], r["seed"]) for r in both}) == len(records)
    with pytest.raises(ValueError, match=r"member 2; it has members 0\.\.1"):
        parent_records(PREVIOUS, member=2)
    with pytest.raises(ValueError, match="is a single critic: no member 0"):
        parent_records(SHIPPED, member=0)
    shipped = parent_records(SHIPPED)  # a fine-tune's own card lists them under data.collections
    listed = json.loads((SHIPPED / "card.json").read_text())["data"]["collections"]
    assert [r["seed"] for r in shipped] == [c["seed"] for c in listed]
