"""Web push against a local push service that checks the VAPID signature and decrypts the
payload with the subscription's private key, as the browser would; 404/410 remove the
subscription, 5xx is retried only for the browsers that did not get it."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from apps.notifications import services
from apps.notifications.models import DeliveryStatus, PushSubscription
from apps.notifications.vapid import public_key_b64
from tests.notifications.conftest import deliver_due

pytestmark = pytest.mark.django_db


def register(user, push_service) -> PushSubscription:
    info = push_service.subscribe()
    return services.push_subscription_register(
        user=user,
        endpoint=info["endpoint"],
        p256dh=info["keys"]["p256dh"],
        auth=info["keys"]["auth"],
        user_agent="Test browser",
    )


def push_only(user) -> None:
    services.notification_preference_set(
        user=user, type="risk_breach", channel="in_app", enabled=False
    )
    services.notification_preference_set(
        user=user, type="risk_breach", channel="email", enabled=False
    )


def test_a_push_arrives_encrypted_signed_and_decryptable(user, push_service):
    push_only(user)
    register(user, push_service)
    n = services.notify(
        user=user,
        type="risk_breach",
        title="Daily loss limit breached",
        body="Trading halted on Main paper.",
        link="/risk/",
    )
    assert set(n.deliveries.values_list("channel", flat=True)) == {"push"}
    assert deliver_due() == ["sent"]
    assert push_service.wait_for(1)
    [message] = push_service.received
    assert message.payload["title"] == "Daily loss limit breached"
    assert message.payload["body"] == "Trading halted on Main paper."
    assert message.payload["url"] == f"https://trade.example.com/notifications/{n.pk}/open/"
    assert message.payload["require_interaction"] is True
    assert message.headers["urgency"] == "high" and int(message.headers["ttl"]) > 0
    assert message.headers["content-encoding"] == "aes128gcm"
    # Signed with the configured VAPID key (the service verified the JWT with it).
    assert message.vapid_key == public_key_b64(django_settings.VAPID_PRIVATE_KEY)
    assert message.vapid_claims["sub"] == django_settings.VAPID_SUBJECT
    subscription = PushSubscription.objects.get()
    assert subscription.last_success_at is not None


@pytest.mark.parametrize("status", [404, 410])
def test_an_expired_subscription_is_removed(user, push_service, status):
    push_only(user)
    alive = register(user, push_service)
    gone = register(user, push_service)
    push_service.expire(gone.endpoint, status=status)
    n = services.notify(user=user, type="risk_breach", title="Breach")
    assert deliver_due() == ["sent"]
    assert list(PushSubscription.objects.values_list("pk", flat=True)) == [alive.pk]
    assert push_service.wait_for(1) and len(push_service.received) == 1
    delivery = n.deliveries.get()
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.progress["done"] == [alive.pk]


def test_when_every_browser_is_gone_the_delivery_is_skipped_with_the_answer(user, push_service):
    push_only(user)
    only = register(user, push_service)
    push_service.expire(only.endpoint)
    n = services.notify(user=user, type="risk_breach", title="Breach")
    assert deliver_due() == ["skipped"]
    delivery = n.deliveries.get()
    assert "410" in delivery.last_error and not PushSubscription.objects.exists()
    # The next notification has no push channel at all.
    later = services.notify(user=user, type="risk_breach", title="Again")
    assert not later.deliveries.exists()


def test_a_busy_push_service_is_retried_only_for_browsers_that_missed_it(user, push_service):
    push_only(user)
    first = register(user, push_service)
    second = register(user, push_service)
    n = services.notify(user=user, type="risk_breach", title="Breach")
    push_service.fail_next(503)  # the first browser's request fails, the second gets it
    now = timezone.now()
    assert deliver_due(now) == ["retry"]
    delivery = n.deliveries.get()
    assert delivery.progress["done"] == [second.pk]
    assert delivery.status == DeliveryStatus.FAILED_TEMPORARY and "503" in delivery.last_error
    assert deliver_due(delivery.next_attempt_at) == ["sent"]
    endpoints = [m.endpoint for m in push_service.received]
    assert sorted(endpoints) == sorted([first.endpoint, second.endpoint])  # each exactly once
    delivery.refresh_from_db()
    assert sorted(delivery.progress["done"]) == sorted([first.pk, second.pk])


def test_a_refused_message_is_permanent(user, push_service):
    push_only(user)
    register(user, push_service)
    push_service.fail_next(403)
    n = services.notify(user=user, type="risk_breach", title="Breach")
    assert deliver_due() == ["failed"]
    delivery = n.deliveries.get()
    assert "HTTP 403" in delivery.last_error
    assert PushSubscription.objects.count() == 1  # refused is not gone


def test_a_bad_vapid_configuration_is_permanent(user, push_service, settings):
    push_only(user)
    register(user, push_service)
    settings.VAPID_SUBJECT = "not-a-contact"
    n = services.notify(user=user, type="risk_breach", title="Breach")
    assert deliver_due() == ["failed"]
    assert "VAPID" in n.deliveries.get().last_error
    assert push_service.received == []


def test_register_validates_keys_and_moves_an_endpoint_to_its_new_user(
    user, other_user, push_service
):
    from apps.core.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as exc:
        services.push_subscription_register(
            user=user, endpoint="https://push.example/x", p256dh="AAAA", auth="AAAA"
        )
    assert set(exc.value.fields) == {"p256dh", "auth"}
    subscription = register(user, push_service)
    moved = services.push_subscription_register(
        user=other_user,
        endpoint=subscription.endpoint,
        p256dh=subscription.p256dh,
        auth=subscription.auth,
    )
    assert moved.pk == subscription.pk and moved.user == other_user
    # Knowing the endpoint is not enough to take it: the keys must be the browser's.
    with pytest.raises(ValidationFailed) as exc:
        services.push_subscription_register(
            user=user, endpoint=subscription.endpoint, p256dh=push_service.subscribe()["keys"][
                "p256dh"], auth=subscription.auth,
        )  # fmt: skip
    assert "endpoint" in exc.value.fields
    assert not services.push_subscription_unregister(user=user, endpoint=subscription.endpoint)
    assert services.push_subscription_unregister(user=other_user, endpoint=subscription.endpoint)
