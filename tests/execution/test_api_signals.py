"""API: the strategies' signals (read-only, owner-scoped, filters), what an order shows of its
signal, risk decision and protection, and modifying an open order (``orders/{id}/replace/``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from apps.execution.brokers import BrokerFill
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Order, Signal
from apps.execution.services import fill_apply, order_cancel, order_submit
from apps.risk.services import RuleInput, risk_rule_create
from tests.execution.test_signals_views import T0, make_signals
from tests.factories import BarFactory

pytestmark = pytest.mark.django_db

SIGNALS = "/api/v1/signals/"
ORDERS = "/api/v1/orders/"


@pytest.fixture
def desk(user, account, other_user, other_account):
    return make_signals(user, account, other_user, other_account)


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


# --- signals ------------------------------------------------------------------------------


def test_signals_list_is_the_owners_newest_bar_first(api_client, desk):
    assert _ids(api_client.get(SIGNALS)) == [desk.rejected.pk, desk.skipped.pk, desk.ordered.pk]


def test_signal_fields(api_client, desk):
    rows = {row["id"]: row for row in api_client.get(SIGNALS).json()["results"]}
    ordered = rows[desk.ordered.pk]
    assert ordered["strategy"] == desk.trend.pk and ordered["strategy_name"] == "Trend"
    assert ordered["symbol"] == "AAPL" and ordered["timeframe"] == desk.trend.timeframe
    assert datetime.fromisoformat(ordered["bar_ts"].replace("Z", "+00:00")) == T0
    assert (ordered["side"], ordered["target"], ordered["strength"]) == ("buy", 1, 0.75)
    assert ordered["reason"] == "SMA(2) 101.50 crossed above SMA(3) 100.80: open long"
    assert ordered["status"] == "ordered" and ordered["order"] == desk.order.pk
    assert ordered["order_status"] == "filled" and D(ordered["price"]) == D("100")
    rejected = rows[desk.rejected.pk]
    assert rejected["status"] == "rejected" and rejected["order"] is None
    assert rejected["reject_code"] == "POSITION_LIMIT_EXCEEDED" and rejected["reject_reason"]
    assert rejected["decision"]["outcome"] == "rejected"
    assert rows[desk.skipped.pk]["reject_reason"] == "already positioned as the signal wants"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (lambda d: {"strategy": d.rotate.pk}, lambda d: [d.rejected.pk]),
        (lambda d: {"status": "ordered"}, lambda d: [d.ordered.pk]),
        (lambda d: {"symbol": "aapl"}, lambda d: [d.skipped.pk, d.ordered.pk]),
        (lambda d: {"side": "sell"}, lambda d: []),
        (
            lambda d: {"bar_after": (T0 + timedelta(minutes=1)).isoformat()},
            lambda d: [d.rejected.pk, d.skipped.pk],
        ),
        (
            lambda d: {"bar_before": (T0 + timedelta(minutes=1)).isoformat()},
            lambda d: [d.ordered.pk],
        ),
        (lambda d: {"ordering": "bar_ts"}, lambda d: [d.ordered.pk, d.skipped.pk, d.rejected.pk]),
        # Another user's strategy or account narrows to nothing (never reveals it).
        (lambda d: {"strategy": d.foreign.strategy_id}, lambda d: []),
        (lambda d: {"account": d.foreign.account_id}, lambda d: []),
    ],
    ids=[
        "strategy",
        "status",
        "symbol",
        "side",
        "bar_after",
        "bar_before",
        "ordering",
        "foreign-strategy",
        "foreign-account",
    ],
)
def test_signals_filters(api_client, desk, query, expected):
    assert _ids(api_client.get(SIGNALS, query(desk))) == expected(desk)


def test_signals_bad_filter_is_400(api_client, desk):
    response = api_client.get(SIGNALS, {"bar_after": "last tuesday"})
    assert response.status_code == 400 and "bar_after" in response.json()["errors"]


def test_another_users_signal_is_404_and_never_listed(api_client, other_api_client, desk):
    response = api_client.get(f"{SIGNALS}{desk.foreign.pk}/")
    assert response.status_code == 404
    assert "Mallory" not in response.content.decode()
    assert _ids(other_api_client.get(SIGNALS)) == [desk.foreign.pk]
    assert other_api_client.get(f"{SIGNALS}{desk.ordered.pk}/").status_code == 404
    assert api_client.get(f"{SIGNALS}{desk.ordered.pk}/").json()["id"] == desk.ordered.pk


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_signals_are_read_only(api_client, desk, method):
    path = SIGNALS if method == "post" else f"{SIGNALS}{desk.ordered.pk}/"
    response = getattr(api_client, method)(path, {"status": "new"}, format="json")
    assert response.status_code == 405
    assert Signal.objects.get(pk=desk.ordered.pk).status == "ordered"


def test_signals_need_authentication(client, desk):
    assert client.get(SIGNALS).status_code in (401, 403)


def test_signals_list_does_not_query_per_signal(api_client, desk, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):
        assert len(_ids(api_client.get(SIGNALS))) == 3


# --- what an order shows ------------------------------------------------------------------


def test_strategy_order_shows_its_signal_and_risk_decision(api_client, desk):
    body = api_client.get(f"{ORDERS}{desk.order.pk}/").json()
    assert body["signal"] == desk.ordered.pk
    assert body["signal_reason"] == "SMA(2) 101.50 crossed above SMA(3) 100.80: open long"
    assert body["risk_decision"]["outcome"] == "approved"
    assert body["risk_decision"]["checks"]
    assert body["reduce_only"] is False and body["protective_kind"] == ""
    listed = {row["id"]: row for row in api_client.get(ORDERS).json()["results"]}
    assert listed[desk.order.pk]["signal_reason"] == body["signal_reason"]


def test_manual_order_with_a_stop_rule_and_a_risk_exit(api_client, user, account, instrument):
    BarFactory(instrument=instrument, volume=10_000_000)
    risk_rule_create(
        owner=user,
        account=account,
        data=RuleInput(rule_type="stop_loss", params={"mode": "pct", "value": 4}),
    )
    entry = order_submit(
        account=account, intent=OrderIntent(symbol="AAPL", side="buy", quantity=D("10"))
    )
    body = api_client.get(f"{ORDERS}{entry.pk}/").json()
    assert body["signal"] is None and body["signal_reason"] is None
    assert D(body["stop_loss_price"]) == D("96")  # 4% under the 100 fill price
    exit_order = order_submit(
        account=account,
        intent=OrderIntent(symbol="AAPL", side="sell", quantity=D("10")),
        source="risk",
        protective_kind="stop_loss",
    )
    body = api_client.get(f"{ORDERS}{exit_order.pk}/").json()
    assert body["protective_kind"] == "stop_loss" and body["reduce_only"] is True


# --- replace ------------------------------------------------------------------------------


@pytest.fixture
def resting(account, instrument):
    BarFactory(instrument=instrument, volume=10_000_000)
    return order_submit(
        account=account,
        intent=OrderIntent(
            symbol="AAPL",
            side="buy",
            quantity=D("10"),
            order_type="limit",
            limit_price=D("90.00"),
            time_in_force="gtc",
        ),
    )


def _snapshot(order: Order) -> dict:
    order.refresh_from_db()
    return {
        "quantity": order.quantity,
        "limit_price": order.limit_price,
        "stop_price": order.stop_price,
        "status": order.status,
        "events": list(order.events.values_list("id", flat=True)),
    }


def _replace(api_client, order, body):
    return api_client.post(f"{ORDERS}{order.pk}/replace/", body, format="json")


def test_replace_changes_price_and_quantity_and_records_before_and_after(api_client, resting):
    response = _replace(api_client, resting, {"limit_price": "91.25", "quantity": "7"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert D(body["limit_price"]) == D("91.25") and D(body["quantity"]) == D("7")
    assert body["status"] == "accepted" and D(body["remaining_quantity"]) == D("7")
    event = body["events"][-1]
    assert event["source"] == "api" and event["from_status"] == event["to_status"] == "accepted"
    assert D(event["data"]["before"]["limit_price"]) == D("90")
    assert D(event["data"]["after"]["limit_price"]) == D("91.25")
    assert D(event["data"]["before"]["quantity"]) == D("10")
    assert D(event["data"]["after"]["quantity"]) == D("7")
    resting.refresh_from_db()
    assert (resting.limit_price, resting.quantity) == (D("91.25"), D("7"))


def test_replace_only_what_is_sent(api_client, resting):
    response = _replace(api_client, resting, {"quantity": "3"})
    assert response.status_code == 200
    resting.refresh_from_db()
    assert (resting.limit_price, resting.quantity) == (D("90"), D("3"))


def test_replacing_a_closed_order_is_409_and_changes_nothing(api_client, resting):
    order_cancel(order=resting, source="api")
    before = _snapshot(resting)
    response = _replace(api_client, resting, {"limit_price": "91.00"})
    assert response.status_code == 409
    assert response.json()["code"] == "not_open" and "cancelled" in response.json()["detail"]
    assert _snapshot(resting) == before


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"quantity": "11"}, "quantity", "cannot increase the quantity"),
        ({"limit_price": "90.005"}, "limit_price", "multiple of the tick size 0.01"),
        ({"stop_price": "95.00"}, "stop_price", "does not apply to a limit order"),
        ({"quantity": "2.5"}, "quantity", "multiple of the lot size 1"),
        ({"limit_price": "0"}, "limit_price", "Must be greater than zero."),
        ({"quantity": "ten"}, "quantity", "A valid number is required."),
        ({}, "non_field_errors", "Send at least one of"),
    ],
)
def test_invalid_replacement_is_400_naming_the_field_and_changes_nothing(
    api_client, resting, body, field, message
):
    before = _snapshot(resting)
    response = _replace(api_client, resting, body)
    assert response.status_code == 400, response.json()
    errors = response.json()["errors"]
    assert field in errors and message in " ".join(errors[field])
    assert _snapshot(resting) == before


def test_replacing_below_the_filled_quantity_is_400(api_client, resting):
    fill_apply(
        order_id=resting.pk,
        fill=BrokerFill("partial-1", D("4"), D("90.00"), D("0"), datetime.now(UTC)),
    )
    before = _snapshot(resting)
    assert before["status"] == "partially_filled"
    for quantity in ("4", "3"):
        response = _replace(api_client, resting, {"quantity": quantity})
        assert response.status_code == 400
        assert "above the 4" in response.json()["errors"]["quantity"][0]
    assert _snapshot(resting) == before
    assert _replace(api_client, resting, {"quantity": "5"}).status_code == 200
    resting.refresh_from_db()
    assert resting.quantity == D("5") and resting.remaining_quantity == D("1")


def test_replacing_another_users_order_is_404(other_api_client, resting):
    before = _snapshot(resting)
    response = _replace(other_api_client, resting, {"limit_price": "50.00"})
    assert response.status_code == 404
    assert _snapshot(resting) == before
