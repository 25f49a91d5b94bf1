"""``vgps replay``: re-scoring a recorded sim episode, the HTML report, damaged bags, publishing.

One short sim episode is recorded with the real graph (``vgps up --record``, random sim critic,
64 px frames, 12 steps, 16 KiB chunks so that a cut file keeps some steps) and replayed:

* with the critic that was live: every Q-value matches the recorded one (<= 1e-5) and every
  choice agrees; from the critic named in ``metadata.yaml`` too, and a clear error without it;
* with another critic, and with a smaller K: the changed steps are listed and drawn;
* cut at 60 % of the episode / garbage appended / frames missing: no crash, problems and
  skipped steps reported, the readable steps covered;
* the report renders in headless Chromium (screenshot not blank);
* ``--publish``: the bag's messages arrive on live topics (namespaced, restamped).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from vgps.bags import BagWriter, read_bag  # noqa: E402
from vgps.cli.main import main  # noqa: E402
from vgps.replay.rescore import REPLAY_JSON, RUN_INFO, ReplayResult, replay  # noqa: E402
from vgps_interfaces.msg import ScoredCandidates, SelectedAction  # noqa: E402
from vgps_ros import qos  # noqa: E402
from vgps_ros.conversions import stamp_to_ns  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(600)]
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOL = 1e-5


@pytest.fixture(scope="module")
def critics(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("critics")
    out = {}
    for name, seed in (("live", 0), ("other", 1)):
        out[name] = root / name
        assert main(["critic", "init", "--config", "sim", "--seed", str(seed),
                     "--out", str(out[name])]) == 0
    return out


@pytest.fixture(scope="module")
def bag(tmp_path_factory, critics) -> Path:
    """A 12-step sim episode recorded by ``vgps up --record``."""
    root = tmp_path_factory.mktemp("recorded")
    out, bag = root / "up", root / "bag"
    out.mkdir()
    cmd = [str(BIN / "vgps"), "up", f"critic:={critics['live']}", "--task", "carrot_on_plate",
           "--episodes", "1", "--timeout", "300", "--out", str(out), "--quiet",
           "--record", str(bag), "--set", "arm_driver.image_size=64",
           "--set", "arm_driver.max_steps=12", "--set", "recorder.chunk_size=16384"]
    with (out / "vgps_up.log").open("wb") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=400,
                              env=os.environ.copy(), check=False)
    assert proc.returncode == 0, (out / "vgps_up.log").read_text(errors="replace")[-3000:]
    assert read_bag(bag).problems == []
    return bag


def recorded_q(bag_path: Path) -> dict[int, np.ndarray]:
    """The recorded Q-values per source-image stamp, read independently of vgps.replay.rescore."""
    return {stamp_to_ns(m.header.stamp): np.asarray(m.q_values, np.float32)
            for m in read_bag(bag_path, ["/vgps/scored"]).on("/vgps/scored")}


def readable_steps(bag_path: Path) -> tuple[set[int], set[int]]:
    """(stamps of scored steps whose frame is in the bag, stamps of those without)."""
    result = read_bag(bag_path)
    scored = {stamp_to_ns(m.header.stamp) for m in result.on("/vgps/scored")}
    images = {stamp_to_ns(m.header.stamp) for m in result.on("/camera/image_raw")}
    return scored & images, scored - images


@pytest.fixture(scope="module")
def other_replay(bag, critics, tmp_path_factory) -> tuple[ReplayResult, Path]:
    out = tmp_path_factory.mktemp("replay_other")
    return replay(bag, critic=critics["other"], k=6, out=out), out


def test_same_critic_reproduces_every_q_value_and_choice(bag, critics, tmp_path, capsys):
    out = tmp_path / "same"
    assert main(["replay", str(bag), "--critic", str(critics["live"]), "--out", str(out)]) == 0
    assert "agreement 100.0%" in capsys.readouterr().out
    summary = json.loads((out / REPLAY_JSON).read_text())
    recorded = recorded_q(bag)
    assert summary["steps"] == len(recorded) >= 1 and summary["skipped"] == []
    for record in summary["records"]:
        q = np.asarray(record["q_new"], np.float32)
        np.testing.assert_allclose(q, recorded[record["stamp_ns"]], atol=TOL, rtol=0)
        assert record["max_abs_q_diff"] <= TOL and record["k"] == record["k_recorded"] == 10
        assert record["recorded_reason"] == "argmax" and record["agree"] is True
        assert record["new_index"] == int(np.argmax(recorded[record["stamp_ns"]]))
    assert summary["agreement"] == 1.0 and summary["changed_steps"] == []
    assert summary["max_abs_q_diff"] <= TOL and summary["compared"] == summary["steps"]
    assert summary["critic"]["same_as_recorded"] and summary["problems"] == []
    events = read_bag(bag, ["/vgps/episode"]).on("/vgps/episode")
    [episode] = summary["episodes"]
    assert episode["task"] == "carrot_on_plate" == events[-1].task
    assert episode["success"] == events[-1].success and episode["outcome"] == events[-1].event
    html = (out / "report.html").read_text()
    assert "no step changed its choice" in html and "Bag problems" not in html


def _set_recorded_critic(bag: Path, critic: str | None) -> None:
    """Rewrites ``custom_data: vgps.critic`` of a bag's metadata.yaml (None: removes it)."""
    meta = yaml.safe_load((bag / RUN_INFO).read_text())
    custom = meta["rosbag2_bagfile_information"].setdefault("custom_data", {}) or {}
    custom.pop("vgps.critic", None)
    if critic is not None:
        custom["vgps.critic"] = critic
    meta["rosbag2_bagfile_information"]["custom_data"] = custom
    (bag / RUN_INFO).write_text(yaml.safe_dump(meta))


def test_critic_from_the_recorded_metadata_and_clear_errors(bag, critics, tmp_path, capsys):
    info = yaml.safe_load((bag / RUN_INFO).read_text())["rosbag2_bagfile_information"]
    assert Path(info["custom_data"]["vgps.critic"]) == Path(critics["live"]).resolve()
    summary = replay(bag, out=tmp_path / "from_metadata", report=False)
    assert summary.critic.explicit is False and summary.agreement == 1.0
    assert summary.max_abs_q_diff <= TOL

    copy = tmp_path / "bag"
    shutil.copytree(bag, copy)
    _set_recorded_critic(copy, None)
    assert main(["replay", str(copy), "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "--critic" in err and RUN_INFO in err and "random-sim@" in err

    _set_recorded_critic(copy, str(critics["other"]))
    assert main(["replay", str(copy), "--out", str(tmp_path / "changed")]) == 2
    assert "the checkpoint changed since recording" in capsys.readouterr().err
    assert main(["replay", str(copy)]) == 2  # neither --out nor --publish
    garbage = tmp_path / "garbage.mcap"
    garbage.write_bytes(os.urandom(4096))
    assert main(["replay", str(garbage), "--critic", str(critics["live"]),
                 "--out", str(tmp_path / "g")]) == 2


def test_smaller_k_keeps_the_first_candidates(bag, critics, tmp_path):
    summary = replay(bag, critic=critics["live"], k=4, out=tmp_path / "k4", report=False)
    recorded = recorded_q(bag)
    for record in summary.records:
        assert (record.k, record.k_recorded, len(record.q_new)) == (4, 10, 4)
        np.testing.assert_allclose(record.q_new, recorded[record.stamp_ns][:4], atol=TOL)
        # argmax over the first 4 differs from the executed one exactly when that was not in them
        assert record.agree == (record.recorded_index < 4)
    changed = {c.stamp_ns for c in summary.changed_steps}
    assert changed == {r.stamp_ns for r in summary.records if r.recorded_index >= 4}
    assert summary.max_abs_q_diff is None  # fewer candidates than recorded: not compared

    clamped = replay(bag, critic=critics["live"], k=20, out=tmp_path / "k20", report=False)
    assert clamped.agreement == 1.0 and any("k=20" in n for n in clamped.notes)


def test_softmax_replay_uses_the_selectors_keys(bag, critics, tmp_path):
    """beta > 0: the replayed choice is the one the live selector would sample (same key)."""
    from vgps_widowx.selector import Selector, SelectorConfig

    summary = replay(bag, critic=critics["live"], beta=0.5, seed=3, out=tmp_path,
                     report=False)
    assert summary.steps >= 1
    for record in summary.records:
        selector = Selector(SelectorConfig(k=10, beta=0.5, seed=3))
        stamp_s = record.stamp_ns * 1e-9
        decision = selector.on_scored(record.step, stamp_s,
                                      np.zeros((10, 1, 7), np.float32),
                                      np.asarray(record.q_recorded, np.float32), now=stamp_s)
        assert (record.new_reason, record.beta) == ("softmax", 0.5)
        assert record.new_index == decision.index, record.step


def test_another_critic_shows_where_choices_change(other_replay):
    summary, out = other_replay
    assert json.loads((out / REPLAY_JSON).read_text()) == summary.to_json()  # the typed result
    assert summary.critic.same_as_recorded is False
    assert summary.max_abs_q_diff is None  # Q of different critics are not compared
    assert summary.agreement < 1.0 and summary.changed_steps
    changed = [r for r in summary.records if r.agree is False]
    assert [(r.step, r.new_index) for r in changed] == \
        [(c.step, c.new_index) for c in summary.changed_steps]
    assert all(r.new_index != r.recorded_index and r.k == 6 for r in changed)
    html = (out / "report.html").read_text()
    assert "different" in html
    drawn = min(len(changed), 24)
    assert html.count('class="pair"') == drawn
    assert html.count("data:image/png;base64,") == 2 * drawn
    for record_index in [summary.records.index(r) for r in changed][:drawn]:
        assert f'id="changed-{record_index}"' in html
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")


def test_truncated_bag_is_replayed_as_far_as_readable(bag, critics, tmp_path):
    from vgps.bags import mcap_scan

    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    # Cut in the middle of the chunk that holds the step at ~60 % of the episode (a recording
    # that stopped there): where that is in the file depends on the chunking.
    times = sorted(m.log_time_ns for m in read_bag(bag, ["/vgps/scored"]).messages)
    at = times[int(0.6 * len(times))]
    chunk = next(c for c in mcap_scan.scan(mcap).chunks if c.start_time <= at <= c.end_time)
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: chunk.offset + chunk.length // 2])
    covered, _ = readable_steps(cut)
    assert 1 <= len(covered) < len(recorded_q(bag))  # the cut loses steps, keeps some

    summary = replay(cut, critic=critics["live"], out=tmp_path / "cut")
    assert any("truncated" in p for p in summary.problems)
    assert {r.stamp_ns for r in summary.records} == covered
    assert all(r.max_abs_q_diff <= TOL for r in summary.records)
    html = (tmp_path / "cut" / "report.html").read_text()
    assert "Bag problems" in html and "truncated" in html

    garbage = tmp_path / "garbage.mcap"
    garbage.write_bytes(data + os.urandom(3000))
    summary = replay(garbage, critic=critics["live"], out=tmp_path / "garbage")
    assert summary.problems and summary.steps == len(recorded_q(bag))
    assert summary.agreement == 1.0


def test_steps_without_their_frame_are_skipped(bag, critics, tmp_path):
    """A copy of the bag without two camera frames (written with vgps.bags.writer.BagWriter)."""
    result = read_bag(bag)
    stamps = sorted(recorded_q(bag))
    dropped = {stamps[1], stamps[-1]}
    copy = tmp_path / "dropped"
    with BagWriter(copy) as writer:
        for m in result.messages:
            if m.topic == "/camera/image_raw" and stamp_to_ns(m.message.header.stamp) in dropped:
                continue
            writer.write(m.topic, m.msgtype, m.data, log_time_ns=m.log_time_ns)
    summary = replay(copy, critic=critics["live"], out=tmp_path / "out")
    assert {s.stamp_ns for s in summary.skipped} == dropped
    assert all("/camera/image_raw" in s.reason for s in summary.skipped)
    assert summary.steps == len(stamps) - 2 and summary.agreement == 1.0
    assert "skipped" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install "
                                              "chromium; .ci/run installs it)")
def test_report_renders_in_headless_chromium(other_replay, tmp_path):
    from PIL import Image

    _, out = other_replay
    png = tmp_path / "report.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
           "--window-size=1280,2000", f"--screenshot={png}", (out / "report.html").as_uri()]
    proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert png.is_file(), proc.stderr.decode(errors="replace")[-2000:]
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.float64)
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 20  # text, charts and frames, not a blank page
    assert (pixels.min(axis=2) < 128).mean() > 0.01  # plenty of dark (drawn) pixels


class Listener:
    """Subscribes to scored, selected and /diagnostics in a namespace of its own context."""

    def __init__(self, namespace: str):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("replay_listener", namespace=namespace,
                                      context=self.context)
        self.got: dict[str, list] = {"scored": [], "selected": [], "diagnostics": []}
        for key, kind, topic, profile in (
                ("scored", ScoredCandidates, qos.SCORED, qos.COMMAND),
                ("selected", SelectedAction, qos.SELECTED, qos.COMMAND),
                ("diagnostics", DiagnosticArray, qos.DIAGNOSTICS, qos.DIAGNOSTICS_QOS)):
            self.node.create_subscription(kind, topic, self.got[key].append, profile)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def test_publish_sends_the_bag_onto_live_topics(bag):
    from vgps.bags.publish import publish_bag

    result = read_bag(bag)
    scored = result.on("/vgps/scored")
    selected = result.on("/vgps/selected")
    listener = Listener("/replay_test")
    try:
        done = publish_bag(bag, rate=4.0, namespace="/replay_test", wait_s=20,
                           wait_for=["/vgps/scored", "/vgps/selected", "/diagnostics"])
        deadline = time.monotonic() + 10
        while len(listener.got["selected"]) < len(selected) and time.monotonic() < deadline:
            time.sleep(0.05)
        got = listener.got
        assert [stamp_to_ns(m.header.stamp) for m in got["scored"]] == \
            [stamp_to_ns(m.header.stamp) for m in scored]
        assert [list(m.q_values) for m in got["scored"]] == [list(m.q_values) for m in scored]
        assert [(m.step, m.index, m.reason) for m in got["selected"]] == \
            [(m.step, m.index, m.reason) for m in selected]
        assert got["diagnostics"]  # /diagnostics stays absolute: outside the namespace too
        assert done["published"]["/vgps/scored"] == len(scored)
        assert done["published"]["/camera/image_raw"] == result.counts["/camera/image_raw"]
        span = (result.messages[-1].log_time_ns - result.messages[0].log_time_ns) * 1e-9
        assert done["duration_s"] >= 0.9 * span / 4.0  # paced at recorded time x 1/4

        got["scored"].clear()
        before = time.time_ns()
        publish_bag(bag, rate=50.0, namespace="/replay_test", topics=["/vgps/scored"],
                    restamp=True, wait_s=20, wait_for=["/vgps/scored"])
        deadline = time.monotonic() + 10
        while len(got["scored"]) < len(scored) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(got["scored"]) == len(scored)
        shifted = [stamp_to_ns(m.header.stamp) for m in got["scored"]]
        assert min(shifted) >= before - 10**9  # moved to now (the recording is older)
        assert all(stamp_to_ns(m.candidates.header.stamp) == stamp_to_ns(m.header.stamp)
                   for m in got["scored"])  # nested headers moved alike
        offsets = {s - stamp_to_ns(m.header.stamp) for s, m in zip(shifted, scored)}
        assert len(offsets) == 1  # one offset for all: stamps still match across topics
    finally:
        listener.close()
