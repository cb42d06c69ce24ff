"""The risk API as a client calls it: rules (CRUD, bulk, what-if test), the libraries, position
sizing, the account's risk snapshot, trading state, events, and risk in POST /orders/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.accounts.models import TradingAccount
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Fill, Order, OrderEvent, Position
from apps.execution.services import order_submit
from apps.risk.domain.types import CheckResult, Severity
from apps.risk.models import RiskEvent, RiskRule, TradingStateChange
from apps.risk.services import RuleInput, risk_event_raise, risk_rule_create
from tests.factories import BarFactory, InstrumentFactory, StrategyFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/"
RULES = API + "risk-rules/"
EVENTS = API + "risk-events/"


@pytest.fixture
def market(instrument):
    """AAPL at 100.00 with plenty of volume, so market orders fill at once."""
    BarFactory(instrument=instrument, volume=1_000_000)
    return instrument


def rule_body(account, **overrides):
    body = {
        "account": account.pk,
        "rule_type": "max_position_size",
        "params": {"mode": "money", "limit": 5000},
        "name": "5k cap",
    }
    body.update(overrides)
    return body


def make_rule(account, rule_type="max_position_size", params=None, **kw):
    return risk_rule_create(
        owner=account.owner,
        account=account,
        data=RuleInput(rule_type=rule_type, params=params or {}, **kw),
    )


def buy(account, qty="10", symbol="AAPL"):
    return order_submit(
        account=account,
        intent=OrderIntent(symbol=symbol, side="buy", quantity=Decimal(qty)),
        source="manual",
    )


def raise_event(account, *, code="LEVERAGE_EXCEEDED", severity="breach", rule=None, at=None):
    check = CheckResult(
        code=code,
        passed=False,
        severity=Severity.BREACH,
        message=f"{code} happened.",
        value=2.5,
        limit=2.0,
        subject=code.lower(),
    )
    event, _ = risk_event_raise(
        account=account, rule=rule, check=check, severity=severity, now=at or timezone.now()
    )
    return event


def counts() -> dict:
    models = (RiskRule, RiskEvent, TradingStateChange, Order, OrderEvent, Fill, Position)
    return {model.__name__: model.objects.count() for model in models}


# --- rule types and rules -----------------------------------------------------------------


def test_rule_types_describe_every_type_with_its_parameters(api_client):
    response = api_client.get(API + "risk-rule-types/")
    assert response.status_code == 200
    types = {t["type"]: t for t in response.json()}
    assert len(types) == 10
    limit = {p["name"]: p for p in types["max_position_size"]["params"]}
    assert limit["limit"]["type"] == "float" and limit["mode"]["choices"] == [
        "pct_equity",
        "money",
        "units",
    ]
    assert types["daily_loss"]["reason_code"] == "DAILY_LOSS_LIMIT"
    assert types["stop_loss"]["supports_warning_level"] is False
    one = api_client.get(API + "risk-rule-types/leverage/")
    assert one.status_code == 200 and one.json()["defaults"] == {"max_leverage": 2.0}
    missing = api_client.get(API + "risk-rule-types/nope/")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_create_a_rule_fills_defaults_and_answers_it(api_client, account):
    response = api_client.post(
        RULES,
        rule_body(account, params={"limit": "7.5"}, warning_level=0.8, escalate_after_minutes=30),
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    rule = RiskRule.objects.get()
    assert body["id"] == rule.pk and body["account"] == account.pk
    assert body["params"] == {"mode": "pct_equity", "limit": 7.5}  # "7.5" coerced, mode default
    assert body["warning_level"] == 0.8 and body["action"] == "block" and body["enabled"] is True
    assert body["strategy"] is None and body["breach_state"] == "none"
    assert body["escalate_after_minutes"] == 30
    assert rule.owner == account.owner and rule.params == {"mode": "pct_equity", "limit": 7.5}
    assert rule.warning_level == Decimal("0.8")


BAD_PARAMS = [
    ("max_position_size", {"limit": 0}, "params.limit", "greater than 0"),
    ("daily_loss", {"limit": 150}, "params.limit", "below 100"),
    ("max_drawdown", {"limit_pct": 100}, "params.limit_pct", "below 100"),
    ("correlation", {"threshold": 1.5}, "params.threshold", "at most 1"),
    ("leverage", {"max_leverage": -1}, "params.max_leverage", "at least 0"),
    ("position_limit", {"max_positions": 0}, "params.max_positions", "at least 1"),
    ("sector_limit", {"limit_pct": "lots"}, "params.limit_pct", "must be a number"),
    ("stop_loss", {"mode": "ticks"}, "params.mode", "must be one of"),
    ("take_profit", {"value": 0}, "params.value", "greater than 0"),
    ("cooldown", {"minutes": 1.5}, "params.minutes", "must be an integer"),
    ("leverage", {"leverage": 3}, "params.leverage", "unknown"),
]


@pytest.mark.parametrize(("rule_type", "params", "field", "words"), BAD_PARAMS)
def test_a_bad_parameter_is_a_400_naming_it_and_nothing_is_saved(
    api_client, account, rule_type, params, field, words
):
    response = api_client.post(
        RULES, rule_body(account, rule_type=rule_type, params=params), format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["errors"]) == [field]
    assert words in body["errors"][field][0] and words in body["detail"]
    assert RiskRule.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"rule_type": "vibes"}, "rule_type"),
        ({"warning_level": 1.5}, "warning_level"),
        ({"action": "panic"}, "action"),
        ({"breach_state": "frozen"}, "breach_state"),
        ({"escalate_after_minutes": 0}, "escalate_after_minutes"),
        ({"params": ["limit", 5]}, "params"),
        ({"enabled": "maybe"}, "enabled"),
    ],
)
def test_bad_rule_fields_are_400s_naming_them(api_client, account, overrides, field):
    response = api_client.post(RULES, rule_body(account, **overrides), format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert RiskRule.objects.count() == 0


def test_a_rule_scoped_to_a_strategy_must_be_one_of_that_accounts(
    api_client, user, account, instrument
):
    strategy = StrategyFactory(owner=user, account=account, instruments=[instrument])
    elsewhere = StrategyFactory(owner=user, instruments=[instrument])  # another of her accounts
    scoped = api_client.post(RULES, rule_body(account, strategy=strategy.pk), format="json")
    assert scoped.status_code == 201 and scoped.json()["strategy"] == strategy.pk
    wrong = api_client.post(RULES, rule_body(account, strategy=elsewhere.pk), format="json")
    assert wrong.status_code == 400
    assert wrong.json()["errors"]["strategy"] == ["The strategy trades another account."]
    assert RiskRule.objects.get().strategy == strategy


def test_list_filters_rules(api_client, user, account, instrument):
    strategy = StrategyFactory(owner=user, account=account, instruments=[instrument])
    cap = make_rule(account, params={"limit": 10})
    lev = make_rule(account, "leverage", enabled=False)
    scoped = make_rule(account, "position_limit", strategy_id=strategy.pk)
    second = TradingAccount.objects.create(owner=user, name="Second")
    other = make_rule(second, "cooldown")

    def ids(query=""):
        response = api_client.get(RULES + query)
        assert response.status_code == 200
        return {row["id"] for row in response.json()["results"]}

    assert ids() == {cap.pk, lev.pk, scoped.pk, other.pk}
    assert ids(f"?account={account.pk}") == {cap.pk, lev.pk, scoped.pk}
    assert ids("?rule_type=leverage") == {lev.pk}
    assert ids("?enabled=false") == {lev.pk}
    assert ids(f"?strategy={strategy.pk}") == {scoped.pk}
    assert ids(f"?account={account.pk}&account_wide=true") == {cap.pk, lev.pk}
    assert api_client.get(RULES + "?rule_type=vibes").status_code == 400


def test_retrieve_patch_put_and_delete_a_rule(api_client, account):
    rule = make_rule(account, params={"mode": "money", "limit": 5000}, name="cap")
    url = f"{RULES}{rule.pk}/"
    assert api_client.get(url).json()["params"] == {"mode": "money", "limit": 5000.0}

    patched = api_client.patch(url, {"params": {"mode": "money", "limit": 8000}}, format="json")
    assert patched.status_code == 200 and patched.json()["params"]["limit"] == 8000.0
    assert patched.json()["name"] == "cap"  # untouched by a PATCH
    rule.refresh_from_db()
    assert rule.params["limit"] == 8000.0

    retyped = api_client.patch(url, {"rule_type": "leverage"}, format="json")
    assert retyped.json()["params"] == {"max_leverage": 2.0}  # the new type's defaults

    replaced = api_client.put(
        url, {"account": account.pk, "rule_type": "position_limit", "action": "warn"}, "json"
    )
    assert replaced.status_code == 200
    assert replaced.json()["name"] == "" and replaced.json()["action"] == "warn"
    assert replaced.json()["params"] == {"max_positions": 10}

    bad = api_client.patch(url, {"params": {"max_positions": -3}}, format="json")
    assert bad.status_code == 400 and "params.max_positions" in bad.json()["errors"]
    rule.refresh_from_db()
    assert rule.params == {"max_positions": 10}  # unchanged

    assert api_client.delete(url).status_code == 204
    assert not RiskRule.objects.exists()


def test_a_rule_cannot_move_to_another_account(api_client, user, account):
    rule = make_rule(account)
    second = TradingAccount.objects.create(owner=user, name="Second")
    response = api_client.patch(f"{RULES}{rule.pk}/", {"account": second.pk}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["account"] == ["A rule cannot move to another account."]
    rule.refresh_from_db()
    assert rule.account == account


# --- bulk ---------------------------------------------------------------------------------


def test_bulk_applies_every_operation_in_order(api_client, account):
    keep = make_rule(account, "leverage")
    drop = make_rule(account, "cooldown")
    pause = make_rule(account, "position_limit")
    operations = [
        {"op": "create", "account": account.pk, "rule_type": "daily_loss"},  # no params
        {"op": "update", "id": keep.pk, "params": {"max_leverage": 1.5}, "name": "1.5x"},
        {"op": "disable", "id": pause.pk},
        {"op": "delete", "id": drop.pk},
    ]
    response = api_client.post(RULES + "bulk/", {"operations": operations}, format="json")
    assert response.status_code == 200, response.json()
    results = response.json()["results"]
    assert [(r["index"], r["op"]) for r in results] == [
        (0, "create"),
        (1, "update"),
        (2, "disable"),
        (3, "delete"),
    ]
    created = RiskRule.objects.get(rule_type="daily_loss")
    assert results[0]["id"] == created.pk and results[0]["rule"]["params"]["limit"] == 2.0
    assert results[1]["rule"]["name"] == "1.5x" and results[2]["rule"]["enabled"] is False
    assert results[3] == {"index": 3, "op": "delete", "id": drop.pk, "rule": None}
    keep.refresh_from_db()
    pause.refresh_from_db()
    assert keep.params == {"max_leverage": 1.5} and pause.enabled is False
    assert not RiskRule.objects.filter(pk=drop.pk).exists()


def test_bulk_is_all_or_nothing_with_errors_per_item(api_client, account, other_account):
    keep = make_rule(account, "leverage", params={"max_leverage": 2})
    before = counts()
    operations = [
        {"op": "create", "account": account.pk, "rule_type": "cooldown"},  # fine on its own
        {"op": "update", "id": keep.pk, "params": {"max_leverage": 0}},
        {"op": "create", "account": other_account.pk, "rule_type": "leverage"},
        {"op": "delete", "id": keep.pk},  # fine on its own
        {"op": "explode", "id": keep.pk},
    ]
    response = api_client.post(RULES + "bulk/", operations, format="json")  # a bare list
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "bulk_invalid"
    assert body["detail"] == "3 of 5 operations are invalid; nothing was saved."
    items = {item["index"]: item for item in body["errors"]["items"]}
    assert set(items) == {1, 2, 4}
    assert "params.max_leverage" in items[1]["errors"]
    assert items[2]["errors"] == {"account": "No such account."}
    assert "op" in items[4]["errors"]
    assert counts() == before
    keep.refresh_from_db()
    assert keep.params == {"max_leverage": 2.0}


def test_bulk_reports_badly_typed_items_and_refuses_an_empty_list(api_client, account):
    response = api_client.post(
        RULES + "bulk/",
        {"operations": [{"op": "create", "account": account.pk, "rule_type": "leverage"}, 5]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"]["items"] == [
        {"index": 1, "detail": "Each operation is an object.", "errors": {}}
    ]
    typed = api_client.post(
        RULES + "bulk/",
        [{"op": "create", "account": account.pk, "rule_type": "leverage", "name": ["x"]}],
        format="json",
    )
    assert typed.status_code == 400
    assert typed.json()["errors"]["items"][0]["index"] == 0
    assert "name" in typed.json()["errors"]["items"][0]["errors"]
    empty = api_client.post(RULES + "bulk/", {"operations": []}, format="json")
    assert empty.status_code == 400 and "operations" in empty.json()["errors"]
    assert RiskRule.objects.count() == 0


# --- the what-if test ---------------------------------------------------------------------


def test_the_order_test_answers_the_decision_and_writes_nothing(api_client, account, market):
    rule = make_rule(account, params={"mode": "money", "limit": 5000}, name="5k cap")
    make_rule(account, "stop_loss", params={"mode": "pct", "value": 2})
    before = counts()
    response = api_client.post(
        RULES + "test/",
        {"account": account.pk, "symbol": "aapl", "side": "buy", "quantity": "80"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    decision = response.json()
    assert decision["outcome"] == "reduced"
    assert decision["requested_quantity"] == 80 and decision["quantity"] == 50
    assert decision["reason_codes"] == ["MAX_POSITION_SIZE_EXCEEDED"]
    assert decision["stop_loss_price"] == 98.0  # 2% below the entry, attached by the rule
    cap = next(c for c in decision["checks"] if c["rule_id"] == rule.pk)
    assert cap["passed"] is False and cap["limit"] == 5000 and cap["value"] == 8000
    assert cap["max_quantity"] == 50 and "5,000" in cap["message"]
    assert {c["check"] for c in decision["checks"]} >= {"trading_state", "buying_power"}
    assert counts() == before  # no order, no event, nothing


def test_the_order_test_refuses_what_a_real_order_would(api_client, account, market):
    make_rule(account, params={"mode": "units", "limit": 5}, action="block")
    response = api_client.post(
        RULES + "test/",
        {
            "account": account.pk,
            "symbol": "AAPL",
            "side": "buy",
            "quantity": "10",
            "order_type": "limit",
            "limit_price": "99.50",
            "take_profit_price": "90",  # below a long entry: on the wrong side
        },
        format="json",
    )
    assert response.status_code == 200
    decision = response.json()
    assert decision["outcome"] == "rejected" and decision["quantity"] == 0
    assert "INVALID_TAKE_PROFIT" in decision["reason_codes"]
    assert RiskEvent.objects.count() == 0 and Order.objects.count() == 0


def test_the_order_test_validates_its_input(api_client, user, account, market):
    unknown = api_client.post(
        RULES + "test/",
        {"account": account.pk, "symbol": "ZZZZ", "side": "buy", "quantity": "1"},
        format="json",
    )
    assert unknown.status_code == 400 and unknown.json()["errors"]["symbol"] == ["Unknown symbol."]
    zero = api_client.post(
        RULES + "test/",
        {"account": account.pk, "symbol": "AAPL", "side": "buy", "quantity": "0"},
        format="json",
    )
    assert zero.status_code == 400 and "quantity" in zero.json()["errors"]
    elsewhere = StrategyFactory(owner=user)
    wrong = api_client.post(
        RULES + "test/",
        {
            "account": account.pk,
            "symbol": "AAPL",
            "side": "buy",
            "quantity": "1",
            "strategy": elsewhere.pk,
        },
        format="json",
    )
    assert wrong.status_code == 400
    assert wrong.json()["errors"]["strategy"] == ["The strategy trades another account."]


# --- position sizing ----------------------------------------------------------------------


def test_sizing_methods_are_described(api_client):
    response = api_client.get(API + "position-size/methods/")
    assert response.status_code == 200
    methods = {m["method"]: m for m in response.json()}
    assert set(methods) == {
        "fixed_quantity",
        "fixed_money",
        "pct_equity",
        "pct_risk",
        "volatility",
        "kelly",
    }
    assert methods["pct_risk"]["needs_stop_price"] is True


def test_position_size_explains_its_arithmetic_and_caps(api_client, account, market):
    make_rule(account, params={"mode": "money", "limit": 20000})
    response = api_client.post(
        API + "position-size/",
        {
            "account": account.pk,
            "symbol": "AAPL",
            "method": "pct_risk",
            "params": {"risk_pct": 1},
            "stop_price": 98,
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    result = response.json()
    # 1% of 100,000 = 1,000 at risk over a 2.00 stop distance = 500, capped at 20,000 / 100.
    assert result["quantity"] == 200 and result["notional"] == 20000
    assert result["capped_by"] == ["max_position_value"] and result["risk_amount"] == 400
    assert result["steps"][0] == "Risk budget = equity 100,000.00 x 1% = 1,000.00"
    assert any("Capped by the max position value" in step for step in result["steps"])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"params": {"risk_pct": 0}}, "params.risk_pct"),
        ({"stop_price": None}, "stop_price"),
        ({"stop_price": 120}, "stop_price"),
        ({"method": "martingale"}, "method"),
        ({"symbol": "ZZZZ"}, "symbol"),
        ({"params": {"risk_pct": 1, "leverage": 5}}, "params.leverage"),
    ],
)
def test_position_size_bad_input_is_a_400_naming_it(api_client, account, market, overrides, field):
    body = {
        "account": account.pk,
        "symbol": "AAPL",
        "method": "pct_risk",
        "params": {"risk_pct": 1},
        "stop_price": 98,
    }
    body.update(overrides)
    response = api_client.post(API + "position-size/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()


# --- the account's risk and trading state -------------------------------------------------


def daily_history(instrument, closes):
    start = datetime(2025, 10, 1, tzinfo=UTC)
    for day, close in enumerate(closes):
        BarFactory(
            instrument=instrument,
            timeframe="1d",
            ts=start + timedelta(days=day),
            open=close,
            high=close * 1.01,
            low=close * 0.99,
            close=close,
        )


def test_account_risk_snapshot(api_client, account, market):
    msft = InstrumentFactory(symbol="MSFT", sector="Technology")
    xom = InstrumentFactory(symbol="XOM", sector="Energy")
    BarFactory(instrument=msft, volume=1_000_000)
    BarFactory(instrument=xom, volume=1_000_000)
    moves = [1, -2, 3, -1, 2, -3, 1, 2, -2, 1, 3, -1, 2, -2, 1]
    for instrument, scale in ((market, 1.0), (msft, 0.5), (xom, -1.0)):
        closes, price = [], 100.0
        for move in moves:
            price *= 1 + scale * move / 100
            closes.append(price)
        daily_history(instrument, closes)
    buy(account, "100")
    buy(account, "50", "MSFT")
    buy(account, "30", "XOM")
    lev = make_rule(account, "leverage", params={"max_leverage": 0.2}, warning_level=0.5)

    response = api_client.get(f"{API}accounts/{account.pk}/risk/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["account"] == account.pk
    assert body["trading_state"]["state"] == "active"
    assert body["gross_exposure"] == pytest.approx(18000)
    assert body["leverage"] == pytest.approx(0.18, rel=1e-3)
    assert {s["sector"] for s in body["sectors"]} == {"Technology", "Energy"}
    correlation = body["correlation"]
    assert correlation["symbols"] == ["AAPL", "MSFT", "XOM"]
    assert correlation["matrix"][0][1] == pytest.approx(1.0)  # same moves, half the size
    assert correlation["matrix"][0][2] == pytest.approx(-1.0)
    assert body["var"]["confidence"] == 0.95 and body["var"]["value"] > 0
    assert body["unprotected"] == ["AAPL", "MSFT", "XOM"]
    check = next(c for c in body["checks"] if c["rule_id"] == lev.pk)
    assert check["code"] == "NEAR_LIMIT" and check["value"] == pytest.approx(0.18, rel=1e-3)
    assert check["limit"] == 0.2


def test_halt_then_orders_answer_409_then_resume(api_client, user, account, market):
    halted = api_client.post(
        f"{API}accounts/{account.pk}/halt/", {"reason": "news pending"}, format="json"
    )
    assert halted.status_code == 200
    assert halted.json() == {
        "account": account.pk,
        "state": "halted",
        "reason": "news pending",
        "changed_at": halted.json()["changed_at"],
        "changed_by": "alice",
        "rule": None,
        "rule_name": None,
    }
    change = TradingStateChange.objects.get()
    assert (change.from_state, change.to_state, change.changed_by) == ("active", "halted", user)

    refused = api_client.post(
        API + "orders/",
        {"account": account.pk, "symbol": "AAPL", "side": "buy", "quantity": "1"},
        format="json",
    )
    assert refused.status_code == 409 and refused.json()["code"] == "TRADING_HALTED"
    assert "Trading is halted on Alice paper: news pending." in refused.json()["detail"]
    assert refused.json()["risk"]["outcome"] == "rejected"
    assert Order.objects.count() == 0

    snapshot = api_client.get(f"{API}accounts/{account.pk}/risk/").json()
    assert snapshot["trading_state"]["state"] == "halted"
    assert snapshot["trading_state"]["changed_by"] == "alice"

    resumed = api_client.post(f"{API}accounts/{account.pk}/resume/", {}, format="json")
    assert resumed.status_code == 200 and resumed.json()["state"] == "active"
    assert resumed.json()["reason"] == ""
    account.refresh_from_db()
    assert account.status == "active"
    assert TradingStateChange.objects.first().reason == "resumed by alice"
    assert api_client.post(f"{API}accounts/{account.pk}/resume/").status_code == 200  # no-op
    assert TradingStateChange.objects.count() == 2
    too_long = api_client.post(
        f"{API}accounts/{account.pk}/halt/", {"reason": "x" * 256}, format="json"
    )
    assert too_long.status_code == 400 and "reason" in too_long.json()["errors"]


# --- risk in POST /orders/ ----------------------------------------------------------------


def test_a_breached_rule_makes_an_order_422_with_the_reason_and_no_order(
    api_client, account, market
):
    rule = make_rule(account, "position_limit", params={"max_positions": 1}, name="one at a time")
    buy(account, "10")
    msft = InstrumentFactory(symbol="MSFT")
    BarFactory(instrument=msft, volume=1_000_000)
    orders_before = Order.objects.count()
    response = api_client.post(
        API + "orders/",
        {"account": account.pk, "symbol": "MSFT", "side": "buy", "quantity": "5"},
        format="json",
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "POSITION_LIMIT_EXCEEDED"
    assert body["detail"].startswith("Order rejected by risk checks:")
    assert body["risk"]["outcome"] == "rejected"
    failed = next(c for c in body["risk"]["checks"] if c["rule_id"] == rule.pk)
    assert (failed["value"], failed["limit"]) == (2, 1)
    assert Order.objects.count() == orders_before
    assert not Position.objects.filter(instrument=msft).exists()
    event = RiskEvent.objects.get(source="pre_trade")
    assert event.code == "POSITION_LIMIT_EXCEEDED" and event.symbol == "MSFT"


def test_a_reduced_order_answers_201_with_the_smaller_quantity(api_client, account, market):
    make_rule(account, params={"mode": "money", "limit": 5000})
    response = api_client.post(
        API + "orders/",
        {"account": account.pk, "symbol": "AAPL", "side": "buy", "quantity": "80"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert Decimal(body["quantity"]) == Decimal("50") and body["status"] == "filled"
    assert body["risk_decision"]["outcome"] == "reduced"
    assert body["risk_decision"]["requested_quantity"] == 80
    assert body["risk_decision"]["reason_codes"] == ["MAX_POSITION_SIZE_EXCEEDED"]
    assert Order.objects.get().quantity == Decimal("50")
    detail = api_client.get(f"{API}orders/{body['id']}/").json()
    assert detail["risk_decision"]["message"].startswith("Approved 50 of 80")


# --- events -------------------------------------------------------------------------------


def test_events_list_filters_and_retrieve(api_client, account):
    earlier = timezone.now() - timedelta(days=2)
    old = raise_event(account, code="DAILY_LOSS_LIMIT", severity="warning", at=earlier)
    new = raise_event(account, code="LEVERAGE_EXCEEDED", severity="breach")
    new.acknowledged_at = timezone.now()
    new.save()

    def ids(query=""):
        response = api_client.get(EVENTS + query)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [new.pk, old.pk]  # newest first
    assert ids("?severity=warning") == [old.pk]
    assert ids("?code=leverage_exceeded") == [new.pk]
    assert ids("?acknowledged=false") == [old.pk]
    assert ids("?acknowledged=true") == [new.pk]
    assert ids("?source=monitor") == [new.pk, old.pk]
    assert ids("?source=pre_trade") == []
    cutoff = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"?created_after={cutoff}") == [new.pk]
    assert ids(f"?created_before={cutoff}") == [old.pk]
    assert ids(f"?account={account.pk}") == [new.pk, old.pk]
    assert api_client.get(EVENTS + "?severity=apocalyptic").status_code == 400
    one = api_client.get(f"{EVENTS}{old.pk}/").json()
    assert one["code"] == "DAILY_LOSS_LIMIT" and one["severity"] == "warning"
    assert one["value"] == 2.5 and one["limit"] == 2.0 and one["acknowledged"] is False


def test_acknowledge_one_event(api_client, user, account):
    event = raise_event(account)
    response = api_client.post(f"{EVENTS}{event.pk}/acknowledge/")
    assert response.status_code == 200
    assert response.json()["acknowledged"] is True
    assert response.json()["acknowledged_by"] == "alice"
    event.refresh_from_db()
    assert event.acknowledged_at is not None and event.acknowledged_by == user
    first = event.acknowledged_at
    again = api_client.post(f"{EVENTS}{event.pk}/acknowledge/")
    assert again.status_code == 200
    event.refresh_from_db()
    assert event.acknowledged_at == first  # twice changes nothing


def test_acknowledge_many_events_all_or_nothing(api_client, account, other_account):
    mine = [raise_event(account, code=code) for code in ("A_ONE", "A_TWO", "A_THREE")]
    theirs = raise_event(other_account, code="B_ONE")
    refused = api_client.post(
        EVENTS + "acknowledge/", {"ids": [mine[0].pk, theirs.pk]}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json()["errors"]["ids"] == [f"No such event: {theirs.pk}."]
    assert not RiskEvent.objects.filter(acknowledged_at__isnull=False).exists()

    response = api_client.post(
        EVENTS + "acknowledge/", {"ids": [mine[0].pk, mine[1].pk]}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["acknowledged"] == 2
    assert [row["id"] for row in response.json()["results"]] == [mine[0].pk, mine[1].pk]
    assert set(
        RiskEvent.objects.filter(acknowledged_at__isnull=False).values_list("pk", flat=True)
    ) == {mine[0].pk, mine[1].pk}
    again = api_client.post(EVENTS + "acknowledge/", {"ids": [mine[1].pk]}, format="json")
    assert again.json()["acknowledged"] == 0
    empty = api_client.post(EVENTS + "acknowledge/", {"ids": []}, format="json")
    assert empty.status_code == 400 and "ids" in empty.json()["errors"]


def test_the_api_needs_authentication(client):
    for path in (RULES, EVENTS, API + "risk-rule-types/", API + "position-size/methods/"):
        assert client.get(path).status_code in (401, 403)
