"""Signals in batches (apps.execution.batch): the same results as one signal at a time, in
fewer statements; what the fast path does not cover goes the single way, in order; a failure
rolls the batch back and loses nothing.

Each test builds two identical worlds (trader, paper account, rules, strategies) on the same
instruments, sends the same signals through the single path in one and through the batch in
the other, and compares every row the signals caused, field by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.demo import RISK_RULES
from apps.execution import batch
from apps.execution.batch import pending_signals, signals_execute_batch
from apps.execution.models import Fill, Order, OrderEvent, Position, Signal, Trade
from apps.execution.pipeline import signal_execute
from apps.execution.tasks import execute_signal
from apps.notifications.models import Delivery, Notification
from apps.risk.services import RuleInput, risk_rule_create
from tests.factories import (
    BarFactory,
    InstrumentFactory,
    StrategyFactory,
    TradingAccountFactory,
    UserFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def market(db):
    """Three instruments with prices and a last bar (its volume caps a paper fill)."""
    out = {}
    for symbol, sector, price in (("AAA", "Tech", "101.37"), ("BBB", "Energy", "48.05")):
        instrument = InstrumentFactory(symbol=symbol, sector=sector, last_price=D(price))
        BarFactory(instrument=instrument, ts=T0, close=float(price), volume=1e7)
        out[symbol] = instrument
    thin = InstrumentFactory(symbol="THIN", sector="Tech", last_price=D("20.00"))
    BarFactory(instrument=thin, ts=T0, close=20.0, volume=3)  # 3 shares is all it can fill
    out["THIN"] = thin
    return out


def world(name: str, market, *, rules=RISK_RULES, limit_entries: bool = False):
    """A trader with a paper account, the demo's risk rules and two strategies."""
    user = UserFactory(username=name, email=f"{name}@example.com")
    account = TradingAccountFactory(
        owner=user,
        name="Twin",
        cash=D("250000"),
        initial_cash=D("250000"),
        slippage_bps=D("3"),
        commission_rate=D("0.0005"),
        commission_minimum=D("1"),
    )
    for rule_type, params, extra in rules:
        risk_rule_create(
            owner=user, account=account, data=RuleInput(rule_type=rule_type, params=params, **extra)
        )
    common = {"owner": user, "account": account, "timeframe": "1m", "mode": "paper"}
    trend = StrategyFactory(
        **common,
        name="trend",
        instruments=[market["AAA"], market["BBB"], market["THIN"]],
        sizing_method="pct_equity",
        sizing_params={"pct": 4},
        params={"fast": 2, "slow": 3, "allow_short": True},
    )
    fixed = StrategyFactory(
        **common,
        name="fixed",
        instruments=[market["BBB"]],
        sizing_method="fixed_quantity",
        sizing_params={"quantity": 25},
        entry_order_type="limit" if limit_entries else "market",
    )
    return account, {"trend": trend, "fixed": fixed}


# (strategy, symbol, target): entries, exits, reversals, a flat signal with nothing to close,
# a repeat of a held target, and trades on two instruments at once.
SCRIPT = [
    ("trend", "AAA", 1),
    ("trend", "BBB", -1),
    ("trend", "AAA", 1),
    ("trend", "AAA", -1),
    ("fixed", "BBB", 0),
    ("trend", "BBB", 1),
    ("trend", "AAA", 0),
    ("trend", "AAA", 0),
    ("fixed", "BBB", 1),
    ("trend", "AAA", 1),
    ("trend", "BBB", 0),
    ("trend", "AAA", -1),
    ("trend", "AAA", 0),
]


def send(account, strategies, market, script=SCRIPT, start=T0) -> list[int]:
    ids = []
    for i, (name, symbol, target) in enumerate(script):
        signal = Signal.objects.create(
            strategy=strategies[name],
            account=account,
            instrument=market[symbol],
            timeframe="1m",
            bar_ts=start + timedelta(minutes=i),
            side={1: "buy", 0: "sell", -1: "sell"}[target],
            target=target,
            strength=0.5,
            reason=f"{name} {symbol} -> {target}",
            price=market[symbol].last_price,
        )
        ids.append(signal.pk)
    return ids


def _decision(value):
    """A risk decision without the ids that differ between the two worlds."""
    if isinstance(value, dict):
        return {k: _decision(v) for k, v in value.items() if k != "rule_id"}
    if isinstance(value, list):
        return [_decision(v) for v in value]
    return value


def outcome(account, ids: list[int]) -> dict:
    """Everything the signals caused, without ids and clock times."""
    rank = {pk: i for i, pk in enumerate(ids)}
    # By time: a batch's rows take their keys from a pool drawn ahead, so keys are unique but
    # not in the order the rows were made.
    orders = list(Order.objects.filter(account=account).order_by("created_at", "id"))
    order_rank = {o.pk: i for i, o in enumerate(orders)}

    def fill_ref(text: str) -> str:
        for order in orders:
            text = text.replace(f"paper-{order.pk}-", f"paper-#{order_rank[order.pk]}-")
        return text

    return {
        "signals": [
            (s.status, s.reject_code, s.reject_reason, _decision(s.decision))
            for s in sorted(Signal.objects.filter(pk__in=ids), key=lambda s: rank[s.pk])
        ],
        "orders": [
            (
                rank[o.signal_id] if o.signal_id else None,
                o.client_order_id.replace(f"sig-{o.signal_id}", f"sig-#{rank.get(o.signal_id)}"),
                o.instrument.symbol,
                o.side,
                o.order_type,
                o.time_in_force,
                o.quantity,
                o.limit_price,
                o.status,
                o.filled_quantity,
                o.average_fill_price,
                o.commission,
                o.stop_loss_price,
                o.take_profit_price,
                o.source,
                o.reduce_only,
                _decision(o.risk_decision),
                o.broker_order_id == f"paper-{o.pk}" or o.broker_order_id,
                o.submitted_at is not None,
                o.filled_at is not None,
                o.closed_at is not None,
            )
            for o in orders
        ],
        "events": [
            (
                order_rank[e.order_id],
                e.from_status,
                e.to_status,
                e.source,
                e.message,
                fill_ref(e.data.get("fill", "")),
                e.data.get("risk"),
            )
            for e in sorted(
                OrderEvent.objects.filter(order__account=account),
                key=lambda e: (order_rank[e.order_id], e.id),
            )
        ],
        "fills": [
            (
                order_rank[f.order_id],
                fill_ref(f.broker_fill_id),
                f.side,
                f.quantity,
                f.price,
                f.commission,
            )
            for f in Fill.objects.filter(account=account).order_by("id")
        ],
        "positions": sorted(
            (
                p.instrument.symbol,
                p.quantity,
                p.average_price,
                p.realized_pnl,
                p.commission_paid,
                p.stop_loss_price,
                p.take_profit_price,
                p.opened_at is None,
            )
            for p in Position.objects.filter(account=account)
        ),
        "cash": type(account).objects.get(pk=account.pk).cash,
        "trades": [
            (
                t.instrument.symbol,
                t.strategy.name if t.strategy else None,
                t.direction,
                t.status,
                t.entry_quantity,
                t.entry_price,
                t.exit_quantity,
                t.exit_price,
                t.fees,
                t.gross_pnl,
                t.net_pnl,
                t.return_pct,
                t.mae,
                t.mfe,
                t.r_multiple,
                t.initial_stop_price,
                t.best_price,
                t.worst_price,
                t.entry_reason,
                t.exit_reason,
                order_rank.get(t.entry_order_id),
            )
            for t in Trade.objects.filter(account=account).order_by("created_at", "id")
        ],
        "notifications": [
            (n.type, n.severity, n.title, n.body, n.link.split("/")[1] if n.link else "")
            for n in Notification.objects.filter(user=account.owner).order_by("id")
        ],
        "deliveries": sorted(
            Delivery.objects.filter(user=account.owner).values_list("channel", "status")
        ),
    }


def one_at_a_time(ids):
    for signal_id in ids:
        signal_execute(signal_id=signal_id)


@pytest.fixture
def single_way(monkeypatch):
    """The signals the batch leaves to the single path (it would mask a failing batch)."""
    from apps.execution import pipeline

    taken: list[int] = []
    real = pipeline.signal_execute

    def counting(*, signal_id):
        taken.append(signal_id)
        return real(signal_id=signal_id)

    monkeypatch.setattr(pipeline, "signal_execute", counting)
    return taken


@pytest.mark.parametrize(
    ("before", "upto"),
    [(0, None), (3, None), (4, None), (3, 4), (4, 6)],
    ids=["flat", "long-and-short", "reversed", "reverse-and-stay", "close-and-reopen"],
)
def test_a_batch_books_exactly_what_one_signal_at_a_time_books(market, single_way, before, upto):
    """From flat, or with positions and open journal entries that the batch closes, reverses
    and reopens, ending flat or holding (``before`` signals executed one at a time first in
    both worlds, then those up to ``upto``)."""
    single, single_strategies = world("single", market)
    batched, batched_strategies = world("batched", market)
    single_ids = send(single, single_strategies, market)[:upto]
    batched_ids = send(batched, batched_strategies, market)[:upto]
    one_at_a_time(single_ids[:before] + batched_ids[:before])
    del single_way[:]

    one_at_a_time(single_ids[before:])
    processed = signals_execute_batch(signal_ids=batched_ids[before:])

    assert single_way == []  # all of them on the fast path
    assert sorted(processed) == sorted(batched_ids[before:])
    expected, got = outcome(single, single_ids), outcome(batched, batched_ids)
    assert any(t[3] == "closed" for t in expected["trades"])
    if upto is None:
        assert {s for s, *_ in expected["signals"]} >= {"ordered", "skipped"}
        assert any(o[12] is not None for o in expected["orders"])  # a stop from the rules
    else:  # the batch ends holding what it reopened
        assert any(t[3] == "open" for t in expected["trades"])
    for part in expected:
        assert got[part] == expected[part], part


def test_the_fast_path_covers_the_common_case_in_one_transaction(market):
    account, strategies = world("fast", market)
    ids = send(account, strategies, market)

    from django.db import transaction

    with transaction.atomic():
        done, rest = batch._account_batch(account.pk, ids)

    assert done == ids and rest == []
    assert Order.objects.filter(account=account).count() == sum(
        s == "ordered" for s in Signal.objects.filter(pk__in=ids).values_list("status", flat=True)
    )


@pytest.mark.parametrize(
    "case",
    [
        "limit_entry",
        "thin_volume",
        "already_ordered",
        "rejected",
        "capped",
        "rate_limit",
        "halted",
    ],
)
def test_what_the_fast_path_leaves_goes_the_single_way_with_the_same_result(
    market, settings, single_way, case
):
    """A signal the batch does not cover stops the fast path there: it and every later one
    of the account run one at a time, after the batch's part commits."""
    limit_entries = case == "limit_entry"
    rules = RISK_RULES
    if case == "rejected":  # one position at a time: entries in a second one are refused
        rules = (("position_limit", {"max_positions": 1}, {}),)
    if case == "capped":  # positions of at most 1% of equity: sizing stays under it
        rules = (("max_position_size", {"mode": "pct_equity", "limit": 1}, {}),)
    if case == "rate_limit":
        settings.RISK_MAX_ORDERS_PER_MINUTE = 3
    script = SCRIPT
    if case == "thin_volume":
        script = [*SCRIPT[:3], ("trend", "THIN", 1), *SCRIPT[3:]]
    if case == "limit_entry":  # BBB is flat by then: the fixed strategy enters with a limit
        script = [*SCRIPT, ("fixed", "BBB", 1), ("trend", "AAA", 1)]
    single, single_strategies = world("single", market, rules=rules, limit_entries=limit_entries)
    batched, batched_strategies = world("batched", market, rules=rules, limit_entries=limit_entries)
    if case == "halted":
        for account in (single, batched):
            account.status, account.status_reason = "halted", "daily loss limit"
            account.save()
    single_ids = send(single, single_strategies, market, script)
    batched_ids = send(batched, batched_strategies, market, script)
    if case == "already_ordered":  # a retry: the order of the fourth signal exists already
        signal_execute(signal_id=single_ids[3])
        signal_execute(signal_id=batched_ids[3])
        Signal.objects.filter(pk__in=[single_ids[3], batched_ids[3]]).update(status="new")

    one_at_a_time(single_ids)
    taken_before = len(single_way)
    signals_execute_batch(signal_ids=batched_ids)

    expected, got = outcome(single, single_ids), outcome(batched, batched_ids)
    if case != "capped":  # the fast path stopped at the signal it does not cover
        assert len(single_way) > taken_before
    if case in ("rejected", "rate_limit", "halted"):
        assert any(s == "rejected" for s, *_ in expected["signals"])
    if case == "capped":  # 1% of 250,000 at 101.37 a share
        assert expected["orders"][0][6] == 24
    if case == "limit_entry":
        assert [o[4] for o in expected["orders"] if o[1] == f"sig-#{len(SCRIPT)}"] == ["limit"]
    if case == "thin_volume":
        assert [o[8:10] for o in expected["orders"] if o[2] == "THIN"] == [("partially_filled", 3)]
    for part in expected:
        assert got[part] == expected[part], part


def test_a_failing_batch_rolls_back_and_the_single_path_takes_every_signal(market, monkeypatch):
    single, single_strategies = world("single", market)
    batched, batched_strategies = world("batched", market)
    single_ids = send(single, single_strategies, market)
    batched_ids = send(batched, batched_strategies, market)
    real = batch._execute_one
    calls = []

    def crash_on_the_fifth(run, signal):
        calls.append(signal.pk)
        if len(calls) == 5:
            raise RuntimeError("worker died")
        return real(run, signal)

    monkeypatch.setattr(batch, "_execute_one", crash_on_the_fifth)

    one_at_a_time(single_ids)
    signals_execute_batch(signal_ids=batched_ids)

    assert len(calls) == 5  # the batch got that far, then rolled back
    expected, got = outcome(single, single_ids), outcome(batched, batched_ids)
    for part in expected:
        assert got[part] == expected[part], part


def test_a_batch_run_twice_or_after_the_single_path_changes_nothing(market, single_way):
    account, strategies = world("twice", market)
    ids = send(account, strategies, market)
    signal_execute(signal_id=ids[0])
    signal_execute(signal_id=ids[1])
    del single_way[:]

    assert sorted(signals_execute_batch(signal_ids=ids)) == ids[2:]
    assert single_way == []
    before = outcome(account, ids)
    assert signals_execute_batch(signal_ids=ids) == []
    assert outcome(account, ids) == before
    orders = Order.objects.filter(account=account)
    assert orders.count() == orders.values("client_order_id").distinct().count()


def test_the_statements_of_a_batch_do_not_grow_with_its_signals(market):
    counts = []
    for n, name in ((6, "small"), (18, "large")):
        account, strategies = world(name, market)
        script = [("trend", "AAA", 1 if i % 2 == 0 else 0) for i in range(n)]
        ids = send(account, strategies, market, script)
        with CaptureQueriesContext(connection) as queries:
            signals_execute_batch(signal_ids=ids)
        assert Order.objects.filter(account=account).count() == n
        # Primary keys come from a pool the process refills now and then.
        counts.append(sum("nextval" not in q["sql"] for q in queries.captured_queries))
    assert counts[0] == counts[1], counts


def test_a_signal_task_takes_the_accounts_other_new_signals_along(market):
    account, strategies = world("drain", market)
    ids = send(account, strategies, market)
    _, other_strategies = world("other", market)
    other_ids = send(other_strategies["trend"].account, other_strategies, market)

    assert pending_signals(signal_id=ids[4]) == ids
    # However many are queued, the one asked for comes along.
    assert pending_signals(signal_id=ids[-1], limit=3) == [ids[0], ids[1], ids[-1]]
    assert execute_signal.delay(ids[4]).get() == len(ids)

    assert not Signal.objects.filter(pk__in=ids, status="new").exists()
    assert Signal.objects.filter(pk__in=other_ids, status="new").count() == len(other_ids)
    assert pending_signals(signal_id=ids[0]) == []
    assert execute_signal.delay(ids[0]).get() == 0  # its batch took it: one query, nothing
    script = [("trend", "BBB", 1), ("trend", "BBB", 0)]
    later = send(account, strategies, market, script, start=T0 + timedelta(days=1))
    # A task whose signal was taken brings along what its account queued since.
    assert pending_signals(signal_id=ids[1]) == later
    assert execute_signal.delay(ids[1]).get() == 2
