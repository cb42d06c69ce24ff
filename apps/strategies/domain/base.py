"""What a strategy reads (BarSeries), what it decides (SignalSeries, SignalEvent), and the
base class every strategy in the library derives from.

Signal timing: `SignalSeries.target[i]` is the exposure (+1 long, 0 flat, -1 short) decided
at the CLOSE of bar i from bars 0..i only. Backtests fill it at the open of bar i + 1; live
trading acts on it when bar i closes. No strategy may look at bar i + 1 to decide bar i.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from apps.strategies.domain.params import InvalidParameters, ParamSpec, validate_params

__all__ = [
    "BarSeries",
    "LazyReasons",
    "SignalEvent",
    "SignalSeries",
    "StrategyDefinition",
    "datetime64_to_utc",
]

_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime64_to_utc(value: np.datetime64) -> datetime:
    """A numpy datetime64 (UTC, any unit) as an aware `datetime` (to the microsecond)."""
    nanoseconds = int(np.datetime64(value, "ns").astype(np.int64))
    return _EPOCH + timedelta(microseconds=nanoseconds // 1000)


def _utc_ns(ts: Any) -> np.ndarray:
    """Timestamps as datetime64[ns] UTC; aware input is converted, naive input is UTC."""
    if isinstance(ts, np.ndarray) and ts.dtype.kind == "M":
        return ts.astype("datetime64[ns]")
    index = pd.DatetimeIndex(ts)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("ns").to_numpy()


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class BarSeries:
    """OHLCV bars of one instrument and timeframe, oldest first.

    `ts` holds bar OPEN times as datetime64[ns] in UTC (naive numpy values). The arrays are
    private read-only copies, so a BarSeries can be shared between many strategy runs.
    """

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        ts = _readonly(np.array(_utc_ns(self.ts)))
        if ts.ndim != 1:
            raise ValueError("ts must be one-dimensional")
        if np.isnat(ts).any():
            raise ValueError("ts contains missing timestamps")
        if len(ts) > 1 and not (np.diff(ts.astype(np.int64)) > 0).all():
            raise ValueError("ts must be strictly increasing (sorted, no duplicates)")
        object.__setattr__(self, "ts", ts)
        for name in _PRICE_COLUMNS:
            values = np.array(getattr(self, name), dtype=np.float64)
            if values.shape != ts.shape:
                raise ValueError(f"{name} has {values.size} values for {ts.size} timestamps")
            if not np.isfinite(values).all():
                raise ValueError(f"{name} contains NaN or infinite values")
            object.__setattr__(self, name, _readonly(values))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> BarSeries:
        """From a DataFrame with open/high/low/close/volume columns (any case) and either a
        DatetimeIndex or a `ts` (or `timestamp`) column. Naive times are taken as UTC."""
        columns = {str(c).lower(): c for c in frame.columns}
        missing = [c for c in _PRICE_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"bars frame lacks column(s): {', '.join(missing)}")
        if "ts" in columns:
            ts = frame[columns["ts"]]
        elif "timestamp" in columns:
            ts = frame[columns["timestamp"]]
        elif isinstance(frame.index, pd.DatetimeIndex):
            ts = frame.index
        else:
            raise ValueError("bars frame needs a DatetimeIndex or a ts column")
        return cls(ts, *(frame[columns[c]].to_numpy(dtype=np.float64) for c in _PRICE_COLUMNS))

    @classmethod
    def _trusted(cls, ts: np.ndarray, *arrays: np.ndarray) -> BarSeries:
        # Slices of an already validated series: skip the copies and checks.
        series = object.__new__(cls)
        object.__setattr__(series, "ts", ts)
        for name, values in zip(_PRICE_COLUMNS, arrays, strict=True):
            object.__setattr__(series, name, values)
        return series

    def __len__(self) -> int:
        return len(self.ts)

    def __getitem__(self, key: slice) -> BarSeries:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("BarSeries supports contiguous slices only, e.g. bars[:100]")
        return self._trusted(self.ts[key], *(getattr(self, c)[key] for c in _PRICE_COLUMNS))

    def tail(self, n: int) -> BarSeries:
        """The last `n` bars (all of them when there are fewer)."""
        if n < 0:
            raise ValueError(f"n must be non-negative (got {n})")
        return self[len(self) - min(n, len(self)) :]

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame indexed by tz-aware UTC open times."""
        index = pd.DatetimeIndex(self.ts, name="ts").tz_localize("UTC")
        return pd.DataFrame({c: getattr(self, c) for c in _PRICE_COLUMNS}, index=index)


@dataclass(frozen=True)
class SignalEvent:
    """A change of the desired exposure at the close of bar `index`."""

    index: int
    ts: datetime
    side: Literal["buy", "sell"]
    target: int
    previous_target: int
    strength: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "ts": self.ts.isoformat(),
            "side": self.side,
            "target": self.target,
            "previous_target": self.previous_target,
            "strength": self.strength,
            "reason": self.reason,
        }


class LazyReasons(Mapping[int, str]):
    """Reasons for a fixed set of bar indices, each sentence formatted on first access.

    An optimizer generating thousands of series reads almost none of their reasons, and
    formatting a sentence per event would dominate its run time.
    """

    __slots__ = ("_cache", "_describe", "_indices", "_members")

    def __init__(self, indices: np.ndarray, describe: Callable[[int], str]) -> None:
        self._indices = _readonly(np.array(indices, dtype=np.int64))
        self._members = frozenset(self._indices.tolist())
        self._describe = describe
        self._cache: dict[int, str] = {}

    @property
    def indices(self) -> np.ndarray:
        return self._indices

    def __getitem__(self, index: int) -> str:
        if index not in self._members:
            raise KeyError(index)
        reason = self._cache.get(index)
        if reason is None:
            reason = self._cache[index] = self._describe(int(index))
        return reason

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices.tolist())

    def __len__(self) -> int:
        return self._indices.size

    def __repr__(self) -> str:
        return f"LazyReasons({len(self)} reasons)"


@dataclass(frozen=True, eq=False)
class SignalSeries:
    """A strategy's decisions for every bar.

    - `target[i]` (int8: +1, 0, -1): the desired exposure at the close of bar i.
    - `strength[i]` (float64 in [0, 1]): how decisive the event at bar i was, as each
      strategy documents; 0 where the target does not change.
    - `reasons[i]`: a sentence for every index where the target changes (a plain mapping,
      or `LazyReasons`, which formats each sentence when it is first read).
    - `indicators`: the indicator lines the strategy computed, by name, for charts.
    """

    target: np.ndarray
    strength: np.ndarray
    reasons: Mapping[int, str]
    indicators: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        target = np.asarray(self.target)
        whole = target.dtype.kind in "biu" or bool((target == np.trunc(target)).all())
        if target.ndim != 1 or not whole or not (np.abs(target) <= 1).all():
            raise ValueError("target must be a one-dimensional array of -1, 0 and +1")
        target = _readonly(target.astype(np.int8, copy=True))
        strength = _readonly(np.array(self.strength, dtype=np.float64))
        if strength.shape != target.shape:
            raise ValueError(f"strength has {strength.size} values for {target.size} targets")
        if not ((strength >= 0.0) & (strength <= 1.0)).all():
            raise ValueError("strength must lie in [0, 1]")
        changes = self.change_indices(target)
        reasons: Mapping[int, str]
        if isinstance(self.reasons, LazyReasons):
            reasons = self.reasons
            same = np.array_equal(changes, reasons.indices)
            unexplained = [] if same else np.setdiff1d(changes, reasons.indices).tolist()
        else:
            reasons = MappingProxyType({int(i): str(r) for i, r in self.reasons.items()})
            unexplained = [int(i) for i in changes if int(i) not in reasons]
        if unexplained:
            raise ValueError(f"no reason given for the target change at bar(s) {unexplained}")
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "strength", strength)
        object.__setattr__(self, "reasons", reasons)
        object.__setattr__(self, "indicators", MappingProxyType(dict(self.indicators)))

    def __len__(self) -> int:
        return len(self.target)

    @staticmethod
    def change_indices(target: np.ndarray) -> np.ndarray:
        """Indices where the target differs from the previous bar's (0 before bar 0)."""
        return np.flatnonzero(np.diff(target, prepend=np.int8(0)))

    def event_at(self, index: int, bars: BarSeries) -> SignalEvent | None:
        """The event at bar `index` (negative counts from the end), or None if none."""
        self._check_bars(bars)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"bar index {index} out of range for {n} bars")
        index %= n
        previous = int(self.target[index - 1]) if index > 0 else 0
        target = int(self.target[index])
        if target == previous:
            return None
        return SignalEvent(
            index=index,
            ts=datetime64_to_utc(bars.ts[index]),
            side="buy" if target > previous else "sell",
            target=target,
            previous_target=previous,
            strength=float(self.strength[index]),
            reason=self.reasons[index],
        )

    def events(self, bars: BarSeries) -> list[SignalEvent]:
        """Every target change, oldest first."""
        self._check_bars(bars)
        changes = self.change_indices(self.target)
        return [event for i in changes if (event := self.event_at(int(i), bars)) is not None]

    def _check_bars(self, bars: BarSeries) -> None:
        if len(bars) != len(self):
            raise ValueError(f"{len(bars)} bars given for a series of {len(self)} signals")


class StrategyDefinition(ABC):
    """A strategy kind of the library.

    Subclasses set `kind` (slug), `label`, `description` and `params`, and implement
    `warmup_bars` and `compute`; they may override `validate` for rules that involve more
    than one parameter. Callers use `parse_params`, `warmup` and `generate`, which accept raw
    or already validated parameters.
    """

    kind: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[tuple[ParamSpec, ...]]

    def validate(self, params: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Cross-parameter rules on individually valid `params`; raise InvalidParameters."""

    def parse_params(self, raw: Mapping[str, Any] | None) -> dict[str, Any]:
        """Every parameter, coerced and checked, defaults filled in.

        Cross-parameter rules run only once each parameter is valid on its own.
        """
        params = validate_params(self.params, raw)
        self.validate(params)
        return params

    def default_params(self) -> dict[str, Any]:
        return {spec.name: spec.default for spec in self.params}

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """The index of the first bar at which the target can change: no signal occurs
        before it, so live trading needs at least warmup + 1 bars of history."""
        return self.warmup_bars(self.parse_params(params))

    def generate(self, bars: BarSeries, params: Mapping[str, Any] | None = None) -> SignalSeries:
        """Signals for every bar; see `SignalSeries` for timing."""
        return self.compute(bars, self.parse_params(params))

    def describe(self) -> dict[str, Any]:
        """A JSON-able description for the API and forms."""
        return {
            "kind": self.kind,
            "label": self.label,
            "description": self.description,
            "params": [spec.to_dict() for spec in self.params],
            "defaults": self.default_params(),
        }

    @abstractmethod
    def warmup_bars(self, params: dict[str, Any]) -> int:
        """`warmup` for validated params."""

    @abstractmethod
    def compute(self, bars: BarSeries, params: dict[str, Any]) -> SignalSeries:
        """`generate` for validated params."""

    @staticmethod
    def invalid(name: str, message: str) -> InvalidParameters:
        """An InvalidParameters error for one parameter, message prefixed with its name."""
        return InvalidParameters({name: f"{name}: {message}"})
