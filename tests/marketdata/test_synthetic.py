import time
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from apps.marketdata.domain.synthetic import gbm_bars, session_times
from apps.marketdata.domain.timeframes import (
    TIMEFRAMES,
    Timeframe,
    floor_to_timeframe,
    is_aligned,
    parse_timeframe,
    timeframe_seconds,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- timeframes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tf", "seconds"), [("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600), ("1d", 86400)]
)
def test_timeframe_seconds(tf, seconds):
    assert timeframe_seconds(tf) == seconds
    assert timeframe_seconds(Timeframe(tf)) == seconds


def test_timeframes_constant_lists_every_timeframe():
    assert TIMEFRAMES == ("1m", "5m", "15m", "1h", "1d")
    assert parse_timeframe("15m") is Timeframe.M15


@pytest.mark.parametrize("bad", ["2m", "1H", "", "daily"])
def test_unknown_timeframe_is_a_clear_value_error(bad):
    with pytest.raises(ValueError, match=r"unknown timeframe .*expected one of 1m, 5m"):
        timeframe_seconds(bad)


@pytest.mark.parametrize(
    ("ts", "tf", "aligned"),
    [
        (utc(2024, 7, 1, 13, 30), "1m", True),
        (utc(2024, 7, 1, 13, 30), "5m", True),
        (utc(2024, 7, 1, 13, 30), "15m", True),
        (utc(2024, 7, 1, 13, 30), "1h", False),
        (utc(2024, 7, 1, 14, 0), "1h", True),
        (utc(2024, 7, 1, 13, 31), "5m", False),
        (utc(2024, 7, 1, 13, 30, 5), "1m", False),
        (datetime(2024, 7, 1, 13, 30, 0, 1, tzinfo=UTC), "1m", False),
        (utc(2024, 7, 1), "1d", True),
        (utc(2024, 7, 1, 4), "1d", False),
        # 00:00 in New York is 04:00 UTC: not a daily bar time.
        (datetime(2024, 7, 1, tzinfo=timezone(timedelta(hours=-4))), "1d", False),
        (datetime(2024, 7, 1, 20, tzinfo=timezone(timedelta(hours=-4))), "1d", True),
    ],
)
def test_is_aligned(ts, tf, aligned):
    assert is_aligned(ts, tf) is aligned


def test_is_aligned_rejects_naive_timestamps():
    with pytest.raises(ValueError, match="timezone-aware"):
        is_aligned(datetime(2024, 7, 1), "1d")


@pytest.mark.parametrize(
    ("ts", "tf", "floored"),
    [
        (utc(2024, 7, 1, 13, 37, 12), "1m", utc(2024, 7, 1, 13, 37)),
        (utc(2024, 7, 1, 13, 37, 12), "5m", utc(2024, 7, 1, 13, 35)),
        (utc(2024, 7, 1, 13, 37, 12), "15m", utc(2024, 7, 1, 13, 30)),
        (utc(2024, 7, 1, 13, 37, 12), "1h", utc(2024, 7, 1, 13)),
        (utc(2024, 7, 1, 23, 59, 59), "1d", utc(2024, 7, 1)),
        (datetime(2024, 7, 1, 22, 10, tzinfo=timezone(timedelta(hours=-4))), "1d", utc(2024, 7, 2)),
    ],
)
def test_floor_to_timeframe(ts, tf, floored):
    result = floor_to_timeframe(ts, tf)
    assert result == floored
    assert result.tzinfo is not None
    assert is_aligned(result, tf)


# --- session_times ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "first_utc", "last_utc"),
    [
        # July: New York is on EDT (UTC-4), the session is 13:30-20:00 UTC.
        ((2024, 7, 15), (13, 30), (19, 55)),
        # January: EST (UTC-5), the session is 14:30-21:00 UTC.
        ((2024, 1, 16), (14, 30), (20, 55)),
    ],
)
def test_us_equity_session_follows_new_york_dst(day, first_utc, last_utc):
    times = session_times("5m", utc(*day), utc(*day) + timedelta(days=1))
    assert len(times) == 78  # 6.5 h / 5 min
    assert times[0] == pd.Timestamp(utc(*day, *first_utc))
    assert times[-1] == pd.Timestamp(utc(*day, *last_utc))
    local = times.tz_convert("America/New_York")
    minutes = local.hour * 60 + local.minute
    assert minutes.min() == 9 * 60 + 30
    assert minutes.max() == 15 * 60 + 55


def test_us_equity_week_across_the_dst_change():
    # DST started on Sunday 2024-03-10: Friday is EST, Monday is EDT.
    times = session_times("15m", utc(2024, 3, 8), utc(2024, 3, 12))
    by_day = {d: ts for d, ts in times.groupby(times.date).items()}
    assert sorted(by_day) == [pd.Timestamp(2024, 3, 8).date(), pd.Timestamp(2024, 3, 11).date()]
    assert by_day[pd.Timestamp(2024, 3, 8).date()][0] == pd.Timestamp(utc(2024, 3, 8, 14, 30))
    assert by_day[pd.Timestamp(2024, 3, 11).date()][0] == pd.Timestamp(utc(2024, 3, 11, 13, 30))
    assert all(len(v) == 26 for v in by_day.values())


@pytest.mark.parametrize("tf", ["1m", "5m", "15m", "1h"])
def test_us_equity_intraday_bars_overlap_the_session_on_weekdays(tf):
    times = session_times(tf, utc(2023, 12, 28), utc(2024, 4, 3))
    local = times.tz_convert("America/New_York")
    minutes = local.hour * 60 + local.minute
    assert (local.day_of_week < 5).all()
    assert ((minutes + timeframe_seconds(tf) // 60 > 9 * 60 + 30) & (minutes < 16 * 60)).all()
    if tf != "1h":  # 09:30 is on the 1m, 5m and 15m grids: every bar opens in the session
        assert (minutes >= 9 * 60 + 30).all()
    assert all(is_aligned(ts, tf) for ts in times[:: max(1, len(times) // 500)])
    assert times.is_monotonic_increasing and times.is_unique
    assert str(times.dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize(("day", "first_utc_hour"), [((2024, 7, 15), 13), ((2024, 1, 16), 14)])
def test_hourly_equity_bars_start_with_the_bar_holding_the_opening_half_hour(day, first_utc_hour):
    times = session_times("1h", utc(*day), utc(*day) + timedelta(days=1))
    assert list(times.tz_convert("America/New_York").hour) == [9, 10, 11, 12, 13, 14, 15]
    assert times[0] == pd.Timestamp(utc(*day, first_utc_hour))


def test_the_partial_opening_hour_gets_half_an_hour_of_volume_and_variance():
    times = session_times("1h", utc(2022, 1, 1), utc(2024, 1, 1))
    bars = gbm_bars(times, seed=2)
    hour = bars.index.tz_convert("America/New_York").hour
    volume = bars["volume"].groupby(hour).mean()
    # The 09:00 bar trades 30 busy minutes, the 10:00 bar 60 (a little less busy) minutes.
    assert 0.4 < volume[9] / volume[10] < 0.9
    assert volume[9] > volume[12] * 0.6


def test_us_equity_daily_bars_are_weekdays_stamped_at_midnight_utc():
    times = session_times("1d", utc(2024, 7, 1), utc(2024, 7, 15))
    assert list(times.date) == [
        d.date() for d in pd.bdate_range("2024-07-01", "2024-07-12")
    ]  # no holiday calendar: 2024-07-04 is listed
    assert (times.hour == 0).all() and (times.minute == 0).all()
    assert all(is_aligned(ts, "1d") for ts in times)


def test_range_is_half_open_and_start_is_rounded_up():
    times = session_times("5m", utc(2024, 7, 15, 13, 31), utc(2024, 7, 15, 14, 0))
    assert times[0] == pd.Timestamp(utc(2024, 7, 15, 13, 35))
    assert times[-1] == pd.Timestamp(utc(2024, 7, 15, 13, 55))
    assert len(session_times("1d", utc(2024, 7, 15), utc(2024, 7, 15))) == 0


@pytest.mark.parametrize(("tf", "per_day"), [("1m", 1440), ("15m", 96), ("1h", 24), ("1d", 1)])
def test_24x7_lists_every_aligned_time(tf, per_day):
    times = session_times(tf, utc(2024, 3, 9, 0, 0, 30), utc(2024, 3, 16, 0, 0, 30), "24x7")
    assert len(times) == 7 * per_day
    step = pd.Timedelta(seconds=timeframe_seconds(tf))
    assert (np.diff(times.asi8) == step.value).all()
    assert is_aligned(times[0], tf)


def test_session_times_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown calendar"):
        session_times("1d", utc(2024, 1, 1), utc(2024, 2, 1), calendar="lse")
    with pytest.raises(ValueError, match="timezone-aware"):
        session_times("1d", datetime(2024, 1, 1), utc(2024, 2, 1))
    with pytest.raises(ValueError, match="unknown timeframe"):
        session_times("3m", utc(2024, 1, 1), utc(2024, 2, 1))


# --- gbm_bars ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minute_times() -> pd.DatetimeIndex:
    return session_times("5m", utc(2023, 1, 1), utc(2024, 1, 1))


def test_same_seed_same_bars_different_seed_different_bars(minute_times):
    a = gbm_bars(minute_times, seed=7)
    b = gbm_bars(minute_times, seed=7)
    c = gbm_bars(minute_times, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.array_equal(a["close"].to_numpy(), c["close"].to_numpy())
    assert list(a.columns) == ["open", "high", "low", "close", "volume"]
    assert a.index.equals(minute_times)


def test_a_prefix_of_the_times_gives_the_same_first_bars(minute_times):
    full = gbm_bars(minute_times, seed=3)
    head = gbm_bars(minute_times[:1000], seed=3)
    pd.testing.assert_frame_equal(head, full.iloc[:1000])


def _assert_valid_bars(bars: pd.DataFrame, tick_size: float = 0.01) -> None:
    o, h, low, c, v = (bars[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    assert (low <= np.minimum(o, c)).all()
    assert (np.maximum(o, c) <= h).all()
    assert (low > 0).all()
    for prices in (o, h, low, c):
        ticks = prices / tick_size
        np.testing.assert_allclose(ticks, np.round(ticks), atol=1e-6)
    assert (v >= 1).all()
    np.testing.assert_array_equal(v, np.round(v))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    ("tf", "calendar", "days"),
    [
        ("1m", "us_equity", 20),
        ("1h", "us_equity", 200),
        ("1d", "us_equity", 3000),
        ("15m", "24x7", 60),
    ],
)
def test_ohlc_invariants_hold(seed, tf, calendar, days):
    times = session_times(tf, utc(2020, 1, 1), utc(2020, 1, 1) + timedelta(days=days), calendar)
    bars = gbm_bars(times, seed=seed, sigma=0.6, calendar=calendar)
    _assert_valid_bars(bars)
    # Consecutive bars open near the previous close: the gap is small next to the bar's body.
    if tf != "1d":
        o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
        contiguous = np.diff(times.asi8) == timeframe_seconds(tf) * 1_000_000_000
        gap = np.abs(o[1:] - c[:-1])[contiguous]
        body = np.abs(c - o)[1:][contiguous]
        assert np.median(gap) < 0.3 * np.median(body)


def test_tick_size_other_than_a_cent():
    times = session_times("1d", utc(2020, 1, 1), utc(2022, 1, 1))
    bars = gbm_bars(times, seed=1, s0=50.0, tick_size=0.05)
    _assert_valid_bars(bars, tick_size=0.05)


def test_prices_stay_positive_even_for_a_collapsing_stock():
    times = session_times("1d", utc(2000, 1, 1), utc(2020, 1, 1))
    bars = gbm_bars(times, seed=5, s0=1.0, mu=-0.5, sigma=0.9)
    _assert_valid_bars(bars)


def _annualised_vol(close: np.ndarray, periods_per_year: float) -> float:
    returns = np.diff(np.log(close))
    return float(np.sqrt(np.mean(returns**2) * periods_per_year))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("sigma", [0.15, 0.4])
def test_daily_realised_volatility_matches_sigma(seed, sigma):
    times = session_times("1d", utc(1980, 1, 1), utc(2020, 1, 1))  # ~10,400 bars
    bars = gbm_bars(times, seed=seed, sigma=sigma, mu=0.0)
    # Standard error of the estimate is about sigma / sqrt(2 n), ~0.7% of sigma here.
    assert _annualised_vol(bars["close"].to_numpy(), 252) == pytest.approx(sigma, rel=0.04)


@pytest.mark.parametrize("seed", [11, 12])
def test_intraday_realised_volatility_including_overnight_gaps_matches_sigma(seed, minute_times):
    bars = gbm_bars(minute_times, seed=seed, sigma=0.3, mu=0.0)
    n_days = len(np.unique(minute_times.date))
    returns = np.diff(np.log(bars["close"].to_numpy()))
    realised = float(np.sqrt(np.sum(returns**2) / n_days * 252))
    assert realised == pytest.approx(0.3, rel=0.06)


def test_24x7_realised_volatility_uses_calendar_time():
    times = session_times("1h", utc(2018, 1, 1), utc(2022, 1, 1), "24x7")
    bars = gbm_bars(times, seed=4, sigma=0.8, mu=0.0, calendar="24x7")
    assert _annualised_vol(bars["close"].to_numpy(), 365 * 24) == pytest.approx(0.8, rel=0.03)


def test_volume_is_u_shaped_over_the_session_and_about_base_volume_a_day(minute_times):
    bars = gbm_bars(minute_times, seed=21, base_volume=2_000_000.0)
    local = bars.index.tz_convert("America/New_York")
    minute = local.hour * 60 + local.minute
    by_minute = bars["volume"].groupby(minute).mean()
    first_half_hour = by_minute.loc[9 * 60 + 30 : 9 * 60 + 55].mean()
    last_half_hour = by_minute.loc[15 * 60 + 30 : 15 * 60 + 55].mean()
    midday = by_minute.loc[12 * 60 : 13 * 60 + 55].mean()
    assert first_half_hour > 2 * midday
    assert last_half_hour > 2 * midday
    daily_total = bars["volume"].groupby(local.date).sum()
    assert daily_total.median() == pytest.approx(2_000_000.0, rel=0.15)


def test_volume_is_higher_on_large_moves():
    times = session_times("1d", utc(2000, 1, 1), utc(2020, 1, 1))
    bars = gbm_bars(times, seed=9)
    move = np.abs(np.log(bars["close"] / bars["open"]))
    assert move.corr(bars["volume"], method="spearman") > 0.15
    big = move > move.quantile(0.9)
    small = move < move.quantile(0.1)
    assert bars["volume"][big].mean() > 1.5 * bars["volume"][small].mean()


def test_gbm_bars_input_checks_and_empty_input():
    empty = gbm_bars(pd.DatetimeIndex([], tz="UTC"), seed=1)
    assert empty.empty and list(empty.columns) == ["open", "high", "low", "close", "volume"]
    with pytest.raises(ValueError, match="timezone-aware"):
        gbm_bars(pd.date_range("2024-01-01", periods=5, freq="D"), seed=1)
    with pytest.raises(ValueError, match="strictly increasing"):
        gbm_bars(pd.DatetimeIndex([utc(2024, 1, 2), utc(2024, 1, 1)]), seed=1)
    with pytest.raises(ValueError, match="pass timeframe="):
        gbm_bars(pd.DatetimeIndex([utc(2024, 1, 2)]), seed=1)
    one = gbm_bars(pd.DatetimeIndex([utc(2024, 1, 2)]), seed=1, timeframe="1d")
    assert one["open"].iloc[0] == 100.0


def test_a_million_bars_are_generated_quickly():
    times = session_times("1m", utc(2010, 1, 1), utc(2020, 3, 1))
    assert len(times) > 1_000_000
    started = time.perf_counter()
    bars = gbm_bars(times, seed=1)
    elapsed = time.perf_counter() - started
    assert len(bars) == len(times)
    assert elapsed < 5.0  # about 0.3 s on a developer machine; generous for busy CI
