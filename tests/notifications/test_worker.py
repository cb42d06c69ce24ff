"""End to end through a real Celery worker (a subprocess on Redis and the test database) and a
real SMTP server: notify() -> commit -> task -> in-app over the Redis channel layer to the
trader's WebSocket + e-mail at the SMTP server. Then the SMTP server goes away mid-run and
comes back: every e-mail still arrives, exactly once (counted by Message-ID)."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from apps.notifications import services
from apps.notifications.emails import message_id
from apps.notifications.models import Delivery, DeliveryStatus
from tests.factories import UserFactory
from tests.notifications.test_inapp_ws import connect
from tests.notifications.worker import celery_worker

pytestmark = [pytest.mark.celery, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def wait_until(predicate, timeout: float = 30.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@pytest.fixture
def worker(smtp_server):
    with celery_worker(smtp_port=smtp_server.port) as process:
        yield process
    connections.close_all()


@pytest.mark.asyncio
async def test_notify_reaches_the_open_page_and_the_mailbox_through_the_worker(worker, smtp_server):
    alice = await sync_to_async(UserFactory)(username="alice")
    mallory = await sync_to_async(UserFactory)(username="mallory")
    page = await connect(alice)
    other_page = await connect(mallory)
    try:
        n = await sync_to_async(services.notify)(
            user=alice,
            type="order_filled",
            title="Bought 10 AAPL @ 101.50",
            body="Order #12 filled.",
            data={"symbol": "AAPL", "quantity": "10", "price": "101.50"},
            link="/trading/orders/12/",
        )
        event = await page.receive_json_from(timeout=60)
        assert event["type"] == "notification"
        assert event["data"]["id"] == n.pk and event["data"]["unread_count"] == 1
        assert await other_page.receive_nothing(timeout=0.5)
        assert await sync_to_async(smtp_server.wait_for)(1, 60)
        [mail] = smtp_server.messages
        assert mail.subject == "[Trade Platform] Bought 10 AAPL @ 101.50"
        assert mail.rcpt_tos == ["alice@example.com"]
        assert "Average price: 101.50" in mail.text and "<strong>AAPL</strong>" in mail.html

        def all_sent() -> bool:
            return set(n.deliveries.values_list("status", flat=True)) == {DeliveryStatus.SENT}

        assert await sync_to_async(wait_until)(all_sent, 30)
    finally:
        await page.disconnect()
        await other_page.disconnect()
        await sync_to_async(connections.close_all)()


def test_the_smtp_server_going_away_mid_run_loses_and_duplicates_nothing(worker, smtp_server):
    users = [UserFactory(username=f"trader{i}") for i in range(4)]
    for user in users:
        services.notification_preference_set(
            user=user, type="order_filled", channel="in_app", enabled=False
        )
    total = 60
    smtp_server.stop_after(15)
    for i in range(total):
        services.notify(user=users[i % 4], type="order_filled", title=f"Fill {i}")

    assert smtp_server.stopped_by_itself.wait(30), "the run never got going"
    # While the server is away, deliveries fail and wait for their retry.
    assert wait_until(
        lambda: Delivery.objects.filter(status=DeliveryStatus.FAILED_TEMPORARY).exists(), 20
    )
    received_while_up = smtp_server.count
    assert received_while_up < total
    time.sleep(1.0)
    smtp_server.start()

    assert smtp_server.wait_for(total, 120), f"only {smtp_server.count} of {total} arrived"

    def all_sent() -> bool:
        return Delivery.objects.filter(status=DeliveryStatus.SENT).count() == total

    assert wait_until(all_sent, 60)
    time.sleep(1.0)  # anything extra (a resend) would arrive now
    counts = smtp_server.message_id_counts()
    expected = {message_id(str(uid)) for uid in Delivery.objects.values_list("uid", flat=True)}
    assert set(counts) == expected  # none lost
    assert smtp_server.duplicates() == {}  # none twice
    assert smtp_server.count == total
    assert Delivery.objects.filter(attempts__gt=1).exists()  # the outage was real
    subjects = sorted(m.subject for m in smtp_server.messages)
    assert subjects == sorted(f"[Trade Platform] Fill {i}" for i in range(total))
