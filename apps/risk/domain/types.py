"""The risk engine's vocabulary: rules, the order being checked, what the account holds, what
the market looks like, and the decision. Pure frozen dataclasses in float64 (risk checks are
comparisons against limits; money is Decimal again once the service stores the decision).

The services build these from the database (fetch), ``apps.risk.domain.engine`` decides
(compute), and the services store the decision and schedule side effects (persist). Backtests
build the same snapshots from the simulated broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

import numpy as np


class RuleType(StrEnum):
    MAX_POSITION_SIZE = "max_position_size"
    DAILY_LOSS = "daily_loss"
    MAX_DRAWDOWN = "max_drawdown"
    CORRELATION = "correlation"
    LEVERAGE = "leverage"
    POSITION_LIMIT = "position_limit"
    SECTOR_LIMIT = "sector_limit"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    COOLDOWN = "cooldown"


class Action(StrEnum):
    BLOCK = "block"
    WARN = "warn"


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"  # only orders that shrink exposure pass
    HALTED = "halted"


class Severity(StrEnum):
    OK = "ok"
    WARNING = "warning"
    BREACH = "breach"
    CRITICAL = "critical"


class ReasonCode(StrEnum):
    """Stable machine-readable codes of `CheckResult.code` (a StrEnum, so plain strings in
    JSON). ``OK`` and ``NEAR_LIMIT`` are passed checks; every other code is a failure."""

    OK = "OK"
    NEAR_LIMIT = "NEAR_LIMIT"  # passed, but at or beyond the rule's warning level
    # Built-in checks (every account, whatever its rules).
    TRADING_HALTED = "TRADING_HALTED"
    ACCOUNT_REDUCING = "ACCOUNT_REDUCING"
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    INSTRUMENT_NOT_TRADABLE = "INSTRUMENT_NOT_TRADABLE"
    INVALID_SIDE = "INVALID_SIDE"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    QUANTITY_NOT_ON_LOT = "QUANTITY_NOT_ON_LOT"
    INVALID_PRICE = "INVALID_PRICE"
    PRICE_NOT_ON_TICK = "PRICE_NOT_ON_TICK"
    ORDER_RATE_LIMIT = "ORDER_RATE_LIMIT"
    REDUCE_ONLY_WOULD_INCREASE = "REDUCE_ONLY_WOULD_INCREASE"
    INSUFFICIENT_BUYING_POWER = "INSUFFICIENT_BUYING_POWER"
    INVALID_STOP_LOSS = "INVALID_STOP_LOSS"
    INVALID_TAKE_PROFIT = "INVALID_TAKE_PROFIT"
    # Rules.
    MAX_POSITION_SIZE_EXCEEDED = "MAX_POSITION_SIZE_EXCEEDED"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    MAX_DRAWDOWN_EXCEEDED = "MAX_DRAWDOWN_EXCEEDED"
    CORRELATION_TOO_HIGH = "CORRELATION_TOO_HIGH"
    LEVERAGE_EXCEEDED = "LEVERAGE_EXCEEDED"
    POSITION_LIMIT_EXCEEDED = "POSITION_LIMIT_EXCEEDED"
    SECTOR_LIMIT_EXCEEDED = "SECTOR_LIMIT_EXCEEDED"
    STOP_LOSS_UNAVAILABLE = "STOP_LOSS_UNAVAILABLE"
    TAKE_PROFIT_UNAVAILABLE = "TAKE_PROFIT_UNAVAILABLE"
    COOLDOWN_ACTIVE = "COOLDOWN_ACTIVE"


class Outcome(StrEnum):
    APPROVED = "approved"
    REDUCED = "reduced"  # approved with a smaller quantity
    REJECTED = "rejected"


@dataclass(frozen=True)
class Rule:
    id: int
    type: RuleType
    params: Mapping[str, Any]  # validated by apps.risk.domain.rules.validate_rule_params
    action: Action = Action.BLOCK
    # Fraction of the limit at which a warning is raised (0.8 = at 80% of the limit).
    warning_level: float | None = None
    strategy_id: int | None = None  # None: the whole account
    enabled: bool = True
    name: str = ""


@dataclass(frozen=True)
class OrderProposal:
    symbol: str
    side: str  # "buy" | "sell"
    quantity: float  # > 0
    price: float  # reference price: the limit, else the last price
    order_type: str = "market"
    strategy_id: int | None = None
    reduce_only: bool = False
    # Protective prices the caller asked for; rules 8 and 9 attach them when missing.
    stop_loss_price: float | None = None
    take_profit_price: float | None = None
    # When False a rule that could shrink the order rejects it instead.
    allow_reduce: bool = True


@dataclass(frozen=True)
class Holding:
    symbol: str
    quantity: float  # signed: short < 0
    average_price: float
    last_price: float
    sector: str = ""
    stop_loss_price: float | None = None
    take_profit_price: float | None = None
    strategy_id: int | None = None

    @property
    def market_value(self) -> float:
        return self.quantity * self.last_price


@dataclass(frozen=True)
class PendingOrder:
    """An open order's unfilled remainder: counted as if it filled (conservative)."""

    symbol: str
    side: str
    quantity: float
    price: float


@dataclass(frozen=True)
class PortfolioSnapshot:
    equity: float
    cash: float
    start_of_day_equity: float | None
    high_water_mark: float | None
    state: TradingState = TradingState.ACTIVE
    holdings: tuple[Holding, ...] = ()
    pending: tuple[PendingOrder, ...] = ()
    # Order submissions of this account inside the rate-limit window (before this one).
    recent_submissions: int = 0
    # When a stop loss last closed a position, per symbol (for the cool-down rule).
    last_stop_out: Mapping[str, datetime] = field(default_factory=dict)

    @cached_property
    def by_symbol(self) -> Mapping[str, Holding]:
        return {holding.symbol: holding for holding in self.holdings}

    @cached_property
    def memo(self) -> dict[Any, Any]:
        """Scratch space for values the risk engine derives from this snapshot (exposures,
        sector sums), so they are computed once per snapshot object. Not a field: never
        compared, and ``dataclasses.replace`` starts a fresh one."""
        return {}


@dataclass(frozen=True)
class InstrumentInfo:
    symbol: str
    sector: str = ""
    tradable: bool = True
    lot_size: float = 1.0
    tick_size: float = 0.01
    last_price: float | None = None
    atr: float | None = None  # average true range on the daily timeframe, for stops and sizing


@dataclass(frozen=True)
class MarketSnapshot:
    instruments: Mapping[str, InstrumentInfo]
    # Aligned daily returns (same dates, oldest first) per symbol, for correlation and VaR.
    # Treat as immutable and reuse the same mapping between snapshots (say one per trading
    # day): the engine caches the standardized windows by the mapping's identity.
    returns: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineLimits:
    """Checks every account gets, whatever rules it has."""

    max_orders_per_minute: int = 60
    # Buying power = cash for long purchases; shorts need margin of this fraction of notional.
    short_margin: float = 1.0


@dataclass(frozen=True)
class CheckResult:
    code: str  # stable machine-readable reason, e.g. "MAX_POSITION_SIZE_EXCEEDED" or "OK"
    passed: bool
    severity: Severity
    message: str  # one human sentence
    rule_id: int | None = None  # None for the built-in checks
    rule_type: str | None = None
    action: Action = Action.BLOCK
    value: float | None = None  # what was measured
    limit: float | None = None
    # The largest quantity this check would let through (None: no opinion).
    max_quantity: float | None = None
    # Which check produced this: the rule type for rules, else the built-in check's name
    # ("trading_state", "instrument", "quantity", "price", "rate_limit", "reduce_only",
    # "buying_power", "protective_prices").
    check: str = ""
    # What the check is about when it is narrower than the account or the order: the symbol
    # of a position-size result, the sector of a sector result, the other holding of a
    # correlation result ("" otherwise). Monitoring keys its events on (rule, subject).
    subject: str = ""

    @classmethod
    def make(
        cls,
        code: str,
        passed: bool,
        severity: Severity,
        message: str,
        rule_id: int | None,
        rule_type: str | None,
        action: Action,
        value: float | None,
        limit: float | None,
        max_quantity: float | None,
        check: str,
        subject: str = "",
    ) -> CheckResult:
        """The same object as ``CheckResult(...)`` for the engine's hot path, at a third of
        the cost: a frozen dataclass's __init__ pays ``object.__setattr__`` per field, this
        fills the instance dict once. Keep it in step with the fields
        (tests/risk/test_engine.py compares the two)."""
        result = object.__new__(cls)
        result.__dict__.update(
            code=code,
            passed=passed,
            severity=severity,
            message=message,
            rule_id=rule_id,
            rule_type=rule_type,
            action=action,
            value=value,
            limit=limit,
            max_quantity=max_quantity,
            check=check,
            subject=subject,
        )
        return result

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": str(self.code),
            "passed": self.passed,
            "severity": str(self.severity),
            "message": self.message,
            "rule_id": self.rule_id,
            "rule_type": self.rule_type,
            "action": str(self.action),
            "value": self.value,
            "limit": self.limit,
            "max_quantity": self.max_quantity,
            "check": self.check,
            "subject": self.subject,
        }


@dataclass(frozen=True)
class ProtectiveExit:
    """A holding whose last price crossed its stop loss or take profit: monitoring closes it
    with a `side` order of `quantity`."""

    symbol: str
    kind: str  # "stop_loss" | "take_profit"
    trigger_price: float
    last_price: float
    quantity: float  # > 0, the whole position
    side: str  # the closing side: "sell" for a long, "buy" for a short

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "kind": self.kind,
            "trigger_price": self.trigger_price,
            "last_price": self.last_price,
            "quantity": self.quantity,
            "side": self.side,
        }


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    requested_quantity: float
    quantity: float  # approved quantity (0 when rejected)
    checks: tuple[CheckResult, ...]
    stop_loss_price: float | None = None
    take_profit_price: float | None = None

    @property
    def approved(self) -> bool:
        return self.outcome is not Outcome.REJECTED

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(check for check in self.checks if not check.passed)

    @property
    def warnings(self) -> tuple[CheckResult, ...]:
        return tuple(check for check in self.checks if check.severity is Severity.WARNING)

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return tuple(check.code for check in self.failures)

    @property
    def message(self) -> str:
        failures = [c for c in self.failures if c.action is Action.BLOCK]
        if self.outcome is Outcome.REJECTED and failures:
            return " ".join(check.message for check in failures)
        if self.outcome is Outcome.REDUCED:
            return f"Approved {self.quantity:g} of {self.requested_quantity:g}: " + " ".join(
                check.message
                for check in self.checks
                if check.max_quantity is not None and not check.passed
            )
        return "Approved."

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": str(self.outcome),
            "requested_quantity": self.requested_quantity,
            "quantity": self.quantity,
            "reason_codes": list(self.reason_codes),
            "message": self.message,
            "stop_loss_price": self.stop_loss_price,
            "take_profit_price": self.take_profit_price,
            "checks": [check.as_dict() for check in self.checks],
        }
