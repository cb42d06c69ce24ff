"""Thin Celery wrappers around the risk services; safe to run twice."""

from celery import shared_task

from apps.risk.services import risk_escalate_due, risk_monitor_all, risk_monitor_instrument


@shared_task
def monitor_all_accounts() -> int:
    return risk_monitor_all()


@shared_task
def monitor_instrument(instrument_id: int) -> int:
    return risk_monitor_instrument(instrument_id=instrument_id)


@shared_task
def escalate_due_events() -> int:
    return risk_escalate_due()
