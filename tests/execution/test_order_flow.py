"""Orders through the services on the paper broker: submission, fills, positions, journal."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.errors import Conflict, ValidationFailed
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Fill, Order, OrderEvent, Position, Trade
from apps.execution.services import order_cancel, order_submit, paper_orders_match_bar
from tests.factories import BarFactory

pytestmark = pytest.mark.django_db


def buy(symbol="AAPL", qty="10", **kw):
    return OrderIntent(symbol=symbol, side="buy", quantity=Decimal(qty), **kw)


def sell(symbol="AAPL", qty="10", **kw):
    return OrderIntent(symbol=symbol, side="sell", quantity=Decimal(qty), **kw)


def test_market_buy_fills_at_last_price_and_opens_position(account, instrument):
    BarFactory(instrument=instrument, volume=1_000_000)
    order = order_submit(account=account, intent=buy())
    assert order.status == "filled"
    assert order.filled_quantity == Decimal("10")
    assert order.average_fill_price == instrument.last_price
    position = Position.objects.get(account=account, instrument=instrument)
    assert position.quantity == Decimal("10")
    account.refresh_from_db()
    assert account.cash == Decimal("100000") - Decimal("10") * instrument.last_price
    statuses = list(order.events.values_list("to_status", flat=True))
    assert statuses == ["new", "submitted", "accepted", "filled"]
    trade = Trade.objects.get(account=account)
    assert trade.status == "open" and trade.entry_quantity == Decimal("10")


@pytest.mark.postgres
def test_a_paper_fill_writes_the_order_once_with_all_its_fields_and_events(account, instrument):
    BarFactory(instrument=instrument, volume=1_000_000)
    with CaptureQueriesContext(connection) as queries:
        order = order_submit(account=account, intent=buy())
    order_updates = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('UPDATE "execution_order"')
    ]
    # Accepted and filled in one ack: one UPDATE, with the broker id and the fill's figures.
    assert len(order_updates) == 1
    assert '"broker_order_id"' in order_updates[0] and '"filled_quantity"' in order_updates[0]
    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.filled_quantity, stored.broker_order_id) == (
        "filled",
        Decimal("10"),
        order.broker_order_id,
    )
    assert stored.average_fill_price == instrument.last_price and stored.filled_at is not None
    events = list(stored.events.order_by("id").values_list("from_status", "to_status"))
    assert events == [
        ("", "new"),
        ("new", "submitted"),
        ("submitted", "accepted"),
        ("accepted", "filled"),
    ]


def test_round_trip_closes_trade_with_pnl(account, instrument):
    BarFactory(instrument=instrument, volume=1_000_000)
    order_submit(account=account, intent=buy())
    instrument.last_price = Decimal("110.00")
    instrument.save()
    order_submit(account=account, intent=sell())
    trade = Trade.objects.get(account=account)
    assert trade.status == "closed"
    assert trade.gross_pnl == Decimal("100.0000")
    assert trade.exit_price == Decimal("110.00")
    position = Position.objects.get(account=account, instrument=instrument)
    assert position.quantity == 0 and position.realized_pnl == Decimal("100.0000")


def test_limit_rests_then_fills_on_bar(account, instrument):
    BarFactory(instrument=instrument, volume=1_000_000)
    order = order_submit(
        account=account, intent=buy(order_type="limit", limit_price=Decimal("95.00"))
    )
    assert order.status == "accepted"
    bar = BarFactory(instrument=instrument, open=97.0, high=98.0, low=94.5, close=96.0, volume=1e6)
    order.refresh_from_db()
    order.submitted_at = bar.ts.replace(year=2025)
    order.save()
    assert paper_orders_match_bar(bar=bar) == 1
    assert paper_orders_match_bar(bar=bar) == 0  # same bar again: nothing new
    order.refresh_from_db()
    assert order.status == "filled" and order.average_fill_price == Decimal("95.00")
    assert Fill.objects.filter(order=order).count() == 1


def test_large_order_fills_partially_against_volume(account, instrument):
    account.max_volume_participation = Decimal("0.1")
    account.save()
    BarFactory(instrument=instrument, volume=50)
    order = order_submit(account=account, intent=buy(qty="20"))
    assert order.status == "partially_filled"
    assert order.filled_quantity == Decimal("5")


def test_duplicate_client_order_id_is_refused_and_writes_nothing(account, instrument):
    BarFactory(instrument=instrument, volume=1e6)
    order_submit(account=account, intent=buy(client_order_id="abc"))
    with pytest.raises(Conflict) as err:
        order_submit(account=account, intent=buy(client_order_id="abc"))
    assert err.value.code == "duplicate_client_order_id"
    assert Order.objects.count() == 1


def test_limit_without_price_is_refused(account, instrument):
    with pytest.raises(ValidationFailed) as err:
        order_submit(account=account, intent=buy(order_type="limit"))
    assert "limit_price" in err.value.fields
    assert Order.objects.count() == 0 and OrderEvent.objects.count() == 0


def test_cancel_open_limit(account, instrument):
    order = order_submit(
        account=account, intent=buy(order_type="limit", limit_price=Decimal("50.00"))
    )
    order = order_cancel(order=order, source="manual")
    assert order.status == "cancelled"
    with pytest.raises(Conflict):
        order_cancel(order=order, source="manual")


def test_day_orders_expire_at_the_session_close_and_gtc_do_not(account, instrument):
    from datetime import UTC, datetime

    import time_machine

    from apps.execution.services import orders_expire_due

    # Monday 2026-03-02 15:00 UTC = 10:00 New York; the session closes at 21:00 UTC (EST).
    with time_machine.travel(datetime(2026, 3, 2, 15, 0, tzinfo=UTC), tick=False):
        day = order_submit(
            account=account, intent=buy(order_type="limit", limit_price=Decimal("50.00"))
        )
        gtc = order_submit(
            account=account,
            intent=buy(order_type="limit", limit_price=Decimal("50.00"), time_in_force="gtc"),
        )
    assert day.expires_at == datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
    assert gtc.expires_at is None
    assert orders_expire_due(now=datetime(2026, 3, 2, 20, 59, tzinfo=UTC)) == 0
    assert orders_expire_due(now=datetime(2026, 3, 2, 21, 0, tzinfo=UTC)) == 1
    assert orders_expire_due(now=datetime(2026, 3, 2, 21, 0, tzinfo=UTC)) == 0  # safe to run twice
    day.refresh_from_db()
    gtc.refresh_from_db()
    assert day.status == "expired" and gtc.status == "accepted"


def test_friday_evening_day_order_lives_until_monday_close(account, instrument):
    from datetime import UTC, datetime

    from apps.execution.services import day_order_expiry

    friday_evening = datetime(2026, 3, 6, 23, 0, tzinfo=UTC)  # after Friday's close
    assert day_order_expiry(instrument=instrument, now=friday_evening) == datetime(
        2026, 3, 9, 20, 0, tzinfo=UTC
    )


def test_stop_order_triggers_on_a_bar_and_fills(account, instrument):
    from datetime import timedelta

    BarFactory(instrument=instrument, volume=1e6)
    order = order_submit(
        account=account, intent=buy(order_type="stop", stop_price=Decimal("103.00"))
    )
    assert order.status == "accepted" and not order.stop_triggered
    bar = BarFactory(
        instrument=instrument, open=101.0, high=104.0, low=100.5, close=103.5, volume=1e6
    )
    Order.objects.filter(pk=order.pk).update(submitted_at=bar.ts - timedelta(minutes=1))
    assert paper_orders_match_bar(bar=bar) == 1
    order.refresh_from_db()
    assert order.stop_triggered and order.status == "filled"
    assert order.average_fill_price == Decimal("103.00")


def test_orders_placed_after_a_bar_opened_are_not_matched_against_it(account, instrument):
    BarFactory(instrument=instrument, volume=1e6)
    order = order_submit(
        account=account, intent=buy(order_type="limit", limit_price=Decimal("99.50"))
    )
    old_bar = BarFactory(
        instrument=instrument, open=99.0, high=99.0, low=98.0, close=98.5, volume=1e6
    )
    assert old_bar.ts < order.submitted_at
    assert paper_orders_match_bar(bar=old_bar) == 0
    order.refresh_from_db()
    assert order.status == "accepted"


def test_flip_closes_one_trade_and_opens_another(account, instrument):
    BarFactory(instrument=instrument, volume=1e6)
    order_submit(account=account, intent=buy(qty="10"))
    order_submit(account=account, intent=sell(qty="25"))
    trades = list(Trade.objects.filter(account=account).order_by("id"))
    assert [(t.direction, t.status) for t in trades] == [("long", "closed"), ("short", "open")]
    assert trades[1].entry_quantity == Decimal("15")
    assert Position.objects.get(account=account).quantity == Decimal("-15")


def test_fill_applied_twice_changes_nothing(account, instrument):
    from datetime import UTC, datetime

    from apps.execution.brokers import BrokerFill
    from apps.execution.services import fill_apply

    order = order_submit(
        account=account, intent=buy(order_type="limit", limit_price=Decimal("50.00"))
    )
    fill = BrokerFill("ext-1", Decimal("4"), Decimal("50.00"), Decimal("0.10"), datetime.now(UTC))
    first, created = fill_apply(order_id=order.pk, fill=fill)
    again, created_again = fill_apply(order_id=order.pk, fill=fill)
    assert created and not created_again and first.pk == again.pk
    order.refresh_from_db()
    account.refresh_from_db()
    assert order.filled_quantity == Decimal("4") and order.status == "partially_filled"
    assert account.cash == Decimal("100000") - Decimal("200.10")
    with pytest.raises(Conflict) as err:
        fill_apply(
            order_id=order.pk,
            fill=BrokerFill("ext-2", Decimal("7"), Decimal("50"), Decimal("0"), datetime.now(UTC)),
        )
    assert err.value.code == "overfill"
