"""Writes of accounts: creation, halting and resuming, equity snapshots."""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import EquitySnapshot, TradingAccount, User
from apps.accounts.selectors import account_valuation
from apps.core.errors import Conflict, ValidationFailed

logger = logging.getLogger(__name__)

# The trading day rolls at midnight in the exchange's time zone (New York for US equities).
TRADING_DAY_ZONE = ZoneInfo("America/New_York")


def trading_date(at: datetime) -> date:
    return at.astimezone(TRADING_DAY_ZONE).date()


def trading_account_create(
    *,
    owner: User,
    name: str,
    cash: Decimal | None = None,
    broker: str = TradingAccount.Broker.PAPER,
    currency: str | None = None,
) -> TradingAccount:
    name = name.strip()
    if not name:
        raise ValidationFailed(
            "An account needs a name.", fields={"name": "This field is required."}
        )
    cash = settings.PAPER_DEFAULT_CASH if cash is None else Decimal(cash)
    if not cash.is_finite() or cash < 0:
        raise ValidationFailed(
            "Starting cash cannot be negative.", fields={"cash": "Must be zero or more."}
        )
    if broker not in TradingAccount.Broker.values:
        raise ValidationFailed(f"Unknown broker {broker!r}.", fields={"broker": "Unknown broker."})
    try:
        with transaction.atomic():
            account = TradingAccount.objects.create(
                owner=owner,
                name=name,
                broker=broker,
                currency=currency or settings.DEFAULT_CURRENCY,
                cash=cash,
                initial_cash=cash,
                slippage_bps=settings.PAPER_SLIPPAGE_BPS,
                commission_rate=settings.PAPER_COMMISSION_RATE,
                commission_minimum=settings.PAPER_COMMISSION_MINIMUM,
                max_volume_participation=settings.PAPER_MAX_VOLUME_PARTICIPATION,
            )
    except IntegrityError:
        raise Conflict(
            f"You already have an account named {name!r}.",
            code="duplicate_name",
            fields={"name": "You already have an account with this name."},
        ) from None
    equity_snapshot_take(account=account)
    return account


def trading_account_update(*, account: TradingAccount, name: str | None = None) -> TradingAccount:
    if name is not None:
        name = name.strip()
        if not name:
            raise ValidationFailed(
                "An account needs a name.", fields={"name": "This field is required."}
            )
        if (
            TradingAccount.objects.filter(owner=account.owner, name=name)
            .exclude(pk=account.pk)
            .exists()
        ):
            raise Conflict(
                f"You already have an account named {name!r}.",
                code="duplicate_name",
                fields={"name": "You already have an account with this name."},
            )
        account.name = name
        account.save(update_fields=["name", "updated_at"])
    return account


def account_halt(
    *, account: TradingAccount, reason: str, changed_by: User | None = None
) -> TradingAccount:
    """Stop all new orders on the account until a person resumes it (recorded by the risk app,
    which owns the trading state: active, reducing, halted)."""
    from apps.risk.services import trading_state_set

    return trading_state_set(
        account=account, state=TradingAccount.Status.HALTED, reason=reason, changed_by=changed_by
    )


def account_resume(*, account: TradingAccount, changed_by: User | None = None) -> TradingAccount:
    from apps.risk.services import trading_state_set

    who = changed_by.get_username() if changed_by else "an operator"
    return trading_state_set(
        account=account,
        state=TradingAccount.Status.ACTIVE,
        reason=f"resumed by {who}",
        changed_by=changed_by,
    )


def equity_snapshot_take(*, account: TradingAccount, now: datetime | None = None) -> EquitySnapshot:
    """Record the account's equity now; keep the high-water mark and start-of-day equity.

    The first snapshot of a trading day is its start-of-day row (what the daily-loss rule
    measures from). Safe to call concurrently: the start-of-day row is unique per day.
    """
    now = now or timezone.now()
    day = trading_date(now)
    with transaction.atomic():
        locked = TradingAccount.objects.select_for_update().get(pk=account.pk)
        valuation = account_valuation(account=locked)
        equity = valuation.equity
        high_water_mark = max(locked.high_water_mark or equity, equity)
        new_day = locked.start_of_day_date != day
        kind = EquitySnapshot.Kind.START_OF_DAY if new_day else EquitySnapshot.Kind.INTRADAY
        snapshot = EquitySnapshot.objects.create(
            account=locked,
            kind=kind,
            taken_at=now,
            trading_date=day,
            cash=valuation.cash,
            positions_value=valuation.positions_value,
            equity=equity,
            high_water_mark=high_water_mark,
        )
        fields = ["high_water_mark", "updated_at"]
        locked.high_water_mark = high_water_mark
        if new_day:
            locked.start_of_day_equity = equity
            locked.start_of_day_date = day
            fields += ["start_of_day_equity", "start_of_day_date"]
        locked.save(update_fields=fields)
    account.refresh_from_db()
    return snapshot


def equity_snapshots_take_all(*, now: datetime | None = None) -> int:
    """Snapshot every account; one failing account does not stop the others."""
    count = 0
    for account in TradingAccount.objects.all().iterator():
        try:
            equity_snapshot_take(account=account, now=now)
            count += 1
        except Exception:
            logger.exception("equity snapshot of account %s failed", account.pk)
    return count
