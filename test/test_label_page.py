"""``vgps label``: the labelling server's API, the CLI and the page in headless Chromium.

Test data: a copy of the real-arm bag ``docs/real_arm_check/bag`` (3 episodes, no success
labels) in a temporary directory, so that the sidecar ``<bag>.labels.json`` lands beside the copy.

* the API lists the episodes as :func:`read_episodes` reads them, each decision's Q and margin
  as recorded, frames as PNGs of exactly the recorded camera image (eager and lazy);
* POST /api/label writes the sidecar and never the bag (its bytes hashed before and after);
  invalid requests get 400 with a message and write nothing; resume order;
* only 127.0.0.1 is served; the CLI prints the URL, serves and stops cleanly on Ctrl-C;
* in headless Chromium, a real mouse click on Success and keyboard shortcuts (step, mark,
  failure, skip) end up in the label file on disk, and a reload resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="reading bags deserialises with rclpy")

from vgps.bags import BagReader
from vgps.cli.main import main
from vgps.flywheel.episodes import read_episodes
from vgps.flywheel.label_server import LabelSession, make_server, server_url
from vgps.flywheel.labels import Label, labels_path, load_labels, save_label

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
REPO = Path(__file__).resolve().parents[1]
REAL_BAG = REPO / "docs" / "real_arm_check" / "bag"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def bag(tmp_path) -> Path:
    """A private copy of the real 3-episode bag."""
    copy = tmp_path / "run1"
    shutil.copytree(REAL_BAG, copy)
    return copy


def _serve(session: LabelSession):
    server = make_server(session, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def served(bag):
    """(session, base URL) of a live server over the bag copy."""
    session = LabelSession.load([bag])
    server, thread = _serve(session)
    yield session, server_url(server)
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as reply:
        body = reply.read()
        return (json.loads(body) if reply.headers.get_content_type() == "application/json"
                else body)


def _post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url + "api/label", data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _hashes(bag: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(bag.iterdir())}


def _recorded(bag: Path, topic: str) -> dict[int, object]:
    """The bag's messages of ``topic`` by header stamp, read directly."""
    from vgps_ros.conversions import stamp_to_ns

    return {stamp_to_ns(m.message.header.stamp): m.message
            for m in BagReader(bag).messages([topic])}


def test_episode_list_matches_the_bag(served, bag):
    _, url = served
    listing = _get(url + "api/episodes")
    episodes = read_episodes(bag, images=False).episodes
    assert [e["key"] for e in listing["episodes"]] == [ep.key for ep in episodes]
    assert len(episodes) == 3 and listing["resume"] == 0 and listing["losses"] == []
    for row, ep in zip(listing["episodes"], episodes):
        assert row["steps"] == len(ep.steps) > 100
        assert (row["task"], row["instruction"]) == ("carrot_on_plate", ep.instruction)
        assert row["bag"] == "run1" and row["label"] is None
        assert row["robot_outcome"] is None and row["interventions"] == 0  # a real-arm run
    page = _get(url).decode()
    assert 'id="btn-success"' in page and "http" not in page.split("<script>")[1]  # no fetches


def test_decisions_carry_the_recorded_q_and_margin(served, bag):
    _, url = served
    detail = _get(url + "api/episodes/1")
    selected = _recorded(bag, "/vgps/selected")
    assert len(detail["rows"]) == detail["steps"]
    for row in detail["rows"]:
        msg = selected[row["stamp_ns"]]
        assert (row["step"], row["reason"], row["index"]) == (msg.step, msg.reason, msg.index)
        assert row["q_selected"] == pytest.approx(msg.q_value, abs=1e-5)
        assert row["q_margin"] == pytest.approx(msg.q_margin, abs=1e-4)  # from the K Q-values
        assert row["q_max"] == pytest.approx(msg.q_value, abs=1e-5)  # argmax on the real arm
        assert row["candidates"] == msg.k == 50 and row["intervened"] is False
        assert row["action"] == pytest.approx(list(msg.actions[:7]), abs=1e-4)


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
def test_frames_are_the_recorded_images(bag, lazy):
    from PIL import Image

    from vgps_ros.conversions import image_from_msg

    session = LabelSession.load([bag], lazy_frames=lazy)
    server, thread = _serve(session)
    url = server_url(server)
    try:
        camera = _recorded(bag, "/camera/image_raw")
        for n, t in ((0, 0), (1, 7), (2, len(session.episodes[2].steps) - 1)):
            png = _get(f"{url}frames/{n}/{t}.png")
            assert png[:8] == b"\x89PNG\r\n\x1a\n"
            shown = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
            expected = image_from_msg(camera[session.episodes[n].steps[t].stamp_ns])
            assert shown.shape == expected.shape and np.array_equal(shown, expected)
            assert _get(f"{url}frames/{n}/{t}.png") == png  # cached: the same bytes
        for missing in ("frames/0/9999.png", "frames/7/0.png", "api/episodes/3", "nothing"):
            with pytest.raises(urllib.error.HTTPError) as err:
                _get(url + missing)
            assert err.value.code == 404 and "error" in json.loads(err.value.read())
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_label_post_writes_the_sidecar_never_the_bag(served, bag):
    session, url = served
    before = _hashes(bag)
    keys = [ep.key for ep in session.episodes]
    failed_step = session.episodes[1].steps[30].step
    status, reply = _post(url, json.dumps({"key": keys[0], "outcome": "success",
                                           "failed_at_step": None}).encode())
    assert status == 200 and reply["label"]["outcome"] == "success" and reply["resume"] == 1
    status, reply = _post(url, json.dumps({"key": keys[1], "outcome": "failure",
                                           "failed_at_step": failed_step}).encode())
    assert status == 200 and reply["resume"] == 2
    sidecar = bag.parent / "run1.labels.json"
    assert labels_path(bag) == sidecar and reply["sidecar"] == sidecar.name
    data = json.loads(sidecar.read_text())
    assert data["format"] == "vgps-labels/1" and data["bag"] == "run1"
    assert data["episodes"][keys[0]]["outcome"] == "success"
    assert data["episodes"][keys[1]] == {**data["episodes"][keys[1]], "outcome": "failure",
                                         "failed_at_step": failed_step}
    assert data["episodes"][keys[1]]["labelled_at"].startswith("20")
    assert load_labels(bag)[keys[1]].failed_at_step == failed_step
    listing = _get(url + "api/episodes")
    assert [e["label"] and e["label"]["outcome"] for e in listing["episodes"]] == [
        "success", "failure", None]
    # relabelling replaces the label and keeps the others
    assert _post(url, json.dumps({"key": keys[0], "outcome": "skip"}).encode())[0] == 200
    assert {k: v.outcome for k, v in load_labels(bag).items()} == {keys[0]: "skip",
                                                                   keys[1]: "failure"}
    assert _hashes(bag) == before  # same files, same bytes


@pytest.mark.parametrize(("body", "content_type", "says"), [
    ({"key": "nope/0000", "outcome": "success"}, None, "'nope/0000'"),
    ({"key": 0, "outcome": "failure"}, None, "unknown episode key 0"),
    ({"key": "K", "outcome": "great"}, None, "'great'"),
    ({"key": "K", "outcome": None}, None, "outcome None"),
    ({"key": "K", "outcome": "failure", "failed_at_step": 100000}, None, "100000"),
    ({"key": "K", "outcome": "failure", "failed_at_step": "3"}, None, "'3'"),
    ({"key": "K", "outcome": "failure", "failed_at_step": True}, None, "True"),
    ({"key": "K", "outcome": "success", "failed_at_step": 3}, None, "only goes with"),
    ({"key": "K", "outcome": "skip", "extra": 1}, None, "['extra']"),
    (["K", "success"], None, "JSON object"),
    (b"{not json", None, "not JSON"),
    ({"key": "K", "outcome": "success"}, "application/x-www-form-urlencoded", "Content-Type"),
])
def test_invalid_label_requests_are_400(served, bag, body, content_type, says):
    session, url = served
    key = session.episodes[0].key
    if isinstance(body, dict) and body.get("key") == "K":
        body = {**body, "key": key}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, reply = _post(url, raw, content_type or "application/json")
    assert status == 400 and says in reply["error"], reply
    assert not labels_path(bag).exists()


def test_resume_at_the_first_unlabelled_episode(bag):
    keys = [ep.key for ep in read_episodes(bag, images=False).episodes]
    save_label(bag, keys[0], Label("success"))
    save_label(bag, keys[2], Label("skip"))
    session = LabelSession.load([bag], lazy_frames=True)
    assert session.resume_index() == 1
    listing = session.listing()
    assert [e["label"] and e["label"]["outcome"] for e in listing["episodes"]] == [
        "success", None, "skip"]
    save_label(bag, keys[1], Label("failure", failed_at_step=3))
    assert LabelSession.load([bag], lazy_frames=True).resume_index() == 0  # all labelled


def test_several_bags_each_get_their_own_sidecar(bag):
    second = bag.parent / "run2"
    shutil.copytree(REAL_BAG, second)
    with pytest.raises(ValueError, match="appear twice"):
        LabelSession.load([bag, bag], lazy_frames=True)
    session = LabelSession.load([bag, second], lazy_frames=True)
    listing = session.listing()
    assert [e["bag"] for e in listing["episodes"]] == ["run1"] * 3 + ["run2"] * 3
    key = listing["episodes"][4]["key"]
    assert session.set_label({"key": key, "outcome": "success"})["sidecar"] == "run2.labels.json"
    assert list(load_labels(second)) == [key] and not labels_path(bag).exists()
    assert session.resume_index() == 0


def test_only_this_machine_is_served(served):
    session, url = served
    for host in ("0.0.0.0", "192.168.1.2", "example.org"):
        with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
            make_server(session, host=host)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/episodes", headers={"Host": f"rebound.example:{port}"})
    reply = conn.getresponse()
    assert reply.status == 403 and "rebound.example" in json.loads(reply.read())["error"]
    conn.close()


def test_cli_errors_name_the_bag(tmp_path, capsys):
    assert main(["label", str(tmp_path / "missing"), "--no-open"]) == 2
    assert f"no bag at {tmp_path / 'missing'}" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["label", str(empty), "--no-open"]) == 2
    assert "empty" in capsys.readouterr().err


def test_cli_serves_and_stops_on_ctrl_c(bag):
    vgps = Path(sys.executable).with_name("vgps")
    proc = subprocess.Popen([str(vgps), "label", str(bag), "--no-open"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        url = None
        for line in proc.stdout:
            if "labelling page: " in line:
                url = line.rsplit("labelling page: ", 1)[1].strip()
                break
        assert url and url.startswith("http://127.0.0.1:"), proc.stderr.read()
        assert len(_get(url + "api/episodes")["episodes"]) == 3
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        err = proc.stderr.read()
        assert "stopped" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install "
                                              "chromium; .ci/run installs it)")
def test_clicks_and_keys_in_headless_chromium_write_labels(served, bag, tmp_path):
    pytest.importorskip("websockets.sync.client", reason="the CDP client needs websockets")
    from cdp import Browser

    session, url = served
    before = _hashes(bag)
    keys = [ep.key for ep in session.episodes]
    sidecar = labels_path(bag)

    def on_disk() -> dict:
        return json.loads(sidecar.read_text())["episodes"] if sidecar.exists() else {}

    # the real-arm run had no take-over: one decision is shown as one (in memory, not the bag)
    taken = session.episodes[1].steps[10]
    taken.reason, taken.intervened, taken.index = "intervention", True, -1
    with Browser(CHROMIUM, tmp_path / "profile") as page:
        page.navigate(url)
        page.wait_for("window.vgpsReady === true")
        assert page.evaluate("S.n") == 0 and page.evaluate("S.ep.key") == keys[0]
        page.wait_for("document.getElementById('frame').naturalWidth > 0")  # the PNG shows
        page.click_element("#btn-success")  # a real click at the button's box
        page.wait_for("S.ep.n === 1 && !S.busy")
        assert on_disk()[keys[0]]["outcome"] == "success"
        assert "success" in page.evaluate("document.querySelector('#ep-0').textContent")
        assert page.evaluate("document.querySelectorAll('#trace rect.int').length") == 1
        assert "1 int." in page.evaluate("document.querySelector('#ep-1').textContent")
        for _ in range(3):
            page.press("ArrowRight")
        assert page.evaluate("S.t") == 3
        page.press("m")
        step = session.episodes[1].steps[3].step
        assert page.evaluate("S.mark") == step
        assert page.evaluate("!!document.getElementById('markbar')")  # highlighted in the trace
        page.press("f")
        page.wait_for("S.ep.n === 2 && !S.busy")
        assert on_disk()[keys[1]] == {**on_disk()[keys[1]], "outcome": "failure",
                                      "failed_at_step": step}
        page.navigate(url)  # a reload resumes at the first unlabelled episode
        page.wait_for("window.vgpsReady === true")
        assert page.evaluate("S.n") == 2
        assert "2 of 3" in page.evaluate("document.getElementById('progress').textContent")
        page.press("k")
        page.wait_for("!S.busy && S.episodes[2].label !== null")
        assert on_disk()[keys[2]]["outcome"] == "skip"
        page.press(" ")  # play, then pause
        page.wait_for("S.timer !== null && S.t > 0")
        page.press(" ")
        assert page.evaluate("S.timer") is None
        page.press("p")
        page.wait_for("S.ep.n === 1")
        page.press("n")
        page.wait_for("S.ep.n === 2")
        page.press("ArrowUp")  # back to episode 1: its mark shows; m again unmarks and saves
        page.wait_for(f"S.ep.n === 1 && S.mark === {step}")
        for _ in range(3):
            page.press("ArrowRight")
        page.press("m")
        page.wait_for("S.mark === null && S.ep.label.failed_at_step === null")
        assert on_disk()[keys[1]]["failed_at_step"] is None
    assert _hashes(bag) == before
