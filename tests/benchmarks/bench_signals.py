"""Benchmark: from a strategy signal to a paper fill.

1. Latency: median and p99 time from a stored signal to its fill recorded (sizing, the
   pre-trade check with the demo's nine rules, the order, the paper fill, position, cash and
   journal), in-process on PostgreSQL. Goal: median <= 25 ms.
2. Throughput: signals queued to ONE real Celery worker (subprocess, concurrency 1) on Redis,
   until every one is processed; signals per second, and none lost or duplicated (exactly one
   order per signal). Goal: >= 100 signals/s.

Run: ``python -m tests.benchmarks.bench_signals`` (DATABASE_URL to a PostgreSQL server, Redis on
127.0.0.1:6379; uses the scratch database ``tp_bench_signals`` and Redis database 10).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LATENCY_SIGNALS = 300
THROUGHPUT_SIGNALS = 2000
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


def _signals(strategy, instrument, count: int, start: datetime):
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
        for i in range(count)
    ]
    return Signal.objects.bulk_create(rows)


def latency() -> dict:
    from apps.execution.models import Fill
    from apps.execution.pipeline import signal_execute

    _, instrument, strategy = _world("bench-latency")
    signals = _signals(strategy, instrument, LATENCY_SIGNALS, datetime(2026, 2, 1, tzinfo=UTC))
    timings = []
    for signal in signals:
        started = time.perf_counter()
        signal_execute(signal_id=signal.pk)
        timings.append((time.perf_counter() - started) * 1000)
    fills = Fill.objects.filter(order__signal__in=signals).count()
    timings.sort()
    return {
        "signals": len(signals),
        "fills": fills,
        "median_ms": statistics.median(timings),
        "p99_ms": timings[int(len(timings) * 0.99) - 1],
    }


def throughput(database_url: str) -> dict:
    from apps.execution.models import Order, Signal
    from apps.execution.tasks import execute_signal

    _, instrument, strategy = _world("bench-throughput")
    signals = _signals(strategy, instrument, THROUGHPUT_SIGNALS, datetime(2026, 3, 1, tzinfo=UTC))
    queue = f"bench-{os.getpid()}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "CELERY_QUEUE": queue,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "TESTING": "true",
        "RISK_MAX_ORDERS_PER_MINUTE": "100000000",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tradeplatform",
            "worker",
            "-Q",
            queue,
            "--concurrency",
            "1",
            "--pool",
            "solo",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Notification deliveries have a queue (and here a worker) of their own.
    notifier = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tradeplatform",
            "worker",
            "-Q",
            f"{queue}.notifications",
            "--concurrency",
            "1",
            "--pool",
            "solo",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)  # the worker connects and imports Django
        from celery import current_app

        current_app.conf.task_always_eager = False
        current_app.conf.broker_url = REDIS_URL
        current_app.conf.task_default_queue = queue
        started = time.perf_counter()
        for signal in signals:
            execute_signal.apply_async((signal.pk,), queue=queue)
        queued = time.perf_counter() - started
        ids = [s.pk for s in signals]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if not Signal.objects.filter(pk__in=ids, status="new").exists():
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        for process in (worker, notifier):
            process.terminate()
            process.wait(timeout=30)
    processed = Signal.objects.filter(pk__in=ids).exclude(status="new").count()
    orders = Order.objects.filter(signal__in=ids).count()
    duplicated = Order.objects.filter(strategy=strategy).count() - orders
    return {
        "signals": len(ids),
        "processed": processed,
        "orders": orders,
        "statuses": _status_counts(ids),
        "duplicated_orders": duplicated,
        "seconds": elapsed,
        "queued_in_s": queued,
        "signals_per_s": processed / elapsed if elapsed else 0.0,
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
    print(
        f"signal -> paper fill (in-process, 9 risk rules): {lat['signals']} signals, "
        f"{lat['fills']} fills; median {lat['median_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms "
        f"(goal: median <= 25 ms) {'ok' if lat['median_ms'] <= 25 else 'BELOW GOAL'}"
    )
    thr = throughput(url)
    print(
        f"one Celery worker: {thr['processed']}/{thr['signals']} signals processed in "
        f"{thr['seconds']:.2f}s = {thr['signals_per_s']:.0f} signals/s; orders {thr['orders']}, "
        f"duplicates {thr['duplicated_orders']}, statuses {thr['statuses']} "
        f"(goal >= 100/s) {'ok' if thr['signals_per_s'] >= 100 else 'BELOW GOAL'}"
    )
    return {"latency": lat, "throughput": thr}


if __name__ == "__main__":
    main()
