"""Benchmark: from a strategy signal to a paper fill.

1. Latency: median and p99 time from a stored signal to its fill recorded (sizing, the
   pre-trade check with the demo's rules but the cool-down, the order, the paper fill,
   position, cash and journal), in-process on PostgreSQL, for a lone signal as the bar task
   and the signal task run it (a batch of one) and through the single path. Goal: median
   <= 25 ms.
2. Throughput: a backlog of signal tasks to ONE real Celery worker (subprocess, concurrency
   1, a notification worker beside it) on Redis, until every signal is processed and every
   task consumed; signals per second, and none lost or duplicated (exactly one order per
   signal). Goal: >= 100 signals/s.
3. Sustained: signals arriving one by one at 120/s for 15 s (each stored, then its task
   queued) while the worker runs; the backlog it leaves and how soon after the last arrival
   the last is done.

Run: ``python -m tests.benchmarks.bench_signals`` (DATABASE_URL to a PostgreSQL server, Redis on
127.0.0.1:6379; uses the scratch database ``tp_bench_signals`` and Redis database 10).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LATENCY_SIGNALS = 300
THROUGHPUT_SIGNALS = 2000
PACED_RATE = 120.0  # signals arriving per second, above the goal of 100
PACED_SECONDS = 15.0
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")


def _world(name: str):
    from apps.accounts.models import User
    from apps.accounts.services import trading_account_create
    from apps.core.demo import RISK_RULES
    from apps.marketdata.models import Bar, Instrument
    from apps.risk.services import RuleInput, risk_rule_create
    from apps.strategies.services import strategy_create

    # A fresh trader per run: trading records are protected from deletion, so runs pile up in
    # the scratch database instead of being cleaned.
    user = User.objects.create_user(f"{name}-{time.time_ns()}", password="x")
    account = trading_account_create(owner=user, name="bench", cash=Decimal("10000000"))
    instrument, _ = Instrument.objects.get_or_create(symbol="BNCH", defaults={"sector": "Bench"})
    Instrument.objects.filter(pk=instrument.pk).update(
        last_price=Decimal("100.00"), last_price_at=datetime.now(UTC)
    )
    Bar.objects.get_or_create(
        instrument=instrument,
        timeframe="1m",
        ts=datetime(2026, 1, 1, tzinfo=UTC),
        defaults={"open": 100, "high": 100, "low": 100, "close": 100, "volume": 1e9},
    )
    for rule_type, params, extra in RISK_RULES:
        if rule_type == "cooldown":
            continue
        risk_rule_create(
            owner=user, account=account, data=RuleInput(rule_type=rule_type, params=params, **extra)
        )
    strategy = strategy_create(
        owner=user,
        account=account,
        name="bench",
        kind="sma_crossover",
        params={},
        symbols=["BNCH"],
        timeframe="1m",
        mode="paper",
        sizing_method="fixed_quantity",
        sizing_params={"quantity": 10},
    )
    return account, instrument, strategy


def _signals(strategy, instrument, count: int, start: datetime, first: int = 0):
    """``count`` signals from the ``first``-th on: entries and exits by turns."""
    from apps.execution.models import Signal

    rows = [
        Signal(
            strategy=strategy,
            account=strategy.account,
            instrument=instrument,
            timeframe="1m",
            bar_ts=start + timedelta(minutes=i),
            side="buy" if i % 2 == 0 else "sell",
            target=1 if i % 2 == 0 else 0,
            strength=0.5,
            reason="benchmark",
            price=Decimal("100"),
        )
        for i in range(first, first + count)
    ]
    return Signal.objects.bulk_create(rows)


def latency() -> dict:
    """Each signal timed alone, by the two ways one can go: the single path
    (``signal_execute``) and a batch of one (``signals_execute_batch``: what a bar's or a
    task's lone signal takes), interleaved by pairs (an entry and its exit) so that both see
    the same machine."""
    from apps.execution.batch import signals_execute_batch
    from apps.execution.models import Fill
    from apps.execution.pipeline import signal_execute

    _, instrument, strategy = _world("bench-latency")
    signals = _signals(strategy, instrument, 2 * LATENCY_SIGNALS, datetime(2026, 2, 1, tzinfo=UTC))
    ways = {
        "single": lambda pk: signal_execute(signal_id=pk),
        "batch_of_one": lambda pk: signals_execute_batch(signal_ids=[pk]),
    }
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for index, signal in enumerate(signals):
        name = ("single", "batch_of_one")[(index // 2) % 2]
        started = time.perf_counter()
        ways[name](signal.pk)
        timings[name].append((time.perf_counter() - started) * 1000)
    fills = Fill.objects.filter(order__signal__in=signals).count()
    out = {"signals": len(signals), "fills": fills}
    for name, values in timings.items():
        values.sort()
        out[name] = {
            "median_ms": statistics.median(values),
            "p99_ms": values[int(len(values) * 0.99) - 1],
        }
    return out


def _celery_on(queue: str, database_url: str) -> dict:
    """Send this process's tasks to ``queue`` on Redis; the environment of its workers."""
    from celery import current_app

    current_app.conf.task_always_eager = False
    current_app.conf.broker_url = REDIS_URL
    current_app.conf.task_default_queue = queue
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "CELERY_QUEUE": queue,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "TESTING": "true",
        "RISK_MAX_ORDERS_PER_MINUTE": "100000000",
    }


def _worker(queue: str, env: dict, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tradeplatform", "worker", "-Q", queue,
         "--concurrency", "1", "--pool", "solo", "--without-mingle", "--without-gossip",
         "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip


def throughput(database_url: str) -> dict:
    """A backlog of one task per signal, queued before the worker starts (the producer's cost
    is not the worker's); timed from the worker's first processed signal until every signal
    is processed and every task consumed (the tasks whose signal a batch took cost their
    share too)."""
    import redis

    from apps.execution.models import Order, Signal
    from apps.execution.tasks import execute_signal

    _, instrument, strategy = _world("bench-throughput")
    signals = _signals(strategy, instrument, THROUGHPUT_SIGNALS, datetime(2026, 3, 1, tzinfo=UTC))
    ids = [s.pk for s in signals]
    queue = f"bench-{os.getpid()}"
    env = _celery_on(queue, database_url)
    broker = redis.Redis.from_url(REDIS_URL)
    started = time.perf_counter()
    for signal_id in ids:
        execute_signal.apply_async((signal_id,), queue=queue)
    queued = time.perf_counter() - started
    with tempfile.TemporaryFile("w+") as log:
        worker = _worker(queue, env, log)
        # Notification deliveries have a queue (and here a worker) of their own.
        notifier = _worker(f"{queue}.notifications", env, subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 600
            first = None
            waiting = Signal.objects.filter(strategy=strategy, status="new")  # cheap to ask
            while time.monotonic() < deadline:
                done = len(ids) - waiting.count()
                if first is None and done:
                    first, done_at_first = time.perf_counter(), done
                if done == len(ids) and broker.llen(queue) == 0:
                    break
                time.sleep(0.05)
            finished = time.perf_counter()
        finally:
            for process in (worker, notifier):
                process.terminate()
                process.wait(timeout=30)
        log.seek(0)
        errors = log.read()[-2000:]
        broker.delete(queue)
    processed = Signal.objects.filter(pk__in=ids).exclude(status="new").count()
    orders = Order.objects.filter(signal__in=ids).count()
    duplicated = Order.objects.filter(strategy=strategy).count() - orders
    elapsed = finished - first if first is not None else float("inf")
    counted = processed - done_at_first if first is not None else 0
    return {
        "signals": len(ids),
        "processed": processed,
        "orders": orders,
        "statuses": _status_counts(ids),
        "duplicated_orders": duplicated,
        "queued_in_s": queued,
        "seconds": elapsed,
        "signals_per_s": counted / elapsed if elapsed else 0.0,
        "worker_errors": errors if processed != len(ids) else "",
    }


def paced(database_url: str, rate: float = PACED_RATE, seconds: float = PACED_SECONDS) -> dict:
    """Signals arriving at ``rate`` per second for ``seconds`` (each stored, then its task
    queued, as a strategy process would), with the worker running: does it keep up? The
    backlog (signals stored and not yet processed) is sampled all along; a worker that keeps
    up holds it bounded, and the last signal is done soon after the last arrives."""
    import redis

    from apps.execution.models import Order, Signal
    from apps.execution.tasks import execute_signal

    _, instrument, strategy = _world("bench-paced")
    queue = f"bench-paced-{os.getpid()}"
    env = _celery_on(queue, database_url)
    broker = redis.Redis.from_url(REDIS_URL)
    # BENCH_WORKER_LOG=<file> keeps what the worker printed (its errors).
    log = open(os.environ.get("BENCH_WORKER_LOG", os.devnull), "w")  # noqa: SIM115
    worker = _worker(queue, env, log)
    notifier = _worker(f"{queue}.notifications", env, subprocess.DEVNULL)
    backlog: list[int] = []
    ids: list[int] = []
    try:
        time.sleep(4)  # the workers start
        waiting = Signal.objects.filter(strategy=strategy, status="new")
        count = int(rate * seconds)
        start_ts = datetime(2026, 4, 1, tzinfo=UTC)
        started = time.perf_counter()
        for i in range(count):
            due = started + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            (signal,) = _signals(strategy, instrument, 1, start_ts, first=i)
            execute_signal.apply_async((signal.pk,), queue=queue)
            ids.append(signal.pk)
            if i % int(rate / 4 or 1) == 0:
                backlog.append(waiting.count())
        arrived = time.perf_counter()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and waiting.exists():  # the signals, not the tasks
            time.sleep(0.02)
        finished = time.perf_counter()
    finally:
        for process in (worker, notifier):
            process.terminate()
            process.wait(timeout=30)
        broker.delete(queue)
        log.close()
    processed = Signal.objects.filter(pk__in=ids).exclude(status="new").count()
    orders = Order.objects.filter(signal__in=ids).count()
    return {
        "offered_per_s": len(ids) / (arrived - started),
        "signals": len(ids),
        "processed": processed,
        "orders": orders,
        "duplicated_orders": Order.objects.filter(strategy=strategy).count() - orders,
        "max_backlog": max(backlog, default=0),
        "median_backlog": statistics.median(backlog) if backlog else 0,
        "done_after_last_s": finished - arrived,
    }


def _status_counts(ids) -> dict:
    from django.db.models import Count

    from apps.execution.models import Signal

    return {
        row["status"]: row["n"]
        for row in Signal.objects.filter(pk__in=ids).values("status").annotate(n=Count("id"))
    }


def main() -> dict:
    os.environ.setdefault("REDIS_URL", REDIS_URL)
    os.environ["RISK_MAX_ORDERS_PER_MINUTE"] = "100000000"
    from tests.benchmarks._django import setup_django

    url = setup_django("tp_bench_signals")
    lat = latency()
    for name, label in (
        ("batch_of_one", "a lone signal (batch of one)"),
        ("single", "single path"),
    ):
        figures = lat[name]
        print(
            f"signal -> paper fill, {label}, in-process, 8 risk rules: median "
            f"{figures['median_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms "
            f"(goal: median <= 25 ms) {'ok' if figures['median_ms'] <= 25 else 'BELOW GOAL'}"
        )
    print(f"  {lat['signals']} signals, {lat['fills']} fills")
    thr = throughput(url)
    print(
        f"one Celery worker, a backlog of {thr['signals']} signal tasks (queued in "
        f"{thr['queued_in_s']:.1f}s): {thr['processed']} processed, "
        f"{thr['signals_per_s']:.0f} signals/s over {thr['seconds']:.2f}s; orders {thr['orders']}, "
        f"duplicates {thr['duplicated_orders']}, statuses {thr['statuses']} "
        f"(goal >= 100/s) {'ok' if thr['signals_per_s'] >= 100 else 'BELOW GOAL'}"
        f"{chr(10) + thr['worker_errors'] if thr['worker_errors'] else ''}"
    )
    pace = paced(url)
    # Kept up: every signal done, never more than a second's worth waiting, the last done
    # within a second of its arrival.
    kept_up = (
        pace["processed"] == pace["signals"]
        and pace["max_backlog"] < pace["offered_per_s"]
        and pace["done_after_last_s"] < 1
    )
    print(
        f"one Celery worker, signals arriving at {pace['offered_per_s']:.0f}/s for "
        f"{PACED_SECONDS:.0f}s: {pace['processed']}/{pace['signals']} processed, orders "
        f"{pace['orders']}, duplicates {pace['duplicated_orders']}; backlog median "
        f"{pace['median_backlog']:.0f}, max {pace['max_backlog']}; the last done "
        f"{pace['done_after_last_s']:.2f}s after it arrived "
        f"{'(kept up)' if kept_up else '(FELL BEHIND)'}"
    )
    return {"latency": lat, "throughput": thr, "paced": pace}


if __name__ == "__main__":
    main()
