"""Thin Celery wrappers around the execution services; every one is safe to run twice."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task

from apps.execution import pipeline
from apps.execution.services import orders_expire_due


@shared_task
def process_closed_bar(instrument_id: int, timeframe: str, bar_ts: str, base: bool) -> dict:
    return pipeline.closed_bar_handle(
        instrument_id=instrument_id,
        timeframe=timeframe,
        bar_ts=datetime.fromisoformat(bar_ts),
        base=base,
    )


@shared_task
def execute_signal(signal_id: int) -> int:
    """Execute the signal, and with it the other new signals of its account (oldest first,
    one transaction per batch: ``apps.execution.batch``). A signal a batch took already
    is no longer new: its own task then costs one query. Returns how many were executed."""
    from apps.execution.batch import pending_signals, signals_execute_batch

    return len(signals_execute_batch(signal_ids=pending_signals(signal_id=signal_id)))


@shared_task
def expire_orders() -> int:
    return orders_expire_due()


@shared_task
def retry_submission(order_id: int, attempt: int = 1) -> str:
    from apps.execution.reconciliation import order_submission_retry

    return order_submission_retry(order_id=order_id, attempt=attempt)


@shared_task
def reconcile_account(account_id: int) -> dict:
    from apps.execution.reconciliation import account_reconcile

    return account_reconcile(account_id=account_id).summary()


@shared_task
def reconcile_accounts() -> int:
    """Beat: one reconciliation task per account (each safe to run twice or at once)."""
    from apps.execution.reconciliation import accounts_to_reconcile

    account_ids = accounts_to_reconcile()
    for account_id in account_ids:
        reconcile_account.delay(account_id)
    return len(account_ids)
