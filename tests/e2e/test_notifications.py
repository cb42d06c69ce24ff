"""Notifications in a real browser: a notification pushed over the WebSocket shows a toast and
bumps the header badge; the dropdown lists it; "Mark all read" clears the badge; the centre
opens the related page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.notifications import services
from tests.e2e.conftest import htmx_swap, in_thread
from tests.factories import UserFactory
from tradeplatform.celery import app as celery_app

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]


@pytest.fixture
def trader(transactional_db):
    return UserFactory(username="trader")


@pytest.fixture(autouse=True)
def _deliver_in_process():
    # No worker runs here: the delivery task runs right after notify() commits.
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def notify_in_app(user, **kwargs):
    services.notification_preference_set(
        user=user, type=kwargs["type"], channel="email", enabled=False
    )
    return services.notify(user=user, **kwargs)


def test_a_live_notification_toasts_badges_and_can_be_read(page, login, trader):
    login(trader)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    badge = page.get_by_test_id("notif-badge")
    expect(badge).to_be_hidden()

    n = in_thread(
        notify_in_app,
        trader,
        type="order_filled",
        title="Bought 10 AAPL @ 101.50",
        link="/trading/orders/",
    )
    expect(page.locator("#toasts .toast-success")).to_contain_text("Bought 10 AAPL @ 101.50")
    expect(badge).to_be_visible()
    expect(badge).to_have_text("1")

    with htmx_swap(page, "#notif-dropdown [data-notification-id]"):
        page.get_by_test_id("notif-bell").click()
    dropdown = page.locator("#notif-dropdown")
    expect(dropdown).to_contain_text("Bought 10 AAPL @ 101.50")
    expect(dropdown).to_contain_text("1 unread")
    dropdown.get_by_role("button", name="Mark all read").click()
    expect(badge).to_be_hidden()

    page.goto("/notifications/")
    row = page.locator(f"#notification-{n.pk}")
    expect(row).to_have_attribute("data-read", "true")
    row.get_by_test_id("open").click()
    page.wait_for_url("**/trading/orders/")
