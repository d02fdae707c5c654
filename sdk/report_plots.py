"""Inline SVG charts for the HTML report: scatter with a front and budget lines, histograms, bars.

Hand-written SVG (no matplotlib, no JavaScript, no network): the report stays one small file
that renders the same everywhere.  Every mark carries a <title> with its exact value, so a
reader (or a test) can hover it and get the number behind it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Optional

WIDTH = 1000
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    ok: Optional[bool] = None  # inside every budget (None: no budget)
    on_front: bool = False


@dataclass(frozen=True)
class Line:
    """A budget drawn across a chart: vertical (axis 'x') or horizontal (axis 'y')."""

    axis: str
    value: float
    label: str


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, value = [], start
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks per decade covering [lo, hi] (lo > 0), thinned to at most ~10."""
    start, stop = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks = [m * 10.0 ** e for e in range(start, stop + 1) for m in (1, 2, 5)]
    lo_tick = max(t for t in ticks if t <= lo)
    hi_tick = min(t for t in ticks if t >= hi)
    ticks = [t for t in ticks if lo_tick <= t <= hi_tick]
    if len(ticks) > 10:
        ticks = [t for t in ticks if t in (lo_tick, hi_tick) or f"{t:e}".startswith("1")]
    return [float(f"{t:.6g}") for t in ticks]


def wants_log(values: Sequence[float]) -> bool:
    """A log axis when positive values span more than a factor of 20 (e.g. 0.01 ms and 100 ms)."""
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and bool(positive) and max(positive) > 20 * min(positive)


def fmt(value: float) -> str:
    return f"{value:.4g}"


def label_margin(labels: Sequence[str]) -> int:
    """Left margin that fits the longest label at 11 px (about 6.2 px a character)."""
    return min(360, max(80, int(6.2 * max((len(x) for x in labels), default=0)) + 16))


class _Frame:
    """Maps data to pixels inside a plot area with margins; draws axes and grid."""

    def __init__(self, xs: Sequence[float], ys: Sequence[float], height: int,
                 left: int = 64, right: int = 24, top: int = 16, bottom: int = 42) -> None:
        self.log_x = wants_log(xs)
        self.xt = log_ticks(min(xs), max(xs)) if self.log_x else nice_ticks(min(xs), max(xs))
        self.yt = nice_ticks(min(ys), max(ys))
        self.left, self.right, self.top, self.bottom, self.height = left, right, top, bottom, height

    def px(self, x: float) -> float:
        lo, hi = self.xt[0], self.xt[-1]
        if self.log_x:
            x, lo, hi = (math.log10(max(v, 1e-12)) for v in (x, lo, hi))
        return self.left + (x - lo) / (hi - lo) * (WIDTH - self.left - self.right)

    def x_at(self, fraction: float) -> float:
        """The data value at a fraction of the x range (for histogram bin edges)."""
        lo, hi = self.xt[0], self.xt[-1]
        if self.log_x:
            return float(10 ** (math.log10(lo) + fraction * (math.log10(hi) - math.log10(lo))))
        return lo + fraction * (hi - lo)

    def py(self, y: float) -> float:
        lo, hi = self.yt[0], self.yt[-1]
        return self.height - self.bottom - (y - lo) / (hi - lo) * (self.height - self.top - self.bottom)

    def axes(self, x_label: str, y_label: str) -> list[str]:
        out = []
        for t in self.xt:
            x = self.px(t)
            out.append(f'<line x1="{x:.1f}" y1="{self.top}" x2="{x:.1f}" '
                       f'y2="{self.height - self.bottom}" stroke="#e5e5e5"/>')
            out.append(f'<text x="{x:.1f}" y="{self.height - self.bottom + 14}" '
                       f'text-anchor="middle" {FONT}>{fmt(t)}</text>')
        for t in self.yt:
            y = self.py(t)
            out.append(f'<line x1="{self.left}" y1="{y:.1f}" x2="{WIDTH - self.right}" '
                       f'y2="{y:.1f}" stroke="#e5e5e5"/>')
            out.append(f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>'
                       f'{fmt(t)}</text>')
        scale = " (log scale)" if self.log_x else ""
        out.append(f'<text x="{(self.left + WIDTH - self.right) / 2:.0f}" y="{self.height - 6}" '
                   f'text-anchor="middle" {FONT}>{escape(x_label)}{scale}</text>')
        mid = (self.top + self.height - self.bottom) / 2
        out.append(f'<text x="14" y="{mid:.0f}" transform="rotate(-90 14 {mid:.0f})" '
                   f'text-anchor="middle" {FONT}>{escape(y_label)}</text>')
        return out


def _svg(height: int, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}">'
            + "".join(body) + "</svg>")


def scatter(points: Sequence[Point], x_label: str, y_label: str, lines: Sequence[Line] = (),
            height: int = 360) -> str:
    """Candidates as dots (green inside every budget, red outside), the front joined by a line."""
    xs = [p.x for p in points] + [ln.value for ln in lines if ln.axis == "x"]
    ys = [p.y for p in points] + [ln.value for ln in lines if ln.axis == "y"]
    frame = _Frame(xs, ys, height)
    body = frame.axes(x_label, y_label)
    for ln in lines:
        if ln.axis == "x":
            x = frame.px(ln.value)
            body.append(f'<line class="budget" x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" '
                        f'y2="{height - frame.bottom}" stroke="#d62728" stroke-dasharray="6 4"/>')
            anchor, dx = ("end", -4) if x > WIDTH * 0.7 else ("start", 4)
            body.append(f'<text x="{x + dx:.1f}" y="{frame.top + 10}" text-anchor="{anchor}" '
                        f'fill="#d62728" {FONT}>{escape(ln.label)}</text>')
        else:
            y = frame.py(ln.value)
            body.append(f'<line class="budget" x1="{frame.left}" y1="{y:.1f}" '
                        f'x2="{WIDTH - frame.right}" y2="{y:.1f}" stroke="#d62728" '
                        f'stroke-dasharray="6 4"/>')
            body.append(f'<text x="{WIDTH - frame.right - 4}" y="{y - 4:.1f}" text-anchor="end" '
                        f'fill="#d62728" {FONT}>{escape(ln.label)}</text>')
    front = sorted((p for p in points if p.on_front), key=lambda p: p.x)
    if len(front) > 1:
        path = " ".join(f"{frame.px(p.x):.1f},{frame.py(p.y):.1f}" for p in front)
        body.append(f'<polyline points="{path}" fill="none" stroke="#555" stroke-width="1.5"/>')
    for n, p in enumerate(points, 1):
        color = {True: "#2ca02c", False: "#d62728", None: "#1f77b4"}[p.ok]
        x, y = frame.px(p.x), frame.py(p.y)
        body.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="{6 if p.on_front else 4.5}" '
                    f'fill="{color}" stroke="#222" stroke-width="{1.5 if p.on_front else 0.5}">'
                    f'<title>{escape(p.label)}: {x_label} {fmt(p.x)}, {y_label} {fmt(p.y)}</title>'
                    f'</circle>')
        body.append(f'<text x="{x + 7:.1f}" y="{y - 5:.1f}" {FONT}>{n}</text>')
    legend = "   ".join(f"{n} {p.label}" for n, p in enumerate(points, 1))
    body.append(f'<text x="{frame.left}" y="{height + 10}" {FONT}>{escape(legend)}</text>')
    return _svg(height + 16, body, f"{y_label} against {x_label}")


def histograms(series: Sequence[tuple[str, Sequence[float], dict[str, float]]], unit: str,
               bins: int = 40, row: int = 64) -> str:
    """One histogram per (label, samples, markers) on a shared x axis; markers are vertical ticks
    (e.g. {"p50": 1.2, "p99": 1.9}).  Samples are clipped to the shared range's top (p99.9)."""
    everything = sorted(v for _, samples, _ in series for v in samples)
    lo = everything[0]
    hi = everything[min(len(everything) - 1, int(len(everything) * 0.999))]
    hi = max(hi, max(m for _, _, marks in series for m in marks.values()))
    height = 48 + row * len(series)
    frame = _Frame([lo, hi], [0, 1], height, left=label_margin([s[0] for s in series]), top=8,
                   bottom=40)
    body = frame.axes(f"latency ({unit})", "")[: 2 * len(frame.xt)]  # x grid and labels only
    scale = ", log scale" if frame.log_x else ""
    body.append(f'<text x="{(frame.left + WIDTH) / 2:.0f}" y="{height - 6}" text-anchor="middle" '
                f'{FONT}>latency ({escape(unit)}{scale}); ticks: p50 solid, p99 dashed</text>')
    edges = [frame.x_at(i / bins) for i in range(bins + 1)]
    for n, (label, samples, marks) in enumerate(series):
        base = frame.top + row * (n + 1) - 6
        counts = [0] * bins
        for v in samples:
            i = min(bins - 1, max(0, bisect.bisect_right(edges, v) - 1))
            counts[i] += 1
        peak = max(counts) or 1
        color = PALETTE[n % len(PALETTE)]
        body.append(f'<text x="{frame.left - 8}" y="{base - row / 3:.0f}" text-anchor="end" '
                    f'{FONT}>{escape(label)}</text>')
        for i, c in enumerate(counts):
            if not c:
                continue
            x0, x1 = frame.px(edges[i]), frame.px(edges[i + 1])
            h = (row - 14) * c / peak
            body.append(f'<rect x="{x0:.1f}" y="{base - h:.1f}" width="{max(x1 - x0 - 0.5, 0.5):.1f}" '
                        f'height="{h:.1f}" fill="{color}" opacity="0.75"><title>{c} runs in '
                        f'[{fmt(edges[i])}, {fmt(edges[i + 1])}) {escape(unit)}</title></rect>')
        for name, value in marks.items():
            x = frame.px(value)
            dash = ' stroke-dasharray="3 2"' if name != "p50" else ""
            body.append(f'<line x1="{x:.1f}" y1="{base - row + 12}" x2="{x:.1f}" y2="{base + 2}" '
                        f'stroke="#222"{dash}><title>{escape(label)} {name} {fmt(value)} '
                        f'{escape(unit)}</title></line>')
    return _svg(height, body, "latency distributions")


def bars(rows: Sequence[tuple[str, float, Optional[float]]], unit: str, title: str,
         limit: Optional[float] = None, row: int = 26) -> str:
    """Horizontal bars (label, total, part): the part (e.g. the model's own memory over the
    process baseline) is drawn darker inside the total; a budget draws a dashed red line."""
    height = 52 + row * len(rows)
    top = max([v for _, v, _ in rows] + [limit or 0])
    frame = _Frame([0, top], [0, 1], height, left=label_margin([r[0] for r in rows]), top=8,
                   bottom=40)
    body = frame.axes(f"{title} ({unit})", "")[: 2 * len(frame.xt)]
    body.append(f'<text x="{(frame.left + WIDTH) / 2:.0f}" y="{height - 6}" text-anchor="middle" '
                f'{FONT}>{escape(title)} ({escape(unit)})</text>')
    for n, (label, value, part) in enumerate(rows):
        y = frame.top + 6 + row * n
        body.append(f'<text x="{frame.left - 8}" y="{y + row / 2:.0f}" text-anchor="end" {FONT}>'
                    f'{escape(label)}</text>')
        body.append(f'<rect x="{frame.left}" y="{y}" width="{frame.px(value) - frame.left:.1f}" '
                    f'height="{row - 8}" fill="#9ecae1"><title>{escape(label)}: {fmt(value)} '
                    f'{escape(unit)}</title></rect>')
        if part is not None and part > 0:
            body.append(f'<rect x="{frame.px(value - part):.1f}" y="{y}" '
                        f'width="{frame.px(value) - frame.px(value - part):.1f}" height="{row - 8}" '
                        f'fill="#3182bd"><title>{escape(label)}: +{fmt(part)} {escape(unit)} for '
                        f'the model</title></rect>')
        body.append(f'<text x="{frame.px(value) + 4:.1f}" y="{y + row / 2:.0f}" {FONT}>'
                    f'{fmt(value)}</text>')
    if limit is not None:
        x = frame.px(limit)
        body.append(f'<line class="budget" x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" '
                    f'y2="{height - frame.bottom}" stroke="#d62728" stroke-dasharray="6 4">'
                    f'<title>budget {fmt(limit)} {escape(unit)}</title></line>')
    return _svg(height, body, title)
