"""Reconciliation: Alpaca's books against the platform's (repairs recorded as system events,
the rest flagged once with an alert), the paper book against itself, and idempotence."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.db import connections
from django.db.models import Sum

from apps.accounts.models import TradingAccount
from apps.execution.brokers.alpaca import AlpacaBroker
from apps.execution.models import (
    Fill,
    Order,
    OrderEvent,
    OrderSource,
    Position,
    ReconciliationFinding,
)
from apps.execution.reconciliation import account_reconcile, finding_resolve
from apps.execution.services import order_replace, order_submit
from apps.execution.trade_updates import broker_order_apply
from apps.notifications.models import Notification
from tests.execution.conftest import KEY_ID, SECRET, intent, wait_until
from tests.factories import BarFactory

pytestmark = pytest.mark.django_db


def limit_order(account, qty="10", price="99.00") -> Order:
    order = order_submit(
        account=account, intent=intent(qty=qty, order_type="limit", limit_price=Decimal(price))
    )
    assert order.status == "accepted"
    return order


def system_events(order) -> list[str]:
    return list(
        OrderEvent.objects.filter(order=order, source=OrderSource.SYSTEM).values_list(
            "message", flat=True
        )
    )


def open_findings(account) -> dict[str, ReconciliationFinding]:
    return {
        f.key: f
        for f in ReconciliationFinding.objects.filter(account=account, resolved_at__isnull=True)
    }


def alerts(user) -> list[Notification]:
    return list(Notification.objects.filter(user=user, type="system_alert").order_by("id"))


# --- Alpaca -------------------------------------------------------------------------------------


def test_a_missed_fill_is_booked_with_a_system_event_and_a_second_run_changes_nothing(
    alpaca, alpaca_account, instrument
):
    order = limit_order(alpaca_account)
    alpaca.fill(order.broker_order_id, "4", "98.60", push=False)  # the stream missed it

    report = account_reconcile(account_id=alpaca_account.pk)

    order.refresh_from_db()
    assert order.status == "partially_filled" and order.filled_quantity == Decimal("4")
    assert "reconciliation: Alpaca had filled 4 @ 98.6 that the platform had missed; booked" in (
        system_events(order)
    )
    assert report.repairs and report.findings == [] and report.complete
    assert Position.objects.get(account=alpaca_account).quantity == Decimal("4")

    event_count = OrderEvent.objects.count()
    again = account_reconcile(account_id=alpaca_account.pk)
    assert again.repairs == [] and again.findings == []
    assert OrderEvent.objects.count() == event_count
    assert Fill.objects.filter(order=order).count() == 1


def test_missed_cancels_expiries_and_rejections_are_applied(alpaca, alpaca_account, instrument):
    cancelled = limit_order(alpaca_account)
    expired = limit_order(alpaca_account, price="98.00")
    alpaca.fill(cancelled.broker_order_id, "3", "99", push=False)
    alpaca.set_status(cancelled.broker_order_id, "canceled", push=False)
    alpaca.set_status(expired.broker_order_id, "expired", push=False)

    account_reconcile(account_id=alpaca_account.pk)

    cancelled.refresh_from_db()
    expired.refresh_from_db()
    assert cancelled.status == "cancelled" and cancelled.filled_quantity == Decimal("3")
    assert expired.status == "expired"
    assert "reconciliation: Alpaca canceled the order" in system_events(cancelled)
    assert "reconciliation: Alpaca expired the order" in system_events(expired)
    assert open_findings(alpaca_account) == {}


def test_fills_on_both_sides_of_a_replacement_are_all_booked(alpaca, alpaca_account, instrument):
    order = limit_order(alpaca_account)
    assert wait_until(lambda: alpaca.orders[order.broker_order_id]["status"] == "new")
    first = order.broker_order_id
    alpaca.fill(first, "2", "99", push=False)  # missed, before the replace
    order = order_replace(order=order, source="manual", limit_price=Decimal("99.30"))
    second = order.broker_order_id
    assert alpaca.orders[second]["qty"] == "10"  # the platform had not booked the 2 yet
    alpaca.fill(second, "8", "99.30", push=False)  # missed too

    account_reconcile(account_id=alpaca_account.pk)

    order.refresh_from_db()
    assert order.status == "filled" and order.filled_quantity == Decimal("10")
    assert Fill.objects.filter(order=order, broker_fill_id__contains=first).count() == 1
    assert Fill.objects.filter(order=order, broker_fill_id__contains=second).count() == 1
    # The replacement could still fill 2 more than the order: Alpaca works it, the platform
    # is filled. That is flagged.
    (finding,) = open_findings(alpaca_account).values()
    assert finding.kind == "order_mismatch" and "still works the order" in finding.message


def test_a_position_mismatch_is_flagged_once_alerts_and_resolves_when_it_goes(
    alpaca, alpaca_account, user, instrument
):
    fake_account = alpaca.credentials[KEY_ID].account
    alpaca.set_position(fake_account, "AAPL", "15", "100")

    first = account_reconcile(account_id=alpaca_account.pk)
    second = account_reconcile(account_id=alpaca_account.pk)

    assert first.findings == second.findings == ["position:AAPL"]
    finding = ReconciliationFinding.objects.get(account=alpaca_account)
    assert finding.kind == "position_mismatch" and finding.severity == "critical"
    assert finding.message == "AAPL: the platform holds 0, Alpaca 15."
    assert finding.seen_count == 2 and finding.is_open
    (alert,) = alerts(user)  # one alert, not one per run
    assert alert.severity == "critical" and "position" in alert.title.lower()
    assert alert.body == finding.message

    alpaca.set_position(fake_account, "AAPL", "0", "0")
    account_reconcile(account_id=alpaca_account.pk)
    finding.refresh_from_db()
    assert not finding.is_open and finding.resolution == "no longer seen by reconciliation"


def test_an_order_alpaca_never_received_is_rejected_after_the_grace_period(
    alpaca, alpaca_account, instrument, settings
):
    settings.RECONCILE_SUBMITTED_GRACE_SECONDS = 300
    alpaca.fail_next(503, method="POST", path="/v2/orders")  # before Alpaca took it
    order = order_submit(account=alpaca_account, intent=intent())
    assert order.status == "submitted"

    early = account_reconcile(account_id=alpaca_account.pk, now=order.submitted_at)
    order.refresh_from_db()
    assert order.status == "submitted" and early.repairs == []

    later = order.submitted_at + timedelta(seconds=301)
    report = account_reconcile(account_id=alpaca_account.pk, now=later)
    order.refresh_from_db()
    assert order.status == "rejected"
    assert order.reject_reason.startswith(
        f"reconciliation: Alpaca has no order with client order id {order.client_order_id} 301 s"
    )
    assert report.repairs and len(alpaca.requests_to("/v2/orders", "POST")) == 1  # not resent
    assert account_reconcile(account_id=alpaca_account.pk, now=later).repairs == []


def test_an_order_alpaca_took_while_its_answer_was_lost_is_settled_not_rejected(
    alpaca, alpaca_account, instrument
):
    alpaca.fail_next(500, method="POST", path="/v2/orders", after=True)
    order = order_submit(account=alpaca_account, intent=intent())
    (stored,) = alpaca.orders.values()
    alpaca.fill(stored["id"], None, "100.10", push=False)

    account_reconcile(account_id=alpaca_account.pk, now=order.submitted_at + timedelta(hours=1))

    order.refresh_from_db()
    assert order.status == "filled" and order.broker_order_id == stored["id"]
    assert len(alpaca.requests_to("/v2/orders", "POST")) == 1


def test_an_open_order_alpaca_does_not_know_is_flagged(alpaca, alpaca_account, instrument, user):
    order = limit_order(alpaca_account)
    alpaca.orders.clear()  # gone at the broker

    account_reconcile(account_id=alpaca_account.pk)

    (finding,) = open_findings(alpaca_account).values()
    assert finding.kind == "order_missing" and finding.order_id == order.pk
    assert "Alpaca does not know broker order" in finding.message
    order.refresh_from_db()
    assert order.status == "accepted"  # not guessed at
    assert alerts(user)[0].link.endswith(f"/{order.pk}/")


def test_an_open_order_the_platform_never_placed_is_flagged_as_a_warning(
    alpaca, alpaca_account, user
):
    requests.post(
        f"{alpaca.url}/v2/orders",
        json={"symbol": "TSLA", "qty": 2, "side": "sell", "type": "market", "time_in_force": "day"},
        headers={"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET},
        timeout=5,
    )
    account_reconcile(account_id=alpaca_account.pk)
    (finding,) = open_findings(alpaca_account).values()
    assert finding.kind == "unknown_broker_order" and finding.severity == "warning"
    assert "sell 2 TSLA" in finding.message
    assert alerts(user)[0].severity == "warning"


def test_when_alpaca_cannot_be_asked_nothing_is_resolved(alpaca, alpaca_account, instrument):
    alpaca.set_position(alpaca.credentials[KEY_ID].account, "AAPL", "5", "100")
    account_reconcile(account_id=alpaca_account.pk)
    alpaca.fail_next(503, path="/v2/orders")

    report = account_reconcile(account_id=alpaca_account.pk)

    assert not report.complete
    findings = open_findings(alpaca_account)
    assert set(findings) == {"position:AAPL", "broker-unavailable"}
    assert findings["broker-unavailable"].severity == "warning"


def test_an_operator_can_resolve_a_finding_and_it_comes_back_if_still_true(
    alpaca, alpaca_account, instrument
):
    alpaca.set_position(alpaca.credentials[KEY_ID].account, "AAPL", "5", "100")
    account_reconcile(account_id=alpaca_account.pk)
    finding = ReconciliationFinding.objects.get()
    finding_resolve(finding=finding, resolution="checked by ops")
    account_reconcile(account_id=alpaca_account.pk)
    assert ReconciliationFinding.objects.count() == 2
    assert set(open_findings(alpaca_account)) == {"position:AAPL"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_stream_and_reconciliation_at_once_book_each_step_once(
    alpaca, alpaca_account, instrument
):
    order = limit_order(alpaca_account)
    broker = AlpacaBroker(alpaca_account)
    alpaca.fill(order.broker_order_id, "4", "99", push=False)
    partial = broker.order_view(order)  # what an older report says: 4 filled
    alpaca.fill(order.broker_order_id, None, "99", push=False)
    full = broker.order_view(order)  # and a newer one: all 10
    start = threading.Barrier(6)
    errors: list[BaseException] = []
    problems: list[str] = []

    def apply(origin: str, view) -> None:
        try:
            start.wait(5)
            applied = broker_order_apply(order_id=order.pk, view=view, origin=origin)
            problems.extend(applied.problems)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=apply, args=(origin, view))
        for origin, view in (
            ("stream", partial),
            ("stream", full),
            ("reconciliation", full),
            ("reconciliation", partial),
            ("retry", full),
            ("stream", partial),
        )
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert errors == [] and problems == []  # no step was computed from a stale total
    order.refresh_from_db()
    assert order.status == "filled" and order.filled_quantity == Decimal("10")
    booked = Fill.objects.filter(order=order).aggregate(q=Sum("quantity"))["q"]
    assert booked == Decimal("10")
    assert Position.objects.get(account=alpaca_account).quantity == Decimal("10")


# --- paper --------------------------------------------------------------------------------------


@pytest.fixture
def traded(account, instrument):
    """A paper account with a round trip and an open position in its books."""
    BarFactory(instrument=instrument, volume=1_000_000)
    order_submit(account=account, intent=intent(qty="10"))
    instrument.last_price = Decimal("104.00")
    instrument.save()
    order_submit(account=account, intent=intent(side="sell", qty="4"))
    return account


def test_paper_books_that_agree_give_no_findings(traded):
    report = account_reconcile(account_id=traded.pk)
    assert report.complete and report.findings == [] and report.repairs == []
    assert not ReconciliationFinding.objects.exists()


def test_paper_books_that_disagree_are_flagged(traded, user):
    Position.objects.filter(account=traded).update(quantity=Decimal("7"))
    TradingAccount.objects.filter(pk=traded.pk).update(cash=Decimal("1"))
    order = Order.objects.filter(account=traded).first()
    Order.objects.filter(pk=order.pk).update(filled_quantity=order.filled_quantity - 1)

    report = account_reconcile(account_id=traded.pk)

    findings = open_findings(traded)
    assert set(findings) == {"position:AAPL", "cash", f"order-fills:{order.pk}"}
    assert findings["position:AAPL"].message == (
        "AAPL: the position holds 7 but its fills add up to 6."
    )
    assert "but the initial 100000.0000 and the fills since give" in findings["cash"].message
    assert {f.severity for f in findings.values()} == {"critical"}
    assert len(alerts(user)) == 3 and set(report.findings) == set(findings)


def test_a_paper_order_stuck_in_submitted_is_rejected_after_the_grace_period(
    account, instrument, settings
):
    from apps.execution.services import _order_create

    order = _order_create(account=account, intent=intent(), source="api")  # crashed after this
    assert order.status == "submitted"
    assert account_reconcile(account_id=account.pk, now=order.submitted_at).repairs == []

    later = order.submitted_at + timedelta(seconds=settings.RECONCILE_SUBMITTED_GRACE_SECONDS)
    account_reconcile(account_id=account.pk, now=later)
    order.refresh_from_db()
    assert order.status == "rejected"
    assert "the paper book never received the order" in order.reject_reason


# --- wiring ---------------------------------------------------------------------------------------


def test_beat_reconciles_every_account(settings, alpaca, alpaca_account, traded):
    from apps.execution.tasks import reconcile_accounts
    from tradeplatform.celery import app as celery_app

    entry = settings.CELERY_BEAT_SCHEDULE["reconcile-accounts"]
    assert entry["task"] == "apps.execution.tasks.reconcile_accounts"
    assert entry["task"] in celery_app.tasks
    alpaca.set_position(alpaca.credentials[KEY_ID].account, "MSFT", "1", "400")
    assert reconcile_accounts.delay().get() == 2  # eager here: each account reconciled
    assert set(ReconciliationFinding.objects.values_list("account_id", "key")) == {
        (alpaca_account.pk, "position:MSFT"),
    }
