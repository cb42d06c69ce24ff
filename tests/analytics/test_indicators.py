"""The indicators against TA-Lib (the pinned 0.8.x C library) on the same data.

Values must agree to 1e-9 relative after the warm-up and be NaN exactly where TA-Lib's are.
The one exception is where a value is the difference of two price-sized numbers (the MACD line
and histogram): near a zero crossing no implementation that rounds differently can agree in
relative terms, so those also get an absolute tolerance of 1e-12 of the price level.
VWAP has no TA-Lib counterpart and is checked against a plain pandas groupby.
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import math

import numpy as np
import pandas as pd
import pytest
import talib

from apps.analytics.domain import indicators
from apps.analytics.domain.indicators import (
    atr,
    bollinger_bands,
    ema,
    macd,
    rsi,
    sma,
    stddev,
    true_range,
    vwap,
)

RTOL = 1e-9


def gbm(size: int, seed: int, level: float = 300.0, volatility: float = 2e-3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return level * np.exp(np.cumsum(rng.normal(0.0, volatility, size)))


def ohlc(size: int, seed: int, level: float = 300.0) -> tuple[np.ndarray, ...]:
    """High, low, close with the close inside the bar; bars are narrower than the moves
    between closes, so many open with a gap (the previous close outside the bar)."""
    rng = np.random.default_rng(seed + 1000)
    close = gbm(size, seed, level)
    high = close * (1.0 + np.abs(rng.normal(0.0, 1e-3, size)))
    low = close * (1.0 - np.abs(rng.normal(0.0, 1e-3, size)))
    return high, low, close


def assert_matches(ours: np.ndarray, reference: np.ndarray, atol: float = 0.0) -> None:
    assert ours.dtype == np.float64
    assert ours.shape == reference.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    np.testing.assert_allclose(ours, reference, rtol=RTOL, atol=atol, equal_nan=True)


def price_scale(close: np.ndarray) -> float:
    return 1e-12 * float(np.nanmax(np.abs(close)))


# --------------------------------------------------------------------------- against TA-Lib

SIZES_AND_SEEDS = [(50, 1), (333, 2), (5_000, 3), (70_001, 4)]
PERIODS = [2, 3, 5, 14, 20, 50, 200]


@pytest.mark.parametrize(("size", "seed"), SIZES_AND_SEEDS)
@pytest.mark.parametrize("n", PERIODS)
def test_sma_matches_talib(size: int, seed: int, n: int) -> None:
    close = gbm(size, seed)
    assert_matches(sma(close, n), talib.SMA(close, n))


@pytest.mark.parametrize(("size", "seed"), SIZES_AND_SEEDS)
@pytest.mark.parametrize("n", PERIODS)
def test_ema_matches_talib(size: int, seed: int, n: int) -> None:
    close = gbm(size, seed)
    assert_matches(ema(close, n), talib.EMA(close, n))


@pytest.mark.parametrize(("size", "seed"), SIZES_AND_SEEDS)
@pytest.mark.parametrize("n", PERIODS)
def test_rsi_matches_talib(size: int, seed: int, n: int) -> None:
    close = gbm(size, seed)
    assert_matches(rsi(close, n), talib.RSI(close, n))


@pytest.mark.parametrize(("size", "seed"), SIZES_AND_SEEDS)
@pytest.mark.parametrize("n", [1, *PERIODS])
def test_atr_and_true_range_match_talib(size: int, seed: int, n: int) -> None:
    high, low, close = ohlc(size, seed)
    assert_matches(atr(high, low, close, n), talib.ATR(high, low, close, n))
    assert_matches(true_range(high, low, close), talib.TRANGE(high, low, close))


@pytest.mark.parametrize(("size", "seed"), SIZES_AND_SEEDS)
@pytest.mark.parametrize("n", PERIODS)
@pytest.mark.parametrize("k", [2.0, 1.0, 0.5])
def test_bollinger_bands_match_talib(size: int, seed: int, n: int, k: float) -> None:
    close = gbm(size, seed)
    expected = talib.BBANDS(close, n, k, k, 0)
    for ours, reference in zip(bollinger_bands(close, n, k), expected, strict=True):
        assert_matches(ours, reference)


# Over thousands of 2- and 3-bar windows some hold nearly equal prices, and there TA-Lib's own
# result is off by up to 1e-8 (checked against exact fractions): those periods on long series
# are held to the exact reference in test_stddev_is_exact_where_talib_rounds instead.
STDDEV_CASES = [
    (size, seed, n)
    for size, seed in SIZES_AND_SEEDS
    for n in PERIODS
    if not (n <= 3 and size > 1_000)
]


@pytest.mark.parametrize(("size", "seed", "n"), STDDEV_CASES)
def test_stddev_matches_talib(size: int, seed: int, n: int) -> None:
    close = gbm(size, seed)
    assert_matches(stddev(close, n), talib.STDDEV(close, n, 1.0))


@pytest.mark.parametrize(("size", "seed"), SIZES_AND_SEEDS)
@pytest.mark.parametrize(
    ("fast", "slow", "signal"), [(12, 26, 9), (3, 10, 4), (5, 6, 1), (2, 2, 2), (26, 12, 9)]
)
def test_macd_matches_talib(size: int, seed: int, fast: int, slow: int, signal: int) -> None:
    close = gbm(size, seed)
    expected = talib.MACD(close, fast, slow, signal)
    for ours, reference in zip(macd(close, fast, slow, signal), expected, strict=True):
        assert_matches(ours, reference, atol=price_scale(close))


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (3, 4, 2)])
def test_macd_starts_where_talib_does(fast: int, slow: int, signal: int) -> None:
    close = gbm(100, 9)
    for line in macd(close, fast, slow, signal):
        assert np.isnan(line[: slow + signal - 2]).all()
        assert not np.isnan(line[slow + signal - 2 :]).any()


def test_macd_swaps_fast_and_slow_like_talib() -> None:
    close = gbm(300, 10)
    for swapped, normal in zip(macd(close, 26, 12, 9), macd(close, 12, 26, 9), strict=True):
        np.testing.assert_array_equal(swapped, normal)


# --------------------------------------------------------------------------- long series


@pytest.fixture(scope="module")
def million() -> dict[str, np.ndarray]:
    """1,000,000 bars at a 100-1000 price level (a Brownian bridge in log price, so the level
    stays put): where cumulative-sum drift would show."""
    size = 1_000_000
    rng = np.random.default_rng(42)
    walk = np.cumsum(rng.normal(0.0, 4e-4, size))
    close = 400.0 * np.exp(walk - walk[-1] * np.arange(1, size + 1) / size)
    high = close * (1.0 + np.abs(rng.normal(0.0, 3e-4, size)))
    low = close * (1.0 - np.abs(rng.normal(0.0, 3e-4, size)))
    assert close.min() > 100 and close.max() < 1000
    return {"high": high, "low": low, "close": close}


@pytest.mark.parametrize("n", [2, 20, 200])
def test_long_series_match_talib(million: dict[str, np.ndarray], n: int) -> None:
    high, low, close = million["high"], million["low"], million["close"]
    assert_matches(sma(close, n), talib.SMA(close, n))
    assert_matches(ema(close, n), talib.EMA(close, n))
    assert_matches(rsi(close, n), talib.RSI(close, n))
    assert_matches(atr(high, low, close, n), talib.ATR(high, low, close, n))
    for ours, reference in zip(bollinger_bands(close, n), talib.BBANDS(close, n), strict=True):
        assert_matches(ours, reference)


def test_long_series_stddev_and_macd_match_talib(million: dict[str, np.ndarray]) -> None:
    close = million["close"]
    assert_matches(stddev(close, 20), talib.STDDEV(close, 20))
    for ours, reference in zip(macd(close), talib.MACD(close), strict=True):
        assert_matches(ours, reference, atol=price_scale(close))


@pytest.mark.parametrize("n", [2, 3, 5, 20])
@pytest.mark.parametrize("kind", ["quiet", "jumps", "ticks"])
def test_stddev_is_exact_where_talib_rounds(n: int, kind: str) -> None:
    # On low-volatility, gapping or tick-rounded series TA-Lib's own deviation can be off by
    # 1e-7 relative; against an extended-precision two-pass reference ours stays at 1e-11.
    rng = np.random.default_rng(n)
    size = 200_000
    if kind == "quiet":
        close = gbm(size, n, level=500.0, volatility=2e-5)
    elif kind == "jumps":
        close = (
            100.0 + np.cumsum(rng.normal(0, 0.01, size)) + 50.0 * (np.arange(size) % 5000 > 2500)
        )
    else:
        close = np.round(gbm(size, n, level=100.0, volatility=1e-4), 2)
    windows = np.lib.stride_tricks.sliding_window_view(close.astype(np.longdouble), n)
    deviations = windows - windows.mean(axis=1, keepdims=True)
    exact = np.sqrt((deviations * deviations).mean(axis=1)).astype(np.float64)
    ours = stddev(close, n)[n - 1 :]
    np.testing.assert_allclose(ours, exact, rtol=1e-11, atol=0.0)
    np.testing.assert_array_equal(ours == 0.0, exact == 0.0)


@pytest.mark.parametrize("size", [65_536 - 3, 65_536 + 37, 2 * 65_536 + 5, 3 * 65_536])
def test_segment_boundaries(size: int) -> None:
    high, low, close = ohlc(size, size)
    assert_matches(ema(close, 30), talib.EMA(close, 30))
    assert_matches(sma(close, 30), talib.SMA(close, 30))
    assert_matches(rsi(close, 9), talib.RSI(close, 9))
    assert_matches(atr(high, low, close, 7), talib.ATR(high, low, close, 7))
    assert_matches(stddev(close, 30), talib.STDDEV(close, 30))
    for ours, reference in zip(macd(close), talib.MACD(close), strict=True):
        assert_matches(ours, reference, atol=price_scale(close))


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("size", [0, 1, 5, 13, 14])
def test_input_shorter_than_the_warmup_is_all_nan(size: int) -> None:
    high, low, close = ohlc(max(size, 1), 5)
    high, low, close = high[:size], low[:size], close[:size]
    cases = [
        (sma(close, 15), talib.SMA(close, 15) if size else np.array([])),
        (ema(close, 15), talib.EMA(close, 15) if size else np.array([])),
        (rsi(close, 14), talib.RSI(close, 14) if size else np.array([])),
        (atr(high, low, close, 14), talib.ATR(high, low, close, 14) if size else np.array([])),
        (stddev(close, 15), np.full(size, np.nan)),
        *((band, np.full(size, np.nan)) for band in bollinger_bands(close, 15)),
        *((line, np.full(size, np.nan)) for line in macd(close)),
    ]
    for ours, reference in cases:
        assert ours.shape == (size,)
        assert np.isnan(ours).all()
        assert np.isnan(reference).all()


def test_period_longer_than_the_data_is_all_nan() -> None:
    close = gbm(100, 6)
    for result in (sma(close, 101), ema(close, 101), rsi(close, 100), stddev(close, 101)):
        assert result.shape == close.shape
        assert np.isnan(result).all()


@pytest.mark.parametrize("size", [2, 17, 100])
def test_period_as_long_as_the_data_gives_one_value(size: int) -> None:
    high, low, close = ohlc(size, size)
    n = size
    assert_matches(sma(close, n), talib.SMA(close, n))
    assert_matches(ema(close, n), talib.EMA(close, n))
    assert_matches(stddev(close, n), talib.STDDEV(close, n))
    for ours, reference in zip(bollinger_bands(close, n), talib.BBANDS(close, n), strict=True):
        assert_matches(ours, reference)
    if n > 2:  # TA-Lib's RSI needs a period of 2 or more
        assert_matches(rsi(close, n - 1), talib.RSI(close, n - 1))
    assert_matches(atr(high, low, close, n - 1), talib.ATR(high, low, close, n - 1))
    assert np.count_nonzero(~np.isnan(sma(close, n))) == 1


def test_n_of_one_is_the_natural_limit() -> None:
    close = gbm(500, 7)
    np.testing.assert_array_equal(sma(close, 1), close)
    np.testing.assert_array_equal(ema(close, 1), close)
    assert_matches(sma(close, 1), talib.SMA(close, 1))
    assert_matches(ema(close, 1), talib.EMA(close, 1))
    np.testing.assert_array_equal(stddev(close, 1), np.zeros_like(close))
    upper, middle, lower = bollinger_bands(close, 1)
    for band in (upper, middle, lower):
        np.testing.assert_array_equal(band, close)
    # Wilder with n = 1 keeps only the last change: 100 after a rise, 0 after a fall.
    expected = np.where(np.diff(close) > 0, 100.0, 0.0)
    np.testing.assert_array_equal(rsi(close, 1)[1:], expected)
    assert math.isnan(rsi(close, 1)[0])
    # A fast period of 1 is the price itself; a signal period of 1 is the MACD line itself.
    line, trigger, hist = macd(close, 1, 5, 1)
    assert_matches(line, close - talib.EMA(close, 5), atol=price_scale(close))
    np.testing.assert_array_equal(trigger, line)
    np.testing.assert_array_equal(hist[4:], 0.0)


def test_constant_prices() -> None:
    close = np.full(400, 123.45)
    # TA-Lib 0.8 answers 0 when neither a gain nor a loss has been seen.
    assert_matches(rsi(close, 14), talib.RSI(close, 14))
    assert (rsi(close, 14)[14:] == 0.0).all()
    assert (stddev(close, 20)[19:] == 0.0).all()
    upper, middle, lower = bollinger_bands(close, 20)
    np.testing.assert_array_equal(upper[19:], middle[19:])
    np.testing.assert_array_equal(lower[19:], middle[19:])
    assert_matches(middle, talib.SMA(close, 20))
    assert (atr(close, close, close, 14)[14:] == 0.0).all()
    for line in macd(close):
        np.testing.assert_allclose(line[33:], 0.0, atol=price_scale(close))


def test_flat_stretch_after_moves_has_exactly_zero_deviation() -> None:
    close = np.concatenate([gbm(100_000, 11), np.full(100_000, 321.0)])
    deviation = stddev(close, 20)
    assert (deviation[100_019:] == 0.0).all()
    assert (deviation[19:100_000] > 0.0).all()
    assert_matches(deviation, talib.STDDEV(close, 20))
    upper, middle, lower = bollinger_bands(close, 20)
    np.testing.assert_array_equal(upper[100_019:], middle[100_019:])
    np.testing.assert_array_equal(lower[100_019:], middle[100_019:])


def test_true_range_across_gaps_and_inverted_bars() -> None:
    high, low, close = ohlc(2_000, 12)
    high[100], low[100] = low[100], high[100]  # a bad bar with high < low
    gap_up = slice(500, 520)
    high[gap_up] += 25.0
    low[gap_up] += 25.0
    close[gap_up] += 25.0
    assert_matches(true_range(high, low, close), talib.TRANGE(high, low, close))
    assert_matches(atr(high, low, close, 14), talib.ATR(high, low, close, 14))
    # The gap bar's range runs from the previous close, below its low.
    assert low[500] > close[499]
    assert true_range(high, low, close)[500] == high[500] - close[499]


@pytest.mark.parametrize("lead", [1, 3, 40])
def test_leading_nans_are_skipped_like_talib(lead: int) -> None:
    high, low, close = ohlc(1_000, 13)
    close[:lead] = np.nan
    high[: lead + 2] = np.nan  # the first complete bar is lead + 2
    assert_matches(sma(close, 10), talib.SMA(close, 10))
    assert_matches(ema(close, 10), talib.EMA(close, 10))
    assert_matches(rsi(close, 10), talib.RSI(close, 10))
    assert_matches(stddev(close, 10), talib.STDDEV(close, 10))
    for ours, reference in zip(bollinger_bands(close, 10), talib.BBANDS(close, 10), strict=True):
        assert_matches(ours, reference)
    for ours, reference in zip(macd(close), talib.MACD(close), strict=True):
        assert_matches(ours, reference, atol=price_scale(close[lead:]))
    assert_matches(atr(high, low, close, 10), talib.ATR(high, low, close, 10))
    assert_matches(true_range(high, low, close), talib.TRANGE(high, low, close))


def test_all_nan_input_gives_all_nan() -> None:
    close = np.full(50, np.nan)
    for result in (sma(close, 5), ema(close, 5), rsi(close, 5), stddev(close, 5)):
        assert np.isnan(result).all()
    assert np.isnan(atr(close, close, close, 5)).all()


@pytest.mark.parametrize("gap_at", [30, 70_000])
def test_a_missing_bar_stops_the_recursive_indicators_like_talib(gap_at: int) -> None:
    close = gbm(80_000, 14)
    close[gap_at] = np.nan
    assert_matches(ema(close, 20), talib.EMA(close, 20))
    for ours, reference in zip(macd(close), talib.MACD(close), strict=True):
        assert_matches(ours, reference, atol=price_scale(np.nan_to_num(close)))
    # TA-Lib writes 0 (an "extremely oversold" reading) after a missing bar; ours says NaN.
    ours = rsi(close, 14)
    assert_matches(ours[:gap_at], talib.RSI(close, 14)[:gap_at])
    assert np.isnan(ours[gap_at:]).all()


@pytest.mark.parametrize("gap_at", [30, 70_000])
def test_a_missing_close_only_shortens_the_next_true_range_like_talib(gap_at: int) -> None:
    high, low, close = ohlc(80_000, 15)
    close[gap_at] = np.nan
    assert_matches(atr(high, low, close, 14), talib.ATR(high, low, close, 14))
    assert true_range(high, low, close)[gap_at + 1] == high[gap_at + 1] - low[gap_at + 1]
    high[gap_at + 5] = np.nan  # a missing high stops it, as in TA-Lib
    assert_matches(atr(high, low, close, 14), talib.ATR(high, low, close, 14))
    assert np.isnan(atr(high, low, close, 14)[gap_at + 5 :]).all()


@pytest.mark.parametrize("gaps", [[30], [70_000, 70_003], [65_530, 65_540]])
@pytest.mark.parametrize("n", [5, 20])
def test_a_missing_bar_only_blanks_the_windows_holding_it(gaps: list[int], n: int) -> None:
    close = gbm(80_000, 16)
    close[gaps] = np.nan
    # Two-pass window statistics; a window holding a NaN comes out NaN.
    windows = np.lib.stride_tricks.sliding_window_view(close, n)
    mean = np.concatenate([np.full(n - 1, np.nan), windows.mean(axis=1)])
    deviation = np.concatenate([np.full(n - 1, np.nan), windows.std(axis=1)])
    assert_matches(sma(close, n), mean)
    assert_matches(stddev(close, n), deviation)
    upper, middle, lower = bollinger_bands(close, n, 2.0)
    assert_matches(middle, mean)
    assert_matches(upper, mean + 2.0 * deviation)
    assert_matches(lower, mean - 2.0 * deviation)
    # Outside the blanked windows the values are TA-Lib's, which is NaN from the gap on.
    before = gaps[0]
    assert_matches(sma(close, n)[:before], talib.SMA(close, n)[:before])
    assert not np.isnan(sma(close, n)[gaps[-1] + n :]).any()


def test_accepts_lists_and_integers_and_returns_float64() -> None:
    prices = [10, 11, 12, 11, 10, 9, 10, 12, 13, 14, 13, 12]
    result = sma(prices, 3)
    assert isinstance(result, np.ndarray)
    assert result.dtype == np.float64
    assert_matches(result, talib.SMA(np.asarray(prices, dtype=np.float64), 3))
    assert_matches(atr(prices, prices, prices, 3), talib.ATR(*(np.asarray(prices, float),) * 3, 3))


def test_input_is_not_modified() -> None:
    high, low, close = ohlc(70_000, 17)
    copies = [array.copy() for array in (high, low, close)]
    sma(close, 20), ema(close, 20), rsi(close), macd(close), bollinger_bands(close)
    stddev(close, 20), atr(high, low, close), vwap(high, low, close, close)
    for array, copy in zip((high, low, close), copies, strict=True):
        np.testing.assert_array_equal(array, copy)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad", [0, -3, 2.5, 14.0, "14", None, True])
def test_period_must_be_a_positive_int(bad: object) -> None:
    close = gbm(50, 18)
    calls = [
        lambda: sma(close, bad),
        lambda: ema(close, bad),
        lambda: rsi(close, bad),
        lambda: stddev(close, bad),
        lambda: bollinger_bands(close, bad),
        lambda: atr(close, close, close, bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"^n must be an int >= 1"):
            call()
    for name in ("fast", "slow", "signal"):
        with pytest.raises(ValueError, match=rf"^{name} must be an int >= 1"):
            macd(close, **{name: bad})


def test_numpy_integer_periods_are_accepted() -> None:
    close = gbm(100, 19)
    assert_matches(sma(close, np.int64(10)), talib.SMA(close, 10))


@pytest.mark.parametrize("bad", [math.nan, math.inf, "2", None])
def test_band_width_must_be_a_finite_number(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^k must be a finite number"):
        bollinger_bands(gbm(50, 20), 20, bad)


def test_arrays_of_unequal_length_are_refused() -> None:
    high, low, close = ohlc(100, 21)
    with pytest.raises(ValueError, match="same length"):
        atr(high, low[:-1], close)
    with pytest.raises(ValueError, match="same length"):
        true_range(high, low, close[1:])
    with pytest.raises(ValueError, match="same length"):
        vwap(high, low, close, close[:-1])
    with pytest.raises(ValueError, match="session"):
        vwap(high, low, close, close, session=np.zeros(99))


def test_non_series_input_is_refused() -> None:
    with pytest.raises(ValueError, match="one-dimensional"):
        sma(np.ones((10, 2)), 3)
    with pytest.raises(ValueError, match="close must be an array of numbers"):
        ema(["a", "b", "c"], 2)


# --------------------------------------------------------------------------- VWAP


def pandas_vwap(high, low, close, volume, session=None) -> np.ndarray:
    frame = pd.DataFrame({"h": high, "l": low, "c": close, "v": volume})
    missing = frame.isna().any(axis=1)
    typical = (frame["h"] + frame["l"] + frame["c"]) / 3.0
    parts = pd.DataFrame(
        {"pv": (typical * frame["v"]).where(~missing), "v": frame["v"].where(~missing)}
    )
    keys = np.zeros(len(frame)) if session is None else pd.Series(session)
    # A new session whenever the key changes, whatever the key's type.
    runs = (pd.Series(keys) != pd.Series(keys).shift()).cumsum()
    sums = parts.groupby(runs.to_numpy()).cumsum()
    result = (sums["pv"] / sums["v"]).where(sums["v"] > 0)
    return result.where(~missing).to_numpy(dtype=np.float64)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("bars_per_session", [None, 1, 7, 390])
def test_vwap_matches_pandas(seed: int, bars_per_session: int | None) -> None:
    high, low, close = ohlc(20_000, seed)
    volume = np.random.default_rng(seed).integers(0, 5_000, close.size).astype(float)
    session = None if bars_per_session is None else np.arange(close.size) // bars_per_session
    ours = vwap(high, low, close, volume, session=session)
    reference = pandas_vwap(high, low, close, volume, session)
    assert_matches(ours, reference)
    if session is not None:
        starts = np.flatnonzero(np.diff(session)) + 1
        typical = (high + low + close) / 3.0
        traded = volume[starts] > 0
        np.testing.assert_allclose(ours[starts][traded], typical[starts][traded], rtol=1e-12)


def test_vwap_with_date_keys_missing_bars_and_no_volume_yet() -> None:
    high, low, close = ohlc(3_000, 4)
    volume = np.random.default_rng(4).integers(1, 5_000, close.size).astype(float)
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=int(i // 100)) for i in range(close.size)]
    volume[200:205] = 0.0  # the third session opens without trades
    close[1_234] = np.nan
    volume[2_345] = np.nan
    ours = vwap(high, low, close, volume, session=days)
    assert_matches(ours, pandas_vwap(high, low, close, volume, days))
    assert np.isnan(ours[200:205]).all()
    assert np.isnan(ours[[1_234, 2_345]]).all()
    as_datetime64 = np.array(days, dtype="datetime64[D]")
    np.testing.assert_array_equal(vwap(high, low, close, volume, session=as_datetime64), ours)


def test_vwap_late_sessions_keep_full_precision() -> None:
    # A million bars of large trade values: a session's sum taken as the difference of two
    # running totals of the whole series would lose the digits the earlier sessions occupy.
    high, low, close = ohlc(1_000_000, 5, level=900.0)
    volume = np.random.default_rng(5).integers(1, 2_000_000, close.size).astype(float)
    session = np.arange(close.size) // 390
    ours = vwap(high, low, close, volume, session=session)
    typical = (high + low + close) / 3.0
    for start in (0, 390 * 2_000, 390 * 2_563):
        bars = slice(start, start + 390)
        value = np.array(
            [math.fsum(typical[bars][: i + 1] * volume[bars][: i + 1]) for i in range(390)]
        )
        traded = np.cumsum(volume[bars])
        np.testing.assert_allclose(ours[bars], value / traded, rtol=1e-13)


def test_vwap_of_nothing_is_empty() -> None:
    result = vwap([], [], [], [], session=[])
    assert result.shape == (0,)
    assert result.dtype == np.float64


def test_vwap_refuses_negative_volume() -> None:
    high, low, close = ohlc(10, 6)
    volume = np.ones(10)
    volume[3] = -1.0
    with pytest.raises(ValueError, match="volume must not be negative"):
        vwap(high, low, close, volume)


# --------------------------------------------------------------------------- purity


def test_module_is_pure() -> None:
    tree = ast.parse(inspect.getsource(indicators))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"django", "time", "datetime"}
