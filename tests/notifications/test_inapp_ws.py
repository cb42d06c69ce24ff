"""In-app delivery through the Redis channel layer to the authenticated per-user WebSocket
(/ws/events/ of tradeplatform.asgi.application): the owner's open pages get the event with the
unread count; another user's socket gets nothing."""

from __future__ import annotations

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import connections, transaction

from apps.notifications import services
from apps.notifications.services import Notice
from tests.factories import UserFactory
from tradeplatform.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest_asyncio.fixture(autouse=True)
async def _close_thread_connections():
    """sync_to_async runs the ORM in a worker thread; close its connection so the test
    database can be dropped."""
    yield
    await sync_to_async(connections.close_all)()


def session_cookie(user) -> bytes:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()


async def connect(user=None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if user is not None:
        headers.append((b"cookie", await sync_to_async(session_cookie)(user)))
    communicator = WebsocketCommunicator(application, "/ws/events/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    if connected:
        hello = await communicator.receive_json_from(timeout=5)
        assert hello["type"] == "hello"
    return communicator if connected else code


def notify_and_deliver(user, **kwargs):
    """notify() commits; its on-commit hook queues the delivery task (run in-process here)."""
    n = services.notify(user=user, type="order_filled", **kwargs)
    return n, n.deliveries.get(channel="in_app").status


async def test_the_redis_layer_is_in_use():
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"


async def test_the_owner_gets_the_event_with_badge_count_and_others_get_nothing():
    alice = await sync_to_async(UserFactory)(username="alice")
    mallory = await sync_to_async(UserFactory)(username="mallory")
    alice_tab_1 = await connect(alice)
    alice_tab_2 = await connect(alice)
    mallory_tab = await connect(mallory)
    try:
        n, outcome = await sync_to_async(notify_and_deliver)(
            alice, title="Bought 10 AAPL", body="Order #12", link="/trading/orders/12/"
        )
        assert outcome == "sent"  # delivered by the task queued on commit
        for tab in (alice_tab_1, alice_tab_2):
            event = await tab.receive_json_from(timeout=5)
            assert event["type"] == "notification"
            data = event["data"]
            assert (data["id"], data["title"], data["unread_count"]) == (n.pk, "Bought 10 AAPL", 1)
            assert data["level"] == "success" and data["link"] == f"/notifications/{n.pk}/open/"
        assert await mallory_tab.receive_nothing(timeout=0.5)

        # Marking read in one tab updates the badge of every tab.
        await sync_to_async(services.notifications_mark_read)(user=alice)
        for tab in (alice_tab_1, alice_tab_2):
            event = await tab.receive_json_from(timeout=5)
            assert event == {"type": "notifications.read", "data": {"unread_count": 0}}
        assert await mallory_tab.receive_nothing(timeout=0.3)
    finally:
        for tab in (alice_tab_1, alice_tab_2, mallory_tab):
            await tab.disconnect()


async def test_a_batch_reaches_each_owners_pages_one_event_per_notification_in_order():
    alice = await sync_to_async(UserFactory)(username="alice")
    bob = await sync_to_async(UserFactory)(username="bob")
    alice_tab, bob_tab = await connect(alice), await connect(bob)

    def fills_in_one_transaction():
        # One task after the commit carries every delivery; its in-app rows go out together.
        with transaction.atomic():
            return services.notify_many(
                [
                    Notice(user=alice, type="order_filled", title="Fill 1"),
                    Notice(user=bob, type="order_filled", title="Fill 2"),
                    Notice(user=alice, type="position_opened", title="Opened 1"),
                ]
            )

    try:
        first, second, third = await sync_to_async(fills_in_one_transaction)()
        received = [await alice_tab.receive_json_from(timeout=5) for _ in range(2)]
        assert [(e["type"], e["data"]["id"]) for e in received] == [
            ("notification", first.pk),
            ("notification", third.pk),
        ]
        assert [e["data"]["unread_count"] for e in received] == [2, 2]
        assert received[1]["data"]["link"] == f"/notifications/{third.pk}/open/"
        event = await bob_tab.receive_json_from(timeout=5)
        assert (event["data"]["id"], event["data"]["title"]) == (second.pk, "Fill 2")
        assert await alice_tab.receive_nothing(timeout=0.3)
        assert await bob_tab.receive_nothing(timeout=0.3)
    finally:
        for tab in (alice_tab, bob_tab):
            await tab.disconnect()


async def test_an_anonymous_socket_is_refused():
    code = await connect(None)
    assert code == 4401
