"""The risk page and its HTMX fragments, and risk decisions on the trading pages."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import TradingAccount
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Order
from apps.execution.services import order_submit
from apps.risk.domain.types import CheckResult, Severity
from apps.risk.models import RiskEvent, RiskRule, TradingStateChange
from apps.risk.services import RuleInput, risk_event_raise, risk_rule_create
from tests.factories import BarFactory, InstrumentFactory, StrategyFactory

pytestmark = pytest.mark.django_db
DASHBOARD = reverse("risk:dashboard")
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def owner_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def market(instrument):
    BarFactory(instrument=instrument, volume=1_000_000)
    return instrument


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


def raise_event(account, code="LEVERAGE_EXCEEDED"):
    check = CheckResult(
        code=code, passed=False, severity=Severity.BREACH, message=f"{code} now.", value=3.0
    )
    event, _ = risk_event_raise(
        account=account, rule=None, check=check, severity="breach", now=timezone.now()
    )
    return event


def rule_post(prefix="new", **overrides):
    data = {
        "rule_type": "max_position_size",
        "name": "Cap",
        "action": "block",
        "strategy": "",
        "breach_state": "none",
        "escalate_after_minutes": "",
        "enabled": "on",
        "param_mode": "money",
        "param_limit": "5000",
        "warning_pct": "80",
    }
    data.update(overrides)
    return {f"{prefix}-{name}": value for name, value in data.items()}


def order_test_post(**overrides):
    data = {
        "symbol": "aapl",
        "side": "buy",
        "quantity": "80",
        "order_type": "market",
        "limit_price": "",
        "stop_price": "",
        "stop_loss_price": "",
        "take_profit_price": "",
        "strategy": "",
    }
    data.update(overrides)
    return {f"test-{name}": value for name, value in data.items()}


def size_post(**overrides):
    data = {
        "symbol": "AAPL",
        "side": "buy",
        "method": "pct_risk",
        "price": "",
        "stop_price": "98",
        "strategy": "",
        "param_risk_pct": "1",
    }
    data.update(overrides)
    return {f"size-{name}": value for name, value in data.items()}


def triggers(response) -> dict:
    return json.loads(response.headers.get("HX-Trigger", "{}"))


# --- the page -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "method"),
    [
        ("risk:dashboard", [], "get"),
        ("risk:rule_create", [1], "get"),
        ("risk:rule_edit", [1], "get"),
        ("risk:order_test", [1], "post"),
        ("risk:size", [1], "post"),
        ("risk:halt", [1], "post"),
        ("risk:resume", [1], "post"),
        ("risk:event_acknowledge", [1], "post"),
    ],
)
def test_pages_require_login(client, name, args, method):
    response = getattr(client, method)(reverse(name, args=args))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_the_page_shows_state_limits_heat_maps_rules_events_and_tools(
    owner_client, account, market
):
    msft = InstrumentFactory(symbol="MSFT", sector="Software")
    BarFactory(instrument=msft, volume=1_000_000)
    buy(account, "100")
    buy(account, "20", "MSFT")
    rule = make_rule(account, "leverage", {"max_leverage": 0.15}, name="Tight leverage")
    make_rule(account, "stop_loss", {"mode": "pct", "value": 2}, name="Stops")
    raise_event(account)
    response = owner_client.get(DASHBOARD)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Risk · Alice paper" in body
    assert 'data-state="active"' in body and "Trading active" in body
    # 12,000 gross on 100,000 equity: 0.12x against 0.15x = 80% of the limit.
    bar = re.search(rf'<li class="limit limit-(\w+)" data-rule="{rule.pk}"', body)
    assert bar and bar.group(1) == "ok"
    assert "0.12x / 0.15x" in body and "width:64.00%" in body
    assert "Checked on every order." in body  # the stop-loss rule has no gauge
    assert 'data-risk-chart="exposure"' in body and 'data-risk-chart="correlation"' in body
    charts = json.loads(re.search(r'id="risk-chart-data"[^>]*>(.*?)</script>', body).group(1))
    # Columns grouped by sector (rows), so each sector's positions sit side by side.
    assert charts["exposure"]["sectors"] == ["Software", "Technology"]
    assert charts["exposure"]["symbols"] == ["MSFT", "AAPL"]
    assert charts["exposure"]["z"] == [[2.0, None], [None, 10.0]]
    assert charts["correlation"]["symbols"] == ["AAPL", "MSFT"]
    assert 'id="rules-table"' in body and "Tight leverage" in body
    assert "LEVERAGE_EXCEEDED" in body and 'data-testid="acknowledge"' in body
    assert 'data-testid="order-test-form"' in body and 'data-testid="size-form"' in body
    assert "plotly/plotly.min.js" in body and "js/risk.js" in body
    assert re.search(r'<a href="/risk/" class="active"[^>]*>.{0,600}?<span>Risk</span>', body, re.S)


def test_a_breached_limit_is_red_and_a_near_one_amber(owner_client, account, market):
    buy(account, "100")  # 10,000 of 100,000 equity
    breached = make_rule(account, "leverage", {"max_leverage": 0.05})
    near = make_rule(account, params={"mode": "money", "limit": 11000}, warning_level=0.8)
    full = make_rule(account, "position_limit", {"max_positions": 1})  # at, not over, the limit
    roomy = make_rule(account, "position_limit", {"max_positions": 5})
    body = owner_client.get(DASHBOARD).content.decode()
    assert f'<li class="limit limit-breach" data-rule="{breached.pk}"' in body
    assert f'<li class="limit limit-warning" data-rule="{near.pk}"' in body
    assert f'<li class="limit limit-warning" data-rule="{full.pk}"' in body
    assert f'<li class="limit limit-ok" data-rule="{roomy.pk}"' in body
    assert "width:100.00%" in body  # 200% of the limit: the track is full


def test_another_users_account_is_a_404_and_junk_too(owner_client, account, other_account):
    assert owner_client.get(f"{DASHBOARD}?account={other_account.pk}").status_code == 404
    assert owner_client.get(f"{DASHBOARD}?account=abc").status_code == 404
    assert owner_client.get(f"{DASHBOARD}?account={account.pk}").status_code == 200


def test_without_an_account_the_page_says_so(client, other_user):
    client.force_login(other_user)
    body = client.get(DASHBOARD).content.decode()
    assert "You have no trading account yet" in body


@pytest.mark.parametrize(
    ("partial", "marker"),
    [
        ("overview", 'id="risk-overview"'),
        ("state", 'id="risk-state"'),
        ("events", 'id="risk-events"'),
        ("rules", 'id="risk-rules"'),
    ],
)
def test_htmx_partials(owner_client, account, partial, marker):
    make_rule(account, "leverage")
    response = owner_client.get(f"{DASHBOARD}?account={account.pk}&partial={partial}", **HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith(("<div", "<section")) and marker in body
    assert "<html" not in body


# --- rules --------------------------------------------------------------------------------


def test_the_new_rule_form_has_the_first_types_parameter_fields(owner_client, account):
    response = owner_client.get(reverse("risk:rule_create", args=[account.pk]), **HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert 'name="new-param_mode"' in body and 'name="new-param_limit"' in body
    assert 'name="new-warning_pct"' in body
    assert f'hx-get="{reverse("risk:rule_fields", args=[account.pk])}"' in body


def test_changing_the_type_renders_its_parameter_fields(owner_client, account):
    url = reverse("risk:rule_fields", args=[account.pk])
    response = owner_client.get(url, {"prefix": "new", "new-rule_type": "daily_loss"}, **HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and 'id="new-type-fields"' in body
    assert 'name="new-param_halt_on_breach"' in body and 'name="new-param_limit"' in body
    assert 'name="new-param_max_leverage"' not in body
    stops = owner_client.get(url, {"prefix": "new", "new-rule_type": "stop_loss"}, **HTMX)
    assert 'name="new-warning_pct"' not in stops.content.decode()  # not a measured rule
    junk = owner_client.get(url, {"prefix": "new", "new-rule_type": "vibes"}, **HTMX)
    assert junk.status_code == 200 and 'name="new-param_limit"' in junk.content.decode()
    assert owner_client.get(url, {"prefix": "../etc"}, **HTMX).status_code == 404


def test_create_a_rule_inline(owner_client, account, user, instrument):
    strategy = StrategyFactory(owner=user, account=account, instruments=[instrument])
    response = owner_client.post(
        reverse("risk:rule_create", args=[account.pk]),
        rule_post(strategy=str(strategy.pk), escalate_after_minutes="15"),
        **HTMX,
    )
    assert response.status_code == 200
    rule = RiskRule.objects.get()
    assert rule.params == {"mode": "money", "limit": 5000.0}
    assert rule.warning_level == Decimal("0.8") and rule.strategy == strategy
    assert rule.escalate_after_minutes == 15 and rule.enabled and rule.name == "Cap"
    body = response.content.decode()
    assert f'id="rule-{rule.pk}"' in body and "flash" in body
    assert 'id="rule-create-form"' not in body  # the form closes
    assert "risk-changed" in triggers(response)


def test_a_bad_rule_parameter_is_an_inline_422_and_nothing_is_saved(owner_client, account):
    response = owner_client.post(
        reverse("risk:rule_create", args=[account.pk]), rule_post(param_limit="0"), **HTMX
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert 'data-error-for="param_limit"' in body
    assert "limit: must be greater than 0 (got 0)" in body
    assert 'value="Cap"' in body  # what was typed stays
    assert RiskRule.objects.count() == 0
    bad_pct = owner_client.post(
        reverse("risk:rule_create", args=[account.pk]), rule_post(warning_pct="120"), **HTMX
    )
    assert bad_pct.status_code == 422 and 'data-error-for="warning_pct"' in bad_pct.content.decode()


def test_rule_pages_of_another_users_account_or_rule_are_404(owner_client, account, other_account):
    theirs = make_rule(other_account, "leverage")
    assert owner_client.get(reverse("risk:rule_create", args=[other_account.pk])).status_code == 404
    assert (
        owner_client.post(
            reverse("risk:rule_create", args=[other_account.pk]), rule_post(), **HTMX
        ).status_code
        == 404
    )
    for name in ("risk:rule_edit", "risk:rule_row"):
        assert owner_client.get(reverse(name, args=[theirs.pk]), **HTMX).status_code == 404
    for name in ("risk:rule_toggle", "risk:rule_delete", "risk:rule_edit"):
        assert owner_client.post(reverse(name, args=[theirs.pk]), **HTMX).status_code == 404
    fields = reverse("risk:rule_fields", args=[account.pk])
    assert owner_client.get(fields, {"prefix": f"rule{theirs.pk}"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.enabled and RiskRule.objects.filter(pk=theirs.pk).exists()


def test_edit_a_rule_inline(owner_client, account):
    rule = make_rule(
        account, params={"mode": "money", "limit": 5000}, name="Cap", warning_level=0.8
    )
    url = reverse("risk:rule_edit", args=[rule.pk])
    form = owner_client.get(url, **HTMX).content.decode()
    assert 'class="editing"' in form and 'value="5000.0"' in form
    assert f'name="rule{rule.pk}-warning_pct" value="80"' in form
    prefix = f"rule{rule.pk}"
    bad = owner_client.post(url, rule_post(prefix, param_mode="shares"), **HTMX)
    assert bad.status_code == 422
    assert 'data-error-for="param_mode"' in bad.content.decode()
    rule.refresh_from_db()
    assert rule.params["mode"] == "money"
    response = owner_client.post(
        url, rule_post(prefix, param_limit="7500", action="warn", name="Soft cap"), **HTMX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "Soft cap" in body and 'class="rule-row flash"' in body
    rule.refresh_from_db()
    assert rule.params["limit"] == 7500.0 and rule.action == "warn"
    assert "risk-changed" in triggers(response)


def test_toggle_and_delete_a_rule(owner_client, account):
    rule = make_rule(account, "leverage")
    off = owner_client.post(reverse("risk:rule_toggle", args=[rule.pk]), **HTMX)
    assert off.status_code == 200 and 'aria-checked="false"' in off.content.decode()
    rule.refresh_from_db()
    assert rule.enabled is False
    gone = owner_client.post(reverse("risk:rule_delete", args=[rule.pk]), **HTMX)
    assert gone.status_code == 200 and gone.content == b""
    assert not RiskRule.objects.exists() and "risk-changed" in triggers(gone)


def test_without_htmx_a_rule_is_created_and_the_page_reloads(owner_client, account):
    response = owner_client.post(reverse("risk:rule_create", args=[account.pk]), rule_post())
    assert response.status_code == 302 and response["Location"].endswith(f"?account={account.pk}")
    assert RiskRule.objects.count() == 1
    invalid = owner_client.post(
        reverse("risk:rule_create", args=[account.pk]), rule_post(param_limit="-1")
    )
    assert invalid.status_code == 422 and "<html" in invalid.content.decode()


# --- order test and position size ---------------------------------------------------------


def test_testing_an_order_shows_each_check_and_writes_nothing(owner_client, account, market):
    rule = make_rule(account, params={"mode": "money", "limit": 5000}, name="5k cap")
    response = owner_client.post(
        reverse("risk:order_test", args=[account.pk]), order_test_post(), **HTMX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-outcome="reduced"' in body and "Reduced from 80 to 50" in body
    row = re.search(
        r'<li class="check check-fail" data-code="MAX_POSITION_SIZE_EXCEEDED".*?</li>', body, re.S
    )
    assert row is not None
    assert "5k cap" in row.group(0) and "8,000.00" in row.group(0) and "5,000.00" in row.group(0)
    # What refused or shrank the order comes first; the passed checks are folded away.
    assert body.index('data-code="MAX_POSITION_SIZE_EXCEEDED"') < body.index("checks passed")
    assert body.index("checks passed") < body.index('data-code="OK" data-check="buying_power"')
    assert Order.objects.count() == 0 and RiskEvent.objects.count() == 0
    assert RiskRule.objects.get(pk=rule.pk).params == {"mode": "money", "limit": 5000.0}


def test_an_order_test_with_bad_input_is_an_inline_422(owner_client, account, market):
    url = reverse("risk:order_test", args=[account.pk])
    missing = owner_client.post(url, order_test_post(quantity=""), **HTMX)
    assert missing.status_code == 422
    assert 'data-error-for="quantity"' in missing.content.decode()
    unknown = owner_client.post(url, order_test_post(symbol="zzzz"), **HTMX)
    assert unknown.status_code == 422 and "Unknown symbol." in unknown.content.decode()
    no_limit = owner_client.post(url, order_test_post(order_type="limit"), **HTMX)
    assert no_limit.status_code == 422
    assert 'data-error-for="limit_price"' in no_limit.content.decode()


def test_position_size_shows_quantity_steps_and_caps(owner_client, account, market):
    make_rule(account, params={"mode": "money", "limit": 20000})
    response = owner_client.post(reverse("risk:size", args=[account.pk]), size_post(), **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert '<strong data-testid="sizing-quantity">200</strong>' in body
    assert "Risk budget = equity 100,000.00 x 1% = 1,000.00" in body
    assert "max position size" in body  # the cap that bound it


def test_position_size_errors_are_inline(owner_client, account, market):
    response = owner_client.post(
        reverse("risk:size", args=[account.pk]), size_post(stop_price=""), **HTMX
    )
    assert response.status_code == 422
    assert 'data-error-for="stop_price"' in response.content.decode()
    bad = owner_client.post(
        reverse("risk:size", args=[account.pk]), size_post(param_risk_pct="0"), **HTMX
    )
    assert bad.status_code == 422 and 'data-error-for="param_risk_pct"' in bad.content.decode()


def test_the_sizing_method_select_renders_its_parameters(owner_client, account):
    response = owner_client.get(
        reverse("risk:size_fields", args=[account.pk]), {"size-method": "kelly"}, **HTMX
    )
    body = response.content.decode()
    assert 'id="size-params"' in body and 'name="size-param_win_rate"' in body
    assert 'name="size-param_risk_pct"' not in body
    plain = owner_client.get(reverse("risk:size_fields", args=[account.pk]), {"size-method": "x"})
    assert plain.status_code == 302  # a fragment only; a plain visit goes back to the page


def test_tools_of_another_users_account_are_404(owner_client, other_account, market):
    assert (
        owner_client.post(
            reverse("risk:order_test", args=[other_account.pk]), order_test_post(), **HTMX
        ).status_code
        == 404
    )
    assert (
        owner_client.post(reverse("risk:size", args=[other_account.pk]), size_post()).status_code
        == 404
    )


# --- trading state and events -------------------------------------------------------------


def test_halt_and_resume_from_the_banner(owner_client, user, account):
    halted = owner_client.post(
        reverse("risk:halt", args=[account.pk]), {"reason": "Fed day"}, **HTMX
    )
    assert halted.status_code == 200
    body = halted.content.decode()
    assert 'data-state="halted"' in body and "Fed day" in body and "by alice" in body
    assert 'data-testid="resume"' in body and 'data-testid="halt"' not in body
    assert {"account-changed", "risk-changed"} <= set(triggers(halted))
    account.refresh_from_db()
    assert account.status == "halted"
    resumed = owner_client.post(reverse("risk:resume", args=[account.pk]))  # without HTMX
    assert resumed.status_code == 302
    account.refresh_from_db()
    assert account.status == "active"
    assert list(TradingStateChange.objects.values_list("to_state", flat=True)) == [
        "active",
        "halted",
    ]


def test_the_banner_names_the_rule_that_halted_the_account(owner_client, account):
    from apps.risk.services import trading_state_set

    rule = make_rule(account, "max_drawdown", {"limit_pct": 5}, name="5% drawdown")
    trading_state_set(account=account, state="halted", reason="MAX_DRAWDOWN_EXCEEDED", rule=rule)
    body = owner_client.get(f"{DASHBOARD}?partial=state", **HTMX).content.decode()
    assert "MAX_DRAWDOWN_EXCEEDED" in body and "by rule “5% drawdown”" in body


def test_state_changes_of_another_users_account_are_404(owner_client, other_account):
    for name in ("risk:halt", "risk:resume"):
        assert owner_client.post(reverse(name, args=[other_account.pk]), **HTMX).status_code == 404
    other_account.refresh_from_db()
    assert other_account.status == "active"


def test_acknowledge_events(owner_client, user, account, other_account):
    first, second = raise_event(account, "ONE"), raise_event(account, "TWO")
    theirs = raise_event(other_account, "THEIRS")
    response = owner_client.post(reverse("risk:event_acknowledge", args=[first.pk]), **HTMX)
    assert response.status_code == 200
    assert (
        "Acknowledged" in response.content.decode()
        and "event-open" not in response.content.decode()
    )
    first.refresh_from_db()
    assert first.acknowledged_by == user
    assert (
        owner_client.post(reverse("risk:event_acknowledge", args=[theirs.pk]), **HTMX).status_code
        == 404
    )
    url = reverse("risk:events_acknowledge_all", args=[account.pk])
    assert owner_client.post(url, {"ids": [second.pk, theirs.pk]}, **HTMX).status_code == 404
    second.refresh_from_db()
    assert second.acknowledged_at is None
    done = owner_client.post(url, {"ids": [second.pk]}, **HTMX)
    assert done.status_code == 200 and 'data-testid="open-events">0 open' in done.content.decode()
    theirs.refresh_from_db()
    assert theirs.acknowledged_at is None


# --- risk on the trading pages ------------------------------------------------------------


def ticket(account, **overrides):
    data = {
        "account": account.pk,
        "symbol": "aapl",
        "side": "buy",
        "quantity": "10",
        "order_type": "market",
        "time_in_force": "day",
        "limit_price": "",
        "stop_price": "",
        "client_order_id": "",
    }
    data.update(overrides)
    return data


def test_the_order_ticket_shows_which_rule_refused_an_order(owner_client, account, market):
    make_rule(account, "position_limit", {"max_positions": 1}, name="One at a time")
    buy(account, "1")
    msft = InstrumentFactory(symbol="MSFT")
    BarFactory(instrument=msft, volume=1_000_000)
    response = owner_client.post(
        reverse("execution:order_create"), ticket(account, symbol="msft"), **HTMX
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "Order rejected by risk checks" in body
    failure = re.search(
        r'<li class="check check-fail" data-code="POSITION_LIMIT_EXCEEDED".*?</li>', body, re.S
    )
    assert failure and "One at a time" in failure.group(0)
    assert re.search(r"2 <span class=\"muted\">/ 1</span>", failure.group(0))
    assert "checks passed" not in body  # the ticket lists only what refused the order
    assert Order.objects.filter(instrument=msft).count() == 0


def test_a_reduced_order_says_so_on_the_ticket_and_its_page(owner_client, account, market):
    make_rule(account, params={"mode": "money", "limit": 5000})
    response = owner_client.post(
        reverse("execution:order_create"), ticket(account, quantity="80"), **HTMX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="order-reduced"' in body and "Reduced by risk from 80 to 50." in body
    order = Order.objects.get()
    detail = owner_client.get(reverse("execution:order_detail", args=[order.pk])).content.decode()
    assert 'id="order-risk"' in detail and "quantity reduced from 80" in detail
    assert 'data-outcome="reduced"' in detail


def test_the_halted_state_is_kept_across_accounts(owner_client, user, account):
    second = TradingAccount.objects.create(owner=user, name="Second")
    owner_client.post(reverse("risk:halt", args=[second.pk]), {"reason": "x"}, **HTMX)
    body = owner_client.get(f"{DASHBOARD}?account={account.pk}").content.decode()
    assert 'data-state="active"' in body
    second.refresh_from_db()
    assert second.status == "halted"
