"""The plot of bench/stuffing.py, as a hand-written SVG (matplotlib is not a dependency).

Three panels over the same time axis (seconds from GO): attack answers per second by kind,
legit login latency (each login a dot, refusals as red crosses, the 500 ms target), and the
gateway's CPU (whole process and its event-loop thread, in cores).
"""

from __future__ import annotations

import math
import shutil
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any

WIDTH, PANEL, GAP, LEFT, RIGHT, TOP = 900, 200, 55, 70, 160, 40
COLORS = {"attempts": "#1f77b4", "refused": "#ff7f0e", "evaluated": "#2ca02c",
          "legit": "#1f77b4", "refused_legit": "#d62728", "cpu": "#9467bd", "main": "#8c564b",
          "target": "#555555", "band": "#f2f2f2"}


def _nice(top: float) -> float:
    if top <= 0:
        return 1.0
    step = 10 ** math.floor(math.log10(top))
    for mult in (1, 2, 2.5, 5, 10):
        if top <= step * mult:
            return step * mult
    return step * 10


class Panel:
    """One chart; ``log``: a log10 y axis from ``y_min`` (latencies span 10 ms to seconds)."""

    def __init__(self, index: int, title: str, unit: str, x_max: float, y_max: float,
                 *, log: bool = False, y_min: float = 10.0) -> None:
        self.top = TOP + index * (PANEL + GAP)
        self.log, self.y_min = log, y_min
        self.x_max = x_max
        self.y_max = 10 ** math.ceil(math.log10(max(y_max, y_min * 10))) if log else _nice(y_max)
        self.parts = [f'<text x="{LEFT}" y="{self.top - 8}" font-weight="bold">'
                      f'{escape(title)}</text>']
        self.unit = unit
        self.legend: list[tuple[str, str]] = []

    def x(self, t: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * max(0.0, min(t, self.x_max)) / self.x_max

    def y(self, v: float) -> float:
        if self.log:
            lo, hi = math.log10(self.y_min), math.log10(self.y_max)
            share = (math.log10(max(v, self.y_min)) - lo) / (hi - lo)
            return self.top + PANEL - PANEL * min(share, 1.0)
        return self.top + PANEL - PANEL * max(0.0, min(v, self.y_max)) / self.y_max

    def ticks(self) -> list[float]:
        if self.log:
            first, last = round(math.log10(self.y_min)), round(math.log10(self.y_max))
            return [10.0 ** k for k in range(first, last + 1)]
        return [self.y_max * i / 4 for i in range(5)]

    def band(self, start: float, end: float) -> None:
        self.parts.append(f'<rect x="{self.x(start):.1f}" y="{self.top}" '
                          f'width="{self.x(end) - self.x(start):.1f}" height="{PANEL}" '
                          f'fill="{COLORS["band"]}"/>')

    def line(self, points: list[tuple[float, float]], color: str, label: str,
             dash: str = "") -> None:
        if not points:
            return
        path = " ".join(f"{self.x(t):.1f},{self.y(v):.1f}" for t, v in points)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5"{extra} '
                          f'points="{path}"/>')
        self.legend.append((color, label))

    def dots(self, points: list[tuple[float, float]], color: str, label: str,
             cross: bool = False) -> None:
        for t, v in points:
            cx, cy = self.x(t), self.y(v)
            if cross:
                self.parts.append(f'<path d="M{cx - 3:.1f},{cy - 3:.1f}l6,6m0,-6l-6,6" '
                                  f'stroke="{color}" stroke-width="1.5"/>')
            else:
                self.parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="1.8" '
                                  f'fill="{color}" fill-opacity="0.6"/>')
        if points:
            self.legend.append((color, label))

    def render(self) -> str:
        right, bottom = WIDTH - RIGHT, self.top + PANEL
        out = [f'<rect x="{LEFT}" y="{self.top}" width="{right - LEFT}" height="{PANEL}" '
               'fill="none" stroke="#999"/>']
        for v in self.ticks():
            out.append(f'<text x="{LEFT - 6}" y="{self.y(v) + 4:.1f}" text-anchor="end">'
                       f'{v:g}</text>')
            out.append(f'<line x1="{LEFT}" x2="{right}" y1="{self.y(v):.1f}" '
                       f'y2="{self.y(v):.1f}" stroke="#e5e5e5"/>')
        step = _nice(self.x_max / 8)
        t = 0.0
        while t <= self.x_max + 1e-9:
            out.append(f'<text x="{self.x(t):.1f}" y="{bottom + 15}" text-anchor="middle">'
                       f'{t:g}</text>')
            t += step
        out.append(f'<text x="{LEFT - 50}" y="{self.top + PANEL / 2}" transform="rotate(-90 '
                   f'{LEFT - 50} {self.top + PANEL / 2})" text-anchor="middle">'
                   f'{escape(self.unit)}</text>')
        for n, (color, label) in enumerate(self.legend):
            y = self.top + 14 + 18 * n
            out.append(f'<rect x="{right + 10}" y="{y - 9}" width="12" height="10" '
                       f'fill="{color}"/><text x="{right + 27}" y="{y}">{escape(label)}</text>')
        return "\n".join(self.parts[:1] + out + self.parts[1:])


def svg(*, attack: dict[str, Any], legit: dict[str, Any], samples: list[dict[str, Any]],
        t0: float, title: str) -> str:
    ta0 = attack["t0"] - t0
    end = max(s["t"] for s in samples)
    buckets = {int(k): v for k, v in attack["buckets"].items()}
    seconds = range(int(attack["seconds"]))

    def series(kinds: tuple[str, ...]) -> list[tuple[float, float]]:
        return [(ta0 + s + 0.5, sum(buckets.get(s, {}).get(k, 0) for k in kinds))
                for s in seconds]

    everything = ("taken_over", "mfa_pending", "failed", "server_error", "throttled",
                  "challenged", "busy", "other", "error")
    rate = series(everything)
    p1 = Panel(0, "Attack: answers per second", "per second", end, max(
        (v for _, v in rate), default=1))
    p1.band(ta0, ta0 + attack["seconds"])
    p1.line(rate, COLORS["attempts"], "all attempts")
    p1.line(series(("throttled", "challenged", "busy")), COLORS["refused"], "refused (429/503)",
            dash="5,3")
    p1.line(series(("failed", "taken_over", "mfa_pending", "server_error")),
            COLORS["evaluated"], "evaluated (401/303/500)")

    logins = [(r["t"] - t0, 1000 * r["post"]) for r in legit["logins"] if r["ok"]]
    bad = [(r["t"] - t0, 0.0) for r in legit["logins"] if not r["ok"]]
    p2 = Panel(1, "Legit logins from known devices: POST latency (log scale)", "ms", end,
               max([v for _, v in logins] + [600.0]), log=True)
    p2.band(ta0, ta0 + attack["seconds"])
    p2.dots(logins, COLORS["legit"], "login (303)")
    p2.dots(bad, COLORS["refused_legit"], "refused", cross=True)
    p2.line([(0, 500.0), (end, 500.0)], COLORS["target"], "500 ms target", dash="4,4")

    pairs = [(a, b) for a, b in pairwise(s for s in samples if s["t"] >= 0)
             if b["t"] - a["t"] >= 0.5]
    cpu = [(b["t"], (b["gw_cpu"] - a["gw_cpu"]) / (b["t"] - a["t"])) for a, b in pairs]
    main = [(b["t"], (b["gw_main"] - a["gw_main"]) / (b["t"] - a["t"])) for a, b in pairs]
    p3 = Panel(2, "Gateway CPU", "cores", end, max([v for _, v in cpu] + [1.0]))
    p3.band(ta0, ta0 + attack["seconds"])
    p3.line(cpu, COLORS["cpu"], "process")
    p3.line(main, COLORS["main"], "event-loop thread", dash="5,3")

    height = TOP + 3 * (PANEL + GAP)
    body = "\n".join(p.render() for p in (p1, p2, p3))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'font-family="sans-serif" font-size="11">\n<rect width="100%" height="100%" '
            f'fill="white"/>\n<text x="{LEFT}" y="18" font-size="13">{escape(title)} '
            f'(seconds from start; shaded: the attack)</text>\n{body}\n'
            f'<text x="{(WIDTH - RIGHT + LEFT) / 2}" y="{height - 12}" text-anchor="middle">'
            'seconds</text>\n</svg>\n')


def png(svg_path: Path, png_path: Path) -> bool:
    """Render the SVG to PNG with Playwright and the system Chromium, when both are there
    (a dev dependency and a Debian package); False when they are not."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        return False
    if chromium is None:
        return False
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium)
            try:
                page = browser.new_page(viewport={"width": WIDTH, "height": 900})
                page.set_content(f"<html><body style='margin:0'>{svg_path.read_text()}"
                                 "</body></html>")
                page.locator("svg").screenshot(path=str(png_path))
            finally:
                browser.close()
    except Error:
        return False
    return True
