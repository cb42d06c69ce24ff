"""Trading pages: the order ticket and blotter, order details, positions and the journal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.accounts.services import account_halt
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Fill, Order, OrderEvent, Position, Tag, Trade
from apps.execution.services import order_submit
from tests.factories import BarFactory, InstrumentFactory

pytestmark = pytest.mark.django_db
ORDERS = reverse("execution:orders")
CREATE = reverse("execution:order_create")
POSITIONS = reverse("execution:positions")
JOURNAL = reverse("execution:journal")


@pytest.fixture
def owner_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def market(instrument):
    """AAPL at 100 with volume, so paper market orders fill at once."""
    BarFactory(instrument=instrument, volume=1_000_000)
    return instrument


def submit(account, side="buy", qty="10", symbol="AAPL", **kw):
    return order_submit(
        account=account, intent=OrderIntent(symbol=symbol, side=side, quantity=Decimal(qty), **kw)
    )


def ticket(account, **overrides):
    data = {
        "account": account.pk,
        "symbol": "aapl",
        "side": "buy",
        "quantity": "10",
        "order_type": "market",
        "time_in_force": "day",
        "limit_price": "",
        "stop_price": "",
        "client_order_id": "",
    }
    data.update(overrides)
    return data


def nothing_written():
    return not (Order.objects.exists() or Fill.objects.exists() or OrderEvent.objects.exists())


@pytest.mark.parametrize(
    "url",
    [
        ORDERS,
        POSITIONS,
        JOURNAL,
        reverse("execution:order_detail", args=[1]),
        reverse("execution:trade_edit", args=[1]),
    ],
)
def test_pages_require_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(
        reverse("accounts:login")
    )


# --- orders -------------------------------------------------------------------------------


def test_orders_page_has_ticket_and_own_orders_only(owner_client, account, other_account, market):
    mine = submit(account)
    theirs = submit(other_account)
    body = owner_client.get(ORDERS).content.decode()
    assert 'data-testid="order-form"' in body and 'name="quantity"' in body
    assert f'data-order="{mine.pk}"' in body and f'data-order="{theirs.pk}"' not in body
    assert "Filled" in body
    assert '<option value="AAPL">' in body  # symbol suggestions
    assert "Mallory paper" not in body  # not even in the account choices


def test_ticket_prefills_symbol_and_account_from_the_query(owner_client, account, market):
    body = owner_client.get(ORDERS, {"trade": "aapl", "account": account.pk}).content.decode()
    assert 'name="symbol" value="AAPL"' in body


def test_market_order_over_htmx_fills_and_refreshes_tables(owner_client, account, market):
    response = owner_client.post(CREATE, ticket(account), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="order-ticket-body"' in body and "<html" not in body
    order = Order.objects.get()
    assert order.source == "manual" and order.status == "filled" and order.quantity == Decimal("10")
    assert f"Order {order.pk} filled" in body
    assert 'name="quantity" value=' not in body  # a fresh ticket, quantity cleared
    triggers = response["HX-Trigger"]
    assert "orders-changed" in triggers and "positions-changed" in triggers


def test_market_order_without_htmx_redirects_with_a_message(owner_client, account, market):
    response = owner_client.post(CREATE, ticket(account), follow=True)
    assert response.redirect_chain[-1][0] == f"{ORDERS}?account={account.pk}"
    assert "filled" in response.content.decode()


def test_limit_order_without_price_is_an_inline_error_and_writes_nothing(
    owner_client, account, market
):
    response = owner_client.post(
        CREATE, ticket(account, order_type="limit"), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert 'data-error-for="limit_price"' in body
    assert "Limit price is required for a limit order." in body
    assert nothing_written()


def test_limit_order_rests_and_can_be_cancelled(owner_client, account, market):
    response = owner_client.post(
        CREATE,
        ticket(account, order_type="limit", limit_price="90", time_in_force="gtc"),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    order = Order.objects.get()
    assert order.status == "accepted"
    body = owner_client.get(ORDERS, {"status": "open"}, HTTP_HX_REQUEST="true").content.decode()
    assert (
        f'data-order="{order.pk}"' in body
        and reverse("execution:order_cancel", args=[order.pk]) in body
    )
    response = owner_client.post(
        reverse("execution:order_cancel", args=[order.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert response.content.decode().strip().startswith(f'<tr id="order-{order.pk}"')
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert order.events.last().source == "manual"


def test_price_of_an_unused_type_is_ignored(owner_client, account, market):
    response = owner_client.post(
        CREATE, ticket(account, limit_price="99", stop_price="98"), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert Order.objects.get().limit_price is None


def test_cancel_a_filled_order_is_a_409_on_the_row(owner_client, account, market):
    order = submit(account)
    response = owner_client.post(
        reverse("execution:order_cancel", args=[order.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 409
    assert "cannot be cancelled" in response.content.decode()


def test_duplicate_client_order_id_is_a_409_inline(owner_client, account, market):
    submit(account, client_order_id="mine-1")
    before = OrderEvent.objects.count()
    response = owner_client.post(
        CREATE, ticket(account, client_order_id="mine-1"), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 409
    body = response.content.decode()
    assert 'data-error-for="client_order_id"' in body and "Already used on this account." in body
    assert Order.objects.count() == 1 and OrderEvent.objects.count() == before


def test_halted_account_is_a_409_form_error(owner_client, account, market):
    account_halt(account=account, reason="daily loss limit")
    response = owner_client.post(CREATE, ticket(account), HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    body = response.content.decode()
    assert (
        'data-testid="form-errors"' in body
        and "Trading is halted on Alice paper: daily loss limit." in body
    )
    assert nothing_written()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"symbol": "NOPE"}, "symbol"),
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "abc"}, "quantity"),
        ({"quantity": "1.5"}, "quantity"),  # lot size 1
        ({"side": "hold"}, "side"),
        ({"order_type": "stop", "stop_price": "-1"}, "stop_price"),
        ({"order_type": "limit", "limit_price": "100.001"}, "limit_price"),  # tick 0.01
    ],
)
def test_bad_tickets_are_inline_422_and_write_nothing(
    owner_client, account, market, overrides, field
):
    response = owner_client.post(CREATE, ticket(account, **overrides), HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert f'data-error-for="{field}"' in response.content.decode()
    assert nothing_written()


def test_another_users_account_cannot_be_used(owner_client, account, other_account, market):
    response = owner_client.post(CREATE, ticket(other_account), HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert 'data-error-for="account"' in response.content.decode()
    assert nothing_written()


def test_invalid_ticket_without_htmx_renders_the_whole_page(owner_client, account, market):
    response = owner_client.post(CREATE, ticket(account, quantity=""))
    assert response.status_code == 422
    body = response.content.decode()
    assert "<html" in body and 'data-error-for="quantity"' in body and 'id="orders-table"' in body


def test_blotter_filters(owner_client, user, account, market):
    InstrumentFactory(symbol="MSFT")
    BarFactory(instrument=InstrumentFactory(symbol="MSFT"), volume=1_000_000)
    aapl = submit(account)
    msft = submit(account, symbol="MSFT")
    resting = submit(account, order_type="limit", limit_price=Decimal("50"), time_in_force="gtc")

    def shown(**query):
        body = owner_client.get(ORDERS, query, HTTP_HX_REQUEST="true").content.decode()
        return {pk for pk in (aapl.pk, msft.pk, resting.pk) if f'data-order="{pk}"' in body}

    assert shown() == {aapl.pk, msft.pk, resting.pk}
    assert shown(symbol="msft") == {msft.pk}
    assert shown(status="open") == {resting.pk}
    assert shown(status="filled", symbol="AAPL") == {aapl.pk}
    assert shown(account=account.pk) == {aapl.pk, msft.pk, resting.pk}
    assert shown(status="bogus") == {aapl.pk, msft.pk, resting.pk}  # bad filter ignored


def test_blotter_with_another_users_account_is_404(owner_client, other_account):
    assert owner_client.get(ORDERS, {"account": other_account.pk}).status_code == 404
    assert owner_client.get(ORDERS, {"account": "junk"}).status_code == 404


def test_order_detail_shows_fills_and_history(owner_client, account, market):
    order = submit(account)
    response = owner_client.get(reverse("execution:order_detail", args=[order.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert (
        'id="fills-table"' in body and "paper-" in body and "1,000.00" in body
    )  # notional 10 x 100
    for status in ("New", "Submitted", "Accepted", "Filled"):
        assert status in body
    partial = owner_client.get(
        reverse("execution:order_detail", args=[order.pk]), HTTP_HX_REQUEST="true"
    )
    assert (
        'id="order-detail"' in partial.content.decode() and "<html" not in partial.content.decode()
    )


def test_another_users_order_is_404(owner_client, other_account, market):
    order = submit(
        other_account, order_type="limit", limit_price=Decimal("50"), time_in_force="gtc"
    )
    assert owner_client.get(reverse("execution:order_detail", args=[order.pk])).status_code == 404
    assert owner_client.post(reverse("execution:order_cancel", args=[order.pk])).status_code == 404
    order.refresh_from_db()
    assert order.status == "accepted"


# --- positions ----------------------------------------------------------------------------


def test_positions_with_market_value_and_pnl(owner_client, account, other_account, market):
    submit(account)
    submit(other_account)
    market.last_price = Decimal("110.00")
    market.save()
    body = owner_client.get(POSITIONS).content.decode()
    assert 'data-symbol="AAPL"' in body
    assert "1,100.00" in body  # market value 10 x 110
    assert "+100.00" in body and "+10.00%" in body  # unrealized
    assert "Mallory paper" not in body
    assert 'hx-trigger="positions-changed from:body' in body


def test_positions_partial_and_account_filter(owner_client, user, account, market):
    submit(account)
    response = owner_client.get(POSITIONS, {"account": account.pk}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert 'id="positions-table"' in body and "<html" not in body and 'data-symbol="AAPL"' in body


def test_positions_of_another_users_account_is_404(owner_client, other_account):
    assert owner_client.get(POSITIONS, {"account": other_account.pk}).status_code == 404


def test_positions_empty_state(owner_client, account):
    assert "No open positions" in owner_client.get(POSITIONS).content.decode()


# --- journal ------------------------------------------------------------------------------


@pytest.fixture
def closed_trade(account, market):
    submit(account)
    market.last_price = Decimal("110.00")
    market.save()
    submit(account, side="sell")
    return Trade.objects.get(account=account)


def test_journal_lists_trades_with_summary(owner_client, closed_trade, other_account):
    body = owner_client.get(JOURNAL).content.decode()
    assert f'data-trade="{closed_trade.pk}"' in body
    assert "Closed trades" in body and "+100.00" in body and "100.0%" in body  # win rate


def test_journal_filters(owner_client, account, closed_trade):
    trade = closed_trade

    def shown(**query):
        response = owner_client.get(JOURNAL, query, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        return f'data-trade="{trade.pk}"' in response.content.decode()

    today = trade.entry_time.date()
    assert shown(direction="long", status="closed", symbol="aapl", account=account.pk)
    assert not shown(direction="short")
    assert not shown(status="open")
    assert shown(date_from=today.isoformat(), date_to=today.isoformat())
    assert not shown(date_from=(today + timedelta(days=2)).isoformat())
    assert not shown(tag="breakout")
    Tag.objects.create(owner=account.owner, name="breakout").trades.add(trade)
    assert shown(tag="Breakout")


@pytest.mark.parametrize(
    "query",
    [
        {"date_from": "yesterday"},
        {"date_from": "2026-02-10", "date_to": "2026-02-01"},
        {"date_to": "0001-01-01"},
    ],
)
def test_journal_bad_dates_are_reported_not_500(owner_client, closed_trade, query):
    response = owner_client.get(JOURNAL, query)
    assert response.status_code == 200
    assert "field-errors" in response.content.decode()


def test_journal_of_another_users_account_is_404(owner_client, other_account):
    assert owner_client.get(JOURNAL, {"account": other_account.pk}).status_code == 404


def test_trade_inline_edit_round_trip(owner_client, closed_trade):
    edit_url = reverse("execution:trade_edit", args=[closed_trade.pk])
    form = owner_client.get(edit_url, HTTP_HX_REQUEST="true").content.decode()
    assert 'class="editing"' in form and 'name="notes"' in form and "<html" not in form
    response = owner_client.post(
        edit_url,
        {"notes": "Waited for the retest.", "tags": "Breakout, earnings, breakout"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert (
        body.strip().startswith(f'<tr id="trade-{closed_trade.pk}"')
        and "Waited for the retest." in body
    )
    closed_trade.refresh_from_db()
    assert closed_trade.notes == "Waited for the retest."
    assert sorted(closed_trade.tags.values_list("name", flat=True)) == ["breakout", "earnings"]
    row = owner_client.get(
        reverse("execution:trade_row", args=[closed_trade.pk]), HTTP_HX_REQUEST="true"
    )
    assert "earnings" in row.content.decode()


def test_trade_edit_error_is_inline_and_writes_nothing(owner_client, closed_trade):
    response = owner_client.post(
        reverse("execution:trade_edit", args=[closed_trade.pk]),
        {"notes": "changed", "tags": "x" * 51},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    assert "A tag is at most 50 characters." in response.content.decode()
    closed_trade.refresh_from_db()
    assert closed_trade.notes == "" and not closed_trade.tags.exists()


def test_trade_edit_without_htmx_is_a_page(owner_client, closed_trade):
    url = reverse("execution:trade_edit", args=[closed_trade.pk])
    assert "<html" in owner_client.get(url).content.decode()
    response = owner_client.post(url, {"notes": "plain form", "tags": ""})
    assert response.status_code == 302 and response["Location"] == JOURNAL


def test_another_users_trade_is_404(owner_client, other_account, market):
    submit(other_account)
    trade = Trade.objects.get(account=other_account)
    for name in ("trade_edit", "trade_row"):
        assert owner_client.get(reverse(f"execution:{name}", args=[trade.pk])).status_code == 404
    response = owner_client.post(
        reverse("execution:trade_edit", args=[trade.pk]), {"notes": "mine now"}
    )
    assert response.status_code == 404
    trade.refresh_from_db()
    assert trade.notes == ""


def test_journal_times_follow_the_users_time_zone(owner_client, user, closed_trade):
    closed_trade.entry_time = datetime(2026, 1, 5, 23, 30, tzinfo=UTC)
    closed_trade.save()
    user.time_zone = "Asia/Tokyo"
    user.save()
    assert "Jan 6, 08:30" in owner_client.get(JOURNAL).content.decode()


def test_positions_table_after_a_round_trip_is_empty(owner_client, closed_trade):
    assert Position.objects.get().quantity == 0
    assert "No open positions" in owner_client.get(POSITIONS).content.decode()
