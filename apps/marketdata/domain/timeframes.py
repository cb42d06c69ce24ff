"""Bar timeframes: names, lengths and alignment of bar open times.

A bar's timestamp is its OPEN time, timezone-aware UTC. Intraday bars are aligned on the UTC
clock (a 15m bar opens at :00, :15, :30 or :45; a 1h bar on the hour). Because New York is a
whole number of hours from UTC, that is also the New York clock. Daily bars are stamped at
00:00 UTC of their trading date (see `apps.marketdata.domain.synthetic`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

__all__ = [
    "TIMEFRAMES",
    "Timeframe",
    "floor_to_timeframe",
    "is_aligned",
    "pandas_freq",
    "parse_timeframe",
    "timeframe_seconds",
    "timeframe_timedelta",
]


class Timeframe(StrEnum):
    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    D1 = "1d"


TIMEFRAMES: tuple[str, ...] = tuple(tf.value for tf in Timeframe)

_SECONDS: dict[Timeframe, int] = {
    Timeframe.M1: 60,
    Timeframe.M5: 5 * 60,
    Timeframe.M15: 15 * 60,
    Timeframe.H1: 60 * 60,
    Timeframe.D1: 24 * 60 * 60,
}

_PANDAS_FREQ: dict[Timeframe, str] = {
    Timeframe.M1: "1min",
    Timeframe.M5: "5min",
    Timeframe.M15: "15min",
    Timeframe.H1: "1h",
    Timeframe.D1: "1D",
}


def parse_timeframe(tf: str | Timeframe) -> Timeframe:
    """Return the `Timeframe` for "1m", "5m", "15m", "1h" or "1d"; ValueError otherwise."""
    if isinstance(tf, Timeframe):
        return tf
    try:
        return Timeframe(tf)
    except ValueError:
        raise ValueError(
            f"unknown timeframe {tf!r}: expected one of {', '.join(TIMEFRAMES)}"
        ) from None


def timeframe_seconds(tf: str | Timeframe) -> int:
    """Length of one bar in seconds (86400 for "1d")."""
    return _SECONDS[parse_timeframe(tf)]


def timeframe_timedelta(tf: str | Timeframe) -> timedelta:
    return timedelta(seconds=timeframe_seconds(tf))


def pandas_freq(tf: str | Timeframe) -> str:
    """The pandas offset alias of a timeframe ("5m" -> "5min"), for resampling."""
    return _PANDAS_FREQ[parse_timeframe(tf)]


def _as_utc(ts: datetime) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp {ts.isoformat()} must be timezone-aware (UTC)")
    return ts.astimezone(UTC)


def is_aligned(ts: datetime, tf: str | Timeframe) -> bool:
    """True when `ts` is a valid bar open time for `tf`.

    Intraday: whole minutes (no seconds or sub-seconds) and the minute of the UTC day is a
    multiple of the timeframe. "1d": exactly midnight UTC. Naive timestamps raise ValueError.
    """
    seconds = timeframe_seconds(tf)
    utc = _as_utc(ts)
    if utc.second or utc.microsecond or getattr(utc, "nanosecond", 0):
        return False
    minute_of_day = utc.hour * 60 + utc.minute
    return minute_of_day % (seconds // 60) == 0


def floor_to_timeframe(ts: datetime, tf: str | Timeframe) -> datetime:
    """The open time (UTC) of the `tf` bar that contains `ts`."""
    seconds = timeframe_seconds(tf)
    utc = _as_utc(ts)
    midnight = datetime(utc.year, utc.month, utc.day, tzinfo=UTC)
    second_of_day = utc.hour * 3600 + utc.minute * 60 + utc.second
    return midnight + timedelta(seconds=second_of_day - second_of_day % seconds)
