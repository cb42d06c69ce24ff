"""Speed of the indicators against TA-Lib on one million bars.

Run with ``python -m tests.benchmarks.bench_indicators``; a combined runner can call ``main()``,
which returns the rows. Each indicator and its TA-Lib equivalent are timed alternately in the
same loop (so both see the same machine load). The ratio is of the best runs (the timeit
convention: other load on the machine only ever adds time); the medians are printed beside it.
The goal is to stay within 3x of TA-Lib; the table says which indicators meet it, nothing fails.
VWAP has no TA-Lib equivalent: it is timed against a straightforward pandas groupby instead.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import talib

from apps.analytics.domain import indicators

GOAL_RATIO = 3.0
BARS = 1_000_000
REPEATS = 15
BARS_PER_SESSION = 390  # one US equity session of one-minute bars


@dataclass(frozen=True)
class Row:
    name: str
    ours_ms: float
    reference_ms: float
    reference: str  # what ours was timed against: "talib" or "pandas"

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.reference_ms

    @property
    def within_goal(self) -> bool:
        return self.ratio <= GOAL_RATIO


def synthetic_market(bars: int = BARS, seed: int = 7) -> dict[str, np.ndarray]:
    """Seeded geometric Brownian motion around 100-1000 with plausible highs, lows, volumes
    and one session key per 390 bars."""
    rng = np.random.default_rng(seed)
    log_price = np.log(300.0) + np.cumsum(rng.normal(0.0, 1e-3, bars))
    close = np.exp(log_price)
    spread = np.abs(rng.normal(0.0, 5e-4, (2, bars)))
    return {
        "close": close,
        "high": close * (1.0 + spread[0]),
        "low": close * (1.0 - spread[1]),
        "volume": rng.integers(100, 10_000, bars).astype(np.float64),
        "session": np.arange(bars) // BARS_PER_SESSION,
    }


def _pandas_vwap(market: dict[str, np.ndarray]) -> np.ndarray:
    frame = pd.DataFrame(market)
    typical = (frame["high"] + frame["low"] + frame["close"]) / 3.0
    grouped = pd.DataFrame({"pv": typical * frame["volume"], "v": frame["volume"]}).groupby(
        market["session"]
    )
    sums = grouped.cumsum()
    return (sums["pv"] / sums["v"]).to_numpy()


def _cases(
    market: dict[str, np.ndarray],
) -> list[tuple[str, Callable[[], Any], Callable[[], Any], str]]:
    c, h, lo, v = market["close"], market["high"], market["low"], market["volume"]
    return [
        ("sma(20)", lambda: indicators.sma(c, 20), lambda: talib.SMA(c, 20), "talib"),
        ("ema(20)", lambda: indicators.ema(c, 20), lambda: talib.EMA(c, 20), "talib"),
        ("rsi(14)", lambda: indicators.rsi(c, 14), lambda: talib.RSI(c, 14), "talib"),
        ("macd(12,26,9)", lambda: indicators.macd(c), lambda: talib.MACD(c), "talib"),
        (
            "bollinger(20,2)",
            lambda: indicators.bollinger_bands(c, 20, 2.0),
            lambda: talib.BBANDS(c, 20, 2.0, 2.0, 0),
            "talib",
        ),
        ("atr(14)", lambda: indicators.atr(h, lo, c, 14), lambda: talib.ATR(h, lo, c, 14), "talib"),
        ("stddev(20)", lambda: indicators.stddev(c, 20), lambda: talib.STDDEV(c, 20), "talib"),
        (
            "true_range",
            lambda: indicators.true_range(h, lo, c),
            lambda: talib.TRANGE(h, lo, c),
            "talib",
        ),
        (
            "vwap(session)",
            lambda: indicators.vwap(h, lo, c, v, session=market["session"]),
            lambda: _pandas_vwap(market),
            "pandas",
        ),
    ]


def _time_pair(
    ours: Callable[[], Any], reference: Callable[[], Any], repeats: int
) -> tuple[float, float]:
    ours()
    reference()
    ours_times: list[float] = []
    reference_times: list[float] = []
    for _ in range(repeats):
        for call, times in ((ours, ours_times), (reference, reference_times)):
            began = time.perf_counter()
            call()
            times.append(time.perf_counter() - began)
    _time_pair.medians = (  # type: ignore[attr-defined]
        statistics.median(ours_times) * 1e3,
        statistics.median(reference_times) * 1e3,
    )
    return min(ours_times) * 1e3, min(reference_times) * 1e3


def main(bars: int = BARS, repeats: int = REPEATS) -> list[Row]:
    """Time every indicator against its reference, print the table and return the rows."""
    market = synthetic_market(bars)
    rows = []
    medians = []
    for name, ours, reference, label in _cases(market):
        ours_ms, reference_ms = _time_pair(ours, reference, repeats)
        rows.append(Row(name, ours_ms, reference_ms, label))
        medians.append(_time_pair.medians)  # type: ignore[attr-defined]
    print(f"indicators on {bars:,} bars, best of {repeats} alternating runs (medians in brackets)")
    print(f"{'name':<18}{'ours ms':>10}{'talib ms':>10}{'ratio':>8}  goal (<= {GOAL_RATIO:g}x)")
    for row, (ours_median, reference_median) in zip(rows, medians, strict=True):
        verdict = "ok" if row.within_goal else "SLOWER"
        note = "" if row.reference == "talib" else f"  (reference: {row.reference})"
        print(
            f"{row.name:<18}{row.ours_ms:>10.2f}{row.reference_ms:>10.2f}"
            f"{row.ratio:>8.2f}  {verdict}{note}"
            f"  [{ours_median:.2f} / {reference_median:.2f} = "
            f"{ours_median / reference_median:.2f}]"
        )
    return rows


if __name__ == "__main__":
    main()
