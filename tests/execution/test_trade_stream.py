"""Alpaca's trade updates through alpaca-py's real ``TradingStream`` (``run_trade_stream``'s
``AccountStream``) against the fake's websocket: authentication and listening, every update
applied exactly once whatever repeats or comes out of order, reconnection, and the command.

The stream applies updates in its own threads, so these tests commit (``transaction=True``)."""

from __future__ import annotations

import copy
import threading
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from apps.execution.management.commands.run_trade_stream import AccountStream
from apps.execution.models import Fill, Order, OrderEvent, Position
from apps.execution.services import order_submit
from apps.execution.trade_updates import TradeUpdate, trade_update_apply
from tests.execution.conftest import KEY_ID, SECRET, intent, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stream(alpaca, alpaca_account):
    running: list[AccountStream] = []

    def start(**options) -> AccountStream:
        options.setdefault("reconcile_on_connect", False)
        account_stream = AccountStream(alpaca_account.pk, retry_delay=0.2, **options).start()
        running.append(account_stream)
        return account_stream

    yield start
    for account_stream in running:
        account_stream.stop()


def limit_order(account, qty="10", price="99.00") -> Order:
    return order_submit(
        account=account, intent=intent(qty=qty, order_type="limit", limit_price=Decimal(price))
    )


def noted(order: Order, text: str) -> bool:
    return OrderEvent.objects.filter(order=order, message__contains=text).exists()


def sentinel(alpaca, order: Order) -> None:
    """Push a ``done_for_day`` and wait until it is applied: everything pushed before it has
    been handled too (one connection delivers in order, one thread applies in order)."""
    alpaca.push(alpaca.set_status(order.broker_order_id, "done_for_day", push=False))
    assert wait_until(lambda: noted(order, "done for the day"), 10)


def test_the_stream_authenticates_listens_and_books_each_fill_once(
    alpaca, alpaca_account, instrument, stream
):
    account_stream = stream()
    assert alpaca.wait_for_listeners(1)
    auth, listen = alpaca.stream_messages[-2:]
    assert auth == {"action": "authenticate", "data": {"key_id": KEY_ID, "secret_key": SECRET}}
    assert listen == {"action": "listen", "data": {"streams": ["trade_updates"]}}
    assert wait_until(lambda: account_stream.connections == 1)

    order = limit_order(alpaca_account)
    partial = alpaca.fill(order.broker_order_id, "4", "98.90")
    assert wait_until(lambda: Fill.objects.filter(order=order).count() == 1)
    alpaca.push(partial)  # delivered again
    rest = alpaca.fill(order.broker_order_id, None, "99")
    alpaca.push(rest)  # and again
    sentinel(alpaca, order)

    order.refresh_from_db()
    assert order.status == "filled" and order.filled_quantity == Decimal("10")
    assert sorted(Fill.objects.filter(order=order).values_list("quantity", "price")) == [
        (Decimal("4"), Decimal("98.9")),
        (Decimal("6"), Decimal("99")),
    ]
    assert Position.objects.get(account=alpaca_account).quantity == Decimal("10")


def test_updates_out_of_order_end_in_the_broker_state_exactly_once(
    alpaca, alpaca_account, instrument, stream, settings
):
    # The answer to the submission is lost: the order stays "submitted" without a broker id
    # (its one retry cannot ask Alpaca either), and the stream is the first to say anything.
    settings.ALPACA_SUBMIT_RETRY_MAX_ATTEMPTS = 1
    alpaca.auto_route = False
    alpaca.fail_next(500, method="POST", path="/v2/orders", after=True)
    alpaca.fail_next(503, path="/v2/orders:by_client_order_id")
    order = limit_order(alpaca_account)
    assert order.status == "submitted" and not order.broker_order_id
    (broker_order_id,) = alpaca.orders

    new = alpaca.set_status(broker_order_id, "new", push=False)
    partial = alpaca.fill(broker_order_id, "4", "98.80", push=False)
    stale_cancel = copy.deepcopy(partial)  # a "canceled" that says only 4 had filled
    stale_cancel.update(event="canceled")
    stale_cancel["order"].update(status="canceled")
    rest = alpaca.fill(broker_order_id, None, "99.10", push=False)

    stream()
    assert alpaca.wait_for_listeners(1)
    for update in (partial, new, partial, rest, new, stale_cancel, rest):
        alpaca.push(update, account_id=alpaca.orders[broker_order_id]["_account"])
    assert wait_until(lambda: Order.objects.get(pk=order.pk).broker_order_id)
    order.refresh_from_db()
    sentinel(alpaca, order)

    order.refresh_from_db()
    assert order.broker_order_id == broker_order_id
    assert order.status == "filled" and order.filled_quantity == Decimal("10")
    assert Fill.objects.filter(order=order).count() == 2
    assert order.average_fill_price == Decimal("98.98")  # (4 x 98.80 + 6 x 99.10) / 10
    moves = [
        (e.from_status, e.to_status)
        for e in OrderEvent.objects.filter(order=order)
        if e.from_status != e.to_status
    ]
    assert moves == [
        ("", "new"),
        ("new", "submitted"),
        ("submitted", "partially_filled"),
        ("partially_filled", "filled"),
    ]

    # The retry that follows the lost answer finds it all done: nothing sent, nothing booked.
    from apps.execution.reconciliation import order_submission_retry

    assert order_submission_retry(order_id=order.pk) == "settled"
    assert len(alpaca.requests_to("/v2/orders", "POST")) == 1
    assert Fill.objects.filter(order=order).count() == 2


def test_rejected_and_expired_updates_close_open_orders(alpaca, alpaca_account, instrument, stream):
    stream()
    assert alpaca.wait_for_listeners(1)
    rejected = limit_order(alpaca_account)
    expired = limit_order(alpaca_account, price="98.00")
    alpaca.set_status(rejected.broker_order_id, "rejected")
    alpaca.fill(expired.broker_order_id, "2", "98")
    alpaca.set_status(expired.broker_order_id, "expired")
    assert wait_until(lambda: Order.objects.get(pk=expired.pk).status == "expired")
    # Accepted, then rejected: a broker may still refuse what it acknowledged.
    assert wait_until(lambda: Order.objects.get(pk=rejected.pk).status == "rejected")
    assert noted(rejected, "Alpaca rejected the order")
    expired.refresh_from_db()
    assert expired.filled_quantity == Decimal("2")


def test_the_stream_reconnects_after_the_connection_drops(
    alpaca, alpaca_account, instrument, stream
):
    account_stream = stream()
    assert alpaca.wait_for_listeners(1)
    order = limit_order(alpaca_account)

    alpaca.drop_streams()
    assert wait_until(lambda: account_stream.connections == 2, 15)
    assert alpaca.wait_for_listeners(1)
    alpaca.fill(order.broker_order_id, None, "99")
    assert wait_until(lambda: Order.objects.get(pk=order.pk).status == "filled")


def test_each_connection_reconciles_what_happened_while_nobody_listened(
    alpaca, alpaca_account, instrument, stream
):
    order = limit_order(alpaca_account)
    alpaca.fill(order.broker_order_id, None, "98.75", push=False)  # nobody is listening

    stream(reconcile_on_connect=True)

    assert wait_until(lambda: Order.objects.get(pk=order.pk).status == "filled")
    assert noted(order, "reconciliation: Alpaca had filled 10 @ 98.75")
    assert Position.objects.get(account=alpaca_account).quantity == Decimal("10")


def test_an_update_for_an_order_the_platform_never_placed_changes_nothing(
    alpaca, alpaca_account, instrument
):
    import requests
    from alpaca.trading.models import TradeUpdate as AlpacaTradeUpdate

    foreign = requests.post(
        f"{alpaca.url}/v2/orders",
        json={"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"},
        headers={"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET},
        timeout=5,
    ).json()
    update = alpaca.fill(foreign["id"], None, "100", push=False)
    parsed = TradeUpdate.from_alpaca(AlpacaTradeUpdate(**update))
    assert trade_update_apply(account_id=alpaca_account.pk, update=parsed) is None
    assert not Fill.objects.exists() and not Order.objects.exists()


def test_the_command_follows_the_accounts_until_its_time_is_up(alpaca, alpaca_account, instrument):
    order = limit_order(alpaca_account)

    def fill_when_listening() -> None:
        if alpaca.wait_for_listeners(1, timeout=10):
            alpaca.fill(order.broker_order_id, None, "99.5")

    filler = threading.Thread(target=fill_when_listening)
    filler.start()
    call_command("run_trade_stream", "--account", str(alpaca_account.pk), "--seconds", "3")
    filler.join(5)

    order.refresh_from_db()
    assert order.status == "filled" and order.average_fill_price == Decimal("99.5")
    assert alpaca.listeners == 0  # stopped and disconnected


def test_the_command_refuses_when_no_account_has_a_usable_key(account):
    with pytest.raises(CommandError, match="No Alpaca account"):
        call_command("run_trade_stream", "--account", str(account.pk), "--seconds", "1")


def test_an_answer_that_arrives_after_the_stream_adds_nothing_twice(
    alpaca, alpaca_account, instrument
):
    """The stream reports a partial fill before the submit answer (which says more is filled)
    reaches the platform: the answer's fills are not booked on top; the stream's next update
    completes the order."""
    import threading as _threading

    alpaca.plan_next_order(fill_price="101")  # the answer will say: 10 filled @ 101
    alpaca.slow_next(0.6, path="/v2/orders", after=True)  # ... and arrive late
    results: list = []
    sender = _threading.Thread(
        target=lambda: results.append(order_submit(account=alpaca_account, intent=intent()))
    )
    sender.start()
    assert wait_until(lambda: alpaca.executions, 5)
    (execution,) = alpaca.executions
    # What the stream said first: 4 of them (an earlier execution of the same order).
    partial = copy.deepcopy(execution)
    partial.update(event="partial_fill", qty="4", position_qty="4")
    partial["order"].update(filled_qty="4", filled_avg_price="101", status="partially_filled")
    order = Order.objects.get(account=alpaca_account)
    apply_parsed(alpaca_account, partial)
    assert Order.objects.get(pk=order.pk).filled_quantity == Decimal("4")
    sender.join(10)

    (answered,) = results  # no overfill error from the late answer
    assert answered.filled_quantity == Decimal("4") and answered.status == "partially_filled"
    apply_parsed(alpaca_account, execution)  # the stream's report of the whole fill
    order.refresh_from_db()
    assert order.status == "filled" and order.filled_quantity == Decimal("10")
    assert Fill.objects.filter(order=order).count() == 2
    assert order.average_fill_price == Decimal("101")


def apply_parsed(account, update: dict):
    from alpaca.trading.models import TradeUpdate as AlpacaTradeUpdate

    return trade_update_apply(
        account_id=account.pk, update=TradeUpdate.from_alpaca(AlpacaTradeUpdate(**update))
    )
