"""Notifications end to end: 1,000 notifications fanned out to in-app + e-mail through a real
Celery worker (subprocess, Redis broker) and a real SMTP server (aiosmtpd on loopback), then
1,000 in-app-only notifications written two per transaction (a fill tells of the order and of
the position, as the signal pipeline does).

Measures the time from the first ``notify()`` until every delivery is marked sent and every
e-mail has arrived, deliveries per second (goal: at least 100/s), checks that none was lost
or duplicated by counting the messages at the SMTP server by Message-ID, and reports the CPU
the work took: ``notify()`` and ``notify_many()`` in-process (their transactions rolled back,
so nothing is queued), and the worker's per delivery, mixed and in-app only.

    .venv/bin/python -m tests.benchmarks.bench_notifications

Runs on a scratch PostgreSQL database (``tp_bench_notifications``) and Redis database 7 unless
``BENCH_REDIS_URL`` / ``REDIS_URL`` say otherwise.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

NOTIFICATIONS = 1_000
USERS = 50
BATCH = 50  # notifications per caller transaction
IN_APP_NOTIFICATIONS = 1_000
IN_APP_PER_TRANSACTION = 2  # an order filled and a position opened, as a signal's fill writes
NOTIFY_CALLS = 2_000  # in-process, for the CPU of notify() and notify_many() alone
CALLERS = int(os.environ.get("BENCH_CALLERS", "4"))  # threads calling notify() concurrently
WORKER_POOL = os.environ.get("BENCH_WORKER_POOL", "prefork")
WORKER_CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "4"))
TIMEOUT_SECONDS = 300


def _tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _environment() -> None:
    os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL") or os.environ.get(
        "REDIS_URL", "redis://127.0.0.1:6379/7"
    )
    os.environ.setdefault("NOTIFICATIONS_EMAIL_RATE", "100000/hour")
    os.environ.setdefault("LOG_LEVEL", "WARNING")


def _users(prefix: str, *, email: bool):
    from apps.accounts.models import User
    from apps.notifications.models import Notification
    from apps.notifications.services import notification_preference_set

    users = []
    for i in range(USERS):
        user, _ = User.objects.get_or_create(
            username=f"{prefix}-{i}", defaults={"email": f"{prefix}{i}@example.com"}
        )
        for kind in ("order_filled", "position_opened"):
            notification_preference_set(user=user, type=kind, channel="email", enabled=email)
        users.append(user)
    Notification.objects.filter(user__in=users).delete()
    return users


def _fill_notices(i: int, user_id: int) -> list[dict]:
    """What a signal's fill tells (as the execution app calls it: a bare user, dedupe keys)."""
    return [
        {
            "user": user_id,
            "type": "order_filled",
            "title": f"Bought {i % 97 + 1} AAPL @ 101.50",
            "body": f"Order #{i} filled.",
            "data": {"order_id": i, "symbol": "AAPL"},
            "link": f"/trading/orders/{i}/",
            "dedupe_key": f"order:{i}:filled",
        },
        {
            "user": user_id,
            "type": "position_opened",
            "title": "Opened long AAPL",
            "body": f"{i % 97 + 1} @ 101.50",
            "link": "/trading/journal/",
            "dedupe_key": f"trade-open-{i}",
        },
    ]


def _notify_cpu(users) -> dict:
    """CPU of notify() and of notify_many() alone, in-process: transactions of BATCH
    notifications, rolled back (nothing is queued or kept)."""
    from django.db import transaction

    from apps.accounts.models import User
    from apps.notifications.services import Notice, notify, notify_many

    def batches():
        for first in range(0, NOTIFY_CALLS, BATCH):
            yield [
                {**kwargs, "user": User(pk=kwargs["user"])}
                for i in range(first, first + BATCH, 2)
                for kwargs in _fill_notices(i, users[i % USERS].pk)
            ]

    def one_by_one(batch: list[dict]) -> None:
        for kwargs in batch:
            notify(**kwargs)

    def together(batch: list[dict]) -> None:
        notify_many([Notice(**kwargs) for kwargs in batch])

    def cpu_ms(write) -> float:
        best = float("inf")
        for _ in range(3):  # the least disturbed of three runs
            started = time.process_time()
            for batch in batches():
                with transaction.atomic():
                    write(batch)
                    transaction.set_rollback(True)
            best = min(best, time.process_time() - started)
        return round(best / NOTIFY_CALLS * 1000, 3)

    return {
        "notify_cpu_ms_per_call": cpu_ms(one_by_one),
        "notify_many_cpu_ms_per_notification": cpu_ms(together),
    }


def _wait_sent(deliveries, expected: int, started: float, smtp=None, emails: int = 0) -> int:
    from apps.notifications.models import DeliveryStatus

    deadline = started + TIMEOUT_SECONDS
    sent = 0
    while time.perf_counter() < deadline:
        sent = deliveries.filter(status=DeliveryStatus.SENT).count()
        if sent >= expected and (smtp is None or smtp.count >= emails):
            break
        time.sleep(0.05)
    return sent


def _in_app_phase(users, worker) -> dict:
    """In-app only, two notifications per transaction: the worker's CPU per delivery."""
    from django.db import transaction

    from apps.notifications.models import Delivery
    from apps.notifications.services import notify

    cpu = _tree_cpu_seconds(worker.pid)
    started = time.perf_counter()
    for i in range(0, IN_APP_NOTIFICATIONS, IN_APP_PER_TRANSACTION):
        with transaction.atomic():
            for kwargs in _fill_notices(i, users[i % USERS].pk)[:IN_APP_PER_TRANSACTION]:
                notify(**kwargs)
    sent = _wait_sent(Delivery.objects.filter(user__in=users), IN_APP_NOTIFICATIONS, started)
    elapsed = time.perf_counter() - started
    cpu = _tree_cpu_seconds(worker.pid) - cpu
    return {
        "in_app_deliveries_sent": sent,
        "in_app_deliveries_per_second": round(sent / elapsed, 1),
        "worker_cpu_ms_per_in_app_delivery": round(cpu / max(sent, 1) * 1000, 2),
    }


def main() -> dict:
    _environment()
    from tests.benchmarks._django import setup_django

    setup_django("tp_bench_notifications")

    from django.db import connections, transaction

    from apps.notifications.emails import message_id
    from apps.notifications.models import Channel, Delivery, DeliveryStatus
    from apps.notifications.services import notify
    from tests.fakes.smtp_server import FakeSMTP
    from tests.notifications.worker import celery_worker

    users = _users("bench-notify", email=True)
    in_app_users = _users("bench-in-app", email=False)

    with (
        FakeSMTP() as smtp,
        celery_worker(
            smtp_port=smtp.port,
            pool=WORKER_POOL,
            concurrency=WORKER_CONCURRENCY,
            env={"CONN_MAX_AGE": "60"},  # a worker keeps its database connections
        ) as worker,
    ):
        worker_cpu = _tree_cpu_seconds(worker.pid)
        own_cpu = time.process_time()

        # The callers (as the platform's processes would): notify() in their transactions;
        # the tasks leave when each transaction commits.
        def caller(numbers: range) -> None:
            try:
                for first in range(numbers.start, numbers.stop, BATCH):
                    with transaction.atomic():
                        for i in range(first, min(first + BATCH, numbers.stop)):
                            notify(
                                user=users[i % USERS],
                                type="order_filled",
                                title=f"Bought {i % 97 + 1} AAPL @ 101.50",
                                body=f"Order #{i} filled.",
                                data={"order_id": i, "symbol": "AAPL"},
                                link=f"/trading/orders/{i}/",
                            )
            finally:
                connections.close_all()

        share = NOTIFICATIONS // CALLERS
        threads = [
            threading.Thread(target=caller, args=(range(n * share, (n + 1) * share),))
            for n in range(CALLERS)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        committed = time.perf_counter()
        expected = NOTIFICATIONS * 2
        deliveries = Delivery.objects.filter(user__in=users)
        sent = _wait_sent(deliveries, expected, started, smtp, NOTIFICATIONS)
        finished = time.perf_counter()
        worker_cpu = _tree_cpu_seconds(worker.pid) - worker_cpu
        own_cpu = time.process_time() - own_cpu
        load = os.getloadavg()[0]
        time.sleep(1.0)  # a duplicate, if any, would arrive now
        counts = smtp.message_id_counts()
        expected_ids = {
            message_id(str(uid))
            for uid in deliveries.filter(channel=Channel.EMAIL).values_list("uid", flat=True)
        }
        in_app = _in_app_phase(in_app_users, worker)
    # Last: the rolled-back rows leave dead tuples behind for the vacuum.
    notify_cpu = _notify_cpu(in_app_users)

    elapsed = finished - started
    figures = {
        "notifications": NOTIFICATIONS,
        "deliveries": expected,
        "deliveries_sent": sent,
        "worker": f"{WORKER_POOL} x{WORKER_CONCURRENCY}",
        "callers": CALLERS,
        "notify_seconds": round(committed - started, 3),
        "notify_per_second": round(NOTIFICATIONS / (committed - started), 1),
        "seconds_to_all_delivered": round(elapsed, 3),
        "deliveries_per_second": round(sent / elapsed, 1),
        "seconds_after_last_commit": round(finished - committed, 3),
        "emails_received": sum(counts.values()),
        "unique_message_ids": len(counts),
        "lost": len(expected_ids - set(counts)),
        "duplicated": sum(n - 1 for n in counts.values() if n > 1),
        "unexpected": len(set(counts) - expected_ids),
        "failed_deliveries": deliveries.exclude(status=DeliveryStatus.SENT).count(),
        # Independent of what else runs on the machine: CPU the work itself took.
        "worker_cpu_ms_per_delivery": round(worker_cpu / max(sent, 1) * 1000, 2),
        "callers_and_smtp_cpu_ms_per_notification": round(own_cpu / NOTIFICATIONS * 1000, 2),
        **in_app,
        **notify_cpu,
        "machine_load_average": round(load, 2),
        "cpus": os.cpu_count(),
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    goal = figures["deliveries_per_second"] >= 100
    clean = figures["lost"] == figures["duplicated"] == figures["unexpected"] == 0
    print(f"goal >= 100 deliveries/s: {'met' if goal else 'MISSED'}; none lost or duplicated: "
          f"{'yes' if clean else 'NO'}")  # fmt: skip
    return figures


if __name__ == "__main__":
    main()
