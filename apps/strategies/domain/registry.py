"""The registry of strategy kinds: lookup, parameter validation, description for the API,
and the last-bar signal used by live trading."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from apps.strategies.domain.base import BarSeries, SignalEvent, SignalSeries, StrategyDefinition
from apps.strategies.domain.params import ParamSpec

__all__ = [
    "UnknownStrategy",
    "describe_strategies",
    "generate_signals",
    "get_strategy",
    "latest_signal",
    "register",
    "strategy_kinds",
    "validate_strategy_params",
]

_BUILTIN_LIBRARY = "apps.strategies.domain.library"
_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
_registry: dict[str, StrategyDefinition] = {}
_StrategyClass = TypeVar("_StrategyClass", bound=type[StrategyDefinition])


class UnknownStrategy(ValueError):
    code = "unknown_strategy"

    def __init__(self, kind: object) -> None:
        self.kind = kind
        valid = ", ".join(_load()) or "none"
        self.message = f"unknown strategy kind {kind!r}: expected one of {valid}"
        super().__init__(self.message)


def register(cls: _StrategyClass) -> _StrategyClass:
    """Class decorator: add one instance of the strategy to the registry under `cls.kind`."""
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise ValueError(f"{cls.__name__}.kind must be a lower_snake_case slug (got {kind!r})")
    if kind in _registry and type(_registry[kind]) is not cls:
        raise ValueError(f"strategy kind {kind!r} is already registered")
    params = getattr(cls, "params", None)
    if not isinstance(params, tuple) or not all(isinstance(p, ParamSpec) for p in params):
        raise TypeError(f"{cls.__name__}.params must be a tuple of ParamSpec")
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ValueError(f"{cls.__name__}.params has duplicate names")
    _registry[kind] = cls()
    return cls


def _load() -> dict[str, StrategyDefinition]:
    # The built-in library registers itself on import; importing here rather than at the
    # top keeps library -> registry the only import direction.
    importlib.import_module(_BUILTIN_LIBRARY)
    return _registry


def get_strategy(kind: str) -> StrategyDefinition:
    registry = _load()
    try:
        return registry[kind]
    except (KeyError, TypeError):
        raise UnknownStrategy(kind) from None


def strategy_kinds() -> list[StrategyDefinition]:
    """Every registered strategy, in registration order (the library's curated order)."""
    return list(_load().values())


def validate_strategy_params(kind: str, raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """All parameters of `kind`, coerced, checked (field and cross-field rules) and
    completed with defaults. Raises UnknownStrategy or InvalidParameters."""
    return get_strategy(kind).parse_params(raw)


def generate_signals(kind: str, params: Mapping[str, Any] | None, bars: BarSeries) -> SignalSeries:
    return get_strategy(kind).generate(bars, params)


def latest_signal(
    kind: str, params: Mapping[str, Any] | None, bars: BarSeries
) -> SignalEvent | None:
    """The event at the LAST bar of `bars` if the target changes there, else None.

    Live trading calls this when a bar closes. The state (long/flat/short) is rebuilt from
    the history given, so pass enough of it: at least `warmup + 1` bars, and more for the
    smoothed indicators (RSI, MACD), whose values depend on where the series starts.
    """
    if len(bars) == 0:
        return None
    return generate_signals(kind, params, bars).event_at(-1, bars)


def describe_strategies() -> list[dict[str, Any]]:
    """JSON-able descriptions of every strategy (kind, label, description, params)."""
    return [strategy.describe() for strategy in strategy_kinds()]
