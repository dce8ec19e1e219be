"""Inline SVG charts drawn in Python: fan, stacked bars, budget gauges, headroom bars.

Every chart is a self-contained ``<svg role="img">`` with a ``<title>`` and ``<desc>`` for
screen readers; every piece of text and every attribute goes through `escape`, so a model
called ``<script>`` is drawn as text. No scripts, no external resources.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pandas as pd
from markupsafe import Markup, escape

from tokenplan.report import formatting as fmt
from tokenplan.report.model import BudgetRow, Fan, HeadroomRow, StackedDay
from tokenplan.untrusted import visible

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C8C8C", "#F0E442")
INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"
TRACK = "#f3f4f6"
FORECAST = "#0072B2"
BAD = "#b91c1c"
WARN = "#b45309"
OK = "#047857"


def color(index: int) -> str:
    """The palette colour for the ``index``-th category."""
    return PALETTE[index % len(PALETTE)]


def shown(text: object) -> Markup:
    """Text escaped for SVG, with bidi, zero-width and control characters made visible."""
    return escape(visible(str(text)))


def tag(name: str, body: str = "", /, **attrs: object) -> str:
    """One SVG element; ``fill_opacity`` → ``fill-opacity``, ``cls`` → ``class``, floats to 0.1."""
    parts = []
    for key, value in attrs.items():
        attr = "class" if key == "cls" else key.replace("_", "-")
        text = f"{value:.1f}" if isinstance(value, float) else str(value)
        parts.append(f'{attr}="{shown(text)}"')
    head = f"<{name} {' '.join(parts)}"
    return f"{head}>{body}</{name}>" if body else f"{head}/>"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 × 10^k) covering ``lo..hi``."""
    if not math.isfinite(hi) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks = [math.floor(lo / step) * step]
    while ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


class _Svg:
    """Collects SVG elements; text is escaped on the way in."""

    def __init__(self, chart_id: str, width: int, height: int, title: str, desc: str) -> None:
        self.id = chart_id
        self.width = width
        self.height = height
        self.parts: list[str] = [
            tag("title", str(shown(title)), id=f"{chart_id}-title"),
            tag("desc", str(shown(desc)), id=f"{chart_id}-desc"),
        ]

    def add(self, name: str, body: str = "", /, **attrs: object) -> None:
        self.parts.append(tag(name, body, **attrs))

    def line(self, x1: float, y1: float, x2: float, y2: float, **attrs: object) -> None:
        self.add("line", x1=float(x1), y1=float(y1), x2=float(x2), y2=float(y2), **attrs)

    def text(self, x: float, y: float, label: str, *, anchor: str = "start", cls: str = "") -> None:
        extra = {"cls": cls} if cls else {}
        self.add("text", str(shown(label)), x=float(x), y=float(y), text_anchor=anchor, **extra)

    def render(self) -> Markup:
        head = tag(
            "svg",
            id=self.id,
            cls="chart",
            role="img",
            viewBox=f"0 0 {self.width} {self.height}",
            width=self.width,
            height=self.height,
            aria_labelledby=f"{self.id}-title {self.id}-desc",
        )
        # tag() closes an empty element with "/>"; reopen it to hold the parts.
        return Markup(head[:-2] + ">" + "".join(self.parts) + "</svg>")


def _path(points: Sequence[tuple[float, float | None]]) -> str:
    """An SVG path through the points, broken where a value is missing."""
    out: list[str] = []
    pen_down = False
    for x, y in points:
        if y is None or not math.isfinite(y):
            pen_down = False
            continue
        out.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
        pen_down = True
    return "".join(out)


def _band(xs: Sequence[float], lo: Sequence[float], hi: Sequence[float]) -> str:
    upper = [f"{x:.1f},{y:.1f}" for x, y in zip(xs, hi, strict=True)]
    lower = [f"{x:.1f},{y:.1f}" for x, y in zip(reversed(xs), reversed(lo), strict=True)]
    return "M" + " L".join(upper + lower) + "Z"


def _time_ticks(start: pd.Timestamp, end: pd.Timestamp, slots: int) -> list[pd.Timestamp]:
    """Midnights between ``start`` and ``end``, thinned to at most ``slots`` labels."""
    first = start.ceil("D")
    ticks = list(pd.date_range(first, end, freq="D")) or [start]
    return ticks[:: max(1, math.ceil(len(ticks) / max(slots, 2)))]


def fan_chart(
    fan: Fan,
    *,
    chart_id: str,
    unit: str = "tokens",
    width: int = 960,
    height: int = 320,
) -> Markup:
    """History as a line, the forecast as a mean line with shaded 80% and 95% bands."""
    label = fmt.money if unit == "usd" else fmt.tokens
    short: Callable[[float], str] = (
        (lambda v: "$" + fmt.compact(v)) if unit == "usd" else fmt.compact
    )
    hist = [(pd.Timestamp(p.ds), p.y) for p in fan.history]
    fc = fan.forecast
    times = [t for t, _ in hist] + [pd.Timestamp(p.ds) for p in fc]
    svg = _Svg(
        chart_id,
        width,
        height,
        f"{fan.label}: {fan.metric} per hour, history and forecast",
        f"{len(hist)} hours of history and a {len(fc)}-hour forecast totalling "
        f"{label(sum(p.mean for p in fc))} (mean), with 80% and 95% ranges shaded.",
    )
    left, right, top, bottom = 64, 16, 28, 30
    pw, ph = width - left - right, height - top - bottom
    if not times:
        svg.text(width / 2, height / 2, "no data", anchor="middle", cls="tick")
        return svg.render()
    t0, t1 = min(times), max(times)
    span = max((t1 - t0).total_seconds(), 1.0)
    values = [y for _, y in hist if y is not None and math.isfinite(y)] + [p.hi_95 for p in fc]
    ticks = nice_ticks(0.0, max(values, default=1.0) or 1.0)
    y_max = ticks[-1]

    def sx(t: pd.Timestamp) -> float:
        return left + (t - t0).total_seconds() / span * pw

    def sy(v: float) -> float:
        return top + ph - (v / y_max) * ph

    for value in ticks:
        svg.line(left, sy(value), left + pw, sy(value), stroke=GRID)
        svg.text(left - 6, sy(value) + 4, short(value), anchor="end", cls="tick")
    # About one date label per 70px, so small multiples do not crowd their axis.
    for moment in _time_ticks(t0, t1, pw // 70):
        svg.line(sx(moment), top + ph, sx(moment), top + ph + 4, stroke=MUTED)
        svg.text(sx(moment), top + ph + 18, moment.strftime("%d %b"), anchor="middle", cls="tick")
    svg.line(left, top + ph, left + pw, top + ph, stroke=MUTED)
    if fc:
        xs = [sx(pd.Timestamp(p.ds)) for p in fc]
        for level, opacity in ((95, 0.14), (80, 0.28)):
            lo = [sy(getattr(p, f"lo_{level}")) for p in fc]
            hi = [sy(getattr(p, f"hi_{level}")) for p in fc]
            svg.add(
                "path", cls=f"band{level}", d=_band(xs, lo, hi), fill=FORECAST, fill_opacity=opacity
            )
        mean = _path([(x, sy(p.mean)) for x, p in zip(xs, fc, strict=True)])
        svg.add("path", cls="mean", d=mean, fill="none", stroke=FORECAST, stroke_width=1.6)
        svg.line(xs[0], top, xs[0], top + ph, stroke=MUTED, stroke_dasharray="4 3")
        svg.text(xs[0] + 4, top + 10, "forecast →", cls="tick")
    if hist:
        line = _path([(sx(t), sy(y) if y is not None else None) for t, y in hist])
        svg.add("path", cls="history", d=line, fill="none", stroke=INK, stroke_width=1.3)
    legend = [("history", INK, 0.0), ("forecast", FORECAST, 0.0)]
    _legend(svg, width - right, 14, [*legend, ("80%", FORECAST, 0.28), ("95%", FORECAST, 0.14)])
    return svg.render()


def _legend(svg: _Svg, x_right: float, y: float, items: list[tuple[str, str, float]]) -> None:
    """Right-aligned legend; opacity 0 means a line swatch, otherwise a shaded box."""
    x = x_right
    for name, colour, opacity in reversed(items):
        x -= 7 * len(name) + 24
        if opacity == 0:
            svg.line(x, y - 4, x + 14, y - 4, stroke=colour, stroke_width=2)
        else:
            svg.add("rect", x=x, y=y - 9, width=14, height=10, fill=colour, fill_opacity=opacity)
        svg.text(x + 18, y, name, cls="legend")


def stacked_bars(
    days: Sequence[StackedDay], *, chart_id: str, width: int = 960, height: int = 300
) -> Markup:
    """Tokens per day stacked by model; forecast days are drawn lighter and labelled."""
    names: list[str] = []
    for d in days:
        names.extend(n for n in d.values if n not in names)
    order = sorted(names, key=lambda n: -sum(d.values.get(n, 0.0) for d in days))
    n_fc = sum(d.forecast for d in days)
    svg = _Svg(
        chart_id,
        width,
        height,
        "Tokens per day by model",
        f"{len(days) - n_fc} days of history and {n_fc} forecast days, stacked by "
        f"{len(order)} models: {', '.join(order)}.",
    )
    left, right, top, bottom = 64, 16, 40, 30
    pw, ph = width - left - right, height - top - bottom
    ticks = nice_ticks(0.0, max((sum(d.values.values()) for d in days), default=1.0) or 1.0)
    y_max = ticks[-1]
    for value in ticks:
        y = top + ph - value / y_max * ph
        svg.line(left, y, left + pw, y, stroke=GRID)
        svg.text(left - 6, y + 4, fmt.compact(value), anchor="end", cls="tick")
    slot = pw / max(len(days), 1)
    bar = slot * 0.72
    label_every = max(1, math.ceil(len(days) / 14))
    for i, d in enumerate(days):
        x = left + i * slot + (slot - bar) / 2
        base = float(top + ph)
        for j, name in enumerate(order):
            value = d.values.get(name, 0.0)
            if value <= 0:
                continue
            h = value / y_max * ph
            base -= h
            tip = f"{fmt.day(d.date)} · {name}: {fmt.tokens(value)} tokens"
            tip += " (forecast)" if d.forecast else ""
            svg.add(
                "rect",
                tag("title", str(shown(tip))),
                cls="bar",
                x=x,
                y=base,
                width=bar,
                height=h,
                fill=color(j),
                fill_opacity=0.5 if d.forecast else 1,
            )
        if i % label_every == 0:
            day_label = pd.Timestamp(d.date).strftime("%d %b")
            svg.text(x + bar / 2, top + ph + 18, day_label, anchor="middle", cls="tick")
    if n_fc:
        x = left + next(i for i, d in enumerate(days) if d.forecast) * slot
        svg.line(x, top - 4, x, top + ph, stroke=MUTED, stroke_dasharray="4 3")
        svg.text(x + 4, top + 6, "forecast →", cls="tick")
    svg.line(left, top + ph, left + pw, top + ph, stroke=MUTED)
    x = float(left)
    for j, name in enumerate(order):
        label = name if len(name) <= 28 else name[:27] + "…"
        svg.add("rect", x=x, y=8, width=12, height=12, fill=color(j))
        svg.text(x + 16, 18, label, cls="legend")
        x += 16 + 7 * len(label) + 18
    return svg.render()


def budget_gauge(row: BudgetRow, *, chart_id: str, width: int = 520, height: int = 70) -> Markup:
    """A bullet gauge: spend so far, projected total with 80/95% ranges, and the budget line."""

    def money(value: float) -> str:
        return fmt.money(value, row.currency)

    svg = _Svg(
        chart_id,
        width,
        height,
        f"Budget {row.name}",
        f"Spent {money(row.so_far)} of {money(row.amount)}; projected {money(row.projected)} "
        f"(95% range {money(row.lo_95)} to {money(row.hi_95)}); "
        f"probability of overrun {fmt.percent(row.p_over_limit)}.",
    )
    left, right, top, bar_h = 8, 8, 14, 22
    pw = width - left - right
    top_value = max(row.amount, row.hi_95, row.so_far, 1e-9) * 1.08

    def sx(v: float) -> float:
        return left + max(0.0, min(v, top_value)) / top_value * pw

    svg.add("rect", x=left, y=top, width=pw, height=bar_h, fill=TRACK, rx=3)
    for level, opacity in ((95, 0.18), (80, 0.35)):
        lo, hi = sx(getattr(row, f"lo_{level}")), sx(getattr(row, f"hi_{level}"))
        svg.add(
            "rect",
            cls=f"range{level}",
            x=lo,
            y=top + 3,
            width=max(hi - lo, 1.0),
            height=bar_h - 6,
            fill=FORECAST,
            fill_opacity=opacity,
        )
    spent = max(sx(row.so_far) - left, 1.0)
    svg.add("rect", cls="spent", x=left, y=top + 7, width=spent, height=bar_h - 14, fill=INK)
    svg.add(
        "rect",
        cls="projected",
        x=sx(row.projected) - 1.5,
        y=top,
        width=3,
        height=bar_h,
        fill=FORECAST,
    )
    for share in row.thresholds:
        if share != 1:
            svg.add(
                "rect",
                cls="threshold",
                x=sx(row.amount * share) - 0.75,
                y=top - 4,
                width=1.5,
                height=bar_h + 8,
                fill=MUTED,
            )
    status = BAD if row.p_over_limit >= 0.5 else WARN if row.p_over_limit >= 0.2 else OK
    svg.add(
        "rect",
        cls="limit",
        x=sx(row.amount) - 1.5,
        y=top - 6,
        width=3,
        height=bar_h + 12,
        fill=status,
    )
    svg.text(left, top + bar_h + 18, f"spent {money(row.so_far)}", cls="tick")
    svg.text(
        width - right, top + bar_h + 18, f"budget {money(row.amount)}", anchor="end", cls="tick"
    )
    return svg.render()


def headroom_bars(
    rows: Sequence[HeadroomRow], *, chart_id: str, width: int = 960, row_h: int = 30
) -> Markup:
    """One bar per rate limit: forecast p99 peak as a share of the limit, with the 100% line."""
    height = 36 + row_h * max(len(rows), 1)
    svg = _Svg(
        chart_id,
        width,
        height,
        "Rate-limit headroom",
        "; ".join(
            f"{r.name} {r.limit_kind}: p99 peak {fmt.count(r.peak_p99)} of {fmt.count(r.limit)}"
            for r in rows
        )
        or "no limits configured",
    )
    left, right = 260, 80
    pw = width - left - right
    top_share = max([1.2, *(r.peak_p99 / r.limit for r in rows if r.limit > 0)])

    def sx(share: float) -> float:
        return left + min(share, top_share) / top_share * pw

    for i, r in enumerate(rows):
        y = 20 + i * row_h
        share = r.peak_p99 / r.limit if r.limit > 0 else math.inf
        fill = BAD if share >= 1 else WARN if share >= 0.8 else OK
        mid = y + row_h / 2 + 2
        svg.text(left - 8, mid, f"{r.name} · {r.limit_kind}", anchor="end", cls="label")
        svg.add("rect", x=left, y=y + 5, width=pw, height=row_h - 12, fill=TRACK)
        filled = max(sx(share if math.isfinite(share) else top_share) - left, 1.0)
        svg.add("rect", cls="bar", x=left, y=y + 5, width=filled, height=row_h - 12, fill=fill)
        svg.text(left + pw + 6, mid, fmt.percent(share, 0), cls="label")
    svg.line(sx(1.0), 14, sx(1.0), height - 8, stroke=INK, stroke_dasharray="4 3")
    svg.text(sx(1.0), 12, "limit", anchor="middle", cls="tick")
    return svg.render()
