"""Seeded synthetic bars for demo data and tests.

`session_times` lists bar open times on a trading calendar; `gbm_bars` fills them with
geometric Brownian motion prices and plausible volume. Both are pure and vectorised.

Conventions:
- Every timestamp is a bar's OPEN time, timezone-aware UTC.
- "us_equity": weekdays only (exchange holidays are not modelled), regular session
  09:30-16:00 America/New_York, DST handled through zoneinfo. Intraday bars are aligned on the
  UTC clock (see `is_aligned`) and listed when their interval [open, open + timeframe)
  overlaps the session. For 1m/5m/15m that is every bar opening 09:30-15:59; 1h bars open at
  09:00, 10:00, ... 15:00 New York time, the 09:00 bar holding the 09:30-10:00 half hour, as
  Alpaca's hourly bars and `aggregate` do.
  A DAILY bar is stamped at 00:00 UTC of its trading date (the New York calendar date of the
  session), so the 2024-07-01 session is the bar at 2024-07-01T00:00:00Z.
- "24x7": every aligned time (crypto-style), a year is 365 calendar days.
- Time in the price process is TRADING time: an equity year is 252 sessions; an intraday bar
  is its length over the 6.5 h session; the close-to-open overnight gap carries
  `OVERNIGHT_VARIANCE_SHARE` of a session's variance (weekends and skipped bars do not add
  variance beyond that). So annualised volatility of close-to-close log returns is `sigma`
  whatever the timeframe.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from apps.marketdata.domain.timeframes import (
    TIMEFRAMES,
    Timeframe,
    parse_timeframe,
    timeframe_seconds,
)

__all__ = [
    "CALENDARS",
    "OVERNIGHT_VARIANCE_SHARE",
    "SESSION_SECONDS",
    "TRADING_DAYS_PER_YEAR",
    "gbm_bars",
    "session_times",
]

CALENDARS: tuple[str, ...] = ("us_equity", "24x7")
NEW_YORK = ZoneInfo("America/New_York")
SESSION_OPEN = pd.Timedelta(hours=9, minutes=30)
SESSION_CLOSE = pd.Timedelta(hours=16)
SESSION_SECONDS = 6.5 * 3600
TRADING_DAYS_PER_YEAR = 252
CALENDAR_DAYS_PER_YEAR = 365
# Share of a session's variance realised between one close and the next open (equities).
OVERNIGHT_VARIANCE_SHARE = 0.2
# Share of a bar's variance placed between the previous close and its open, so consecutive
# intraday bars show the small open-vs-previous-close gaps real prints have.
MICRO_GAP_SHARE = 0.02
# Volume: lognormal noise, and how much larger the volume is on a large move.
VOLUME_NOISE_SIGMA = 0.35
VOLUME_MOVE_SENSITIVITY = 0.5
_NS = 1_000_000_000
_BUSDAY_ANCHOR = np.datetime64("1970-01-01", "D")


def _check_calendar(calendar: str) -> None:
    if calendar not in CALENDARS:
        raise ValueError(f"unknown calendar {calendar!r}: expected one of {', '.join(CALENDARS)}")


def _utc_timestamp(value: datetime | str, what: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"{what} {ts.isoformat()} must be timezone-aware (UTC)")
    return ts.tz_convert("UTC").as_unit("ns")


def session_times(
    timeframe: str | Timeframe,
    start: datetime | str,
    end: datetime | str,
    calendar: str = "us_equity",
) -> pd.DatetimeIndex:
    """Bar open times in [start, end) on `calendar`, a tz-aware UTC DatetimeIndex (ns)."""
    tf = parse_timeframe(timeframe)
    _check_calendar(calendar)
    start_ts = _utc_timestamp(start, "start")
    end_ts = _utc_timestamp(end, "end")
    empty = pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name="ts")
    if end_ts <= start_ts:
        return empty
    step_ns = timeframe_seconds(tf) * _NS

    if calendar == "24x7" or tf is Timeframe.D1:
        # Every step divides a day, so ceiling on the epoch grid is the UTC-day alignment.
        first = start_ts.ceil(pd.Timedelta(step_ns, unit="ns"))
        t_ns = np.arange(first.value, end_ts.value, step_ns, dtype=np.int64)
        times = pd.DatetimeIndex(t_ns.view("datetime64[ns]"), name="ts").tz_localize("UTC")
        if calendar == "us_equity":  # daily equity bars: trading (week)days only
            times = times[times.day_of_week < 5]
        return times

    # us_equity intraday: build each weekday's session in New York time, then list the
    # aligned bars that overlap it.
    first_day = start_ts.tz_convert(NEW_YORK).tz_localize(None).normalize() - pd.Timedelta(days=1)
    last_day = end_ts.tz_convert(NEW_YORK).tz_localize(None).normalize() + pd.Timedelta(days=1)
    days = pd.date_range(first_day, last_day, freq="D", unit="ns")
    days = days[days.day_of_week < 5]
    if len(days) == 0:
        return empty
    open_ns = (days + SESSION_OPEN).tz_localize(NEW_YORK).tz_convert("UTC").asi8
    close_ns = (days + SESSION_CLOSE).tz_localize(NEW_YORK).tz_convert("UTC").asi8
    first_ns = open_ns // step_ns * step_ns  # the bar containing the opening bell
    counts = np.maximum((close_ns - first_ns + step_ns - 1) // step_ns, 0)
    group_start = np.repeat(np.cumsum(counts) - counts, counts)
    t_ns = np.repeat(first_ns, counts) + (np.arange(counts.sum()) - group_start) * step_ns
    t_ns = t_ns[(t_ns >= start_ts.value) & (t_ns < end_ts.value)]
    return pd.DatetimeIndex(t_ns.view("datetime64[ns]"), name="ts").tz_localize("UTC")


def _as_utc_index(times: Iterable[datetime] | pd.DatetimeIndex) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(times)
    if index.tz is None:
        raise ValueError("times must be timezone-aware (UTC)")
    index = index.tz_convert("UTC").as_unit("ns")
    if len(index) > 1 and not (np.diff(index.asi8) > 0).all():
        raise ValueError("times must be strictly increasing")
    return index.rename("ts")


def _infer_timeframe(index: pd.DatetimeIndex) -> Timeframe:
    if len(index) < 2:
        raise ValueError("cannot infer the timeframe from fewer than two times: pass timeframe=")
    step = int(np.diff(index.asi8).min() // _NS)
    if step >= timeframe_seconds(Timeframe.D1):
        return Timeframe.D1
    for tf in TIMEFRAMES:
        if timeframe_seconds(tf) == step:
            return Timeframe(tf)
    raise ValueError(
        f"cannot infer the timeframe: the smallest spacing is {step}s, "
        f"not one of {', '.join(TIMEFRAMES)}; pass timeframe="
    )


def _trading_clock(
    index: pd.DatetimeIndex, tf: Timeframe, calendar: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trading time (years) at each bar's open and close, and each bar's volume share.

    The volume share is the expected fraction of a day's volume traded in the bar.
    """
    step = timeframe_seconds(tf)
    t_ns = index.asi8
    if calendar == "24x7":
        year_ns = CALENDAR_DAYS_PER_YEAR * 86400 * _NS
        t_open = t_ns / year_ns
        t_close = (t_ns + step * _NS) / year_ns
        share = np.full(len(index), min(step / 86400, 1.0))
        return t_open, t_close, share

    g = OVERNIGHT_VARIANCE_SHARE
    if tf is Timeframe.D1:
        day_index = np.busday_count(_BUSDAY_ANCHOR, t_ns.view("datetime64[ns]").astype("M8[D]"))
        t_open = (day_index + g) / TRADING_DAYS_PER_YEAR
        t_close = (day_index + 1.0) / TRADING_DAYS_PER_YEAR
        return t_open, t_close, np.ones(len(index))

    local_day = index.tz_convert(NEW_YORK).tz_localize(None).normalize()
    # Sessions are looked up once per distinct trading date, not once per bar.
    days, inverse = np.unique(local_day.asi8, return_inverse=True)
    day_index = np.busday_count(_BUSDAY_ANCHOR, days.view("datetime64[ns]").astype("M8[D]"))
    session_open = (
        (pd.DatetimeIndex(days.view("datetime64[ns]")) + SESSION_OPEN)
        .tz_localize(NEW_YORK)
        .tz_convert("UTC")
        .asi8
    )
    since_open = (t_ns - session_open[inverse]) / _NS
    frac_open = np.clip(since_open / SESSION_SECONDS, 0.0, 1.0)
    frac_close = np.clip((since_open + step) / SESSION_SECONDS, 0.0, 1.0)
    base = day_index[inverse] + g
    t_open = (base + (1 - g) * frac_open) / TRADING_DAYS_PER_YEAR
    t_close = (base + (1 - g) * frac_close) / TRADING_DAYS_PER_YEAR
    # U-shaped intraday volume: 4x the midday rate at the open and the close, mean 1, over
    # the part of the bar inside the session.
    frac_mid = (frac_open + frac_close) / 2.0
    u_shape = (1.0 + 3.0 * (2.0 * frac_mid - 1.0) ** 2) / 2.0
    share = (frac_close - frac_open) * u_shape
    return t_open, t_close, share


def _tick_decimals(tick_size: float) -> int:
    exponent = Decimal(str(tick_size)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def _round_to_tick(prices: np.ndarray, tick_size: float, decimals: int) -> np.ndarray:
    # The second rounding removes float noise such as 100.01000000000001.
    return np.maximum(np.round(np.round(prices / tick_size) * tick_size, decimals), tick_size)


def gbm_bars(
    times: Iterable[datetime] | pd.DatetimeIndex,
    *,
    seed: int,
    s0: float = 100.0,
    mu: float = 0.08,
    sigma: float = 0.25,
    base_volume: float = 1_000_000.0,
    tick_size: float = 0.01,
    timeframe: str | Timeframe | None = None,
    calendar: str = "us_equity",
) -> pd.DataFrame:
    """OHLCV bars following geometric Brownian motion, indexed by `times` (UTC).

    `mu` and `sigma` are annualised and applied in trading time (see the module docstring).
    The first bar opens at `s0`; each later open is the previous close plus a gap (the
    overnight share of variance after a session break, a small micro-gap otherwise). High and
    low are drawn from the Brownian-bridge range between open and close, then every price is
    rounded to `tick_size` so that low <= min(open, close) <= max(open, close) <= high, all
    > 0. Volume is lognormal around `base_volume` per day, U-shaped over the session and
    larger on larger moves, rounded to whole units.

    `timeframe` is inferred from the smallest spacing of `times` when not given. The output
    depends only on `seed` and the inputs, and a run over a prefix of `times` gives the same
    first bars as a run over all of them.
    """
    _check_calendar(calendar)
    if not s0 > 0:
        raise ValueError(f"s0 must be positive (got {s0})")
    if not sigma >= 0:
        raise ValueError(f"sigma must be non-negative (got {sigma})")
    if not tick_size > 0:
        raise ValueError(f"tick_size must be positive (got {tick_size})")
    if not base_volume > 0:
        raise ValueError(f"base_volume must be positive (got {base_volume})")
    index = _as_utc_index(times)
    n = len(index)
    columns = ["open", "high", "low", "close", "volume"]
    if n == 0:
        return pd.DataFrame({c: np.empty(0) for c in columns}, index=index)
    tf = parse_timeframe(timeframe) if timeframe is not None else _infer_timeframe(index)

    t_open, t_close, volume_share = _trading_clock(index, tf, calendar)
    bar_dt = np.maximum(t_close - t_open, 0.0)
    gap_dt = np.empty(n)
    gap_dt[0] = 0.0
    gap_dt[1:] = np.maximum(t_open[1:] - t_close[:-1], 0.0) + MICRO_GAP_SHARE * bar_dt[1:]
    body_dt = bar_dt - np.where(np.arange(n) > 0, MICRO_GAP_SHARE * bar_dt, 0.0)

    # Two child streams drawn row by row, so a longer run extends a shorter one.
    normal_stream, uniform_stream = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(2)
    )
    z = normal_stream.standard_normal((n, 3))
    u = 1.0 - uniform_stream.random((n, 2))  # in (0, 1], safe for log

    drift = mu - 0.5 * sigma**2
    gap = drift * gap_dt + sigma * np.sqrt(gap_dt) * z[:, 0]
    body = drift * body_dt + sigma * np.sqrt(body_dt) * z[:, 1]
    log_close = np.log(s0) + np.cumsum(gap + body)
    log_open = log_close - body
    # Extremes of a Brownian bridge from 0 to `body` with variance v:
    # P(max > m) = exp(-2 m (m - body) / v), inverted with a uniform draw.
    v = sigma**2 * body_dt
    up = 0.5 * (body + np.sqrt(body**2 - 2.0 * v * np.log(u[:, 0])))
    down = 0.5 * (body - np.sqrt(body**2 - 2.0 * v * np.log(u[:, 1])))

    decimals = _tick_decimals(tick_size)
    open_ = _round_to_tick(np.exp(log_open), tick_size, decimals)
    close = _round_to_tick(np.exp(log_close), tick_size, decimals)
    high = np.maximum(_round_to_tick(np.exp(log_open + up), tick_size, decimals), open_)
    high = np.maximum(high, close)
    low = np.minimum(_round_to_tick(np.exp(log_open + down), tick_size, decimals), open_)
    low = np.minimum(low, close)

    move = 1.0 + VOLUME_MOVE_SENSITIVITY * (np.abs(z[:, 1]) - np.sqrt(2.0 / np.pi))
    noise = np.exp(VOLUME_NOISE_SIGMA * z[:, 2] - 0.5 * VOLUME_NOISE_SIGMA**2)
    volume = np.maximum(np.rint(base_volume * volume_share * move * noise), 1.0)

    # One (n, 5) block handed to pandas without a copy.
    values = np.empty((n, 5))
    for column, array in enumerate((open_, high, low, close, volume)):
        values[:, column] = array
    return pd.DataFrame(values, index=index, columns=columns, copy=False)
