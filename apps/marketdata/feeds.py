"""Live bar sources: a simulated feed (a seeded random walk from the last stored price) and a
replay of stored bars as new live bars. Both produce 1-minute bars and hand each one to
``services.bar_ingest``, which stores it, rolls it up and wakes the strategies.

The clock is simulated: each tick is one minute of market time; ``speed`` sets how many market
minutes pass per wall-clock minute (1 = real time, 60 = a bar every second).
"""

from __future__ import annotations

import logging
import time as wallclock
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from apps.marketdata.domain.synthetic import gbm_bars
from apps.marketdata.models import Bar, Instrument
from apps.marketdata.selectors import bars_frame
from apps.marketdata.services import BarIngested, bar_ingest

logger = logging.getLogger(__name__)
MINUTE = timedelta(minutes=1)
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class FeedBar:
    instrument: Instrument
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


def _floor_minute(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def feed_start(instruments: list[Instrument], now: datetime) -> datetime:
    """The first bar time: the minute after the newest stored 1m bar (so restarts continue
    where they stopped and never rewrite history), or the current minute."""
    latest = (
        Bar.objects.filter(instrument__in=instruments, timeframe="1m")
        .order_by("-ts")
        .values_list("ts", flat=True)
        .first()
    )
    start = _floor_minute(now)
    if latest is not None and latest + MINUTE > start:
        start = latest + MINUTE
    return start


@dataclass
class _WalkState:
    close: float
    sigma: float  # annualised
    daily_volume: float


def _walk_state(instrument: Instrument) -> _WalkState:
    daily = bars_frame(instrument=instrument, timeframe="1d", last=61)
    last = float(instrument.last_price) if instrument.last_price else None
    sigma = 0.25
    volume = 1_000_000.0
    if len(daily) > 5:
        returns = np.diff(np.log(daily["close"].to_numpy()))
        if np.std(returns) > 0:
            sigma = float(np.clip(np.std(returns, ddof=1) * np.sqrt(252), 0.05, 1.5))
        volume = float(np.median(daily["volume"].to_numpy()))
        last = last or float(daily["close"].iloc[-1])
    return _WalkState(close=last or 100.0, sigma=sigma, daily_volume=volume)


def simulated_bars(
    instruments: list[Instrument], *, start: datetime, seed: int = 0
) -> Iterator[list[FeedBar]]:
    """Endless minutes of bars, one per instrument per minute, each a GBM step from the
    previous close. Seeded by (seed, symbol, minute): the same run gives the same bars."""
    states = {i.pk: _walk_state(i) for i in instruments}
    ts = start
    while True:
        batch = []
        for instrument in instruments:
            state = states[instrument.pk]
            minute_seed = zlib.crc32(f"{seed}:{instrument.symbol}:{ts.isoformat()}".encode())
            frame = gbm_bars(
                pd.DatetimeIndex([ts]),
                seed=minute_seed,
                s0=state.close,
                mu=0.0,
                sigma=state.sigma,
                base_volume=state.daily_volume,
                tick_size=float(instrument.tick_size),
                timeframe="1m",
                calendar="24x7",
            )
            row = frame.iloc[0]
            state.close = float(row["close"])
            batch.append(
                FeedBar(
                    instrument,
                    ts,
                    *(float(row[c]) for c in ("open", "high", "low", "close", "volume")),
                )
            )
        yield batch
        ts += MINUTE


def replayed_bars(
    instruments: list[Instrument],
    *,
    start: datetime,
    source_start: datetime,
    source_end: datetime,
) -> Iterator[list[FeedBar]]:
    """Stored 1m bars of [source_start, source_end) played again as new bars from ``start``:
    minute by minute in their order, prices scaled so each instrument continues from its last
    price (the shape of the history, the level of today)."""
    frames = {}
    for instrument in instruments:
        frame = bars_frame(
            instrument=instrument, timeframe="1m", start=source_start, end=source_end
        )
        if frame.empty:
            continue
        last = (
            float(instrument.last_price) if instrument.last_price else float(frame["open"].iloc[0])
        )
        scale = last / float(frame["open"].iloc[0])
        for column in ("open", "high", "low", "close"):
            frame[column] = (frame[column] * scale).round(2)
        frames[instrument.pk] = (instrument, frame)
    if not frames:
        return
    length = max(len(frame) for _, frame in frames.values())
    for step in range(length):
        ts = start + step * MINUTE
        batch = []
        for instrument, frame in frames.values():
            if step < len(frame):
                row = frame.iloc[step]
                batch.append(
                    FeedBar(
                        instrument,
                        ts,
                        *(float(row[c]) for c in ("open", "high", "low", "close", "volume")),
                    )
                )
        yield batch


def run_feed(
    bars: Iterator[list[FeedBar]],
    *,
    speed: float,
    count: int | None = None,
    on_bar: Callable[[BarIngested], None] | None = None,
    sleep: Callable[[float], None] = wallclock.sleep,
    clock: Callable[[], float] = wallclock.monotonic,
) -> int:
    """Ingest minute after minute, pacing them at ``speed`` market minutes per wall minute.
    Returns the number of bars stored. ``count`` stops after that many minutes."""
    stored = 0
    interval = 60.0 / speed if speed > 0 else 0.0
    next_at = clock()
    for minute, batch in enumerate(bars):
        if count is not None and minute >= count:
            break
        for bar in batch:
            event = bar_ingest(
                instrument=bar.instrument,
                ts=bar.ts,
                open=bar.open,
                high=bar.high,
                low=bar.low,
                close=bar.close,
                volume=bar.volume,
            )
            stored += int(event.created)
            if on_bar is not None:
                on_bar(event)
        next_at += interval
        delay = next_at - clock()
        if delay > 0:
            sleep(delay)
    return stored


__all__ = ["FeedBar", "feed_start", "replayed_bars", "run_feed", "simulated_bars"]
