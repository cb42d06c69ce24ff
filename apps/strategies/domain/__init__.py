"""The strategy library: pure signal generation shared by live trading and backtests.

No Django, no clock: bars in, signals out. See `base` for the signal timing contract.
"""

from apps.strategies.domain.base import (
    BarSeries,
    LazyReasons,
    SignalEvent,
    SignalSeries,
    StrategyDefinition,
)
from apps.strategies.domain.params import InvalidParameters, ParamSpec, validate_params
from apps.strategies.domain.registry import (
    UnknownStrategy,
    describe_strategies,
    generate_signals,
    get_strategy,
    latest_signal,
    register,
    strategy_kinds,
    validate_strategy_params,
)

__all__ = [
    "BarSeries",
    "InvalidParameters",
    "LazyReasons",
    "ParamSpec",
    "SignalEvent",
    "SignalSeries",
    "StrategyDefinition",
    "UnknownStrategy",
    "describe_strategies",
    "generate_signals",
    "get_strategy",
    "latest_signal",
    "register",
    "strategy_kinds",
    "validate_params",
    "validate_strategy_params",
]
