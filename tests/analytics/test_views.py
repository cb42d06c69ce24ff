"""The dashboard: one of the user's accounts, its figures, positions, orders and curve."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.accounts.services import equity_snapshot_take
from apps.execution.domain.intents import OrderIntent
from apps.execution.services import order_submit
from tests.factories import BarFactory, TradingAccountFactory

pytestmark = pytest.mark.django_db
URL = reverse("dashboard")


@pytest.fixture
def owner_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def filled_buy(account, instrument):
    BarFactory(instrument=instrument, volume=1_000_000)
    return order_submit(
        account=account, intent=OrderIntent(symbol="AAPL", side="buy", quantity=Decimal("10"))
    )


def test_requires_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:login')}?next=/"


def test_without_accounts_invites_to_open_one(owner_client):
    response = owner_client.get(URL)
    assert response.status_code == 200
    assert "You have no trading account yet" in response.content.decode()


def test_shows_figures_positions_and_recent_orders_of_the_first_account(owner_client, filled_buy):
    response = owner_client.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Alice paper" in body
    for label in (
        "Equity",
        "Cash",
        "Positions value",
        "Day PnL",
        "Unrealized PnL",
        "Realized PnL",
        "Drawdown",
    ):
        assert label in body
    assert "99,000.00" in body  # cash after buying 10 @ 100
    assert "100,000.00" in body  # equity
    assert 'id="positions-table"' in body and 'data-symbol="AAPL"' in body
    assert 'id="orders-table"' in body and f'data-order="{filled_buy.pk}"' in body
    assert 'hx-trigger="orders-changed from:body' in body
    assert 'hx-trigger="positions-changed from:body' in body


def test_selects_another_own_account(owner_client, account, user):
    second = TradingAccountFactory(owner=user, name="Second")
    body = owner_client.get(URL, {"account": second.pk}).content.decode()
    assert "<h1>Second</h1>" in body
    assert f'<option value="{account.pk}">' in body  # the switcher offers the others


@pytest.mark.parametrize("value", ["abc", "-1", "99999999"])
def test_bad_or_unknown_account_is_404(owner_client, account, value):
    assert owner_client.get(URL, {"account": value}).status_code == 404


def test_another_users_account_is_404(owner_client, account, other_account):
    assert owner_client.get(URL, {"account": other_account.pk}).status_code == 404


@pytest.mark.parametrize(
    ("partial", "marker"),
    [
        ("summary", 'id="account-summary"'),
        ("positions", 'id="positions-table"'),
        ("orders", 'id="orders-table"'),
    ],
)
def test_htmx_partials(owner_client, filled_buy, partial, marker):
    response = owner_client.get(
        URL, {"account": filled_buy.account_id, "partial": partial}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert marker in body and "<html" not in body
    assert "HX-Request" in response["Vary"]


def test_partial_without_htmx_is_the_whole_page(owner_client, account):
    response = owner_client.get(URL, {"partial": "orders"})
    assert "<html" in response.content.decode()


def test_equity_curve_from_snapshots(owner_client, account):
    start = datetime(2026, 1, 5, 15, tzinfo=UTC)
    for hours in range(3):
        equity_snapshot_take(account=account, now=start + timedelta(hours=hours))
    body = owner_client.get(URL).content.decode()
    assert 'data-chart="equity"' in body and "plotly/plotly.min.js" in body
    data = body.split('<script id="equity-data" type="application/json">')[1].split("</script>")[0]
    curve = json.loads(data)
    assert len(curve["x"]) == len(curve["equity"]) >= 3
    assert curve["equity"][-1] == 100000.0


def test_equity_curve_placeholder_without_snapshots(owner_client, account):
    body = owner_client.get(URL).content.decode()
    assert "plotly.min.js" not in body
    assert "The curve appears once" in body
