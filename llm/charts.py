"""Server-rendered SVG charts (no JavaScript, no external CDN)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

WIDTH = 720
HEIGHT = 180
PAD = 24


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
class BarChart:
    bars: list[Bar]
    cost_points: str  # an SVG polyline of the daily cost, on its own scale
    max_tokens: int
    max_cost: Decimal
    width: int = WIDTH
    height: int = HEIGHT


def daily_bars(days: list[dict[str, Any]]) -> BarChart:
    """Bars of tokens a day with a line of cost a day over them."""
    max_tokens = max((d["tokens"] for d in days), default=0) or 1
    max_cost = max((d["cost"] for d in days), default=Decimal(0)) or Decimal(1)
    slot = (WIDTH - 2 * PAD) / max(1, len(days))
    usable = HEIGHT - 2 * PAD
    bars, points = [], []
    for index, day in enumerate(days):
        height = usable * day["tokens"] / max_tokens
        x = PAD + index * slot
        bars.append(
            Bar(
                round(x + 1, 1),
                round(HEIGHT - PAD - height, 1),
                round(slot - 2, 1),
                round(height, 1),
                day["day"],
                day["tokens"],
                day["cost"],
            )
        )
        cost_y = HEIGHT - PAD - usable * float(day["cost"] / max_cost)
        points.append(f"{x + slot / 2:.1f},{cost_y:.1f}")
    return BarChart(bars, " ".join(points), max_tokens if days else 0, max_cost if days else Decimal(0))
