"""``import_bars`` and the bar import service on the real database."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from apps.marketdata.domain.synthetic import gbm_bars, session_times
from apps.marketdata.models import Bar, Instrument
from apps.marketdata.services import _import_generic, bars_import

pytestmark = pytest.mark.django_db


def write_csv(path, frame: pd.DataFrame) -> None:
    out = frame.copy()
    out.index = out.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.index.name = "timestamp"
    out.to_csv(path)


@pytest.fixture
def daily_frame():
    times = session_times(
        "1d", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-04-01", tz="UTC")
    )
    return gbm_bars(times, seed=11, timeframe="1d")


def stored(symbol: str, timeframe: str) -> pd.DataFrame:
    rows = Bar.objects.filter(instrument__symbol=symbol, timeframe=timeframe).order_by("ts")
    frame = pd.DataFrame.from_records(rows.values("ts", "open", "high", "low", "close", "volume"))
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).dt.as_unit("ns")
    return frame.set_index("ts")


def run(*args, **kwargs) -> str:
    out = StringIO()
    call_command("import_bars", *args, stdout=out, **kwargs)
    return out.getvalue()


def test_import_creates_instrument_stores_every_bar_exactly_and_sets_last_price(
    tmp_path, daily_frame
):
    path = tmp_path / "aapl.csv"
    write_csv(path, daily_frame)
    output = run("aapl", str(path), timeframe="1d")
    assert f"{len(daily_frame)} inserted" in output
    instrument = Instrument.objects.get(symbol="AAPL")
    frame = stored("AAPL", "1d")
    assert list(frame.index) == list(daily_frame.index)
    pd.testing.assert_frame_equal(frame, daily_frame, check_names=False, check_freq=False)
    assert instrument.last_price == Decimal(repr(float(daily_frame["close"].iloc[-1])))
    assert instrument.last_price_at == daily_frame.index[-1] + pd.Timedelta(days=1)


def test_reimport_is_idempotent_and_updates_only_changed_rows(tmp_path, daily_frame):
    path = tmp_path / "bars.csv"
    write_csv(path, daily_frame)
    run("MSFT", str(path))
    assert "0 inserted, 0 updated" in run("MSFT", str(path))
    changed = daily_frame.copy()
    changed.iloc[5, changed.columns.get_loc("volume")] += 1
    extra = gbm_bars(
        session_times(
            "1d", pd.Timestamp("2024-04-01", tz="UTC"), pd.Timestamp("2024-04-10", tz="UTC")
        ),
        seed=12,
        timeframe="1d",
    )
    write_csv(path, pd.concat([changed, extra]))
    output = run("MSFT", str(path))
    assert f"{len(extra)} inserted, 1 updated" in output
    assert Bar.objects.filter(instrument__symbol="MSFT").count() == len(daily_frame) + len(extra)
    assert stored("MSFT", "1d")["volume"].iloc[5] == changed["volume"].iloc[5]


def test_a_bad_row_imports_nothing_and_names_the_line(tmp_path, daily_frame):
    path = tmp_path / "bad.csv"
    write_csv(path, daily_frame)
    lines = path.read_text().splitlines()
    lines[7] = lines[7].replace(",", ",-", 1)  # a negative open on line 8
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CommandError, match="line 8: open"):
        run("NVDA", str(path))
    assert not Bar.objects.exists()


def test_missing_file_and_unknown_symbol_with_no_create(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        run("AAPL", str(tmp_path / "nope.csv"))
    path = tmp_path / "one.csv"
    path.write_text("timestamp,open,high,low,close,volume\n2024-01-02,1,1,1,1,1\n")
    with pytest.raises(CommandError, match="Unknown symbol"):
        run("ZZZ", str(path), no_create=True)
    assert not Instrument.objects.filter(symbol="ZZZ").exists()


def test_timezones_in_the_file_are_stored_as_utc(tmp_path):
    path = tmp_path / "tz.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-07-01T09:30:00-04:00,10,11,9,10,5\n"
        "2024-07-01T09:31:00-04:00,10,11,9,10,5\n"
    )
    run("TZT", str(path), timeframe="1m")
    stamps = list(
        Bar.objects.filter(instrument__symbol="TZT").order_by("ts").values_list("ts", flat=True)
    )
    assert [s.isoformat() for s in stamps] == [
        "2024-07-01T13:30:00+00:00",
        "2024-07-01T13:31:00+00:00",
    ]


@pytest.mark.postgres
def test_merge_path_and_generic_path_agree(daily_frame):
    """The PostgreSQL COPY/merge path and the portable path store the same rows and counts."""
    a = Instrument.objects.create(symbol="PGPATH")
    b = Instrument.objects.create(symbol="GENERIC")
    first = bars_import(instrument=a, timeframe="1d", bars=daily_frame)  # direct COPY
    again = bars_import(instrument=a, timeframe="1d", bars=daily_frame)  # merge, all equal
    changed = daily_frame.copy()
    changed.iloc[[1, 2], 0] += 0.5
    merged = bars_import(instrument=a, timeframe="1d", bars=changed)
    assert (first.inserted, again.inserted, again.updated) == (len(daily_frame), 0, 0)
    assert (merged.inserted, merged.updated, merged.unchanged) == (0, 2, len(daily_frame) - 2)
    assert _import_generic(b, "1d", daily_frame) == (len(daily_frame), 0)
    assert _import_generic(b, "1d", changed) == (0, 2)
    pd.testing.assert_frame_equal(stored("PGPATH", "1d"), stored("GENERIC", "1d"))


def test_older_bars_do_not_move_the_last_price(daily_frame):
    instrument = Instrument.objects.create(symbol="LP")
    bars_import(instrument=instrument, timeframe="1d", bars=daily_frame.iloc[-5:])
    latest = instrument.last_price
    bars_import(instrument=instrument, timeframe="1d", bars=daily_frame.iloc[:5])
    instrument.refresh_from_db()
    assert instrument.last_price == latest
