"""Parsing and validation of bar files (pure)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from apps.marketdata.domain.csv_bars import BarFileError, parse_bars_text

HEADER = "timestamp,open,high,low,close,volume\n"


def test_parses_iso_timestamps_with_and_without_offsets_into_utc():
    text = HEADER + (
        "2024-01-03T09:30:00-05:00,10,11,9,10.5,100\n"  # New York open -> 14:30Z
        "2024-01-03T14:31:00,10.5,11,10,10.8,200\n"  # naive -> UTC
        "2024-01-03 14:32:00Z,10.8,11,10.7,10.9,300\n"
    )
    frame = parse_bars_text(text, "1m")
    assert list(frame.index.strftime("%H:%M")) == ["14:30", "14:31", "14:32"]
    assert str(frame.index.tz) == "UTC"
    assert frame["close"].tolist() == [10.5, 10.8, 10.9]


def test_rows_are_sorted_by_time():
    text = HEADER + "2024-01-03,2,2,2,2,1\n2024-01-02,1,1,1,1,1\n"
    frame = parse_bars_text(text, "1d")
    assert frame.index.is_monotonic_increasing and frame["open"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("yesterday,1,1,1,1,1", "not an ISO 8601"),
        ("2024-01-02,abc,1,1,1,1", "open 'abc' is not a finite number"),
        ("2024-01-02,1,1,1,,1", "close '' is not a finite number"),
        ("2024-01-02,nan,1,1,1,1", "not a finite number"),
        ("2024-01-02,1,inf,1,1,1", "not a finite number"),
        ("2024-01-02,0,1,0,1,1", "must be greater than 0"),
        ("2024-01-02,1,1,1,1,-5", "must not be negative"),
        ("2024-01-02,1,0.5,0.4,1,1", "high 0.5 is below"),
        ("2024-01-02,1,2,1.5,1,1", "low 1.5 is above"),
    ],
)
def test_a_bad_row_is_named_by_its_line(row, fragment):
    text = HEADER + "2024-01-01,1,1,1,1,1\n" + row + "\n"
    with pytest.raises(BarFileError) as err:
        parse_bars_text(text, "1d")
    assert "line 3" in err.value.message
    assert fragment in err.value.message
    assert err.value.errors[0].line == 3


def test_every_bad_line_is_reported_not_just_the_first():
    text = (
        HEADER
        + "2024-01-01,1,1,1,1,1\n2024-01-02,x,1,1,1,1\n"
        + "2024-01-03,1,1,1,1,1\n2024-01-04,1,1,1,1,-1\n"
    )
    with pytest.raises(BarFileError) as err:
        parse_bars_text(text, "1d")
    assert [e.line for e in err.value.errors] == [3, 5]


def test_duplicate_timestamps_name_both_lines():
    text = HEADER + "2024-01-01,1,1,1,1,1\n2024-01-02,1,1,1,1,1\n2024-01-01T00:00:00Z,1,1,1,1,1\n"
    with pytest.raises(BarFileError) as err:
        parse_bars_text(text, "1d")
    assert "line 4" in err.value.message and "repeats line 2" in err.value.message


@pytest.mark.parametrize(
    ("timeframe", "stamp"),
    [
        ("1m", "2024-01-02T10:00:30Z"),
        ("5m", "2024-01-02T10:03:00Z"),
        ("1h", "2024-01-02T10:30:00Z"),
    ],
)
def test_intraday_bars_must_sit_on_the_timeframe_grid(timeframe, stamp):
    with pytest.raises(BarFileError) as err:
        parse_bars_text(HEADER + f"{stamp},1,1,1,1,1\n", timeframe)
    assert f"not on the {timeframe} grid" in err.value.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("time,o,h,l,c,v\n2024-01-01,1,1,1,1,1\n", "header must be"),
        (HEADER, "no bars"),
        (HEADER + "2024-01-01,1,1,1,1,1,7\n", "line"),
    ],
)
def test_file_level_problems(text, fragment):
    with pytest.raises(BarFileError) as err:
        parse_bars_text(text, "1d")
    assert fragment in err.value.message


def test_unknown_timeframe():
    with pytest.raises(Exception, match="Unknown timeframe"):
        parse_bars_text(HEADER + "2024-01-01,1,1,1,1,1\n", "2m")


def test_round_trip_of_a_large_generated_file_is_exact():
    rng = np.random.default_rng(3)
    n = 5000
    index = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    frame = pd.DataFrame(
        {
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": rng.integers(1, 1000, n),
        },
        index=index,
    )
    buffer = io.StringIO()
    out = frame.copy()
    out.index = out.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.index.name = "timestamp"
    out.to_csv(buffer)
    parsed = parse_bars_text(buffer.getvalue(), "1m")
    np.testing.assert_array_equal(parsed["close"].to_numpy(), frame["close"].to_numpy())
    assert (parsed.index == frame.index).all()
