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


# --- write-behind -----------------------------------------------------------------------------


def _event(order, to_status, data=None):
    return OrderEvent(order=order, at=datetime(2026, 1, 2, tzinfo=UTC), to_status=to_status,
                      source="system", data=data or {})  # fmt: skip


def _order(account, instrument, n):
    return Order(
        account=account,
        instrument=instrument,
        client_order_id=f"wb-{n}",
        side="buy",
        order_type="limit",
        quantity=Decimal("3"),
        limit_price=Decimal("99.5"),
        risk_decision={"outcome": "approved", "n": n},
    )


def test_allocated_pks_are_fresh_and_distinct():
    first, second = sql.allocate_pks(Order, 3), sql.allocate_pks(Order, 2)
    assert len(set(first + second)) == 5
    account, instrument = TradingAccountFactory(), InstrumentFactory()
    created = Order.objects.create(**{
        f: getattr(_order(account, instrument, 0), f)
        for f in ("account", "instrument", "client_order_id", "side", "order_type", "quantity",
                  "limit_price")
    })  # fmt: skip
    assert created.pk not in first + second


@pytest.mark.parametrize("rows", [2, sql.FEW_ROWS + 3])  # a VALUES list, then arrays
def test_insert_rows_writes_rows_like_save_with_or_without_their_pks(rows):
    account, instrument = TradingAccountFactory(), InstrumentFactory(symbol="WBX")
    keyed = [_order(account, instrument, n) for n in range(rows)]
    for order, pk in zip(keyed, sql.allocate_pks(Order, rows), strict=True):
        order.pk = pk
    sql.insert_rows(keyed, with_pks=True)
    events = [_event(keyed[n % rows], "new", {"n": n, "price": "1.25"}) for n in range(rows)]
    sql.insert_rows(events, with_pks=False)
    user = UserFactory()  # a JSON field with its own encoder keeps it
    notes = [Notification(user=user, type="order_filled", title="T", data={"a": Decimal("1.5")})]
    sql.insert_rows(notes, with_pks=False)
    assert Notification.objects.get(pk=notes[0].pk).data == {"a": "1.5"}

    for order in keyed:
        stored = Order.objects.get(pk=order.pk)
        for f in Order._meta.concrete_fields:
            assert getattr(stored, f.attname) == getattr(order, f.attname), f.name
    for n, event in enumerate(events):  # pks given back in the order of the rows
        stored = OrderEvent.objects.get(pk=event.pk)
        assert (stored.order_id, stored.data) == (keyed[n % rows].pk, {"n": n, "price": "1.25"})
        assert event._state.adding is False


def test_update_many_writes_the_named_fields_and_fails_when_a_row_is_gone():
    account, instrument = TradingAccountFactory(), InstrumentFactory(symbol="WBU")
    orders = [Order.objects.create(**{
        f: getattr(_order(account, instrument, n), f)
        for f in ("account", "instrument", "client_order_id", "side", "order_type", "quantity",
                  "limit_price")
    }) for n in range(sql.FEW_ROWS + 2)]  # fmt: skip
    stamp = Order.objects.get(pk=orders[0].pk).updated_at
    for n, order in enumerate(orders):
        order.status, order.filled_quantity = "partially_filled", Decimal(n % 3)
        order.reject_reason = "not written"
    sql.update_many(orders, ["status", "filled_quantity", "updated_at"])

    for n, order in enumerate(orders):
        stored = Order.objects.get(pk=order.pk)
        assert (stored.status, stored.filled_quantity, stored.reject_reason) == (
            "partially_filled", Decimal(n % 3), ""
        )  # fmt: skip
        assert stored.updated_at > stamp
    gone = _order(account, instrument, 9)
    gone.pk = sql.allocate_pks(Order, 1)[0]
    with pytest.raises(DatabaseError, match=r"1 of 2 rows|not updated"), transaction.atomic():
        sql.update_many([orders[0], gone], ["status"])  # a few: one UPDATE each
    with pytest.raises(DatabaseError, match=f"{len(orders)} of "), transaction.atomic():
        sql.update_many([*orders, gone], ["status"])  # more: one UPDATE for all


def test_write_behind_sends_one_statement_per_table_with_final_values():
    account, instrument = TradingAccountFactory(), InstrumentFactory(symbol="WBW")
    existing = Position.objects.create(account=account, instrument=instrument)
    writes = sql.WriteBehind()
    with CaptureQueriesContext(connection) as held:
        orders = [_order(account, instrument, n) for n in range(4)]
        for order in orders:
            writes.insert(order, pk_now=True)  # keyed from one block of the sequence
            writes.insert(_event(order, "new"))
            order.status = "filled"
            writes.update(order, ["status"])  # still waiting: the insert writes it
        existing.quantity = Decimal("4")
        writes.update(existing, ["quantity"])
        existing.realized_pnl = Decimal("-2.5")
        writes.update(existing, ["realized_pnl", "updated_at"])  # one UPDATE with both
    # At most a block of primary keys (the process keeps them across transactions); nothing
    # written yet.
    assert len(held) <= 1 and all("nextval" in q["sql"] for q in held.captured_queries)
    assert not Order.objects.filter(account=account).exists()

    with CaptureQueriesContext(connection) as flushed:
        writes.flush()
    assert len(flushed) == 3  # orders, events, the position
    assert (
        list(Order.objects.filter(account=account).values_list("status", flat=True))
        == ["filled"] * 4
    )
    assert OrderEvent.objects.filter(order__account=account).count() == 4
    stored = Position.objects.get(pk=existing.pk)
    assert (stored.quantity, stored.realized_pnl) == (Decimal("4"), Decimal("-2.5"))
    with CaptureQueriesContext(connection) as again:
        writes.flush()
    assert len(again) == 0


@pytest.mark.parametrize("rows", [1, sql.FEW_ROWS + 1])  # a VALUES list, then arrays
def test_insert_rows_refuses_a_text_too_long_instead_of_cutting_it(rows):
    account, instrument = TradingAccountFactory(), InstrumentFactory(symbol="WBL")
    orders = [_order(account, instrument, n) for n in range(rows)]
    orders[-1].client_order_id = "x" * 200  # the column holds 64
    with pytest.raises(DatabaseError, match="too long"), transaction.atomic():
        sql.insert_rows(orders)
    assert not Order.objects.filter(account=account).exists()
