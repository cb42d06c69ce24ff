"""Webhooks against a local receiver that verifies the HMAC signature with the trader's secret:
plain JSON, Slack and Discord bodies, retries on 5xx, permanent 4xx with the answer, and
refusal of internal addresses in production."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.apikeys.fields import reveal
from apps.core.errors import ValidationFailed
from apps.notifications import services
from apps.notifications.models import DeliveryStatus, NotificationSettings
from tests.notifications.conftest import deliver_due

pytestmark = pytest.mark.django_db


def hook_only(user, receiver, fmt: str = "json") -> str:
    for channel in ("in_app", "email"):
        services.notification_preference_set(
            user=user, type="order_filled", channel=channel, enabled=False
        )
    row = services.notification_settings_update(
        user=user, webhook_url=receiver.url, webhook_format=fmt
    )
    receiver.secret = reveal(row, "webhook_secret")
    return receiver.secret


def test_a_signed_json_post_that_the_receiver_verifies(user, webhook_receiver):
    secret = hook_only(user, webhook_receiver)
    assert secret.startswith("whsec_") and len(secret) > 40
    # Stored encrypted, never in clear.
    assert secret not in NotificationSettings.objects.values_list("webhook_secret", flat=True)[0]
    n = services.notify(
        user=user, type="order_filled", title="Bought 10 AAPL", data={"order_id": 12},
        link="/trading/orders/12/",
    )  # fmt: skip
    assert deliver_due() == ["sent"]
    [request] = webhook_receiver.received
    assert request.signature_ok and request.answered == 200
    delivery = n.deliveries.get()
    assert request.headers["X-TradePlatform-Delivery"] == str(delivery.uid)
    assert request.headers["X-TradePlatform-Event"] == "order_filled"
    assert request.headers["Content-Type"] == "application/json"
    body = request.json
    assert body["event"] == "notification" and body["delivery_id"] == str(delivery.uid)
    assert body["notification"]["title"] == "Bought 10 AAPL"
    assert body["notification"]["data"] == {"order_id": 12}
    assert body["notification"]["link"] == "https://trade.example.com/trading/orders/12/"


def test_a_wrong_secret_is_refused_by_the_receiver_and_recorded(user, webhook_receiver):
    hook_only(user, webhook_receiver)
    webhook_receiver.secret = "whsec_someone_else"
    n = services.notify(user=user, type="order_filled", title="Filled")
    assert deliver_due() == ["failed"]  # 401 is permanent
    delivery = n.deliveries.get()
    assert not webhook_receiver.received[0].signature_ok
    assert delivery.last_error.endswith("HTTP 401 Unauthorized: bad signature")


def test_rotating_the_secret_signs_with_the_new_one(user, webhook_receiver):
    old = hook_only(user, webhook_receiver)
    new = services.notification_settings_rotate_webhook_secret(user=user)
    assert new != old
    webhook_receiver.secret = new
    services.notify(user=user, type="order_filled", title="Filled")
    assert deliver_due() == ["sent"] and webhook_receiver.received[0].signature_ok


@pytest.mark.parametrize(
    ("fmt", "check"),
    [
        ("slack", lambda body: body["text"].startswith(":white_check_mark: *Filled 10 AAPL*")
         and body["blocks"][0]["type"] == "section"),
        ("discord", lambda body: body["embeds"][0]["title"] == "Filled 10 AAPL"
         and body["embeds"][0]["color"] == 0x0E9F6E and body["username"] == "Trade Platform"),
    ],
)  # fmt: skip
def test_slack_and_discord_bodies(user, webhook_receiver, fmt, check):
    hook_only(user, webhook_receiver, fmt=fmt)
    services.notify(user=user, type="order_filled", title="Filled 10 AAPL")
    assert deliver_due() == ["sent"]
    request = webhook_receiver.received[0]
    assert request.signature_ok and check(request.json)


def test_5xx_is_retried_with_the_same_delivery_id_and_4xx_is_permanent(user, webhook_receiver):
    hook_only(user, webhook_receiver)
    webhook_receiver.respond(503, "maintenance")
    n = services.notify(user=user, type="order_filled", title="Filled")
    assert deliver_due(timezone.now()) == ["retry"]
    delivery = n.deliveries.get()
    assert delivery.status == DeliveryStatus.FAILED_TEMPORARY
    assert "HTTP 503" in delivery.last_error and "maintenance" in delivery.last_error
    assert deliver_due(delivery.next_attempt_at) == ["sent"]
    first, second = webhook_receiver.received
    assert first.headers["X-TradePlatform-Delivery"] == second.headers["X-TradePlatform-Delivery"]

    webhook_receiver.respond(422, '{"error": "unknown event"}')
    other = services.notify(user=user, type="order_filled", title="Again")
    assert deliver_due() == ["failed"]
    assert 'HTTP 422 Unprocessable Entity: {"error": "unknown event"}' in (
        other.deliveries.get().last_error
    )


def test_an_unreachable_receiver_is_temporary(user, webhook_receiver):
    hook_only(user, webhook_receiver)
    services.notification_settings_update(user=user, webhook_url="http://127.0.0.1:9/hook")
    n = services.notify(user=user, type="order_filled", title="Filled")
    assert deliver_due() == ["retry"]
    assert "could not be reached" in n.deliveries.get().last_error


def test_internal_addresses_are_refused_in_production(user, webhook_receiver, settings):
    settings.NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE = False
    for url in (webhook_receiver.url, "http://10.0.0.5/hook", "http://[::1]/x", "ftp://x.org/"):
        with pytest.raises(ValidationFailed) as exc:
            services.notification_settings_update(user=user, webhook_url=url)
        assert "webhook_url" in exc.value.fields
    # A URL saved while allowed is refused again at send time.
    settings.NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE = True
    hook_only(user, webhook_receiver)
    settings.NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE = False
    n = services.notify(user=user, type="order_filled", title="Filled")
    assert deliver_due() == ["failed"]
    assert "internal address" in n.deliveries.get().last_error
    assert webhook_receiver.received == []
