"""Parse and validate a bars CSV file, all rows at once (vectorised), before anything is stored.

The format is the contract's: header ``timestamp,open,high,low,close,volume``; ISO 8601
timestamps (UTC when no offset is given; any offset is converted to UTC); the timestamp is the
bar's open time. Every problem is reported with the file's line number (the header is line 1),
so a trader can fix the file; the caller stores nothing unless the whole file is valid.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from os import PathLike
from typing import IO

import numpy as np
import pandas as pd

from apps.core.errors import ValidationFailed

HEADER = ("timestamp", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
INTRADAY_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "1h": 60}
MAX_REPORTED = 20


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class BarFileError(ValidationFailed):
    default_code = "invalid_bar_file"

    def __init__(self, errors: list[RowError], *, total: int | None = None) -> None:
        self.errors = errors
        total = total if total is not None else len(errors)
        shown = "; ".join(str(error) for error in errors[:MAX_REPORTED])
        more = f" (and {total - MAX_REPORTED} more)" if total > MAX_REPORTED else ""
        super().__init__(f"Bar file rejected, nothing imported. {shown}{more}")


def _read(source: str | PathLike | IO, *, typed: bool) -> pd.DataFrame:
    """Read the file; ``typed`` parses numbers in C (fast) and fails on any non-number."""
    dtype: type | dict = str
    if typed:
        dtype = {
            "timestamp": str,
            **dict.fromkeys(("open", "high", "low", "close", "volume"), "float64"),
        }
    try:
        return pd.read_csv(
            source,
            dtype=dtype,
            keep_default_na=False,
            skip_blank_lines=False,
            skipinitialspace=True,
            engine="c",
        )
    except pd.errors.EmptyDataError:
        raise BarFileError([RowError(1, "the file is empty; expected a header line")]) from None
    except pd.errors.ParserError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else 0
        raise BarFileError([RowError(line, f"malformed row ({exc})")]) from None
    except UnicodeDecodeError as exc:
        raise BarFileError([RowError(0, f"the file is not UTF-8 text ({exc.reason})")]) from None


def parse_bars_csv(source: str | PathLike | IO, timeframe: str) -> pd.DataFrame:
    """Return a frame indexed by UTC open time (sorted) with float64 OHLCV columns.

    Raises ``BarFileError`` listing every bad line when anything is wrong.
    """
    if timeframe not in (*INTRADAY_MINUTES, "1d"):
        raise ValidationFailed(f"Unknown timeframe {timeframe!r}; use 1m, 5m, 15m, 1h or 1d.")
    raw = None
    seekable = not hasattr(source, "read") or (hasattr(source, "seekable") and source.seekable())
    if seekable:
        # Fast path: numbers parsed by pandas' C reader. Any row it cannot parse sends us to the
        # text path below, which finds and names every bad line.
        position = source.tell() if hasattr(source, "tell") else None
        try:
            raw = _read(source, typed=True)
        except (ValueError, BarFileError):
            if position is not None:
                source.seek(position)
            raw = None
    if raw is None:
        raw = _read(source, typed=False)
    columns = tuple(name.strip().lower() for name in raw.columns)
    if columns != HEADER:
        raise BarFileError(
            [
                RowError(
                    1, f"header must be {','.join(HEADER)} (got {','.join(map(str, raw.columns))})"
                )
            ]
        )
    raw.columns = list(HEADER)
    if raw.empty:
        raise BarFileError([RowError(2, "the file has a header but no bars")])

    lines = np.arange(len(raw)) + 2
    problems: list[tuple[np.ndarray, str]] = []  # (mask, message template)

    stamps = raw["timestamp"]
    ts = pd.to_datetime(stamps, format="ISO8601", utc=True, errors="coerce")
    if ts.isna().any():  # surrounding spaces are tolerated; strip only where it matters
        retry = ts.isna()
        ts[retry] = pd.to_datetime(
            stamps[retry].str.strip(), format="ISO8601", utc=True, errors="coerce"
        )
    bad_ts = ts.isna().to_numpy()
    problems.append((bad_ts, "timestamp {timestamp!r} is not an ISO 8601 date/time"))

    values: dict[str, np.ndarray] = {}
    for name in (*PRICE_COLUMNS, "volume"):
        column = raw[name]
        if column.dtype == "float64":
            number = column.to_numpy()
        else:
            number = pd.to_numeric(column.str.strip(), errors="coerce").to_numpy(dtype="float64")
        # "nan", "inf" and the like parse as numbers but are not prices.
        not_number = ~np.isfinite(number)
        problems.append((not_number, f"{name} {{{name}!r}} is not a finite number"))
        values[name] = number

    o, h, lo, c, v = (values[n] for n in (*PRICE_COLUMNS, "volume"))
    numeric_ok = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & np.isfinite(v)
    with np.errstate(invalid="ignore"):
        for name in PRICE_COLUMNS:
            problems.append(
                (numeric_ok & (values[name] <= 0), f"{name} {{{name}}} must be greater than 0")
            )
        problems.append((numeric_ok & (v < 0), "volume {volume} must not be negative"))
        problems.append(
            (
                numeric_ok & (h < np.maximum.reduce([o, c, lo])),
                "high {high} is below open, close or low",
            )
        )
        problems.append((numeric_ok & (lo > np.minimum(o, c)), "low {low} is above open or close"))

    valid_ts = ~bad_ts
    if timeframe in INTRADAY_MINUTES:
        step = INTRADAY_MINUTES[timeframe]
        minute_of_day = ts.dt.hour * 60 + ts.dt.minute
        misaligned = (
            ((ts.dt.second != 0) | (ts.dt.microsecond != 0) | (minute_of_day % step != 0))
            .fillna(False)
            .to_numpy(dtype=bool)
        )
        problems.append(
            (valid_ts & misaligned, f"timestamp {{timestamp}} is not on the {timeframe} grid")
        )

    duplicated = ts.duplicated(keep="first").to_numpy() & valid_ts
    if duplicated.any():
        first_line = pd.Series(lines, index=ts).groupby(level=0).transform("min")
        first = first_line.to_numpy()
    else:
        first = lines
    problems.append((duplicated, "timestamp {timestamp} repeats line {first}"))

    errors: list[RowError] = []
    total = 0
    mask_any = np.zeros(len(raw), dtype=bool)
    for mask, _ in problems:
        mask_any |= mask
    if mask_any.any():
        for index in np.flatnonzero(mask_any):
            for mask, template in problems:
                if not mask[index]:
                    continue
                total += 1
                if len(errors) < MAX_REPORTED:
                    row = raw.iloc[index].to_dict()
                    row["first"] = int(first[index])
                    errors.append(RowError(int(lines[index]), template.format(**row)))
        raise BarFileError(errors, total=total)

    frame = pd.DataFrame(
        {name: values[name] for name in (*PRICE_COLUMNS, "volume")},
        index=pd.DatetimeIndex(ts, name="ts"),
    )
    return frame.sort_index()


def parse_bars_text(text: str, timeframe: str) -> pd.DataFrame:
    return parse_bars_csv(io.StringIO(text), timeframe)
