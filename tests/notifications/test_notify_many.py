"""``notify_many()``: a batch of notices behaves exactly as a loop of ``notify()`` (the same
rows, deliveries and statuses, the same dedupe and validation), at the cost of one call: a
constant number of statements and one task hook per transaction."""

from __future__ import annotations

from datetime import UTC, datetime, time
from unittest import mock

import pytest
import time_machine
from django.db import transaction

from apps.accounts.models import User
from apps.core.errors import ValidationFailed
from apps.notifications import services
from apps.notifications.models import Delivery, Notification, PushSubscription
from apps.notifications.services import Notice
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NIGHT_IN_BERLIN = datetime(2026, 1, 5, 23, 0, tzinfo=UTC)  # 00:00 local: quiet hours


@pytest.fixture
def traders(user, webhook_receiver):
    """Three traders whose channels differ: preferences, a webhook, quiet hours with a push
    subscription, no e-mail address."""
    services.notification_settings_update(user=user, webhook_url=webhook_receiver.url)
    services.notification_preference_set(
        user=user, type="order_filled", channel="email", enabled=False
    )
    night_owl = UserFactory(username="bob", time_zone="Europe/Berlin")
    services.notification_settings_update(
        user=night_owl, quiet_hours_enabled=True, quiet_start=time(22), quiet_end=time(7)
    )
    PushSubscription.objects.create(
        user=night_owl, endpoint="https://push.example/bob", p256dh="k", auth="a"
    )
    unreachable = UserFactory(username="carol", email="")
    services.notification_preference_set(
        user=unreachable, type="strategy_signal", channel="email", enabled=True
    )
    return user, night_owl, unreachable


def mixed_notices(alice, bob, carol) -> list[Notice]:
    return [
        Notice(user=alice, type="order_filled", title="Bought 10 AAPL", data={"order_id": 1}),
        Notice(user=alice.pk, type="position_opened", title="Opened long AAPL", link="/j/"),
        Notice(user=bob, type="order_filled", title="  Bought\n5 MSFT ", dedupe_key="order:2"),
        Notice(user=User(pk=bob.pk), type="risk_breach", title="Daily loss limit breached"),
        Notice(user=bob, type="order_filled", title="Bought again", dedupe_key="order:2"),
        Notice(user=alice, type="order_filled", title="Same key, other user", dedupe_key="order:2"),
        Notice(user=carol, type="strategy_signal", title="Go long", severity="warning"),
        Notice(user=carol.pk, type="order_rejected", title="Rejected", body="No buying power"),
    ]


def written(notifications: list[Notification | None]) -> list[tuple | None]:
    """What is stored for each result, read back from the database (no ids, no uids)."""
    rows = []
    for n in notifications:
        if n is None:
            rows.append(None)
            continue
        stored = Notification.objects.get(pk=n.pk)
        deliveries = sorted(
            (d.channel, d.status, d.hold_reason, d.next_attempt_at, d.attempts, d.created_at)
            for d in stored.deliveries.all()
        )
        rows.append(
            (
                stored.user_id,
                stored.type,
                stored.severity,
                stored.title,
                stored.body,
                stored.data,
                stored.link,
                stored.dedupe_key,
                stored.created_at,
                stored.read_at,
                deliveries,
            )
        )
    return rows


def rolled_back(write) -> list[tuple | None]:
    """Run ``write`` at night in Berlin in a transaction that is rolled back, and return what
    it stored."""
    with time_machine.travel(NIGHT_IN_BERLIN, tick=False), transaction.atomic():
        result = write()
        rows = written(result)
        transaction.set_rollback(True)
    return rows


def test_notify_many_writes_exactly_what_a_loop_of_notify_writes(traders):
    notices = mixed_notices(*traders)

    looped = rolled_back(lambda: [services.notify(**vars(n)) for n in notices])
    batched = rolled_back(lambda: services.notify_many(notices))

    assert batched == looped
    # The case is a real one: a duplicate, quiet hours, a critical passing them, channels on
    # and off per trader.
    assert [row is None for row in batched] == [False] * 4 + [True] + [False] * 3
    channels = [row and {c: s for c, s, *_ in row[-1]} for row in batched]
    assert channels[0] == {"in_app": "pending", "webhook": "pending"}  # e-mail off for fills
    assert channels[2] == {"in_app": "pending", "email": "scheduled", "push": "scheduled"}
    assert channels[3] == {"in_app": "pending", "email": "pending", "push": "pending"}
    assert channels[6] == channels[7] == {"in_app": "pending"}  # carol has no e-mail address
    assert batched[2][3] == "Bought 5 MSFT" and batched[6][2] == "warning"


def test_notify_many_returns_saved_notifications_in_the_notices_order(user, other_user):
    result = services.notify_many(
        [
            Notice(user=user, type="order_filled", title="First"),
            Notice(user=other_user.pk, type="risk_warning", title="Second"),
        ]
    )
    assert [n.title for n in result] == ["First", "Second"]
    assert [n.user_id for n in result] == [user.pk, other_user.pk]
    assert all(n.pk and not n._state.adding for n in result)
    assert result[1].severity == "warning"
    assert Notification.objects.get(pk=result[0].pk).deliveries.count() == 2
    assert services.notify_many([]) == []


def test_notify_many_skips_keys_already_stored_or_repeated_in_the_list(user, other_user):
    services.notify(user=user, type="order_filled", title="Filled", dedupe_key="order:1")
    before = Delivery.objects.count()

    result = services.notify_many(
        [
            Notice(user=user, type="order_filled", title="Filled", dedupe_key="order:1"),
            Notice(user=user, type="order_filled", title="Filled", dedupe_key="order:2"),
            Notice(user=user, type="order_filled", title="Again", dedupe_key="order:2"),
            Notice(user=other_user, type="order_filled", title="Theirs", dedupe_key="order:2"),
            Notice(user=user, type="order_filled", title="No key"),
            Notice(user=user, type="order_filled", title="No key"),
        ]
    )

    assert [n is None for n in result] == [True, False, True, False, False, False]
    assert result[1].title == "Filled" and result[3].user_id == other_user.pk
    assert Notification.objects.filter(user=user, dedupe_key="order:2").get().pk == result[1].pk
    assert Notification.objects.count() == 1 + 4
    # Deliveries only for what was written: in-app and e-mail for each of the four.
    assert Delivery.objects.count() - before == 4 * 2
    assert set(Delivery.objects.values_list("notification_id", flat=True)) == {
        n.pk for n in Notification.objects.all()
    }


def test_notify_many_keeps_the_callers_transaction_going_after_a_duplicate(user):
    services.notify(user=user, type="order_filled", title="Filled", dedupe_key="k")
    with transaction.atomic():
        again = Notice(user=user, type="order_filled", title="F", dedupe_key="k")
        assert services.notify_many([again]) == [None]
        Notification.objects.create(user=user, type="test", severity="info", title="after")
    assert Notification.objects.filter(title="after").exists()


@pytest.mark.parametrize(
    ("bad", "field"),
    [({"type": "order_exploded"}, "type"), ({"severity": "apocalyptic"}, "severity"),
     ({"title": "   "}, "title")],
)  # fmt: skip
def test_notify_many_refuses_a_bad_notice_before_writing_anything(
    user, bad, field, django_capture_on_commit_callbacks
):
    good = {"user": user, "type": "order_filled", "title": "Filled"}
    notices = [Notice(**good), Notice(**good, dedupe_key="a"), Notice(**{**good, **bad})]
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ValidationFailed) as exc:
        services.notify_many(notices)
    assert field in exc.value.fields
    assert not Notification.objects.exists() and not Delivery.objects.exists()
    assert callbacks == []


def test_notify_many_refuses_an_unknown_user_before_writing_anything(user):
    notices = [
        Notice(user=user, type="order_filled", title="Filled"),
        Notice(user=user.pk + 1000, type="order_filled", title="Nobody"),
    ]
    with pytest.raises(User.DoesNotExist):
        services.notify_many(notices)
    assert not Notification.objects.exists()


def test_notify_many_queues_the_deliveries_of_a_transaction_once(
    traders, django_capture_on_commit_callbacks
):
    _, bob, carol = traders
    with (
        time_machine.travel(NIGHT_IN_BERLIN, tick=False),
        mock.patch("apps.notifications.services._enqueue") as enqueue,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        first = services.notify_many(
            [Notice(user=u, type="order_filled", title=f"Fill {i}") for i, u in enumerate(traders)]
            + [Notice(user=bob, type="position_opened", title="Opened")]
        )
        second = services.notify_many([Notice(user=carol, type="order_filled", title="Late")])
        enqueue.assert_not_called()  # nothing leaves before the commit
    # One hook for every pending delivery of the transaction, one for the rows that quiet
    # hours hold (bob's, due at the same moment).
    assert len(callbacks) == 2
    deliveries = Delivery.objects.filter(notification__in=[*first, *second])
    pending = set(deliveries.filter(status="pending").values_list("pk", flat=True))
    held = set(deliveries.filter(status="scheduled").values_list("pk", flat=True))
    (now_ids, now_countdown), (held_ids, held_countdown) = [c.args for c in enqueue.call_args_list]
    assert now_countdown is None and sorted(now_ids) == sorted(pending)
    assert len(now_ids) == len(pending) == 5 + 1  # five in-app rows, alice's webhook
    assert sorted(held_ids) == sorted(held) and len(held) == 2  # the fill's e-mail and push
    assert held_countdown == 7 * 3600  # 07:00 in Berlin


@pytest.mark.postgres
@pytest.mark.parametrize("count", [1, 3, 20, 120])
def test_notify_many_costs_three_statements_however_many_notices(
    user, other_user, count, django_assert_num_queries
):
    """One read of the recipients with their settings and preferences, one INSERT of the
    notifications, one of the deliveries."""
    users = [user, other_user]
    kinds = ["order_filled", "position_opened", "risk_breach"]
    notices = [
        Notice(user=users[i % 2], type=kinds[i % 3], title=f"Event {i}", dedupe_key=f"e{i}")
        for i in range(count)
    ]
    with django_assert_num_queries(3):
        result = services.notify_many(notices)
    assert all(result) and Notification.objects.count() == count
