from __future__ import annotations

from typing import Any

import numpy as np

from apps.analytics.domain.indicators import bollinger_bands
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
    fmt_price,
    positions,
    ratio,
)
from apps.strategies.domain.params import ParamSpec
from apps.strategies.domain.registry import register


@register
class BollingerBreakout(StrategyDefinition):
    """Breakout from Bollinger bands (SMA +/- k population standard deviations).

    Long when the close crosses above the upper band; close the long when the close crosses
    below the middle band. With `allow_short`: short when the close crosses below the lower
    band, close the short when it crosses above the middle band. Strength: the distance of
    the close past the crossed line in units of the band half-width (k standard deviations),
    capped at 1.
    """

    kind = "bollinger_breakout"
    label = "Bollinger breakout"
    description = (
        "Buys when the close breaks above the upper Bollinger band and sells when it falls "
        "back below the middle band."
    )
    params = (
        ParamSpec(
            "period", int, 20, minimum=2, maximum=500, label="Period", help="Bars in the bands."
        ),
        ParamSpec(
            "k",
            float,
            2.0,
            minimum=0.5,
            maximum=5.0,
            label="Width (k)",
            help="Band distance from the middle in standard deviations.",
        ),
        ALLOW_SHORT,
    )

    def warmup_bars(self, params: dict[str, Any]) -> int:
        # The bands exist from bar period - 1; a cross also needs the bar before.
        return params["period"]

    def compute(self, bars: BarSeries, params: dict[str, Any]) -> SignalSeries:
        period, k = params["period"], params["k"]
        close = bars.close
        upper, middle, lower = bollinger_bands(close, period, k)
        target = positions(
            long_entry=crossed_above(close, upper),
            long_exit=crossed_below(close, middle),
            short_entry=crossed_below(close, lower) if params["allow_short"] else None,
            short_exit=crossed_above(close, middle),
        )
        crossed = {
            LONG_ENTRY: ("above", "the upper band", upper),
            LONG_EXIT: ("below", "the middle band", middle),
            SHORT_ENTRY: ("below", "the lower band", lower),
        }

        def line_of(event: str) -> tuple[str, str, np.ndarray]:
            return crossed.get(event, ("above", "the middle band", middle))

        def strength(event: str, at: np.ndarray) -> np.ndarray:
            direction, _, line = line_of(event)
            past = close[at] - line[at] if direction == "above" else line[at] - close[at]
            return ratio(past, upper[at] - middle[at])

        def describe(event: str, i: int) -> str:
            direction, name, line = line_of(event)
            return (
                f"close {fmt_price(close[i])} crossed {direction} {name} "
                f"{fmt_price(line[i])} of Bollinger({period}, {fmt_number(k)})"
            )

        indicators = {"bb_upper": upper, "bb_middle": middle, "bb_lower": lower}
        return build_signals(target, strength, describe, indicators)
