from __future__ import annotations

from typing import Any

import numpy as np

from apps.analytics.domain.indicators import rsi
from apps.strategies.domain.base import BarSeries, SignalSeries, StrategyDefinition
from apps.strategies.domain.library._common import (
    ALLOW_SHORT,
    LONG_ENTRY,
    LONG_EXIT,
    SHORT_ENTRY,
    build_signals,
    crossed_above,
    crossed_below,
    fmt_number,
    positions,
)
from apps.strategies.domain.params import InvalidParameters, ParamSpec
from apps.strategies.domain.registry import register

# RSI points past the crossed level that count as a full-strength signal.
RSI_STRENGTH_POINTS = 10.0


@register
class RsiMeanReversion(StrategyDefinition):
    """Mean reversion on RSI (Wilder).

    Long when RSI crosses below `oversold`; close the long when it crosses above
    `exit_level`. With `allow_short`: short when RSI crosses above `overbought`, close the
    short when it crosses below `exit_level`. Strength: RSI points past the crossed level,
    divided by 10, capped at 1.
    """

    kind = "rsi_mean_reversion"
    label = "RSI mean reversion"
    description = (
        "Buys when RSI falls below the oversold level and sells when it recovers above the "
        "exit level."
    )
    params = (
        ParamSpec("period", int, 14, minimum=2, maximum=200, label="RSI period"),
        ParamSpec(
            "oversold",
            float,
            30.0,
            minimum=1.0,
            maximum=50.0,
            label="Oversold level",
            help="Buy when RSI crosses below this level.",
        ),
        ParamSpec(
            "overbought",
            float,
            70.0,
            minimum=50.0,
            maximum=99.0,
            label="Overbought level",
            help="Short (when allowed) when RSI crosses above this level.",
        ),
        ParamSpec(
            "exit_level",
            float,
            50.0,
            minimum=1.0,
            maximum=99.0,
            label="Exit level",
            help="Close the position when RSI crosses back through this level.",
        ),
        ALLOW_SHORT,
    )

    def validate(self, params: dict[str, Any]) -> None:
        oversold, overbought = params["oversold"], params["overbought"]
        errors: dict[str, str] = {}
        if overbought <= oversold:
            errors["overbought"] = (
                f"overbought: must be greater than oversold ({fmt_number(oversold)})"
            )
        elif not oversold < params["exit_level"] < overbought:
            errors["exit_level"] = (
                f"exit_level: must be between oversold ({fmt_number(oversold)}) "
                f"and overbought ({fmt_number(overbought)})"
            )
        if errors:
            raise InvalidParameters(errors)

    def warmup_bars(self, params: dict[str, Any]) -> int:
        # RSI(period) exists from bar `period`; a cross also needs the bar before.
        return params["period"] + 1

    def compute(self, bars: BarSeries, params: dict[str, Any]) -> SignalSeries:
        period = params["period"]
        oversold, overbought = params["oversold"], params["overbought"]
        exit_level = params["exit_level"]
        line = rsi(bars.close, period)
        target = positions(
            long_entry=crossed_below(line, oversold),
            long_exit=crossed_above(line, exit_level),
            short_entry=crossed_above(line, overbought) if params["allow_short"] else None,
            short_exit=crossed_below(line, exit_level),
        )
        crossed = {
            LONG_ENTRY: ("below", "oversold", oversold),
            LONG_EXIT: ("above", "the exit level", exit_level),
            SHORT_ENTRY: ("above", "overbought", overbought),
        }

        def level_of(event: str) -> tuple[str, str, float]:
            return crossed.get(event, ("below", "the exit level", exit_level))

        def strength(event: str, at: np.ndarray) -> np.ndarray:
            direction, _, level = level_of(event)
            past = line[at] - level if direction == "above" else level - line[at]
            return past / RSI_STRENGTH_POINTS

        def describe(event: str, i: int) -> str:
            direction, name, level = level_of(event)
            return f"RSI({period}) {line[i]:.2f} crossed {direction} {name} {fmt_number(level)}"

        return build_signals(target, strength, describe, {f"rsi_{period}": line})
