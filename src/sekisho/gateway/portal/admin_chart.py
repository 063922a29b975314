"""The admin chart: failed and refused sign-ins and lockouts over time, as inline SVG.

Server-rendered, no script: two panels on one time axis — failed + refused attempts as
stacked bars on top, lockouts opened below (they are counted in ones where failures run to
thousands, so each panel has its own count axis). Every bucket is a ``<g>`` carrying its
numbers as ``data-*`` attributes and a ``<title>`` (the hover text), and the template shows
the same numbers as a table for screen readers and for copying. Colours and fonts come from
sekisho.css, so Japanese labels use the page's Japanese fonts. Times are UTC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from markupsafe import Markup, escape

from sekisho.store.lockout_records import IntervalCount

__all__ = ["nice_max", "render_chart", "tick_label"]

WIDTH, HEIGHT = 720, 330
LEFT, RIGHT = 56, 12
TOP_Y, TOP_H = 42, 150  # failures panel
LOW_Y, LOW_H = 232, 56  # lockouts panel
AXIS_Y = LOW_Y + LOW_H
MAX_LABELS = 6


def nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 x 10^k at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    power: int = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def tick_label(start: datetime, bucket_seconds: int) -> str:
    if bucket_seconds >= 86400:
        return start.strftime("%m-%d")
    if bucket_seconds > 3600:
        return start.strftime("%m-%d %H:00")
    return start.strftime("%H:00")


def _text(x: float, y: float, text: str, cls: str, anchor: str = "middle") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}">'
            f"{escape(text)}</text>")


def _axis(y0: int, height: int, top: int, caption: str) -> list[str]:
    parts = [f'<line class="axis" x1="{LEFT}" y1="{y0 + height}" x2="{WIDTH - RIGHT}" '
             f'y2="{y0 + height}"/>',
             f'<line class="axis" x1="{LEFT}" y1="{y0}" x2="{LEFT}" y2="{y0 + height}"/>']
    ticks = (0, top // 2, top) if top >= 2 and top % 2 == 0 else (0, top)
    for value in ticks:
        y = y0 + height - height * value / top
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" '
                     f'y2="{y:.1f}"/>')
        parts.append(_text(LEFT - 6, y + 4, str(value), "tick", "end"))
    parts.append(_text(LEFT, y0 - 8, caption, "caption", "start"))
    return parts


def _bar(x: float, w: float, y0: int, height: int, top: int, low: int, high: int,
         cls: str) -> str:
    if high <= low:
        return ""
    y1 = y0 + height - height * high / top
    y2 = y0 + height - height * low / top
    return (f'<rect class="{cls}" x="{x:.1f}" y="{y1:.1f}" width="{w:.1f}" '
            f'height="{y2 - y1:.1f}"/>')


def render_chart(
    series: Sequence[IntervalCount], *, bucket_seconds: int, labels: Mapping[str, str],
) -> Markup:
    """The chart as an ``<svg>`` element. ``labels``: title, failed, refused, lockouts,
    attempts (top panel caption), time (x axis caption)."""
    n = max(len(series), 1)
    top = nice_max(max((c.failures + c.refused for c in series), default=0))
    low = nice_max(max((c.lockouts for c in series), default=0))
    slot = (WIDTH - LEFT - RIGHT) / n
    title = labels["title"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="chart-title">',
        f'<title id="chart-title">{escape(title)}</title>',
        *_legend(labels),
        *_axis(TOP_Y, TOP_H, top, labels["attempts"]),
        *_axis(LOW_Y, LOW_H, low, labels["lockouts"]),
    ]
    every = max(1, math.ceil(n / MAX_LABELS))
    for i, c in enumerate(series):
        parts.append(_bucket(c, LEFT + i * slot, slot, top, low, labels))
        if i % every == 0:
            parts.append(_text(LEFT + (i + 0.5) * slot, AXIS_Y + 16,
                               tick_label(c.start, bucket_seconds), "tick"))
    parts.append(_text((LEFT + WIDTH - RIGHT) / 2, HEIGHT - 6, labels["time"], "caption"))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text part above went through escape()


def _bucket(
    c: IntervalCount, left: float, slot: float, top: int, low: int, labels: Mapping[str, str],
) -> str:
    """One bucket: its numbers, hover text, a hover area, and its three bars."""
    bar_w = max(slot * 0.7, 1.0)
    x = left + (slot - bar_w) / 2
    when = c.start.strftime("%Y-%m-%d %H:%M UTC")
    hover = (f"{when} — {labels['failed']}: {c.failures}, {labels['refused']}: "
             f"{c.refused}, {labels['lockouts']}: {c.lockouts}")
    return (
        f'<g class="bucket" data-start="{c.start.isoformat()}" data-failures="{c.failures}"'
        f' data-refused="{c.refused}" data-lockouts="{c.lockouts}">'
        f"<title>{escape(hover)}</title>"
        f'<rect class="hit" x="{left:.1f}" y="{TOP_Y}" width="{slot:.1f}" '
        f'height="{AXIS_Y - TOP_Y}"/>'
        + _bar(x, bar_w, TOP_Y, TOP_H, top, 0, c.failures, "failed")
        + _bar(x, bar_w, TOP_Y, TOP_H, top, c.failures, c.failures + c.refused, "refused")
        + _bar(x, bar_w, LOW_Y, LOW_H, low, 0, c.lockouts, "locks")
        + "</g>")


def _text_width(text: str) -> float:
    """About how wide ``text`` is at the legend's 11px: CJK characters are full width."""
    return sum(11.0 if ord(ch) >= 0x2E80 else 6.5 for ch in text)


def _legend(labels: Mapping[str, str]) -> list[str]:
    parts, x = [], float(LEFT)
    for cls, key in (("failed", "failed"), ("refused", "refused"), ("locks", "lockouts")):
        parts.append(f'<rect class="{cls}" x="{x:.1f}" y="8" width="12" height="12"/>')
        parts.append(_text(x + 18, 18, labels[key], "legend", "start"))
        x += 18 + _text_width(labels[key]) + 22
    return parts
