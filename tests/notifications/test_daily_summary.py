"""The daily summary: due at the trader's chosen local time, once per local date whatever
the sweep's timing, with the day's PnL, trades, open positions and risk events."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from unittest import mock

import pytest
import time_machine
from django.apps import apps as django_apps

from apps.accounts.services import equity_snapshot_take
from apps.execution.domain.intents import OrderIntent
from apps.execution.services import order_submit
from apps.notifications import selectors, services, tasks
from apps.notifications.models import Notification
from tests.factories import BarFactory, InstrumentFactory

pytestmark = pytest.mark.django_db

# 2026-01-05 is a Monday; Berlin is UTC+1 in January.
MORNING = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


@pytest.fixture
def trader(user):
    user.time_zone = "Europe/Berlin"
    user.save()
    services.notification_settings_update(
        user=user, daily_summary_enabled=True, daily_summary_time=time(18, 0)
    )
    return user


@pytest.fixture
def trading_day(trader, account):
    """A day with a closed round trip in AAPL and an open MSFT position."""
    aapl = InstrumentFactory(symbol="AAPL", last_price=Decimal("100.00"))
    msft = InstrumentFactory(symbol="MSFT", last_price=Decimal("300.00"))
    for instrument in (aapl, msft):
        BarFactory(instrument=instrument, volume=1_000_000)
    with time_machine.travel(MORNING, tick=False):
        equity_snapshot_take(account=account, now=MORNING)
        order_submit(account=account, intent=OrderIntent("AAPL", "buy", Decimal("10")))
        order_submit(account=account, intent=OrderIntent("MSFT", "buy", Decimal("5")))
    aapl.last_price = Decimal("110.00")
    aapl.save()
    msft.last_price = Decimal("310.00")
    msft.save()
    with time_machine.travel(MORNING + timedelta(hours=1), tick=False):
        order_submit(account=account, intent=OrderIntent("AAPL", "sell", Decimal("10")))
    return account


def test_due_only_after_the_local_time_and_once_per_date(trader, other_user):
    services.notification_settings_update(user=other_user, daily_summary_enabled=False)
    assert services.daily_summaries_due(now=datetime(2026, 1, 5, 16, 59, tzinfo=UTC)) == []
    due = services.daily_summaries_due(now=datetime(2026, 1, 5, 17, 0, tzinfo=UTC))
    assert due == [(trader.pk, date(2026, 1, 5))]


def test_the_summary_has_pnl_trades_positions_and_risk_events(trader, trading_day):
    risk_event = django_apps.get_model("risk", "RiskEvent")
    risk_event.objects.create(
        account=trading_day,
        source="monitor",
        code="DAILY_LOSS_LIMIT",
        severity="warning",
        message="Daily loss at 80% of the limit",
        trading_date=date(2026, 1, 5),
        created_at=MORNING + timedelta(hours=2),
        last_seen_at=MORNING + timedelta(hours=2),
    )
    evening = datetime(2026, 1, 5, 17, 5, tzinfo=UTC)  # 18:05 in Berlin
    with time_machine.travel(evening, tick=False):
        [(user_id, day)] = services.daily_summaries_due()
        n = services.daily_summary_send(user_id=user_id, day=day)
    assert n.type == "daily_summary" and n.dedupe_key == "daily_summary:2026-01-05"
    assert n.title == "Daily summary for Mon 05 Jan 2026: PnL +150.00"  # 100 realised + 50 open
    data = n.data
    [account] = data["accounts"]
    assert account["name"] == "Alice paper" and account["day_pnl"] == "150.00"
    assert account["realized_pnl"] == "100.00" and account["fills"] == 3
    assert [t["symbol"] for t in account["trades"]] == ["AAPL"]
    assert [(p["symbol"], p["quantity"], p["unrealized_pnl"]) for p in account["positions"]] == [
        ("MSFT", "5", "50.00")
    ]
    assert [r["code"] for r in data["risk_events"]] == ["DAILY_LOSS_LIMIT"]
    assert "1 trade closed, 1 open position." in n.body and "1 risk event." in n.body
    assert set(n.deliveries.values_list("channel", flat=True)) == {"in_app", "email"}


def test_the_risk_section_is_left_out_without_the_risk_app(trader, trading_day):
    with mock.patch.object(selectors, "risk_app_installed", return_value=False):
        summary = selectors.daily_summary_for(
            user=trader, day=date(2026, 1, 5), now=datetime(2026, 1, 5, 18, tzinfo=UTC)
        )
    assert summary.risk_events is None


def test_idempotent_per_user_and_date_and_due_again_the_next_day(trader):
    evening = datetime(2026, 1, 5, 17, 30, tzinfo=UTC)
    with time_machine.travel(evening, tick=False):
        assert tasks.send_due_daily_summaries() == 1  # eager: the per-user task runs too
        assert tasks.send_due_daily_summaries() == 0
        assert services.daily_summary_send(user_id=trader.pk, day=date(2026, 1, 5)) is None
    assert Notification.objects.filter(type="daily_summary").count() == 1
    # Still the 5th in Berlin at 22:59Z; the 6th begins at 23:00Z but is due only at 17:00Z.
    with time_machine.travel(datetime(2026, 1, 6, 16, 59, tzinfo=UTC), tick=False):
        assert tasks.send_due_daily_summaries() == 0
    with time_machine.travel(datetime(2026, 1, 6, 17, 1, tzinfo=UTC), tick=False):
        assert tasks.send_due_daily_summaries() == 1
    assert list(
        Notification.objects.filter(type="daily_summary")
        .order_by("created_at")
        .values_list("dedupe_key", flat=True)
    ) == ["daily_summary:2026-01-05", "daily_summary:2026-01-06"]


def test_a_late_sweep_still_sends_that_days_summary(trader):
    # The beat was down all afternoon; at 23:50 Berlin the day's summary still goes once.
    with time_machine.travel(datetime(2026, 1, 5, 22, 50, tzinfo=UTC), tick=False):
        assert tasks.send_due_daily_summaries() == 1
    assert Notification.objects.get(type="daily_summary").dedupe_key.endswith("2026-01-05")
