"""Market pages: the instrument list and one instrument's chart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from tests.factories import BarFactory, InstrumentFactory

pytestmark = pytest.mark.django_db
LIST = reverse("marketdata:instruments")


@pytest.fixture
def owner_client(client, user):
    client.force_login(user)
    return client


def chart_data(body: str) -> dict:
    return json.loads(
        body.split('<script id="chart-data" type="application/json">')[1].split("</script>")[0]
    )


def test_requires_login(client, instrument):
    for url in (LIST, reverse("marketdata:instrument", args=["AAPL"])):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(
            reverse("accounts:login")
        )


def test_list_shows_price_sector_exchange_and_tradable(owner_client, instrument):
    InstrumentFactory(
        symbol="ZZZ", name="Halted Co", sector="Energy", exchange="NYSE", tradable=False
    )
    body = owner_client.get(LIST).content.decode()
    assert 'data-symbol="AAPL"' in body and "Apple Inc." in body and "Technology" in body
    assert "NASDAQ" in body and "100.00" in body
    assert 'data-symbol="ZZZ"' in body and "Not tradable" in body  # the filter's option
    assert f'href="{reverse("execution:orders")}?trade=AAPL"' in body


def test_list_filters_and_htmx_partial(owner_client, instrument):
    InstrumentFactory(symbol="XOM", name="Exxon", sector="Energy")
    response = owner_client.get(LIST, {"sector": "Energy"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert 'data-symbol="XOM"' in body and 'data-symbol="AAPL"' not in body
    body = owner_client.get(LIST, {"q": "appl"}).content.decode()
    assert 'data-symbol="AAPL"' in body and 'data-symbol="XOM"' not in body


def test_list_ignores_bad_filter_values(owner_client, instrument):
    response = owner_client.get(LIST, {"sector": "Nope", "tradable": "maybe", "page": "x"})
    assert response.status_code == 200
    assert 'data-symbol="AAPL"' in response.content.decode()


def test_detail_draws_the_last_bars_of_the_chosen_timeframe(owner_client, instrument):
    start = datetime(2026, 1, 5, tzinfo=UTC)
    for day in range(30):
        BarFactory(
            instrument=instrument, timeframe="1d", ts=start + timedelta(days=day), close=100.0 + day
        )
    response = owner_client.get(
        reverse("marketdata:instrument", args=["aapl"]), {"tf": "1d", "bars": "20"}
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-chart="candles"' in body and "plotly/plotly.min.js" in body
    data = chart_data(body)
    assert len(data["x"]) == 20 and data["x"][-1] == "2026-02-03"
    assert data["close"][-1] == 129.0
    assert set(data) >= {"open", "high", "low", "close", "volume"}


def test_detail_timeframe_switch_is_an_htmx_partial(owner_client, instrument):
    BarFactory(instrument=instrument, timeframe="1m")
    response = owner_client.get(
        reverse("marketdata:instrument", args=["AAPL"]), {"tf": "1m"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert 'id="chart-panel"' in body and "<html" not in body
    assert len(chart_data(body)["x"]) == 1


@pytest.mark.parametrize(
    "query", [{"tf": "7w"}, {"bars": "-3"}, {"bars": "lots"}, {"bars": "999999"}]
)
def test_detail_bad_chart_input_falls_back_to_defaults(owner_client, instrument, query):
    response = owner_client.get(reverse("marketdata:instrument", args=["AAPL"]), query)
    assert response.status_code == 200
    assert "No 1d bars for AAPL yet." in response.content.decode()


def test_detail_unknown_symbol_is_404(owner_client):
    assert owner_client.get(reverse("marketdata:instrument", args=["NOPE"])).status_code == 404


def test_plotly_is_served_locally(owner_client):
    from django.contrib.staticfiles import finders

    assert finders.find("plotly/plotly.min.js")
