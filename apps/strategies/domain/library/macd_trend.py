from __future__ import annotations

from typing import Any

import numpy as np

from apps.analytics.domain.indicators import atr, macd
from apps.strategies.domain.base import BarSeries, SignalSeries, StrategyDefinition
from apps.strategies.domain.library._common import (
    ALLOW_SHORT,
    LONG_ENTRY,
    SHORT_ENTRY,
    SHORT_EXIT,
    build_signals,
    crossed_above,
    crossed_below,
    positions,
    ratio,
)
from apps.strategies.domain.params import ParamSpec
from apps.strategies.domain.registry import register


@register
class MacdTrend(StrategyDefinition):
    """Trend following on MACD (EMA(fast) - EMA(slow)) and its signal line (EMA(signal)).

    Long when MACD crosses above its signal line (and, with `require_zero_line`, MACD > 0);
    close the long when it crosses below. With `allow_short`, the mirror: short when MACD
    crosses below the signal line (with `require_zero_line`, MACD < 0), close the short when
    it crosses above. Strength: |MACD - signal| in units of ATR(slow), capped at 1.
    """

    kind = "macd_trend"
    label = "MACD trend"
    description = (
        "Buys when MACD crosses above its signal line and sells when it crosses back below."
    )
    params = (
        ParamSpec("fast", int, 12, minimum=2, maximum=200, label="Fast EMA"),
        ParamSpec(
            "slow",
            int,
            26,
            minimum=3,
            maximum=500,
            label="Slow EMA",
            help="Must be greater than fast.",
        ),
        ParamSpec("signal", int, 9, minimum=2, maximum=200, label="Signal EMA"),
        ParamSpec(
            "require_zero_line",
            bool,
            False,
            label="Require zero line",
            help="Enter long only while MACD is above zero (short only while below).",
        ),
        ALLOW_SHORT,
    )

    def validate(self, params: dict[str, Any]) -> None:
        if params["slow"] <= params["fast"]:
            raise self.invalid("slow", f"must be greater than fast ({params['fast']})")

    def warmup_bars(self, params: dict[str, Any]) -> int:
        # MACD and its signal line exist from bar slow + signal - 2; a cross needs one more.
        return params["slow"] + params["signal"] - 1

    def compute(self, bars: BarSeries, params: dict[str, Any]) -> SignalSeries:
        fast_n, slow_n, signal_n = params["fast"], params["slow"], params["signal"]
        zero_line = params["require_zero_line"]
        line, signal, hist = macd(bars.close, fast_n, slow_n, signal_n)
        up = crossed_above(line, signal)
        down = crossed_below(line, signal)
        long_entry = up & (line > 0) if zero_line else up
        short_entry = down & (line < 0) if zero_line else down
        target = positions(
            long_entry=long_entry,
            long_exit=down,
            short_entry=short_entry if params["allow_short"] else None,
            short_exit=up,
        )

        def strength(event: str, at: np.ndarray) -> np.ndarray:
            scale = atr(bars.high, bars.low, bars.close, slow_n)[at]
            return ratio(np.abs(hist[at]), scale)

        def describe(event: str, i: int) -> str:
            direction = "above" if event in (LONG_ENTRY, SHORT_EXIT) else "below"
            sentence = (
                f"MACD({fast_n}, {slow_n}) {line[i]:.4f} crossed {direction} "
                f"its signal line({signal_n}) {signal[i]:.4f}"
            )
            if zero_line and event in (LONG_ENTRY, SHORT_ENTRY):
                sentence += f" {'above' if event == LONG_ENTRY else 'below'} the zero line"
            return sentence

        indicators = {"macd": line, "macd_signal": signal, "macd_hist": hist}
        return build_signals(target, strength, describe, indicators)
