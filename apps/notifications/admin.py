"""Admin: notifications with their deliveries, the delivery outbox with status filters and a
"retry delivery" action (through the service), preferences and push subscriptions.
Signing secrets are never shown."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import models

from apps.notifications.models import (
    Delivery,
    Notification,
    NotificationPreference,
    NotificationSettings,
    PushSubscription,
)
from apps.notifications.services import deliveries_retry

DELIVERY_FIELDS = (
    "uid",
    "notification",
    "user",
    "channel",
    "status",
    "hold_reason",
    "attempts",
    "next_attempt_at",
    "claimed_at",
    "sent_at",
    "last_error",
    "last_error_at",
    "is_digest",
    "batched_into",
    "progress",
    "created_at",
    "updated_at",
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Outbox rows change through the services only; admins read them and use actions."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fk_name = "notification"
    extra = 0
    can_delete = False
    fields = ("channel", "status", "attempts", "next_attempt_at", "sent_at", "last_error")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.action(description="Retry delivery (failed or skipped ones, now)")
def retry_deliveries(modeladmin, request, queryset) -> None:
    count = deliveries_retry(delivery_ids=queryset.values_list("pk", flat=True))
    skipped = queryset.count() - count
    text = f"{count} deliver{'y' if count == 1 else 'ies'} queued again."
    if skipped:
        text += f" {skipped} left alone (only failed or skipped deliveries are retried)."
    modeladmin.message_user(request, text, messages.SUCCESS if count else messages.WARNING)


@admin.action(description="Retry this notification's failed deliveries")
def retry_notification_deliveries(modeladmin, request, queryset) -> None:
    ids = Delivery.objects.filter(notification__in=queryset).values_list("pk", flat=True)
    count = deliveries_retry(delivery_ids=ids)
    modeladmin.message_user(request, f"{count} deliveries queued again.", messages.SUCCESS)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "user", "type", "severity", "title", "read_at")
    list_filter = ("type", "severity", ("read_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("title", "body", "user__username", "dedupe_key")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    readonly_fields = (
        "uid",
        "user",
        "type",
        "severity",
        "title",
        "body",
        "data",
        "link",
        "dedupe_key",
        "created_at",
        "read_at",
    )
    inlines = [DeliveryInline]
    actions = [retry_notification_deliveries]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "user",
        "channel",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "short_error",
    )
    list_filter = ("status", "channel", "hold_reason", "is_digest", "created_at")
    search_fields = ("uid", "user__username", "notification__title", "last_error")
    list_select_related = ("user",)
    readonly_fields = DELIVERY_FIELDS
    fields = DELIVERY_FIELDS
    actions = [retry_deliveries]

    @admin.display(description="Last error")
    def short_error(self, delivery: Delivery) -> str:
        return (delivery.last_error or "")[:80]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("notification")


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(admin.ModelAdmin):
    list_display = ("user", "email", "webhook_url", "quiet_hours_enabled", "daily_summary_enabled")
    search_fields = ("user__username", "email")
    list_select_related = ("user",)
    fields = (
        "user",
        "email",
        "webhook_url",
        "webhook_format",
        "quiet_hours_enabled",
        "quiet_start",
        "quiet_end",
        "daily_summary_enabled",
        "daily_summary_time",
        "daily_summary_last_date",
    )
    readonly_fields = ("user", "daily_summary_last_date")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request):
        return False


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ("user", "type", "channel", "enabled")
    list_filter = ("channel", "enabled", "type")
    search_fields = ("user__username",)


@admin.register(PushSubscription)
class PushSubscriptionAdmin(admin.ModelAdmin):
    list_display = ("user", "user_agent", "created_at", "last_success_at")
    search_fields = ("user__username", "endpoint", "user_agent")
    readonly_fields = ("user", "endpoint", "p256dh", "auth", "created_at", "last_success_at")
