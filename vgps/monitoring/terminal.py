"""``vgps monitor``: a live terminal view of a running steering graph.

A plain rclpy node (real DDS, the ``ROS_DOMAIN_ID`` of the environment) listens to what the graph
publishes - names and QoS from :mod:`vgps_ros.qos` - and a ``rich`` Live view redraws a
few times per second:

* episode, task, instruction and step (``vgps/episode``, ``vgps/selected``);
* selected Q (``vgps/q_selected``), margin (``vgps/q_margin``), max / mean Q and K
  (``vgps/q_values``);
* latency: ``vgps/candidates`` received -> ``vgps/selected`` with the same stamp received (ms),
  step rate from the candidates' arrivals (Hz), the policy's ``sample_ms``, the critic's
  ``encode_ms`` / ``score_ms`` / ``pre_encoded`` / ``critic_id`` (``vgps/scored``);
* decisions by reason, each node's ``/diagnostics`` level and message;
* sparklines of the last N selected Q, margins, latencies and step rates.

Usage::

    vgps monitor                      # until Ctrl-C
    vgps monitor --duration 30        # 30 s, then exit 0
    vgps monitor --once --duration 3  # listen 3 s, print one snapshot (scripts, logs)

In code: ``MonitorState`` holds what was heard (no ROS; the stamp matching and step statistics
are a :class:`~vgps.monitoring.tracker.StepTracker`) and renders it; :func:`run` wires it to
rclpy and a terminal.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from vgps.monitoring.tracker import QStats, Scores, StepTracker

BARS = "▁▂▃▄▅▆▇█"
LEVELS = {0: ("OK", "green"), 1: ("WARN", "yellow"), 2: ("ERROR", "red"), 3: ("STALE", "magenta")}
STALE_AFTER_S = 5.0  # a node whose diagnostics are older than this is shown as stale


def sparkline(values: Iterable[float], width: int | None = None) -> str:
    """Unicode bars (``▁`` lowest .. ``█`` highest of the shown values); blank for NaN.

    Args:
        values: numbers, oldest first.
        width: keep only the last ``width`` values.

    Returns:
        One character per value.
    """
    vals = [float(v) for v in values]
    if width is not None:
        vals = vals[-width:] if width > 0 else []
    finite = [v for v in vals if math.isfinite(v)]
    if not finite:
        return " " * len(vals)
    lo, hi = min(finite), max(finite)
    out = []
    for v in vals:
        if not math.isfinite(v):
            out.append(" ")
        elif hi - lo < 1e-12:
            out.append(BARS[3])
        else:
            out.append(BARS[min(len(BARS) - 1, int((v - lo) / (hi - lo) * len(BARS)))])
    return "".join(out)


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
    """Settings of :func:`run`."""

    duration_s: float = 0.0  # stop after this many seconds (0: until Ctrl-C)
    once: bool = False  # listen for duration_s (default 2 s), print one snapshot, exit
    history: int = 40  # values per sparkline
    refresh_hz: float = 4.0  # redraws per second
    namespace: str = ""  # the graph's namespace ('' = root)

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not (math.isfinite(self.duration_s) and self.duration_s >= 0):
            raise ValueError(f"{name}.duration_s={self.duration_s!r}: must be >= 0")
        if not 2 <= self.history <= 1000:
            raise ValueError(f"{name}.history={self.history!r}: need 2..1000 values")
        if not 0.5 <= self.refresh_hz <= 30:
            raise ValueError(f"{name}.refresh_hz={self.refresh_hz!r}: need 0.5..30 Hz")


class MonitorState:
    """What the monitor heard, thread-safe; ``on_*`` take plain values, ``render`` draws.

    Args:
        history: values kept per sparkline.
        clock: monotonic time source (seconds).
    """

    def __init__(self, history: int = 40, clock: Any = time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self.started = clock()
        series = ("q_selected", "margin", "latency_ms", "rate_hz")
        self.series = {k: collections.deque(maxlen=history) for k in series}
        self.q_selected = self.margin = self.q_max = self.q_mean = math.nan
        self.k = 0
        self.tracker = StepTracker()
        self.last_reason = ""
        self.latency_ms = self.sample_ms = math.nan
        self.scored: Scores | None = None
        self.diagnostics: dict[str, tuple[int, str, float]] = {}
        self.messages = 0

    # -- inputs (any thread) ----------------------------------------------------------------------
    def on_q_values(self, values: Iterable[float]) -> None:
        stats = QStats.of(values)
        with self._lock:
            self.messages += 1
            self.k, self.q_max, self.q_mean = stats.k, stats.max, stats.mean

    def on_q_selected(self, value: float) -> None:
        with self._lock:
            self.messages += 1
            self.q_selected = float(value)
            self.series["q_selected"].append(self.q_selected)

    def on_margin(self, value: float) -> None:
        with self._lock:
            self.messages += 1
            self.margin = float(value)
            self.series["margin"].append(self.margin)

    def on_candidates(self, stamp_ns: int, sample_ms: float) -> None:
        now = self._clock()
        with self._lock:
            self.messages += 1
            rate = self.tracker.candidates(stamp_ns, now)
            if math.isfinite(rate):
                self.series["rate_hz"].append(rate)
            self.sample_ms = float(sample_ms)

    def on_scored(self, encode_ms: float, score_ms: float, pre_encoded: bool,
                  critic_id: str, stamp_ns: int = 0, q_values: Iterable[float] = ()) -> None:
        with self._lock:
            self.messages += 1
            self.scored = self.tracker.scored(stamp_ns, q_values, encode_ms, score_ms,
                                              pre_encoded, critic_id)

    def on_selected(self, stamp_ns: int, step: int, index: int, reason: str) -> None:
        now = self._clock()
        with self._lock:
            self.messages += 1
            record = self.tracker.selected(stamp_ns, now, step, index, reason)
            self.last_reason = (f"{record.reason} #{record.index}" if record.index >= 0
                                else record.reason)
            if record.first and math.isfinite(record.latency_ms):
                self.latency_ms = record.latency_ms
                self.series["latency_ms"].append(self.latency_ms)

    def on_episode(self, episode: int, task: str, instruction: str, step: int, event: str,
                   success: bool) -> None:
        with self._lock:
            self.messages += 1
            self.tracker.episode_event(episode, task, instruction, step, event, success)

    def on_diagnostic(self, name: str, level: int, message: str) -> None:
        with self._lock:
            self.messages += 1
            self.diagnostics[name] = (int(level), str(message), self._clock())

    # -- output -----------------------------------------------------------------------------------
    def render(self, title: str = "vgps monitor") -> Panel:
        """The current view as a rich renderable."""
        with self._lock:
            now = self._clock()
            info = Table.grid(padding=(0, 2))
            info.add_column(style="bold cyan", no_wrap=True)
            info.add_column()
            ep, graph_step = self.tracker.last_episode, self.tracker.step
            if ep is not None:
                done = f"  [{ep.event}{', success' if ep.success else ''}]"
                info.add_row("episode", f"{ep.episode}  {ep.task}  \"{ep.instruction}\"")
            else:
                done = ""
                info.add_row("episode", "[dim]waiting for vgps/episode ...[/dim]")
            step = ep.step if ep is not None else graph_step
            info.add_row("step", f"step {max(step, 0)}  (graph step {max(graph_step, 0)})"
                         f"{done}")
            if self.tracker.outcomes:
                info.add_row("outcomes", "  ".join(f"{k} {v}" for k, v in
                                                   sorted(self.tracker.outcomes.items())))
            info.add_row("Q", f"selected {_num(self.q_selected, '+.3f')}  margin "
                         f"{_num(self.margin, '.3f')}  max {_num(self.q_max, '+.3f')}  mean "
                         f"{_num(self.q_mean, '+.3f')}  K={self.k}")
            rates = self.series["rate_hz"]
            rate = sum(list(rates)[-5:]) / len(list(rates)[-5:]) if rates else math.nan
            info.add_row("timing", f"latency {_num(self.latency_ms, '.1f')} ms (candidates -> "
                         f"selected)  step rate {_num(rate, '.2f')} Hz  policy sample "
                         f"{_num(self.sample_ms, '.1f')} ms")
            if self.scored is not None:
                s = self.scored
                info.add_row("critic", f"encode {s.encode_ms:.1f} ms"
                             f"{' (pre-encoded)' if s.pre_encoded else ''}  score "
                             f"{s.score_ms:.1f} ms  id {s.critic_id}")
            decisions = self.tracker.all_decisions()
            info.add_row("decisions", ("  ".join(f"{k} {v}" for k, v in
                                                 sorted(decisions.items()))
                                       + (f"  (last: {self.last_reason})"
                                          if self.last_reason else "")) or "[dim]none yet[/dim]")
            nodes = Table.grid(padding=(0, 2))
            for name, (level, message, seen) in sorted(self.diagnostics.items()):
                if now - seen > STALE_AFTER_S:
                    level = 3
                word, colour = LEVELS.get(level, (str(level), "white"))
                nodes.add_row(Text(name), Text(word, style=f"bold {colour}"),
                              Text(message[:70], style="dim"))
            if not self.diagnostics:
                nodes.add_row(Text("waiting for /diagnostics ...", style="dim"))
            trends = Table.grid(padding=(0, 2))
            trends.add_column(style="bold cyan", no_wrap=True)
            trends.add_column(no_wrap=True)
            trends.add_column(style="dim", no_wrap=True)
            for label, key, fmt in (("Q selected", "q_selected", "+.3f"),
                                    ("margin", "margin", ".3f"),
                                    ("latency ms", "latency_ms", ".1f"),
                                    ("rate Hz", "rate_hz", ".2f")):
                values = list(self.series[key])
                finite = [v for v in values if math.isfinite(v)]
                span = (f"{min(finite):{fmt}} .. {max(finite):{fmt}}" if finite else "")
                trends.add_row(label, sparkline(values) or "-", span)
            heard = f"{self.messages} messages in {now - self.started:.0f} s"
        return Panel(Group(info, Text(""), nodes, Text(""), trends), title=title,
                     subtitle=heard, expand=False)


def _num(value: float, fmt: str) -> str:
    return "-" if not math.isfinite(value) else format(value, fmt)


def subscribe(node: Any, state: MonitorState) -> None:
    """Subscribes ``node`` to the graph's topics, feeding ``state``."""
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import Float32, Float32MultiArray

    from vgps_interfaces.msg import (
        ActionCandidates,
        EpisodeStatus,
        ScoredCandidates,
        SelectedAction,
    )
    from vgps_ros import qos
    from vgps_ros.conversions import stamp_to_ns

    def diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            state.on_diagnostic(status.name, _level(status.level), status.message)

    sub = node.create_subscription
    cmd = qos.COMMAND
    sub(Float32MultiArray, qos.Q_VALUES, lambda m: state.on_q_values(m.data), cmd)
    sub(Float32, qos.Q_SELECTED, lambda m: state.on_q_selected(m.data), cmd)
    sub(Float32, qos.Q_MARGIN, lambda m: state.on_margin(m.data), cmd)
    sub(ActionCandidates, qos.CANDIDATES, lambda m: state.on_candidates(
        stamp_to_ns(m.header.stamp), m.sample_ms), cmd)
    sub(ScoredCandidates, qos.SCORED, lambda m: state.on_scored(
        m.encode_ms, m.score_ms, m.pre_encoded, m.critic_id, stamp_to_ns(m.header.stamp),
        m.q_values), cmd)
    sub(SelectedAction, qos.SELECTED, lambda m: state.on_selected(
        stamp_to_ns(m.header.stamp), m.step, m.index, m.reason), cmd)
    sub(EpisodeStatus, qos.EPISODE, lambda m: state.on_episode(
        m.episode, m.task, m.instruction, m.step, m.event, m.success), cmd)
    sub(DiagnosticArray, qos.DIAGNOSTICS, diagnostics, qos.DIAGNOSTICS_QOS)


def _level(raw: Any) -> int:
    """DiagnosticStatus.level is a ``byte`` (``bytes`` of length 1 in rclpy)."""
    return raw[0] if isinstance(raw, (bytes, bytearray)) else int(raw)


def run(config: MonitorConfig, console: Console | None = None) -> int:
    """Listens to the graph and shows the view until the duration passes or Ctrl-C.

    Returns:
        0 (an interrupt is a normal way to stop).
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions
    from rich.live import Live

    console = console or Console()
    context = rclpy.Context()
    # Python's own SIGINT handling: Ctrl-C raises KeyboardInterrupt here, in the main thread
    # (set explicitly: a process started in the background inherits SIGINT ignored).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    rclpy.init(args=["vgps-monitor"], context=context,
               signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(f"vgps_monitor_{os.getpid()}", namespace=config.namespace or None,
                             context=context)
    state = MonitorState(history=config.history)
    subscribe(node, state)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True, name="monitor-spin")
    spinner.start()
    title = f"vgps monitor  ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}"
    period = 1.0 / config.refresh_hz
    duration = config.duration_s or (2.0 if config.once else 0.0)
    deadline = time.monotonic() + duration if duration else math.inf
    try:
        if config.once:
            time.sleep(max(0.0, deadline - time.monotonic()))
            console.print(state.render(title))
        else:
            with Live(state.render(title), console=console, auto_refresh=False,
                      transient=False) as live:
                while time.monotonic() < deadline:
                    live.update(state.render(title), refresh=True)
                    time.sleep(min(period, max(0.0, deadline - time.monotonic())))
                live.update(state.render(title), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        executor.shutdown(timeout_sec=1.0)
        spinner.join(timeout=2.0)  # a spinning thread at interpreter exit aborts rclpy
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return 0
