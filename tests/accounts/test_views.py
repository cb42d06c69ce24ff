"""The trading accounts page: listing with valuations and opening a paper account."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apps.accounts.models import TradingAccount

pytestmark = pytest.mark.django_db
URL = reverse("accounts:list")


@pytest.fixture
def owner_client(client, user):
    client.force_login(user)
    return client


def test_requires_login(client):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith(
        reverse("accounts:login")
    )


def test_lists_own_accounts_with_equity_and_status(owner_client, account, other_account):
    body = owner_client.get(URL).content.decode()
    assert account.name in body
    assert "100,000.00" in body
    assert "Active" in body
    assert other_account.name not in body


def test_open_account_redirects_and_lists_it(owner_client, user):
    response = owner_client.post(URL, {"name": "Swing", "cash": "25000"})
    assert response.status_code == 302
    created = TradingAccount.objects.get(owner=user, name="Swing")
    assert created.cash == Decimal("25000")
    assert "Opened Swing." in owner_client.get(URL).content.decode()


def test_open_account_over_htmx_returns_the_panel_with_a_toast(owner_client, user):
    response = owner_client.post(URL, {"name": "Swing", "cash": "1000"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith("{% load") is False
    assert 'id="accounts-panel"' in body and "<html" not in body
    assert "Swing" in body
    assert "toast" in response["HX-Trigger"]


def test_duplicate_name_is_an_inline_error_and_writes_nothing(owner_client, account):
    response = owner_client.post(
        URL, {"name": account.name, "cash": "1000"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 409
    assert "You already have an account with this name." in response.content.decode()
    assert TradingAccount.objects.filter(owner=account.owner).count() == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "cash": "10"}, "This field is required."),
        ({"name": "X", "cash": "-5"}, "Ensure this value is greater than or equal to 0."),
        ({"name": "X", "cash": "lots"}, "Enter a number."),
    ],
)
def test_bad_input_is_inline_422(owner_client, user, data, message):
    response = owner_client.post(URL, data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not TradingAccount.objects.filter(owner=user).exists()
