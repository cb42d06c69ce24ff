"""Fixtures of the notification tests: the real servers on loopback (aiosmtpd, a decrypting web
push service, a signature-checking webhook receiver), settings fit for tests, and helpers that
run due deliveries in this process.

Tasks queued by the code under test run in this process (Celery eager mode), except in tests
marked ``celery``, which start a real worker (``tests/notifications/worker.py``).
"""

from __future__ import annotations

from datetime import datetime

import pytest
from django.utils import timezone

from apps.notifications import services
from apps.notifications.models import CLAIMABLE_STATUSES, Delivery
from apps.notifications.transports import TRANSPORTS
from tests.fakes.push_service import FakePushService
from tests.fakes.smtp_server import FakeSMTP
from tests.fakes.webhook_server import FakeWebhookReceiver
from tradeplatform.celery import app as celery_app

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


@pytest.fixture(autouse=True)
def _notification_settings(settings):
    settings.NOTIFICATIONS_EMAIL_RATE = "100/hour"
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 5
    settings.NOTIFICATIONS_RETRY_BASE_SECONDS = 1.0
    settings.NOTIFICATIONS_RETRY_MAX_SECONDS = 10.0
    settings.NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE = True
    settings.SITE_URL = "https://trade.example.com"
    settings.DEFAULT_FROM_EMAIL = "Trade Platform <noreply@trade.example.com>"
    yield
    for transport in list(TRANSPORTS.values()):
        close = getattr(transport, "close", None)
        if close:
            close()
    TRANSPORTS.clear()


@pytest.fixture(autouse=True)
def _tasks_in_process(request):
    if request.node.get_closest_marker("celery"):
        yield
        return
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


# --- the servers -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _smtp():
    with FakeSMTP() as server:
        yield server


@pytest.fixture
def smtp_server(_smtp, settings):
    """aiosmtpd on loopback, empty, configured as the platform's SMTP server."""
    _smtp.reset()
    _smtp.start()
    settings.EMAIL_BACKEND = SMTP_BACKEND
    settings.EMAIL_HOST = _smtp.host
    settings.EMAIL_PORT = _smtp.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    yield _smtp
    _smtp.start()  # a test that stopped it leaves it running for the next
    _smtp.reset()


@pytest.fixture(scope="session")
def _push():
    with FakePushService() as service:
        yield service


@pytest.fixture
def push_service(_push):
    _push.reset()
    yield _push
    _push.reset()


@pytest.fixture(scope="session")
def _webhook():
    with FakeWebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def webhook_receiver(_webhook):
    _webhook.reset()
    yield _webhook
    _webhook.reset()


# --- helpers ---------------------------------------------------------------------------------


def deliver_due(now: datetime | None = None) -> list[str]:
    """Attempt every delivery that is due now, in this process; returns the outcomes."""
    now = now or timezone.now()
    ids = list(
        Delivery.objects.filter(
            status__in=CLAIMABLE_STATUSES, next_attempt_at__lte=now, batched_into__isnull=True
        )
        .order_by("id")
        .values_list("pk", flat=True)
    )
    outcomes = []
    for pk in ids:
        # A digest carrier may have taken later rows with it.
        if Delivery.objects.filter(pk=pk, batched_into__isnull=True).exists():
            outcomes.append(services.delivery_attempt(delivery_id=pk, now=now))
    return outcomes


def statuses(notification) -> dict[str, str]:
    return dict(notification.deliveries.values_list("channel", "status"))
