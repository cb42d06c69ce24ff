"""Reads of orders, positions and the journal, always scoped to one user."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Avg, Count, F, Q, QuerySet, Subquery, Sum

from apps.accounts.models import User
from apps.accounts.selectors import position_valuation  # noqa: F401 - part of this module's API
from apps.execution.models import OPEN_STATUSES, Fill, Order, Position, Signal, Tag, Trade


def orders_for_user(*, user: User) -> QuerySet[Order]:
    return (
        Order.objects.filter(account__owner=user)
        .select_related("instrument", "account", "strategy", "signal")
        .order_by("-created_at", "-id")
    )


def open_orders_for_user(*, user: User) -> QuerySet[Order]:
    return orders_for_user(user=user).filter(status__in=OPEN_STATUSES)


def fills_for_user(*, user: User) -> QuerySet[Fill]:
    return Fill.objects.filter(account__owner=user).select_related("instrument", "order")


def positions_for_user(*, user: User, include_flat: bool = False) -> QuerySet[Position]:
    qs = Position.objects.filter(account__owner=user).select_related("instrument", "account")
    if not include_flat:
        qs = qs.exclude(quantity=0)
    return qs.order_by("account_id", "instrument__symbol")


def trades_for_user(*, user: User) -> QuerySet[Trade]:
    return (
        Trade.objects.filter(account__owner=user)
        .select_related("instrument", "account", "strategy")
        .prefetch_related("tags")
        .order_by("-entry_time", "-id")
    )


def tags_for_user(*, user: User) -> QuerySet[Tag]:
    return Tag.objects.filter(owner=user).order_by("name")


def win_rate(winners: int, trades: int) -> Decimal | None:
    """Winning trades as a percentage of the closed trades (one decimal)."""
    if not trades:
        return None
    return (Decimal(winners) / trades * 100).quantize(Decimal("0.1"))


def profit_factor(gross_profit: Decimal, gross_loss: Decimal) -> Decimal | None:
    """Gross profit over gross loss; None without a losing trade (it would be infinite)."""
    if not gross_loss:
        return None
    return (gross_profit / abs(gross_loss)).quantize(Decimal("0.01"))


def expectancy(net_pnl: Decimal, trades: int) -> Decimal | None:
    """Average net PnL per closed trade: win rate x average win - loss rate x average loss."""
    if not trades:
        return None
    return (net_pnl / trades).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class JournalSummary:
    closed_trades: int
    open_trades: int
    winners: int
    losers: int
    net_pnl: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    fees: Decimal
    average_r: Decimal | None = None  # over the closed trades that had a stop

    @property
    def win_rate(self) -> Decimal | None:
        return win_rate(self.winners, self.closed_trades)

    @property
    def profit_factor(self) -> Decimal | None:
        return profit_factor(self.gross_profit, self.gross_loss)

    @property
    def expectancy(self) -> Decimal | None:
        return expectancy(self.net_pnl, self.closed_trades)


def journal_summary(*, trades: QuerySet[Trade]) -> JournalSummary:
    """Summary figures of a (filtered) journal, computed in one SQL aggregate."""
    zero = Decimal("0")
    closed = Q(status=Trade.Status.CLOSED)
    # Aliases must not be model field names: an alias "net_pnl" would shadow the field for
    # the aggregates after it (FieldError "'net_pnl' is an aggregate").
    row = trades.order_by().aggregate(
        closed_trades=Count("id", filter=closed),
        open_trades=Count("id", filter=Q(status=Trade.Status.OPEN)),
        winners=Count("id", filter=closed & Q(net_pnl__gt=0)),
        losers=Count("id", filter=closed & Q(net_pnl__lt=0)),
        total_net_pnl=Sum("net_pnl", filter=closed),
        gross_profit=Sum("net_pnl", filter=closed & Q(net_pnl__gt=0)),
        gross_loss=Sum("net_pnl", filter=closed & Q(net_pnl__lt=0)),
        total_fees=Sum("fees"),
        average_r=Avg("r_multiple", filter=closed),
    )
    return JournalSummary(
        closed_trades=row["closed_trades"],
        open_trades=row["open_trades"],
        winners=row["winners"],
        losers=row["losers"],
        net_pnl=row["total_net_pnl"] or zero,
        gross_profit=row["gross_profit"] or zero,
        gross_loss=row["gross_loss"] or zero,
        fees=row["total_fees"] or zero,
        average_r=_quantize(row["average_r"], "0.01"),
    )


def _quantize(value: Decimal | float | None, places: str) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal(places))


# --- pages: filtered listings -------------------------------------------------------------

OPEN = "open"  # the orders filter value meaning "any open status"


def orders_search(
    *,
    user: User,
    status: str | None = None,
    symbol: str | None = None,
    account_id: int | None = None,
) -> QuerySet[Order]:
    """The user's orders, newest first, narrowed by status (or ``"open"``), symbol, account."""
    qs = orders_for_user(user=user)
    if status == OPEN:
        qs = qs.filter(status__in=OPEN_STATUSES)
    elif status:
        qs = qs.filter(status=status)
    if symbol:
        qs = qs.filter(instrument__symbol=symbol.strip().upper())
    if account_id:
        qs = qs.filter(account_id=account_id)
    return qs


def order_detail_for_user(*, user: User) -> QuerySet[Order]:
    """Orders with their fills and event history loaded, for the order page."""
    return orders_for_user(user=user).prefetch_related("fills", "events")


def trades_search(
    *,
    user: User,
    account_id: int | None = None,
    symbol: str | None = None,
    direction: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    entered_from: datetime | None = None,
    entered_before: datetime | None = None,
    strategy_id: int | None = None,
) -> QuerySet[Trade]:
    """The user's journal narrowed by the page's filters; ``entered_before`` is exclusive."""
    qs = trades_for_user(user=user)
    if account_id:
        qs = qs.filter(account_id=account_id)
    if strategy_id:
        qs = qs.filter(strategy_id=strategy_id)
    if symbol:
        qs = qs.filter(instrument__symbol=symbol.strip().upper())
    if direction:
        qs = qs.filter(direction=direction)
    if status:
        qs = qs.filter(status=status)
    if tag:
        qs = qs.filter(tags__name=tag.strip().lower())
    if entered_from is not None:
        qs = qs.filter(entry_time__gte=entered_from)
    if entered_before is not None:
        qs = qs.filter(entry_time__lt=entered_before)
    return qs


# --- performance attribution ---------------------------------------------------------------

# by -> (the column trades are grouped on, the column that names a group or None)
ATTRIBUTION_DIMENSIONS: dict[str, tuple[str, str | None]] = {
    "strategy": ("strategy_id", "strategy__name"),
    "symbol": ("instrument__symbol", None),
    "direction": ("direction", None),
    "tag": ("tags__name", None),
}
NO_STRATEGY_LABEL = "No strategy (manual)"
UNTAGGED_LABEL = "untagged"


@dataclass(frozen=True)
class AttributionRow:
    """The closed trades of one strategy, symbol, side or tag, summed up."""

    key: str | int | None
    label: str
    trades: int
    winners: int
    losers: int
    net_pnl: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    fees: Decimal
    average_r: Decimal | None  # over the trades that had a stop (``r_trades`` of them)
    r_trades: int

    @property
    def win_rate(self) -> Decimal | None:
        return win_rate(self.winners, self.trades)

    @property
    def profit_factor(self) -> Decimal | None:
        return profit_factor(self.gross_profit, self.gross_loss)

    @property
    def expectancy(self) -> Decimal | None:
        return expectancy(self.net_pnl, self.trades)


def _attribution_label(by: str, key, name: str | None) -> str:
    if by == "strategy":
        return name or NO_STRATEGY_LABEL
    if by == "direction":
        return dict(Trade.Direction.choices).get(key, str(key))
    if by == "tag":
        return key or UNTAGGED_LABEL
    return str(key)


def trade_attribution(*, trades: QuerySet[Trade], by: str) -> list[AttributionRow]:
    """Closed trades of a (filtered) journal grouped by strategy, symbol, direction or tag,
    with count, winners, net PnL, gross profit and loss, fees and average R summed in one SQL
    ``GROUP BY``; best group first. A trade with several tags counts under each of them;
    trades without a strategy or a tag form their own group."""
    if by not in ATTRIBUTION_DIMENSIONS:
        raise ValueError(f"unknown attribution dimension {by!r}")
    key, name = ATTRIBUTION_DIMENSIONS[by]
    # Re-select by id: the filtered queryset may already join the tags (a tag filter), and
    # grouping must see every tag of the trades it kept.
    closed = Trade.objects.filter(
        pk__in=Subquery(trades.order_by().values("pk")), status=Trade.Status.CLOSED
    )
    won, lost = Q(net_pnl__gt=0), Q(net_pnl__lt=0)
    grouped = (
        closed.values(*(key, name) if name else (key,))
        .annotate(
            n_trades=Count("id"),
            n_winners=Count("id", filter=won),
            n_losers=Count("id", filter=lost),
            pnl_net=Sum("net_pnl"),
            pnl_profit=Sum("net_pnl", filter=won),
            pnl_loss=Sum("net_pnl", filter=lost),
            fee_total=Sum("fees"),
            r_avg=Avg("r_multiple"),
            r_count=Count("r_multiple"),
        )
        .order_by(F("pnl_net").desc(), F(key).asc(nulls_last=True))
    )
    zero = Decimal("0")
    return [
        AttributionRow(
            key=row[key],
            label=_attribution_label(by, row[key], row.get(name) if name else None),
            trades=row["n_trades"],
            winners=row["n_winners"],
            losers=row["n_losers"],
            net_pnl=row["pnl_net"] or zero,
            gross_profit=row["pnl_profit"] or zero,
            gross_loss=row["pnl_loss"] or zero,
            fees=row["fee_total"] or zero,
            average_r=_quantize(row["r_avg"], "0.01"),
            r_trades=row["r_count"],
        )
        for row in grouped
    ]


# --- CSV export of the journal ------------------------------------------------------------

JOURNAL_CSV_COLUMNS = (
    "id",
    "account",
    "strategy",
    "symbol",
    "direction",
    "status",
    "entry_time",
    "exit_time",
    "holding_seconds",
    "entry_quantity",
    "entry_price",
    "exit_quantity",
    "exit_price",
    "fees",
    "gross_pnl",
    "net_pnl",
    "return_pct",
    "initial_stop_price",
    "r_multiple",
    "best_price",
    "worst_price",
    "mae",
    "mfe",
    "entry_reason",
    "exit_reason",
    "tags",
    "notes",
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str | None) -> str:
    """Free text for a CSV cell, defused: a leading formula character gets a quote before it."""
    text = value or ""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _csv_number(value: Decimal | None) -> str:
    return "" if value is None else format(value.normalize(), "f")


def _csv_time(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


def _journal_csv_row(trade: Trade) -> list[str]:
    held = trade.holding_time
    return [
        str(trade.pk),
        csv_text(trade.account.name),
        csv_text(trade.strategy.name if trade.strategy else ""),
        csv_text(trade.instrument.symbol),
        trade.direction,
        trade.status,
        _csv_time(trade.entry_time),
        _csv_time(trade.exit_time),
        "" if held is None else str(int(held.total_seconds())),
        _csv_number(trade.entry_quantity),
        _csv_number(trade.entry_price),
        _csv_number(trade.exit_quantity),
        _csv_number(trade.exit_price),
        _csv_number(trade.fees),
        _csv_number(trade.gross_pnl),
        _csv_number(trade.net_pnl),
        _csv_number(trade.return_pct),
        _csv_number(trade.initial_stop_price),
        _csv_number(trade.r_multiple),
        _csv_number(trade.best_price),
        _csv_number(trade.worst_price),
        _csv_number(trade.mae),
        _csv_number(trade.mfe),
        csv_text(trade.entry_reason),
        csv_text(trade.exit_reason),
        csv_text(";".join(tag.name for tag in trade.tags.all())),
        csv_text(trade.notes),
    ]


class _Echo:
    """A file-like object whose ``write`` hands back the line, for streaming csv.writer."""

    def write(self, value: str) -> str:
        return value


JOURNAL_CSV_CHUNK = 500


def journal_csv(*, trades: QuerySet[Trade]) -> Iterator[str]:
    """The journal as CSV lines (header first), read in chunks so a large journal streams
    without being held in memory; tags are joined with ";"."""
    writer = csv.writer(_Echo())
    yield writer.writerow(JOURNAL_CSV_COLUMNS)
    for trade in trades.iterator(chunk_size=JOURNAL_CSV_CHUNK):
        yield writer.writerow(_journal_csv_row(trade))


# --- signals ------------------------------------------------------------------------------


def signals_for_user(*, user: User) -> QuerySet[Signal]:
    """What the user's strategies decided, newest bar first, with the order each one placed."""
    return (
        Signal.objects.filter(strategy__owner=user)
        .select_related("strategy", "instrument", "account", "order")
        .order_by("-bar_ts", "-id")
    )


def signals_search(
    *,
    user: User,
    strategy_id: int | None = None,
    symbol: str | None = None,
    status: str | None = None,
    bar_from: datetime | None = None,
    bar_before: datetime | None = None,
) -> QuerySet[Signal]:
    """The user's signals narrowed by the page's filters; ``bar_before`` is exclusive."""
    qs = signals_for_user(user=user)
    if strategy_id:
        qs = qs.filter(strategy_id=strategy_id)
    if symbol:
        qs = qs.filter(instrument__symbol=symbol.strip().upper())
    if status:
        qs = qs.filter(status=status)
    if bar_from is not None:
        qs = qs.filter(bar_ts__gte=bar_from)
    if bar_before is not None:
        qs = qs.filter(bar_ts__lt=bar_before)
    return qs


def signals_latest_for_strategy(*, strategy, limit: int = 10) -> list[Signal]:
    return list(
        Signal.objects.filter(strategy=strategy)
        .select_related("instrument", "order")
        .order_by("-bar_ts", "-id")[:limit]
    )
