"""Every page: login required, and junk input never answers a 500."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

PAGES = [
    reverse("dashboard"),
    reverse("accounts:list"),
    reverse("marketdata:instruments"),
    reverse("marketdata:instrument", args=["AAPL"]),
    reverse("strategies:list"),
    reverse("strategies:create"),
    reverse("strategies:params"),
    reverse("execution:orders"),
    reverse("execution:positions"),
    reverse("execution:journal"),
]
JUNK = [
    "",
    "x",
    "-1",
    "0",
    "99999999999999999999999",
    "1.5",
    "\u00e9\u6f22",
    "a\x00b",
    "' OR 1=1 --",
]
PARAMS = [
    "account",
    "partial",
    "page",
    "status",
    "symbol",
    "q",
    "sector",
    "tradable",
    "tf",
    "bars",
    "direction",
    "tag",
    "date_from",
    "date_to",
    "kind",
    "strategy",
    "trade",
]


@pytest.mark.parametrize("url", PAGES)
def test_pages_require_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(
        reverse("accounts:login")
    )


@pytest.mark.parametrize("url", PAGES)
@pytest.mark.parametrize("junk", JUNK)
def test_junk_query_strings_never_500(client, user, account, instrument, url, junk):
    client.force_login(user)
    for htmx in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = client.get(url, dict.fromkeys(PARAMS, junk), **htmx)
        assert response.status_code in (200, 404), (url, junk, response.status_code)


@pytest.mark.parametrize("junk", JUNK)
def test_junk_posts_never_500(client, user, account, instrument, junk):
    client.force_login(user)
    fields = [
        "account",
        "symbol",
        "side",
        "quantity",
        "order_type",
        "time_in_force",
        "limit_price",
        "stop_price",
        "client_order_id",
        "name",
        "cash",
        "kind",
        "symbols",
        "timeframe",
        "mode",
        "param_fast",
        "param_slow",
        "notes",
        "tags",
    ]
    data = dict.fromkeys(fields, junk)
    for url in (
        reverse("execution:order_create"),
        reverse("accounts:list"),
        reverse("strategies:create"),
    ):
        response = client.post(url, data, HTTP_HX_REQUEST="true")
        assert response.status_code in (200, 409, 422), (url, junk, response.status_code)


@pytest.mark.parametrize("symbol", ["NOPE", "a%00b", "BTC/USD", "x" * 200])
def test_unknown_instrument_paths_are_404(client, user, symbol):
    client.force_login(user)
    assert client.get(f"/markets/{symbol}/").status_code == 404
