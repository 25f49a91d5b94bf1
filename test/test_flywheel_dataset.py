"""Bags -> episodes -> labels -> the deployment dataset (``vgps dataset build``).

Pure tier: the labels sidecar, outcomes, the store's arrays. ROS tier (bags are deserialised with
rclpy): the real-arm bag and cut copies of it, and a sim run recorded with ``vgps up --record``
whose dataset must hold exactly what the bag recorded. TensorFlow reads the written dataset in a
subprocess (TensorFlow and MuJoCo's EGL renderer must not share a process).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vgps.flywheel.dataset import build_dataset, episode_arrays, load_index
from vgps.flywheel.episodes import Episode, EpisodeStep
from vgps.flywheel.labels import Label, LabelError, labels_path, load_labels, save_label

ROOT = Path(__file__).resolve().parents[1]
REAL_BAG = ROOT / "docs" / "real_arm_check" / "bag"
BIN = Path(sys.executable).parent
TOPICS = ("/vgps/selected", "/vgps/scored", "/camera/image_raw")
ros = pytest.mark.ros


def _episode(key="run/0000", success=None, steps=3, k=4) -> Episode:
    rng = np.random.default_rng(0)
    made = [EpisodeStep(step=i, stamp_ns=1000 + i, image=rng.integers(0, 255, (8, 6, 3), np.uint8),
                        actions=rng.normal(size=(2, 7)).astype(np.float32), reason="argmax",
                        intervened=i == 1, index=i % k, q_selected=float(i),
                        candidates=rng.normal(size=(k, 7)).astype(np.float32),
                        q_values=None if i == 2 else rng.normal(size=k).astype(np.float32),
                        joints=None) for i in range(steps)]
    return Episode(key, Path("bag"), key.split("/")[0], int(key.split("/")[1]), "task", "do it",
                   "timeout", success, made, True)


def test_labels_sidecar_round_trip_keeps_other_episodes(tmp_path):
    (bag := tmp_path / "run1").mkdir()
    assert labels_path(bag) == tmp_path / "run1.labels.json"
    assert load_labels(bag) == {}
    save_label(bag, "r/0000", Label("success"))
    path = save_label(bag, "r/0001", Label("failure", failed_at_step=7))
    save_label(bag, "r/0000", Label("skip", labelled_at="2026-01-01T00:00:00+00:00"))
    data = json.loads(path.read_text())
    assert data["format"] == "vgps-labels/1" and data["bag"] == "run1"
    assert data["episodes"]["r/0001"]["failed_at_step"] == 7
    labels = load_labels(bag)
    assert labels == load_labels(path)
    assert labels["r/0000"] == Label("skip", None, "2026-01-01T00:00:00+00:00")
    assert labels["r/0001"].outcome == "failure" and labels["r/0001"].labelled_at[:2] == "20"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1", "run1.labels.json"]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"outcome": "great"}, "'great'"), ({"outcome": "failure", "failed_at_step": -1}, "-1"),
    ({"outcome": "success", "failed_at_step": 3}, "only a failure"),
    ({"outcome": "failure", "failed_at_step": True}, "True")])
def test_bad_labels_are_refused_naming_the_value(kwargs, match):
    with pytest.raises(LabelError, match=match):
        Label(**kwargs)


def test_a_bad_sidecar_is_reported_and_left_alone(tmp_path):
    path = tmp_path / "run1.labels.json"
    path.write_text(json.dumps({"format": "other/2", "episodes": {}}))
    with pytest.raises(LabelError, match="other/2"):
        load_labels(tmp_path / "run1")
    with pytest.raises(LabelError, match="other/2"):
        save_label(tmp_path / "run1", "r/0000", Label("success"))
    assert json.loads(path.read_text())["format"] == "other/2"
    path.write_text(json.dumps({"format": "vgps-labels/1", "episodes": {"k": {"outcome": "x"}}}))
    with pytest.raises(LabelError, match="'k'"):
        load_labels(path)
    with pytest.raises(LabelError, match="key"):
        save_label(tmp_path / "run2", " ", Label("success"))


def test_a_persons_label_wins_over_the_robot():
    from vgps.flywheel.labels import episode_outcome

    sim_failed = _episode(success=False)
    assert episode_outcome(sim_failed, {}) == (False, "robot")
    assert episode_outcome(sim_failed, {"run/0000": Label("success")}) == (True, "person")
    assert episode_outcome(sim_failed, {"run/0000": Label("skip")}) == (None, "skip")
    assert episode_outcome(sim_failed, {"run/0001": Label("success")}) == (False, "robot")
    real = _episode(success=None)
    assert episode_outcome(real, {}) == (None, "none")
    assert episode_outcome(real, {"run/0000": Label("failure", 2)}) == (False, "person")


def test_store_arrays_hold_every_step_value():
    episode = _episode(success=True)
    arrays = episode_arrays(episode, True, "robot", None)
    steps = episode.steps
    np.testing.assert_array_equal(arrays["images"], np.stack([s.image for s in steps]))
    np.testing.assert_array_equal(arrays["actions"], np.stack([s.actions[0] for s in steps]))
    assert arrays["timestamps_ns"].tolist() == [1000, 1001, 1002]
    assert arrays["interventions"].tolist() == [False, True, False]
    assert arrays["candidate_counts"].tolist() == [4, 4, 4]
    np.testing.assert_array_equal(arrays["candidate_actions"][4:8], steps[1].candidates)
    np.testing.assert_array_equal(arrays["candidate_q"][:4], steps[0].q_values)
    assert np.isnan(arrays["candidate_q"][8:]).all()  # step 2 recorded no Q
    assert (str(arrays["episode_id"]), int(arrays["failed_at_step"])) == ("run/0000", -1)
    episode.steps[1].image = None
    with pytest.raises(ValueError, match=r"steps \[1\]"):
        episode_arrays(episode, True, "robot", None)


@pytest.mark.parametrize(("kwargs", "match"), [({"name": "a/b"}, "a/b"),
                                                ({"version": "1.0"}, "1.0"),
                                                ({"image_size": 3}, "3")])
def test_build_options_are_checked_first(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_dataset([tmp_path / "nothing"], tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_an_unreadable_bag_is_listed_and_a_missing_one_refused(tmp_path):
    from vgps.flywheel.dataset import update_store

    (bad := tmp_path / "bad").mkdir()
    (bad / "bad_0.mcap").write_bytes(b"not an mcap file at all")
    report = update_store([bad], tmp_path / "store")
    assert report.added == [] and len(report.losses) == 1
    assert report.losses[0].startswith(f"{bad}: nothing readable")
    with pytest.raises(FileNotFoundError, match="no bag at"):
        update_store([tmp_path / "missing"], tmp_path / "store")
    with pytest.raises(FileNotFoundError, match="--labels"):
        update_store([bad], tmp_path / "store", labels_file=tmp_path / "none.json")


# -- bags (ros: deserialising needs rclpy): the real-arm bag and cut copies -----------------------


def _independent(bag: Path) -> dict[str, dict[int, object]]:
    """The bag's decisions, scores and frames by stamp, read without vgps.flywheel."""
    from vgps.bags import read_bag
    from vgps_ros.conversions import stamp_to_ns

    result = read_bag(bag, TOPICS)
    return {topic: {stamp_to_ns(m.header.stamp): m for m in result.on(topic)} for topic in TOPICS}


def _check_steps_equal_bag(episodes, recorded) -> int:
    steps = [s for e in episodes for s in e.steps]
    for step in steps:
        sel, scored, img = (recorded[topic][step.stamp_ns] for topic in TOPICS)
        np.testing.assert_array_equal(step.actions.ravel(), np.asarray(sel.actions, np.float32))
        assert (step.step, step.index, step.reason) == (sel.step, sel.index, sel.reason)
        assert step.intervened == (sel.reason == "intervention")
        assert step.image.shape == (img.height, img.width, 3)
        assert step.image.tobytes() == bytes(img.data)  # rgb8 without row padding
        cands = np.asarray(scored.candidates.actions, np.float32).reshape(
            scored.candidates.k, scored.candidates.horizon, 7)[:, 0]
        np.testing.assert_array_equal(step.candidates, cands)
        np.testing.assert_array_equal(step.q_values, np.asarray(scored.q_values, np.float32))
        assert step.q_selected == pytest.approx(sel.q_value, nan_ok=True)
    return len(steps)


@ros
def test_real_arm_bag_episodes_equal_what_was_recorded():
    from vgps.flywheel.episodes import read_episodes

    bag = read_episodes(REAL_BAG)
    assert bag.losses == []
    assert [(e.index, len(e.steps), e.end_event, e.success, e.complete) for e in bag.episodes] == [
        (0, 120, "timeout", None, True), (1, 121, "timeout", None, True),
        (2, 139, "timeout", None, True)]  # a real arm does not know its outcome
    assert {e.key for e in bag.episodes} == {f"{bag.run_id}/{i:04d}" for i in range(3)}
    assert read_episodes(REAL_BAG, images=False).run_id == bag.run_id  # derived, stable
    assert _check_steps_equal_bag(bag.episodes, _independent(REAL_BAG)) == 380
    assert all(s.joints.shape == (7,) for e in bag.episodes for s in e.steps)


@ros
def test_cut_bags_yield_their_intact_episodes_and_list_the_loss(tmp_path):
    from vgps.bags import mcap_scan, read_bag
    from vgps.flywheel.episodes import read_episodes

    data, full = (REAL_BAG / "bag_0.mcap").read_bytes(), read_episodes(REAL_BAG, False).episodes
    ends = [m.log_time_ns for m in read_bag(REAL_BAG, ["/vgps/episode"]).messages
            if m.message.event == "timeout"]  # log time of each episode's end
    for n, chunk in enumerate(mcap_scan.scan(REAL_BAG / "bag_0.mcap").chunks):
        (cut := tmp_path / f"cut{n}").mkdir()  # cut in the middle of chunk n
        shutil.copy(REAL_BAG / "metadata.yaml", cut)
        (cut / "bag_0.mcap").write_bytes(data[: chunk.offset + chunk.length // 2])
        bag = read_episodes(cut)
        complete = [e for e in bag.episodes if e.complete]
        assert [e.index for e in complete] == list(range(sum(t < chunk.start_time for t in ends)))
        for got, want in zip(complete, full, strict=False):
            assert [s.stamp_ns for s in got.steps] == [s.stamp_ns for s in want.steps]
        assert any("truncated" in loss for loss in bag.losses)
        partial = [e for e in bag.episodes if not e.complete]
        assert all(any(f"episode {e.index}: its end" in loss for loss in bag.losses)
                   for e in partial)
        if complete:
            _store_cut_bag(cut, tmp_path / f"store{n}", complete, partial)


def _store_cut_bag(cut: Path, store: Path, complete: list[Episode],
                   partial: list[Episode]) -> None:
    """The intact episodes of a cut bag go into the store, the rest is listed; relabelling
    rewrites an episode, skipping it removes it, and an unchanged bag adds nothing."""
    from vgps.flywheel.dataset import update_store

    for episode in complete + partial:
        save_label(cut, episode.key, Label("success"))
    report = update_store([cut], store)
    keys = sorted(e.key for e in complete)
    assert sorted(report.added) == sorted(load_index(store)["episodes"]) == keys
    assert sorted(report.skipped) == sorted(
        f"{e.key}: not complete in the bag (its start or end is missing)" for e in partial)
    assert any("truncated" in loss for loss in report.losses)
    first = store / load_index(store)["episodes"][keys[0]]["file"]
    with np.load(first) as data:
        assert bool(data["success"]) and str(data["label_source"]) == "person"
        assert len(data["actions"]) == len(complete[0].steps)
    save_label(cut, keys[0], Label("failure", failed_at_step=complete[0].steps[5].step))
    for key in keys[1:2]:
        save_label(cut, key, Label("skip"))
    report = update_store([cut], store)
    assert (report.updated, report.removed, report.added) == ([keys[0]], keys[1:2], [])
    assert sorted(report.present) == keys[2:]
    assert sorted(load_index(store)["episodes"]) == [keys[0], *keys[2:]]
    assert all(not (store / "episodes" / f"{key}.npz").exists() for key in keys[1:2])
    with np.load(first) as data:
        assert not bool(data["success"])
        assert int(data["failed_at_step"]) == complete[0].steps[5].step
    again = update_store([cut], store)
    assert (again.added, again.updated, again.removed) == ([], [], [])


# -- a recorded sim run: the whole round trip ----------------------------------------------------

READ_TFDS = textwrap.dedent("""
    import sys, numpy as np, tensorflow_datasets as tfds
    out = {}
    for ep in tfds.as_numpy(tfds.builder_from_directory(sys.argv[1]).as_dataset("train")):
        key = ep["episode_metadata"]["episode_id"].decode()
        out.update({f"{key}|meta_{n}": np.array(v) for n, v in ep["episode_metadata"].items()})
        steps = list(ep["steps"])
        out[key + "|images"] = np.stack([s["observation"]["image_0"] for s in steps])
        for name in set(steps[0]) - {"observation"}:
            join = np.concatenate if name.startswith("candidate_") else np.stack
            out[f"{key}|{name}"] = join([s[name] for s in steps])
    np.savez(sys.argv[2], **out)
""")


def _read_tfds(version_dir: Path, tmp_path: Path) -> dict[str, np.ndarray]:
    """Every feature of the dataset, ``"<episode key>|<name>"``, read by TFDS in a subprocess."""
    dump = tmp_path / "tfds_dump.npz"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", READ_TFDS, str(version_dir), str(dump)],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(dump) as data:
        return {k: data[k].astype(str) if data[k].dtype.kind == "S" else data[k]
                for k in data.files}


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory) -> Path:
    """Two 12-step sim episodes recorded by ``vgps up --record``."""
    root = tmp_path_factory.mktemp("flywheel")
    out, bag = root / "up", root / "bag"
    out.mkdir()
    cmd = [str(BIN / "vgps"), "up", f"critic:={ROOT / 'models' / 'sim_critic'}", "--task",
           "carrot_on_plate", "--episodes", "2", "--timeout", "300", "--out", str(out),
           "--quiet", "--record", str(bag), "--set", "arm_driver.image_size=64",
           "--set", "arm_driver.max_steps=12"]
    with (out / "vgps_up.log").open("wb") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=400,
                              env=os.environ.copy(), check=False)
    assert proc.returncode == 0, (out / "vgps_up.log").read_text(errors="replace")[-3000:]
    return bag


def _edited_copy(bag: Path, target: Path) -> tuple[list[int], np.ndarray]:
    """A copy of ``bag`` (new run id, a real robot) where a person took over steps 3..5 of the
    first episode, which then succeeded; returns those steps' stamps and the person's action."""
    from rclpy.serialization import serialize_message

    from vgps.bags import BagWriter, read_bag

    taken, stamps = np.array([0.01, -0.02, 0.03, 0.0, 0.0, 0.1, 1.0], np.float32), []
    with BagWriter(target, custom_data={"vgps.run_id": "feedc0de" * 4,
                                        "vgps.robot": "real"}) as writer:
        for m in read_bag(bag).messages:
            msg, data = m.message, m.data
            if m.topic == "/vgps/selected" and msg.reason == "argmax" and 3 <= msg.step <= 5:
                msg.reason, msg.index, msg.actions = "intervention", -1, taken.tolist()
                stamps.append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
                data = serialize_message(msg)
            elif m.topic == "/vgps/episode" and msg.episode == 0 and msg.event == "timeout":
                msg.event, msg.success = "succeeded", True
                data = serialize_message(msg)
            writer.write(m.topic, m.msgtype, data, log_time_ns=m.log_time_ns)
    return stamps, taken


@ros
@pytest.mark.timeout(900)
def test_sim_bag_to_dataset_round_trip(sim_bag, tmp_path, capsys):
    from vgps.bags import read_bag
    from vgps.cli.main import main
    from vgps.flywheel.episodes import read_episodes

    bag = read_episodes(sim_bag)
    recorded = _independent(sim_bag)
    assert bag.losses == [] and len(bag.episodes) == 2
    assert all(e.complete and e.success is not None and len(e.steps) == 12
               for e in bag.episodes)  # the simulator knows the outcome
    assert _check_steps_equal_bag(bag.episodes, recorded) == 24
    status = {(m.message.episode, m.message.event): m.message
              for m in read_bag(sim_bag, ["/vgps/episode"]).messages}

    out = tmp_path / "rlds"
    report = build_dataset([sim_bag], out, candidates=True)
    assert sorted(report.added) == sorted(e.key for e in bag.episodes) and report.rewritten
    data = _read_tfds(report.dataset, tmp_path)
    for ep in bag.episodes:
        k, end = ep.key, status[(ep.index, ep.end_event)]
        assert bool(data[k + "|meta_success"]) == end.success == ep.success
        assert (str(data[k + "|meta_label_source"]), int(data[k + "|meta_failed_at_step"])) == (
            "robot", -1)
        assert set(data[k + "|language_instruction"]) == {
            status[(ep.index, "started")].instruction}
        sel = [recorded["/vgps/selected"][s.stamp_ns] for s in ep.steps]
        scored = [recorded["/vgps/scored"][s.stamp_ns] for s in ep.steps]
        assert [im.tobytes() for im in data[k + "|images"]] == [
            bytes(recorded["/camera/image_raw"][s.stamp_ns].data) for s in ep.steps]
        np.testing.assert_array_equal(data[k + "|action"],
                                      [np.asarray(m.actions, np.float32)[:7] for m in sel])
        assert data[k + "|timestamp_ns"].tolist() == [s.stamp_ns for s in ep.steps]
        assert data[k + "|is_intervention"].tolist() == [m.reason == "intervention" for m in sel]
        assert data[k + "|selection_reason"].tolist() == [m.reason for m in sel]
        np.testing.assert_array_equal(data[k + "|candidate_q"], np.concatenate(
            [np.asarray(m.q_values, np.float32) for m in scored]))
        np.testing.assert_array_equal(data[k + "|candidate_actions"], np.concatenate(
            [np.asarray(m.candidates.actions, np.float32).reshape(m.candidates.k, -1, 7)[:, 0]
             for m in scored]))
        assert data[k + "|is_first"].tolist() == [True] + [False] * 11
        assert data[k + "|is_terminal"][-1] == ep.success
    summary = json.loads((report.dataset / "vgps_dataset.json").read_text())
    assert (summary["episodes"], summary["steps"], summary["bags"][0]["run_id"]) == (
        2, 24, bag.run_id)
    actions = np.concatenate([data[e.key + "|action"] for e in bag.episodes])
    np.testing.assert_allclose(summary["action_statistics"]["mean"], actions.mean(0), atol=1e-6)

    # building again adds nothing and leaves the dataset as it is
    stamp, _ = (report.dataset / "vgps_dataset.json").stat().st_mtime_ns, capsys.readouterr()
    assert main(["dataset", "build", str(sim_bag), "--out", str(out), "--candidates"]) == 0
    printed = capsys.readouterr().out
    assert "episodes: 0 added, 2 already present" in printed and "(unchanged)" in printed
    assert (report.dataset / "vgps_dataset.json").stat().st_mtime_ns == stamp

    # a second bag adds only its own episodes; a person's labels decide the real arm's outcome
    shutil.copytree(REAL_BAG, real := tmp_path / "real")
    real_keys = [e.key for e in read_episodes(real, images=False).episodes]
    save_label(real, real_keys[0], Label("success"))
    save_label(real, real_keys[1], Label("failure", failed_at_step=130))
    save_label(real, real_keys[2], Label("skip"))
    # a third: a person took over three steps of an episode that then succeeded (the robot
    # says so); its other episode, on a robot that does not know, has no outcome and is left out
    taken_stamps, taken = _edited_copy(sim_bag, tmp_path / "edited")
    edited = read_episodes(tmp_path / "edited", images=False)
    first, second = (e.key for e in edited.episodes)
    again = build_dataset([sim_bag, real, tmp_path / "edited"], out, candidates=True,
                          image_size=64)
    assert again.added == [*real_keys[:2], first]
    assert sorted(again.present) == sorted(report.added)
    assert again.skipped == [f"{real_keys[2]}: skipped by a person",
                             f"{second}: outcome unknown (label it)"]
    data = _read_tfds(again.dataset, tmp_path)
    assert len({k.split("|")[0] for k in data}) == 5
    assert data[real_keys[0] + "|images"].shape == (120, 64, 64, 3)  # resized
    assert int(data[real_keys[1] + "|meta_failed_at_step"]) == 130
    assert str(data[real_keys[1] + "|meta_label_source"]) == "person"
    assert data[real_keys[0] + "|candidate_q"].shape == (120 * 50,)
    flags = data[first + "|is_intervention"]
    assert data[first + "|timestamp_ns"][flags].tolist() == taken_stamps
    assert set(data[first + "|selection_reason"][flags]) == {"intervention"}
    np.testing.assert_array_equal(data[first + "|action"][flags], np.stack([taken] * 3))
    assert bool(data[first + "|meta_success"])
    assert str(data[first + "|meta_label_source"]) == "robot"
    np.testing.assert_array_equal(data[first + "|images"], data[bag.episodes[0].key + "|images"])
    summary = json.loads((again.dataset / "vgps_dataset.json").read_text())
    assert (summary["episodes"], summary["interventions"]) == (5, 3)
