"""Signal and order pages: the signals page (what each strategy decided, and what became of
it), the latest signals on a strategy's page, and the order page's signal, protection and
inline "modify" form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from types import SimpleNamespace

import pytest
from django.urls import reverse

from apps.execution.brokers import BrokerFill
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Order, OrderEvent, Signal
from apps.execution.pipeline import signal_execute, signal_record
from apps.execution.services import fill_apply, order_cancel, order_submit
from apps.risk.services import RuleInput, risk_rule_create
from tests.factories import BarFactory, InstrumentFactory, StrategyFactory

pytestmark = pytest.mark.django_db

SIGNALS = reverse("execution:signals")
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def make_signals(user, account, other_user, other_account) -> SimpleNamespace:
    """Signals made by the pipeline's services: one ordered (and filled), one skipped, one
    rejected by a risk rule, and one of another user's strategy."""
    aapl = InstrumentFactory(symbol="AAPL", last_price=D("100"))
    msft = InstrumentFactory(symbol="MSFT", last_price=D("50"))
    for instrument in (aapl, msft):
        BarFactory(instrument=instrument, volume=10_000_000)
    sizing = {"sizing_method": "fixed_quantity", "sizing_params": {"quantity": 10}}
    trend = StrategyFactory(
        owner=user, account=account, name="Trend", instruments=[aapl], mode="paper", **sizing
    )
    rotate = StrategyFactory(
        owner=user, account=account, name="Rotate", instruments=[msft], mode="paper", **sizing
    )
    risk_rule_create(
        owner=user,
        account=account,
        data=RuleInput(rule_type="position_limit", params={"max_positions": 1}),
    )

    def decide(strategy, instrument, minutes, target, reason):
        signal = signal_record(
            strategy=strategy,
            instrument=instrument,
            bar_ts=T0 + timedelta(minutes=minutes),
            side="buy" if target > 0 else "sell",
            target=target,
            strength=0.75,
            reason=reason,
            price=float(instrument.last_price),
        )
        return signal_execute(signal_id=signal.pk)

    w = SimpleNamespace(aapl=aapl, msft=msft, trend=trend, rotate=rotate)
    w.ordered = decide(trend, aapl, 0, 1, "SMA(2) 101.50 crossed above SMA(3) 100.80: open long")
    w.skipped = decide(trend, aapl, 1, 1, "Still above: stay long")
    w.rejected = decide(rotate, msft, 2, 1, "RSI(14) 28 under 30: open long")
    foreign = StrategyFactory(
        owner=other_user,
        account=other_account,
        name="Hidden",
        instruments=[aapl],
        mode="paper",
        **sizing,
    )
    w.foreign = decide(foreign, aapl, 3, 1, "Mallory's private reason")
    assert (w.ordered.status, w.skipped.status, w.rejected.status) == (
        "ordered",
        "skipped",
        "rejected",
    )
    w.order = Order.objects.get(signal=w.ordered)
    return w


@pytest.fixture
def desk(user, account, other_user, other_account):
    return make_signals(user, account, other_user, other_account)


@pytest.fixture
def owner_client(client, user):
    client.force_login(user)
    return client


def _row(body: str, signal: Signal) -> str:
    return body.split(f'data-signal="{signal.pk}"', 1)[1].split("</tr>", 1)[0]


@pytest.mark.parametrize("url", [SIGNALS, reverse("execution:order_replace", args=[1])])
def test_pages_require_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(
        reverse("accounts:login")
    )


def test_signals_page_lists_what_each_strategy_decided(owner_client, desk):
    body = owner_client.get(SIGNALS).content.decode()
    ordered = _row(body, desk.ordered)
    assert "SMA(2) 101.50 crossed above SMA(3) 100.80: open long" in ordered
    assert "Trend" in ordered and "AAPL" in ordered and "0.75" in ordered and "Long" in ordered
    assert "Order placed" in ordered
    assert f'href="{reverse("execution:order_detail", args=[desk.order.pk])}"' in ordered
    skipped = _row(body, desk.skipped)
    assert "Nothing to do" in skipped and "already positioned as the signal wants" in skipped
    rejected = _row(body, desk.rejected)
    assert "Rejected" in rejected and "POSITION_LIMIT_EXCEEDED" in rejected
    assert desk.rejected.reject_reason[:40] in rejected
    assert 'data-testid="signal-order"' not in rejected
    # Newest bar first, and nothing of another user.
    assert body.index(f'data-signal="{desk.rejected.pk}"') < body.index(
        f'data-signal="{desk.ordered.pk}"'
    )
    assert "Mallory's private reason" not in body and "Hidden" not in body


def test_signals_page_filters(owner_client, user, desk):
    def shown(**query) -> set[int]:
        response = owner_client.get(SIGNALS, query, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        body = response.content.decode()
        assert "<html" not in body
        return {
            s.pk
            for s in (desk.ordered, desk.skipped, desk.rejected)
            if f'data-signal="{s.pk}"' in body
        }

    every = {desk.ordered.pk, desk.skipped.pk, desk.rejected.pk}
    assert shown() == every
    assert shown(strategy=desk.rotate.pk) == {desk.rejected.pk}
    assert shown(symbol="aapl") == {desk.ordered.pk, desk.skipped.pk}
    assert shown(status="rejected") == {desk.rejected.pk}
    assert shown(status="ordered", strategy=desk.trend.pk) == {desk.ordered.pk}
    day = T0.date()
    assert shown(date_from=day.isoformat(), date_to=day.isoformat()) == every
    assert shown(date_from=(day + timedelta(days=1)).isoformat()) == set()
    assert shown(date_to=(day - timedelta(days=1)).isoformat()) == set()


def test_signals_date_filter_uses_the_traders_day(owner_client, user, desk):
    # 15:00 UTC on March 2 is already March 3 in Auckland (UTC+13).
    user.time_zone = "Pacific/Auckland"
    user.save()
    body = owner_client.get(SIGNALS, {"date_from": "2026-03-03"}).content.decode()
    assert f'data-signal="{desk.ordered.pk}"' in body
    body = owner_client.get(SIGNALS, {"date_to": "2026-03-02"}).content.decode()
    assert f'data-signal="{desk.ordered.pk}"' not in body


def test_signals_page_with_another_users_strategy_is_404(owner_client, desk):
    foreign = desk.foreign.strategy_id
    assert owner_client.get(SIGNALS, {"strategy": foreign}).status_code == 404
    assert owner_client.get(SIGNALS, {"strategy": "junk"}).status_code == 404


def test_signals_page_bad_dates_are_reported_not_500(owner_client, desk):
    response = owner_client.get(SIGNALS, {"date_from": "2026-03-05", "date_to": "2026-03-01"})
    assert response.status_code == 200
    assert "The end date is before the start date." in response.content.decode()


def test_signals_table_refreshes_live_and_paginates(owner_client, desk):
    body = owner_client.get(SIGNALS, HTTP_HX_REQUEST="true").content.decode()
    assert body.strip().startswith('<div id="signals-table"')
    assert "orders-changed from:body" in body and f'hx-get="{SIGNALS}"' in body


def test_signals_empty_state(owner_client, account):
    body = owner_client.get(SIGNALS).content.decode()
    assert "No signals" in body and "paper or live mode" in body


def test_navigation_links_the_signals_page(owner_client, account):
    assert f'href="{SIGNALS}"' in owner_client.get(reverse("execution:journal")).content.decode()


def test_strategy_page_shows_its_latest_signals(owner_client, desk):
    body = owner_client.get(reverse("strategies:edit", args=[desk.trend.pk])).content.decode()
    section = body.split('id="strategy-signals"', 1)[1]
    assert f'data-signal="{desk.ordered.pk}"' in section
    assert f'data-signal="{desk.skipped.pk}"' in section
    assert f'data-signal="{desk.rejected.pk}"' not in section  # another strategy's
    assert f'href="{SIGNALS}?strategy={desk.trend.pk}"' in section


def test_strategy_page_without_signals(owner_client, user, account, instrument):
    quiet = StrategyFactory(owner=user, account=account, name="Quiet", instruments=[instrument])
    body = owner_client.get(reverse("strategies:edit", args=[quiet.pk])).content.decode()
    assert 'id="strategy-signals"' in body and "No signals" in body


# --- the order page -----------------------------------------------------------------------


def test_order_page_shows_the_signal_and_the_risk_decision(owner_client, desk):
    body = owner_client.get(reverse("execution:order_detail", args=[desk.order.pk]))
    html = body.content.decode()
    assert 'id="order-signal"' in html
    assert "SMA(2) 101.50 crossed above SMA(3) 100.80: open long" in html
    assert 'id="order-risk"' in html and 'data-outcome="approved"' in html
    # A filled market order cannot be modified.
    assert 'data-testid="order-modify-form"' not in html


def test_order_page_shows_a_risk_exit_and_its_protection(owner_client, account, desk):
    exit_order = order_submit(
        account=account,
        intent=OrderIntent(symbol="AAPL", side="sell", quantity=D("10")),
        source="risk",
        protective_kind="stop_loss",
    )
    html = owner_client.get(reverse("execution:order_detail", args=[exit_order.pk])).content
    html = html.decode()
    protection = html.split('data-testid="order-protective-kind"', 1)[1].split("</dd>", 1)[0]
    assert "Stop loss" in protection
    assert "Reduce only" in html and 'id="order-signal"' not in html


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
        source="manual",
    )


def _state(order: Order) -> tuple:
    order.refresh_from_db()
    return (order.quantity, order.limit_price, order.stop_price, order.status, order.events.count())


def test_open_limit_order_has_an_inline_modify_form(owner_client, resting):
    html = owner_client.get(reverse("execution:order_detail", args=[resting.pk])).content.decode()
    form = html.split('data-testid="order-modify-form"', 1)[1].split("</form>", 1)[0]
    assert f'hx-post="{reverse("execution:order_replace", args=[resting.pk])}"' in html
    assert 'name="limit_price"' in form and 'value="90"' in form
    assert 'name="quantity"' in form and 'value="10"' in form
    assert 'name="stop_price"' not in form  # a limit order has no stop


def test_modify_over_htmx_replaces_and_shows_before_and_after(owner_client, resting):
    url = reverse("execution:order_replace", args=[resting.pk])
    response = owner_client.post(
        url, {"limit_price": "91.50", "quantity": "6"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#order-detail" and response["HX-Reswap"] == "outerHTML"
    assert "orders-changed" in response["HX-Trigger"] and "modified" in response["HX-Trigger"]
    html = response.content.decode()
    assert html.strip().startswith('<div id="order-detail"')
    # The page title's size follows, out of band.
    assert '<span id="order-heading-qty" hx-swap-oob="true">6</span>' in html
    change = html.split('data-testid="order-replaced"', 1)[1].split("</div>", 1)[0]
    assert "Qty" in change and "10" in change and "6" in change
    assert "Limit" in change and "90.00" in change and "91.50" in change
    resting.refresh_from_db()
    assert (resting.quantity, resting.limit_price, resting.status) == (
        D("6"),
        D("91.50"),
        "accepted",
    )
    event = OrderEvent.objects.filter(order=resting).latest("id")
    assert event.source == "manual" and event.data["after"]["limit_price"] == "91.50"


def test_modify_without_htmx_redirects_to_the_order(owner_client, resting):
    response = owner_client.post(
        reverse("execution:order_replace", args=[resting.pk]), {"limit_price": "89.00"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("execution:order_detail", args=[resting.pk])
    resting.refresh_from_db()
    assert resting.limit_price == D("89.00")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"limit_price": "90.005"}, "limit_price", "multiple of the tick size"),
        ({"quantity": "11"}, "quantity", "cannot increase the quantity"),
        ({"quantity": "abc"}, "quantity", "Enter a number."),
        ({"limit_price": "-1"}, "limit_price", "greater than zero"),
    ],
)
def test_modify_errors_are_inline_422_and_change_nothing(
    owner_client, resting, data, field, message
):
    before = _state(resting)
    response = owner_client.post(
        reverse("execution:order_replace", args=[resting.pk]), data, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert html.strip().startswith('<div id="order-modify"')
    errors = html.split(f'data-error-for="{field}"', 1)[1].split("</ul>", 1)[0]
    assert message in errors
    assert _state(resting) == before


def test_modify_with_nothing_changed_says_so(owner_client, resting):
    before = _state(resting)
    response = owner_client.post(
        reverse("execution:order_replace", args=[resting.pk]),
        {"limit_price": "90", "quantity": "10"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    assert "Change the quantity or a price first." in response.content.decode()
    assert _state(resting) == before


def test_modify_below_the_filled_quantity_is_refused(owner_client, resting):
    fill_apply(
        order_id=resting.pk,
        fill=BrokerFill("partial-1", D("4"), D("90.00"), D("0"), datetime.now(UTC)),
    )
    before = _state(resting)
    response = owner_client.post(
        reverse("execution:order_replace", args=[resting.pk]),
        {"quantity": "4"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    assert "above the 4" in response.content.decode()
    assert _state(resting) == before


def test_modify_a_closed_order_is_a_409_on_the_form(owner_client, resting):
    order_cancel(order=resting, source="manual")
    before = _state(resting)
    response = owner_client.post(
        reverse("execution:order_replace", args=[resting.pk]),
        {"limit_price": "91.00"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 409
    assert "cannot be changed" in response.content.decode()
    assert _state(resting) == before


def test_another_users_order_cannot_be_modified(owner_client, other_account, instrument):
    BarFactory(instrument=instrument, volume=10_000_000)
    theirs = order_submit(
        account=other_account,
        intent=OrderIntent(
            symbol="AAPL",
            side="buy",
            quantity=D("5"),
            order_type="limit",
            limit_price=D("80.00"),
            time_in_force="gtc",
        ),
    )
    before = _state(theirs)
    response = owner_client.post(
        reverse("execution:order_replace", args=[theirs.pk]), {"limit_price": "81.00"}
    )
    assert response.status_code == 404
    assert _state(theirs) == before


def test_stop_order_modify_form_has_the_stop_price(owner_client, account, instrument):
    BarFactory(instrument=instrument, volume=10_000_000)
    stop = order_submit(
        account=account,
        intent=OrderIntent(
            symbol="AAPL",
            side="buy",
            quantity=D("5"),
            order_type="stop",
            stop_price=D("120.00"),
            time_in_force="gtc",
        ),
    )
    html = owner_client.get(reverse("execution:order_detail", args=[stop.pk])).content.decode()
    form = html.split('data-testid="order-modify-form"', 1)[1].split("</form>", 1)[0]
    assert 'name="stop_price"' in form and 'name="limit_price"' not in form
    response = owner_client.post(
        reverse("execution:order_replace", args=[stop.pk]),
        {"stop_price": "118.00"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    stop.refresh_from_db()
    assert stop.stop_price == D("118.00")
