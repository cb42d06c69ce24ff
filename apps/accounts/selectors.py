"""Reads about trading accounts: valuation (equity from cash and positions) and listings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet

from apps.accounts.models import TradingAccount, User
from apps.execution.domain.positions import q_money


@dataclass(frozen=True)
class PositionValuation:
    position_id: int
    symbol: str
    sector: str
    quantity: Decimal
    average_price: Decimal
    last_price: Decimal
    market_value: Decimal  # signed: shorts are negative
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    priced: bool  # False when no market price exists yet and the average price stands in

    @property
    def unrealized_pct(self) -> Decimal | None:
        cost = abs(self.quantity * self.average_price)
        return (self.unrealized_pnl / cost * 100).quantize(Decimal("0.01")) if cost else None


@dataclass(frozen=True)
class AccountValuation:
    account_id: int
    currency: str
    cash: Decimal
    positions_value: Decimal
    equity: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    gross_exposure: Decimal
    positions: tuple[PositionValuation, ...]
    start_of_day_equity: Decimal | None
    high_water_mark: Decimal | None

    @property
    def day_pnl(self) -> Decimal | None:
        if self.start_of_day_equity is None:
            return None
        return q_money(self.equity - self.start_of_day_equity)

    @property
    def drawdown_pct(self) -> Decimal | None:
        """How far equity is below its high-water mark, in percent (0 at a new high)."""
        if not self.high_water_mark:
            return None
        peak = max(self.high_water_mark, self.equity)
        return ((peak - self.equity) / peak * 100).quantize(Decimal("0.01"))


def accounts_for_user(*, user: User) -> QuerySet[TradingAccount]:
    return TradingAccount.objects.filter(owner=user).order_by("id")


def position_valuation(*, position) -> PositionValuation:
    """One position valued at its instrument's last price (the average price stands in while
    the instrument has no price yet). Load ``position.instrument`` with ``select_related``."""
    last = position.instrument.last_price
    priced = last is not None
    price = last if priced else position.average_price
    return PositionValuation(
        position_id=position.pk,
        symbol=position.instrument.symbol,
        sector=position.instrument.sector,
        quantity=position.quantity,
        average_price=position.average_price,
        last_price=price,
        market_value=q_money(position.quantity * price),
        unrealized_pnl=q_money(position.quantity * (price - position.average_price)),
        realized_pnl=position.realized_pnl,
        priced=priced,
    )


def account_valuation(*, account: TradingAccount) -> AccountValuation:
    """Equity = cash + market value of every open position at its instrument's last price."""
    from apps.execution.models import Position

    # One query: open positions are valued, flat ones still count for the realised PnL.
    positions = (
        Position.objects.filter(account=account)
        .select_related("instrument")
        .order_by("instrument__symbol")
    )
    return valuation_of(account=account, positions=positions)


def valuation_of(*, account: TradingAccount, positions) -> AccountValuation:
    """``account_valuation`` of positions already loaded (with their instruments), in symbol
    order: a batch keeps them in memory while it trades."""
    rows: list[PositionValuation] = []
    value = unrealized = gross = realized_total = Decimal("0")
    for position in positions:
        realized_total += position.realized_pnl
        if position.quantity == 0:
            continue
        row = position_valuation(position=position)
        rows.append(row)
        value += row.market_value
        unrealized += row.unrealized_pnl
        gross += abs(row.market_value)
    return AccountValuation(
        account_id=account.pk,
        currency=account.currency,
        cash=account.cash,
        positions_value=value,
        equity=q_money(account.cash + value),
        unrealized_pnl=unrealized,
        realized_pnl=q_money(realized_total),
        gross_exposure=gross,
        positions=tuple(rows),
        start_of_day_equity=account.start_of_day_equity,
        high_water_mark=account.high_water_mark,
    )


# --- pages: account overviews, positions and the dashboard ---------------------------------


@dataclass(frozen=True)
class AccountOverview:
    account: TradingAccount
    valuation: AccountValuation


@dataclass(frozen=True)
class PositionRow:
    account: TradingAccount
    position: PositionValuation


def account_overviews_for_user(
    *, user: User, account: TradingAccount | None = None
) -> list[AccountOverview]:
    """Each of the user's accounts (or only ``account``) with its valuation."""
    accounts = accounts_for_user(user=user)
    if account is not None:
        accounts = accounts.filter(pk=account.pk)
    return [AccountOverview(a, account_valuation(account=a)) for a in accounts]


def position_rows_for_user(
    *, user: User, account: TradingAccount | None = None
) -> list[PositionRow]:
    """Open positions valued at last prices, account by account, symbols in order."""
    return [
        PositionRow(overview.account, position)
        for overview in account_overviews_for_user(user=user, account=account)
        for position in overview.valuation.positions
    ]


@dataclass(frozen=True)
class EquityPoint:
    taken_at: datetime
    equity: Decimal
    high_water_mark: Decimal


def equity_curve(*, account: TradingAccount, last: int = 500) -> list[EquityPoint]:
    """The most recent ``last`` equity snapshots of the account, oldest first."""
    from apps.accounts.models import EquitySnapshot

    rows = list(
        EquitySnapshot.objects.filter(account=account)
        .order_by("-taken_at", "-id")
        .values_list("taken_at", "equity", "high_water_mark")[:last]
    )
    rows.reverse()
    return [EquityPoint(*row) for row in rows]


@dataclass(frozen=True)
class Dashboard:
    account: TradingAccount
    valuation: AccountValuation
    recent_orders: list
    equity_curve: list[EquityPoint]

    @property
    def position_rows(self) -> list[PositionRow]:
        return [PositionRow(self.account, position) for position in self.valuation.positions]


def dashboard_for_account(*, account: TradingAccount, recent: int = 10) -> Dashboard:
    """What the dashboard shows for one account: valuation, recent orders and equity curve."""
    from apps.execution.selectors import orders_for_user

    orders = list(orders_for_user(user=account.owner_id).filter(account=account)[:recent])
    return Dashboard(
        account=account,
        valuation=account_valuation(account=account),
        recent_orders=orders,
        equity_curve=equity_curve(account=account),
    )


@dataclass(frozen=True)
class PositionTotals:
    market_value: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal


def position_totals(rows: list[PositionRow]) -> PositionTotals:
    zero = Decimal("0")
    return PositionTotals(
        market_value=sum((row.position.market_value for row in rows), zero),
        unrealized_pnl=sum((row.position.unrealized_pnl for row in rows), zero),
        realized_pnl=sum((row.position.realized_pnl for row in rows), zero),
    )
