"""The contract other apps call: ``notify()`` writes the notification and its outbox in the
caller's transaction, queues delivery after commit, respects preferences, contact details and
quiet hours, and ``dedupe_key`` makes retried callers harmless."""

from __future__ import annotations

from datetime import UTC, datetime, time
from unittest import mock

import pytest
import time_machine
from django.db import transaction

from apps.core.errors import ValidationFailed
from apps.notifications import services
from apps.notifications.models import (
    Delivery,
    DeliveryStatus,
    HoldReason,
    Notification,
    NotificationPreference,
    NotificationSettings,
    PushSubscription,
)
from tests.factories import UserFactory
from tests.notifications.conftest import statuses

pytestmark = pytest.mark.django_db


def test_notify_writes_the_notification_and_one_delivery_per_enabled_channel(user):
    n = services.notify(
        user=user,
        type="order_filled",
        title="Bought 10 AAPL",
        body="Order #12 filled",
        data={"order_id": 12},
        link="/trading/orders/12/",
    )
    assert n.pk and n.severity == "success" and n.user == user and n.read_at is None
    # in-app always, e-mail by default for fills (the user has an address); no webhook URL
    # and no push subscription yet, so no rows for those.
    assert statuses(n) == {"in_app": "pending", "email": "pending"}
    assert all(d.next_attempt_at == n.created_at for d in n.deliveries.all())


def test_notify_queues_deliveries_only_after_commit(user, django_capture_on_commit_callbacks):
    with mock.patch("apps.notifications.services._enqueue") as enqueue:
        with django_capture_on_commit_callbacks() as callbacks:
            n = services.notify(user=user, type="order_filled", title="Bought")
            enqueue.assert_not_called()  # nothing leaves before the commit
        assert len(callbacks) == 1
        callbacks[0]()
    queued = enqueue.call_args.args[0]
    assert sorted(queued) == sorted(n.deliveries.values_list("pk", flat=True))


def test_a_rolled_back_caller_leaves_no_notification_and_queues_nothing(
    user, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.notify(user=user, type="risk_breach", title="Daily loss limit breached")
        raise RuntimeError("the caller failed after notifying")
    assert not Notification.objects.exists() and not Delivery.objects.exists()
    assert callbacks == []


def test_dedupe_key_makes_a_second_call_a_no_op(user):
    first = services.notify(user=user, type="order_filled", title="Filled", dedupe_key="order:1")
    second = services.notify(user=user, type="order_filled", title="Filled", dedupe_key="order:1")
    assert first is not None and second is None
    assert Notification.objects.count() == 1 and Delivery.objects.count() == 2
    # The key is per user.
    other = UserFactory(username="bob")
    assert services.notify(user=other, type="order_filled", title="x", dedupe_key="order:1")


def test_dedupe_race_inside_the_callers_transaction_is_a_no_op(user):
    services.notify(user=user, type="order_filled", title="Filled", dedupe_key="k")
    # No read-before-write: the unique constraint decides, inside a savepoint, so the caller's
    # transaction carries on.
    with transaction.atomic():
        assert services.notify(user=user, type="order_filled", title="F", dedupe_key="k") is None
        Notification.objects.create(user=user, type="test", severity="info", title="after")
    assert Notification.objects.filter(title="after").exists()  # the caller's work survived
    assert Notification.objects.filter(user=user, dedupe_key="k").count() == 1


@pytest.mark.parametrize(
    ("kind", "severity"), [("risk_breach", "critical"), ("system_alert", "critical"),
                           ("order_rejected", "error"), ("risk_warning", "warning")]
)  # fmt: skip
def test_default_severity_per_type(user, kind, severity):
    assert services.notify(user=user, type=kind, title="t").severity == severity


def test_explicit_severity_wins(user):
    assert services.notify(
        user=user, type="order_filled", title="t", severity="warning"
    ).severity == ("warning")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"type": "order_exploded"}, "type"), ({"severity": "apocalyptic"}, "severity"),
     ({"title": "   "}, "title")],
)  # fmt: skip
def test_bad_input_is_refused_clearly_and_writes_nothing(user, kwargs, field):
    values = {"type": "order_filled", "title": "Filled", **kwargs}
    with pytest.raises(ValidationFailed) as exc:
        services.notify(user=user, **values)
    assert field in exc.value.fields
    assert not Notification.objects.exists()


def test_preferences_switch_channels_off_and_on(user, webhook_receiver):
    services.notification_settings_update(user=user, webhook_url=webhook_receiver.url)
    services.notification_preference_set(
        user=user, type="order_filled", channel="email", enabled=False
    )
    services.notification_preference_set(
        user=user, type="strategy_signal", channel="email", enabled=True
    )
    filled = services.notify(user=user, type="order_filled", title="Filled")
    signal = services.notify(user=user, type="strategy_signal", title="Signal")
    assert set(statuses(filled)) == {"in_app", "webhook"}
    assert set(statuses(signal)) == {"in_app", "email", "webhook"}


def test_contact_details_decide_reachability(user):
    user.email = ""
    user.save()
    assert set(statuses(services.notify(user=user, type="order_filled", title="x"))) == {"in_app"}
    services.notification_settings_update(user=user, email="desk@example.com")
    PushSubscription.objects.create(
        user=user, endpoint="https://push.example/1", p256dh="k", auth="a"
    )
    n = services.notify(user=user, type="order_filled", title="y")
    assert set(statuses(n)) == {"in_app", "email", "push"}


def test_quiet_hours_hold_non_critical_deliveries_until_they_end(user):
    user.time_zone = "Europe/Berlin"
    user.save()
    services.notification_settings_update(
        user=user, quiet_hours_enabled=True, quiet_start=time(22), quiet_end=time(7)
    )
    with time_machine.travel(datetime(2026, 1, 5, 23, 0, tzinfo=UTC), tick=False):  # 00:00 Berlin
        filled = services.notify(user=user, type="order_filled", title="Filled at night")
        breach = services.notify(user=user, type="risk_breach", title="Breach at night")
    ends = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)  # 07:00 Berlin
    email = filled.deliveries.get(channel="email")
    assert (email.status, email.hold_reason, email.next_attempt_at) == (
        DeliveryStatus.SCHEDULED,
        HoldReason.QUIET_HOURS,
        ends,
    )
    assert filled.deliveries.get(channel="in_app").status == DeliveryStatus.PENDING
    assert statuses(breach) == {"in_app": "pending", "email": "pending"}  # critical goes through


def test_quiet_hours_off_by_default(user):
    with time_machine.travel(datetime(2026, 1, 5, 2, 0, tzinfo=UTC), tick=False):
        n = services.notify(user=user, type="order_filled", title="x")
    assert statuses(n) == {"in_app": "pending", "email": "pending"}
    assert not NotificationSettings.objects.filter(user=user).exists()  # notify wrote none


def test_notify_accepts_a_user_id_or_a_bare_instance(user):
    from apps.accounts.models import User

    user.time_zone = "Asia/Tokyo"
    user.save()
    for given in (user.pk, User(pk=user.pk)):
        n = services.notify(user=given, type="order_filled", title="x")
        assert n.user_id == user.pk
        # The real row was used: its e-mail address makes the e-mail channel reachable.
        assert set(statuses(n)) == {"in_app", "email"}


def test_preference_matrix_save_stores_only_differences(user):
    stored = services.notification_preferences_save(
        user=user, enabled={("order_filled", "in_app"), ("strategy_signal", "email")}
    )
    rows = set(
        NotificationPreference.objects.filter(user=user).values_list("type", "channel", "enabled")
    )
    assert ("strategy_signal", "email", True) in rows
    assert ("order_filled", "email", False) in rows
    assert ("order_filled", "in_app", True) not in rows  # same as the default: no row
    assert stored == len(rows)
