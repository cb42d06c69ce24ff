"""Instruments and bars through /api/v1/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.marketdata.models import Bar, Instrument
from tests.factories import BarFactory, InstrumentFactory

pytestmark = pytest.mark.django_db

INSTRUMENTS = "/api/v1/instruments/"
BARS = "/api/v1/bars/"
T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


# --- instruments --------------------------------------------------------------------------


@pytest.fixture
def universe(db):
    return {
        "AAPL": InstrumentFactory(symbol="AAPL", name="Apple Inc.", sector="Technology"),
        "XOM": InstrumentFactory(
            symbol="XOM", name="Exxon Mobil", sector="Energy", exchange="NYSE"
        ),
        "BRK.B": InstrumentFactory(
            symbol="BRK.B", name="Berkshire Hathaway", sector="Financials", exchange="NYSE"
        ),
        "SPY": InstrumentFactory(
            symbol="SPY", name="SPDR S&P 500", sector="", asset_class="etf", tradable=False
        ),
    }


def symbols(response):
    assert response.status_code == 200, response.json()
    return [row["symbol"] for row in response.json()["results"]]


def test_every_user_sees_every_instrument(api_client, other_api_client, universe):
    expected = ["AAPL", "BRK.B", "SPY", "XOM"]
    assert symbols(api_client.get(INSTRUMENTS)) == expected
    assert symbols(other_api_client.get(INSTRUMENTS)) == expected


def test_instrument_fields(api_client, universe):
    row = api_client.get(INSTRUMENTS + "?search=apple").json()["results"][0]
    aapl = universe["AAPL"]
    assert row == {
        "id": aapl.pk,
        "symbol": "AAPL",
        "name": "Apple Inc.",
        "asset_class": "us_equity",
        "exchange": "NASDAQ",
        "sector": "Technology",
        "currency": "USD",
        "lot_size": "1.00000000",
        "tick_size": "0.01000000",
        "tradable": True,
        "last_price": "100.00000000",
        "last_price_at": row["last_price_at"],
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("asset_class=etf", ["SPY"]),
        ("sector=energy", ["XOM"]),
        ("exchange=nyse", ["BRK.B", "XOM"]),
        ("tradable=false", ["SPY"]),
        ("tradable=true&exchange=NASDAQ", ["AAPL"]),
        ("search=berk", ["BRK.B"]),
        ("search=sp", ["SPY"]),
        ("ordering=-symbol", ["XOM", "SPY", "BRK.B", "AAPL"]),
        ("ordering=not_a_field", ["AAPL", "BRK.B", "SPY", "XOM"]),
    ],
)
def test_instrument_filters(api_client, universe, query, expected):
    assert symbols(api_client.get(f"{INSTRUMENTS}?{query}")) == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [("tradable=maybe", "tradable"), ("asset_class=stock", "asset_class")],
)
def test_bad_instrument_filters_are_400(api_client, universe, query, field):
    response = api_client.get(f"{INSTRUMENTS}?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_search_with_nul_character_never_500(api_client, universe):
    response = api_client.get(INSTRUMENTS + "?search=a%00b")
    assert response.status_code in (200, 400)


def test_lookup_by_symbol_case_insensitive(api_client, universe):
    response = api_client.get(INSTRUMENTS + "aapl/")
    assert response.status_code == 200
    assert response.json()["id"] == universe["AAPL"].pk
    assert api_client.get(INSTRUMENTS + "BRK.B/").json()["name"] == "Berkshire Hathaway"


def test_unknown_symbol_is_404(api_client, universe):
    response = api_client.get(INSTRUMENTS + "NOPE/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No instrument with symbol 'NOPE'.", "code": "not_found"}


def test_instruments_are_read_only(api_client, universe):
    assert api_client.post(INSTRUMENTS, {"symbol": "NEW"}).status_code == 405
    assert api_client.patch(INSTRUMENTS + "AAPL/", {"name": "x"}).status_code == 405
    assert api_client.delete(INSTRUMENTS + "AAPL/").status_code == 405
    assert Instrument.objects.get(symbol="AAPL").name == "Apple Inc."
    assert Instrument.objects.count() == 4


def test_instruments_need_authentication(universe):
    assert APIClient().get(INSTRUMENTS).status_code == 401
    assert APIClient().get(INSTRUMENTS + "AAPL/").status_code == 401


# --- bars ---------------------------------------------------------------------------------


@pytest.fixture
def history(instrument):
    """Ten one-minute bars of AAPL from T0 (open = 100 + i), plus daily bars and other noise."""
    for i in range(10):
        BarFactory(
            instrument=instrument,
            timeframe="1m",
            ts=T0 + timedelta(minutes=i),
            open=100 + i,
            high=101 + i,
            low=99 + i,
            close=100.5 + i,
            volume=1000 * (i + 1),
        )
    BarFactory(instrument=instrument, timeframe="1d", ts=datetime(2026, 1, 5, tzinfo=UTC))
    BarFactory(instrument=InstrumentFactory(symbol="MSFT"), timeframe="1m", ts=T0)
    return instrument


def test_bars_of_one_symbol_and_timeframe_in_time_order(api_client, history):
    response = api_client.get(BARS + "?symbol=aapl&timeframe=1m")

    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None and body["previous"] is None
    assert len(body["results"]) == 10
    assert body["results"][0] == {
        "ts": "2026-01-05T14:30:00Z",
        "open": 100.0,
        "high": 101.0,
        "low": 99.0,
        "close": 100.5,
        "volume": 1000.0,
    }
    stamps = [row["ts"] for row in body["results"]]
    assert stamps == sorted(stamps)
    assert [row["open"] for row in body["results"]] == [100.0 + i for i in range(10)]


def test_bars_start_inclusive_end_exclusive(api_client, history):
    response = api_client.get(
        BARS + "?symbol=AAPL&timeframe=1m&start=2026-01-05T14:32:00Z&end=2026-01-05T09:35:00-05:00"
    )
    assert response.status_code == 200
    assert [row["ts"][11:16] for row in response.json()["results"]] == [
        "14:32",
        "14:33",
        "14:34",
    ]


def test_bars_cursor_pages_through_everything_once(api_client, history):
    url = BARS + "?symbol=AAPL&timeframe=1m&page_size=4"
    seen = []
    pages = 0
    while url:
        response = api_client.get(url)
        assert response.status_code == 200
        seen += [row["ts"] for row in response.json()["results"]]
        url = response.json()["next"]
        pages += 1
    assert pages == 3
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 10


def test_bars_newest_first(api_client, history):
    response = api_client.get(BARS + "?symbol=AAPL&timeframe=1m&ordering=-ts&page_size=2")
    assert [row["ts"][11:16] for row in response.json()["results"]] == ["14:39", "14:38"]


def test_bars_page_is_one_indexed_range_query(api_client, history):
    with CaptureQueriesContext(connection) as queries:
        response = api_client.get(BARS + "?symbol=AAPL&timeframe=1m&page_size=3")
    assert response.status_code == 200
    bar_queries = [q["sql"] for q in queries.captured_queries if "marketdata_bar" in q["sql"]]
    assert len(bar_queries) == 1
    assert "LIMIT 4" in bar_queries[0]  # a keyset page, no COUNT(*) over the history
    assert "COUNT" not in bar_queries[0].upper()


def test_bars_huge_page_size_is_capped(api_client, history):
    response = api_client.get(BARS + "?symbol=AAPL&timeframe=1m&page_size=100000000")
    assert response.status_code == 200 and len(response.json()["results"]) == 10


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("timeframe=1m", "symbol: This query parameter is required."),
        ("symbol=AAPL", "timeframe: This query parameter is required."),
        ("", "symbol: This query parameter is required."),
        ("symbol=&timeframe=1m", "symbol: This query parameter is required."),
        (
            "symbol=AAPL&timeframe=2m",
            'timeframe: "2m" is not a timeframe; use one of 1m, 5m, 15m, 1h, 1d.',
        ),
        ("symbol=NOPE&timeframe=1m", "symbol: Unknown symbol 'NOPE'."),
        ("symbol=AAPL&timeframe=1m&start=yesterday", "start: Datetime has wrong format."),
        ("symbol=AAPL&timeframe=1m&end=2026-02-30", "end: Datetime has wrong format."),
        (
            "symbol=AAPL&timeframe=1m&start=2026-01-06&end=2026-01-05",
            "end: end must be after start.",
        ),
    ],
)
def test_bad_bar_queries_are_400_naming_the_parameter(api_client, history, query, detail):
    response = api_client.get(f"{BARS}?{query}")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)
    assert response.json()["code"] == "invalid"


def test_bad_cursor_is_a_json_404(api_client, history):
    response = api_client.get(BARS + "?symbol=AAPL&timeframe=1m&cursor=garbage")
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor", "code": "not_found"}


def test_bars_are_read_only_and_need_authentication(api_client, history):
    assert APIClient().get(BARS + "?symbol=AAPL&timeframe=1m").status_code == 401
    assert api_client.post(BARS, {"ts": "2026-01-01T00:00:00Z"}).status_code == 405
    assert Bar.objects.count() == 12
