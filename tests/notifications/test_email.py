"""E-mail over SMTP against a real server on loopback (aiosmtpd): the messages themselves
(subject, recipients, both parts, templates per type), temporary failures retried with backoff,
permanent ones recorded with the server's answer, and the rate limit folding excess e-mails
into a digest, with controlled time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.notifications import services
from apps.notifications.emails import message_id
from apps.notifications.models import Delivery, DeliveryStatus, HoldReason
from tests.notifications.conftest import deliver_due

pytestmark = pytest.mark.django_db


def only_email(user) -> None:
    """Keep these tests to the e-mail channel."""
    for kind in ("order_filled", "risk_breach", "daily_summary", "system_alert", "strategy_signal",
                 "backtest_finished", "order_rejected"):  # fmt: skip
        services.notification_preference_set(user=user, type=kind, channel="in_app", enabled=False)
        services.notification_preference_set(user=user, type=kind, channel="email", enabled=True)


def test_an_order_fill_arrives_with_subject_recipient_and_both_parts(user, smtp_server):
    only_email(user)
    n = services.notify(
        user=user,
        type="order_filled",
        title="Bought 10 AAPL @ 101.50",
        body="Your market order filled completely.",
        data={"symbol": "AAPL", "side": "buy", "quantity": "10", "price": "101.50", "order_id": 12},
        link="/trading/orders/12/",
    )
    assert deliver_due() == ["sent"]
    assert smtp_server.wait_for(1)
    [mail] = smtp_server.messages
    delivery = n.deliveries.get(channel="email")
    assert mail.subject == "[Trade Platform] Bought 10 AAPL @ 101.50"
    assert mail.rcpt_tos == ["alice@example.com"] and mail.to == "alice@example.com"
    assert mail.mail_from == "noreply@trade.example.com"
    assert mail.message_id == message_id(str(delivery.uid))
    assert mail.message.get_content_type() == "multipart/alternative"
    assert "Average price: 101.50" in mail.text
    assert "https://trade.example.com/trading/orders/12/" in mail.text
    assert "<strong>AAPL</strong>" in mail.html and "View the order" in mail.html
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 1)
    assert delivery.sent_at is not None


@pytest.mark.parametrize(
    ("kind", "data", "subject_start", "text_marker", "html_marker"),
    [
        ("risk_breach", {"rule": "Daily loss 2%", "value": -2.4, "limit": -2.0},
         "[Trade Platform][CRITICAL] ", "RISK BREACH (critical)", "Review the risk rule"),
        ("system_alert", {}, "[Trade Platform][CRITICAL] ", "SYSTEM ALERT", "System alert"),
        ("backtest_finished", {}, "[Trade Platform] ", "Backtest finished (info)",
         "Backtest finished"),
        ("daily_summary", {"day": "2026-01-05", "day_pnl": "12.00", "trades_closed": 2,
                           "open_positions": 1, "accounts": []},
         "[Trade Platform] ", "Daily summary, 2026-01-05", "Daily summary &middot; 2026-01-05"),
    ],
)  # fmt: skip
def test_templates_per_type(user, smtp_server, kind, data, subject_start, text_marker, html_marker):
    only_email(user)
    services.notify(user=user, type=kind, title="Something happened", data=data, link="/x/")
    deliver_due()
    assert smtp_server.wait_for(1)
    [mail] = smtp_server.messages
    assert mail.subject == subject_start + "Something happened"
    assert text_marker in mail.text
    assert html_marker in mail.html
    if kind == "risk_breach":
        assert "Limit:         -2.0" in mail.text


def test_contact_address_from_preferences_wins(user, smtp_server):
    only_email(user)
    services.notification_settings_update(user=user, email="desk@example.org")
    services.notify(user=user, type="order_filled", title="Filled")
    deliver_due()
    assert smtp_server.wait_for(1)
    assert smtp_server.messages[0].rcpt_tos == ["desk@example.org"]


def test_server_down_is_a_temporary_failure_retried_with_backoff(user, smtp_server, settings):
    only_email(user)
    settings.NOTIFICATIONS_RETRY_BASE_SECONDS = 60
    settings.NOTIFICATIONS_RETRY_MAX_SECONDS = 3600
    n = services.notify(user=user, type="order_filled", title="Filled while the server is down")
    smtp_server.stop()
    now = timezone.now()
    assert deliver_due(now) == ["retry"]
    delivery = n.deliveries.get()
    assert delivery.status == DeliveryStatus.FAILED_TEMPORARY and delivery.attempts == 1
    assert "could not be reached" in delivery.last_error
    wait = (delivery.next_attempt_at - now).total_seconds()
    assert 30 <= wait <= 60  # the first step of the schedule, with jitter
    assert deliver_due(now) == []  # not due yet
    smtp_server.start()
    assert deliver_due(delivery.next_attempt_at) == ["sent"]
    assert smtp_server.wait_for(1) and smtp_server.count == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and delivery.attempts == 2


def test_a_4xx_answer_is_temporary_and_gives_up_after_max_attempts(user, smtp_server, settings):
    only_email(user)
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 3
    smtp_server.answer_data(451, "4.3.0 Mail server temporarily rejected message")
    n = services.notify(user=user, type="order_filled", title="Filled")
    delivery = n.deliveries.get()
    now = timezone.now()
    outcomes = []
    for _ in range(3):
        outcomes += deliver_due(now)
        delivery.refresh_from_db()
        now = delivery.next_attempt_at or now
    assert outcomes == ["retry", "retry", "failed"]
    assert delivery.status == DeliveryStatus.FAILED_PERMANENT and delivery.attempts == 3
    assert "Gave up after 3 attempts" in delivery.last_error
    assert "451 4.3.0 Mail server temporarily rejected message" in delivery.last_error
    assert smtp_server.count == 0


def test_a_5xx_answer_is_permanent_with_the_servers_answer(user, smtp_server):
    only_email(user)
    smtp_server.refuse("alice@example.com", 550, "5.1.1 <alice@example.com>: user unknown")
    n = services.notify(user=user, type="order_filled", title="Filled")
    assert deliver_due() == ["failed"]
    delivery = n.deliveries.get()
    assert delivery.status == DeliveryStatus.FAILED_PERMANENT and delivery.attempts == 1
    assert "550 5.1.1 <alice@example.com>: user unknown" in delivery.last_error
    assert smtp_server.count == 0


def test_running_a_delivery_twice_sends_once(user, smtp_server):
    only_email(user)
    n = services.notify(user=user, type="order_filled", title="Filled")
    delivery = n.deliveries.get()
    assert services.delivery_attempt(delivery_id=delivery.pk) == "sent"
    assert services.delivery_attempt(delivery_id=delivery.pk) == "not_due"
    assert smtp_server.wait_for(1) and smtp_server.count == 1


def test_rate_limit_folds_excess_emails_into_one_digest(user, smtp_server, settings):
    only_email(user)
    settings.NOTIFICATIONS_EMAIL_RATE = "3/hour"
    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        notes = [
            services.notify(user=user, type="order_filled", title=f"Fill {i}") for i in range(6)
        ]
        outcomes = deliver_due()
    assert outcomes == ["sent", "sent", "sent", "deferred", "deferred", "deferred"]
    assert smtp_server.wait_for(3) and smtp_server.count == 3
    held = Delivery.objects.filter(hold_reason=HoldReason.DIGEST, status="scheduled")
    assert held.count() == 3
    assert set(held.values_list("next_attempt_at", flat=True)) == {start + timedelta(hours=1)}

    with time_machine.travel(start + timedelta(minutes=59), tick=False):
        assert deliver_due() == []  # the window is still full
        services.notify(user=user, type="order_filled", title="Fill 6")  # joins the digest
        assert deliver_due() == ["deferred"]

    with time_machine.travel(start + timedelta(hours=1), tick=False):
        assert deliver_due() == ["sent"]  # one carrier sends the digest for all four
    assert smtp_server.wait_for(4)
    assert smtp_server.count == 4
    digest = smtp_server.messages[-1]
    assert digest.subject == "[Trade Platform] 4 notifications while e-mails were paused"
    for i in (3, 4, 5, 6):
        assert f"Fill {i}" in digest.text and f"Fill {i}" in digest.html
    assert "Fill 0" not in digest.text
    # Nothing was dropped: every notification's e-mail is accounted for, exactly once.
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    carrier = Delivery.objects.get(is_digest=True)
    assert carrier.batch.count() == 3
    assert digest.message_id == message_id(str(carrier.uid))
    assert len(notes) == 6


def test_critical_emails_skip_the_rate_limit(user, smtp_server, settings):
    only_email(user)
    settings.NOTIFICATIONS_EMAIL_RATE = "1/hour"
    services.notify(user=user, type="order_filled", title="Fill")
    services.notify(user=user, type="order_filled", title="Fill again")
    services.notify(user=user, type="risk_breach", title="Breach")
    assert deliver_due() == ["sent", "deferred", "sent"]
    assert smtp_server.wait_for(2)
    assert sorted(m.subject for m in smtp_server.messages) == [
        "[Trade Platform] Fill",
        "[Trade Platform][CRITICAL] Breach",
    ]


def test_quiet_hours_emails_go_out_when_they_end(user, smtp_server):
    from datetime import time

    only_email(user)
    user.time_zone = "America/New_York"
    user.save()
    services.notification_settings_update(
        user=user, quiet_hours_enabled=True, quiet_start=time(22), quiet_end=time(6, 30)
    )
    night = datetime(2026, 1, 6, 4, 0, tzinfo=UTC)  # 23:00 in New York
    with time_machine.travel(night, tick=False):
        services.notify(user=user, type="order_filled", title="Filled overnight")
        services.notify(user=user, type="system_alert", title="Broker connection lost")
        assert deliver_due() == ["sent"]  # only the critical alert
    assert smtp_server.wait_for(1)
    assert smtp_server.messages[0].subject.endswith("Broker connection lost")
    with time_machine.travel(datetime(2026, 1, 6, 11, 29, tzinfo=UTC), tick=False):
        assert deliver_due() == []  # 06:29 in New York
    with time_machine.travel(datetime(2026, 1, 6, 11, 30, tzinfo=UTC), tick=False):
        assert deliver_due() == ["sent"]
    assert smtp_server.wait_for(2)
    assert smtp_server.messages[1].subject == "[Trade Platform] Filled overnight"


def test_a_connection_the_server_dropped_is_replaced_before_data(user, smtp_server):
    only_email(user)
    services.notify(user=user, type="order_filled", title="First")
    assert deliver_due() == ["sent"]
    smtp_server.stop()  # the kept connection dies with the server
    smtp_server.start()
    services.notify(user=user, type="order_filled", title="Second")
    assert deliver_due() == ["sent"]  # reconnected at MAIL FROM, nothing was at risk
    assert smtp_server.wait_for(2)
    assert [m.subject for m in smtp_server.messages] == [
        "[Trade Platform] First",
        "[Trade Platform] Second",
    ]
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}
