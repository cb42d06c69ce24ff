"""apps.core.sql: the written-out hot-path statements build and write rows exactly as the ORM
does (on PostgreSQL, where they are used)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.core import sql
from apps.execution.models import Order, OrderEvent, Position, Signal
from apps.marketdata.models import Instrument
from apps.notifications.models import Notification
from tests.factories import InstrumentFactory, TradingAccountFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_instances_match_what_the_orm_builds():
    InstrumentFactory(symbol="AAPL", sector="Technology", last_price=Decimal("101.25"))
    row = sql.fetchone(
        f"SELECT {sql.columns('i', Instrument)} FROM {sql.table(Instrument)} i WHERE i.symbol = %s",
        ["AAPL"],
    )
    (raw,) = sql.instances(row, Instrument)
    orm = Instrument.objects.get(symbol="AAPL")
    for f in Instrument._meta.concrete_fields:
        assert getattr(raw, f.attname) == getattr(orm, f.attname), f.name
    assert raw._state.adding is False and raw._state.db == "default"


def test_an_outer_join_that_found_nothing_gives_none():
    account = TradingAccountFactory()
    row = sql.fetchone(
        f"SELECT {sql.columns('a', type(account))}, {sql.columns('p', Position)} "
        f"FROM {sql.table(type(account))} a LEFT JOIN {sql.table(Position)} p "
        "ON p.account_id = a.id WHERE a.id = %s",
        [account.pk],
    )
    loaded, position = sql.instances(row, type(account), Position)
    assert loaded.pk == account.pk and loaded.cash == account.cash
    assert position is None


def test_insert_sets_the_pk_and_writes_every_field_like_save():
    user = UserFactory()
    note = Notification(user=user, type="order_filled", title="T", data={"a": Decimal("1.5")})
    assert sql.insert(note) is True
    stored = Notification.objects.get(pk=note.pk)
    assert (stored.title, stored.data, stored.uid) == ("T", {"a": "1.5"}, note.uid)
    assert stored.created_at is not None


def test_insert_skipping_conflicts_writes_nothing_and_keeps_the_transaction_usable():
    user = UserFactory()
    first = Notification(user=user, type="order_filled", title="A", dedupe_key="k")
    second = Notification(user=user, type="order_filled", title="B", dedupe_key="k")
    with transaction.atomic():
        assert sql.insert(first, skip_conflicts=True) is True
        with CaptureQueriesContext(connection) as queries:
            assert sql.insert(second, skip_conflicts=True) is False
        assert second.pk is None
        assert not any("SAVEPOINT" in q["sql"] for q in queries.captured_queries)
        # Still usable: no aborted transaction.
        assert Notification.objects.filter(user=user).count() == 1


def test_insert_many_sets_pks_in_order():
    account = TradingAccountFactory()
    instrument = InstrumentFactory(symbol="MSFT")
    order = Order.objects.create(
        account=account, instrument=instrument, client_order_id="c1", side="buy", quantity=1
    )
    at = datetime(2026, 1, 2, tzinfo=UTC)
    events = [
        OrderEvent(order=order, at=at, from_status="", to_status=s, source="system")
        for s in ("new", "submitted", "accepted")
    ]
    sql.insert_many(events)
    assert [e.pk for e in events] == sorted(e.pk for e in events)
    assert list(order.events.order_by("id").values_list("to_status", flat=True)) == [
        "new",
        "submitted",
        "accepted",
    ]


def test_update_writes_the_named_fields_sets_auto_now_and_fails_when_the_row_is_gone():
    account = TradingAccountFactory()
    instrument = InstrumentFactory(symbol="NVDA")
    order = Order.objects.create(
        account=account, instrument=instrument, client_order_id="c2", side="buy", quantity=5
    )
    before = order.updated_at
    order.status, order.quantity = "accepted", Decimal("7")  # quantity not named: not written
    sql.update(order, ["status", "updated_at"])
    stored = Order.objects.get(pk=order.pk)
    assert stored.status == "accepted" and stored.quantity == Decimal("5")
    assert stored.updated_at > before
    Order.objects.filter(pk=order.pk).delete()
    with pytest.raises(DatabaseError):
        sql.update(order, ["status"])


def test_first_reads_on_postgresql_without_the_fallback_and_locks():
    account = TradingAccountFactory()
    assert sql.first(Signal, "t.account_id = %s", [account.pk], fallback=lambda: "unused") is None
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        locked = sql.first(
            type(account), "t.id = %s", [account.pk], for_update=True, fallback=lambda: None
        )
    assert locked.pk == account.pk
    assert [q["sql"].endswith("FOR UPDATE") for q in queries.captured_queries] == [True]
