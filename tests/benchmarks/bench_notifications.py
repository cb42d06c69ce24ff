"""Notifications end to end: 1,000 notifications fanned out to in-app + e-mail through a real
Celery worker (subprocess, Redis broker) and a real SMTP server (aiosmtpd on loopback).

Measures the time from the first ``notify()`` until every delivery is marked sent and every
e-mail has arrived, deliveries per second (goal: at least 100/s), and checks that none was lost
or duplicated by counting the messages at the SMTP server by Message-ID.

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


def main() -> dict:
    _environment()
    from tests.benchmarks._django import setup_django

    setup_django("tp_bench_notifications")

    from django.db import connections, transaction

    from apps.accounts.models import User
    from apps.notifications.emails import message_id
    from apps.notifications.models import Channel, Delivery, DeliveryStatus, Notification
    from apps.notifications.services import notify
    from tests.fakes.smtp_server import FakeSMTP
    from tests.notifications.worker import celery_worker

    users = []
    for i in range(USERS):
        user, _ = User.objects.get_or_create(
            username=f"bench-notify-{i}", defaults={"email": f"bench{i}@example.com"}
        )
        users.append(user)
    Notification.objects.filter(user__in=users).delete()

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
        deadline = started + TIMEOUT_SECONDS
        sent = 0
        while time.perf_counter() < deadline:
            sent = deliveries.filter(status=DeliveryStatus.SENT).count()
            if sent >= expected and smtp.count >= NOTIFICATIONS:
                break
            time.sleep(0.05)
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
