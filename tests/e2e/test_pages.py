"""The pages in a real browser: sign in, trade, fix a form, annotate, and watch live updates."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from apps.accounts.services import equity_snapshot_take
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Order, Trade
from apps.execution.services import order_submit
from apps.strategies.models import Strategy
from tests.e2e.conftest import htmx_swap, in_thread
from tests.factories import BarFactory, InstrumentFactory, TradingAccountFactory, UserFactory

pytestmark = [
    pytest.mark.e2e,
    # whitenoise serves static files with a sync iterator, which Django's ASGI handler notes.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]


@pytest.fixture
def trader(transactional_db):
    return UserFactory(username="trader")


@pytest.fixture
def account(trader):
    return TradingAccountFactory(owner=trader, name="Main paper")


@pytest.fixture
def aapl(transactional_db):
    instrument = InstrumentFactory(symbol="AAPL", name="Apple Inc.", last_price=Decimal("100.00"))
    BarFactory(instrument=instrument, volume=1_000_000)
    return instrument


def submit(account, side="buy", qty="10", **kw):
    intent = OrderIntent(symbol="AAPL", side=side, quantity=Decimal(qty), **kw)
    return in_thread(order_submit, account=account, intent=intent)


def wait_live(page):
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")


def test_sign_in_and_see_the_dashboard(page, login, trader, account):
    start = datetime(2026, 1, 5, 15, tzinfo=UTC)
    for hours in range(3):
        equity_snapshot_take(account=account, now=start + timedelta(hours=hours))
    login(trader)
    expect(page.locator("h1")).to_have_text("Main paper")
    expect(page.get_by_test_id("equity")).to_have_text("100,000.00")
    expect(page.locator("nav.sidebar a.active")).to_have_text("Dashboard")
    expect(page.locator("#equity-chart")).to_have_attribute("data-drawn", "true")  # local plotly.js
    wait_live(page)


def test_market_page_draws_candles(page, login, trader, account, aapl):
    start = datetime(2026, 1, 5, tzinfo=UTC)
    for day in range(30):
        BarFactory(
            instrument=aapl, timeframe="1d", ts=start + timedelta(days=day), close=100.0 + day
        )
    login(trader)
    page.click("nav.sidebar >> text=Markets")
    page.click('#instruments-table a.symbol:text("AAPL")')
    expect(page.locator("#price-chart")).to_have_attribute("data-drawn", "true")
    expect(page.locator("#price-chart .main-svg").first).to_be_visible()
    page.get_by_role("link", name="1m", exact=True).click()  # the 1m bar from the fixture
    expect(page.locator(".tf-switch .current")).to_have_text("1m")
    expect(page.locator("#price-chart")).to_have_attribute("data-drawn", "true")
    expect(page).to_have_url(re.compile(r"\?tf=1m&bars=200$"))  # pushed to the history


def test_manual_market_order_fills_in_the_orders_table(page, login, trader, account, aapl):
    login(trader)
    page.click("nav.sidebar >> text=Orders")
    page.fill("#id_symbol", "AAPL")
    page.fill("#id_quantity", "5")
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_test_id("order-result")).to_contain_text("filled")
    order = Order.objects.get()
    assert order.source == "manual" and order.status == "filled"
    row = page.locator(f'#orders-table tr[data-order="{order.pk}"]')
    expect(row).to_contain_text("AAPL")
    expect(row.locator(".badge")).to_have_text("Filled")
    expect(page.locator("#id_quantity")).to_have_value("")  # a fresh ticket


def test_limit_order_without_price_is_an_inline_error(page, login, trader, account, aapl):
    login(trader)
    page.goto("/trading/orders/")
    limit_price = page.locator(".field-limit_price")
    expect(limit_price).to_be_hidden()  # market orders have no price
    page.select_option("#id_order_type", "limit")
    expect(limit_price).to_be_visible()
    page.fill("#id_symbol", "AAPL")
    page.fill("#id_quantity", "5")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator('[data-error-for="limit_price"]')).to_have_text(
        "Limit price is required for a limit order."
    )
    expect(page.locator("#id_quantity")).to_have_value("5")  # what was typed stays
    assert not Order.objects.exists()


def test_strategy_with_a_bad_parameter_then_fixed(page, login, trader, account, aapl):
    login(trader)
    page.goto("/strategies/new/")
    page.select_option("#id_kind", "rsi_mean_reversion")
    expect(page.locator("#id_param_period")).to_be_visible()  # fields follow the kind
    page.select_option("#id_kind", "sma_crossover")
    expect(page.locator("#id_param_fast")).to_be_visible()
    expect(page.locator("#id_param_period")).to_have_count(0)

    page.fill("#id_name", "Fast cross")
    page.fill("#id_symbols", "aapl")
    page.fill("#id_param_fast", "50")
    page.fill("#id_param_slow", "20")
    page.get_by_role("button", name="Create strategy").click()
    error = page.locator('[data-error-for="param_slow"]')
    expect(error).to_have_text("slow: must be greater than fast (50)")
    assert not Strategy.objects.exists()

    page.fill("#id_param_slow", "100")
    page.get_by_role("button", name="Create strategy").click()
    page.wait_for_url("**/strategies/")
    expect(page.locator("#strategies-table")).to_contain_text("Fast cross")
    strategy = Strategy.objects.get()
    assert strategy.params["fast"] == 50 and strategy.params["slow"] == 100


def test_journal_note_edit(page, login, trader, account, aapl):
    submit(account)
    aapl.last_price = Decimal("105.00")
    aapl.save()
    submit(account, side="sell")
    trade = Trade.objects.get()
    login(trader)
    page.goto("/trading/journal/")
    row = page.locator(f"#trade-{trade.pk}")
    expect(row).to_contain_text("+50.00")
    with htmx_swap(page, "[data-testid=trade-edit-form]"):
        row.get_by_role("link", name="Edit").click()
    editor = page.get_by_test_id("trade-edit-form")
    editor.locator("textarea[name=notes]").fill("Took profit into resistance.")
    editor.locator("input[name=tags]").fill("momentum, Earnings")
    editor.get_by_role("button", name="Save").click()
    expect(row.get_by_test_id("trade-notes")).to_have_text("Took profit into resistance.")
    expect(row.locator(".tag")).to_have_text(["earnings", "momentum"])
    trade.refresh_from_db()
    assert trade.notes == "Took profit into resistance."


def test_orders_table_updates_live_without_reload(page, login, trader, account, aapl):
    login(trader)
    page.goto("/trading/orders/")
    wait_live(page)
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#orders-table tbody tr[data-order]")).to_have_count(0)

    order = submit(account, qty="7")  # through the service, as the API or a strategy would

    row = page.locator(f'#orders-table tr[data-order="{order.pk}"]')
    expect(row).to_be_visible()
    expect(row.locator(".badge")).to_have_text("Filled")
    expect(page.locator("#toasts")).to_contain_text(re.compile(r"Filled: buy 7 AAPL"))
    assert page.evaluate("window.__sameDocument") is True  # updated in place, not reloaded
