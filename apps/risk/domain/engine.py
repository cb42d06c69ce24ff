"""The pre-trade risk engine and the account-level re-evaluation for monitoring.

``evaluate_order`` runs the built-in checks every account gets, then each enabled rule that
applies to the order (account-wide, or scoped to the order's strategy), and returns a
`Decision` holding EVERY `CheckResult`, passed ones included, so a page can show how close
each rule is.

How an order is measured (the service must build the snapshots to match):

- Positions. For each symbol the engine keeps two figures: ``long_side`` = position + every
  pending buy, and ``short_side`` = position - every pending sell. Pending orders count as if
  they fill, but only where that makes things worse: a pending sell (say a far take-profit)
  never makes room for a new buy. A buy is measured by the long position it can create
  (``long_side + qty``), a sell by the short position it can create (``qty - short_side``).
  Another symbol's exposure is ``max(|long_side|, |short_side|) * mark``, the mark being the
  holding's last price, else the instrument's last price, else the pending order's price;
  the order's own symbol is valued at the order's reference price.
- Reducing orders. A sell is reducing when ``qty <= short_side`` (it cannot turn the position
  short even if every pending sell fills); a buy when ``qty <= -long_side``. Reducing orders
  pass every exposure rule, daily loss, drawdown, correlation, cool-down and buying power, and
  get no stop or target attached. Anything else adds risk, including a flip (close and open);
  where only the opening part is the problem (reducing state, reduce-only, daily loss,
  drawdown, correlation, cool-down) the check offers the closing quantity as `max_quantity`.
- Limits. Exposure limits (position size, leverage, sector, position count) are breached
  when the value after the order is ABOVE the limit (at the limit passes); loss limits (daily
  loss, drawdown) are breached when the loss REACHES the limit. Comparisons allow a relative
  1e-9 for float rounding.
- Outcome. A failed blocking check without `max_quantity` rejects. When every failed
  blocking check has one, the smallest, rounded down to the lot size, is approved instead
  (REDUCED) if it is at least one lot and the proposal allows reducing; else REJECTED. A
  failed WARN-action rule is a warning (passed False, severity WARNING) and changes nothing.
- Stops and targets are computed last, for the final quantity, and only for entries.

`Rule.params` must be the output of `rules.validate_rule_params` (the services validate on
save); missing keys fall back to the defaults.

Caching (the benchmark goal is 100 microseconds for every rule type against 100 positions):
what the engine derives from a PortfolioSnapshot (exposures, sector sums, the symbol's row) is
memoised on that snapshot object and computed lazily; the standardized return windows for
correlation are cached by the identity of the `MarketSnapshot.returns` mapping (keep one
mapping per trading day and treat it as immutable), together with the holdings' rows of it.
Nothing is cached across different portfolio snapshots except those return windows.
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from itertools import compress
from operator import attrgetter, mul
from typing import Any

import numpy as np

from apps.risk.domain.portfolio import (
    MIN_CORRELATION_OBSERVATIONS,
    pairwise_correlation,
    return_matrix,
)
from apps.risk.domain.rules import RULE_DEFAULTS
from apps.risk.domain.types import (
    Action,
    CheckResult,
    Decision,
    EngineLimits,
    Holding,
    InstrumentInfo,
    MarketSnapshot,
    OrderProposal,
    Outcome,
    PortfolioSnapshot,
    ProtectiveExit,
    ReasonCode,
    Rule,
    RuleType,
    Severity,
)

__all__ = [
    "DEFAULT_LIMITS",
    "evaluate_account",
    "evaluate_order",
    "floor_to_step",
    "on_step",
    "protective_exits",
    "round_to_tick",
    "stop_triggered",
    "take_profit_triggered",
]

DEFAULT_LIMITS = EngineLimits()
_QUANTITY = attrgetter("quantity")
_LAST_PRICE = attrgetter("last_price")
_SYMBOL = attrgetter("symbol")
_SECTOR = attrgetter("sector")
_TOL = 1e-9  # relative slack for float comparisons against limits and grids

R = ReasonCode
_make = CheckResult.make
_BLOCK = Action.BLOCK
_WARN = Action.WARN
_OK_SEV = Severity.OK
_WARN_SEV = Severity.WARNING
_BREACH = Severity.BREACH
_CRITICAL = Severity.CRITICAL


# --------------------------------------------------------------------------- numbers


def on_step(value: float, step: float) -> bool:
    """Whether `value` is a whole multiple of `step` (float rounding tolerated)."""
    if step <= 0:
        return True
    n = value / step
    return abs(n - round(n)) <= 1e-9 + abs(n) * 1e-12


def floor_to_step(value: float, step: float) -> float:
    """`value` rounded down to a multiple of `step` (a value already on the grid stays)."""
    if step <= 0:
        return value
    n = math.floor(value / step + 1e-9)
    return round(n * step, 12)


def round_to_tick(price: float, tick: float, *, up: bool) -> float:
    """`price` rounded to the tick grid, up or down (a price already on the grid stays)."""
    if tick <= 0:
        return price
    n = price / tick
    nearest = round(n)
    if abs(n - nearest) <= 1e-9 + abs(n) * 1e-12:
        steps = nearest
    else:
        steps = math.ceil(n) if up else math.floor(n)
    return round(steps * tick, 12)


def _qty(value: float) -> str:
    return f"{value:,.8g}"


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _num(value: float) -> str:
    text = f"{value:.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _price(value: float) -> str:
    return f"{value:,.8g}" if abs(value) < 1 else f"{value:,.2f}"


# --------------------------------------------------------------------------- the book


class _CorrelationRows:
    """The return windows of a set of holdings for one lookback, cached with the market's
    windows by the holdings' symbols, so a fresh portfolio snapshot with the same holdings
    reuses them."""

    def __init__(self, symbols: tuple[str, ...], windows: _ReturnWindows) -> None:
        where = windows.index
        found = np.array([where.get(s, -1) for s in symbols], dtype=np.intp)
        has_series = found >= 0
        safe = np.where(has_series, found, 0)
        if has_series.any():
            fast = has_series & windows.complete[safe]
            z = windows.z[safe]
            z[~fast] = 0.0
        else:  # no holding has returns (maybe no returns at all): nothing to index
            fast = has_series
            z = np.zeros((len(symbols), windows.z.shape[1]))
        self.symbols = symbols
        self.position_of = {symbol: i for i, symbol in enumerate(symbols)}
        self.z = z  # standardized complete rows, zero elsewhere
        self.slow = np.flatnonzero(has_series & ~fast)  # partial windows: pairwise, NaN-aware
        self.found = safe  # row in the market's windows
        self.measurable = has_series
        self.measurable_rows = np.flatnonzero(has_series)
        self.count = int(has_series.sum())
        self.missing = tuple(
            s for s, ok in zip(symbols, has_series.tolist(), strict=True) if not ok
        )


_CORRELATION_CACHE_SIZE = 16


def _correlation_rows(
    market: MarketSnapshot, symbols: tuple[str, ...], lookback: int
) -> _CorrelationRows:
    windows = _return_windows(market, lookback)
    cache = windows.rows_cache
    rows = cache.get(symbols)
    if rows is None:
        with _CACHE_LOCK:
            if len(cache) >= _CORRELATION_CACHE_SIZE:
                cache.pop(next(iter(cache)), None)  # the oldest holdings set
            rows = cache[symbols] = _CorrelationRows(symbols, windows)
    return rows


class _ReturnWindows:
    """Standardized return windows for every symbol of a market snapshot, for one lookback:
    Pearson r of two complete rows is then a dot product."""

    def __init__(self, returns: Mapping[str, np.ndarray], lookback: int) -> None:
        self.returns = returns
        self.size = len(returns)
        self.rows_cache: dict[tuple[str, ...], _CorrelationRows] = {}
        symbols = tuple(returns)
        self.index = {symbol: i for i, symbol in enumerate(symbols)}
        window = return_matrix(returns, symbols, lookback)
        self.window = window
        length = window.shape[1]
        if length >= MIN_CORRELATION_OBSERVATIONS:
            mean = window.mean(axis=1, keepdims=True)
            centred = window - mean
            norms = np.sqrt((centred * centred).sum(axis=1))
            # NaN anywhere in a row makes its norm NaN (so it is not complete). A constant
            # series leaves only rounding noise after centring: compare with its level.
            complete = (norms > 1e-12 * np.abs(mean[:, 0]) * math.sqrt(length)) & (norms > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                z = centred / norms[:, None]
            z[~complete] = 0.0
        else:
            complete = np.zeros(len(symbols), dtype=bool)
            z = np.zeros_like(window)
        self.complete = complete
        self.z = z


# Standardized windows are a pure function of the returns mapping and the lookback, so they
# are cached by the mapping's identity (each entry keeps a reference to its mapping, so the id
# cannot be recycled while cached). A service that builds a new MarketSnapshot per order but
# reuses one returns mapping per trading day computes them once. Treat the mapping and its
# arrays as immutable: build a new mapping when the returns change.
_WINDOWS_CACHE: dict[tuple[int, int], _ReturnWindows] = {}
_WINDOWS_CACHE_SIZE = 8
_CACHE_LOCK = threading.Lock()


def _return_windows(market: MarketSnapshot, lookback: int) -> _ReturnWindows:
    returns = market.returns
    key = (id(returns), lookback)
    windows = _WINDOWS_CACHE.get(key)
    if windows is None or windows.returns is not returns or windows.size != len(returns):
        windows = _ReturnWindows(returns, lookback)
        with _CACHE_LOCK:
            if len(_WINDOWS_CACHE) >= _WINDOWS_CACHE_SIZE and key not in _WINDOWS_CACHE:
                _WINDOWS_CACHE.pop(next(iter(_WINDOWS_CACHE)), None)
            _WINDOWS_CACHE[key] = windows
    return windows


class _lazy:  # lower case: used as a decorator, like cached_property
    """`functools.cached_property` without the lock Python 3.11 takes on every first access
    (a book serves one evaluation at a time; computing a value twice would be harmless)."""

    def __init__(self, func: Any) -> None:
        self.func = func
        self.name = func.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.func(instance)
        return value


class _Row:
    """One symbol of the account: holding plus pending orders (see the module docstring)."""

    __slots__ = ("long_side", "mark", "quantity", "sector", "short_side")

    def __init__(self, quantity: float, mark: float, sector: str) -> None:
        self.quantity = quantity  # the holding alone
        self.long_side = quantity
        self.short_side = quantity
        self.mark = mark
        self.sector = sector

    @property
    def holding_exposure(self) -> float:
        return abs(self.quantity * self.mark)

    @property
    def exposure(self) -> float:
        return max(abs(self.long_side), abs(self.short_side)) * self.mark

    @property
    def short_exposure(self) -> float:
        return max(-self.short_side, 0.0) * self.mark

    @property
    def is_open(self) -> bool:
        return self.long_side != 0 or self.short_side != 0


class _Book:
    """What the engine derives from one (portfolio, market) pair, computed lazily and once
    per pair: an order needs its own symbol's row and a few sums over the holdings, and a
    fresh snapshot per order is the common case, so nothing is built for every symbol.
    Holdings should hold one row per symbol (duplicates are summed for the order's row).
    """

    def __init__(
        self, portfolio: PortfolioSnapshot, market: MarketSnapshot, include_pending: bool
    ) -> None:
        self.market = market
        self.holdings = portfolio.holdings
        self.pending = portfolio.pending if include_pending else ()
        self._rows: dict[str, _Row | None] = {}
        self._sector_sums: dict[str, float] = {}

    def _sector_of(self, symbol: str) -> str:
        info = self.market.instruments.get(symbol)
        return info.sector if info is not None else ""

    def row(self, symbol: str) -> _Row | None:
        """The symbol's holding and pending orders, or None when it has neither."""
        rows = self._rows
        if symbol not in rows:
            # One pass over the holdings for this symbol and every pending one (the sums
            # over the account need those next).
            wanted = {symbol}
            wanted.update(o.symbol for o in self.pending if o.symbol not in rows)
            self._build_rows(wanted)
        return rows[symbol]

    @_lazy
    def symbols(self) -> list[str]:
        return list(map(_SYMBOL, self.holdings))

    @_lazy
    def quantities(self) -> list[float]:
        return list(map(_QUANTITY, self.holdings))

    @_lazy
    def position_of(self) -> dict[str, int]:
        """symbol -> index of its holding (the last one when a symbol repeats)."""
        return dict(zip(self.symbols, range(len(self.holdings)), strict=True))

    @_lazy
    def has_duplicates(self) -> bool:
        return len(self.position_of) != len(self.holdings)

    def _build_rows(self, wanted: set[str]) -> None:
        found: dict[str, _Row] = {}
        holdings = self.holdings
        position_of = self.position_of
        duplicates = self.has_duplicates
        for symbol in wanted:
            at = position_of.get(symbol)
            if at is None:
                continue
            # Rare duplicates: sum every holding of the symbol.
            ats = [i for i, s in enumerate(self.symbols) if s == symbol] if duplicates else [at]
            for at in ats:
                holding = holdings[at]
                row = found.get(symbol)
                if row is None:
                    sector = holding.sector or self._sector_of(symbol)
                    found[symbol] = _Row(holding.quantity, holding.last_price, sector)
                else:
                    row.quantity += holding.quantity
                    row.long_side += holding.quantity
                    row.short_side += holding.quantity
        instruments = self.market.instruments
        for order in self.pending:
            symbol = order.symbol
            if symbol not in wanted:
                continue
            row = found.get(symbol)
            if row is None:
                info = instruments.get(symbol)
                mark = info.last_price if info is not None and info.last_price else order.price
                row = found[symbol] = _Row(0.0, mark, info.sector if info is not None else "")
            if order.side == "buy":
                row.long_side += order.quantity
            else:
                row.short_side -= order.quantity
        for symbol in wanted:
            self._rows[symbol] = found.get(symbol)

    @_lazy
    def pending_rows(self) -> dict[str, _Row]:
        rows = {}
        for order in self.pending:
            row = self.row(order.symbol)
            if row is not None:
                rows[order.symbol] = row
        return rows

    @_lazy
    def pending_buy_notional(self) -> float:
        return sum(o.quantity * o.price for o in self.pending if o.side == "buy")

    @_lazy
    def values(self) -> list[float]:
        """Signed market value of each holding (map/attrgetter: C-speed iteration)."""
        return list(map(mul, self.quantities, map(_LAST_PRICE, self.holdings)))

    @_lazy
    def gross(self) -> float:
        total = sum(map(abs, self.values))
        for row in self.pending_rows.values():
            total += row.exposure - row.holding_exposure
        return total

    @_lazy
    def short_notional(self) -> float:
        total = -sum([value for value in self.values if value < 0])
        for row in self.pending_rows.values():
            total += row.short_exposure - max(-row.quantity, 0.0) * row.mark
        return total

    @_lazy
    def held_symbols(self) -> tuple[str, ...]:
        return tuple(compress(self.symbols, self.quantities))

    @_lazy
    def open_count(self) -> int:
        held = self.held_symbols
        count = len(set(held)) if self.has_duplicates else len(held)
        for row in self.pending_rows.values():
            if row.quantity == 0 and row.is_open:  # open only through pending orders
                count += 1
        return count

    @_lazy
    def sectors(self) -> list[str]:
        """Each holding's sector: its own, else the instrument's."""
        sectors = list(map(_SECTOR, self.holdings))
        if not all(sectors):
            sectors = [
                sector or self._sector_of(holding.symbol)
                for sector, holding in zip(sectors, self.holdings, strict=True)
            ]
        return sectors

    def sector_gross(self, sector: str) -> float:
        """Gross exposure of every symbol in `sector` (pending orders included)."""
        total = self._sector_sums.get(sector)
        if total is None:
            total = sum(map(abs, compress(self.values, map(sector.__eq__, self.sectors))))
            for row in self.pending_rows.values():
                if row.sector == sector:
                    total += row.exposure - row.holding_exposure
            self._sector_sums[sector] = total
        return total

    @_lazy
    def all_rows(self) -> dict[str, _Row]:
        """Every symbol's row (monitoring; not on the order path)."""
        ordered = dict.fromkeys(self.symbols + [o.symbol for o in self.pending])
        self._build_rows({s for s in ordered if s not in self._rows})
        rows = {symbol: self._rows[symbol] for symbol in ordered}
        return {symbol: row for symbol, row in rows.items() if row is not None}

    def correlation_rows(self, lookback: int) -> _CorrelationRows:
        return _correlation_rows(self.market, self.held_symbols, lookback)


def _book(portfolio: PortfolioSnapshot, market: MarketSnapshot, include_pending: bool) -> _Book:
    key = ("risk_book", include_pending)
    cached = portfolio.memo.get(key)
    # The book holds a reference to its market, so the identity check cannot be fooled by a
    # recycled id().
    if cached is not None and cached.market is market:
        return cached
    book = portfolio.memo[key] = _Book(portfolio, market, include_pending)
    return book


# --------------------------------------------------------------------------- the order


class _Order:
    """One proposal against one book: the figures every check needs."""

    __slots__ = (
        "book",
        "buy",
        "closing",
        "equity",
        "exposure_before",
        "instrument",
        "long_side",
        "lot",
        "now",
        "portfolio",
        "price",
        "proposal",
        "quantity",
        "reducing",
        "row",
        "sector",
        "short_side",
        "symbol",
        "verb",
    )

    def __init__(
        self,
        proposal: OrderProposal,
        instrument: InstrumentInfo,
        portfolio: PortfolioSnapshot,
        book: _Book,
        now: datetime,
    ) -> None:
        self.proposal = proposal
        self.instrument = instrument
        self.portfolio = portfolio
        self.book = book
        self.now = now
        self.symbol = proposal.symbol
        self.buy = proposal.side == "buy"
        self.verb = "bought" if self.buy else "sold"
        self.quantity = proposal.quantity
        self.price = proposal.price
        self.lot = instrument.lot_size if instrument.lot_size > 0 else 0.0
        self.equity = portfolio.equity
        row = book.row(proposal.symbol)
        self.row = row
        if row is None:
            self.long_side = self.short_side = 0.0
            self.exposure_before = 0.0
            self.sector = instrument.sector
        else:
            self.long_side = row.long_side
            self.short_side = row.short_side
            self.exposure_before = row.exposure
            self.sector = instrument.sector or row.sector
        self.closing = max(0.0, -self.long_side) if self.buy else max(0.0, self.short_side)
        self.reducing = self.is_reducing(self.quantity)

    def is_reducing(self, quantity: float) -> bool:
        return self.closing > 0 and quantity <= self.closing * (1 + _TOL)

    def units_after(self, quantity: float) -> float:
        """The position (units, >= 0) on the side this order pushes, after it."""
        if self.buy:
            return max(self.long_side + quantity, 0.0)
        return max(quantity - self.short_side, 0.0)

    def worst_after(self, quantity: float) -> float:
        """max(|long side|, |short side|) after the order: what a reducing order leaves."""
        signed = quantity if self.buy else -quantity
        return max(abs(self.long_side + signed), abs(self.short_side + signed))

    def measured_units(self) -> float:
        return self.worst_after(self.quantity) if self.reducing else self.units_after(self.quantity)

    def bound(self, max_units: float) -> float:
        """The largest order quantity keeping `units_after` within `max_units`."""
        room = max_units - self.long_side if self.buy else max_units + self.short_side
        return max(room, 0.0)

    @property
    def closing_bound(self) -> float | None:
        """The closing part of a flip, on the lot grid, when it is at least one lot."""
        if self.closing <= 0:
            return None
        closing = floor_to_step(self.closing, self.lot) if self.lot else self.closing
        return closing if closing > 0 and closing >= self.lot else None

    def reduce_hint(self, max_quantity: float | None) -> str:
        if max_quantity is None:
            return ""
        if max_quantity < (self.lot or 0.0) or max_quantity <= 0:
            return f" Nothing more can be {self.verb}."
        rounded = floor_to_step(max_quantity, self.lot) if self.lot else max_quantity
        return f" At most {_qty(rounded)} can be {self.verb}."


# --------------------------------------------------------------------------- results


def _builtin(
    check: str,
    code: ReasonCode,
    message: str,
    *,
    value: float | None = None,
    limit: float | None = None,
    max_quantity: float | None = None,
) -> CheckResult:
    passed = code is R.OK
    return _make(
        code,
        passed,
        _OK_SEV if passed else _BREACH,
        message,
        None,
        None,
        _BLOCK,
        value,
        limit,
        None if passed else max_quantity,
        check,
    )


def _rule_result(
    rule: Rule,
    fail_code: ReasonCode,
    *,
    failed: bool,
    message: str,
    value: float | None = None,
    limit: float | None = None,
    max_quantity: float | None = None,
    critical: bool = False,
    warning: bool = False,
    measured: bool = True,
    subject: str = "",
) -> CheckResult:
    """A rule's result. `warning` marks a pass that still deserves attention (a breached
    loss limit that a reducing order may pass); `measured` False disables the warning level
    (cool-down, stops: the value is not "approaching" anything)."""
    kind = str(rule.type)  # Rule.type/action may arrive as plain strings: compare with ==
    if failed:
        if rule.action == _WARN:
            return _make(
                fail_code,
                False,
                _WARN_SEV,
                message + " (Warning only: the rule does not block.)",
                rule.id,
                kind,
                _WARN,
                value,
                limit,
                None,
                kind,
                subject,
            )
        return _make(
            fail_code,
            False,
            _CRITICAL if critical else _BREACH,
            message,
            rule.id,
            kind,
            _BLOCK,
            value,
            limit,
            max_quantity,
            kind,
            subject,
        )
    level = rule.warning_level
    near = (
        measured
        and level is not None
        and value is not None
        and limit is not None
        and limit > 0
        and value >= level * limit * (1 - _TOL)
    )
    if near:
        message = f"{message} (At or above the warning level of {level:.0%} of the limit.)"
    return _make(
        R.NEAR_LIMIT if near else R.OK,
        True,
        _WARN_SEV if (near or warning) else _OK_SEV,
        message,
        rule.id,
        kind,
        _WARN if rule.action == _WARN else _BLOCK,
        value,
        limit,
        None,
        kind,
        subject,
    )


def _over(value: float, limit: float) -> bool:
    return value > limit + abs(limit) * _TOL


def _reached(value: float, limit: float) -> bool:
    return value >= limit - abs(limit) * _TOL


def _param(rule: Rule, name: str) -> Any:
    value = rule.params.get(name)
    return RULE_DEFAULTS[rule.type][name] if value is None else value


# --------------------------------------------------------------------------- rules


def _check_max_position_size(order: _Order, rule: Rule) -> CheckResult:
    mode = _param(rule, "mode")
    limit = float(_param(rule, "limit"))
    units = order.measured_units()
    price = order.price
    symbol = order.symbol
    equity = order.equity
    if mode == "units":
        value, max_units = units, limit
        text = f"Position in {symbol} would be {_qty(units)} units; the limit is {_qty(limit)}."
    elif mode == "money":
        value, max_units = units * price, limit / price
        text = f"Position in {symbol} would be worth {_money(value)}; the limit is {_money(limit)}."
    elif equity <= 0:
        return _rule_result(
            rule,
            R.MAX_POSITION_SIZE_EXCEEDED,
            subject=symbol,
            failed=not order.reducing,
            message=f"Equity is {_money(equity)}, so no position fits a percentage limit.",
            limit=limit,
            max_quantity=order.closing_bound,
        )
    else:
        value = units * price / equity * 100.0
        max_units = limit / 100.0 * equity / price
        text = (
            f"Position in {symbol} would be {_num(value)}% of equity; the limit is {_num(limit)}%."
        )
    failed = not order.reducing and _over(value, limit)
    max_quantity = order.bound(max_units) if failed else None
    if order.reducing:
        text += " The order reduces the position."
    return _rule_result(
        rule,
        R.MAX_POSITION_SIZE_EXCEEDED,
        subject=symbol,
        failed=failed,
        message=text + order.reduce_hint(max_quantity),
        value=value,
        limit=limit,
        max_quantity=max_quantity,
    )


def _daily_loss(portfolio: PortfolioSnapshot, rule: Rule) -> tuple[float | None, float, str, bool]:
    """(value, limit, sentence, breached) of a daily-loss rule on the account as it stands."""
    mode = _param(rule, "mode")
    limit = float(_param(rule, "limit"))
    sod = portfolio.start_of_day_equity
    if sod is None or sod <= 0:
        text = "Start-of-day equity is unknown, so the daily loss could not be measured."
        return None, limit, text, False
    loss = sod - portfolio.equity
    value = loss if mode == "money" else loss / sod * 100.0
    limit_text = _money(limit) if mode == "money" else f"{_num(limit)}%"
    if loss <= 0:
        text = f"The account is up {_money(-loss)} today; the daily loss limit is {limit_text}."
    elif mode == "money":
        text = f"Loss today is {_money(loss)}; the limit is {limit_text}."
    else:
        text = (
            f"Loss today is {_num(value)}% of start-of-day equity ({_money(loss)}); "
            f"the limit is {limit_text}."
        )
    return value, limit, text, _reached(value, limit)


def _check_daily_loss(order: _Order, rule: Rule) -> CheckResult:
    value, limit, text, breached = _daily_loss(order.portfolio, rule)
    failed = breached and not order.reducing
    if breached:
        text += (
            " The order reduces risk, so it may pass."
            if order.reducing
            else " Only orders that reduce risk may pass."
        )
    max_quantity = order.closing_bound if failed else None
    return _rule_result(
        rule,
        R.DAILY_LOSS_LIMIT,
        failed=failed,
        message=text + order.reduce_hint(max_quantity),
        value=value,
        limit=limit,
        max_quantity=max_quantity,
        critical=bool(_param(rule, "halt_on_breach")),
        warning=breached,
    )


def _drawdown(portfolio: PortfolioSnapshot, rule: Rule) -> tuple[float | None, float, str, bool]:
    limit = float(_param(rule, "limit_pct"))
    hwm = portfolio.high_water_mark
    equity = portfolio.equity
    if hwm is None or max(hwm, equity) <= 0:
        text = "The high-water mark is unknown, so the drawdown could not be measured."
        return None, limit, text, False
    peak = max(hwm, equity)
    value = (peak - equity) / peak * 100.0
    text = (
        f"Drawdown is {_num(value)}% below the high-water mark of {_money(peak)}; "
        f"the limit is {_num(limit)}%."
    )
    return value, limit, text, _reached(value, limit)


def _check_max_drawdown(order: _Order, rule: Rule) -> CheckResult:
    value, limit, text, breached = _drawdown(order.portfolio, rule)
    failed = breached and not order.reducing
    if breached:
        text += (
            " The order reduces risk, so it may pass."
            if order.reducing
            else " Only orders that reduce risk may pass."
        )
    max_quantity = order.closing_bound if failed else None
    return _rule_result(
        rule,
        R.MAX_DRAWDOWN_EXCEEDED,
        failed=failed,
        message=text + order.reduce_hint(max_quantity),
        value=value,
        limit=limit,
        max_quantity=max_quantity,
        critical=True,
        warning=breached,
    )


def _max_correlation(
    order: _Order, lookback: int
) -> tuple[float | None, str | None, tuple[str, ...]]:
    """(max |r| with another holding, which holding, holdings that could not be measured)."""
    symbol = order.symbol
    book = order.book
    windows = _return_windows(book.market, lookback)
    rows = book.correlation_rows(lookback)
    own = rows.position_of.get(symbol)
    unmeasured = tuple(s for s in rows.missing if s != symbol)
    index = windows.index.get(symbol)
    others = rows.count - (own is not None and bool(rows.measurable[own]))
    if others <= 0:
        return None, None, unmeasured
    if index is None:
        names = [rows.symbols[i] for i in rows.measurable_rows.tolist() if i != own]
        return None, None, tuple(names) + unmeasured
    series = windows.window[index]
    if windows.complete[index]:
        corr = rows.z @ windows.z[index]
        if rows.slow.size:
            corr[rows.slow] = pairwise_correlation(series, windows.window[rows.found[rows.slow]])
    else:
        corr = np.zeros(len(rows.z))
        measurable = rows.measurable_rows
        corr[measurable] = pairwise_correlation(series, windows.window[rows.found[measurable]])
    magnitude = np.abs(corr)
    if rows.count < len(corr):  # holdings without a series: never the answer
        magnitude[~rows.measurable] = -1.0
    if own is not None:
        magnitude[own] = -1.0
    if rows.slow.size or not windows.complete[index]:  # pairwise results may be NaN
        unknown = np.isnan(magnitude)
        if unknown.any():
            unmeasured += tuple(rows.symbols[i] for i in np.flatnonzero(unknown).tolist())
            magnitude[unknown] = -1.0
    best = int(magnitude.argmax())
    value = float(magnitude[best])
    if value < 0:
        return None, None, unmeasured
    return value, rows.symbols[best], unmeasured


def _check_correlation(order: _Order, rule: Rule) -> CheckResult:
    threshold = float(_param(rule, "threshold"))
    lookback = int(_param(rule, "lookback"))
    symbol = order.symbol
    if order.reducing:
        return _rule_result(
            rule,
            R.CORRELATION_TOO_HIGH,
            failed=False,
            message=f"The order reduces the position in {symbol}; correlation is not checked.",
            limit=threshold,
        )
    value, partner, unmeasured = _max_correlation(order, lookback)
    note = ""
    if unmeasured:
        shown = ", ".join(unmeasured[:5]) + (" and others" if len(unmeasured) > 5 else "")
        note = f" Not measurable (too little return history) against: {shown}."
    if value is None:
        if not unmeasured:
            reason = "there is no other holding"
        elif symbol not in _return_windows(order.book.market, lookback).index:
            reason = f"{symbol} has no return history"
        else:
            reason = "there is not enough return history"
        return _rule_result(
            rule,
            R.CORRELATION_TOO_HIGH,
            failed=False,
            message=f"Correlation of {symbol} with the other holdings could not be measured: "
            f"{reason}; the rule lets the order pass.{note}",
            limit=threshold,
        )
    failed = _over(value, threshold)
    max_quantity = order.closing_bound if failed else None
    text = (
        f"Largest correlation of {symbol} with a holding is {value:.2f} (with {partner}, "
        f"last {lookback} daily returns); the limit is {threshold:g}.{note}"
    )
    return _rule_result(
        rule,
        R.CORRELATION_TOO_HIGH,
        subject=partner or "",
        failed=failed,
        message=text + order.reduce_hint(max_quantity),
        value=value,
        limit=threshold,
        max_quantity=max_quantity,
    )


def _check_leverage(order: _Order, rule: Rule) -> CheckResult:
    limit = float(_param(rule, "max_leverage"))
    equity = order.equity
    others = order.book.gross - order.exposure_before
    gross_after = others + order.measured_units() * order.price
    if equity <= 0:
        return _rule_result(
            rule,
            R.LEVERAGE_EXCEEDED,
            failed=not order.reducing,
            message=f"Equity is {_money(equity)}, so leverage cannot be measured; "
            "only orders that reduce risk may pass.",
            limit=limit,
            max_quantity=order.closing_bound,
        )
    value = gross_after / equity
    failed = not order.reducing and _over(value, limit)
    max_quantity = order.bound((limit * equity - others) / order.price) if failed else None
    text = (
        f"Gross exposure would be {_money(gross_after)}, {value:.2f}x equity; "
        f"the limit is {limit:g}x."
    )
    return _rule_result(
        rule,
        R.LEVERAGE_EXCEEDED,
        failed=failed,
        message=text + order.reduce_hint(max_quantity),
        value=value,
        limit=limit,
        max_quantity=max_quantity,
    )


def _check_position_limit(order: _Order, rule: Rule) -> CheckResult:
    limit = int(_param(rule, "max_positions"))
    book = order.book
    was_open = order.row is not None and order.row.is_open
    count = book.open_count
    if order.reducing:
        if order.worst_after(order.quantity) <= 0:
            count -= 1
    elif not was_open:
        count += 1
    failed = not order.reducing and not was_open and count > limit
    text = f"Open positions would be {count}; the limit is {limit}."
    return _rule_result(
        rule,
        R.POSITION_LIMIT_EXCEEDED,
        failed=failed,
        message=text,
        value=float(count),
        limit=float(limit),
    )


def _check_sector_limit(order: _Order, rule: Rule) -> CheckResult:
    limit = float(_param(rule, "limit_pct"))
    sector = order.sector
    symbol = order.symbol
    if not sector:
        return _rule_result(
            rule,
            R.SECTOR_LIMIT_EXCEEDED,
            failed=False,
            message=f"{symbol} has no sector, so the sector limit does not apply.",
            limit=limit,
        )
    book = order.book
    others = book.sector_gross(sector)
    if order.row is not None and order.row.sector == sector:
        others -= order.exposure_before
    after = others + order.measured_units() * order.price
    equity = order.equity
    if equity <= 0:
        return _rule_result(
            rule,
            R.SECTOR_LIMIT_EXCEEDED,
            subject=sector,
            failed=not order.reducing,
            message=f"Equity is {_money(equity)}, so no exposure fits a percentage limit.",
            limit=limit,
            max_quantity=order.closing_bound,
        )
    value = after / equity * 100.0
    failed = not order.reducing and _over(value, limit)
    max_quantity = order.bound((limit / 100.0 * equity - others) / order.price) if failed else None
    text = (
        f"Exposure to {sector} would be {_money(after)}, {_num(value)}% of equity; "
        f"the limit is {_num(limit)}%."
    )
    return _rule_result(
        rule,
        R.SECTOR_LIMIT_EXCEEDED,
        subject=sector,
        failed=failed,
        message=text + order.reduce_hint(max_quantity),
        value=value,
        limit=limit,
        max_quantity=max_quantity,
    )


def _check_cooldown(order: _Order, rule: Rule) -> CheckResult:
    minutes = int(_param(rule, "minutes"))
    symbol = order.symbol
    stopped_at = order.portfolio.last_stop_out.get(symbol)
    if stopped_at is None:
        return _rule_result(
            rule,
            R.COOLDOWN_ACTIVE,
            failed=False,
            message=f"No stop loss in {symbol} to cool down from.",
            limit=float(minutes),
            measured=False,
        )
    elapsed = (order.now - stopped_at).total_seconds() / 60.0
    active = elapsed < minutes
    failed = active and not order.reducing
    until = stopped_at + timedelta(minutes=minutes)
    if active:
        text = (
            f"A stop loss closed {symbol} {_num(max(elapsed, 0.0))} minutes ago; new risk is "
            f"allowed from {until:%Y-%m-%d %H:%M} UTC ({minutes} minutes after)."
        )
        if order.reducing:
            text += " The order reduces the position, so it may pass."
    else:
        text = (
            f"The last stop loss in {symbol} was {_num(elapsed)} minutes ago (cool-down {minutes})."
        )
    max_quantity = order.closing_bound if failed else None
    return _rule_result(
        rule,
        R.COOLDOWN_ACTIVE,
        subject=symbol,
        failed=failed,
        message=text + order.reduce_hint(max_quantity),
        value=elapsed,
        limit=float(minutes),
        max_quantity=max_quantity,
        measured=False,
    )


_ORDER_CHECKS = {
    RuleType.MAX_POSITION_SIZE: _check_max_position_size,
    RuleType.DAILY_LOSS: _check_daily_loss,
    RuleType.MAX_DRAWDOWN: _check_max_drawdown,
    RuleType.CORRELATION: _check_correlation,
    RuleType.LEVERAGE: _check_leverage,
    RuleType.POSITION_LIMIT: _check_position_limit,
    RuleType.SECTOR_LIMIT: _check_sector_limit,
    RuleType.COOLDOWN: _check_cooldown,
}
_PROTECTIVE = (RuleType.STOP_LOSS, RuleType.TAKE_PROFIT)


# --------------------------------------------------------------------------- built-ins


def _check_state(order: _Order | None, portfolio: PortfolioSnapshot) -> CheckResult:
    state = portfolio.state
    if state == "halted":
        return _builtin(
            "trading_state",
            R.TRADING_HALTED,
            "Trading is halted for this account; no order may be placed.",
        )
    if state == "reducing":
        if order is None:
            return _builtin("trading_state", R.OK, "The account may only reduce risk.")
        if order.reducing:
            return _builtin(
                "trading_state",
                R.OK,
                "The account may only reduce risk, and this order reduces a position.",
            )
        bound = order.closing_bound
        return _builtin(
            "trading_state",
            R.ACCOUNT_REDUCING,
            f"The account may only reduce risk, and this order adds risk in {order.symbol}."
            + order.reduce_hint(bound),
            max_quantity=bound,
        )
    return _builtin("trading_state", R.OK, "Trading is active.")


def _check_buying_power(order: _Order, limits: EngineLimits) -> CheckResult:
    if order.reducing:
        return _builtin(
            "buying_power", R.OK, "The order reduces a position, so it needs no buying power."
        )
    price = order.price
    book = order.book
    if order.buy:
        cash = float(order.portfolio.cash)
        pending = book.pending_buy_notional
        needed = order.quantity * price + pending
        room = (cash - pending) / price
        pending_text = f" (plus {_money(pending)} for pending buys)" if pending else ""
        text = (
            f"Buying {_qty(order.quantity)} {order.symbol} at {_price(price)} needs "
            f"{_money(order.quantity * price)}{pending_text}; cash is {_money(cash)}."
        )
        if not _over(needed, cash):
            return _builtin("buying_power", R.OK, text, value=needed, limit=cash)
        max_quantity = max(room, 0.0)
        return _builtin(
            "buying_power",
            R.INSUFFICIENT_BUYING_POWER,
            text + order.reduce_hint(max_quantity),
            value=needed,
            limit=cash,
            max_quantity=max_quantity,
        )
    margin = limits.short_margin
    equity = float(order.equity)
    own_before = order.row.short_exposure if order.row is not None else 0.0
    others = book.short_notional - own_before
    after = others + order.units_after(order.quantity) * price
    needed = after * margin
    text = (
        f"Short exposure would be {_money(after)}, needing margin {_money(needed)} "
        f"({margin:.0%}); equity is {_money(equity)}."
    )
    if not _over(needed, equity):
        return _builtin("buying_power", R.OK, text, value=needed, limit=equity)
    room = (equity / margin - others) / price if margin > 0 else math.inf
    max_quantity = order.bound(room)
    return _builtin(
        "buying_power",
        R.INSUFFICIENT_BUYING_POWER,
        text + order.reduce_hint(max_quantity),
        value=needed,
        limit=equity,
        max_quantity=max_quantity,
    )


def _rejected(proposal: OrderProposal, checks: list[CheckResult]) -> Decision:
    return Decision(Outcome.REJECTED, proposal.quantity, 0.0, tuple(checks))


def _is_number(value: Any) -> bool:
    if type(value) is float:  # the usual case, without the ABC check
        return math.isfinite(value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _validate_inputs(
    proposal: OrderProposal, instrument: InstrumentInfo | None, checks: list[CheckResult]
) -> bool:
    """Append the checks an order cannot be measured without; False if one failed."""
    ok = True
    if proposal.side not in ("buy", "sell"):
        checks.append(
            _builtin("side", R.INVALID_SIDE, f"Side must be buy or sell, not {proposal.side!r}.")
        )
        ok = False
    if instrument is None:
        checks.append(
            _builtin(
                "instrument",
                R.UNKNOWN_INSTRUMENT,
                f"{proposal.symbol} is not a known instrument.",
            )
        )
        ok = False
    quantity = proposal.quantity
    if not (_is_number(quantity) and quantity > 0):
        checks.append(
            _builtin("quantity", R.INVALID_QUANTITY, "Quantity must be a number above zero.")
        )
        ok = False
    price = proposal.price
    if not (_is_number(price) and price > 0):
        checks.append(_builtin("price", R.INVALID_PRICE, "Price must be a number above zero."))
        ok = False
    return ok


def _grid_checks(order: _Order, checks: list[CheckResult]) -> None:
    instrument = order.instrument
    symbol = order.symbol
    if instrument.tradable:
        checks.append(_builtin("instrument", R.OK, f"{symbol} is tradable."))
    else:
        checks.append(
            _builtin("instrument", R.INSTRUMENT_NOT_TRADABLE, f"{symbol} is not tradable.")
        )
    quantity = order.quantity
    lot = instrument.lot_size
    # Closing a whole position that is off the lot grid (after a split) must stay possible.
    closes_all = order.closing > 0 and abs(quantity - order.closing) <= order.closing * _TOL
    if lot > 0 and not on_step(quantity, lot) and not closes_all:
        checks.append(
            _builtin(
                "quantity",
                R.QUANTITY_NOT_ON_LOT,
                f"Quantity {_qty(quantity)} is not a multiple of the lot size {_qty(lot)}.",
            )
        )
    else:
        checks.append(_builtin("quantity", R.OK, f"Quantity {_qty(quantity)} is valid."))
    tick = instrument.tick_size
    price = order.price
    if order.proposal.order_type != "market" and tick > 0 and not on_step(price, tick):
        checks.append(
            _builtin(
                "price",
                R.PRICE_NOT_ON_TICK,
                f"Price {price:g} is not a multiple of the tick size {tick:g}.",
            )
        )
    else:
        checks.append(_builtin("price", R.OK, f"Price {_price(price)} is valid."))


# --------------------------------------------------------------------------- stops


def _stop_candidate(order: _Order, rule: Rule, quantity: float) -> tuple[float | None, str]:
    mode = _param(rule, "mode")
    value = float(_param(rule, "value"))
    price = order.price
    long = order.buy
    if mode == "atr":
        atr = order.instrument.atr
        if atr is None or not atr > 0:
            return None, f"no ATR is known for {order.symbol}"
        distance = value * atr
        how = f"{value:g} x ATR {atr:g}"
    elif mode == "money":
        distance = value / quantity
        how = f"{_money(value)} over {_qty(quantity)} units"
    else:
        distance = price * value / 100.0
        how = f"{value:g}% of {_price(price)}"
    raw = price - distance if long else price + distance
    stop = round_to_tick(raw, order.instrument.tick_size, up=not long)
    if stop <= 0:
        return None, f"the stop ({how}) would be at or below zero"
    return stop, how


def _target_candidate(
    order: _Order, rule: Rule, quantity: float, stop: float | None
) -> tuple[float | None, str]:
    mode = _param(rule, "mode")
    value = float(_param(rule, "value"))
    price = order.price
    long = order.buy
    if mode == "rr":
        if stop is None:
            return None, "a reward/risk target needs a stop loss and the order has none"
        distance = value * abs(price - stop)
        how = f"{value:g} x the stop distance {abs(price - stop):g}"
    elif mode == "money":
        distance = value / quantity
        how = f"{_money(value)} over {_qty(quantity)} units"
    else:
        distance = price * value / 100.0
        how = f"{value:g}% of {_price(price)}"
    raw = price + distance if long else price - distance
    target = round_to_tick(raw, order.instrument.tick_size, up=long)
    if target <= 0:
        return None, f"the target ({how}) would be at or below zero"
    return target, how


def _protective(
    order: _Order, rules: Sequence[Rule], quantity: float, checks: list[CheckResult]
) -> tuple[float | None, float | None]:
    """Append the stop/target checks for an order of `quantity`; return (stop, target)."""
    proposal = order.proposal
    stop = proposal.stop_loss_price
    target = proposal.take_profit_price
    stop_rules = [r for r in rules if r.type == RuleType.STOP_LOSS]
    target_rules = [r for r in rules if r.type == RuleType.TAKE_PROFIT]
    if order.is_reducing(quantity):
        for rule in (*stop_rules, *target_rules):
            checks.append(
                _rule_result(
                    rule,
                    R.OK,
                    failed=False,
                    message="The order reduces a position, so no stop or target is attached.",
                    measured=False,
                )
            )
        return stop, target
    long = order.buy
    price = order.price
    side = "below" if long else "above"
    other = "above" if long else "below"
    if stop is not None or target is not None:
        invalid = False
        if stop is not None and not (
            _is_number(stop) and stop > 0 and (stop < price if long else stop > price)
        ):
            checks.append(
                _builtin(
                    "protective_prices",
                    R.INVALID_STOP_LOSS,
                    f"The stop loss {stop:g} must be {side} the entry {_price(price)} "
                    f"for a {'long' if long else 'short'} entry.",
                )
            )
            invalid = True
        if target is not None and not (
            _is_number(target) and target > 0 and (target > price if long else target < price)
        ):
            checks.append(
                _builtin(
                    "protective_prices",
                    R.INVALID_TAKE_PROFIT,
                    f"The take profit {target:g} must be {other} the entry {_price(price)} "
                    f"for a {'long' if long else 'short'} entry.",
                )
            )
            invalid = True
        if invalid:
            return None, None
        checks.append(
            _builtin("protective_prices", R.OK, "The given stop loss / take profit are valid.")
        )

    if stop_rules:
        candidates = []
        for rule in stop_rules:
            candidate, how = _stop_candidate(order, rule, quantity)
            if candidate is None:
                if stop is not None:
                    text = f"The order's stop loss {_price(stop)} is kept ({how})."
                    checks.append(
                        _rule_result(rule, R.OK, failed=False, message=text, measured=False)
                    )
                    continue
                checks.append(
                    _rule_result(
                        rule,
                        R.STOP_LOSS_UNAVAILABLE,
                        failed=True,
                        message=f"No stop loss can be attached to {order.symbol}: {how}.",
                        measured=False,
                    )
                )
                continue
            candidates.append(candidate)
            if stop is not None:
                text = (
                    f"The order's stop loss {_price(stop)} is kept (this rule would set "
                    f"{_price(candidate)}, {how} {side} the entry)."
                )
            else:
                text = f"Stop loss {_price(candidate)} attached ({how} {side} the entry)."
            checks.append(
                _rule_result(
                    rule, R.OK, failed=False, message=text, value=candidate, measured=False
                )
            )
        if stop is None and candidates:
            # The tightest stop keeps the risk within every rule.
            stop = max(candidates) if long else min(candidates)

    if target_rules:
        candidates = []
        for rule in target_rules:
            candidate, how = _target_candidate(order, rule, quantity, stop)
            if candidate is None:
                if target is not None:
                    text = f"The order's take profit {_price(target)} is kept ({how})."
                    checks.append(
                        _rule_result(rule, R.OK, failed=False, message=text, measured=False)
                    )
                    continue
                checks.append(
                    _rule_result(
                        rule,
                        R.TAKE_PROFIT_UNAVAILABLE,
                        failed=True,
                        message=f"No take profit can be attached to {order.symbol}: {how}.",
                        measured=False,
                    )
                )
                continue
            candidates.append(candidate)
            if target is not None:
                text = (
                    f"The order's take profit {_price(target)} is kept (this rule would set "
                    f"{_price(candidate)})."
                )
            else:
                text = f"Take profit {_price(candidate)} attached ({how} {other} the entry)."
            checks.append(
                _rule_result(
                    rule, R.OK, failed=False, message=text, value=candidate, measured=False
                )
            )
        if target is None and candidates:
            target = min(candidates) if long else max(candidates)
    return stop, target


# --------------------------------------------------------------------------- entry points


def _blocking_bound(checks: Iterable[CheckResult]) -> tuple[bool, float | None]:
    """(any blocking failure, smallest max_quantity or None if one of them has none)."""
    failed = False
    bound: float | None = math.inf
    for check in checks:
        if check.passed or check.action != _BLOCK:
            continue
        failed = True
        if check.max_quantity is None:
            bound = None
        elif bound is not None and check.max_quantity < bound:
            bound = check.max_quantity
    return failed, bound


def evaluate_order(
    proposal: OrderProposal,
    portfolio: PortfolioSnapshot,
    market: MarketSnapshot,
    rules: Iterable[Rule],
    *,
    now: datetime,
    limits: EngineLimits = DEFAULT_LIMITS,
) -> Decision:
    """Check one order against the account's state and rules; see the module docstring."""
    checks: list[CheckResult] = []
    instrument = market.instruments.get(proposal.symbol)
    if not _validate_inputs(proposal, instrument, checks):
        checks.insert(0, _check_state(None, portfolio))
        return _rejected(proposal, checks)
    assert instrument is not None
    book = _book(portfolio, market, True)
    order = _Order(proposal, instrument, portfolio, book, now)

    checks.append(_check_state(order, portfolio))
    _grid_checks(order, checks)
    recent = portfolio.recent_submissions
    per_minute = limits.max_orders_per_minute
    if recent >= per_minute:
        checks.append(
            _builtin(
                "rate_limit",
                R.ORDER_RATE_LIMIT,
                f"{recent} orders were submitted in the last minute; the limit is {per_minute}.",
                value=float(recent),
                limit=float(per_minute),
            )
        )
    else:
        checks.append(
            _builtin(
                "rate_limit",
                R.OK,
                f"{recent} orders in the last minute; the limit is {per_minute}.",
                value=float(recent),
                limit=float(per_minute),
            )
        )
    if proposal.reduce_only:
        if order.reducing:
            checks.append(_builtin("reduce_only", R.OK, "The order only reduces a position."))
        else:
            bound = order.closing_bound
            checks.append(
                _builtin(
                    "reduce_only",
                    R.REDUCE_ONLY_WOULD_INCREASE,
                    f"The order is reduce-only but would add to or open a position in "
                    f"{proposal.symbol}." + order.reduce_hint(bound),
                    max_quantity=bound,
                )
            )
    checks.append(_check_buying_power(order, limits))

    strategy_id = proposal.strategy_id
    protective_rules = []
    for rule in rules:
        # Inline `rules.rule_applies` (this loop is the hot path).
        if not rule.enabled or (rule.strategy_id is not None and rule.strategy_id != strategy_id):
            continue
        check = _ORDER_CHECKS.get(rule.type)
        if check is None:
            if rule.type in _PROTECTIVE:
                protective_rules.append(rule)
            continue
        checks.append(check(order, rule))

    requested = proposal.quantity
    failed, bound = _blocking_bound(checks)
    quantity = requested
    outcome = Outcome.APPROVED
    if failed:
        lot = order.lot
        reduced = None
        if bound is not None and proposal.allow_reduce:
            reduced = floor_to_step(min(bound, requested), lot) if lot else bound
            if reduced <= 0 or (lot and reduced < lot) or reduced >= requested:
                reduced = None
        if reduced is None:
            outcome = Outcome.REJECTED
        else:
            outcome, quantity = Outcome.REDUCED, reduced

    first_protective = len(checks)
    stop, target = _protective(order, protective_rules, quantity, checks)
    if outcome is not Outcome.REJECTED and _blocking_bound(checks[first_protective:])[0]:
        # Stops and targets cannot be fixed by a smaller quantity.
        outcome = Outcome.REJECTED
    if outcome is Outcome.REJECTED:
        return Decision(Outcome.REJECTED, requested, 0.0, tuple(checks))
    return Decision(outcome, requested, quantity, tuple(checks), stop, target)


def evaluate_account(
    portfolio: PortfolioSnapshot,
    market: MarketSnapshot,
    rules: Iterable[Rule],
    *,
    now: datetime,
) -> tuple[CheckResult, ...]:
    """The account-level rules on the holdings as they stand (pending orders not counted),
    for monitoring: daily loss, drawdown, leverage, position count, sector limits and the
    per-symbol position size. Every enabled rule is measured, whatever its strategy scope.

    Severity: OK; WARNING at the warning level or for a failed WARN rule; BREACH for a failed
    blocking rule; CRITICAL when the service should halt the account (drawdown reached, or
    daily loss reached with halt_on_breach). Position-size and sector rules report every
    symbol/sector at warning level or beyond, else one OK result for the largest.
    `now` is accepted for time-dependent rules and currently unused.
    """
    del now  # no account-level rule depends on time yet
    book = _book(portfolio, market, False)
    equity = portfolio.equity
    results: list[CheckResult] = []
    for rule in rules:
        if not rule.enabled:
            continue
        kind = rule.type
        if kind == RuleType.DAILY_LOSS:
            value, limit, text, breached = _daily_loss(portfolio, rule)
            results.append(
                _rule_result(
                    rule,
                    R.DAILY_LOSS_LIMIT,
                    failed=breached,
                    message=text,
                    value=value,
                    limit=limit,
                    critical=bool(_param(rule, "halt_on_breach")),
                )
            )
        elif kind == RuleType.MAX_DRAWDOWN:
            value, limit, text, breached = _drawdown(portfolio, rule)
            results.append(
                _rule_result(
                    rule,
                    R.MAX_DRAWDOWN_EXCEEDED,
                    failed=breached,
                    message=text,
                    value=value,
                    limit=limit,
                    critical=True,
                )
            )
        elif kind == RuleType.LEVERAGE:
            limit = float(_param(rule, "max_leverage"))
            if equity <= 0:
                results.append(
                    _rule_result(
                        rule,
                        R.LEVERAGE_EXCEEDED,
                        failed=book.gross > 0,
                        message=f"Equity is {_money(equity)} with gross exposure "
                        f"{_money(book.gross)}.",
                        limit=limit,
                    )
                )
                continue
            value = book.gross / equity
            results.append(
                _rule_result(
                    rule,
                    R.LEVERAGE_EXCEEDED,
                    failed=_over(value, limit),
                    message=f"Gross exposure is {_money(book.gross)}, {value:.2f}x equity; "
                    f"the limit is {limit:g}x.",
                    value=value,
                    limit=limit,
                )
            )
        elif kind == RuleType.POSITION_LIMIT:
            limit = int(_param(rule, "max_positions"))
            count = book.open_count
            results.append(
                _rule_result(
                    rule,
                    R.POSITION_LIMIT_EXCEEDED,
                    failed=count > limit,
                    message=f"{count} positions are open; the limit is {limit}.",
                    value=float(count),
                    limit=float(limit),
                )
            )
        elif kind == RuleType.SECTOR_LIMIT:
            results.extend(_account_sectors(book, rule, equity))
        elif kind == RuleType.MAX_POSITION_SIZE:
            results.extend(_account_positions(book, rule, equity))
    return tuple(results)


def _account_sectors(book: _Book, rule: Rule, equity: float) -> list[CheckResult]:
    limit = float(_param(rule, "limit_pct"))
    level = rule.warning_level if rule.warning_level is not None else 1.0
    measured = []
    sector_gross: dict[str, float] = {}
    for row in book.all_rows.values():
        sector_gross[row.sector] = sector_gross.get(row.sector, 0.0) + row.exposure
    for sector, gross in sector_gross.items():
        if not sector or gross <= 0:
            continue
        value = gross / equity * 100.0 if equity > 0 else math.inf
        measured.append((value, sector, gross))
    measured.sort(reverse=True)
    shown = [m for m in measured if _reached(m[0], level * limit)] or measured[:1]
    results = []
    for value, sector, gross in shown:
        finite = math.isfinite(value)
        results.append(
            _rule_result(
                rule,
                R.SECTOR_LIMIT_EXCEEDED,
                subject=sector,
                failed=_over(value, limit),
                message=f"Exposure to {sector} is {_money(gross)}"
                + (f", {_num(value)}% of equity" if finite else " with no positive equity")
                + f"; the limit is {_num(limit)}%.",
                value=value if finite else None,
                limit=limit,
            )
        )
    return results


def _account_positions(book: _Book, rule: Rule, equity: float) -> list[CheckResult]:
    mode = _param(rule, "mode")
    limit = float(_param(rule, "limit"))
    level = rule.warning_level if rule.warning_level is not None else 1.0
    measured = []
    for symbol, row in book.all_rows.items():
        if not row.is_open:
            continue
        exposure, mark = row.exposure, row.mark
        if mode == "units":
            value = exposure / mark if mark else 0.0
        elif mode == "money":
            value = exposure
        else:
            value = exposure / equity * 100.0 if equity > 0 else math.inf
        measured.append((value, symbol))
    measured.sort(reverse=True)
    shown = [m for m in measured if _reached(m[0], level * limit)] or measured[:1]
    results = []
    for value, symbol in shown:
        if mode == "units":
            text = f"Position in {symbol} is {_qty(value)} units; the limit is {_qty(limit)}."
        elif mode == "money":
            text = f"Position in {symbol} is worth {_money(value)}; the limit is {_money(limit)}."
        elif math.isfinite(value):
            text = f"Position in {symbol} is {_num(value)}% of equity; the limit is {_num(limit)}%."
        else:
            text = f"Position in {symbol} is open with no positive equity."
        results.append(
            _rule_result(
                rule,
                R.MAX_POSITION_SIZE_EXCEEDED,
                subject=symbol,
                failed=_over(value, limit),
                message=text,
                value=value if math.isfinite(value) else None,
                limit=limit,
            )
        )
    return results


def stop_triggered(holding: Holding) -> bool:
    """Whether the last price crossed the holding's stop loss (at or beyond it)."""
    stop = holding.stop_loss_price
    if stop is None or holding.quantity == 0:
        return False
    return holding.last_price <= stop if holding.quantity > 0 else holding.last_price >= stop


def take_profit_triggered(holding: Holding) -> bool:
    """Whether the last price reached the holding's take profit."""
    target = holding.take_profit_price
    if target is None or holding.quantity == 0:
        return False
    return holding.last_price >= target if holding.quantity > 0 else holding.last_price <= target


def protective_exits(portfolio: PortfolioSnapshot) -> list[ProtectiveExit]:
    """Holdings whose last price crossed their stop loss or take profit, with the order that
    closes each (a stop wins when both are crossed). The service should skip symbols that
    already have a closing order working."""
    exits = []
    for holding in portfolio.holdings:
        if stop_triggered(holding):
            kind, trigger = "stop_loss", holding.stop_loss_price
        elif take_profit_triggered(holding):
            kind, trigger = "take_profit", holding.take_profit_price
        else:
            continue
        assert trigger is not None
        exits.append(
            ProtectiveExit(
                symbol=holding.symbol,
                kind=kind,
                trigger_price=trigger,
                last_price=holding.last_price,
                quantity=abs(holding.quantity),
                side="sell" if holding.quantity > 0 else "buy",
            )
        )
    return exits
