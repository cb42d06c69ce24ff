"""The outbox mechanics: a delivery is claimed by one worker only, marked sent only after the
transport returned, handed back when its worker dies (visibility timeout), swept when due, and
retried from the admin. A broker outage at commit never breaks the caller."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from unittest import mock

import pytest
import time_machine
from django.db import connections
from django.utils import timezone

from apps.notifications import services, tasks
from apps.notifications.models import Delivery, DeliveryStatus
from apps.notifications.transports import TRANSPORTS, TemporaryFailure, get_transport
from tests.notifications.conftest import deliver_due


class GateTransport:
    """Blocks inside send() until released; counts what it sent."""

    channel = "in_app"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.sent: list[str] = []
        self.fail_with: Exception | None = None

    def send(self, message) -> None:
        self.entered.set()
        assert self.release.wait(10)
        if self.fail_with:
            raise self.fail_with
        self.sent.append(message.delivery_uid)


def in_thread(fn, **kwargs) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = fn(**kwargs)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def in_app_only(user) -> None:
    services.notification_preference_set(
        user=user, type="order_filled", channel="email", enabled=False
    )


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_send_the_same_delivery(user):
    in_app_only(user)
    gate = GateTransport()
    TRANSPORTS["in_app"] = gate
    with mock.patch("apps.notifications.services._enqueue"):  # the test plays the workers
        n = services.notify(user=user, type="order_filled", title="Filled")
    delivery = n.deliveries.get()
    first, first_result = in_thread(services.delivery_attempt, delivery_id=delivery.pk)
    assert gate.entered.wait(5)  # worker 1 holds the claim and is sending
    second, second_result = in_thread(services.delivery_attempt, delivery_id=delivery.pk)
    second.join(10)
    assert second_result["value"] == "not_due"  # skipped the locked/claimed row
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENDING and delivery.attempts == 1
    gate.release.set()
    first.join(10)
    assert first_result["value"] == "sent"
    assert gate.sent == [str(delivery.uid)]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and delivery.sent_at is not None


@pytest.mark.django_db
def test_a_failure_inside_the_transport_never_marks_sent(user):
    in_app_only(user)
    gate = GateTransport()
    gate.release.set()
    gate.fail_with = TemporaryFailure("layer down", answer="ConnectionError")
    TRANSPORTS["in_app"] = gate
    n = services.notify(user=user, type="order_filled", title="Filled")
    assert deliver_due() == ["retry"]
    delivery = n.deliveries.get()
    assert delivery.status == DeliveryStatus.FAILED_TEMPORARY and delivery.sent_at is None
    assert delivery.last_error == "layer down: ConnectionError"


@pytest.mark.django_db
def test_an_unexpected_error_is_retried_not_lost(user):
    in_app_only(user)
    gate = GateTransport()
    gate.release.set()
    gate.fail_with = KeyError("bug")
    TRANSPORTS["in_app"] = gate
    n = services.notify(user=user, type="order_filled", title="Filled")
    assert deliver_due() == ["retry"]
    assert "KeyError" in n.deliveries.get().last_error


@pytest.mark.django_db
def test_a_dead_workers_delivery_is_handed_back_after_the_visibility_timeout(user, settings):
    in_app_only(user)
    settings.NOTIFICATIONS_SENDING_TIMEOUT_SECONDS = 300
    n = services.notify(user=user, type="order_filled", title="Filled")
    delivery = n.deliveries.get()
    start = timezone.now()
    # A worker claimed it and died before recording the outcome.
    claim = services._claim(delivery_id=delivery.pk, now=start)
    assert claim.attempts == 1
    with mock.patch("apps.notifications.services._enqueue") as enqueue:
        assert services.deliveries_dispatch_due(now=start + timedelta(seconds=299)) == 0
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.SENDING
        assert services.deliveries_dispatch_due(now=start + timedelta(seconds=301)) == 1
    assert enqueue.call_args.args[0] == (delivery.pk,)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED_TEMPORARY
    assert "stopped before recording the outcome" in delivery.last_error
    # Another worker sends it; the dead worker's late outcome no longer counts.
    later = start + timedelta(seconds=302)
    assert services.delivery_attempt(delivery_id=delivery.pk, now=later) == "sent"
    assert services._finish(claim, DeliveryStatus.FAILED_PERMANENT, later) == "lost_claim"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and delivery.attempts == 2


@pytest.mark.django_db
def test_the_sweep_queues_what_is_due_and_nothing_else(user):
    in_app_only(user)
    now = timezone.now()
    rows = {}
    for name in ("fresh", "lost", "retry_due", "retry_later", "sent"):
        rows[name] = services.notify(user=user, type="order_filled", title=name).deliveries.get()
    Delivery.objects.filter(pk=rows["lost"].pk).update(next_attempt_at=now - timedelta(minutes=5))
    Delivery.objects.filter(pk=rows["retry_due"].pk).update(
        status=DeliveryStatus.FAILED_TEMPORARY, next_attempt_at=now - timedelta(seconds=1)
    )
    Delivery.objects.filter(pk=rows["retry_later"].pk).update(
        status=DeliveryStatus.FAILED_TEMPORARY, next_attempt_at=now + timedelta(minutes=5)
    )
    Delivery.objects.filter(pk=rows["sent"].pk).update(status=DeliveryStatus.SENT)
    with mock.patch("apps.notifications.services._enqueue") as enqueue:
        assert services.deliveries_dispatch_due(now=now) == 2
    assert set(enqueue.call_args.args[0]) == {rows["lost"].pk, rows["retry_due"].pk}


@pytest.mark.django_db
def test_max_attempts_in_flight_then_gives_up(user, settings):
    in_app_only(user)
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 1
    n = services.notify(user=user, type="order_filled", title="Filled")
    delivery = n.deliveries.get()
    start = timezone.now()
    services._claim(delivery_id=delivery.pk, now=start)
    with mock.patch("apps.notifications.services._enqueue"):
        services.deliveries_dispatch_due(now=start + timedelta(hours=1))
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED_PERMANENT and "Gave up" in delivery.last_error


@pytest.mark.django_db
def test_admin_retry_puts_failed_deliveries_back(user, smtp_server):
    n = services.notify(user=user, type="order_filled", title="Filled")
    Delivery.objects.filter(notification=n).update(
        status=DeliveryStatus.FAILED_PERMANENT, attempts=5, last_error="550 no"
    )
    sent = services.notify(user=user, type="order_filled", title="Other")
    Delivery.objects.filter(notification=sent).update(status=DeliveryStatus.SENT)
    ids = Delivery.objects.values_list("pk", flat=True)
    with mock.patch("apps.notifications.services._enqueue"):
        assert services.deliveries_retry(delivery_ids=ids) == 2  # only n's two rows
    assert set(n.deliveries.values_list("status", "attempts")) == {(DeliveryStatus.PENDING, 0)}
    assert deliver_due() == ["sent", "sent"]
    assert smtp_server.wait_for(1)


@pytest.mark.django_db
def test_a_broker_outage_at_commit_does_not_break_the_caller(
    user, django_capture_on_commit_callbacks
):
    with (
        mock.patch(
            "apps.notifications.tasks.deliver_many.apply_async",
            side_effect=ConnectionError("redis down"),
        ) as publish,
        django_capture_on_commit_callbacks(execute=True),
    ):
        n = services.notify(user=user, type="order_filled", title="Filled")
    assert publish.called  # it was tried, and failed
    assert n.deliveries.filter(status=DeliveryStatus.PENDING).count() == 2
    # The sweep finds them once the grace period has passed.
    with mock.patch("apps.notifications.services._enqueue") as enqueue:
        services.deliveries_dispatch_due(now=timezone.now() + timedelta(minutes=1))
    assert len(enqueue.call_args.args[0]) == 2


@pytest.mark.django_db
def test_a_delivery_whose_target_vanished_is_skipped(user, webhook_receiver):
    services.notification_settings_update(user=user, webhook_url=webhook_receiver.url)
    n = services.notify(user=user, type="order_filled", title="Filled")
    services.notification_settings_update(user=user, webhook_url="")
    with time_machine.travel(timezone.now() + timedelta(seconds=1)):
        outcomes = deliver_due()
    webhook = n.deliveries.get(channel="webhook")
    assert (
        webhook.status == DeliveryStatus.SKIPPED
        and webhook.last_error == "Set a webhook URL first."
    )
    assert "skipped" in outcomes and webhook_receiver.received == []


@pytest.mark.django_db
def test_a_batch_task_attempts_every_row_even_when_one_breaks(user):
    in_app_only(user)
    first = services.notify(user=user, type="order_filled", title="One").deliveries.get()
    second = services.notify(user=user, type="order_filled", title="Two").deliveries.get()
    real = services.delivery_attempt

    def flaky(*, delivery_id, now=None, channel=None):
        if delivery_id == first.pk:
            raise RuntimeError("database hiccup")
        return real(delivery_id=delivery_id, now=now, channel=channel)

    # The statement that claims a task's in-app rows together fails too: each row is then
    # attempted on its own.
    with (
        mock.patch(
            "apps.notifications.services._claim_in_app_rows", side_effect=RuntimeError("hiccup")
        ),
        mock.patch("apps.notifications.services.delivery_attempt", side_effect=flaky),
    ):
        outcomes = tasks.deliver_many([first.pk, second.pk, second.pk])
    assert outcomes == {"error": 1, "sent": 1, "not_due": 1}
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (DeliveryStatus.PENDING, DeliveryStatus.SENT)


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_tasks_in_app_rows_are_claimed_sent_and_marked_together_with_the_badge_count(
    user, django_assert_num_queries
):
    in_app_only(user)
    rows = [
        services.notify(user=user, type="order_filled", title=f"Fill {i}").deliveries.get()
        for i in range(3)
    ]
    sent: list = []
    transport = get_transport("in_app")
    real_send_many = transport.send_many

    def send_many(messages):
        sent.append(list(messages))
        return real_send_many(messages)

    # One claim for the three rows, one trip to the channel layer, one compare-and-set.
    with (
        mock.patch.object(transport, "send_many", side_effect=send_many),
        django_assert_num_queries(2),
    ):
        outcomes = tasks.deliver_many([r.pk for r in rows])
    assert outcomes == {"sent": 3}
    [batch] = sent
    assert [m.delivery_uid for m in batch] == [str(r.uid) for r in rows]  # in the given order
    assert {m.extra["unread_count"] for m in batch} == {3}
    assert all(
        r.status == DeliveryStatus.SENT
        for r in Delivery.objects.filter(pk__in=[r.pk for r in rows])
    )
    # A second run claims nothing and sends nothing.
    assert tasks.deliver_many([r.pk for r in rows]) == {"not_due": 3}
    assert len(sent) == 1


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_batch_records_each_in_app_rows_own_outcome(user, other_user):
    """One trader's event is refused by the channel layer, another's row was handed to a
    second worker meanwhile: the rest is marked sent, the refused one waits for its retry,
    the lost claim is left to its new owner."""
    for trader in (user, other_user):
        in_app_only(trader)
    refused, taken, fine = (
        services.notify(user=trader, type="order_filled", title=title).deliveries.get()
        for trader, title in ((user, "Refused"), (other_user, "Taken"), (other_user, "Fine"))
    )
    transport = get_transport("in_app")
    real_send_many = transport.send_many

    def send_many(messages):
        # Meanwhile the sweep handed one row to another worker (a new claim token).
        Delivery.objects.filter(pk=taken.pk).update(claim_token=uuid.uuid4())
        failures = real_send_many(messages)
        failures[0] = TemporaryFailure("layer down", answer="ConnectionError")
        return failures

    with mock.patch.object(transport, "send_many", side_effect=send_many):
        outcomes = tasks.deliver_many([refused.pk, taken.pk, fine.pk])
    assert outcomes == {"retry": 1, "lost_claim": 1, "sent": 1}
    statuses = dict(
        Delivery.objects.filter(pk__in=[refused.pk, taken.pk, fine.pk]).values_list("pk", "status")
    )
    assert statuses == {
        refused.pk: DeliveryStatus.FAILED_TEMPORARY,
        taken.pk: DeliveryStatus.SENDING,
        fine.pk: DeliveryStatus.SENT,
    }
    assert Delivery.objects.get(pk=refused.pk).last_error == "layer down: ConnectionError"


@pytest.mark.django_db
def test_a_batch_through_a_transport_without_send_many_sends_each_row(user):
    in_app_only(user)
    gate = GateTransport()
    gate.release.set()
    TRANSPORTS["in_app"] = gate
    rows = [
        services.notify(user=user, type="order_filled", title=f"Fill {i}").deliveries.get()
        for i in range(2)
    ]
    assert tasks.deliver_many([r.pk for r in rows]) == {"sent": 2}
    assert gate.sent == [str(r.uid) for r in rows]
