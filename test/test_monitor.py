"""``vgps monitor`` against a real sim graph started by ``vgps up``, in a pseudo-terminal.

The graph runs short episodes back to back (64 px images, a random sim critic); ``vgps monitor``
runs in a pty (a real terminal for rich's Live view, 120 x 50) in the same ROS domain. Its
screen output must show the step counter and the selected Q changing between refreshes, the
sparklines filling up, the nodes' diagnostics; Ctrl-C (SIGINT) ends it with exit code 0, and
``--once`` prints one snapshot to a pipe. The sparkline and rendering logic is also checked
without ROS.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from vgps.monitoring.terminal import BARS, MonitorState, sparkline

pytestmark = pytest.mark.timeout(240)
VGPS = str(Path(sys.executable).parent / "vgps")
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>]")
FRAME_TITLE = "vgps monitor  ROS_DOMAIN_ID="


def test_sparkline_scales_to_the_shown_range():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == BARS
    assert sparkline([3.0, 3.0]) == BARS[3] * 2
    assert sparkline([1.0, float("nan"), 2.0]) == BARS[0] + " " + BARS[-1]
    assert sparkline([float("nan")] * 2) == "  "
    assert sparkline(range(100), width=8) == BARS  # the last 8 values only
    assert sparkline([]) == ""


def test_state_renders_what_it_heard():
    from rich.console import Console

    t = [100.0]
    state = MonitorState(history=10, clock=lambda: t[0])
    state.on_episode(2, "carrot_on_plate", "put carrot on plate", 5, "step", False)
    for i in range(4):
        t[0] += 0.2
        state.on_candidates(1000 + i, sample_ms=1.5)
        t[0] += 0.01 * (i + 1)
        state.on_q_values([0.1 * i, -0.2, 0.3])
        state.on_q_selected(0.1 * i)
        state.on_margin(0.05)
        state.on_selected(1000 + i, 40 + i, 0, "argmax")
    state.on_selected(0, 0, -1, "hold")
    state.on_diagnostic("vgps: selector_node", 1, "fallback: no scores")
    console = Console(width=120, record=True, force_terminal=False)
    console.print(state.render())
    text = console.export_text()
    assert "graph step 43" in text and "step 5" in text and "carrot_on_plate" in text
    assert "selected +0.300" in text and "max +0.300" in text and "K=3" in text
    assert "latency 40.0 ms" in text and "argmax 4  hold 1" in text
    assert re.search(r"step rate 4\.\d+ Hz", text)
    assert "WARN" in text and "fallback: no scores" in text
    assert re.search(r"Q selected\s+" + BARS[0] + r"\S*" + BARS[-1], text)
    t[0] += 10.0  # no diagnostics for 10 s: stale
    console = Console(width=120, record=True, force_terminal=False)
    console.print(state.render())
    assert "STALE" in console.export_text()


def test_state_survives_bad_input():
    from rich.console import Console

    t = [5.0]
    state = MonitorState(history=10, clock=lambda: t[0])
    state.on_selected(77, 3, 0, "argmax")  # before its candidates
    state.on_candidates(77, sample_ms=2.0)
    state.on_q_values([])  # empty: the array that killed the old monitor thread
    state.on_scored(1.0, 2.0, False, "c", stamp_ns=77, q_values=[])
    state.on_q_values([float("nan"), float("nan")])
    state.on_selected(123, 4, -1, "stale")  # a stamp that never matches
    state.on_candidates(78, sample_ms=2.0)  # the clock did not advance: no rate
    console = Console(width=120, record=True, force_terminal=False)
    console.print(state.render())
    text = console.export_text()
    assert "max -  mean -  K=2" in text and "latency - ms" in text and "step rate - Hz" in text
    assert "graph step 3" in text and "argmax 1  stale 1" in text


class _FakeNode:
    """Collects a GraphMonitor's subscriptions so a test can call them with messages."""

    def __init__(self):
        self.callbacks = {}

    def create_subscription(self, msg_type, topic, callback, qos):
        self.callbacks[topic] = callback


@pytest.mark.ros
def test_graph_monitor_summary_from_messages():
    from std_msgs.msg import Header

    from vgps.graph.monitor import GraphMonitor
    from vgps_interfaces.msg import (
        ActionCandidates,
        EpisodeStatus,
        ScoredCandidates,
        SelectedAction,
    )
    from vgps_ros import qos
    from vgps_ros.conversions import stamp_from_ns

    node, lines = _FakeNode(), []
    monitor = GraphMonitor(node, echo=lines.append)
    call = node.callbacks
    call[qos.EPISODE](EpisodeStatus(episode=0, task="t", event="started"))
    for stamp, q in ((1_000, [0.5, -0.5]), (2_000, [])):  # the second: an empty Q array
        header = Header(stamp=stamp_from_ns(stamp))
        call[qos.CANDIDATES](ActionCandidates(header=header))
        call[qos.SCORED](ScoredCandidates(header=header, q_values=q, encode_ms=1.0))
        call[qos.SELECTED](SelectedAction(header=header, step=stamp // 1000, reason="argmax",
                                          q_value=float("nan"), q_margin=float("nan")))
    call[qos.SELECTED](SelectedAction(reason="hold"))  # no source image: an idle hold
    call[qos.EPISODE](EpisodeStatus(episode=0, task="t", step=2, event="succeeded",
                                    success=True))
    summary = monitor.summary()
    assert summary["episodes"] == [{"episode": 0, "task": "t", "success": True, "steps": 2,
                                    "outcome": "succeeded"}]
    assert summary["step_latency_ms"]["n"] == 2 and summary["step_latency_ms"]["p50"] >= 0
    assert summary["decisions"] == {"argmax": 2} and summary["idle_holds"] == 1
    assert monitor.episodes_done() == 1 and monitor.write_video(Path("unused.mp4")) is None
    assert "Q max +0.500 mean +0.000 std 0.500" in lines[1]
    assert "Q max +nan mean +nan std nan" in lines[2]
    assert lines[-1] == "episode 0 SUCCEEDED after 2 steps (success=True)"


# -- against a running graph ----------------------------------------------------------------
def _env() -> dict[str, str]:
    env = os.environ.copy()
    env.setdefault("MUJOCO_GL", "egl")
    env["TERM"] = "xterm-256color"
    for key in ("COLUMNS", "LINES"):
        env.pop(key, None)
    return env


def _spawn_in_pty(cmd: list[str], rows: int = 50, cols: int = 120) -> tuple[subprocess.Popen, int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=_env(),
                            start_new_session=True)
    os.close(slave)
    return proc, master


def _read(master: int, timeout: float) -> bytes:
    ready, _, _ = select.select([master], [], [], timeout)
    if not ready:
        return b""
    try:
        return os.read(master, 65536)
    except OSError:  # EIO: the child closed the terminal
        return b""


def _frames(raw: bytes) -> list[dict]:
    """Each redraw's step counters, selected Q and Q sparkline, from the terminal output."""
    text = ANSI.sub("", raw.decode("utf-8", errors="replace"))
    frames = []
    for chunk in text.split(FRAME_TITLE)[1:]:
        step = re.search(r"step (\d+)\s+\(graph step (\d+)\)", chunk)
        q = re.search(r"selected ([+-]\d+\.\d+)", chunk)
        spark = re.search(r"Q selected\s+([" + BARS + r" ]+?)\s{2}", chunk)
        if step:
            frames.append({"step": int(step.group(1)), "graph_step": int(step.group(2)),
                           "q": q.group(1) if q else None,
                           "spark": spark.group(1).strip() if spark else "",
                           "text": chunk})
    return frames


def _enough(frames: list[dict]) -> bool:
    return (len({f["graph_step"] for f in frames}) >= 3
            and len({f["q"] for f in frames if f["q"]}) >= 2
            and any(len(f["spark"]) >= 3 for f in frames))


@pytest.mark.ros
def test_monitor_follows_a_running_graph_in_a_terminal(critic_dir, tmp_path):
    out = tmp_path / "up"
    out.mkdir()
    up_log = (out / "vgps_up.log").open("wb")
    up = subprocess.Popen(
        [VGPS, "up", f"critic:={critic_dir}", "--task", "carrot_on_plate", "--out", str(out),
         "--quiet", "--episodes", "0", "--timeout", "150", "--set", "arm_driver.image_size=64",
         "--set", "arm_driver.max_steps=15"],
        stdout=up_log, stderr=subprocess.STDOUT, env=_env())
    monitor, master = _spawn_in_pty([VGPS, "monitor", "--duration", "150", "--refresh", "5"])
    raw = b""
    try:
        deadline = time.monotonic() + 150
        while not _enough(_frames(raw)):
            assert up.poll() is None, (out / "vgps_up.log").read_text()[-3000:]
            assert monitor.poll() is None, raw.decode(errors="replace")[-3000:]
            assert time.monotonic() < deadline, ANSI.sub("", raw.decode(errors="replace"))[-3000:]
            raw += _read(master, 0.5)
        seen_at = len(raw)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:  # a few more refreshes
            raw += _read(master, 0.2)
        monitor.send_signal(signal.SIGINT)  # Ctrl-C
        end = time.monotonic() + 15
        while monitor.poll() is None and time.monotonic() < end:
            raw += _read(master, 0.2)
        assert monitor.wait(timeout=5) == 0, ANSI.sub("", raw.decode(errors="replace"))[-2000:]

        # 5 s: discovery on a loaded machine can take seconds, and /diagnostics comes at 1 Hz
        once = subprocess.run([VGPS, "monitor", "--once", "--duration", "5"], env=_env(),
                              capture_output=True, text=True, timeout=60)
    finally:
        for proc in (monitor, up):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in (monitor, up):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        os.close(master)
        up_log.close()

    frames = _frames(raw)
    assert len(frames) >= 5, f"{len(frames)} refreshes"
    graph_steps = [f["graph_step"] for f in frames]
    assert len(set(graph_steps)) >= 3 and graph_steps[-1] > graph_steps[0]
    assert len({f["q"] for f in frames if f["q"]}) >= 2, "selected Q never changed"
    assert max(len(f["spark"]) for f in frames) >= 3
    last = frames[-1]["text"]
    assert set(frames[-1]["spark"]) <= set(BARS)
    assert re.search(r"latency [\d.]+ ms", last) and re.search(r"step rate [\d.]+ Hz", last)
    assert re.search(r"argmax \d+", last)
    assert any(re.search(r"vgps: selector_node\s+OK", f["text"]) for f in frames), last
    assert re.search(r"vgps: (critic|policy)_node\s+(OK|WARN)", last), last
    assert seen_at < len(raw)

    assert once.returncode == 0, once.stderr[-2000:]
    assert FRAME_TITLE in once.stdout and "graph step" in once.stdout, once.stdout
    assert "vgps: critic_node" in once.stdout and "Aborted" not in once.stderr
