"""Celery tasks: thin wrappers around the services, ids in, safe to run twice."""

from __future__ import annotations

from datetime import date

from celery import shared_task

from apps.notifications import services


@shared_task(ignore_result=True)
def deliver(delivery_id: int) -> str:
    """Send one outbox row if it is due (a second run finds it claimed or sent: no-op)."""
    return services.delivery_attempt(delivery_id=delivery_id)


@shared_task(ignore_result=True)
def deliver_many(delivery_ids: list[int]) -> dict[str, int]:
    """Several outbox rows in one task (a notification's channels, a chunk of due rows)."""
    return services.deliveries_attempt(delivery_ids=delivery_ids)


@shared_task(ignore_result=True)
def dispatch_due_deliveries() -> int:
    """Beat: retries that are due, ends of quiet hours, digests, and stuck 'sending' rows."""
    return services.deliveries_dispatch_due()


@shared_task(ignore_result=True)
def send_due_daily_summaries() -> int:
    """Beat, every few minutes: queue a summary for each trader whose time has come today."""
    due = services.daily_summaries_due()
    for user_id, day in due:
        send_daily_summary.delay(user_id, day.isoformat())
    return len(due)


@shared_task(ignore_result=True)
def send_daily_summary(user_id: int, day: str) -> int | None:
    notification = services.daily_summary_send(user_id=user_id, day=date.fromisoformat(day))
    return notification.pk if notification else None
