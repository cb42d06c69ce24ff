"""How the risk page writes a measured value next to its limit: the unit follows the rule
type (and its "mode"), so 8 / 4 reads 8.00% / 4.00% for a sector limit and 1.35x / 2.00x for
leverage. Presentation only; the numbers are the risk engine's."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

DASH = "\u2014"

# By rule type (then by its "mode" parameter), or by the built-in check's name.
_UNITS: dict[str, str | dict[str, str]] = {
    "max_position_size": {"pct_equity": "%", "money": "money", "units": "units"},
    "daily_loss": {"pct": "%", "money": "money"},
    "max_drawdown": "%",
    "sector_limit": "%",
    "leverage": "x",
    "position_limit": "count",
    "correlation": "",
    "buying_power": "money",
    "rate_limit": "count",
}


def unit_for(kind: str | None, params: Mapping[str, Any] | None = None) -> str:
    unit = _UNITS.get(kind or "", "")
    if isinstance(unit, dict):
        return unit.get(str((params or {}).get("mode", "")), "")
    return unit


def format_measure(value: Any, unit: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return DASH
    if unit == "%":
        return f"{value:,.2f}%"
    if unit == "money":
        return f"{value:,.2f}"
    if unit == "x":
        return f"{value:,.2f}x"
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "units":
        return f"{value:,.8g} units"
    if abs(value) >= 1000:
        return f"{value:,.2f}"
    return f"{value:.4g}"
