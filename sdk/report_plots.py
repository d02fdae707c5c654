"""Inline SVG charts for the HTML report: scatter with the front and budget lines, histograms, bars.

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
    pick: bool = False


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


def _padded(values: Sequence[float], log: bool) -> tuple[float, float]:
    """The data range with 8 % room each side (in log space on a log axis)."""
    lo, hi = min(values), max(values)
    if log:
        span = math.log10(hi) - math.log10(lo) or 1.0
        return 10 ** (math.log10(lo) - 0.08 * span), 10 ** (math.log10(hi) + 0.08 * span)
    span = (hi - lo) or (abs(hi) * 0.1 or 1.0)
    return lo - 0.08 * span, hi + 0.08 * span


class _Labels:
    """Greedy placement of short labels beside dots so that no two overprint."""

    def __init__(self, left: float, right: float, top: float, bottom: float) -> None:
        self.box = (left, right, top, bottom)
        self.taken: list[tuple[float, float, float, float]] = []

    def reserve(self, x: float, y: float, r: float) -> None:
        self.taken.append((x - r, x + r, y - r, y + r))

    def place(self, x: float, y: float, text: str) -> tuple[float, float, str]:
        w, h = 6.4 * len(text) + 2, 12.0
        left, right, top, bottom = self.box
        for dx, dy in ((8, -6), (8, 12), (-8 - w, -6), (-8 - w, 12), (-w / 2, -12), (-w / 2, 22),
                       (16, -18), (16, 24), (-16 - w, -18), (-16 - w, 24), (8, -30), (8, 36)):
            x0, y0 = x + dx, y + dy - h + 2
            rect = (x0, x0 + w, y0, y0 + h)
            inside = left <= rect[0] and rect[1] <= right and top <= rect[2] and rect[3] <= bottom
            if inside and not any(rect[0] < t[1] and t[0] < rect[1] and rect[2] < t[3]
                                  and t[2] < rect[3] for t in self.taken):
                self.taken.append(rect)
                return x0, y + dy, "start"
        return x + 8, y - 6, "start"  # crowded beyond the offsets: the legend still names it


def scatter(points: Sequence[Point], x_label: str, y_label: str, lines: Sequence[Line] = (),
            height: int = 380) -> str:
    """Candidates as numbered dots (green inside every budget, red outside), those on the
    Pareto front drawn bold, the pick ringed and labelled.  The front is over accuracy,
    latency, memory and size, so it is marked, not joined: in this plane of two of its four
    axes a front point can sit behind another.  The axes fit the candidates: a budget outside
    their range is drawn at the plot's edge with an arrow and its value, not by stretching the
    scale.  The legend below is HTML, so long names wrap instead of running off the chart."""
    xs, ys = [p.x for p in points], [p.y for p in points]
    frame = _Frame(xs, ys, height)
    log = frame.log_x
    x_lo, x_hi = _padded(xs, log)
    y_lo, y_hi = _padded(ys, False)
    if not log and min(xs) >= 0:
        x_lo = max(0.0, x_lo)  # latency is never negative
    y_lo = max(0.0, y_lo) if min(ys) >= 0 else y_lo
    frame.xt = log_ticks(x_lo, x_hi) if log else nice_ticks(x_lo, x_hi)
    frame.yt = nice_ticks(y_lo, y_hi)
    body = frame.axes(x_label, y_label)
    plot = (frame.left, WIDTH - frame.right, frame.top, height - frame.bottom)
    labels = _Labels(*plot)
    for ln in lines:
        body += _budget_line(ln, frame, plot, labels)
    placed = [(frame.px(p.x), frame.py(p.y)) for p in points]
    for x, y in placed:
        labels.reserve(x, y, 7)
    for n, (p, (x, y)) in enumerate(zip(points, placed), 1):
        color = {True: "#2ca02c", False: "#d62728", None: "#1f77b4"}[p.ok]
        if p.pick:
            body.append(f'<circle class="pick" cx="{x:.1f}" cy="{y:.1f}" r="11" fill="none" '
                        f'stroke="#1f5fae" stroke-width="2.5"/>')
        body.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="{6 if p.on_front else 4.5}" '
                    f'fill="{color}" stroke="#222" stroke-width="{1.5 if p.on_front else 0.5}">'
                    f'<title>{escape(p.label)}: {x_label} {fmt(p.x)}, {y_label} {fmt(p.y)}</title>'
                    f'</circle>')
        text = f"{n} pick" if p.pick else str(n)
        lx, ly, anchor = labels.place(x, y, text)
        weight = ' font-weight="bold" fill="#1f5fae"' if p.pick else ""
        body.append(f'<text class="label" x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}"'
                    f'{weight} {FONT}>{escape(text)}</text>')
    return _svg(height, body, f"{y_label} against {x_label}") + _legend(points)


def _budget_line(ln: Line, frame: _Frame, plot: tuple[float, float, float, float],
                 labels: _Labels) -> list[str]:
    """A budget across the plot: vertical (a latency limit) or horizontal (an accuracy floor).
    One outside the candidates' range is drawn at the edge it lies beyond, dotted, with an
    arrow, so the scale stays the candidates'."""
    left, right, top, bottom = plot
    vertical = ln.axis == "x"
    at = frame.px(ln.value) if vertical else frame.py(ln.value)
    lo, hi = (left, right) if vertical else (top, bottom)
    off = "" if lo <= at <= hi else ((" →" if at > hi else " ←") if vertical
                                     else (" ↓" if at > hi else " ↑"))
    at = min(max(at, lo), hi)
    x1, y1, x2, y2 = (at, top, at, bottom) if vertical else (left, at, right, at)
    out = [f'<line class="budget" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
           f'stroke="#d62728" stroke-dasharray="{"2 3" if off else "6 4"}"/>']
    text = ln.label + (" (off the scale" + off + ")" if off else "")
    w = 6.4 * len(text)
    if vertical:  # the label at the top, on the side with room
        anchor, tx, ty = ("end", at - 4, top + 10) if at > WIDTH * 0.6 else ("start", at + 4, top + 10)
        box = (at - w if anchor == "end" else at, at if anchor == "end" else at + w, top, top + 14)
    else:  # the label at the right end, above the line where there is room
        anchor, tx, ty = "end", right - 4, at - 4 if at - 14 > top else at + 12
        box = (right - w - 4, right, ty - 11, ty + 2)
    out.append(f'<text class="budget-label" x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}" '
               f'fill="#d62728" {FONT}>{escape(text)}</text>')
    labels.taken.append(box)
    return out


def _legend(points: Sequence[Point]) -> str:
    items = []
    for n, p in enumerate(points, 1):
        color = {True: "#2ca02c", False: "#d62728", None: "#1f77b4"}[p.ok]
        what = ("pick" if p.pick else {True: "fits", False: "misses a budget", None: ""}[p.ok])
        extra = ", Pareto front" if p.on_front else ""
        items.append(f'<li value="{n}"><span class="dot" style="background:{color}"></span>'
                     f'{escape(p.label)} <span class="muted">{what}{extra}</span></li>')
    return ('<ol class="legend">' + "".join(items) + "</ol>"
            '<p class="muted">Green: inside every budget; red: misses one; a ring: the pick; '
            'bold outline: on the Pareto front (accuracy, latency, memory and size; for a compress '
            'run, the front its summary.json lists); dashed red: budgets.</p>')


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
    biggest = max(v for _, v, _ in rows)
    # a budget far beyond every bar is drawn at the edge, not by squashing the bars to slivers
    off_scale = limit is not None and biggest > 0 and limit > 1.5 * biggest
    top = biggest * 1.1 if off_scale else max(biggest, limit or 0)
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
        x = min(frame.px(limit), WIDTH - frame.right)
        body.append(f'<line class="budget" x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" '
                    f'y2="{height - frame.bottom}" stroke="#d62728" '
                    f'stroke-dasharray="{"2 3" if off_scale else "6 4"}">'
                    f'<title>budget {fmt(limit)} {escape(unit)}</title></line>')
        if off_scale:
            body.append(f'<text class="budget-label" x="{x - 4:.1f}" y="{frame.top + 10}" '
                        f'text-anchor="end" fill="#d62728" {FONT}>budget {fmt(limit)} '
                        f'{escape(unit)} (off the scale →)</text>')
    return _svg(height, body, title)
