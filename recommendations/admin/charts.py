"""Charts for the admin, drawn on the server as inline SVG.

No JavaScript and no CDN: the admin must work offline and in any browser. Each function
returns markup that is safe to put straight into a template; every label is escaped.
Hovering a bar shows its exact value (an SVG `<title>`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# A palette that stays readable for common colour-vision deficiencies (Okabe-Ito, extended).
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
    "#7F7F7F",
    "#8C564B",
    "#17BECF",
    "#BCBD22",
)


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float]
    color: str


def colored(named_values: dict[str, Sequence[float]]) -> list[Series]:
    """Give each named series a palette colour, in order."""
    return [
        Series(label, values, PALETTE[i % len(PALETTE)])
        for i, (label, values) in enumerate(named_values.items())
    ]


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^n at or above `value`, for a readable axis."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value:
            return candidate
    return 10 ** (exponent + 1)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:,.2g}"


def stacked_bars(
    labels: Sequence[str], series: Sequence[Series], *, width: int = 760, height: int = 240, title: str = ""
) -> SafeString:
    """Vertical bars, one per label, each stacked from the series' values at that index."""
    left, right, top, bottom = 48, 8, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    y_max = nice_ceiling(max(totals, default=0))
    slot = plot_w / max(len(labels), 1)
    bar_w = max(slot * 0.72, 1)
    parts = [_axes(left, top, plot_w, plot_h, y_max)]
    label_every = max(1, math.ceil(len(labels) / 10))
    for i, label in enumerate(labels):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            h = value / y_max * plot_h
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{s.color}">'
                f"<title>{escape(label)} · {escape(s.label)}: {_number(value)}</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle" class="tick">'
                f"{escape(label)}</text>"
            )
    return _svg(width, height, title, parts)


def horizontal_bars(
    rows: Sequence[tuple[str, float]],
    *,
    width: int = 420,
    row_height: int = 26,
    value_format: str = "{:.1%}",
    color: str = PALETTE[0],
    title: str = "",
) -> SafeString:
    """One labelled bar per row, scaled to the largest value; the value is printed at the end."""
    label_w, value_w = 150, 64
    plot_w = width - label_w - value_w
    height = max(len(rows), 1) * row_height + 4
    top_value = max((value for _, value in rows), default=0) or 1
    parts = []
    for i, (label, value) in enumerate(rows):
        y = 2 + i * row_height
        bar = max(value / top_value * plot_w, 0)
        text = value_format.format(value)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + row_height * 0.62:.1f}" text-anchor="end" class="label">'
            f"{escape(label)}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{bar:.1f}" height="{row_height - 8}" rx="3" '
            f'fill="{color}"><title>{escape(label)}: {escape(text)}</title></rect>'
            f'<text x="{label_w + bar + 6:.1f}" y="{y + row_height * 0.62:.1f}" class="value">'
            f"{escape(text)}</text>"
        )
    return _svg(width, height, title, parts)


def interval_bars(
    rows: Sequence[tuple[str, float | None, tuple[float, float] | None]],
    *,
    width: int = 560,
    title: str = "",
) -> SafeString:
    """One bar per row for a rate (0 to 1, printed as a percentage), with its confidence
    interval as a whisker: `(label, rate or None when unknown, (low, high) or None)`.

    Every row shares one scale from 0, so bars of different variants compare at a glance.
    """
    label_w, value_w, row_h = 150, 70, 34
    plot_w = width - label_w - value_w
    top = nice_ceiling(
        max((interval[1] if interval else value or 0) for _, value, interval in rows) if rows else 0
    )
    height = len(rows) * row_h + 24
    parts = []
    for i, (label, value, interval) in enumerate(rows):
        y = 6 + i * row_h
        bar = (value or 0.0) / top * plot_w
        text = "-" if value is None else f"{value:.1%}"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 18}" text-anchor="end" class="label">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 6}" width="{bar:.1f}" height="16" rx="3" '
            f'fill="{PALETTE[i % len(PALETTE)]}" opacity=".85"><title>{escape(label)}: {text}</title></rect>'
        )
        if interval is not None:
            low, high = (label_w + v / top * plot_w for v in interval)
            parts.append(
                f'<path d="M{low:.1f} {y + 14}H{high:.1f}M{low:.1f} {y + 8}V{y + 20}'
                f'M{high:.1f} {y + 8}V{y + 20}" stroke="#101828" stroke-width="1.5" fill="none">'
                f"<title>95% interval {interval[0]:.1%} to {interval[1]:.1%}</title></path>"
            )
        parts.append(f'<text x="{width - value_w + 6}" y="{y + 18}" class="value">{text}</text>')
    parts.append(
        f'<text x="{label_w}" y="{height - 4}" class="tick">0%</text>'
        f'<text x="{label_w + plot_w}" y="{height - 4}" text-anchor="end" class="tick">{top:.0%}</text>'
    )
    return _svg(width, height, title, parts)


def line_chart(
    xs: Sequence[int],
    series: Sequence[Series],
    *,
    x_label: str,
    width: int = 640,
    height: int = 220,
    title: str = "",
) -> SafeString:
    """One line per series over the same x values, each scaled to its own range.

    Meant for two series of different magnitudes (training loss and validation NDCG): the
    first series' range is printed on the left axis, the second's on the right, each in its
    colour. Values that are not finite (NaN for "not measured that epoch") are skipped.
    """
    left, right, top, bottom = 56, 56, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    first, span_x = min(xs), (max(xs) - min(xs)) or 1
    parts = []
    for i, line in enumerate(series):
        points = [(x, v) for x, v in zip(xs, line.values, strict=True) if math.isfinite(v)]
        if not points:
            continue
        low, high = min(v for _, v in points), max(v for _, v in points)
        span = (high - low) or 1.0
        placed = [
            (x, v, left + (x - first) / span_x * plot_w, top + plot_h - (v - low) / span * plot_h)
            for x, v in points
        ]
        coords = " ".join(f"{px:.1f},{py:.1f}" for _, _, px, py in placed)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{line.color}" stroke-width="2"/>')
        parts += [
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{line.color}">'
            f"<title>{escape(x_label)} {x}: {escape(line.label)} {v:.4f}</title></circle>"
            for x, v, px, py in placed
        ]
        axis_x, anchor = (left - 6, "end") if i == 0 else (left + plot_w + 6, "start")
        # An inline style, not a fill attribute: the chart's `.tick` rule would override that.
        for value, y in ((low, top + plot_h), (high, top)):
            parts.append(
                f'<text x="{axis_x}" y="{y + 4:.1f}" text-anchor="{anchor}" class="tick" '
                f'style="fill:{line.color}">{value:.4g}</text>'
            )
    bottom_y = height - 8
    legend = "   ".join(f'<tspan style="fill:{s.color}">— {escape(s.label)}</tspan>' for s in series)
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" class="grid"/>'
        f'<text x="{left}" y="{bottom_y}" class="tick">{escape(x_label)} {first}</text>'
        f'<text x="{left + plot_w}" y="{bottom_y}" text-anchor="end" class="tick">'
        f"{escape(x_label)} {max(xs)}</text>"
        f'<text x="{left + plot_w / 2}" y="{bottom_y}" text-anchor="middle" class="tick">{legend}</text>'
    )
    return _svg(width, height, title, parts)


def _axes(left: float, top: float, plot_w: float, plot_h: float, y_max: float) -> str:
    lines = []
    for step in range(5):
        value = y_max * step / 4
        y = top + plot_h - plot_h * step / 4
        lines.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_number(value)}</text>'
        )
    return "".join(lines)


def _svg(width: int, height: int, title: str, parts: list[str]) -> SafeString:
    heading = f"<title>{escape(title)}</title>" if title else ""
    return mark_safe(  # noqa: S308 - every interpolated label above is escaped
        f'<svg class="rec-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" preserveAspectRatio="xMinYMin meet">{heading}'
        "<style>.grid{stroke:#d0d5dd;stroke-width:1}.tick,.label,.value{font:11px system-ui,sans-serif;"
        "fill:#475467}.value{fill:#101828;font-weight:600}</style>" + "".join(parts) + "</svg>"
    )
