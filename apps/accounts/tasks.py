from celery import shared_task

from apps.accounts.services import equity_snapshots_take_all


@shared_task
def snapshot_all_accounts() -> int:
    return equity_snapshots_take_all()
