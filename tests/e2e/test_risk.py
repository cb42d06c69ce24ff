"""The risk page in a real browser: create a rule inline, test an order that breaks it, see
the limits and the heat maps drawn, and a risk event arrive live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Order
from apps.execution.services import order_submit
from apps.risk.domain.types import CheckResult, Severity
from apps.risk.models import RiskRule
from apps.risk.services import risk_event_raise
from tests.e2e.conftest import htmx_swap, in_thread
from tests.factories import BarFactory, InstrumentFactory, TradingAccountFactory, UserFactory

pytestmark = [
    pytest.mark.e2e,
    # whitenoise serves static files with a sync iterator, which Django's ASGI handler notes.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]


@pytest.fixture
def trader(transactional_db):
    return UserFactory(username="risk-trader")


@pytest.fixture
def account(trader):
    return TradingAccountFactory(owner=trader, name="Risk paper")


@pytest.fixture
def holdings(account):
    """AAPL and MSFT held, each with a month of daily history (for the correlation matrix)."""
    start = datetime(2025, 11, 3, tzinfo=UTC)
    aapl = [1.2, -0.8, 0.5, 2.0, -1.5, 0.3, -0.2, 1.1, -0.9, 0.7, 1.4, -1.1, 0.6, -0.4, 0.9]
    msft = [0.9, -0.2, 0.8, 1.1, -0.6, -0.4, 0.3, 0.6, -1.2, 0.2, 0.9, -0.3, 0.1, -0.8, 0.4]
    for symbol, sector, moves in (("AAPL", "Technology", aapl), ("MSFT", "Software", msft)):
        instrument = InstrumentFactory(symbol=symbol, sector=sector, last_price=Decimal("100"))
        price = 100.0
        for day, move in enumerate(moves):
            price *= 1 + move / 100
            BarFactory(
                instrument=instrument, timeframe="1d", ts=start + timedelta(days=day), close=price
            )
        BarFactory(instrument=instrument, volume=1_000_000)
    for symbol, quantity in (("AAPL", "50"), ("MSFT", "20")):
        intent = OrderIntent(symbol=symbol, side="buy", quantity=Decimal(quantity))
        in_thread(order_submit, account=account, intent=intent)


def test_create_a_rule_test_an_order_that_breaks_it_and_see_the_dashboard(
    page, login, trader, account, holdings
):
    login(trader)
    page.click("nav.sidebar >> text=Risk")
    expect(page.get_by_test_id("trading-state")).to_have_attribute("data-state", "active")
    # The heat maps are drawn by the local plotly.js.
    expect(page.locator("#exposure-heatmap")).to_have_attribute("data-drawn", "true")
    expect(page.locator("#exposure-heatmap .main-svg").first).to_be_visible()
    expect(page.locator("#correlation-heatmap")).to_have_attribute("data-drawn", "true")

    # Inline create: the parameter fields follow the rule type.
    with htmx_swap(page, "[data-testid=rule-form]"):
        page.get_by_test_id("new-rule").click()
    form = page.get_by_test_id("rule-form")
    form.locator("#id_new-rule_type").select_option("leverage")
    expect(form.locator("#id_new-param_max_leverage")).to_be_visible()
    form.locator("#id_new-rule_type").select_option("max_position_size")
    expect(form.locator("#id_new-param_max_leverage")).to_have_count(0)
    form.locator("#id_new-name").fill("5k cap")
    form.locator("#id_new-param_mode").select_option("money")
    form.locator("#id_new-param_limit").fill("0")
    with htmx_swap(page, '[data-error-for="param_limit"]'):
        form.get_by_role("button", name="Create rule").click()
    expect(page.locator('[data-error-for="param_limit"]')).to_contain_text("greater than 0")
    assert not RiskRule.objects.exists()
    page.locator("#id_new-param_limit").fill("5000")
    page.locator("#id_new-warning_pct").fill("80")
    page.get_by_test_id("rule-form").get_by_role("button", name="Create rule").click()
    expect(page.locator("#rules-table")).to_contain_text("5k cap")
    rule = RiskRule.objects.get()
    assert rule.params == {"mode": "money", "limit": 5000.0}

    # The limits refresh by themselves: AAPL at 5,000 of 5,000 is a full bar at the limit.
    gauge = page.locator(f'#risk-limits li[data-rule="{rule.pk}"]').first
    expect(gauge).to_have_attribute("data-tone", "warning")
    expect(gauge.locator(".limit-track")).to_be_visible()
    expect(gauge).to_contain_text("5,000.00 / 5,000.00")

    # An order that breaks the rule: refused, with the rule, the value and the limit.
    tester = page.get_by_test_id("order-test-form")
    tester.locator("#id_test-symbol").fill("AAPL")
    tester.locator("#id_test-quantity").fill("10")
    tester.get_by_role("button", name="Check order").click()
    decision = page.get_by_test_id("risk-decision")
    expect(decision).to_have_attribute("data-outcome", "rejected")
    expect(decision.get_by_test_id("risk-reason")).to_contain_text("the limit is 5,000")
    failed = decision.locator('li[data-code="MAX_POSITION_SIZE_EXCEEDED"]')
    expect(failed).to_contain_text("5k cap")
    expect(failed).to_contain_text("6,000.00")
    assert Order.objects.count() == 2  # the two holdings only: nothing placed

    # A risk event raised elsewhere shows up live, and can be acknowledged.
    check = CheckResult(
        code="SECTOR_LIMIT_EXCEEDED",
        passed=False,
        severity=Severity.BREACH,
        message="Technology is 5% of equity.",
        value=5.0,
        limit=4.0,
    )
    in_thread(
        risk_event_raise,
        account=account,
        rule=None,
        check=check,
        severity="breach",
        now=timezone.now(),
    )
    row = page.locator("#risk-events-table tr.event-open", has_text="SECTOR_LIMIT_EXCEEDED")
    expect(row).to_be_visible()
    row.get_by_test_id("acknowledge").click()
    expect(page.locator("#risk-events-table tr.event-open")).to_have_count(0)
