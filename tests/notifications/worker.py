"""A real Celery worker in a subprocess (``celery -A tradeplatform worker``) for the tests and
the benchmark: same Redis, the same database as the caller (the test database under
pytest-django), its own queue, and the SMTP server the caller runs.

The caller's Celery app is pointed at the same queue while the worker runs, so tasks queued
after commit by ``notify()`` reach this worker and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from tradeplatform.celery import app as celery_app

BASE_DIR = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The URL of the database this process is connected to (the test database in tests)."""
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("The worker tests need PostgreSQL (set DATABASE_URL).")
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


@contextmanager
def celery_worker(
    *,
    smtp_port: int,
    concurrency: int = 3,
    pool: str = "prefork",
    env: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
):
    """Start a worker, wait until it answers a ping, yield its Popen; stop it afterwards."""
    if not settings.REDIS_URL:
        raise RuntimeError("The worker tests need Redis (set REDIS_URL).")
    queue = f"notif-test-{uuid.uuid4().hex[:10]}"
    hostname = f"{queue}@{socket.gethostname()}"
    worker_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tradeplatform.settings",
        "TESTING": "true",
        "DATABASE_URL": database_url(),
        "CONN_MAX_AGE": "0",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_QUEUE": queue,
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "EMAIL_TIMEOUT": "5",
        "DEFAULT_FROM_EMAIL": settings.DEFAULT_FROM_EMAIL,
        "SITE_URL": settings.SITE_URL,
        "NOTIFICATIONS_RETRY_BASE_SECONDS": "0.5",
        "NOTIFICATIONS_RETRY_MAX_SECONDS": "2",
        "NOTIFICATIONS_MAX_ATTEMPTS": "30",
        "NOTIFICATIONS_EMAIL_RATE": "100000/hour",
        "LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    command = [
        sys.executable, "-m", "celery", "-A", "tradeplatform", "worker",
        "-Q", f"{queue},{queue}.notifications", "-n", hostname, "-P", pool, "-c", str(concurrency),
        "-l", os.environ.get("TEST_WORKER_LOG_LEVEL", "WARNING"),
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    previous_queue = celery_app.conf.task_default_queue
    previous_eager = celery_app.conf.task_always_eager
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the worker's output; closed below
    process = subprocess.Popen(
        command, cwd=BASE_DIR, env=worker_env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + ready_timeout
        while not celery_app.control.ping(destination=[hostname], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(
                    f"the Celery worker did not start:\n{log.read().decode(errors='replace')}"
                )
        celery_app.conf.task_default_queue = queue
        celery_app.conf.task_always_eager = False
        try:
            yield process
        except BaseException:
            log.seek(0)
            output = log.read().decode(errors="replace")[-20000:]
            sys.stderr.write(f"--- Celery worker output ---\n{output}\n")
            raise
    finally:
        celery_app.conf.task_default_queue = previous_queue
        celery_app.conf.task_always_eager = previous_eager
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # warm shutdown: finish running tasks
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        with contextlib.suppress(Exception), celery_app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
        log.close()
