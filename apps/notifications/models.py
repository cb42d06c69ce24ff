"""Notifications, their per-channel deliveries (the outbox), the trader's preferences and
the browsers subscribed to web push.

Writes go through ``apps.notifications.services``; ``notify()`` there is the entry point every
other app calls.
"""

from __future__ import annotations

import uuid
from datetime import time

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from apps.apikeys.fields import EncryptedField
from apps.notifications.domain import catalog


class NotificationType(models.TextChoices):
    ORDER_FILLED = catalog.Kind.ORDER_FILLED.value, "Order filled"
    ORDER_PARTIALLY_FILLED = catalog.Kind.ORDER_PARTIALLY_FILLED.value, "Order partially filled"
    ORDER_REJECTED = catalog.Kind.ORDER_REJECTED.value, "Order rejected"
    ORDER_CANCELLED = catalog.Kind.ORDER_CANCELLED.value, "Order cancelled"
    POSITION_OPENED = catalog.Kind.POSITION_OPENED.value, "Position opened"
    POSITION_CLOSED = catalog.Kind.POSITION_CLOSED.value, "Position closed"
    STOP_LOSS_HIT = catalog.Kind.STOP_LOSS_HIT.value, "Stop loss hit"
    TAKE_PROFIT_HIT = catalog.Kind.TAKE_PROFIT_HIT.value, "Take profit hit"
    RISK_WARNING = catalog.Kind.RISK_WARNING.value, "Risk warning"
    RISK_BREACH = catalog.Kind.RISK_BREACH.value, "Risk breach"
    STRATEGY_SIGNAL = catalog.Kind.STRATEGY_SIGNAL.value, "Strategy signal"
    BACKTEST_FINISHED = catalog.Kind.BACKTEST_FINISHED.value, "Backtest finished"
    DAILY_SUMMARY = catalog.Kind.DAILY_SUMMARY.value, "Daily summary"
    SYSTEM_ALERT = catalog.Kind.SYSTEM_ALERT.value, "System alert"
    API_KEY_EVENT = catalog.Kind.API_KEY_EVENT.value, "API key event"
    TEST = catalog.Kind.TEST.value, "Test message"

    @property
    def default_severity(self) -> str:
        return catalog.default_severity(self.value).value


class Severity(models.TextChoices):
    INFO = catalog.Severity.INFO.value, "Info"
    SUCCESS = catalog.Severity.SUCCESS.value, "Success"
    WARNING = catalog.Severity.WARNING.value, "Warning"
    ERROR = catalog.Severity.ERROR.value, "Error"
    CRITICAL = catalog.Severity.CRITICAL.value, "Critical"


class Channel(models.TextChoices):
    IN_APP = catalog.Channel.IN_APP.value, "In-app"
    EMAIL = catalog.Channel.EMAIL.value, "E-mail"
    PUSH = catalog.Channel.PUSH.value, "Web push"
    WEBHOOK = catalog.Channel.WEBHOOK.value, "Webhook"


class Notification(models.Model):
    """Something that happened that the trader cares about; shown in the notification centre."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    type = models.CharField(max_length=32, choices=NotificationType.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    link = models.CharField(
        max_length=500, blank=True, help_text="Where the notification leads (a site path or URL)."
    )
    # Retried callers pass the same key, so the second call writes nothing.
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "dedupe_key"],
                condition=models.Q(dedupe_key__isnull=False),
                name="notification_unique_dedupe_key",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="notification_user_time"),
            models.Index(
                fields=["user"],
                condition=models.Q(read_at__isnull=True),
                name="notification_unread",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()}: {self.title}"

    @property
    def is_read(self) -> bool:
        return self.read_at is not None

    @property
    def critical(self) -> bool:
        return self.severity == Severity.CRITICAL


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SCHEDULED = "scheduled", "Scheduled"  # waits for quiet hours to end or for a digest
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED_TEMPORARY = "failed_temporary", "Failed (will retry)"
    FAILED_PERMANENT = "failed_permanent", "Failed"
    SKIPPED = "skipped", "Skipped"


CLAIMABLE_STATUSES = (
    DeliveryStatus.PENDING,
    DeliveryStatus.SCHEDULED,
    DeliveryStatus.FAILED_TEMPORARY,
)
FINAL_STATUSES = (DeliveryStatus.SENT, DeliveryStatus.FAILED_PERMANENT, DeliveryStatus.SKIPPED)


class HoldReason(models.TextChoices):
    NONE = "", "None"
    QUIET_HOURS = "quiet_hours", "Quiet hours"
    DIGEST = "digest", "E-mail digest (rate limit)"


class Delivery(models.Model):
    """One notification on one channel: the outbox row a worker claims, sends and marks.

    ``uid`` is the delivery's identity outside: the e-mail's Message-ID, the webhook's
    delivery id header, so a resend after a crash is recognisable as the same message.
    A digest e-mail is sent by one delivery (``is_digest``) for itself and the rows
    ``batched_into`` it; those follow its outcome.
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_deliveries"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    hold_reason = models.CharField(
        max_length=16, choices=HoldReason.choices, blank=True, default=HoldReason.NONE
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When the delivery is due (first send or retry)."
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text="The last answer of the server.")
    last_error_at = models.DateTimeField(null=True, blank=True)
    # Web push: which of the trader's browsers already got it (retries skip those).
    progress = models.JSONField(default=dict, blank=True)
    is_digest = models.BooleanField(default=False)
    batched_into = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="batch"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "channel"], name="delivery_one_per_channel"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["pending", "scheduled", "failed_temporary"]),
                name="delivery_due",
            ),
            models.Index(
                fields=["claimed_at"],
                condition=models.Q(status="sending"),
                name="delivery_in_flight",
            ),
            models.Index(fields=["user", "channel", "claimed_at"], name="delivery_user_sends"),
            models.Index(fields=["user", "status"], name="delivery_user_status"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} #{self.pk} [{self.status}]"


def _default_quiet_start() -> time:
    return time(22, 0)


def _default_quiet_end() -> time:
    return time(7, 0)


def _default_summary_time() -> time:
    return time(18, 0)


class NotificationSettings(models.Model):
    """A trader's contact details, quiet hours and daily summary (one row per user)."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_settings"
    )
    email = models.EmailField(
        blank=True, help_text="Where e-mails go; empty means the account's e-mail address."
    )
    webhook_url = models.URLField(max_length=1000, blank=True)
    webhook_format = models.CharField(
        max_length=8,
        choices=[("json", "JSON"), ("slack", "Slack"), ("discord", "Discord")],
        default="json",
    )
    webhook_secret = EncryptedField(associated_data=("user_id", "uid"))
    quiet_hours_enabled = models.BooleanField(default=False)
    quiet_start = models.TimeField(default=_default_quiet_start)
    quiet_end = models.TimeField(default=_default_quiet_end)
    daily_summary_enabled = models.BooleanField(default=False)
    daily_summary_time = models.TimeField(default=_default_summary_time)
    daily_summary_last_date = models.DateField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "notification settings"

    def __str__(self) -> str:
        return f"Notification settings of {self.user_id}"


class NotificationPreference(models.Model):
    """The trader's choice for one type on one channel (no row: the default applies)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    type = models.CharField(max_length=32, choices=NotificationType.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    enabled = models.BooleanField()

    class Meta:
        ordering = ["user_id", "type", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "type", "channel"], name="preference_one_per_type_channel"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type}/{self.channel}: {'on' if self.enabled else 'off'}"


class PushSubscription(models.Model):
    """One browser (device) subscribed to web push; removed when the push service says 404/410."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions"
    )
    endpoint = models.URLField(max_length=2000, unique=True)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure = models.TextField(blank=True)

    class Meta:
        ordering = ["user_id", "-created_at"]

    def __str__(self) -> str:
        return f"{self.user_agent or 'browser'} ({self.endpoint[:40]}...)"

    @property
    def subscription_info(self) -> dict:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}
