"""The Celery application.

Workers start with ``celery -A tradeplatform worker``. Without a broker (no ``REDIS_URL``) the
settings switch Celery to eager mode, so tasks run in-process and the embedded default needs no
extra service.
"""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeplatform.settings")

app = Celery("tradeplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_old_connections(sender=None, **kwargs) -> None:
    """Around each task in a worker, what Django does around each request: drop a database
    connection that is broken, left mid-transaction or past CONN_MAX_AGE, keep the others
    (``CELERY_DB_REUSE_MAX`` stops Celery closing them all). Not for a task run in-process
    (eager): that one is inside its caller's connection and transaction."""
    request = getattr(sender, "request", None)
    if request is None or getattr(request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


def route_task(name, args, kwargs, options, task=None, **extra):
    """Notification deliveries (SMTP, push, webhooks: slow and retried) go to their own queue,
    ``<default queue>.notifications``, so trading tasks never wait behind them. Workers consume
    both queues unless a deployment gives notifications workers of their own."""
    if name.startswith("apps.notifications.tasks."):
        return {"queue": f"{app.conf.task_default_queue}.notifications"}
    return None


def worker_queues(default: str | None = None) -> str:
    """The ``-Q`` argument of a worker that does everything."""
    default = default or app.conf.task_default_queue
    return f"{default},{default}.notifications"
