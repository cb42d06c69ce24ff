"""Each user sees and touches only their own objects, on every endpoint and method of the API.

Alice (user A) owns an account with orders, fills, a position, a journal entry, a strategy and
an equity curve; Mallory (user B) has her own. Mallory, through the API, must never see
Alice's objects in a list, gets 404 (never 403, never data) for any of Alice's ids, gets 400
"No such account." when she writes with Alice's account id, and nothing of Alice's changes.
``test_every_route_is_covered`` fails when an endpoint or method is added without a case here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.utils import timezone

from apps.accounts.models import EquitySnapshot, TradingAccount
from apps.accounts.services import equity_snapshot_take
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Fill, Order, OrderEvent, Position, Signal, Tag, Trade
from apps.execution.pipeline import signal_record
from apps.execution.services import order_submit, trade_annotate
from apps.risk.domain.types import CheckResult, Severity
from apps.risk.models import RiskEvent, RiskRule, TradingStateChange
from apps.risk.services import RuleInput, risk_event_raise, risk_rule_create
from apps.strategies.models import Strategy
from tests.factories import BarFactory, InstrumentFactory, StrategyFactory
from tradeplatform.api_urls import router

pytestmark = pytest.mark.django_db

API = "/api/v1/"

# Reference data that every authenticated user shares by design (no owner).
SHARED_ROUTES = {
    ("instrument-list", "get"),
    ("instrument-detail", "get"),
    ("bar-list", "get"),
    ("strategy-kind-list", "get"),
    ("strategy-kind-detail", "get"),
    ("risk-rule-type-list", "get"),
    ("risk-rule-type-detail", "get"),
    ("position-size-methods", "get"),
}


def _risk_objects(owner, account, label: str) -> tuple[RiskRule, RiskEvent]:
    """A (harmless) rule and an event on the account, as the risk services make them."""
    rule = risk_rule_create(
        owner=owner,
        account=account,
        data=RuleInput(rule_type="leverage", params={"max_leverage": 50}, name=f"{label} rule"),
    )
    check = CheckResult(
        code="LEVERAGE_EXCEEDED",
        passed=False,
        severity=Severity.BREACH,
        message=f"{label} event",
        rule_id=rule.pk,
        value=60.0,
        limit=50.0,
    )
    event, _ = risk_event_raise(
        account=account, rule=rule, check=check, severity="breach", now=timezone.now()
    )
    return rule, event


def _round_trip(account, notes: str = "") -> Trade:
    """A closed MSFT round trip through the order service (for attribution and the export)."""
    msft = InstrumentFactory(symbol="MSFT")
    if not msft.bars.exists():
        BarFactory(instrument=msft, volume=1_000_000)
    for side in ("buy", "sell"):
        intent = OrderIntent(symbol="MSFT", side=side, quantity=Decimal("2"))
        order_submit(account=account, intent=intent, source="manual")
    trade = Trade.objects.get(account=account, instrument=msft, status="closed")
    return trade_annotate(trade=trade, notes=notes) if notes else trade


def _signal(strategy, instrument, reason: str) -> Signal:
    return signal_record(
        strategy=strategy,
        instrument=instrument,
        bar_ts=datetime(2026, 3, 2, 15, 0, tzinfo=UTC),
        side="buy",
        target=1,
        strength=1.0,
        reason=reason,
    )


def _buy(account, **kw) -> Order:
    intent = OrderIntent(symbol="AAPL", side="buy", quantity=Decimal("10"), **kw)
    return order_submit(account=account, intent=intent, source="manual")


@pytest.fixture
def world(user, account, other_user, other_account, instrument):
    BarFactory(instrument=instrument, volume=1_000_000)
    a = SimpleNamespace(account=account)
    a.filled = _buy(account)
    a.resting = _buy(account, order_type="limit", limit_price=Decimal("50.00"), time_in_force="gtc")
    a.position = Position.objects.get(account=account)
    a.trade = trade_annotate(
        trade=Trade.objects.get(account=account), notes="secret", tags=["mine"]
    )
    a.strategy = StrategyFactory(owner=user, account=account, name="A", instruments=[instrument])
    equity_snapshot_take(account=account)
    a.rule, a.event = _risk_objects(user, account, "secret")

    b = SimpleNamespace(account=other_account)
    b.filled = _buy(other_account)
    b.resting = _buy(
        other_account, order_type="limit", limit_price=Decimal("40.00"), time_in_force="gtc"
    )
    b.position = Position.objects.get(account=other_account)
    b.trade = Trade.objects.get(account=other_account)
    b.strategy = StrategyFactory(
        owner=other_user, account=other_account, name="B", instruments=[instrument]
    )
    b.rule, b.event = _risk_objects(other_user, other_account, "own")
    # Closed round trips (attribution, CSV export) and a signal of each user's strategy.
    a.closed, b.closed = _round_trip(account, notes="secret"), _round_trip(other_account)
    a.signal = _signal(a.strategy, instrument, "secret crossover")
    b.signal = _signal(b.strategy, instrument, "own crossover")
    return SimpleNamespace(a=a, b=b)


def alice_state(user) -> dict:
    """Everything Alice owns, as plain values, to compare before and after Mallory's calls."""
    accounts = TradingAccount.objects.filter(owner=user)
    return {
        "accounts": list(accounts.values().order_by("pk")),
        "snapshots": list(
            EquitySnapshot.objects.filter(account__owner=user).values().order_by("pk")
        ),
        "strategies": list(Strategy.objects.filter(owner=user).values().order_by("pk")),
        "strategy_symbols": sorted(
            Strategy.objects.filter(owner=user).values_list("pk", "instruments__symbol")
        ),
        "orders": list(Order.objects.filter(account__owner=user).values().order_by("pk")),
        "events": list(
            OrderEvent.objects.filter(order__account__owner=user).values().order_by("pk")
        ),
        "fills": list(Fill.objects.filter(account__owner=user).values().order_by("pk")),
        "positions": list(Position.objects.filter(account__owner=user).values().order_by("pk")),
        "trades": list(Trade.objects.filter(account__owner=user).values().order_by("pk")),
        "trade_tags": sorted(
            Trade.objects.filter(account__owner=user).values_list("pk", "tags__name")
        ),
        "tags": list(Tag.objects.filter(owner=user).values().order_by("pk")),
        "signals": list(Signal.objects.filter(strategy__owner=user).values().order_by("pk")),
        "risk_rules": list(RiskRule.objects.filter(owner=user).values().order_by("pk")),
        "risk_events": list(RiskEvent.objects.filter(account__owner=user).values().order_by("pk")),
        "state_changes": list(
            TradingStateChange.objects.filter(account__owner=user).values().order_by("pk")
        ),
    }


def row_counts() -> dict:
    models = (
        TradingAccount,
        EquitySnapshot,
        Strategy,
        Order,
        OrderEvent,
        Fill,
        Position,
        Trade,
        Tag,
        RiskRule,
        RiskEvent,
        TradingStateChange,
        Signal,
    )
    return {model.__name__: model.objects.count() for model in models}


@dataclass(frozen=True)
class Case:
    route: str  # the router's url name
    method: str
    path: Callable[[SimpleNamespace], str]
    expect: str  # "list" | "404" | "400-account" | "400-field" | "400-bulk" | "own-create"
    body: Callable[[SimpleNamespace], dict | list] | None = None
    # for "list": which of Alice's / Mallory's objects the list would hold
    ids: Callable[[SimpleNamespace], int] | None = None
    # for "400-field": the field the error names
    field: str = ""

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.route}"


def order_body(account):
    return {"account": account.pk, "symbol": "AAPL", "side": "buy", "quantity": "1"}


def rule_body(account, **extra):
    return {"account": account.pk, "rule_type": "leverage", "params": {"max_leverage": 1}, **extra}


def order_test_body(account, **extra):
    return {"account": account.pk, "symbol": "AAPL", "side": "buy", "quantity": "1", **extra}


def strategy_body(account):
    return {
        "name": "Stolen",
        "account": account.pk,
        "kind": "sma_crossover",
        "symbols": ["AAPL"],
    }


CASES = [
    # accounts
    Case("account-list", "get", lambda w: API + "accounts/", "list", ids=lambda o: o.account.pk),
    Case(
        "account-list",
        "post",
        lambda w: API + "accounts/",
        "own-create",
        body=lambda w: {"name": w.a.account.name},
    ),
    Case("account-detail", "get", lambda w: f"{API}accounts/{w.a.account.pk}/", "404"),
    Case(
        "account-detail",
        "patch",
        lambda w: f"{API}accounts/{w.a.account.pk}/",
        "404",
        body=lambda w: {"name": "Hijacked"},
    ),
    Case("account-equity", "get", lambda w: f"{API}accounts/{w.a.account.pk}/equity/", "404"),
    # strategies
    Case(
        "strategy-list", "get", lambda w: API + "strategies/", "list", ids=lambda o: o.strategy.pk
    ),
    Case(
        "strategy-list",
        "get",
        lambda w: f"{API}strategies/?account={w.a.account.pk}",
        "list",
        ids=lambda o: o.strategy.pk,
    ),
    Case(
        "strategy-list",
        "post",
        lambda w: API + "strategies/",
        "400-account",
        body=lambda w: strategy_body(w.a.account),
    ),
    Case("strategy-detail", "get", lambda w: f"{API}strategies/{w.a.strategy.pk}/", "404"),
    Case(
        "strategy-detail",
        "put",
        lambda w: f"{API}strategies/{w.a.strategy.pk}/",
        "404",
        body=lambda w: strategy_body(w.b.account),
    ),
    Case(
        "strategy-detail",
        "patch",
        lambda w: f"{API}strategies/{w.a.strategy.pk}/",
        "404",
        body=lambda w: {"mode": "live"},
    ),
    Case("strategy-detail", "delete", lambda w: f"{API}strategies/{w.a.strategy.pk}/", "404"),
    # Mallory moving her own strategy onto Alice's account
    Case(
        "strategy-detail",
        "patch",
        lambda w: f"{API}strategies/{w.b.strategy.pk}/",
        "400-account",
        body=lambda w: {"account": w.a.account.pk},
    ),
    Case(
        "strategy-detail",
        "put",
        lambda w: f"{API}strategies/{w.b.strategy.pk}/",
        "400-account",
        body=lambda w: strategy_body(w.a.account),
    ),
    # orders
    Case("order-list", "get", lambda w: API + "orders/", "list", ids=lambda o: o.filled.pk),
    Case(
        "order-list",
        "get",
        lambda w: f"{API}orders/?account={w.a.account.pk}",
        "list",
        ids=lambda o: o.resting.pk,
    ),
    Case(
        "order-list",
        "post",
        lambda w: API + "orders/",
        "400-account",
        body=lambda w: order_body(w.a.account),
    ),
    Case("order-detail", "get", lambda w: f"{API}orders/{w.a.filled.pk}/", "404"),
    Case("order-cancel", "post", lambda w: f"{API}orders/{w.a.resting.pk}/cancel/", "404"),
    # positions
    Case(
        "position-list",
        "get",
        lambda w: API + "positions/?include_flat=true",
        "list",
        ids=lambda o: o.position.pk,
    ),
    Case(
        "position-list",
        "get",
        lambda w: f"{API}positions/?account={w.a.account.pk}",
        "list",
        ids=lambda o: o.position.pk,
    ),
    Case("position-detail", "get", lambda w: f"{API}positions/{w.a.position.pk}/", "404"),
    # the journal
    Case("trade-list", "get", lambda w: API + "trades/", "list", ids=lambda o: o.trade.pk),
    Case("trade-list", "get", lambda w: f"{API}trades/?tag=mine", "list", ids=lambda o: o.trade.pk),
    Case("trade-detail", "get", lambda w: f"{API}trades/{w.a.trade.pk}/", "404"),
    Case(
        "trade-detail",
        "patch",
        lambda w: f"{API}trades/{w.a.trade.pk}/",
        "404",
        body=lambda w: {"notes": "defaced", "tags": ["owned"]},
    ),
    # risk rules
    Case("risk-rule-list", "get", lambda w: API + "risk-rules/", "list", ids=lambda o: o.rule.pk),
    Case(
        "risk-rule-list",
        "get",
        lambda w: f"{API}risk-rules/?account={w.a.account.pk}",
        "list",
        ids=lambda o: o.rule.pk,
    ),
    Case(
        "risk-rule-list",
        "post",
        lambda w: API + "risk-rules/",
        "400-account",
        body=lambda w: rule_body(w.a.account),
    ),
    # Mallory scoping a rule of her own account to Alice's strategy
    Case(
        "risk-rule-list",
        "post",
        lambda w: API + "risk-rules/",
        "400-field",
        body=lambda w: rule_body(w.b.account, strategy=w.a.strategy.pk),
        field="strategy",
    ),
    Case("risk-rule-detail", "get", lambda w: f"{API}risk-rules/{w.a.rule.pk}/", "404"),
    Case(
        "risk-rule-detail",
        "put",
        lambda w: f"{API}risk-rules/{w.a.rule.pk}/",
        "404",
        body=lambda w: rule_body(w.b.account),
    ),
    Case(
        "risk-rule-detail",
        "patch",
        lambda w: f"{API}risk-rules/{w.a.rule.pk}/",
        "404",
        body=lambda w: {"enabled": False},
    ),
    Case("risk-rule-detail", "delete", lambda w: f"{API}risk-rules/{w.a.rule.pk}/", "404"),
    Case(
        "risk-rule-detail",
        "patch",
        lambda w: f"{API}risk-rules/{w.b.rule.pk}/",
        "400-account",
        body=lambda w: {"account": w.a.account.pk},
    ),
    Case(
        "risk-rule-bulk",
        "post",
        lambda w: API + "risk-rules/bulk/",
        "400-bulk",
        body=lambda w: {
            "operations": [
                {"op": "disable", "id": w.a.rule.pk},
                {"op": "delete", "id": w.a.rule.pk},
                {"op": "create", "account": w.a.account.pk, "rule_type": "cooldown"},
            ]
        },
    ),
    Case(
        "risk-rule-test",
        "post",
        lambda w: API + "risk-rules/test/",
        "400-account",
        body=lambda w: order_test_body(w.a.account),
    ),
    Case(
        "risk-rule-test",
        "post",
        lambda w: API + "risk-rules/test/",
        "400-field",
        body=lambda w: order_test_body(w.b.account, strategy=w.a.strategy.pk),
        field="strategy",
    ),
    Case(
        "position-size-list",
        "post",
        lambda w: API + "position-size/",
        "400-account",
        body=lambda w: {"account": w.a.account.pk, "symbol": "AAPL", "method": "pct_equity"},
    ),
    # the account's risk and trading state
    Case("account-risk-risk", "get", lambda w: f"{API}accounts/{w.a.account.pk}/risk/", "404"),
    Case(
        "account-risk-halt",
        "post",
        lambda w: f"{API}accounts/{w.a.account.pk}/halt/",
        "404",
        body=lambda w: {"reason": "sabotage"},
    ),
    Case("account-risk-resume", "post", lambda w: f"{API}accounts/{w.a.account.pk}/resume/", "404"),
    # risk events
    Case(
        "risk-event-list", "get", lambda w: API + "risk-events/", "list", ids=lambda o: o.event.pk
    ),
    Case(
        "risk-event-list",
        "get",
        lambda w: f"{API}risk-events/?account={w.a.account.pk}",
        "list",
        ids=lambda o: o.event.pk,
    ),
    Case("risk-event-detail", "get", lambda w: f"{API}risk-events/{w.a.event.pk}/", "404"),
    Case(
        "risk-event-acknowledge",
        "post",
        lambda w: f"{API}risk-events/{w.a.event.pk}/acknowledge/",
        "404",
    ),
    Case(
        "risk-event-acknowledge-many",
        "post",
        lambda w: API + "risk-events/acknowledge/",
        "400-field",
        body=lambda w: {"ids": [w.b.event.pk, w.a.event.pk]},
        field="ids",
    ),
    # order modification
    Case(
        "order-replace",
        "post",
        lambda w: f"{API}orders/{w.a.resting.pk}/replace/",
        "404",
        body=lambda w: {"limit_price": "51.00"},
    ),
    # journal attribution and export
    Case("trade-attribution", "get", lambda w: f"{API}trades/attribution/?by=tag", "attribution"),
    Case(
        "trade-attribution",
        "get",
        lambda w: f"{API}trades/attribution/?account={w.a.account.pk}",
        "attribution",
    ),
    Case("trade-export", "get", lambda w: f"{API}trades/export/", "csv"),
    Case("trade-export", "get", lambda w: f"{API}trades/export/?account={w.a.account.pk}", "csv"),
    # signals
    Case("signal-list", "get", lambda w: API + "signals/", "list", ids=lambda o: o.signal.pk),
    Case(
        "signal-list",
        "get",
        lambda w: f"{API}signals/?account={w.a.account.pk}",
        "list",
        ids=lambda o: o.signal.pk,
    ),
    Case("signal-detail", "get", lambda w: f"{API}signals/{w.a.signal.pk}/", "404"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c}-{i}" for i, c in enumerate(CASES)])
def test_mallory_cannot_see_or_change_alices_objects(
    case, world, user, other_user, other_api_client
):
    before_alice, before_counts = alice_state(user), row_counts()

    call = getattr(other_api_client, case.method)
    kwargs = {"format": "json"}
    if case.body is not None:
        kwargs["data"] = case.body(world)
    response = call(case.path(world), **kwargs)

    if case.expect == "list":
        assert response.status_code == 200, response.json()
        results = (
            response.json()["results"] if isinstance(response.json(), dict) else response.json()
        )
        returned = {row["id"] for row in results}
        assert case.ids(world.a) not in returned
        if "account=" in case.path(world) or "tag=" in case.path(world):
            assert returned == set()
        else:
            assert case.ids(world.b) in returned
        assert "secret" not in response.content.decode()
    elif case.expect == "404":
        assert response.status_code == 404, response.content
        assert response.json() == {"detail": "Not found.", "code": "not_found"}
        assert row_counts() == before_counts
    elif case.expect == "400-account":
        assert response.status_code == 400, response.content
        assert response.json()["errors"]["account"] == ["No such account."]
        assert response.json()["detail"] == "account: No such account."
        assert row_counts() == before_counts
    elif case.expect == "400-field":
        assert response.status_code == 400, response.content
        assert case.field in response.json()["errors"], response.json()
        assert "secret" not in response.content.decode()
        assert row_counts() == before_counts
    elif case.expect == "400-bulk":
        assert response.status_code == 400, response.content
        body = response.json()
        assert body["code"] == "bulk_invalid"
        # Every operation on Alice's objects is refused, each like a missing object.
        assert [item["index"] for item in body["errors"]["items"]] == [0, 1, 2]
        assert "secret" not in response.content.decode()
        assert row_counts() == before_counts
    elif case.expect == "attribution":
        assert response.status_code == 200, response.content
        groups = response.json()["groups"]
        if "account=" in case.path(world):
            assert groups == []
        else:  # Mallory's one closed trade only
            assert sum(group["trades"] for group in groups) == 1
        assert "secret" not in response.content.decode()
    elif case.expect == "csv":
        assert response.status_code == 200
        content = b"".join(response.streaming_content).decode()
        ids = {line.split(",", 1)[0] for line in content.splitlines()[1:]}
        assert not ids & {str(world.a.trade.pk), str(world.a.closed.pk)}
        if "account=" in case.path(world):
            assert ids == set()
        else:
            assert ids == {str(world.b.trade.pk), str(world.b.closed.pk)}
        assert "secret" not in content
    elif case.expect == "own-create":
        # Names are unique per owner: Mallory may reuse Alice's account name, for herself.
        assert response.status_code == 201, response.content
        assert TradingAccount.objects.get(pk=response.json()["id"]).owner == other_user
    else:  # pragma: no cover - a typo in CASES
        raise AssertionError(case.expect)

    assert alice_state(user) == before_alice


def test_alice_still_sees_her_own_objects(world, api_client):
    """The control: the same calls by the owner do find the objects."""
    a = world.a
    for path in (
        f"{API}accounts/{a.account.pk}/",
        f"{API}accounts/{a.account.pk}/equity/",
        f"{API}strategies/{a.strategy.pk}/",
        f"{API}orders/{a.filled.pk}/",
        f"{API}positions/{a.position.pk}/",
        f"{API}trades/{a.trade.pk}/",
        f"{API}risk-rules/{a.rule.pk}/",
        f"{API}risk-events/{a.event.pk}/",
        f"{API}accounts/{a.account.pk}/risk/",
        f"{API}signals/{a.signal.pk}/",
    ):
        assert api_client.get(path).status_code == 200, path
    groups = api_client.get(f"{API}trades/attribution/?by=symbol").json()["groups"]
    assert [(g["label"], g["trades"]) for g in groups] == [("MSFT", 1)]
    export = b"".join(api_client.get(f"{API}trades/export/").streaming_content).decode()
    assert f"\n{a.closed.pk}," in export and "secret" in export
    replaced = api_client.post(
        f"{API}orders/{a.resting.pk}/replace/", {"limit_price": "51.00"}, format="json"
    )
    assert replaced.status_code == 200, replaced.json()
    assert api_client.post(f"{API}orders/{a.resting.pk}/cancel/").status_code == 200


# Viewsets written and isolation-tested by other people (their basename -> where). A new
# basename must be added to CASES or here, so no endpoint goes unchecked by accident.
ISOLATION_TESTED_ELSEWHERE = {
    "api-key": "apps.apikeys (broker keys): its own API tests, by the apikeys author",
    "notification": "apps.notifications: tests/notifications/test_api.py (isolation cases)",
    "notification-preference": "apps.notifications: tests/notifications/test_api.py",
    "notification-settings": "apps.notifications: tests/notifications/test_api.py",
    "push-subscription": "apps.notifications: tests/notifications/test_api.py",
}


def test_every_route_is_covered():
    """Every (route, method) of the router is either shared reference data or has a case."""
    routes = set()
    for _prefix, viewset, basename in router.registry:
        if basename in ISOLATION_TESTED_ELSEWHERE:
            continue
        for route in router.get_routes(viewset):
            name = route.name.format(basename=basename)
            for method, action in route.mapping.items():
                if hasattr(viewset, action):
                    routes.add((name, method))
    covered = {(case.route, case.method) for case in CASES}
    assert routes - SHARED_ROUTES - covered == set()
    assert covered <= routes
