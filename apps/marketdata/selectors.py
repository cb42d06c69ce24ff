"""Reads of market data shaped for the numeric core."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from django.db.models import QuerySet

from apps.core import sql
from apps.marketdata.models import Bar, Instrument

COLUMNS = ("open", "high", "low", "close", "volume")


def instruments_tradable() -> QuerySet[Instrument]:
    return Instrument.objects.filter(tradable=True).order_by("symbol")


def bars_frame(
    *,
    instrument: Instrument | int,
    timeframe: str,
    start: datetime | None = None,
    end: datetime | None = None,
    last: int | None = None,
) -> pd.DataFrame:
    """OHLCV of one instrument as a float64 frame indexed by UTC open time, oldest first.

    ``end`` is exclusive. ``last`` keeps only the most recent N bars (read newest-first with the
    range index, so it stays fast on long histories).
    """
    qs = Bar.objects.filter(instrument=instrument, timeframe=timeframe)
    if start is not None:
        qs = qs.filter(ts__gte=start)
    if end is not None:
        qs = qs.filter(ts__lt=end)
    if last is not None:
        rows = list(qs.order_by("-ts").values_list("ts", *COLUMNS)[:last])
        rows.reverse()
    else:
        rows = list(qs.order_by("ts").values_list("ts", *COLUMNS))
    if not rows:
        return pd.DataFrame(
            {name: np.array([], dtype="float64") for name in COLUMNS},
            index=pd.DatetimeIndex([], tz="UTC", name="ts"),
        )
    stamps, *columns = zip(*rows, strict=True)
    index = pd.DatetimeIndex(stamps, name="ts")
    index = index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")
    return pd.DataFrame(
        {
            name: np.asarray(values, dtype="float64")
            for name, values in zip(COLUMNS, columns, strict=True)
        },
        index=index,
    )


def latest_bar(*, instrument: Instrument | int, timeframe: str) -> Bar | None:
    if not sql.is_postgresql():
        return (
            Bar.objects.filter(instrument=instrument, timeframe=timeframe).order_by("-ts").first()
        )
    # Every paper fill asks (price and volume): written out (see apps.core.sql).
    row = sql.fetchone(
        f"SELECT {sql.columns('b', Bar)} FROM {sql.table(Bar)} b "
        "WHERE b.instrument_id = %s AND b.timeframe = %s ORDER BY b.ts DESC LIMIT 1",
        [getattr(instrument, "pk", instrument), timeframe],
    )
    return None if row is None else sql.instance(Bar, row)


def latest_bar_any(*, instrument: Instrument | int) -> Bar | None:
    """The most recent bar of the finest timeframe that has data (for volume and price)."""
    for timeframe in ("1m", "5m", "15m", "1h", "1d"):
        bar = latest_bar(instrument=instrument, timeframe=timeframe)
        if bar is not None:
            return bar
    return None


# --- pages: the instrument list -----------------------------------------------------------


def instruments_search(
    *, query: str | None = None, sector: str | None = None, tradable: bool | None = None
) -> QuerySet[Instrument]:
    """Instruments by symbol or name fragment, sector and tradability, symbols in order."""
    from django.db.models import Q

    qs = Instrument.objects.order_by("symbol")
    if query:
        query = query.strip()
        qs = qs.filter(Q(symbol__icontains=query) | Q(name__icontains=query))
    if sector:
        qs = qs.filter(sector=sector)
    if tradable is not None:
        qs = qs.filter(tradable=tradable)
    return qs


def instrument_sectors() -> list[str]:
    return list(
        Instrument.objects.exclude(sector="")
        .order_by("sector")
        .values_list("sector", flat=True)
        .distinct()
    )


def bars_in_range(
    *,
    instrument: Instrument | int,
    timeframe: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[Bar]:
    """Bars of one instrument and timeframe with ``start <= ts < end``, oldest first.

    The filter and the ordering match the (instrument, timeframe, ts) unique index, so a
    keyset (cursor) page over this stays an index range scan on any length of history.
    """
    qs = Bar.objects.filter(instrument=instrument, timeframe=timeframe)
    if start is not None:
        qs = qs.filter(ts__gte=start)
    if end is not None:
        qs = qs.filter(ts__lt=end)
    return qs.order_by("ts")
