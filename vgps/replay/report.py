"""The replay report: one self-contained HTML page (inline SVG charts, PNG data URIs, no scripts).

Made by :func:`vgps.replay.rescore.replay` from its :class:`~vgps.replay.result.ReplayResult`:
bag problems and skipped steps first (in a red box), a summary table (steps, agreement, max
|dQ|, critics, K, beta), the episodes, charts (the Q of every candidate per step, recorded and
replayed; selected vs best Q; the value trace of each episode with its success / failure marker;
|dQ| per step) and, for the steps whose choice changed (at most ``max_thumbnails``, chosen by the
caller), the frame drawn twice with :func:`vgps_widowx.overlay.draw_overlay`: the recorded
Q-values and executed candidate, and the replayed Q-values and new choice. Nothing is fetched
from the network when it is viewed.

Usage::

    from vgps.replay.report import write_report
    path = write_report(result, frames, "out/replay")     # -> out/replay/report.html
"""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from vgps.replay.plots import PALETTE, Band, Marker, Series, line_chart
from vgps.replay.result import ReplayResult, StepFrame

__all__ = ["REPORT_HTML", "frame_png", "render_report", "write_report"]

REPORT_HTML = "report.html"
THUMBNAIL_SIZE = 256  # px, shorter side of a drawn frame
REC, NEW = "#0072B2", "#D55E00"  # recorded / replayed colours in every chart
CHANGED_BAND = "#fcebe1"

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1280px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} .num{text-align:right;font-variant-numeric:tabular-nums}
.problems{border:2px solid #c0392b;background:#fdecea;padding:8px 14px;margin:12px 0}
.problems h2{color:#c0392b;border:0;margin:4px 0} .warn{background:#fff6e0;border-color:#e6a700}
.ok{color:#1e7b34;font-weight:bold} .bad{color:#c0392b;font-weight:bold} .muted{color:#777}
.charts{display:flex;flex-wrap:wrap;gap:12px} .chart{max-width:100%;height:auto}
.pair{display:inline-block;vertical-align:top;width:530px;margin:0 14px 16px 0;font-size:12px}
.pair img{width:256px;height:auto;image-rendering:auto;border:1px solid #ccc;margin-right:4px}
"""


def frame_png(image: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URI of a uint8 (H, W, 3) image."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, "PNG",
                                                                       optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '<span class="muted">n/a</span>'
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return escape(str(value))


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _table(rows: Sequence[Sequence[str]], head: Sequence[str] = ()) -> str:
    parts = ["<table>"]
    if head:
        parts.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>")
    parts += ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows]
    return "".join(parts) + "</table>"


def _summary_table(s: ReplayResult) -> str:
    critic = s.critic
    agreement = s.agreement
    agree = ('<span class="muted">n/a (no recorded choices)</span>' if agreement is None else
             f'<span class="{"ok" if agreement == 1 else "bad"}">{agreement:.1%}</span> '
             f'of {s.compared} steps ({len(s.changed_steps)} changed)')
    same = critic.same_as_recorded
    rows = [
        ("bag", escape(s.bag)),
        ("steps replayed", f'{s.steps} ({len(s.skipped)} skipped)'),
        ("agreement", agree),
        ("max |ΔQ|", _num(s.max_abs_q_diff, 3) + ' <span class="muted">(same critic, '
                                                      "same candidates)</span>"),
        ("critic (replayed)", f'{escape(critic.id)} <span class="muted">'
                              f'{escape(critic.path)}</span>'),
        ("critic (recorded)", escape(", ".join(critic.recorded_ids) or "none")
         + (' <span class="ok">same</span>' if same else ' <span class="bad">different</span>')),
        ("K", f'{_num(s.k) if s.k is not None else "as recorded"} '
              f'<span class="muted">(recorded {s.recorded_k})</span>'),
        ("beta", f'{_num(s.beta) if s.beta is not None else "as recorded"} '
                 f'<span class="muted">(recorded {s.recorded_beta}, seed {s.seed})</span>'),
        ("bag problems", str(len(s.problems)) if s.problems else "none"),
    ]
    return _table([(f"<b>{escape(k)}</b>", v) for k, v in rows])


def _problems(s: ReplayResult) -> str:
    parts = []
    if s.problems:
        items = "".join(f"<li>{escape(p)}</li>" for p in s.problems)
        parts.append(f'<div class="problems" id="problems"><h2>Bag problems '
                     f'({len(s.problems)}): this report covers the readable part only</h2>'
                     f"<ul>{items}</ul></div>")
    if s.skipped or s.notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in s.notes)
        items += "".join(f'<li>episode {escape(str(x.episode))} step {x.step} '
                         f'(stamp {x.stamp_ns}): skipped, {escape(x.reason)}</li>'
                         for x in s.skipped)
        parts.append(f'<div class="problems warn" id="skipped"><h2>Skipped steps and notes '
                     f"</h2><ul>{items}</ul></div>")
    return "".join(parts)


def _episodes(s: ReplayResult) -> str:
    rows = []
    for ep in s.episodes:
        outcome = ep.outcome
        cls = "ok" if ep.success else "bad"
        rows.append((str(ep.episode), escape(ep.task), escape(ep.instruction),
                     f'<span class="{cls}">{escape(outcome)}</span>',
                     _num(ep.episode_steps), str(ep.replayed_steps),
                     _num(ep.agreement, 3), str(ep.changed),
                     _num(ep.mean_recorded_q, 3), _num(ep.mean_new_q, 3)))
    head = ("episode", "task", "instruction", "outcome", "steps", "replayed", "agreement",
            "changed", "mean recorded Q", "mean replayed Q")
    return _table(rows, head) if rows else '<p class="muted">no episode status recorded</p>'


def _charts(s: ReplayResult) -> str:
    records = s.records
    if not records:
        return '<p class="muted">no replayed steps: nothing to plot</p>'
    xs = list(range(len(records)))
    bands = [Band(i - 0.5, i + 0.5, CHANGED_BAND) for i, r in enumerate(records)
             if r.agree is False]
    kmax = max(len(r.q_recorded) for r in records)

    def per_candidate(key: str, colour: str, label: str) -> list[Series]:
        return [Series(xs, [getattr(r, key)[j] if j < len(getattr(r, key)) else math.nan
                           for r in records],
                       f"{label}, candidate 0..{kmax - 1}" if j == 0 else "", colour,
                       width=1.0, points=True, opacity=0.45) for j in range(kmax)]

    common: dict[str, Any] = {"xlabel": "replayed step (shaded: choice changed)",
                              "ylabel": "Q", "width": 600}
    charts = [
        line_chart(per_candidate("q_recorded", REC, "recorded"),
                   title="Q of each candidate, recorded", bands=bands, **common),
        line_chart(per_candidate("q_new", NEW, "replayed"),
                   title="Q of each candidate, replayed", bands=bands, **common),
        line_chart([
            Series(xs, [_nan(r.recorded_q) for r in records], "recorded: executed", REC,
                   points=True),
            Series(xs, [max(r.q_recorded) for r in records], "recorded: best", REC,
                   dash=True),
            Series(xs, [r.new_q for r in records], "replayed: chosen", NEW, points=True),
            Series(xs, [max(r.q_new) for r in records], "replayed: best", NEW, dash=True),
        ], title="Selected Q vs best Q per step", bands=bands, **common),
    ]
    diffs = [r.max_abs_q_diff for r in records]
    charts.append(line_chart([Series(xs, diffs, "max |ΔQ| over the step's candidates", "#444",
                                     points=True)],
                             title="max |ΔQ| (recorded vs replayed) per step", bands=bands,
                             **{**common, "ylabel": "|ΔQ|"}))
    charts.append(_value_traces(s))
    return '<div class="charts">' + "".join(charts) + "</div>"


def _value_traces(s: ReplayResult) -> str:
    series, markers = [], []
    for n, ep in enumerate(s.episodes):
        mine = [r for r in s.records if r.episode == ep.episode]
        if not mine:
            continue
        colour = PALETTE[n % len(PALETTE)]
        steps = [r.step for r in mine]
        label = f'episode {ep.episode}'
        series.append(Series(steps, [_nan(r.recorded_q) for r in mine],
                             f"{label} recorded", colour, points=True))
        series.append(Series(steps, [r.new_q for r in mine], f"{label} replayed", colour,
                             dash=True, opacity=0.8))
        end = mine[-1]
        y = _nan(end.recorded_q) if end.recorded_q is not None else end.new_q
        ok = bool(ep.success)
        markers.append(Marker(end.step, y, "#1e7b34" if ok else "#c0392b",
                              "circle" if ok else "cross", f'{label}: {ep.outcome}'))
    return line_chart(series, title="Value trace per episode (end: ● success, ✕ failure)",
                      xlabel="step of the episode", ylabel="selected Q", width=600,
                      markers=markers)


class _Drawer:
    """Draws one frame's candidates with the overlay (the sim camera) or plainly."""

    def __init__(self, robot: str):
        self.robot = robot
        self._cameras: dict[tuple[int, int], Any] = {}
        self.note = ""

    def camera(self, width: int, height: int) -> Any:
        if self.robot != "sim":
            self.note = (f"robot:={self.robot}: no camera model in the bag, frames are shown "
                         "without arrows")
            return None
        if (width, height) not in self._cameras:
            try:
                from vgps_widowx.sim.camera import sim_camera_model

                self._cameras[(width, height)] = sim_camera_model(None, width, height)
            except Exception as exc:  # noqa: BLE001 - no MuJoCo here: plain frames
                self.note = f"no sim camera model ({type(exc).__name__}: {exc})"
                self._cameras[(width, height)] = None
        return self._cameras[(width, height)]

    def __call__(self, frame: np.ndarray, ee: np.ndarray | None, actions: np.ndarray,
                 q: np.ndarray, chosen: int, note: str) -> np.ndarray:
        from PIL import Image

        from vgps_widowx.overlay import OverlayConfig, draw_overlay, output_scale

        camera = self.camera(frame.shape[1], frame.shape[0])
        if camera is not None and ee is not None:
            return draw_overlay(frame, camera, ee, actions, q, chosen,
                                OverlayConfig(min_size=THUMBNAIL_SIZE), note=note)
        scale = output_scale(frame.shape, THUMBNAIL_SIZE)
        size = (frame.shape[1] * scale, frame.shape[0] * scale)
        return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))


def _thumbnails(s: ReplayResult, frames: Sequence[StepFrame], robot: str) -> str:
    changed = s.changed_steps
    if not changed:
        return '<p class="ok">no step changed its choice</p>'
    draw = _Drawer(robot)
    parts = [f"<p>{len(changed)} steps changed their choice; the first {len(frames)} are drawn "
             "(left: recorded Q and the executed candidate, right: replayed Q and the new "
             "choice; arrows: each candidate's EE motion ×5, viridis by Q, magenta outline: "
             "chosen).</p>"]
    for f in frames:
        r = s.records[f.record]
        k = len(f.q_new)
        left = draw(f.frame, f.ee_pos, f.actions, f.q_recorded, f.recorded_index,
                    f"recorded #{f.recorded_index}")
        right = draw(f.frame, f.ee_pos, f.actions[:k], f.q_new, f.new_index,
                     f"replayed #{f.new_index}")
        parts.append(
            f'<div class="pair" id="changed-{f.record}"><img src="{frame_png(left)}" '
            f'alt="recorded choice"><img src="{frame_png(right)}" alt="replayed choice"><br>'
            f'episode {r.episode} step {r.step}: recorded #{r.recorded_index} '
            f'(Q {_num(r.recorded_q, 3)}) → replayed #{r.new_index} '
            f'(Q {_num(r.new_q, 3)}; recorded choice now {_num(r.new_q_of_recorded, 3)})'
            "</div>")
    if draw.note:
        parts.append(f'<p class="muted">{escape(draw.note)}</p>')
    rows = [(str(c.episode), str(c.step), str(c.stamp_ns), str(c.recorded_index),
             str(c.new_index)) for c in changed]
    parts.append(_table(rows, ("episode", "step", "stamp (ns)", "recorded", "replayed")))
    return "".join(parts)


def _steps_table(s: ReplayResult) -> str:
    rows = []
    for r in s.records:
        agree = {True: '<span class="ok">yes</span>', False: '<span class="bad">no</span>',
                 None: '<span class="muted">n/a</span>'}[r.agree]
        rows.append((str(r.episode), str(r.step), f'{r.k}/{r.k_recorded}',
                     _num(r.beta), escape(r.recorded_reason), str(r.recorded_index),
                     str(r.new_index), agree, _num(r.recorded_q, 4),
                     _num(r.new_q, 4), f'<span class="num">{r.max_abs_q_diff:.2e}</span>'))
    head = ("episode", "step", "K used/recorded", "beta", "recorded reason", "recorded",
            "replayed", "agree", "recorded Q", "replayed Q", "max |ΔQ|")
    return f"<details><summary>all {len(rows)} steps</summary>{_table(rows, head)}</details>"


def render_report(summary: ReplayResult, frames: Sequence[StepFrame] = (),
                  robot: str = "sim") -> str:
    """The report page as a string (see the module docstring).

    Args:
        summary: what :func:`vgps.replay.rescore.replay` found (its ``to_json()`` is
            replay.json).
        frames: :class:`vgps.replay.result.StepFrame` s of changed steps to draw.
        robot: the recorded ``robot:=`` (``sim``: frames get the sim camera's overlay).
    """
    title = f"V-GPS replay of {Path(summary.bag).name}"
    return "".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">vgps {escape(summary.vgps_version)}, {escape(summary.created)}'
        f', {summary.elapsed_s} s</p>',
        _problems(summary),
        "<h2>Summary</h2>", _summary_table(summary),
        "<h2>Episodes</h2>", _episodes(summary),
        "<h2>Q-values</h2>", _charts(summary),
        "<h2 id='changed'>Changed choices</h2>", _thumbnails(summary, frames, robot),
        "<h2>Steps</h2>", _steps_table(summary),
        "</body></html>"])


def write_report(summary: ReplayResult, frames: Sequence[StepFrame], out: str | os.PathLike,
                 robot: str = "sim") -> Path:
    """Writes ``OUT/report.html`` (see :func:`render_report`); returns its path."""
    path = Path(out) / REPORT_HTML
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(summary, frames, robot), encoding="utf-8")
    return path
