import dataclasses
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib
from backtesting.lib import crossover

from apps.marketdata.domain.synthetic import gbm_bars, session_times
from apps.strategies.domain import (
    BarSeries,
    SignalSeries,
    StrategyDefinition,
    get_strategy,
    latest_signal,
    register,
    strategy_kinds,
)
from apps.strategies.domain.library import SmaCrossover
from apps.strategies.domain.library._common import positions

KINDS = ["sma_crossover", "rsi_mean_reversion", "bollinger_breakout", "macd_trend"]

PARAM_SETS: list[tuple[str, dict[str, Any]]] = [
    ("sma_crossover", {}),
    ("sma_crossover", {"allow_short": True}),
    ("sma_crossover", {"fast": 5, "slow": 20, "allow_short": True}),
    ("rsi_mean_reversion", {}),
    ("rsi_mean_reversion", {"allow_short": True}),
    ("rsi_mean_reversion", {"period": 7, "oversold": 35, "overbought": 65, "allow_short": True}),
    ("bollinger_breakout", {}),
    ("bollinger_breakout", {"allow_short": True}),
    ("bollinger_breakout", {"period": 10, "k": 1.5, "allow_short": True}),
    ("macd_trend", {}),
    ("macd_trend", {"allow_short": True}),
    ("macd_trend", {"require_zero_line": True, "allow_short": True}),
    ("macd_trend", {"fast": 5, "slow": 35, "signal": 5}),
]
PARAM_IDS = [
    f"{kind}-{'-'.join(f'{k}={v}' for k, v in p.items()) or 'defaults'}" for kind, p in PARAM_SETS
]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def bars_from_closes(closes: list[float] | np.ndarray) -> BarSeries:
    """Daily bars whose open is the previous close and whose range is the body +/- 0.5."""
    close = np.asarray(closes, dtype=np.float64)
    open_ = np.r_[close[0], close[:-1]]
    ts = pd.date_range("2024-01-01", periods=close.size, freq="D", tz="UTC")
    return BarSeries(
        ts,
        open_,
        np.maximum(open_, close) + 0.5,
        np.minimum(open_, close) - 0.5,
        close,
        np.full(close.size, 1000.0),
    )


def gbm_series(seed: int, timeframe: str = "1d", years: int = 8) -> BarSeries:
    times = session_times(timeframe, utc(2010, 1, 1), utc(2010 + years, 1, 1))
    return BarSeries.from_frame(gbm_bars(times, seed=seed, sigma=0.3))


@pytest.fixture(scope="module")
def daily() -> BarSeries:
    return gbm_series(seed=42)


def alternating(n: int, low: float, high: float) -> list[float]:
    return [low if i % 2 == 0 else high for i in range(n)]


# --- reference implementation: TA-Lib indicators, a loop over bars ----------------------


def reference_target(le, lx, se, sx) -> np.ndarray:
    """The event rules written as the plain per-bar loop a trader would describe."""
    state, out = 0, []
    for i in range(len(le)):
        if le[i]:
            state = 1
        elif se[i]:
            state = -1
        elif (state == 1 and lx[i]) or (state == -1 and sx[i]):
            state = 0
        out.append(state)
    return np.array(out, dtype=np.int8)


def cross_up(a, b, i) -> bool:
    b_prev, b_now = (b, b) if np.isscalar(b) else (b[i - 1], b[i])
    return i > 0 and a[i - 1] <= b_prev and a[i] > b_now


def cross_down(a, b, i) -> bool:
    b_prev, b_now = (b, b) if np.isscalar(b) else (b[i - 1], b[i])
    return i > 0 and a[i - 1] >= b_prev and a[i] < b_now


def reference_events(kind: str, p: dict[str, Any], close: np.ndarray):
    n = close.size
    rng = range(n)
    if kind == "sma_crossover":
        fast, slow = talib.SMA(close, p["fast"]), talib.SMA(close, p["slow"])
        # backtesting.py's own crossover helper, evaluated bar by bar on the history so far.
        up = [crossover(fast[: i + 1], slow[: i + 1]) for i in rng]
        down = [crossover(slow[: i + 1], fast[: i + 1]) for i in rng]
        return up, down, down, up
    if kind == "rsi_mean_reversion":
        r = talib.RSI(close, p["period"])
        return (
            [cross_down(r, p["oversold"], i) for i in rng],
            [cross_up(r, p["exit_level"], i) for i in rng],
            [cross_up(r, p["overbought"], i) for i in rng],
            [cross_down(r, p["exit_level"], i) for i in rng],
        )
    if kind == "bollinger_breakout":
        upper, middle, lower = talib.BBANDS(close, p["period"], p["k"], p["k"], 0)
        return (
            [cross_up(close, upper, i) for i in rng],
            [cross_down(close, middle, i) for i in rng],
            [cross_down(close, lower, i) for i in rng],
            [cross_up(close, middle, i) for i in rng],
        )
    line, signal, _ = talib.MACD(close, p["fast"], p["slow"], p["signal"])
    up = [cross_up(line, signal, i) for i in rng]
    down = [cross_down(line, signal, i) for i in rng]
    zero = p["require_zero_line"]
    return (
        [u and (not zero or line[i] > 0) for i, u in enumerate(up)],
        down,
        [d and (not zero or line[i] < 0) for i, d in enumerate(down)],
        up,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("kind", "raw"), PARAM_SETS, ids=PARAM_IDS)
def test_targets_match_a_talib_and_loop_reference(kind, raw, seed):
    bars = gbm_series(seed, years=6)
    strategy = get_strategy(kind)
    params = strategy.parse_params(raw)
    le, lx, se, sx = reference_events(kind, params, np.array(bars.close))
    if not params["allow_short"]:
        se = [False] * len(bars)
    expected = reference_target(le, lx, se, sx)
    signals = strategy.generate(bars, raw)
    np.testing.assert_array_equal(signals.target, expected)
    assert np.count_nonzero(np.diff(expected)) >= 4  # the data does exercise the rules


@pytest.mark.parametrize("seed", [5, 6, 7, 8])
@pytest.mark.parametrize(("fast", "slow"), [(10, 30), (3, 7), (20, 50)])
def test_sma_crossover_matches_backtesting_crossover_on_gbm(seed, fast, slow):
    bars = gbm_series(seed, years=4)
    close = np.array(bars.close)
    f, s = talib.SMA(close, fast), talib.SMA(close, slow)
    expected_buys = [i for i in range(len(close)) if crossover(f[: i + 1], s[: i + 1])]
    expected_sells = [i for i in range(len(close)) if crossover(s[: i + 1], f[: i + 1])]
    signals = get_strategy("sma_crossover").generate(bars, {"fast": fast, "slow": slow})
    events = signals.events(bars)
    # Crossings alternate, so long-only trading takes every one after the first buy.
    first_buy = expected_buys[0]
    assert [e.index for e in events if e.side == "buy"] == expected_buys
    assert [e.index for e in events if e.side == "sell"] == [
        i for i in expected_sells if i > first_buy
    ]
    np.testing.assert_allclose(signals.indicators[f"sma_{fast}"], f, equal_nan=True)


def _flags(pattern: str) -> np.ndarray:
    return np.array([c == "X" for c in pattern], dtype=bool)


@pytest.mark.parametrize(
    ("long_entry", "long_exit", "short_entry", "short_exit", "expected"),
    [
        (".X..X...", "...X...X", "........", "........", [0, 1, 1, 0, 1, 1, 1, 0]),
        ("..X.", "X...", "....", "....", [0, 0, 1, 1]),  # an exit while flat does nothing
        (".X.X", "...X", "....", "....", [0, 1, 1, 1]),  # entry beats exit on one bar
        (".X..", "....", "....", "..X.", [0, 1, 1, 1]),  # a short exit does not close a long
        (".X...", ".....", "...X.", ".....", [0, 1, 1, -1, -1]),  # reversal
        (".X..", "..X.", "....", "....", [0, 1, 0, 0]),
        ("....", "..X.", ".X..", "....", [0, -1, -1, -1]),  # a long exit does not close a short
        ("....", "....", ".X..", "..X.", [0, -1, 0, 0]),
        ("..X.", "....", ".X..", "..X.", [0, -1, 1, 1]),  # reversal beats the short exit
        (".X", "..", ".X", "..", [0, 1]),  # both entries: long wins
        ("", "", "", "", []),
    ],
)
def test_event_state_machine(long_entry, long_exit, short_entry, short_exit, expected):
    target = positions(
        _flags(long_entry), _flags(long_exit), _flags(short_entry), _flags(short_exit)
    )
    assert target.dtype == np.int8
    assert target.tolist() == expected
    assert (
        target.tolist()
        == reference_target(
            _flags(long_entry), _flags(long_exit), _flags(short_entry), _flags(short_exit)
        ).tolist()
    )


# --- no look-ahead, warmup, short mode ----------------------------------------------------


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def assert_same_reasons(actual: dict, expected: dict) -> None:
    """Same sentences, numbers equal to their printed precision: an average of tick-rounded
    prices often lands exactly on a rounding boundary (x.xx5), where a last-bit difference
    between a prefix and the whole series may print the neighbour cent."""
    assert actual.keys() == expected.keys()
    for index, text in actual.items():
        other = expected[index]
        assert _NUMBER.sub("#", text) == _NUMBER.sub("#", other), (index, text, other)
        for a, b in zip(_NUMBER.findall(text), _NUMBER.findall(other), strict=True):
            places = len(a.partition(".")[2])
            assert abs(float(a) - float(b)) <= 10.0**-places + 1e-12, (index, text, other)


@pytest.mark.parametrize(("kind", "raw"), PARAM_SETS, ids=PARAM_IDS)
def test_signals_never_look_ahead(kind, raw, daily):
    strategy = get_strategy(kind)
    full = strategy.generate(daily, raw)
    warmup = strategy.warmup(raw)
    n = len(daily)
    for k in sorted({1, 2, warmup, warmup + 1, 150, n // 3, n // 2, n - 1}):
        part = strategy.generate(daily[:k], raw)
        np.testing.assert_array_equal(part.target, full.target[:k])
        # Equal up to float rounding: the vectorised EMA/ATR recurrences may differ in the
        # last bit between a prefix and the whole series; the decisions may not.
        np.testing.assert_allclose(part.strength, full.strength[:k], rtol=1e-9, atol=0)
        assert_same_reasons(dict(part.reasons), {i: r for i, r in full.reasons.items() if i < k})


@pytest.mark.parametrize(("kind", "raw"), PARAM_SETS, ids=PARAM_IDS)
def test_no_signal_before_warmup(kind, raw):
    strategy = get_strategy(kind)
    warmup = strategy.warmup(raw)
    for seed in range(10):
        signals = strategy.generate(gbm_series(seed, "5m", years=1).tail(3 * warmup + 5), raw)
        assert not signals.target[:warmup].any()
        assert not signals.strength[:warmup].any()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [0, 1, 2, 5])
def test_histories_shorter_than_warmup_are_flat(kind, n, daily):
    bars = daily[:n]
    signals = get_strategy(kind).generate(bars)
    assert len(signals) == n
    assert not signals.target.any()
    assert signals.events(bars) == []


def _event_exactly_at_warmup(kind: str, p: dict[str, Any]) -> list[float]:
    """Closes whose first crossing falls, by construction, on the warmup bar."""
    if kind == "sma_crossover":
        # Both SMAs are exactly 100 until the jump; the jump lifts the fast one more.
        return [100.0] * p["slow"] + [101.0]
    if kind == "macd_trend":
        # MACD and its signal line are exactly 0 on the flat stretch; the jump lifts MACD
        # first, the signal line (an EMA of MACD) only by a fraction.
        return [100.0] * (p["slow"] + p["signal"] - 1) + [105.0]
    if kind == "bollinger_breakout":
        # A single outlier among near-equal closes lies ~sqrt(period - 1) > k deviations out.
        closes = alternating(p["period"], 100.0, 100.02)
        return [*closes, 101.0]
    # RSI: alternating +1/-1 moves hold RSI near 50; a 10-point drop takes it to ~28.
    closes = alternating(p["period"] + 1, 100.0, 101.0)
    return [*closes, closes[-1] - 10.0]


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("sma_crossover", {}),
        ("sma_crossover", {"fast": 2, "slow": 3}),
        ("rsi_mean_reversion", {}),
        ("rsi_mean_reversion", {"period": 4}),
        ("bollinger_breakout", {}),
        ("bollinger_breakout", {"period": 10, "k": 2.5}),
        ("macd_trend", {}),
        ("macd_trend", {"fast": 3, "slow": 5, "signal": 2}),
    ],
)
def test_first_possible_signal_is_exactly_at_warmup(kind, raw):
    strategy = get_strategy(kind)
    params = strategy.parse_params(raw)
    warmup = strategy.warmup(params)
    bars = bars_from_closes(_event_exactly_at_warmup(kind, params))
    assert len(bars) == warmup + 1
    events = strategy.generate(bars, params).events(bars)
    assert [(e.index, e.side, e.target) for e in events] == [(warmup, "buy", 1)]


@pytest.mark.parametrize(("kind", "raw"), PARAM_SETS, ids=PARAM_IDS)
def test_short_mode_mirrors_long_mode_on_a_mirrored_price(kind, raw, daily):
    raw = {**raw, "allow_short": True}
    ceiling = 2 * float(np.max(daily.high)) + 10.0
    mirrored = BarSeries(
        daily.ts,
        ceiling - daily.open,
        ceiling - daily.low,
        ceiling - daily.high,
        ceiling - daily.close,
        daily.volume,
    )
    strategy = get_strategy(kind)
    if kind == "rsi_mean_reversion":  # RSI mirrors to 100 - RSI: use symmetric levels
        params = strategy.parse_params(raw)
        raw = {**params, "overbought": 100 - params["oversold"], "exit_level": 50.0}
    original = strategy.generate(daily, raw)
    mirror = strategy.generate(mirrored, raw)
    np.testing.assert_array_equal(mirror.target, -original.target)
    assert (original.target == -1).any() and (original.target == 1).any()


@pytest.mark.parametrize(("kind", "raw"), PARAM_SETS, ids=PARAM_IDS)
def test_long_only_is_the_long_part_of_short_mode(kind, raw, daily):
    strategy = get_strategy(kind)
    long_only = strategy.generate(daily, {**raw, "allow_short": False})
    with_shorts = strategy.generate(daily, {**raw, "allow_short": True})
    assert set(np.unique(long_only.target)) <= {0, 1}
    np.testing.assert_array_equal(long_only.target, np.maximum(with_shorts.target, 0))


# --- hand-built series: the crossing bar is known by construction ------------------------


STEP_UP_AND_DOWN = [100.0] * 40 + [110.0] * 40 + [100.0] * 20


def test_sma_crossover_on_a_step_up_and_down():
    bars = bars_from_closes(STEP_UP_AND_DOWN)
    signals = get_strategy("sma_crossover").generate(bars, {})
    events = signals.events(bars)
    # Bar 40: SMA(10) = 101 and SMA(30) = 100.33, both 100 the bar before.
    # Bar 80: SMA(10) = 109 and SMA(30) = 109.67, both 110 the bar before.
    assert [(e.index, e.side, e.previous_target, e.target) for e in events] == [
        (40, "buy", 0, 1),
        (80, "sell", 1, 0),
    ]
    assert events[0].reason == "SMA(10) 101.00 crossed above SMA(30) 100.33: open long"
    assert events[1].reason == "SMA(10) 109.00 crossed below SMA(30) 109.67: close long"
    assert events[0].ts == utc(2024, 2, 10)
    # Strength: the 0.667 gap in ATR(30) units; ATR is 1 on the flat bars and
    # (29 * 1 + 11) / 30 = 1.333 on the jump bar.
    assert events[0].strength == pytest.approx(0.5)
    assert signals.target.tolist() == [0] * 40 + [1] * 40 + [0] * 20
    assert np.count_nonzero(signals.strength) == 2


def test_sma_crossover_reverses_to_short_when_allowed():
    bars = bars_from_closes(STEP_UP_AND_DOWN)
    events = get_strategy("sma_crossover").generate(bars, {"allow_short": True}).events(bars)
    assert [(e.index, e.side, e.previous_target, e.target) for e in events] == [
        (40, "buy", 0, 1),
        (80, "sell", 1, -1),
    ]
    assert events[1].reason.endswith(": reverse to short")


def test_an_exit_while_flat_does_nothing():
    # The series starts with the averages crossing DOWN: long-only stays flat.
    closes = [110.0] * 40 + [100.0] * 40
    bars = bars_from_closes(closes)
    assert get_strategy("sma_crossover").generate(bars, {}).events(bars) == []
    short = get_strategy("sma_crossover").generate(bars, {"allow_short": True})
    assert [(e.index, e.target) for e in short.events(bars)] == [(40, -1)]


BOLLINGER_BREAKOUT = [*alternating(30, 100.0, 100.02), 101.0, 99.0]


def test_bollinger_breakout_on_an_outlier():
    # Bar 30: 101 sits ~4 standard deviations above the quiet 100.00/100.02 closes, past
    # the upper band; bar 31: 99 is below the middle band (~100.06) it was above.
    bars = bars_from_closes(BOLLINGER_BREAKOUT)
    signals = get_strategy("bollinger_breakout").generate(bars, {})
    events = signals.events(bars)
    assert [(e.index, e.side, e.target) for e in events] == [(30, "buy", 1), (31, "sell", 0)]
    assert events[0].reason.startswith("close 101.00 crossed above the upper band")
    assert events[0].reason.endswith("of Bollinger(20, 2): open long")
    assert "crossed below the middle band" in events[1].reason
    upper = signals.indicators["bb_upper"]
    assert upper[29] > 100.02 and upper[30] < 101.0


def test_bollinger_breakout_short_mode_reverses_through_the_lower_band():
    # Bar 31: 99 is also below the lower band (the band is narrow: ~0.3 deviation).
    bars = bars_from_closes(BOLLINGER_BREAKOUT)
    events = get_strategy("bollinger_breakout").generate(bars, {"allow_short": True}).events(bars)
    assert [(e.index, e.target) for e in events] == [(30, 1), (31, -1)]
    assert "crossed below the lower band" in events[1].reason


RSI_DIP = [*alternating(30, 100.0, 101.0), 91.0, 106.0]


def test_rsi_mean_reversion_on_a_dip_and_recovery():
    # Alternating +1/-1 moves hold RSI(14) near 50; the 10-point drop on bar 30 takes it to
    # about 28 (below 30), the 15-point rise on bar 31 back above 50.
    bars = bars_from_closes(RSI_DIP)
    signals = get_strategy("rsi_mean_reversion").generate(bars, {})
    events = signals.events(bars)
    assert [(e.index, e.side, e.target) for e in events] == [(30, "buy", 1), (31, "sell", 0)]
    line = signals.indicators["rsi_14"]
    assert 40 < line[29] < 60 and line[30] < 30 < 50 < line[31]
    assert events[0].reason == f"RSI(14) {line[30]:.2f} crossed below oversold 30: open long"
    assert events[1].reason == (
        f"RSI(14) {line[31]:.2f} crossed above the exit level 50: close long"
    )
    assert events[0].strength == pytest.approx((30 - line[30]) / 10)


def test_rsi_mean_reversion_shorts_a_spike_when_allowed():
    closes = [*alternating(30, 100.0, 101.0), 111.0, 96.0]
    bars = bars_from_closes(closes)
    assert get_strategy("rsi_mean_reversion").generate(bars, {}).events(bars) == []
    events = get_strategy("rsi_mean_reversion").generate(bars, {"allow_short": True}).events(bars)
    assert [(e.index, e.side, e.target) for e in events] == [(30, "sell", -1), (31, "buy", 0)]
    assert "crossed above overbought 70: open short" in events[0].reason
    assert events[1].reason.endswith("crossed below the exit level 50: close short")


MACD_STEP = [100.0] * 60 + [105.0] * 10 + [95.0] * 10


def test_macd_trend_on_a_step_up_and_down():
    # Flat: MACD = signal = 0 exactly. The step up lifts MACD above its lagging signal line;
    # the step down drops MACD below it on that same bar.
    bars = bars_from_closes(MACD_STEP)
    events = get_strategy("macd_trend").generate(bars, {}).events(bars)
    assert [(e.index, e.side, e.target) for e in events] == [(60, "buy", 1), (70, "sell", 0)]
    assert events[0].reason.startswith("MACD(12, 26) ")
    assert "crossed above its signal line(9)" in events[0].reason
    short = get_strategy("macd_trend").generate(bars, {"allow_short": True}).events(bars)
    assert [(e.index, e.target) for e in short] == [(60, 1), (70, -1)]


def test_macd_zero_line_filter_blocks_a_bullish_cross_below_zero():
    # After a drop MACD turns up towards zero while still negative and crosses its lagging
    # signal line there: a long without the filter, nothing with it.
    closes = [100.0] * 60 + [95.0] * 40
    bars = bars_from_closes(closes)
    macd_trend = get_strategy("macd_trend")
    events = macd_trend.generate(bars, {}).events(bars)
    assert [(e.side, e.target) for e in events] == [("buy", 1)]
    line = macd_trend.generate(bars, {}).indicators["macd"]
    assert line[events[0].index] < 0
    assert macd_trend.generate(bars, {"require_zero_line": True}).events(bars) == []


# --- strength, events, latest_signal ------------------------------------------------------


@pytest.mark.parametrize(("kind", "raw"), PARAM_SETS, ids=PARAM_IDS)
def test_strength_is_in_unit_range_and_only_on_events(kind, raw, daily):
    signals = get_strategy(kind).generate(daily, raw)
    changes = np.flatnonzero(np.diff(signals.target, prepend=0))
    off_event = np.ones(len(daily), dtype=bool)
    off_event[changes] = False
    assert ((signals.strength >= 0) & (signals.strength <= 1)).all()
    assert not signals.strength[off_event].any()
    assert (signals.strength[changes] > 0).mean() > 0.9
    assert sorted(signals.reasons) == changes.tolist()
    assert signals.target.dtype == np.int8 and signals.strength.dtype == np.float64


def test_events_describe_each_target_change(daily):
    signals = get_strategy("macd_trend").generate(daily, {"allow_short": True})
    events = signals.events(daily)
    assert events
    previous = 0
    for event in events:
        assert event.previous_target == previous
        assert event.target == signals.target[event.index]
        assert event.side == ("buy" if event.target > previous else "sell")
        assert event.ts == pd.Timestamp(daily.ts[event.index], tz="UTC").to_pydatetime()
        assert event.ts.tzinfo is not None
        assert event.reason == signals.reasons[event.index]
        previous = event.target
    assert json.loads(json.dumps(events[0].to_dict()))["index"] == events[0].index
    with pytest.raises(ValueError, match="bars given"):
        signals.events(daily[:10])


def test_latest_signal_reports_only_a_change_on_the_last_bar():
    bars = bars_from_closes(STEP_UP_AND_DOWN)
    buy = latest_signal("sma_crossover", {}, bars[:41])
    assert buy is not None
    assert (buy.index, buy.side, buy.target, buy.ts) == (40, "buy", 1, utc(2024, 2, 10))
    assert latest_signal("sma_crossover", {}, bars[:42]) is None
    assert latest_signal("sma_crossover", {}, bars[:40]) is None
    sell = latest_signal("sma_crossover", {"allow_short": "true"}, bars[:81])
    assert sell is not None and (sell.index, sell.side, sell.target) == (80, "sell", -1)
    assert latest_signal("sma_crossover", {}, bars[:0]) is None


@pytest.mark.parametrize("kind", KINDS)
def test_latest_signal_agrees_with_the_full_series(kind, daily):
    full = get_strategy(kind).generate(daily, {"allow_short": True})
    by_index = {e.index: e for e in full.events(daily)}
    for k in range(40, 400):
        event = latest_signal(kind, {"allow_short": True}, daily[:k])
        expected = by_index.get(k - 1)
        if expected is None:
            assert event is None
        else:
            assert event is not None
            assert event.strength == pytest.approx(expected.strength, rel=1e-9)
            assert_same_reasons({0: event.reason}, {0: expected.reason})
            same = dataclasses.replace(event, strength=expected.strength, reason=expected.reason)
            assert same == expected


# --- data types -------------------------------------------------------------------------


def test_bar_series_from_frame_converts_to_utc_nanoseconds():
    index = pd.date_range("2024-07-01 09:30", periods=3, freq="5min", tz="America/New_York")
    frame = pd.DataFrame(
        {
            "Open": [1, 2, 3],
            "High": [2, 3, 4],
            "Low": [0.5, 1, 2],
            "Close": [2, 3, 4],
            "Volume": [10, 20, 30],
        },
        index=index,
    )
    bars = BarSeries.from_frame(frame)
    assert bars.ts.dtype == np.dtype("datetime64[ns]")
    assert bars.ts[0] == np.datetime64("2024-07-01T13:30:00", "ns")
    assert bars.close.dtype == np.float64 and len(bars) == 3
    with_column = BarSeries.from_frame(frame.reset_index(names="ts"))
    np.testing.assert_array_equal(with_column.ts, bars.ts)
    naive = BarSeries.from_frame(frame.tz_localize(None))  # naive times are UTC
    assert naive.ts[0] == np.datetime64("2024-07-01T09:30:00", "ns")
    pd.testing.assert_index_equal(
        bars.to_frame().index,
        index.tz_convert("UTC").as_unit("ns").rename("ts"),
        check_freq=False,
    )


def test_bar_series_is_an_immutable_copy():
    close = np.array([1.0, 2.0, 3.0])
    bars = BarSeries(
        pd.date_range("2024-01-01", periods=3, tz="UTC"), close, close, close, close, close
    )
    close[0] = 99.0
    assert bars.close[0] == 1.0
    with pytest.raises(ValueError):
        bars.close[0] = 5.0
    assert len(bars.tail(2)) == 2 and bars.tail(2).close.tolist() == [2.0, 3.0]
    assert len(bars.tail(10)) == 3 and len(bars.tail(0)) == 0
    assert bars[1:].ts[0] == bars.ts[1]
    with pytest.raises(TypeError):
        bars[0]  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"close": [1.0, 2.0]}, "close has 2 values for 3 timestamps"),
        ({"high": [1.0, np.nan, 1.0]}, "high contains NaN"),
        (
            {"ts": pd.DatetimeIndex(["2024-01-02", "2024-01-01", "2024-01-03"])},
            "strictly increasing",
        ),
        (
            {"ts": pd.DatetimeIndex(["2024-01-01", "2024-01-01", "2024-01-03"])},
            "strictly increasing",
        ),
    ],
)
def test_bar_series_rejects_inconsistent_data(change, message):
    columns = {
        "ts": pd.date_range("2024-01-01", periods=3, tz="UTC"),
        **{c: [1.0, 1.0, 1.0] for c in ("open", "high", "low", "close", "volume")},
    }
    columns.update(change)
    with pytest.raises(ValueError, match=message):
        BarSeries(**columns)


def test_signal_series_checks_its_contract():
    with pytest.raises(ValueError, match="no reason given"):
        SignalSeries(target=np.array([0, 1, 1]), strength=np.zeros(3), reasons={})
    with pytest.raises(ValueError, match="strength must lie in"):
        SignalSeries(target=np.array([0, 1]), strength=np.array([0, 1.5]), reasons={1: "x"})
    with pytest.raises(ValueError, match="-1, 0 and \\+1"):
        SignalSeries(target=np.array([0, 2]), strength=np.zeros(2), reasons={1: "x"})
    with pytest.raises(ValueError, match="-1, 0 and \\+1"):
        SignalSeries(target=np.array([0.0, 0.5]), strength=np.zeros(2), reasons={1: "x"})
    series = SignalSeries(
        target=np.array([1, 1, 0]), strength=np.zeros(3), reasons={0: "a", 2: "b"}
    )
    assert series.target.dtype == np.int8
    assert SignalSeries.change_indices(series.target).tolist() == [0, 2]


def test_registry_lists_the_library_and_refuses_duplicates():
    assert [s.kind for s in strategy_kinds()][:4] == KINDS
    assert isinstance(get_strategy("sma_crossover"), SmaCrossover)
    assert all(isinstance(s, StrategyDefinition) for s in strategy_kinds())

    class Impostor(SmaCrossover):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register(Impostor)

    class BadKind(SmaCrossover):
        kind = "Bad Kind"

    with pytest.raises(ValueError, match="slug"):
        register(BadKind)


@pytest.mark.parametrize("kind", KINDS)
def test_generate_is_fast_on_long_histories(kind):
    times = session_times("1h", utc(2010, 1, 1), utc(2021, 6, 1), "24x7")
    bars = BarSeries.from_frame(gbm_bars(times, seed=1, calendar="24x7"))
    assert len(bars) > 100_000
    strategy = get_strategy(kind)
    params = strategy.parse_params({"allow_short": True})
    strategy.generate(bars, params)
    started = time.perf_counter()
    for _ in range(5):
        strategy.generate(bars, params)
    per_run = (time.perf_counter() - started) / 5
    assert per_run < 0.25  # a few ms on a developer machine; generous for busy CI
