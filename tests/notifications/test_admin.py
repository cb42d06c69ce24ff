"""Admin: notifications and deliveries with status filters, and the "retry delivery" action."""

from __future__ import annotations

import pytest

from apps.notifications import services
from apps.notifications.models import Delivery, DeliveryStatus
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client


def test_deliveries_list_filters_by_status_and_channel(admin_client, user):
    n = services.notify(user=user, type="order_filled", title="Filled")
    Delivery.objects.filter(notification=n, channel="email").update(
        status=DeliveryStatus.FAILED_PERMANENT, last_error="550 5.1.1 user unknown"
    )
    response = admin_client.get(
        "/admin/notifications/delivery/", {"status__exact": "failed_permanent"}
    )
    text = response.content.decode()
    assert response.status_code == 200
    assert "550 5.1.1 user unknown" in text and "Failed (will retry)" in text  # filter choices
    assert text.count('class="action-checkbox"') == 1
    response = admin_client.get("/admin/notifications/delivery/", {"channel__exact": "in_app"})
    assert "550 5.1.1" not in response.content.decode()


def test_notification_pages_render(admin_client, user):
    n = services.notify(user=user, type="risk_breach", title="Daily loss limit breached")
    assert (
        admin_client.get("/admin/notifications/notification/?severity__exact=critical").status_code
        == 200
    )
    response = admin_client.get(f"/admin/notifications/notification/{n.pk}/change/")
    assert response.status_code == 200 and "Daily loss limit breached" in response.content.decode()
    for path in ("notificationsettings", "notificationpreference", "pushsubscription"):
        assert admin_client.get(f"/admin/notifications/{path}/").status_code == 200


def test_retry_delivery_action(admin_client, user, smtp_server, django_capture_on_commit_callbacks):
    n = services.notify(user=user, type="order_filled", title="Filled")
    email = n.deliveries.get(channel="email")
    Delivery.objects.filter(pk=email.pk).update(
        status=DeliveryStatus.FAILED_PERMANENT, attempts=8, last_error="gave up"
    )
    in_app = n.deliveries.get(channel="in_app")
    Delivery.objects.filter(pk=in_app.pk).update(status=DeliveryStatus.SENT)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/notifications/delivery/",
            {"action": "retry_deliveries", "_selected_action": [email.pk, in_app.pk]},
            follow=True,
        )
    assert "1 delivery queued again. 1 left alone" in response.content.decode()
    # The task queued at commit ran (in-process here) and the e-mail went out.
    email.refresh_from_db()
    in_app.refresh_from_db()
    assert email.status == DeliveryStatus.SENT and email.attempts == 1
    assert in_app.status == DeliveryStatus.SENT
    assert smtp_server.wait_for(1)
