"""Benchmark: the pre-trade check through the service on PostgreSQL.

The account holds 100 positions across sectors with a stop on each, has one rule of every type
(correlation over 60 days of daily bars included), and each call checks one risk-adding buy:
the snapshots are read from the database (positions, open orders, recent submissions, recent
stop-outs, instruments, cached daily returns), then the pure engine decides.
Goal: median <= 10 ms.

Run: ``python -m tests.benchmarks.bench_risk_service`` (scratch database ``tp_bench_risk``).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd

POSITIONS = 100
SYMBOLS = 150
DAYS = 90
CALLS = 300
SECTORS = ("Tech", "Health", "Energy", "Finance", "Staples", "Industrials", "Utilities")
GOAL_MS = 10.0


def _world():
    from apps.accounts.models import TradingAccount, User
    from apps.execution.models import Position
    from apps.marketdata.models import Instrument
    from apps.marketdata.services import bars_import
    from apps.risk.services import RuleInput, risk_rule_create

    rng = np.random.default_rng(7)
    user = User.objects.create_user(f"bench-risk-{time.time_ns()}", password="x")
    account = TradingAccount.objects.create(
        owner=user,
        name="bench",
        cash=Decimal("6000000"),
        initial_cash=Decimal("10000000"),
        start_of_day_equity=Decimal("10050000"),
        high_water_mark=Decimal("10300000"),
    )
    days = pd.date_range(end=datetime.now(UTC).date(), periods=DAYS, freq="B", tz="UTC")
    factor = rng.normal(0, 0.01, DAYS)
    instruments = []
    for i in range(SYMBOLS):
        symbol = f"RB{i:03d}"
        price = float(np.round(rng.uniform(10, 500), 2))
        instrument, created = Instrument.objects.get_or_create(
            symbol=symbol, defaults={"sector": SECTORS[i % len(SECTORS)]}
        )
        Instrument.objects.filter(pk=instrument.pk).update(last_price=Decimal(str(price)))
        instrument.last_price = Decimal(str(price))
        if created:
            returns = rng.uniform(0.2, 1.0) * factor + rng.normal(0, 0.01, DAYS)
            close = price * np.exp(np.cumsum(returns) - np.sum(returns))
            frame = pd.DataFrame(
                {
                    "open": close,
                    "high": close * 1.01,
                    "low": close * 0.99,
                    "close": close,
                    "volume": 1e6,
                },
                index=days,
            )
            bars_import(instrument=instrument, timeframe="1d", bars=frame)
        instruments.append(instrument)
    Position.objects.bulk_create(
        [
            Position(
                account=account,
                instrument=instrument,
                quantity=Decimal(int(rng.integers(1, 200))),
                average_price=instrument.last_price * Decimal("0.98"),
                stop_loss_price=(instrument.last_price * Decimal("0.9")).quantize(Decimal("0.01")),
                opened_at=datetime.now(UTC) - timedelta(days=3),
            )
            for instrument in instruments[:POSITIONS]
        ]
    )
    rules = [
        ("max_position_size", {"mode": "pct_equity", "limit": 5}),
        ("daily_loss", {"mode": "pct", "limit": 3}),
        ("max_drawdown", {"limit_pct": 15}),
        ("correlation", {"threshold": 0.95, "lookback": 60}),
        ("leverage", {"max_leverage": 2}),
        ("position_limit", {"max_positions": 200}),
        ("sector_limit", {"limit_pct": 40}),
        ("stop_loss", {"mode": "atr", "value": 2}),
        ("take_profit", {"mode": "rr", "value": 2}),
        ("cooldown", {"minutes": 30}),
    ]
    for rule_type, params in rules:
        risk_rule_create(
            owner=user,
            account=account,
            data=RuleInput(rule_type=rule_type, params=params, warning_level="0.8"),
        )
    return account, instruments


def main() -> dict:
    from tests.benchmarks._django import setup_django

    setup_django("tp_bench_risk")
    from apps.execution.domain.intents import OrderIntent
    from apps.risk.services import pre_trade_check

    account, instruments = _world()
    targets = instruments[POSITIONS + 10 :] + instruments[:10]
    intents = [
        (i, OrderIntent(symbol=i.symbol, side="buy", quantity=Decimal("50"))) for i in targets
    ]
    decision = pre_trade_check(account=account, instrument=intents[0][0], intent=intents[0][1])
    assert len(decision.checks) >= 16, decision.as_dict()
    for n in range(30):  # warm caches (daily returns per symbol and day, imports)
        instrument, intent = intents[n % len(intents)]
        pre_trade_check(account=account, instrument=instrument, intent=intent)
    timings = []
    for n in range(CALLS):
        instrument, intent = intents[n % len(intents)]
        started = time.perf_counter()
        pre_trade_check(account=account, instrument=instrument, intent=intent)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    result = {
        "calls": CALLS,
        "positions": POSITIONS,
        "rules": 10,
        "checks": len(decision.checks),
        "median_ms": statistics.median(timings),
        "p99_ms": timings[int(CALLS * 0.99) - 1],
    }
    verdict = "ok" if result["median_ms"] <= GOAL_MS else "ABOVE GOAL"
    print(
        f"pre_trade_check on PostgreSQL, {POSITIONS} positions, 10 rules (every type), "
        f"{result['checks']} checks: median {result['median_ms']:.2f} ms, "
        f"p99 {result['p99_ms']:.2f} ms (goal: median <= {GOAL_MS:g} ms) {verdict}"
    )
    return result


if __name__ == "__main__":
    main()
