"""Aggregate bars into a coarser timeframe (minute bars into 5m, 15m, 1h and daily bars)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pandas as pd

INTRADAY = {"1m": "1min", "5m": "5min", "15m": "15min", "1h": "1h"}
NEW_YORK = ZoneInfo("America/New_York")


def resample_bars(bars: pd.DataFrame, timeframe: str, *, session_zone=NEW_YORK) -> pd.DataFrame:
    """OHLCV of ``bars`` (UTC open-time index) grouped into ``timeframe`` buckets.

    Intraday buckets are floored on the UTC clock (a 1h bar opening 13:00Z holds 13:30-13:59
    when that is all the session has). A daily bar holds one trading date of ``session_zone``
    and is stamped 00:00 UTC of that date, the same convention as the synthetic generator.
    Empty buckets are dropped.
    """
    if bars.empty:
        return bars.copy()
    if timeframe in INTRADAY:
        keys = bars.index.floor(INTRADAY[timeframe])
    elif timeframe == "1d":
        local_dates = bars.index.tz_convert(session_zone).tz_localize(None).normalize()
        keys = pd.DatetimeIndex(local_dates).tz_localize("UTC")
    else:
        raise ValueError(f"Unknown timeframe {timeframe!r}.")
    grouped = bars.groupby(keys)
    out = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
        }
    )
    out.index.name = "ts"
    return out
