"""Accounts: creation, halting, valuation and equity snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from apps.accounts.models import EquitySnapshot
from apps.accounts.selectors import account_valuation
from apps.accounts.services import (
    account_halt,
    account_resume,
    equity_snapshot_take,
    trading_account_create,
    trading_date,
)
from apps.core.errors import Conflict, ValidationFailed
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Order
from apps.execution.services import order_submit
from tests.factories import BarFactory, InstrumentFactory

pytestmark = pytest.mark.django_db


def test_create_paper_account_with_defaults_and_a_first_snapshot(user, settings):
    settings.PAPER_DEFAULT_CASH = D("25000")
    account = trading_account_create(owner=user, name="  Swing  ")
    assert (
        account.name == "Swing"
        and account.cash == D("25000")
        and account.initial_cash == D("25000")
    )
    assert account.start_of_day_equity == D("25000") and account.high_water_mark == D("25000")
    assert EquitySnapshot.objects.filter(account=account, kind="start_of_day").count() == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": " "}, "name"),
        ({"name": "x", "cash": D("-1")}, "cash"),
        ({"name": "x", "broker": "ibkr"}, "broker"),
    ],
)
def test_create_rejects_bad_input(user, kwargs, field):
    with pytest.raises(ValidationFailed) as err:
        trading_account_create(owner=user, **kwargs)
    assert field in err.value.fields
    assert not user.trading_accounts.exists()


def test_duplicate_account_name_is_a_conflict(user):
    trading_account_create(owner=user, name="Main")
    with pytest.raises(Conflict):
        trading_account_create(owner=user, name="Main")
    assert user.trading_accounts.count() == 1


def test_valuation_marks_positions_to_the_last_price(account):
    aapl = InstrumentFactory(symbol="AAPL", last_price=D("100"))
    msft = InstrumentFactory(symbol="MSFT", last_price=D("50"))
    BarFactory(instrument=aapl, volume=1e6)
    BarFactory(instrument=msft, volume=1e6)
    order_submit(account=account, intent=OrderIntent(symbol="AAPL", side="buy", quantity=D("10")))
    order_submit(account=account, intent=OrderIntent(symbol="MSFT", side="sell", quantity=D("20")))
    aapl.last_price = D("110")
    aapl.save()
    valuation = account_valuation(account=account)
    account.refresh_from_db()
    # cash: 100000 - 1000 + 1000 ; long 10 @110 = 1100 ; short 20 @50 = -1000
    assert valuation.cash == account.cash == D("100000")
    assert valuation.positions_value == D("100")
    assert valuation.equity == D("100100")
    assert valuation.unrealized_pnl == D("100")
    assert valuation.gross_exposure == D("2100")


def test_snapshots_roll_the_day_and_keep_the_high_water_mark(account):
    monday = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    first = equity_snapshot_take(account=account, now=monday)
    assert first.kind == "start_of_day" and account.start_of_day_equity == D("100000")
    account.cash = D("103000")
    account.save()
    later = equity_snapshot_take(account=account, now=monday + timedelta(hours=2))
    assert later.kind == "intraday" and account.high_water_mark == D("103000")
    assert account.start_of_day_equity == D("100000")
    account.cash = D("99000")
    account.save()
    tuesday = equity_snapshot_take(account=account, now=monday + timedelta(days=1))
    assert tuesday.kind == "start_of_day"
    assert account.start_of_day_equity == D("99000") and account.high_water_mark == D("103000")
    assert account_valuation(account=account).drawdown_pct == D("3.88")


def test_trading_day_rolls_at_new_york_midnight():
    # 03:00 UTC on the 3rd is still the 2nd in New York.
    assert trading_date(datetime(2026, 3, 3, 3, 0, tzinfo=UTC)).day == 2
    assert trading_date(datetime(2026, 3, 3, 5, 30, tzinfo=UTC)).day == 3


def test_halted_account_refuses_orders_until_resumed(account, instrument):
    from apps.risk.services import RiskRejected

    BarFactory(instrument=instrument, volume=1e6)
    account_halt(account=account, reason="daily loss")
    account.refresh_from_db()
    assert account.status == "halted" and account.status_reason == "daily loss"
    with pytest.raises(RiskRejected) as err:
        order_submit(
            account=account, intent=OrderIntent(symbol="AAPL", side="buy", quantity=D("1"))
        )
    assert err.value.code == "TRADING_HALTED" and err.value.status_code == 409
    assert not Order.objects.exists()
    account_resume(account=account)
    order = order_submit(
        account=account, intent=OrderIntent(symbol="AAPL", side="buy", quantity=D("1"))
    )
    assert order.status == "filled"
