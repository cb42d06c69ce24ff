"""Workers keep their database connection across tasks (tradeplatform.celery): Celery's Django
fix-up no longer closes it around every task; a connection past CONN_MAX_AGE or broken is
still dropped, as around a web request."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.db import connection

from tradeplatform.celery import _close_old_connections, app

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def task(eager: bool = False):
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_the_fixup_keeps_the_connection_around_tasks():
    fixup = DjangoWorkerFixup(app)
    assert fixup.db_reuse_max and fixup.db_reuse_max >= 100
    pid = backend_pid()
    for _ in range(10):  # prerun and postrun of five tasks
        fixup.close_database()
        _close_old_connections(sender=task())
    assert backend_pid() == pid


def test_a_connection_past_its_age_is_replaced_before_the_next_task():
    pid = backend_pid()
    connection.close_at = time.monotonic() - 1  # CONN_MAX_AGE reached
    _close_old_connections(sender=task())
    assert connection.connection is None
    assert backend_pid() != pid


def test_a_task_run_in_process_leaves_its_callers_connection_alone():
    pid = backend_pid()
    connection.close_at = time.monotonic() - 1
    _close_old_connections(sender=task(eager=True))
    assert connection.connection is not None and backend_pid() == pid
