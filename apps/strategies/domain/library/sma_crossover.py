from __future__ import annotations

from typing import Any

import numpy as np

from apps.analytics.domain.indicators import atr, sma
from apps.strategies.domain.base import BarSeries, SignalSeries, StrategyDefinition
from apps.strategies.domain.library._common import (
    ALLOW_SHORT,
    LONG_ENTRY,
    SHORT_EXIT,
    build_signals,
    crossed_above,
    crossed_below,
    fmt_price,
    positions,
    ratio,
)
from apps.strategies.domain.params import ParamSpec
from apps.strategies.domain.registry import register


@register
class SmaCrossover(StrategyDefinition):
    """Trend following on two simple moving averages.

    Long when SMA(fast) crosses above SMA(slow) (previous fast <= previous slow, now
    fast > slow); close the long, or reverse to short when `allow_short`, when it crosses
    below. Strength: the gap between the two averages in units of ATR(slow), capped at 1.
    """

    kind = "sma_crossover"
    label = "SMA crossover"
    description = (
        "Buys when the fast simple moving average crosses above the slow one and sells when "
        "it crosses back below."
    )
    params = (
        ParamSpec(
            "fast", int, 10, minimum=2, maximum=500, label="Fast SMA", help="Bars in the fast SMA."
        ),
        ParamSpec(
            "slow",
            int,
            30,
            minimum=3,
            maximum=1000,
            label="Slow SMA",
            help="Bars in the slow SMA; must be greater than fast.",
        ),
        ALLOW_SHORT,
    )

    def validate(self, params: dict[str, Any]) -> None:
        if params["slow"] <= params["fast"]:
            raise self.invalid("slow", f"must be greater than fast ({params['fast']})")

    def warmup_bars(self, params: dict[str, Any]) -> int:
        # SMA(slow) exists from bar slow - 1; a cross also needs the bar before.
        return params["slow"]

    def compute(self, bars: BarSeries, params: dict[str, Any]) -> SignalSeries:
        fast_n, slow_n = params["fast"], params["slow"]
        fast = sma(bars.close, fast_n)
        slow = sma(bars.close, slow_n)
        up = crossed_above(fast, slow)
        down = crossed_below(fast, slow)
        target = positions(
            long_entry=up,
            long_exit=down,
            short_entry=down if params["allow_short"] else None,
            short_exit=up,
        )

        def strength(event: str, at: np.ndarray) -> np.ndarray:
            scale = atr(bars.high, bars.low, bars.close, slow_n)[at]
            return ratio(np.abs(fast[at] - slow[at]), scale)

        def describe(event: str, i: int) -> str:
            direction = "above" if event in (LONG_ENTRY, SHORT_EXIT) else "below"
            return (
                f"SMA({fast_n}) {fmt_price(fast[i])} crossed {direction} "
                f"SMA({slow_n}) {fmt_price(slow[i])}"
            )

        indicators = {f"sma_{fast_n}": fast, f"sma_{slow_n}": slow}
        return build_signals(target, strength, describe, indicators)
