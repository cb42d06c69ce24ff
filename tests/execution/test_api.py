"""Orders, positions and the journal through /api/v1/, as a client calls them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.services import account_halt
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Fill, Order, OrderEvent, Position, Trade
from apps.execution.services import order_submit
from tests.factories import BarFactory, InstrumentFactory, StrategyFactory

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"
POSITIONS = "/api/v1/positions/"
TRADES = "/api/v1/trades/"


@pytest.fixture
def market(instrument):
    """AAPL at 100.00 with plenty of volume, so market orders fill at once."""
    BarFactory(instrument=instrument, volume=1_000_000)
    return instrument


def order_body(for_account, **overrides):
    body = {"account": for_account.pk, "symbol": "AAPL", "side": "buy", "quantity": "10"}
    body.update(overrides)
    return body


def nothing_written():
    return (
        Order.objects.count() == 0
        and OrderEvent.objects.count() == 0
        and Fill.objects.count() == 0
        and Position.objects.count() == 0
    )


def submit(account, side="buy", qty="10", **kw):
    return order_submit(
        account=account,
        intent=OrderIntent(symbol="AAPL", side=side, quantity=Decimal(qty), **kw),
        source="manual",
    )


# --- create -------------------------------------------------------------------------------


def test_market_order_fills_and_answers_the_stored_order(api_client, account, market):
    response = api_client.post(ORDERS, order_body(account, client_order_id="my-1"), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    order = Order.objects.get()
    assert body["id"] == order.pk
    assert body["status"] == "filled" == order.status
    assert order.source == "api" and body["source"] == "api"
    assert order.client_order_id == "my-1"
    assert body["quantity"] == "10.00000000" and body["filled_quantity"] == "10.00000000"
    assert body["average_fill_price"] == "100.00000000"
    assert [e["to_status"] for e in body["events"]] == ["new", "submitted", "accepted", "filled"]
    assert len(body["fills"]) == 1 and body["fills"][0]["price"] == "100.00000000"
    position = Position.objects.get(account=account, instrument=market)
    assert position.quantity == Decimal("10")
    account.refresh_from_db()
    assert account.cash == Decimal("99000")


def test_numbers_are_accepted_as_json_numbers_too(api_client, account, market):
    response = api_client.post(ORDERS, order_body(account, quantity=2.5), format="json")
    # Lot size 1: a fractional quantity is refused by the service, naming the field.
    assert response.status_code == 400
    assert "quantity" in response.json()["errors"]
    response = api_client.post(ORDERS, order_body(account, quantity=3), format="json")
    assert response.status_code == 201
    assert Order.objects.get().quantity == Decimal("3")


def test_limit_order_below_the_market_rests_accepted(api_client, account, market):
    response = api_client.post(
        ORDERS,
        order_body(account, order_type="limit", limit_price="95.00", time_in_force="gtc"),
        format="json",
    )
    assert response.status_code == 201
    order = Order.objects.get()
    assert order.status == "accepted" and order.limit_price == Decimal("95.00")
    assert response.json()["fills"] == []


def test_market_order_without_a_market_price_is_a_400(api_client, account):
    InstrumentFactory(symbol="NOPX", last_price=None, last_price_at=None)
    response = api_client.post(ORDERS, order_body(account, symbol="NOPX"), format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "no_market_price"
    assert "No market price for NOPX" in body["detail"]
    assert Order.objects.count() == 0
    assert Fill.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"quantity": "0"}, "quantity", "Must be greater than zero."),
        ({"quantity": "-5"}, "quantity", "Must be greater than zero."),
        ({"quantity": "NaN"}, "quantity", "A valid number is required."),
        ({"quantity": "Infinity"}, "quantity", "A valid number is required."),
        ({"quantity": "-Infinity"}, "quantity", "A valid number is required."),
        ({"quantity": "ten"}, "quantity", "A valid number is required."),
        ({"quantity": "1.123456789"}, "quantity", "no more than 8 decimal places"),
        ({"quantity": "1.5"}, "quantity", "multiple of the lot size"),
        ({"quantity": None}, "quantity", "may not be null"),
        ({"side": "hold"}, "side", "not a valid choice"),
        ({"order_type": "iceberg"}, "order_type", "not a valid choice"),
        ({"time_in_force": "forever"}, "time_in_force", "not a valid choice"),
        ({"order_type": "limit"}, "limit_price", "required for a limit order"),
        ({"order_type": "limit", "limit_price": "-1"}, "limit_price", "greater than zero"),
        ({"order_type": "limit", "limit_price": "NaN"}, "limit_price", "valid number"),
        ({"order_type": "limit", "limit_price": "99.999"}, "limit_price", "tick size"),
        ({"order_type": "stop"}, "stop_price", "required for a stop order"),
        ({"limit_price": "100"}, "limit_price", "does not apply to a market order"),
        ({"symbol": "ZZZZ"}, "symbol", "Unknown symbol"),
        ({"symbol": ""}, "symbol", "may not be blank"),
        ({"client_order_id": "x" * 65}, "client_order_id", "no more than 64 characters"),
        ({"account": "abc"}, "account", "whole number"),
        ({"account": 999_999_999}, "account", "No such account."),
    ],
)
def test_invalid_orders_answer_400_naming_the_field_and_write_nothing(
    api_client, account, market, overrides, field, message
):
    response = api_client.post(ORDERS, order_body(account, **overrides), format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] in ("invalid", "unknown_symbol")
    assert field in body["errors"]
    assert message in body["detail"]
    # The one-sentence detail names the field ("quantity: ...", "Quantity must ...").
    assert field.replace("_", " ") in body["detail"].replace("_", " ").lower()
    assert nothing_written()


def test_missing_fields_are_named(api_client, account, market):
    response = api_client.post(ORDERS, {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"account", "symbol", "side", "quantity"}
    assert nothing_written()


def test_malformed_json_is_400(api_client, account, market):
    response = api_client.post(ORDERS, '{"account": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    response = api_client.post(ORDERS, '{"quantity": NaN}', content_type="application/json")
    assert response.status_code == 400
    response = api_client.post(ORDERS, "[1, 2]", content_type="application/json")
    assert response.status_code == 400
    assert nothing_written()


def test_duplicate_client_order_id_is_409_and_writes_nothing_more(api_client, account, market):
    first = api_client.post(ORDERS, order_body(account, client_order_id="dup"), format="json")
    assert first.status_code == 201
    events = OrderEvent.objects.count()

    response = api_client.post(ORDERS, order_body(account, client_order_id="dup"), format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_client_order_id"
    assert "dup" in response.json()["detail"]
    assert Order.objects.count() == 1 and OrderEvent.objects.count() == events
    assert Fill.objects.count() == 1


def test_order_on_a_halted_account_is_409(api_client, account, market):
    account_halt(account=account, reason="daily loss limit")
    response = api_client.post(ORDERS, order_body(account), format="json")
    assert response.status_code == 409
    assert "halted" in response.json()["detail"]
    assert nothing_written()


def test_unauthenticated_order_is_401(account, market):
    response = APIClient().post(ORDERS, order_body(account), format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert nothing_written()


def test_orders_cannot_be_edited_or_deleted(api_client, account, market):
    order = submit(account)
    assert api_client.patch(f"{ORDERS}{order.pk}/", {"quantity": "1"}).status_code == 405
    assert api_client.put(f"{ORDERS}{order.pk}/", {"quantity": "1"}).status_code == 405
    assert api_client.delete(f"{ORDERS}{order.pk}/").status_code == 405
    order.refresh_from_db()
    assert order.quantity == Decimal("10")


# --- list, retrieve, filters ----------------------------------------------------------------


def test_list_and_filters(api_client, account, market):
    filled = submit(account)
    resting = submit(account, qty="5", order_type="limit", limit_price=Decimal("90.00"))
    msft = InstrumentFactory(symbol="MSFT")
    BarFactory(instrument=msft, volume=1e6)
    sold = order_submit(
        account=account,
        intent=OrderIntent(symbol="MSFT", side="sell", quantity=Decimal("1")),
        source="manual",
    )

    def ids(query=""):
        response = api_client.get(ORDERS + query)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [sold.pk, resting.pk, filled.pk]  # newest first
    assert ids("?status=accepted") == [resting.pk]
    assert ids("?symbol=msft") == [sold.pk]
    assert ids("?side=sell") == [sold.pk]
    assert ids(f"?source=manual&account={account.pk}") == [sold.pk, resting.pk, filled.pk]
    assert ids("?source=api") == []
    assert ids("?ordering=created_at") == [filled.pk, resting.pk, sold.pk]
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert ids("?created_after=" + later.replace("+", "%2B")) == []
    assert ids("?created_before=" + later.replace("+", "%2B")) == [sold.pk, resting.pk, filled.pk]
    row = api_client.get(ORDERS).json()["results"][0]
    assert row["symbol"] == "MSFT" and "fills" not in row


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=nope", "status"),
        ("account=abc", "account"),
        ("account=1.5", "account"),
        ("created_after=yesterday", "created_after"),
        ("created_before=2026-13-45", "created_before"),
        ("side=up", "side"),
    ],
)
def test_bad_filters_are_400_naming_the_filter(api_client, account, query, field):
    response = api_client.get(f"{ORDERS}?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert response.json()["detail"].startswith(f"{field}: ")


def test_tolerated_query_noise_never_500(api_client, account, market):
    submit(account)
    assert api_client.get(ORDERS + "?ordering=not_a_field").status_code == 200
    assert api_client.get(ORDERS + "?page_size=100000000").status_code == 200
    assert api_client.get(ORDERS + "?page_size=-3").status_code == 200
    assert api_client.get(ORDERS + "?account=99999999999999999999999").json()["count"] == 0
    response = api_client.get(ORDERS + "?page=abc")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    response = api_client.get(ORDERS + "?page=99")
    assert response.status_code == 404 and "detail" in response.json()
    response = api_client.get(ORDERS + "?symbol=%00")
    assert response.status_code == 400
    for path in ("abc", "99999999999999999999999", "0", "-1"):
        response = api_client.get(f"{ORDERS}{path}/")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_detail_includes_fills_and_history(api_client, account, market):
    order = submit(account)
    response = api_client.get(f"{ORDERS}{order.pk}/")
    assert response.status_code == 200
    body = response.json()
    fill = Fill.objects.get(order=order)
    assert body["fills"] == [
        {
            "id": fill.pk,
            "broker_fill_id": fill.broker_fill_id,
            "side": "buy",
            "quantity": "10.00000000",
            "price": "100.00000000",
            "commission": "0.0000",
            "filled_at": body["fills"][0]["filled_at"],
        }
    ]
    assert [(e["from_status"], e["to_status"]) for e in body["events"]] == [
        ("", "new"),
        ("new", "submitted"),
        ("submitted", "accepted"),
        ("accepted", "filled"),
    ]


# --- cancel -------------------------------------------------------------------------------


def test_cancel_open_order(api_client, account, market):
    order = submit(account, order_type="limit", limit_price=Decimal("90.00"))
    response = api_client.post(f"{ORDERS}{order.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert order.events.last().source == "api"


def test_cancel_of_a_filled_order_is_409_and_changes_nothing(api_client, account, market):
    order = submit(account)
    events = order.events.count()
    response = api_client.post(f"{ORDERS}{order.pk}/cancel/")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "The order is already filled; it cannot be cancelled.",
        "code": "not_open",
    }
    order.refresh_from_db()
    assert order.status == "filled" and order.events.count() == events


def test_cancel_unknown_order_is_404(api_client, account):
    assert api_client.post(f"{ORDERS}12345/cancel/").status_code == 404


# --- positions ----------------------------------------------------------------------------


def test_positions_are_valued_at_the_last_price(api_client, account, market):
    submit(account)
    market.last_price = Decimal("110.00")
    market.save()

    response = api_client.get(POSITIONS)

    assert response.status_code == 200
    [row] = response.json()["results"]
    position = Position.objects.get()
    assert row["id"] == position.pk
    assert row["symbol"] == "AAPL" and row["direction"] == "long"
    assert row["quantity"] == "10.00000000"
    assert row["average_price"] == "100.00000000"
    assert row["last_price"] == "110.00000000" and row["priced"] is True
    assert row["market_value"] == "1100.0000"
    assert row["unrealized_pnl"] == "100.0000"
    assert row["unrealized_pct"] == "10.00"
    assert api_client.get(f"{POSITIONS}{position.pk}/").json() == row


def test_flat_positions_only_with_include_flat(api_client, account, market):
    submit(account)
    submit(account, side="sell")
    position = Position.objects.get()
    assert position.quantity == 0

    assert api_client.get(POSITIONS).json()["count"] == 0
    response = api_client.get(POSITIONS + "?include_flat=true")
    assert [row["id"] for row in response.json()["results"]] == [position.pk]
    assert response.json()["results"][0]["direction"] == "flat"
    assert api_client.get(f"{POSITIONS}{position.pk}/").status_code == 200
    assert api_client.get(POSITIONS + "?include_flat=false").json()["count"] == 0


def test_position_filters(api_client, account, market):
    submit(account)
    assert api_client.get(POSITIONS + "?symbol=aapl").json()["count"] == 1
    assert api_client.get(POSITIONS + "?symbol=MSFT").json()["count"] == 0
    assert api_client.get(POSITIONS + f"?account={account.pk}").json()["count"] == 1
    response = api_client.get(POSITIONS + "?include_flat=maybe")
    assert response.status_code == 400
    assert "include_flat" in response.json()["errors"]
    assert api_client.get(POSITIONS + "?account=x").status_code == 400


def test_positions_are_read_only(api_client, account, market):
    submit(account)
    position = Position.objects.get()
    assert api_client.post(POSITIONS, {"quantity": "1"}).status_code == 405
    assert api_client.patch(f"{POSITIONS}{position.pk}/", {"quantity": "1"}).status_code == 405
    assert api_client.delete(f"{POSITIONS}{position.pk}/").status_code == 405
    position.refresh_from_db()
    assert position.quantity == Decimal("10")


# --- the journal --------------------------------------------------------------------------


@pytest.fixture
def closed_trade(account, market):
    submit(account)
    market.last_price = Decimal("110.00")
    market.save()
    submit(account, side="sell")
    return Trade.objects.get()


def test_journal_lists_round_trips(api_client, closed_trade):
    response = api_client.get(TRADES)
    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["id"] == closed_trade.pk
    assert row["status"] == "closed" and row["direction"] == "long"
    assert row["symbol"] == "AAPL"
    assert row["gross_pnl"] == "100.0000" and row["net_pnl"] == "100.0000"
    assert row["entry_price"] == "100.00000000" and row["exit_price"] == "110.00000000"
    assert row["tags"] == [] and row["notes"] == ""


def test_annotate_notes_and_tags(api_client, closed_trade):
    response = api_client.patch(
        f"{TRADES}{closed_trade.pk}/",
        {"notes": "Followed the plan.", "tags": ["Breakout", "breakout", " earnings "]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["tags"] == ["breakout", "earnings"]
    closed_trade.refresh_from_db()
    assert closed_trade.notes == "Followed the plan."
    assert sorted(closed_trade.tags.values_list("name", flat=True)) == ["breakout", "earnings"]

    # Only what is sent changes.
    api_client.patch(f"{TRADES}{closed_trade.pk}/", {"notes": ""}, format="json")
    closed_trade.refresh_from_db()
    assert closed_trade.notes == "" and closed_trade.tags.count() == 2


def test_journal_filters(api_client, account, closed_trade, market):
    api_client.patch(f"{TRADES}{closed_trade.pk}/", {"tags": ["swing"]}, format="json")
    submit(account)  # a new open trade
    open_trade = Trade.objects.get(status="open")
    strategy = StrategyFactory(owner=account.owner, account=account)

    def ids(query):
        response = api_client.get(TRADES + query)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids("") == [open_trade.pk, closed_trade.pk]
    assert ids("?status=closed") == [closed_trade.pk]
    assert ids("?tag=SWING") == [closed_trade.pk]
    assert ids("?tag=other") == []
    assert ids("?direction=short") == []
    assert ids(f"?symbol=aapl&account={account.pk}") == [open_trade.pk, closed_trade.pk]
    assert ids(f"?strategy={strategy.pk}") == []
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids("?closed_after=" + hour_ago) == [closed_trade.pk]
    assert ids("?closed_before=" + hour_ago) == []
    assert ids("?ordering=net_pnl") == [open_trade.pk, closed_trade.pk]  # 0 before 100
    assert ids("?ordering=-net_pnl") == [closed_trade.pk, open_trade.pk]
    assert api_client.get(TRADES + "?closed_after=soon").status_code == 400
    assert api_client.get(TRADES + "?direction=up").status_code == 400


def test_only_notes_and_tags_can_change(api_client, closed_trade):
    response = api_client.patch(
        f"{TRADES}{closed_trade.pk}/", {"notes": "x", "net_pnl": "1000000"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "net_pnl: Read-only: only notes and tags can be changed."
    closed_trade.refresh_from_db()
    assert closed_trade.notes == "" and closed_trade.net_pnl == Decimal("100")

    response = api_client.patch(f"{TRADES}{closed_trade.pk}/", {"tags": ["x" * 51]}, format="json")
    assert response.status_code == 400 and "tags" in response.json()["errors"]
    response = api_client.patch(f"{TRADES}{closed_trade.pk}/", {"tags": "solo"}, format="json")
    assert response.status_code == 400 and "tags" in response.json()["errors"]
    response = api_client.patch(f"{TRADES}{closed_trade.pk}/", ["notes"], format="json")
    assert response.status_code == 400
    assert closed_trade.tags.count() == 0

    assert api_client.put(f"{TRADES}{closed_trade.pk}/", {"notes": "x"}).status_code == 405
    assert api_client.delete(f"{TRADES}{closed_trade.pk}/").status_code == 405
    assert api_client.post(TRADES, {"notes": "x"}).status_code == 405
    assert Trade.objects.count() == 1


# --- query counts -------------------------------------------------------------------------


@pytest.mark.parametrize("url", [ORDERS, POSITIONS + "?include_flat=true", TRADES])
def test_lists_do_not_query_per_row(api_client, account, market, url):
    def trade(symbol):
        BarFactory(instrument=InstrumentFactory(symbol=symbol), volume=1e6)
        order = order_submit(
            account=account,
            intent=OrderIntent(symbol=symbol, side="buy", quantity=Decimal("1")),
            source="manual",
        )
        Trade.objects.get(entry_order=order).tags.create(owner=account.owner, name=symbol.lower())

    trade("AAPL")
    with CaptureQueriesContext(connection) as one:
        assert api_client.get(url).status_code == 200
    for symbol in ("MSFT", "NVDA", "AMZN", "META"):
        trade(symbol)
    with CaptureQueriesContext(connection) as five:
        response = api_client.get(url)
    assert response.json()["count"] == 5
    assert len(five) == len(one)


def test_an_order_can_carry_its_own_stop_and_target_and_be_reduce_only(api_client, account):
    BarFactory(instrument=InstrumentFactory(symbol="AAPL"), volume=1e6)
    response = api_client.post(
        ORDERS,
        order_body(account, stop_loss_price="95.00", take_profit_price="110.00"),
        format="json",
    )
    assert response.status_code == 201, response.json()
    order = Order.objects.get()
    assert order.stop_loss_price == Decimal("95.00") and order.take_profit_price == Decimal(
        "110.00"
    )
    assert Position.objects.get().stop_loss_price == Decimal("95.00")

    growing = api_client.post(ORDERS, order_body(account, reduce_only=True), format="json")
    assert growing.status_code == 422
    assert growing.json()["code"] == "REDUCE_ONLY_WOULD_INCREASE"
    assert Order.objects.count() == 1
    closing = api_client.post(
        ORDERS, order_body(account, side="sell", reduce_only=True), format="json"
    )
    assert closing.status_code == 201 and Order.objects.get(pk=closing.json()["id"]).reduce_only


def test_a_stop_on_the_wrong_side_of_the_entry_is_refused(api_client, account):
    InstrumentFactory(symbol="AAPL")
    response = api_client.post(ORDERS, order_body(account, stop_loss_price="105.00"), format="json")
    assert response.status_code == 422
    assert response.json()["code"] == "INVALID_STOP_LOSS"
    assert Order.objects.count() == 0
