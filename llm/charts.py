"""Server-rendered SVG charts (no JavaScript, no external CDN): daily token bars with a cost line over them, each
on its own axis (tokens left, dollars right), dates below, a legend, and a tooltip per day."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

WIDTH = 720
HEIGHT = 220
LEFT = 56  # room for the token labels
RIGHT = 64  # room for the dollar labels
TOP = 12
BOTTOM = 28  # room for the dates
TICKS = 5  # grid lines above zero: a 1, 2, 2.5, 5 or 10 axis maximum splits into round labels
DATE_EVERY = 5  # a date label every this many days (and on the last day)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    tokens: int
    cost: Decimal


@dataclass(frozen=True)
class Tick:
    y: float
    tokens: str
    cost: str


@dataclass(frozen=True)
class DateLabel:
    x: float
    day: date


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    day: date
    cost: Decimal


@dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    cost_points: str  # an SVG polyline of the daily cost, on its own scale
    max_tokens: int
    max_cost: Decimal
    ticks: list[Tick]
    dates: list[DateLabel]
    points: list[Point]  # the line's days, each with its tooltip
    empty: bool  # no tokens and no cost on any day: the page says so instead of drawing flat lines
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 or 10 times a power of ten that is at least ``value`` (an axis maximum that
    divides into round tick labels)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value * (1 - 1e-9)))


def short_number(value: float) -> str:
    """1234 -> "1.2k", 2500000 -> "2.5M": tick labels that fit beside the chart."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:g}"


def dollars(value: float) -> str:
    """$0.00, $0.0125, $1.50: cents always, smaller fractions only when they are there."""
    whole, fraction = f"{value:.6f}".rstrip("0").split(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def daily_bars(days: list[dict[str, Any]]) -> BarChart:
    """Bars of tokens a day with a line of cost a day over them."""
    peak_tokens = max((d["tokens"] for d in days), default=0)
    peak_cost = max((d["cost"] for d in days), default=Decimal(0))
    token_top = max(nice_ceiling(peak_tokens), float(TICKS))  # no fractions of a token on the axis
    cost_top = nice_ceiling(float(peak_cost)) if peak_cost else 1.0
    left, right, bottom = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM
    usable = bottom - TOP
    slot = (right - left) / max(1, len(days))
    bars, points, dates = [], [], []
    for index, day in enumerate(days):
        height = usable * day["tokens"] / token_top
        x = left + index * slot
        bars.append(
            Bar(
                round(x + 1, 1),
                round(bottom - height, 1),
                round(max(slot - 2, 1), 1),
                round(height, 1),
                day["day"],
                day["tokens"],
                day["cost"],
            )
        )
        cost_y = round(bottom - usable * float(day["cost"]) / cost_top, 1)
        points.append(Point(round(x + slot / 2, 1), cost_y, day["day"], day["cost"]))
        if index % DATE_EVERY == 0 or index == len(days) - 1:
            dates.append(DateLabel(round(x + slot / 2, 1), day["day"]))
    ticks = [
        Tick(
            round(bottom - usable * step / TICKS, 1),
            short_number(token_top * step / TICKS),
            dollars(cost_top * step / TICKS),
        )
        for step in range(TICKS + 1)
    ]
    return BarChart(
        bars=bars,
        cost_points=" ".join(f"{p.x:.1f},{p.y:.1f}" for p in points),
        max_tokens=peak_tokens,
        max_cost=peak_cost,
        ticks=ticks,
        dates=dates,
        points=points,
        empty=not peak_tokens and not peak_cost,
    )
