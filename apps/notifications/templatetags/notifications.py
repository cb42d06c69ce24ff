"""The header's notification bell (badge + dropdown) and small formatting helpers."""

from __future__ import annotations

from django import template

from apps.notifications.selectors import unread_count

register = template.Library()

SEVERITY_TONES = {
    "info": "info",
    "success": "success",
    "warning": "warning",
    "error": "danger",
    "critical": "danger",
}
STATUS_TONES = {
    "pending": "pending",
    "scheduled": "pending",
    "sending": "info",
    "sent": "success",
    "failed_temporary": "warning",
    "failed_permanent": "danger",
    "skipped": "muted",
}


@register.inclusion_tag("notifications/partials/_bell.html", takes_context=True)
def notification_bell(context) -> dict:
    user = context.get("user")
    count = unread_count(user=user) if user is not None and user.is_authenticated else 0
    return {"unread_count": count}


@register.filter
def severity_tone(value: str) -> str:
    return SEVERITY_TONES.get(value or "", "muted")


@register.filter
def delivery_tone(value: str) -> str:
    return STATUS_TONES.get(value or "", "muted")


@register.filter
def badge_count(value) -> str:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return "0"
    return "99+" if number > 99 else str(number)
