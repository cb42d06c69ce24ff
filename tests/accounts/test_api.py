"""API tokens, trading accounts and their equity curve through /api/v1/."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.accounts.models import EquitySnapshot, TradingAccount
from apps.accounts.services import equity_snapshot_take
from apps.execution.domain.intents import OrderIntent
from apps.execution.services import order_submit
from tests.factories import PASSWORD, BarFactory, TradingAccountFactory

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"
ACCOUNTS = "/api/v1/accounts/"


# --- tokens -------------------------------------------------------------------------------


def test_token_for_good_credentials_authenticates_later_calls(user):
    client = APIClient()
    response = client.post(TOKEN, {"username": "alice", "password": PASSWORD}, format="json")

    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(user=user).key == token
    # The same token again, not a new one.
    again = client.post(TOKEN, {"username": "alice", "password": PASSWORD}, format="json")
    assert again.json()["token"] == token

    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(ACCOUNTS).status_code == 200


def test_token_accepts_form_posts(user):
    response = APIClient().post(TOKEN, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200 and response.json()["token"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"username": "alice", "password": "wrong"}, "Unable to log in with provided credentials."),
        (
            {"username": "nobody", "password": PASSWORD},
            "Unable to log in with provided credentials.",
        ),
        ({"username": "alice"}, "password: This field is required."),
        ({}, "username: This field is required."),
    ],
)
def test_bad_credentials_are_a_clear_400(user, body, detail):
    response = APIClient().post(TOKEN, body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == detail
    assert response.json()["code"] == "invalid"
    assert not Token.objects.exists()


def test_inactive_user_gets_no_token(user):
    user.is_active = False
    user.save()
    response = APIClient().post(TOKEN, {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 400
    assert not Token.objects.exists()


def test_bad_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    response = client.get(ACCOUNTS)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token.", "code": "authentication_failed"}


def test_session_authentication_works(user, account):
    client = APIClient()
    client.force_login(user)
    response = client.get(ACCOUNTS)
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [account.pk]


def test_session_writes_need_csrf(user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(ACCOUNTS, {"name": "Sneaky"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not TradingAccount.objects.filter(name="Sneaky").exists()


def test_api_root_needs_authentication(api_client):
    assert APIClient().get("/api/v1/").status_code == 401
    assert "accounts" in api_client.get("/api/v1/").json()


def test_unknown_api_urls_are_json_404(api_client):
    response = api_client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    response = api_client.post("/api/v1/accounts", {"name": "x"}, format="json")
    assert response.status_code == 404
    assert "end with a slash" in response.json()["detail"]


# --- accounts -----------------------------------------------------------------------------


def test_list_values_each_account(api_client, account, instrument):
    BarFactory(instrument=instrument, volume=1e6)
    order_submit(
        account=account,
        intent=OrderIntent(symbol="AAPL", side="buy", quantity=Decimal("10")),
        source="manual",
    )
    equity_snapshot_take(account=account)  # start of day at 100000
    instrument.last_price = Decimal("120.00")
    instrument.save()
    second = TradingAccountFactory(owner=account.owner, name="Second", cash=Decimal("500"))

    response = api_client.get(ACCOUNTS)

    assert response.status_code == 200
    first, other = response.json()["results"]
    assert first["id"] == account.pk and other["id"] == second.pk
    assert first["name"] == "Alice paper" and first["broker"] == "paper"
    assert first["cash"] == "99000.0000"
    assert first["positions_value"] == "1200.0000"
    assert first["equity"] == "100200.0000"
    assert first["unrealized_pnl"] == "200.0000"
    assert first["realized_pnl"] == "0.0000"
    assert first["day_pnl"] == "200.0000"
    assert first["drawdown_pct"] == "0.00"
    assert other["equity"] == "500.0000" and other["day_pnl"] is None


def test_create_paper_account_with_default_cash(api_client, user):
    response = api_client.post(ACCOUNTS, {"name": "  Swing  "}, format="json")

    assert response.status_code == 201, response.json()
    account = TradingAccount.objects.get(owner=user, name="Swing")
    assert response.json()["id"] == account.pk
    assert account.broker == "paper"
    assert account.cash == account.initial_cash == settings.PAPER_DEFAULT_CASH
    assert response.json()["equity"] == f"{settings.PAPER_DEFAULT_CASH:.4f}"
    # Opening an account takes its first (start-of-day) snapshot.
    assert account.snapshots.get().kind == "start_of_day"


def test_create_with_starting_cash_as_string_or_number(api_client, user):
    assert (
        api_client.post(ACCOUNTS, {"name": "A", "cash": "2500.50"}, format="json").status_code
        == 201
    )
    assert api_client.post(ACCOUNTS, {"name": "B", "cash": 0}, format="json").status_code == 201
    assert TradingAccount.objects.get(name="A").cash == Decimal("2500.50")
    assert TradingAccount.objects.get(name="B").cash == Decimal("0")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cash": "1000"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "Neg", "cash": "-1"}, "cash"),
        ({"name": "NaN", "cash": "NaN"}, "cash"),
        ({"name": "Inf", "cash": "Infinity"}, "cash"),
        ({"name": "Txt", "cash": "lots"}, "cash"),
        ({"name": "Fine", "cash": "1.00001"}, "cash"),
    ],
)
def test_invalid_account_is_400_and_writes_nothing(api_client, user, body, field):
    response = api_client.post(ACCOUNTS, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert response.json()["detail"].startswith(f"{field}: ")
    assert not TradingAccount.objects.exists()


def test_duplicate_account_name_is_409(api_client, account):
    response = api_client.post(ACCOUNTS, {"name": "Alice paper"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_name"
    assert TradingAccount.objects.count() == 1


def test_rename(api_client, account):
    response = api_client.patch(f"{ACCOUNTS}{account.pk}/", {"name": "Renamed"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"
    account.refresh_from_db()
    assert account.name == "Renamed"


def test_rename_refusals(api_client, account):
    TradingAccountFactory(owner=account.owner, name="Taken")
    response = api_client.patch(f"{ACCOUNTS}{account.pk}/", {"name": "Taken"}, format="json")
    assert response.status_code == 409
    response = api_client.patch(f"{ACCOUNTS}{account.pk}/", {"name": ""}, format="json")
    assert response.status_code == 400
    account.refresh_from_db()
    assert account.name == "Alice paper"


def test_only_the_name_changes_and_accounts_are_not_deleted(api_client, account):
    response = api_client.patch(
        f"{ACCOUNTS}{account.pk}/", {"name": "N", "cash": "1000000000"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "cash: Read-only: only the name can be changed."
    account.refresh_from_db()
    assert account.cash == Decimal("100000") and account.name == "Alice paper"
    assert (
        api_client.put(f"{ACCOUNTS}{account.pk}/", {"name": "P"}, format="json").status_code == 405
    )
    assert api_client.delete(f"{ACCOUNTS}{account.pk}/").status_code == 405
    assert TradingAccount.objects.filter(pk=account.pk).exists()


def test_account_filters(api_client, account):
    halted = TradingAccountFactory(owner=account.owner, name="Halted", status="halted")
    response = api_client.get(ACCOUNTS + "?status=halted")
    assert [row["id"] for row in response.json()["results"]] == [halted.pk]
    assert api_client.get(ACCOUNTS + "?status=asleep").status_code == 400
    response = api_client.get(ACCOUNTS + "?ordering=-name")
    assert [row["name"] for row in response.json()["results"]] == ["Halted", "Alice paper"]


# --- equity curve -------------------------------------------------------------------------


def test_equity_curve_with_from_and_to(api_client, account):
    for day in (5, 6, 7):
        equity_snapshot_take(account=account, now=datetime(2026, 1, day, 15, tzinfo=UTC))
    url = f"{ACCOUNTS}{account.pk}/equity/"

    response = api_client.get(url)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [row["taken_at"] for row in body["results"]] == [
        "2026-01-05T15:00:00Z",
        "2026-01-06T15:00:00Z",
        "2026-01-07T15:00:00Z",
    ]
    assert body["results"][0]["equity"] == "100000.0000"
    assert body["results"][0]["kind"] == "start_of_day"

    response = api_client.get(url + "?from=2026-01-06&to=2026-01-07T15:00:00Z")
    assert [row["trading_date"] for row in response.json()["results"]] == ["2026-01-06"]
    response = api_client.get(url + "?from=2026-01-06T00:00:00%2B00:00")
    assert response.json()["count"] == 2
    assert api_client.get(url + "?kind=intraday").json()["count"] == 0


@pytest.mark.parametrize("query", ["from=tomorrow", "to=2026-02-30", "kind=hourly"])
def test_equity_curve_bad_filters_are_400(api_client, account, query):
    response = api_client.get(f"{ACCOUNTS}{account.pk}/equity/?{query}")
    assert response.status_code == 400
    name = query.split("=")[0]
    assert name in response.json()["errors"]


def test_equity_curve_of_unknown_account_is_404(api_client, account):
    assert api_client.get(f"{ACCOUNTS}999999/equity/").status_code == 404
    assert EquitySnapshot.objects.count() == 0
