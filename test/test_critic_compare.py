"""``vgps critic compare``: interval math, the decision, offline measures on a real bag, and the
simulation end to end (a deliberately damaged critic is refused; an identical one is promoted)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first mujoco import

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

import vgps_critic
from vgps.cli.main import main
from vgps.flywheel.compare import CompareConfig, compare, decide
from vgps.flywheel.compare_offline import offline_metrics, score_episode
from vgps.flywheel.compare_promote import backup_path, promote
from vgps.flywheel.compare_sim import SimCondition, collection_seeds
from vgps.flywheel.compare_stats import (
    auc,
    paired_auc_difference,
    paired_bootstrap_interval,
    wilson_interval,
)
from vgps.flywheel.episodes import read_episodes
from vgps.flywheel.labels import Label, save_label
from vgps_critic.checkpoint import load_checkpoint, save_checkpoint
from vgps_critic.ensemble import save_ensemble
from vgps_critic.steering import resize_image

SHIPPED = "models/sim_critic"
PREVIOUS = "models/sim_critic_prev"  # the ensemble the flywheel's critic replaced
REAL_BAG = "docs/real_arm_check/bag"
TASK = "eggplant_in_basket"


def _negate(src: str | Path, dst: Path) -> Path:
    """A copy of critic ``src`` with every head's last layer negated (each head's Q flips)."""
    card, params = load_checkpoint(src)
    params = jax.tree_util.tree_map(np.asarray, params)
    params["Dense_0"] = {name: -value for name, value in params["Dense_0"].items()}
    save_checkpoint(dst, dataclasses.replace(card, name="negated"), params)
    return dst


@pytest.fixture(scope="module")
def negated(tmp_path_factory):
    """The previous critic (an ensemble, mean of every head) damaged: Q_damaged = -Q_previous."""
    root = tmp_path_factory.mktemp("damaged")
    members = [_negate(f"{PREVIOUS}/members/{i}", root / f"m{i}") for i in (0, 1)]
    save_ensemble(root / "critic", members, "negated", head_reduction="mean")
    return root / "critic"


@pytest.fixture(scope="module")
def damaged_shipped(tmp_path_factory):
    """The shipped critic (a single network, min of its heads) with its heads negated: it picks
    the candidates whose best head rates them lowest."""
    assert not (Path(SHIPPED) / "members").exists(), "the shipped critic is a single network"
    return _negate(SHIPPED, tmp_path_factory.mktemp("damaged_shipped") / "critic")


# -- interval math, hand-computed --------------------------------------------------------------
def test_wilson_hand_computed():
    # 7/10: centre (0.7 + 1.92^2/20) / (1 + 1.92^2/10) etc.; values from the closed form.
    lo, hi = wilson_interval(7, 10)
    assert lo == pytest.approx(0.3968, abs=1e-4) and hi == pytest.approx(0.8922, abs=1e-4)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


@pytest.mark.parametrize(("diffs", "expected"), [
    ([0, 0, 0, 0], (0.0, 0.0)),      # identical outcomes: every resample is 0
    ([-1, -1, -1], (-1.0, -1.0)),    # always worse
    ([1, 0], (0.0, 1.0)),            # resample means 0 (p 1/4), 0.5 (1/2), 1 (1/4)
])
def test_paired_bootstrap_hand_computed(diffs, expected):
    lo, hi = paired_bootstrap_interval(diffs)
    assert (lo, hi) == pytest.approx(expected, abs=1e-9)


def test_paired_bootstrap_one_loss_in_eight_is_not_shown_harmless():
    # P(a resample of 8 pairs holds the one loss) = 1 - (7/8)^8 = 0.66 > 2.5 %: the lower bound
    # is below 0, the upper bound is 0 (no resample is positive).
    lo, hi = paired_bootstrap_interval([-1] + [0] * 7)
    assert lo < 0 and hi == 0.0
    with pytest.raises(ValueError, match="no pairs"):
        paired_bootstrap_interval([])
    with pytest.raises(ValueError, match="n_boot"):
        paired_bootstrap_interval([1], n_boot=5)


def test_auc_hand_computed():
    # pairs (0.9 > 0.1), (0.9 > 0.4), (0.4 > 0.1), (0.4 = 0.4 counts 1/2): 3.5 / 4
    assert auc([0.9, 0.4], [0.1, 0.4]) == 0.875
    assert auc([1.0], [2.0]) == 0.0
    diff, lo, hi = paired_auc_difference([1.0], [0.0], [0.0], [1.0], n_boot=200)
    assert (diff, lo, hi) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="successes and failures"):
        auc([], [1.0])


def test_sim_condition_summary_counts():
    cond = SimCondition("t", 10, (1, 2, 3, 4), (True, True, False, False),
                        (True, False, True, True))
    s = cond.summary(n_boot=2000)
    assert s["pairs"] == {"both": 1, "new_only": 1, "old_only": 2, "neither": 0}
    assert s["difference"] == pytest.approx(-0.25)
    assert s["new"]["ci95"] == pytest.approx(list(wilson_interval(2, 4)))
    lo, hi = s["difference_ci95"]
    assert -1.0 <= lo < s["difference"] < hi <= 1.0
    with pytest.raises(ValueError, match="one outcome per seed"):
        SimCondition("t", 1, (1, 2), (True,), (True, False))


# -- the decision ------------------------------------------------------------------------------
def _cond(task, diff, lo, episodes=400):
    return {"task": task, "k": 10, "difference": diff, "difference_ci95": [lo, 0.5],
            "episodes": episodes}


def test_decide_rules():
    assert not decide(None, None).promote
    assert "no evidence" in decide(None, None).reason
    ok = decide([_cond("a", 0.1, 0.0), _cond("b", 0.0, 0.0)], None)
    assert ok.promote and len(ok.checks) == 2
    bad = decide([_cond("a", 0.3, 0.05), _cond("b", -0.1, -0.2)], None)
    assert not bad.promote and "sim b K=10" in bad.reason and "sim a" not in bad.reason
    assert decide([_cond("b", -0.1, -0.2)], None, margin=0.25).promote
    unavailable = {"available": False, "why": "none"}
    offline = {"auc": {"available": True, "difference": -0.05, "difference_ci95": [-0.3, 0.2]},
               "interventions": unavailable}
    # with the simulation the offline point difference is tested, alone its lower bound
    assert not decide([_cond("a", 0.0, 0.0)], offline, margin=0.01).promote
    assert decide([_cond("a", 0.0, 0.0)], offline, margin=0.1).promote
    assert not decide(None, offline, margin=0.1).promote
    # the rule of three: 40 pairs that all agree cannot show a difference above -0.05
    few = decide([_cond("a", 0.0, 0.0, episodes=40)], None)
    assert not few.promote and "40 pairs are too few" in few.reason and "need >= 60" in few.reason
    assert decide([_cond("a", 0.0, 0.0, episodes=60)], None).promote
    worse = decide([_cond("a", -0.3, -0.4, episodes=40)], None)  # the bound is the reason
    assert worse.reason.endswith("sim a K=10: lower bound -0.400 < -0.050")
    assert not decide([_cond("a", 0.0, 0.0, episodes=10**6)], None, margin=0.0).promote
    assert decide([_cond("a", 0.5, 0.1, episodes=10)], None, margin=0.0).promote  # shown better
    nothing = decide(None, {"auc": unavailable, "interventions": unavailable})
    assert not nothing.promote and "no evidence" in nothing.reason and len(nothing.notes) == 2


def test_no_evidence_cli_refuses(tmp_path, negated):
    report = tmp_path / "report"
    assert main(["critic", "compare", str(negated), SHIPPED, "--report", str(report)]) == 1
    data = json.loads((report / "report.json").read_text())
    assert data["decision"]["promote"] is False and data["sim"] is None
    assert "REFUSED" in (report / "report.md").read_text()
    assert main(["critic", "compare", str(negated), str(tmp_path / "missing")]) == 2


# -- offline on the real-arm bag ---------------------------------------------------------------
def _hand_scores(critic, episode):
    """Mean Q of the executed first actions, scored directly (not through compare)."""
    qs = []
    for step in episode.steps:
        image = resize_image(step.image, critic.image_size)
        q = critic.q(critic.encode(image, critic.embed(episode.instruction)),
                     np.asarray(step.action, np.float32)[None])
        qs.append(float(q[0]))
    return float(np.mean(qs))


@pytest.mark.ros  # reading a bag deserialises its messages with rclpy
def test_offline_on_labelled_real_bag(tmp_path, negated):
    bag = tmp_path / "bag"
    shutil.copytree(REAL_BAG, bag)
    episodes = read_episodes(bag).episodes
    old = vgps_critic.load(PREVIOUS)
    scores = [_hand_scores(old, ep) for ep in episodes]
    best = int(np.argmax(scores))
    for i, ep in enumerate(episodes):  # the deployed critic's best-scored episode succeeded
        save_label(bag, ep.key, Label("success" if i == best else "failure"))
    report = tmp_path / "report"
    code = main(["critic", "compare", str(negated), PREVIOUS, "--bags", str(bag),
                 "--report", str(report), "--quiet"])
    data = json.loads((report / "report.json").read_text())
    off = data["offline"]
    assert off["episodes"] == {"total": 3, "success": 1, "failure": 2, "unknown": 0,
                               "steps": sum(len(e.steps) for e in episodes),
                               "steps_without_frame": 0}
    a = off["auc"]
    assert a["successes"] == 1 and a["failures"] == 2
    assert a["episode_scores"]["old"]["success"] == pytest.approx([scores[best]], rel=1e-5)
    assert sorted(a["episode_scores"]["old"]["failure"]) == pytest.approx(
        sorted(s for i, s in enumerate(scores) if i != best), rel=1e-5)
    # Q_new = -Q_old: the scores flip sign, the ranking inverts, every argmax changes
    assert a["episode_scores"]["new"]["success"] == pytest.approx([-scores[best]], rel=1e-4)
    assert (a["old"], a["new"], a["difference"]) == (1.0, 0.0, -1.0)
    ch = off["choices"]
    assert ch["decided_steps"] == off["episodes"]["steps"] and ch["fraction"] == 1.0
    assert off["interventions"]["available"] is False  # the real-arm run had none
    assert code == 1 and data["decision"]["promote"] is False
    assert [c["name"] for c in data["decision"]["checks"]] == ["offline AUC"]
    text = (report / "report.md").read_text()
    assert "| 0.000 | 1.000 | -1.000" in text
    assert f"vgps critic compare {negated} {PREVIOUS} --bags {bag} --margin 0.05" in text


@pytest.mark.ros
def test_intervention_agreement(negated):
    episode = read_episodes(REAL_BAG).episodes[0]
    steps = episode.steps[:6]
    for i in (1, 4):  # a person took over at two steps (the executed action stays recorded)
        steps[i] = dataclasses.replace(steps[i], reason="intervention", intervened=True, index=-1)
    episode = dataclasses.replace(episode, steps=steps)
    old, new = vgps_critic.load(PREVIOUS), vgps_critic.load(negated)
    old_scores, new_scores = score_episode(old, episode), score_episode(new, episode)
    expected = {}
    for name, critic in (("old", old), ("new", new)):
        wins = []
        for i in (1, 4):
            image = resize_image(steps[i].image, critic.image_size)
            q = critic.q(critic.encode(image, critic.embed(episode.instruction)),
                         np.concatenate([steps[i].candidates, steps[i].action[None]]))
            wins.append(bool(q[-1] > q[:-1].max()))
        expected[name] = wins
    m = offline_metrics([(None, new_scores, old_scores)], n_boot=500)
    iv = m["interventions"]
    assert iv["steps"] == 2
    assert iv["new_wins"] == sum(expected["new"]) and iv["old_wins"] == sum(expected["old"])
    assert m["choices"]["decided_steps"] == 4 and m["auc"]["available"] is False
    assert m["auc"]["unknown_outcome"] == 1


# -- simulation end to end ---------------------------------------------------------------------
def test_damaged_critic_is_refused_in_simulation(tmp_path, damaged_shipped):
    old_before = sorted(p.relative_to(SHIPPED) for p in Path(SHIPPED).rglob("*"))
    report = tmp_path / "report"
    code = main(["critic", "compare", str(damaged_shipped), SHIPPED, "--sim-eval", TASK,
                 "--episodes", "8", "--k", "8", "--image-size", "64", "--promote",
                 "--report", str(report), "--quiet"])
    assert code == 1
    data = json.loads((report / "report.json").read_text())
    (cond,) = data["sim"]["conditions"]
    assert cond["episodes"] == 8 and cond["k"] == 8
    assert cond["difference"] < 0 and cond["difference_ci95"][0] < 0
    assert cond["pairs"]["old_only"] > cond["pairs"]["new_only"]
    assert data["decision"]["promote"] is False and data["promotion"] is None
    assert f"sim {TASK} K=8" in data["decision"]["reason"]
    # OLD untouched: same files, same id, no backup written
    after = sorted(p.relative_to(SHIPPED) for p in Path(SHIPPED).rglob("*"))
    assert after == old_before
    assert vgps_critic.load(SHIPPED).critic_id == data["old"]["id"]
    assert not list(Path("models").glob("sim_critic.prev-*"))


def test_identical_critic_is_promoted_with_files_moved(tmp_path):
    old = tmp_path / "deployed" / "critic"
    new = tmp_path / "candidate"
    shutil.copytree(SHIPPED, old)
    shutil.copytree(SHIPPED, new)
    (new / "marker.txt").write_text("candidate\n")  # tells the copies apart; not a checkpoint file
    old_id = vgps_critic.load(old).critic_id
    # 4 pairs show at best a difference above -3/4 (the rule of three), hence the margin
    result = compare(CompareConfig(new=new, old=old, sim_tasks=(TASK,), episodes=4, ks=(4,),
                                   image_size=64, margin=0.75, promote=True), progress=False)
    (cond,) = result["sim"]["conditions"]
    assert cond["pairs"]["new_only"] == cond["pairs"]["old_only"] == 0
    assert cond["difference_ci95"] == [0.0, 0.0]
    assert result["decision"]["promote"] is True
    previous = old.with_name(f"critic.prev-{old_id}")
    assert result["promotion"]["previous"] == str(previous.absolute())
    assert (old / "marker.txt").read_text() == "candidate\n"  # NEW now at OLD's path
    assert previous.is_dir() and not (previous / "marker.txt").exists()  # OLD kept
    assert vgps_critic.load(previous).critic_id == old_id
    assert new.is_dir()  # NEW itself stays
    assert not [p for p in old.parent.iterdir() if p.name.startswith(".")]  # no staging left
    report = new.with_name("candidate.compare")
    assert (report / "report.md").is_file() and (report / "report.json").is_file()


def test_promote_numbered_backup_and_overlap(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(SHIPPED, old)
    shutil.copytree(SHIPPED, new)
    old_id = vgps_critic.load(old).critic_id
    taken = backup_path(old, old_id)
    taken.mkdir()
    assert backup_path(old, old_id).name == f"old.prev-{old_id}.1"
    moved = promote(new, old)
    assert moved.previous.name == f"old.prev-{old_id}.1" and old.is_dir()
    with pytest.raises(ValueError, match="overlap"):
        promote(old, old)


def test_collection_seeds_are_refused(negated):
    seeds = collection_seeds(PREVIOUS)
    assert {0, 5000, 7000, 11000, 13000, 15010, 15050} <= seeds
    with pytest.raises(ValueError, match="seed 5000 was used"):
        compare(CompareConfig(new=negated, old=PREVIOUS, sim_tasks=(TASK,), episodes=1,
                              seed=5000, report=negated.parent / "r"), progress=False)
