"""Real processes for integration tests: a Celery worker (``celery -A tradeplatform worker``)
and any ``manage.py`` command, on the same Redis and the same database as the caller (the test
database under pytest-django, so tests use ``transaction=True``).

Generalised from ``tests/notifications/worker.py``: the worker gets a queue of its own and the
caller's Celery app is pointed at it while it runs, so tasks queued after commit reach this
worker and nothing else (and nothing left in a shared queue by other tests reaches it).

    with celery_worker(env={"ALPACA_PAPER_URL": fake.url}) as worker:
        with manage_py("run_trade_stream", "--account", "7", env=worker.env):
            ...
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
        raise RuntimeError("Tests with real processes need PostgreSQL (set DATABASE_URL).")
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


def process_env(queue: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a platform process that shares this test's database and Redis."""
    if not settings.REDIS_URL:
        raise RuntimeError("Tests with real processes need Redis (set REDIS_URL).")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tradeplatform.settings",
        "TESTING": "true",
        "DATABASE_URL": database_url(),
        "CONN_MAX_AGE": "0",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_QUEUE": queue,
        "EMAIL_URL": "consolemail://",
        "LOG_LEVEL": "WARNING",
        **(extra or {}),
    }


@dataclass
class Worker:
    process: subprocess.Popen
    queue: str
    env: dict[str, str]
    log: object

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def _stop(process: subprocess.Popen, grace: float = 20) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # warm shutdown: finish running work
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextmanager
def celery_worker(
    *,
    concurrency: int = 2,
    pool: str = "prefork",
    env: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
) -> Iterator[Worker]:
    """Start a worker, wait until it answers a ping, yield it; stop it afterwards."""
    queue = f"test-{uuid.uuid4().hex[:10]}"
    hostname = f"{queue}@{socket.gethostname()}"
    worker_env = process_env(queue, env)
    command = [
        sys.executable, "-m", "celery", "-A", "tradeplatform", "worker",
        "-Q", f"{queue},{queue}.notifications", "-n", hostname, "-P", pool, "-c", str(concurrency),
        "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    previous_queue = celery_app.conf.task_default_queue
    previous_eager = celery_app.conf.task_always_eager
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the worker's output, closed below
    process = subprocess.Popen(
        command, cwd=BASE_DIR, env=worker_env, stdout=log, stderr=subprocess.STDOUT
    )
    worker = Worker(process, queue, worker_env, log)
    try:
        deadline = time.monotonic() + ready_timeout
        while not celery_app.control.ping(destination=[hostname], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start:\n{worker.output()}")
        celery_app.conf.task_default_queue = queue
        celery_app.conf.task_always_eager = False
        yield worker
    finally:
        celery_app.conf.task_default_queue = previous_queue
        celery_app.conf.task_always_eager = previous_eager
        _stop(process)
        with contextlib.suppress(Exception), celery_app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
        log.close()


@contextmanager
def manage_py(*args: str, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """Run ``manage.py <args>`` in the background (output kept for failures); SIGTERM after."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the command's output, closed below
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process.log = log  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        _stop(process)
        log.close()


def output_of(process: subprocess.Popen) -> str:
    log = process.log  # type: ignore[attr-defined]
    log.seek(0)
    return log.read().decode(errors="replace")
