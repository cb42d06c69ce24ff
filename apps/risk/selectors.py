"""Fetch: the snapshots the pure risk engine decides on, built from the database.

``portfolio_snapshot`` reads one account (positions at last prices, open orders' remainders,
equity marks, recent submissions, recent stop-outs); ``market_snapshot`` reads the instruments
involved plus, only when a rule needs them, daily returns (correlation, VaR) and ATR (stops).
Daily series are cached per symbol and day, so a pre-trade check stays a handful of queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np
from django.core.cache import cache
from django.db.models import F, FloatField, Q, QuerySet
from django.db.models.functions import Cast

from apps.accounts.models import TradingAccount
from apps.analytics.domain.indicators import atr as atr_indicator
from apps.core import sql
from apps.execution.models import OPEN_STATUSES, Order, OrderSource, Position
from apps.marketdata.models import Bar, Instrument
from apps.risk.domain.types import (
    EngineLimits,
    Holding,
    InstrumentInfo,
    MarketSnapshot,
    PendingOrder,
    PortfolioSnapshot,
    Rule,
    RuleType,
    TradingState,
)
from apps.risk.models import RiskEvent, RiskRule

RATE_WINDOW = timedelta(minutes=1)
# The engine caches its standardized correlation windows by the identity of the returns
# mapping, so the same (day, symbols) must give the very same object: a process-local memo
# keeps it (the mapping is treated as immutable).
_RETURNS_MEMO: dict[tuple, dict[str, np.ndarray]] = {}
_RETURNS_MEMO_SIZE = 256
STOP_OUT_WINDOW = timedelta(days=1)
ATR_PERIOD = 14
DEFAULT_LOOKBACK = 250


def rules_for_account(*, account: TradingAccount) -> list[Rule]:
    """The account's enabled rules as engine rules (strategy-scoped ones included)."""
    if not sql.is_postgresql():
        return [rule_from_model(rule) for rule in active_rules(account=account)]
    # Read for every order (sizing and the pre-trade check): written out (apps.core.sql).
    rows = sql.fetchall(
        f"SELECT {sql.columns('r', RiskRule)} FROM {sql.table(RiskRule)} r "
        "WHERE r.account_id = %s AND r.enabled ORDER BY r.id",
        [account.pk],
    )
    return [rule_from_model(sql.instance(RiskRule, row)) for row in rows]


def active_rules(*, account: TradingAccount) -> QuerySet[RiskRule]:
    return RiskRule.objects.filter(account=account, enabled=True).order_by("id")


def rule_from_model(rule: RiskRule) -> Rule:
    return Rule(
        id=rule.pk,
        type=RuleType(rule.rule_type),
        params=rule.params,
        action=rule.action,
        warning_level=float(rule.warning_level) if rule.warning_level is not None else None,
        strategy_id=rule.strategy_id,
        enabled=rule.enabled,
        name=rule.name,
    )


def portfolio_snapshot(
    *, account: TradingAccount, now: datetime, with_stop_outs: bool = True
) -> PortfolioSnapshot:
    """What the engine measures an order against. ``with_stop_outs`` reads recent stop-outs,
    which only the cool-down rule needs (the pre-trade check leaves it out without one)."""
    # One query for the holdings, plain values (no model instances: this runs before every
    # order), and one for the orders the engine needs: the open remainders (pending), how
    # many were submitted in the last minute (rate limit; counted by the database, never
    # loaded: a busy strategy submits thousands a minute), and the recent stop-outs
    # (cool-down; only asked for when a cool-down rule exists).
    recent, rows = order_rows(
        account.pk,
        recent_since=now - RATE_WINDOW,
        stop_outs_since=now - STOP_OUT_WINDOW if with_stop_outs else None,
    )
    return portfolio_from(
        account=account,
        holdings=_holding_rows(account.pk),
        recent_submissions=recent,
        orders=rows,
        with_stop_outs=with_stop_outs,
    )


def portfolio_from(
    *,
    account: TradingAccount,
    holdings: Iterable[tuple],
    recent_submissions: int,
    orders: Iterable[tuple],
    with_stop_outs: bool,
) -> PortfolioSnapshot:
    """The snapshot from rows as ``_holding_rows`` and ``order_rows`` give them (a batch of
    signals keeps them in memory and builds one per order)."""
    # Valued the way account_valuation values them, at the last price (the average price
    # without one).
    positions = []
    equity = float(account.cash)
    for symbol, sector, quantity, average, last, stop, target in holdings:
        price = last if last is not None else average
        equity += quantity * price
        positions.append(
            Holding(
                symbol=symbol,
                quantity=quantity,
                average_price=average,
                last_price=price,
                sector=sector,
                stop_loss_price=stop,
                take_profit_price=target,
            )
        )
    pending: list[PendingOrder] = []
    stop_outs: dict[str, datetime] = {}
    for symbol, side, quantity, filled, limit, stop, last, status, filled_at in orders:
        if status in OPEN_STATUSES and quantity != filled:
            pending.append(
                PendingOrder(
                    symbol=symbol,
                    side=side,
                    quantity=float(quantity - filled),
                    price=float(limit or stop or last or 0),
                )
            )
        elif with_stop_outs and status == "filled" and filled_at is not None:
            stop_outs[symbol] = filled_at  # ordered by fill time: the latest wins
    return PortfolioSnapshot(
        equity=equity,
        cash=float(account.cash),
        start_of_day_equity=_float(account.start_of_day_equity),
        high_water_mark=_float(account.high_water_mark),
        state=TradingState(account.status),
        holdings=tuple(positions),
        pending=tuple(pending),
        recent_submissions=recent_submissions,
        last_stop_out=stop_outs,
    )


# The two reads of every pre-trade check, written out on PostgreSQL (see apps.core.sql); the
# ORM builds the same statements elsewhere.

_HOLDING_COLUMNS = (
    "instrument__symbol",
    "instrument__sector",
    # Floats straight from the database: the engine works in float64, and decoding a few
    # hundred Decimals per check costs more than the query.
    "quantity",
    "average_price",
    "instrument__last_price",
    "stop_loss_price",
    "take_profit_price",
)
_ORDER_COLUMNS = (
    "instrument__symbol", "side", "quantity", "filled_quantity", "limit_price", "stop_price",
    "instrument__last_price", "status", "filled_at",
)  # fmt: skip


def _holding_rows(account_id: int) -> list[tuple]:
    """The account's non-flat positions as (symbol, sector, quantity, average price, last
    price, stop, target), floats, by symbol."""
    if not sql.is_postgresql():
        floats = [name if i < 2 else AsFloat(name) for i, name in enumerate(_HOLDING_COLUMNS)]
        return list(
            Position.objects.filter(account_id=account_id)
            .exclude(quantity=0)
            .order_by("instrument__symbol")
            .values_list(*floats)
        )
    return sql.fetchall(
        "SELECT i.symbol, i.sector, p.quantity::float8, p.average_price::float8, "
        "i.last_price::float8, p.stop_loss_price::float8, p.take_profit_price::float8 "
        f"FROM {sql.table(Position)} p JOIN {sql.table(Instrument)} i ON i.id = p.instrument_id "
        "WHERE p.account_id = %s AND p.quantity <> 0 ORDER BY i.symbol",
        [account_id],
    )


def order_rows(
    account_id: int, *, recent_since: datetime, stop_outs_since: datetime | None
) -> tuple[int, list[tuple]]:
    """How many orders were submitted since ``recent_since`` (rate limit), and in the same
    statement the orders the engine looks at one by one: open remainders (pending) and
    stop-loss exits since ``stop_outs_since`` (cool-down; None leaves them out), by fill
    time, as ``_ORDER_COLUMNS``."""
    if not sql.is_postgresql():
        recent = Order.objects.filter(account_id=account_id, created_at__gte=recent_since).count()
        wanted = Q(status__in=OPEN_STATUSES) & ~Q(quantity=F("filled_quantity"))
        if stop_outs_since is not None:
            wanted |= Q(
                source=OrderSource.RISK,
                protective_kind="stop_loss",
                status="filled",
                filled_at__gte=stop_outs_since,
            )
        rows = (
            Order.objects.filter(account_id=account_id)
            .filter(wanted)
            .order_by("filled_at", "id")
            .values_list(*_ORDER_COLUMNS)
        )
        return recent, list(rows)
    conditions = "(o.status = ANY(%s) AND o.quantity <> o.filled_quantity)"
    params: list = [account_id, recent_since, account_id, list(OPEN_STATUSES)]
    if stop_outs_since is not None:
        conditions += (
            " OR (o.source = %s AND o.protective_kind = %s AND o.status = %s AND o.filled_at >= %s)"
        )
        params += [OrderSource.RISK, "stop_loss", "filled", stop_outs_since]
    # The count rides on every row (and on one row of NULLs when no order qualifies).
    rows = sql.fetchall(
        f"SELECT r.n, w.* FROM (SELECT count(*) AS n FROM {sql.table(Order)} "
        "WHERE account_id = %s AND created_at >= %s) r LEFT JOIN ("
        "SELECT i.symbol, o.side, o.quantity, o.filled_quantity, o.limit_price, o.stop_price, "
        "i.last_price, o.status, o.filled_at, o.id "
        f"FROM {sql.table(Order)} o JOIN {sql.table(Instrument)} i ON i.id = o.instrument_id "
        f"WHERE o.account_id = %s AND ({conditions})) w ON true ORDER BY w.filled_at, w.id",
        params,
    )
    recent = rows[0][0]
    return recent, [row[1:-1] for row in rows if row[1] is not None]


def AsFloat(field: str) -> Cast:
    return Cast(field, FloatField())


def _float(value) -> float | None:
    return float(value) if value is not None else None


def _compute_daily_series(instrument_id: int, lookback: int) -> dict:
    rows = list(
        Bar.objects.filter(instrument_id=instrument_id, timeframe="1d")
        .order_by("-ts")
        .values_list("ts", "high", "low", "close")[: lookback + 1]
    )
    rows.reverse()
    if len(rows) < 2:
        return {"dates": np.array([]), "returns": np.array([]), "atr": None}
    stamps = np.array([r[0].date().isoformat() for r in rows])
    high, low, close = (np.array([r[i] for r in rows], dtype="float64") for i in (1, 2, 3))
    atr_values = atr_indicator(high, low, close, ATR_PERIOD)
    return {
        "dates": stamps[1:],
        "returns": np.diff(close) / close[:-1],
        "atr": float(atr_values[-1]) if np.isfinite(atr_values[-1]) else None,
    }


# Daily series change once a day: a process-local memo in front of the shared cache, so a
# pre-trade check over a hundred holdings makes no round trip for them at all.
_SERIES_MEMO: dict[tuple[int, str, int], dict] = {}
_SERIES_MEMO_SIZE = 5000


def daily_series(instrument_ids: Iterable[int], day: str, lookback: int) -> dict[int, dict]:
    """Daily returns and ATR per instrument, from the memo, the cache (one round trip for all
    misses) or the database (then cached for the day)."""
    found: dict[int, dict] = {}
    missing = []
    for pk in instrument_ids:
        hit = _SERIES_MEMO.get((pk, day, lookback))
        if hit is None:
            missing.append(pk)
        else:
            found[pk] = hit
    if missing:
        keys = {f"risk:daily:{pk}:{day}:{lookback}": pk for pk in missing}
        cached = cache.get_many(list(keys))
        fresh = {}
        for key, pk in keys.items():
            data = cached.get(key)
            if data is None:
                data = fresh[key] = _compute_daily_series(pk, lookback)
            found[pk] = data
        if fresh:
            cache.set_many(fresh, timeout=6 * 3600)
        if len(_SERIES_MEMO) + len(missing) > _SERIES_MEMO_SIZE:
            _SERIES_MEMO.clear()
        for pk in missing:
            _SERIES_MEMO[(pk, day, lookback)] = found[pk]
    return found


def market_snapshot(
    *,
    symbols: Iterable[str],
    now: datetime,
    with_returns: bool = False,
    with_atr: bool = False,
    atr_symbols: Iterable[str] | None = None,
    lookback: int = DEFAULT_LOOKBACK,
) -> MarketSnapshot:
    """The instruments involved; with ``with_returns`` their aligned daily returns (for
    correlation and VaR), with ``with_atr`` the daily ATR of ``atr_symbols`` (default all)."""
    wanted = tuple(sorted(set(symbols)))
    rows = _instrument_rows(wanted)
    day = now.date().isoformat()
    memo_key = (day, lookback, wanted)
    returns = _RETURNS_MEMO.get(memo_key) if with_returns else {}
    atr_wanted = set(atr_symbols) if atr_symbols is not None else set(wanted)
    series_ids = [
        pk
        for pk, symbol, *_ in rows
        if (with_returns and returns is None) or (with_atr and symbol in atr_wanted)
    ]
    series = daily_series(series_ids, day, lookback) if series_ids else {}
    instruments = {}
    for pk, symbol, sector, tradable, lot_size, tick_size, last_price in rows:
        data = series.get(pk)
        instruments[symbol] = InstrumentInfo(
            symbol=symbol,
            sector=sector,
            tradable=tradable,
            lot_size=lot_size,
            tick_size=tick_size,
            last_price=last_price,
            atr=data["atr"] if (data and with_atr and symbol in atr_wanted) else None,
        )
    if with_returns and returns is None:
        by_symbol = {
            symbol: series[pk]
            for pk, symbol, *_ in rows
            if pk in series and len(series[pk]["returns"])
        }
        if len(_RETURNS_MEMO) >= _RETURNS_MEMO_SIZE:
            _RETURNS_MEMO.clear()
        returns = _RETURNS_MEMO[memo_key] = _aligned_returns(by_symbol)
    return MarketSnapshot(instruments=instruments, returns=returns or {})


def _instrument_rows(symbols: tuple[str, ...]) -> list[tuple]:
    """(pk, symbol, sector, tradable, lot size, tick size, last price) of the instruments."""
    if not sql.is_postgresql():
        return list(
            Instrument.objects.filter(symbol__in=symbols).values_list(
                "pk",
                "symbol",
                "sector",
                "tradable",
                AsFloat("lot_size"),
                AsFloat("tick_size"),
                AsFloat("last_price"),
            )
        )
    return sql.fetchall(
        "SELECT id, symbol, sector, tradable, lot_size::float8, tick_size::float8, "
        f"last_price::float8 FROM {sql.table(Instrument)} WHERE symbol = ANY(%s)",
        [list(symbols)],
    )


def _aligned_returns(series: dict[str, dict]) -> dict[str, np.ndarray]:
    """Returns of every symbol on the dates they all share (oldest first)."""
    if not series:
        return {}
    common = None
    for data in series.values():
        dates = set(data["dates"].tolist())
        common = dates if common is None else common & dates
    ordered = sorted(common or ())
    out = {}
    for symbol, data in series.items():
        index = {d: i for i, d in enumerate(data["dates"].tolist())}
        out[symbol] = np.array([data["returns"][index[d]] for d in ordered], dtype="float64")
    return out


def needs_market_history(rules: Iterable[Rule]) -> tuple[bool, bool]:
    """Whether the rules need daily returns (correlation) and ATR (ATR stops)."""
    returns = atr = False
    for rule in rules:
        if rule.type is RuleType.CORRELATION:
            returns = True
        if rule.type is RuleType.STOP_LOSS and rule.params.get("mode") == "atr":
            atr = True
    return returns, atr


def engine_limits() -> EngineLimits:
    from django.conf import settings

    return EngineLimits(max_orders_per_minute=settings.RISK_MAX_ORDERS_PER_MINUTE)


def events_for_user(*, user) -> QuerySet[RiskEvent]:
    return RiskEvent.objects.filter(account__owner=user).select_related("account", "rule")


def rules_for_user(*, user) -> QuerySet[RiskRule]:
    return RiskRule.objects.filter(owner=user).select_related("account", "strategy")


def market_memo_clear() -> None:
    """Forget the process-local daily series and return mappings (tests, and after imports
    that rewrite history)."""
    _SERIES_MEMO.clear()
    _RETURNS_MEMO.clear()
