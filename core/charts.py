"""Small server-side charts as inline SVG (line and stacked bar); no Django imports.

Reports draw a few dozen points per series: a chart library in the browser (and a
CDN to load it from, PITFALLS.md 14) would cost more than these hundred lines. Every
text is escaped here, so the returned markup can be inserted into a page as is.
Each point carries a <title>, which browsers show as a tooltip and screen readers
read, and the caller shows the same numbers in a table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["PALETTE", "Series", "count_scale", "line_chart", "stacked_bar_chart"]

PALETTE: tuple[str, ...] = (
    "#0969da",
    "#1a7f37",
    "#8250df",
    "#bf8700",
    "#0a7ea4",
    "#cf222e",
    "#953800",
    "#6e7781",
    "#bf3989",
    "#57606a",
)
_LEFT = 52
_RIGHT = 14
_TOP = 30
_AXIS_SPACE = 26
_LEGEND_ROW = 18
_FAMILY = 'font-family="system-ui, sans-serif"'
_FONT = f'{_FAMILY} font-size="11"'


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float | None]
    color: str = ""


def count_scale(value: float) -> float:
    """The top of an axis of counts: four whole-number steps of 1, 2 or 5 times 10^k,
    so gridlines never read 0.2 of a line."""
    rough = max(value, 1) / 4
    power = 10 ** math.floor(math.log10(rough)) if rough >= 1 else 1
    for step in (1, 2, 2.5, 5, 10):
        size = step * power
        if rough <= size and size == int(size):
            return 4 * max(1, int(size))
    return 40 * power


def _format(value: float, percent: bool) -> str:
    if percent:
        return f"{value:.0f}%" if value == int(value) else f"{value:.1f}%"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _legend(series: Sequence[Series], colors: list[str], width: int, top: float) -> tuple[str, int]:
    parts: list[str] = []
    x, y, rows = _LEFT, top, 1
    for item, color in zip(series, colors, strict=True):
        item_width = 22 + 7 * len(item.label)
        if x + item_width > width - _RIGHT and x > _LEFT:
            x, y, rows = _LEFT, y + _LEGEND_ROW, rows + 1
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="{y}" {_FONT}>{escape(item.label)}</text>'
        )
        x += item_width
    return "".join(parts), rows


def _frame(
    *,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    width: int,
    plot_height: int,
    top_value: float,
    percent: bool,
    body: str,
    colors: list[str],
) -> str:
    plot_bottom = _TOP + plot_height
    legend, rows = _legend(series, colors, width, plot_bottom + _AXIS_SPACE + 12)
    height = plot_bottom + _AXIS_SPACE + rows * _LEGEND_ROW + 6
    plot_width = width - _LEFT - _RIGHT
    grid: list[str] = []
    for step in range(5):
        value = top_value * step / 4
        y = plot_bottom - plot_height * step / 4
        grid.append(
            f'<line x1="{_LEFT}" x2="{width - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#d0d7de" stroke-width="1"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT} fill="#57606a">'
            f"{escape(_format(value, percent))}</text>"
        )
    count = len(x_labels)
    every = max(1, math.ceil(count / 10))
    ticks: list[str] = []
    for index, label in enumerate(x_labels):
        if index % every and index != count - 1:
            continue
        x = _LEFT + plot_width * (index + 0.5) / max(count, 1)
        ticks.append(
            f'<text x="{x:.1f}" y="{plot_bottom + 16}" text-anchor="middle" {_FONT} '
            f'fill="#57606a">{escape(label)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" '
        f'style="max-width:{width}px" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<text x="{_LEFT}" y="18" {_FAMILY} font-size="13" font-weight="600">'
        f"{escape(title)}</text>"
        f"{''.join(grid)}{''.join(ticks)}{body}{legend}</svg>"
    )


def _colors(series: Sequence[Series]) -> list[str]:
    return [item.color or PALETTE[index % len(PALETTE)] for index, item in enumerate(series)]


def line_chart(
    *,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    percent: bool = False,
    width: int = 760,
    plot_height: int = 200,
) -> str:
    """One line per series over the x labels; None leaves a gap (no value that day)."""
    colors = _colors(series)
    values = [v for item in series for v in item.values if v is not None]
    top_value = 100.0 if percent else count_scale(max(values, default=0))
    plot_width = width - _LEFT - _RIGHT
    count = max(len(x_labels), 1)
    body: list[str] = []
    for item, color in zip(series, colors, strict=True):
        segment: list[str] = []
        segments: list[list[str]] = [segment]
        dots: list[str] = []
        for index, value in enumerate(item.values):
            if value is None:
                segment = []
                segments.append(segment)
                continue
            x = _LEFT + plot_width * (index + 0.5) / count
            y = _TOP + (1 - min(value, top_value) / top_value) * plot_height
            segment.append(f"{x:.1f},{y:.1f}")
            label = x_labels[index] if index < len(x_labels) else ""
            dots.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}">'
                f"<title>{escape(label)} · {escape(item.label)}: "
                f"{escape(_format(value, percent))}</title></circle>"
            )
        for points in segments:
            if len(points) > 1:
                body.append(
                    f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                    f'points="{" ".join(points)}"/>'
                )
        body.extend(dots)
    return _frame(
        title=title,
        x_labels=x_labels,
        series=series,
        width=width,
        plot_height=plot_height,
        top_value=top_value,
        percent=percent,
        body="".join(body),
        colors=colors,
    )


def stacked_bar_chart(
    *,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    width: int = 760,
    plot_height: int = 200,
) -> str:
    """One bar per x label, its series stacked bottom-up."""
    colors = _colors(series)
    count = max(len(x_labels), 1)
    totals = [
        sum((item.values[index] or 0) for item in series if index < len(item.values))
        for index in range(len(x_labels))
    ]
    top_value = count_scale(max(totals, default=0))
    plot_width = width - _LEFT - _RIGHT
    slot = plot_width / count
    bar = max(1.0, slot * 0.7)
    body: list[str] = []
    for index, label in enumerate(x_labels):
        base = _TOP + plot_height
        x = _LEFT + slot * index + (slot - bar) / 2
        for item, color in zip(series, colors, strict=True):
            value = item.values[index] if index < len(item.values) else None
            if not value:
                continue
            height = plot_height * value / top_value
            base -= height
            body.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{color}"><title>{escape(label)} · {escape(item.label)}: '
                f"{escape(_format(value, False))}</title></rect>"
            )
    return _frame(
        title=title,
        x_labels=x_labels,
        series=series,
        width=width,
        plot_height=plot_height,
        top_value=top_value,
        percent=False,
        body="".join(body),
        colors=colors,
    )
