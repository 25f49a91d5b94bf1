"""Small self-contained SVG line charts for the HTML reports (no plotting library, no scripts).

A chart is a list of :class:`Series` (polylines, optionally with point markers) on linear axes
with "nice" ticks, plus optional :class:`Marker` points (e.g. success / failure at the end of an
episode) and shaded x :class:`Band` s (e.g. steps whose choice changed). NaN values break a line.
The result is one ``<svg>`` element (a string) to inline into HTML.

Usage::

    svg = line_chart([Series([0, 1, 2], [0.1, 0.4, 0.3], "recorded", "#1f77b4"),
                      Series([0, 1, 2], [0.2, 0.3, 0.5], "replayed", "#d62728", dash=True)],
                     title="selected Q", xlabel="step", ylabel="Q",
                     bands=[Band(0.5, 1.5, "#fde2e2")],
                     markers=[Marker(2, 0.3, "#2ca02c", "circle", "success")])
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from html import escape

__all__ = ["PALETTE", "Band", "Marker", "Series", "line_chart", "nice_ticks"]

# Colour-blind friendly categorical palette (Okabe-Ito, then a few Tableau colours).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
           "#000000", "#8c564b", "#7f7f7f")


@dataclasses.dataclass(frozen=True)
class Series:
    """One line: ``x`` and ``y`` of equal length (NaN in ``y`` leaves a gap)."""

    x: Sequence[float]
    y: Sequence[float]
    label: str = ""
    colour: str = PALETTE[0]
    dash: bool = False
    width: float = 1.5
    points: bool = False  # a dot at every value
    opacity: float = 1.0


@dataclasses.dataclass(frozen=True)
class Marker:
    """A single point drawn on top: ``shape`` is ``circle``, ``cross`` or ``diamond``."""

    x: float
    y: float
    colour: str
    shape: str = "circle"
    label: str = ""  # tooltip


@dataclasses.dataclass(frozen=True)
class Band:
    """A shaded vertical band from ``x0`` to ``x1``."""

    x0: float
    x1: float
    colour: str = "#fde2e2"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[lo, hi]`` (1, 2, 2.5, 5 x 10^n steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / max(1, count)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-6:
        if value >= lo - step * 1e-6:
            ticks.append(round(value, 12))
        value += step
    return ticks or [lo]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:.3g}"


def line_chart(series: Sequence[Series], *, title: str = "", xlabel: str = "",
               ylabel: str = "", width: int = 600, height: int = 260,
               markers: Sequence[Marker] = (), bands: Sequence[Band] = (),
               legend: bool = True) -> str:
    """Renders the series as one inline ``<svg>`` element (see the module docstring).

    Args:
        series: the lines; an empty list (or only NaN) draws empty axes saying "no data".
        title: chart title; ``xlabel``/``ylabel``: axis labels.
        width, height: size in CSS pixels (the SVG scales with its container).
        markers: points drawn on top of the lines.
        bands: shaded x ranges drawn below the lines.
        legend: a legend of the labelled series below the plot.

    Returns:
        The SVG markup.
    """
    xs = [float(v) for s in series for v in s.x]
    xs += [m.x for m in markers] + [b.x0 for b in bands] + [b.x1 for b in bands]
    ys = [float(v) for s in series for v in s.y] + [m.y for m in markers]
    xs = [v for v in xs if math.isfinite(v)]
    ys = [v for v in ys if math.isfinite(v)]
    labelled = [s for s in series if s.label] if legend else []
    legend_rows = math.ceil(len(labelled) / 4)
    left, right, top = 62, 14, 28 if title else 10
    bottom = 40 + 18 * legend_rows
    pw, ph = width - left - right, height - top - bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" class="chart" role="img" '
           f'aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    if title:
        out.append(f'<text x="{width / 2:.1f}" y="17" text-anchor="middle" font-size="13" '
                   f'font-weight="bold">{escape(title)}</text>')
    if not xs or not ys:
        out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
                   f'stroke="#999"/><text x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" '
                   'text-anchor="middle" fill="#666">no data</text></svg>')
        return "".join(out)
    xt, yt = nice_ticks(min(xs), max(xs), 8), nice_ticks(min(ys), max(ys), 5)
    x0, x1 = min(xt[0], min(xs)), max(xt[-1], max(xs))
    y0, y1 = min(yt[0], min(ys)), max(yt[-1], max(ys))
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * ph

    for band in bands:
        a, b = sorted((px(band.x0), px(band.x1)))
        out.append(f'<rect x="{a:.1f}" y="{top}" width="{max(b - a, 1.0):.1f}" height="{ph}" '
                   f'fill="{band.colour}"/>')
    for t in yt:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" '
                   f'stroke="#e5e5e5"/><text x="{left - 5}" y="{py(t) + 4:.1f}" '
                   f'text-anchor="end">{_fmt(t)}</text>')
    for t in xt:
        out.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top + ph}" '
                   f'y2="{top + ph + 4}" stroke="#666"/><text x="{px(t):.1f}" '
                   f'y="{top + ph + 15}" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
               'stroke="#666"/>')
    if xlabel:
        out.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph + 30}" '
                   f'text-anchor="middle">{escape(xlabel)}</text>')
    if ylabel:
        out.append(f'<text transform="translate(13 {top + ph / 2:.1f}) rotate(-90)" '
                   f'text-anchor="middle">{escape(ylabel)}</text>')
    for s in series:
        out.extend(_polyline(s, px, py))
    for m in markers:
        if math.isfinite(m.x) and math.isfinite(m.y):
            out.append(_marker(px(m.x), py(m.y), m))
    for i, s in enumerate(labelled):
        lx = left + (i % 4) * (pw / 4)
        ly = top + ph + 50 + 18 * (i // 4)
        dash = ' stroke-dasharray="5 3"' if s.dash else ""
        out.append(f'<line x1="{lx:.1f}" x2="{lx + 22:.1f}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{s.colour}" stroke-width="{max(s.width, 2)}"{dash}/>'
                   f'<text x="{lx + 27:.1f}" y="{ly}">{escape(s.label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _polyline(s: Series, px, py) -> list[str]:
    dash = ' stroke-dasharray="5 3"' if s.dash else ""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(s.x, s.y):
        x, y = float(x), float(y)
        if math.isfinite(x) and math.isfinite(y):
            runs[-1].append((px(x), py(y)))
        elif runs[-1]:
            runs.append([])
    parts = []
    for run in runs:
        if len(run) > 1:
            pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in run)
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{s.colour}" '
                         f'stroke-width="{s.width}" stroke-opacity="{s.opacity}"{dash}>'
                         f'<title>{escape(s.label)}</title></polyline>')
        if s.points or len(run) == 1:
            parts.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="{1.2 + s.width:.1f}" '
                         f'fill="{s.colour}" fill-opacity="{s.opacity}"/>' for a, b in run)
    return parts


def _marker(x: float, y: float, m: Marker) -> str:
    tip = f"<title>{escape(m.label)}</title>" if m.label else ""
    if m.shape == "cross":
        r = 6
        return (f'<g stroke="{m.colour}" stroke-width="3">{tip}<line x1="{x - r:.1f}" '
                f'y1="{y - r:.1f}" x2="{x + r:.1f}" y2="{y + r:.1f}"/><line x1="{x - r:.1f}" '
                f'y1="{y + r:.1f}" x2="{x + r:.1f}" y2="{y - r:.1f}"/></g>')
    if m.shape == "diamond":
        r = 6
        return (f'<polygon points="{x:.1f},{y - r:.1f} {x + r:.1f},{y:.1f} {x:.1f},{y + r:.1f} '
                f'{x - r:.1f},{y:.1f}" fill="{m.colour}" stroke="white">{tip}</polygon>')
    return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{m.colour}" stroke="white" '
            f'stroke-width="1.5">{tip}</circle>')
