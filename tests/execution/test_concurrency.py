"""Races on PostgreSQL: the same fill or the same client order id from two connections at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from django.db import connection

from apps.core.errors import Conflict
from apps.execution.brokers import BrokerFill
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Fill, Order, Position
from apps.execution.services import fill_apply, order_submit
from tests.factories import BarFactory, InstrumentFactory, TradingAccountFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(workers: int, target) -> list:
    barrier = threading.Barrier(workers)
    results: list = [None] * workers

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = target(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def setup_world():
    account = TradingAccountFactory(owner=UserFactory(username="racer"))
    instrument = InstrumentFactory(symbol="RACE")
    BarFactory(instrument=instrument, volume=1e9)
    return account, instrument


def test_the_same_fill_from_many_connections_is_applied_once():
    account, _ = setup_world()
    order = order_submit(
        account=account,
        intent=OrderIntent(
            symbol="RACE", side="buy", quantity=D("10"), order_type="limit", limit_price=D("50")
        ),
    )
    fill = BrokerFill("dup-1", D("10"), D("50"), D("0"), datetime.now(UTC))
    results = race(6, lambda _: fill_apply(order_id=order.pk, fill=fill)[1])
    assert sorted(results) == [False] * 5 + [True]
    assert Fill.objects.filter(order=order).count() == 1
    assert Position.objects.get(account=account).quantity == D("10")
    account.refresh_from_db()
    assert account.cash == D("100000") - D("500")


def test_the_same_client_order_id_from_many_connections_makes_one_order():
    account, _ = setup_world()
    intent = OrderIntent(symbol="RACE", side="buy", quantity=D("1"), client_order_id="same-id")
    results = race(6, lambda _: order_submit(account=account, intent=intent))
    orders = [r for r in results if isinstance(r, Order)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(orders) == 1 and len(conflicts) == 5
    assert all(c.code == "duplicate_client_order_id" for c in conflicts)
    assert Order.objects.filter(account=account).count() == 1
    assert Position.objects.get(account=account).quantity == D("1")


def test_concurrent_orders_of_one_account_keep_cash_consistent():
    account, instrument = setup_world()
    results = race(
        8,
        lambda i: order_submit(
            account=account, intent=OrderIntent(symbol="RACE", side="buy", quantity=D("3"))
        ),
    )
    assert all(isinstance(r, Order) and r.status == "filled" for r in results)
    account.refresh_from_db()
    position = Position.objects.get(account=account)
    assert position.quantity == D("24")
    assert account.cash == D("100000") - D("24") * instrument.last_price
