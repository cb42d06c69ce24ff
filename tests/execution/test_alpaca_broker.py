"""The Alpaca broker through the real alpaca-py client against the fake Alpaca on loopback:
what each order type sends, how each answer is read (403, 422, 429, 5xx, timeouts), retries
that never send an order twice, fills that are never counted twice, cancel and replace."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
from alpaca.trading.models import TradeUpdate as AlpacaTradeUpdate

from apps.core.errors import Conflict
from apps.execution.brokers import broker_for
from apps.execution.brokers.alpaca import AlpacaBroker, BrokerOrderView, cumulative_fill_id
from apps.execution.models import Fill, Order, OrderEvent, Position
from apps.execution.reconciliation import order_submission_retry
from apps.execution.services import order_cancel, order_replace, order_submit
from apps.execution.trade_updates import TradeUpdate, broker_order_apply, trade_update_apply
from tests.execution.conftest import KEY_ID, SECRET, intent, wait_until
from tests.fakes.alpaca_server import INSUFFICIENT_BUYING_POWER

pytestmark = pytest.mark.django_db


def posts(alpaca) -> list:
    return alpaca.requests_to("/v2/orders", "POST")


def apply_update(account, update: dict):
    """Hand the fake's trade update to the service the stream uses, parsed by alpaca-py."""
    return trade_update_apply(
        account_id=account.pk, update=TradeUpdate.from_alpaca(AlpacaTradeUpdate(**update))
    )


def events(order) -> list[str]:
    return list(OrderEvent.objects.filter(order=order).values_list("message", flat=True))


# --- submission ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_type", "tif", "prices", "sent"),
    [
        ("market", "day", {}, {}),
        ("limit", "gtc", {"limit_price": Decimal("99.50")}, {"limit_price": 99.5}),
        ("stop", "day", {"stop_price": Decimal("105.00")}, {"stop_price": 105.0}),
        (
            "stop_limit",
            "gtc",
            {"stop_price": Decimal("105.00"), "limit_price": Decimal("105.50")},
            {"stop_price": 105.0, "limit_price": 105.5},
        ),
    ],
)
def test_each_order_type_reaches_alpaca_with_its_fields(
    alpaca, alpaca_account, instrument, order_type, tif, prices, sent
):
    order = order_submit(
        account=alpaca_account,
        intent=intent(order_type=order_type, time_in_force=tif, **prices),
    )

    (request,) = posts(alpaca)
    assert (request.key_id, request.secret) == (KEY_ID, SECRET)
    body = request.body
    assert body["symbol"] == "AAPL" and body["side"] == "buy" and body["qty"] == 10
    assert body["type"] == order_type and body["time_in_force"] == tif
    assert body["client_order_id"] == order.client_order_id
    for field in ("limit_price", "stop_price"):
        assert body.get(field) == sent.get(field)
    (stored,) = alpaca.orders.values()
    assert order.status == "accepted" and order.broker_order_id == stored["id"]
    assert not Fill.objects.exists()


def test_a_fill_in_the_submit_answer_is_booked_once_whatever_reports_it_again(
    alpaca, alpaca_account, instrument
):
    alpaca.plan_next_order(fill_price="101.25")
    order = order_submit(account=alpaca_account, intent=intent())

    assert order.status == "filled" and order.average_fill_price == Decimal("101.25")
    (fill,) = Fill.objects.filter(order=order)
    assert fill.broker_fill_id == cumulative_fill_id(order.broker_order_id, Decimal("10"))
    # The same execution again: from the stream, and from a read of the order.
    (execution,) = alpaca.executions
    assert apply_update(alpaca_account, execution).changes == []
    view = AlpacaBroker(alpaca_account).order_view(order)
    assert broker_order_apply(order_id=order.pk, view=view, origin="reconciliation").changes == []
    assert Fill.objects.filter(order=order).count() == 1
    position = Position.objects.get(account=alpaca_account)
    assert position.quantity == Decimal("10")
    alpaca_account.refresh_from_db()
    assert alpaca_account.cash == Decimal("100000") - Decimal("1012.50")


def test_a_partial_fill_in_the_answer_and_the_rest_on_the_stream_add_up(
    alpaca, alpaca_account, instrument
):
    alpaca.plan_next_order(fill_price="100", fill_qty="4")
    order = order_submit(account=alpaca_account, intent=intent())
    assert order.status == "partially_filled" and order.filled_quantity == Decimal("4")

    rest = alpaca.fill(order.broker_order_id, "6", "101", push=False)
    apply_update(alpaca_account, rest)
    apply_update(alpaca_account, rest)  # delivered twice

    order.refresh_from_db()
    assert order.status == "filled" and order.filled_quantity == Decimal("10")
    assert order.average_fill_price == Decimal("100.6")
    assert sorted(Fill.objects.filter(order=order).values_list("quantity", "price")) == [
        (Decimal("4"), Decimal("100")),
        (Decimal("6"), Decimal("101")),
    ]


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (403, INSUFFICIENT_BUYING_POWER, "insufficient buying power"),
        (403, {"code": 40310000, "message": "forbidden"}, "forbidden"),
        (422, {"code": 40010001, "message": "qty must be a whole number"}, "whole number"),
    ],
)
def test_a_refusal_rejects_the_order_with_alpacas_reason_and_is_not_retried(
    alpaca, alpaca_account, instrument, status, body, said, django_capture_on_commit_callbacks
):
    alpaca.fail_next(status, method="POST", path="/v2/orders", body=body)
    with django_capture_on_commit_callbacks(execute=True):
        order = order_submit(account=alpaca_account, intent=intent())

    assert order.status == "rejected"
    assert f"({status}: " in order.reject_reason and said in order.reject_reason
    assert len(posts(alpaca)) == 1 and alpaca.orders == {}
    assert not alpaca.requests_to("/v2/orders:by_client_order_id")  # nothing to find out
    assert not Fill.objects.exists() and not Position.objects.exists()


def test_without_a_usable_key_nothing_is_sent_and_the_order_is_rejected(alpaca, user, instrument):
    from apps.accounts.services import trading_account_create

    account = trading_account_create(owner=user, name="No key", broker="alpaca")
    order = order_submit(account=account, intent=intent())
    assert order.status == "rejected" and "no Alpaca API key" in order.reject_reason
    assert alpaca.requests == []


def test_client_order_id_already_at_alpaca_recovers_the_order_sent_earlier(
    alpaca, alpaca_account, instrument
):
    # An earlier send of this order arrived (its answer never did).
    earlier = requests.post(
        f"{alpaca.url}/v2/orders",
        json={
            "symbol": "AAPL",
            "qty": 10,
            "side": "buy",
            "type": "market",
            "time_in_force": "day",
            "client_order_id": "sig-dup-1",
        },
        headers={"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET},
        timeout=5,
    ).json()

    order = order_submit(account=alpaca_account, intent=intent(client_order_id="sig-dup-1"))

    assert [r.status for r in posts(alpaca)] == [200, 422]
    assert order.status == "accepted" and order.broker_order_id == earlier["id"]
    assert len(alpaca.orders) == 1


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_failure_before_alpaca_took_the_order_leaves_it_submitted_then_one_resend(
    alpaca, alpaca_account, instrument, status
):
    alpaca.fail_next(status, method="POST", path="/v2/orders")
    order = order_submit(account=alpaca_account, intent=intent())
    assert order.status == "submitted" and order.broker_order_id == ""
    assert "broker unavailable, to reconcile" in events(order)[-1]

    assert order_submission_retry(order_id=order.pk) == "sent"

    order.refresh_from_db()
    assert order.status == "accepted"
    first, second = posts(alpaca)
    (lookup,) = alpaca.requests_to("/v2/orders:by_client_order_id")
    assert first.at <= lookup.at <= second.at  # asked before sending again
    assert second.body["client_order_id"] == order.client_order_id
    assert len(alpaca.orders) == 1
    assert order_submission_retry(order_id=order.pk) == "settled"  # safe to run twice
    assert len(posts(alpaca)) == 2


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 500}, id="500-after-storing"),
        pytest.param({"status": 503}, id="503-after-storing"),
        pytest.param({"delay": 2.0}, id="timeout-after-storing"),
    ],
)
def test_an_order_alpaca_took_before_failing_is_found_and_never_sent_twice(
    alpaca, alpaca_account, instrument, fault, django_capture_on_commit_callbacks
):
    if "status" in fault:
        alpaca.fail_next(fault["status"], method="POST", path="/v2/orders", after=True)
    else:
        alpaca.slow_next(fault["delay"], path="/v2/orders", after=True)  # client waits 1 s

    # The retry is queued after commit and runs here (eager).
    with django_capture_on_commit_callbacks(execute=True):
        order = order_submit(account=alpaca_account, intent=intent())

    order.refresh_from_db()
    (stored,) = alpaca.orders.values()
    assert stored["client_order_id"] == order.client_order_id
    assert order.status == "accepted" and order.broker_order_id == stored["id"]
    assert len(posts(alpaca)) == 1  # never sent twice
    assert any("Alpaca had the order" in m and "nothing was sent again" in m for m in events(order))


def test_fills_made_while_the_answer_was_lost_are_booked_by_the_retry(
    alpaca, alpaca_account, instrument
):
    alpaca.fail_next(500, method="POST", path="/v2/orders", after=True)
    order = order_submit(account=alpaca_account, intent=intent())
    (stored,) = alpaca.orders.values()
    alpaca.fill(stored["id"], "10", "99.90", push=False)

    assert order_submission_retry(order_id=order.pk) == "found"

    order.refresh_from_db()
    assert order.status == "filled" and order.average_fill_price == Decimal("99.9")
    assert Position.objects.get(account=alpaca_account).quantity == Decimal("10")
    assert len(posts(alpaca)) == 1


def test_retries_are_bounded_then_left_to_reconciliation(
    alpaca, alpaca_account, instrument, settings, django_capture_on_commit_callbacks
):
    settings.ALPACA_SUBMIT_RETRY_MAX_ATTEMPTS = 3
    alpaca.fail_next(503, method="POST", path="/v2/orders")
    alpaca.fail_next(503, times=10, path="/v2/orders:by_client_order_id")

    with django_capture_on_commit_callbacks(execute=True):
        order = order_submit(account=alpaca_account, intent=intent())

    order.refresh_from_db()
    assert order.status == "submitted"
    assert len(alpaca.requests_to("/v2/orders:by_client_order_id")) == 3
    assert len(posts(alpaca)) == 1
    assert "gave up after attempt 3" in events(order)[-1]


def test_retry_delays_grow_and_are_capped(settings):
    from apps.execution.reconciliation import submission_retry_delay

    settings.ALPACA_SUBMIT_RETRY_BASE_SECONDS = 2
    settings.ALPACA_SUBMIT_RETRY_MAX_DELAY_SECONDS = 10
    assert [submission_retry_delay(n) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]


# --- cancel and replace ----------------------------------------------------------------------


def limit_order(account, qty="10", price="99.00"):
    order = order_submit(
        account=account, intent=intent(qty=qty, order_type="limit", limit_price=Decimal(price))
    )
    assert order.status == "accepted"
    return order


def routed(alpaca, order) -> bool:
    return wait_until(lambda: alpaca.orders[order.broker_order_id]["status"] == "new", 5)


def test_cancel_asks_alpaca_and_closes_the_order(alpaca, alpaca_account, instrument):
    order = limit_order(alpaca_account)
    order = order_cancel(order=order, source="manual")
    assert order.status == "cancelled"
    (delete,) = alpaca.requests_to(f"/v2/orders/{order.broker_order_id}", "DELETE")
    assert delete.status == 204
    assert alpaca.orders[order.broker_order_id]["status"] == "canceled"


def test_a_cancel_alpaca_has_not_confirmed_leaves_the_order_open_until_it_does(
    alpaca, alpaca_account, instrument
):
    alpaca.cancel_leaves_pending = True
    order = limit_order(alpaca_account)
    with pytest.raises(Conflict) as refused:
        order_cancel(order=order, source="manual")
    assert refused.value.code == "cancel_refused" and "cancelling" in refused.value.message
    order.refresh_from_db()
    assert order.status == "accepted"

    apply_update(alpaca_account, alpaca.confirm_cancel(order.broker_order_id))
    order.refresh_from_db()
    assert order.status == "cancelled"


def test_partial_fills_then_the_rest_cancelled(alpaca, alpaca_account, instrument):
    order = limit_order(alpaca_account)
    apply_update(alpaca_account, alpaca.fill(order.broker_order_id, "3", "99", push=False))
    apply_update(alpaca_account, alpaca.fill(order.broker_order_id, "2", "98.5", push=False))
    order.refresh_from_db()
    assert order.status == "partially_filled" and order.filled_quantity == Decimal("5")

    order = order_cancel(order=order, source="manual")
    assert order.status == "cancelled" and order.filled_quantity == Decimal("5")
    # The stream's "canceled" arrives afterwards, twice: nothing changes.
    canceled = next(u for u in alpaca.pushed if u["event"] == "canceled")
    apply_update(alpaca_account, canceled)
    apply_update(alpaca_account, canceled)
    order.refresh_from_db()
    assert order.status == "cancelled" and Fill.objects.filter(order=order).count() == 2
    assert Position.objects.get(account=alpaca_account).quantity == Decimal("5")


def test_cancel_of_a_filled_order_is_refused_and_the_fill_is_booked_from_the_stream(
    alpaca, alpaca_account, instrument
):
    order = limit_order(alpaca_account)
    fill = alpaca.fill(order.broker_order_id, None, "99", push=False)
    with pytest.raises(Conflict) as refused:
        order_cancel(order=order, source="manual")
    assert "already filled" in refused.value.message
    assert alpaca.requests_to(f"/v2/orders/{order.broker_order_id}", "DELETE") == []
    apply_update(alpaca_account, fill)
    order.refresh_from_db()
    assert order.status == "filled"


def test_replace_sends_the_remaining_quantity_and_follows_the_new_broker_order(
    alpaca, alpaca_account, instrument
):
    order = limit_order(alpaca_account)
    assert routed(alpaca, order)
    first_id = order.broker_order_id
    apply_update(alpaca_account, alpaca.fill(first_id, "4", "99", push=False))
    order.refresh_from_db()

    order = order_replace(order=order, source="manual", limit_price=Decimal("99.40"))

    (patch,) = alpaca.requests_to(f"/v2/orders/{first_id}", "PATCH")
    assert patch.body["qty"] == 6  # what is left, not the original 10
    assert patch.body["limit_price"] == 99.4
    assert patch.body["client_order_id"].startswith(order.client_order_id + "~")
    assert order.broker_order_id != first_id
    assert alpaca.orders[first_id]["status"] == "replaced"
    assert order.limit_price == Decimal("99.40") and order.quantity == Decimal("10")

    # The old order's "replaced" update, then the new order's fill.
    replaced = next(u for u in alpaca.pushed if u["event"] == "replaced")
    assert apply_update(alpaca_account, replaced).changes == []
    apply_update(alpaca_account, alpaca.fill(order.broker_order_id, "6", "99.40", push=False))
    order.refresh_from_db()
    assert order.status == "filled" and order.filled_quantity == Decimal("10")
    assert Fill.objects.filter(order=order).count() == 2


def test_a_replace_alpaca_refuses_changes_nothing(alpaca, alpaca_account, instrument):
    alpaca.auto_route = False  # still "accepted": Alpaca cannot replace it yet
    order = limit_order(alpaca_account)
    with pytest.raises(Conflict) as refused:
        order_replace(order=order, source="manual", limit_price=Decimal("99.40"))
    assert refused.value.code == "replace_refused" and "422" in refused.value.message
    order.refresh_from_db()
    assert order.limit_price == Decimal("99.00")


def test_replacement_learned_from_the_stream_when_the_answer_was_lost(
    alpaca, alpaca_account, instrument
):
    order = limit_order(alpaca_account)
    assert routed(alpaca, order)
    first_id = order.broker_order_id
    # Someone (or a lost answer) replaced it at Alpaca; the platform hears the "replaced".
    replacement = requests.patch(
        f"{alpaca.url}/v2/orders/{first_id}",
        json={"limit_price": "99.2", "qty": "10", "client_order_id": order.client_order_id + "~x"},
        headers={"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET},
        timeout=5,
    ).json()
    replaced = next(u for u in alpaca.pushed if u["event"] == "replaced")
    assert apply_update(alpaca_account, replaced).changes
    order.refresh_from_db()
    assert order.broker_order_id == replacement["id"]
    apply_update(alpaca_account, alpaca.fill(replacement["id"], None, "99.2", push=False))
    order.refresh_from_db()
    assert order.status == "filled"


# --- reads -----------------------------------------------------------------------------------


def test_positions_and_account_are_read_in_platform_types(alpaca, alpaca_account):
    credential = alpaca.credentials[KEY_ID]
    alpaca.set_position(credential.account, "AAPL", "15", "101.5")
    alpaca.set_position(credential.account, "MSFT", "-3", "400")
    broker = broker_for(alpaca_account)
    assert isinstance(broker, AlpacaBroker)
    positions = {p.symbol: (p.quantity, p.average_price) for p in broker.positions()}
    assert positions == {
        "AAPL": (Decimal("15"), Decimal("101.5")),
        "MSFT": (Decimal("-3"), Decimal("400")),
    }
    state = broker.account_state()
    assert state.broker_account_id == credential.account.id and state.cash == Decimal("100000")


def test_order_view_of_an_order_alpaca_never_saw_is_none(alpaca, alpaca_account, instrument):
    order = Order(account=alpaca_account, instrument=instrument, client_order_id="never-sent")
    assert AlpacaBroker(alpaca_account).order_view(order) is None
    alpaca.fail_next(503, path="/v2/orders:by_client_order_id")
    from apps.execution.brokers import BrokerError

    with pytest.raises(BrokerError) as failed:
        AlpacaBroker(alpaca_account).order_view(order)
    assert failed.value.transient


def test_views_read_alpacas_decimal_strings_exactly():
    class Raw:
        id = "b7a4"
        client_order_id = "tp-1~ab"
        status = "partially_filled"
        symbol = "AAPL"
        side = "buy"
        type = "limit"
        order_type = "limit"
        qty = "10"
        filled_qty = "3.5"
        filled_avg_price = "101.123456"
        limit_price = "101.2"
        stop_price = None
        submitted_at = updated_at = filled_at = None
        replaced_by = None
        replaces = "a1"

    view = BrokerOrderView.from_alpaca(Raw())
    assert view.filled_quantity == Decimal("3.5")
    assert view.filled_average_price == Decimal("101.123456")
    assert view.replaces == "a1" and view.is_open
