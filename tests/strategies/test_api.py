"""The strategy library and the user's strategies through /api/v1/."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.strategies.domain.registry import strategy_kinds
from apps.strategies.models import Strategy
from tests.factories import InstrumentFactory, StrategyFactory, TradingAccountFactory

pytestmark = pytest.mark.django_db

KINDS = "/api/v1/strategy-kinds/"
STRATEGIES = "/api/v1/strategies/"


@pytest.fixture
def symbols(db):
    InstrumentFactory(symbol="AAPL")
    InstrumentFactory(symbol="MSFT")
    return ["AAPL", "MSFT"]


def strategy_body(for_account, **overrides):
    body = {
        "name": "Trend",
        "description": "Golden cross on megacaps",
        "account": for_account.pk,
        "kind": "sma_crossover",
        "params": {"fast": "20", "slow": 50},
        "symbols": ["aapl", "MSFT"],
        "timeframe": "1h",
        "mode": "paper",
    }
    body.update(overrides)
    return body


# --- kinds --------------------------------------------------------------------------------


def test_strategy_kinds_list_the_library_with_parameter_specs(api_client):
    response = api_client.get(KINDS)
    assert response.status_code == 200
    body = response.json()
    assert [row["kind"] for row in body] == [s.kind for s in strategy_kinds()]
    sma = next(row for row in body if row["kind"] == "sma_crossover")
    assert sma["label"] == "SMA crossover"
    fast = next(p for p in sma["params"] if p["name"] == "fast")
    assert fast["type"] == "int" and fast["default"] == 10
    assert fast["minimum"] == 2 and fast["maximum"] == 500
    assert sma["defaults"] == {"fast": 10, "slow": 30, "allow_short": False}


def test_one_strategy_kind(api_client):
    response = api_client.get(KINDS + "sma_crossover/")
    assert response.status_code == 200 and response.json()["kind"] == "sma_crossover"
    response = api_client.get(KINDS + "martingale/")
    assert response.status_code == 404
    assert response.json()["detail"] == "No strategy kind 'martingale'."


def test_strategy_kinds_need_authentication():
    assert APIClient().get(KINDS).status_code == 401


# --- create -------------------------------------------------------------------------------


def test_create_strategy(api_client, user, account, symbols):
    response = api_client.post(STRATEGIES, strategy_body(account), format="json")

    assert response.status_code == 201, response.json()
    strategy = Strategy.objects.get()
    body = response.json()
    assert body["id"] == strategy.pk
    assert strategy.owner == user and strategy.account == account
    # Parameters are stored coerced and completed with defaults.
    assert strategy.params == {"fast": 20, "slow": 50, "allow_short": False}
    assert body["params"] == strategy.params
    assert sorted(strategy.symbols) == ["AAPL", "MSFT"]
    assert sorted(body["symbols"]) == ["AAPL", "MSFT"]
    assert (strategy.kind, strategy.timeframe, strategy.mode) == ("sma_crossover", "1h", "paper")
    assert body["account"] == account.pk
    assert set(body) == {
        "id",
        "name",
        "description",
        "account",
        "kind",
        "params",
        "symbols",
        "timeframe",
        "mode",
        "sizing_method",
        "sizing_params",
        "entry_order_type",
        "limit_offset_bps",
        "reprice_limit",
        "created_at",
        "updated_at",
    }


def test_create_with_defaults(api_client, account, symbols):
    body = strategy_body(account)
    for optional in ("params", "timeframe", "mode", "description"):
        body.pop(optional)
    response = api_client.post(STRATEGIES, body, format="json")
    assert response.status_code == 201
    strategy = Strategy.objects.get()
    assert strategy.params == {"fast": 10, "slow": 30, "allow_short": False}
    assert (strategy.timeframe, strategy.mode, strategy.description) == ("1d", "off", "")


@pytest.mark.parametrize(
    ("overrides", "field", "detail"),
    [
        ({"params": {"fast": 1}}, "params.fast", "Invalid parameters: fast: must be at least 2"),
        ({"params": {"fast": "ten"}}, "params.fast", "fast: must be an integer"),
        ({"params": {"fast": 40, "slow": 20}}, "params.slow", "slow: must be greater than fast"),
        ({"params": {"speed": 3}}, "params.speed", "speed: unknown parameter"),
        ({"params": [1, 2]}, "params", 'Expected a dictionary of items but got type "list"'),
        ({"kind": "martingale"}, "kind", "unknown strategy kind 'martingale'"),
        ({"symbols": ["AAPL", "NOPE"]}, "symbols", "Unknown symbol: NOPE."),
        ({"symbols": []}, "symbols", "Choose at least one symbol."),
        ({"symbols": "AAPL"}, "symbols", 'Expected a list of items but got type "str"'),
        ({"timeframe": "2m"}, "timeframe", '"2m" is not a valid choice.'),
        ({"mode": "yolo"}, "mode", '"yolo" is not a valid choice.'),
        ({"name": ""}, "name", "This field may not be blank."),
        ({"name": "x" * 101}, "name", "no more than 100 characters"),
        ({"account": None}, "account", "This field may not be null."),
        ({"account": "first"}, "account", "An account id is a whole number."),
        ({"account": 987654}, "account", "No such account."),
    ],
)
def test_invalid_strategy_is_400_naming_the_field(
    api_client, account, symbols, overrides, field, detail
):
    response = api_client.post(STRATEGIES, strategy_body(account, **overrides), format="json")

    assert response.status_code == 400
    body = response.json()
    assert field in body["errors"]
    assert detail in body["detail"]
    assert not Strategy.objects.exists()


def test_duplicate_strategy_name_is_409(api_client, account, symbols):
    assert api_client.post(STRATEGIES, strategy_body(account), format="json").status_code == 201
    response = api_client.post(STRATEGIES, strategy_body(account), format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_name"
    assert Strategy.objects.count() == 1


# --- read, update, delete -----------------------------------------------------------------


@pytest.fixture
def strategy(user, account, symbols):
    aapl = InstrumentFactory(symbol="AAPL")
    return StrategyFactory(owner=user, account=account, name="Mine", instruments=[aapl])


def test_list_retrieve_and_filters(api_client, user, account, strategy):
    live = StrategyFactory(
        owner=user,
        account=account,
        name="Live one",
        kind="rsi_mean_reversion",
        params={},
        mode="live",
        timeframe="5m",
    )

    def names(query=""):
        response = api_client.get(STRATEGIES + query)
        assert response.status_code == 200, response.json()
        return [row["name"] for row in response.json()["results"]]

    assert names() == ["Live one", "Mine"]
    assert names("?mode=live") == ["Live one"]
    assert names("?kind=sma_crossover") == ["Mine"]
    assert names("?timeframe=1d") == ["Mine"]
    assert names(f"?account={account.pk}&ordering=-name") == ["Mine", "Live one"]
    assert names("?search=live") == ["Live one"]
    assert api_client.get(STRATEGIES + "?mode=sleepy").status_code == 400
    assert api_client.get(STRATEGIES + "?account=one").status_code == 400

    response = api_client.get(f"{STRATEGIES}{live.pk}/")
    assert response.status_code == 200
    assert response.json()["kind"] == "rsi_mean_reversion"
    assert api_client.get(f"{STRATEGIES}999999/").status_code == 404


def test_patch_changes_only_what_is_sent(api_client, strategy):
    response = api_client.patch(
        f"{STRATEGIES}{strategy.pk}/",
        {"params": {"fast": 5, "slow": 15}, "mode": "paper"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    strategy.refresh_from_db()
    assert strategy.params == {"fast": 5, "slow": 15, "allow_short": False}
    assert strategy.mode == "paper" and strategy.name == "Mine"
    assert response.json()["symbols"] == ["AAPL"]


def test_patch_symbols_and_kind(api_client, strategy):
    response = api_client.patch(
        f"{STRATEGIES}{strategy.pk}/",
        {"kind": "rsi_mean_reversion", "symbols": ["MSFT"]},
        format="json",
    )
    assert response.status_code == 200
    strategy.refresh_from_db()
    assert strategy.kind == "rsi_mean_reversion"
    assert strategy.params["period"] == 14  # a new kind starts from its defaults
    assert strategy.symbols == ["MSFT"]
    assert response.json()["symbols"] == ["MSFT"]


def test_invalid_patch_changes_nothing(api_client, strategy):
    before = (strategy.params, strategy.name, strategy.mode)
    response = api_client.patch(
        f"{STRATEGIES}{strategy.pk}/",
        {"name": "Renamed", "params": {"fast": 0}},
        format="json",
    )
    assert response.status_code == 400
    assert "params.fast" in response.json()["errors"]
    response = api_client.patch(
        f"{STRATEGIES}{strategy.pk}/", {"name": "Renamed", "symbols": ["NOPE"]}, format="json"
    )
    assert response.status_code == 400
    strategy.refresh_from_db()
    assert (strategy.params, strategy.name, strategy.mode) == before
    assert strategy.symbols == ["AAPL"]


def test_move_to_another_own_account(api_client, user, strategy):
    other = TradingAccountFactory(owner=user, name="Second")
    response = api_client.patch(f"{STRATEGIES}{strategy.pk}/", {"account": other.pk}, format="json")
    assert response.status_code == 200
    strategy.refresh_from_db()
    assert strategy.account == other


def test_put_replaces_and_requires_the_whole_strategy(api_client, account, strategy):
    response = api_client.put(f"{STRATEGIES}{strategy.pk}/", {"name": "Only name"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"account", "kind", "symbols"}

    response = api_client.put(
        f"{STRATEGIES}{strategy.pk}/", strategy_body(account, name="Replaced"), format="json"
    )
    assert response.status_code == 200
    strategy.refresh_from_db()
    assert strategy.name == "Replaced" and strategy.timeframe == "1h"


def test_rename_to_a_taken_name_is_409(api_client, user, account, strategy):
    StrategyFactory(owner=user, account=account, name="Taken")
    response = api_client.patch(f"{STRATEGIES}{strategy.pk}/", {"name": "Taken"}, format="json")
    assert response.status_code == 409
    strategy.refresh_from_db()
    assert strategy.name == "Mine"


def test_delete(api_client, strategy):
    response = api_client.delete(f"{STRATEGIES}{strategy.pk}/")
    assert response.status_code == 204
    assert not Strategy.objects.exists()
    assert api_client.delete(f"{STRATEGIES}{strategy.pk}/").status_code == 404


def test_strategies_need_authentication(account, strategy):
    client = APIClient()
    assert client.get(STRATEGIES).status_code == 401
    assert client.post(STRATEGIES, strategy_body(account), format="json").status_code == 401
    assert client.delete(f"{STRATEGIES}{strategy.pk}/").status_code == 401
    assert Strategy.objects.count() == 1


def test_list_does_not_query_per_strategy(api_client, user, account, symbols):
    StrategyFactory(owner=user, account=account)
    with CaptureQueriesContext(connection) as one:
        api_client.get(STRATEGIES)
    for _ in range(4):
        StrategyFactory(owner=user, account=account)
    with CaptureQueriesContext(connection) as five:
        response = api_client.get(STRATEGIES)
    assert response.json()["count"] == 5
    assert len(five) == len(one)
