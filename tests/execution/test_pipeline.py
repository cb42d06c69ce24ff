"""The signal path: live bar -> strategy -> Signal -> sizing -> risk -> order -> fill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from apps.execution.models import Order, Position, Signal, Trade
from apps.execution.pipeline import plan_order, signal_execute
from apps.marketdata.models import Bar
from apps.marketdata.services import bar_ingest, bucket_bounds
from apps.risk.services import RuleInput, risk_rule_create
from tests.factories import InstrumentFactory, StrategyFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def aapl(db):
    return InstrumentFactory(symbol="AAPL", last_price=None, last_price_at=None)


def feed(instrument, closes, start=T0, volume=1e6):
    """Ingest one 1m bar per close (open = previous close), running what each bar triggers
    after its commit (the tests run inside a transaction that never commits)."""
    from django.test import TestCase

    events = []
    previous = closes[0]
    for i, close in enumerate(closes):
        ts = start + timedelta(minutes=i)
        with TestCase.captureOnCommitCallbacks(execute=True):
            events.append(
                bar_ingest(
                    instrument=instrument,
                    ts=ts,
                    open=previous,
                    high=max(previous, close) + 0.05,
                    low=min(previous, close) - 0.05,
                    close=close,
                    volume=volume,
                )
            )
        previous = close
    return events


@pytest.fixture
def strategy(account, aapl):
    return StrategyFactory(
        owner=account.owner,
        account=account,
        kind="sma_crossover",
        params={"fast": 2, "slow": 3, "allow_short": False},
        timeframe="1m",
        mode="paper",
        instruments=[aapl],
        sizing_method="fixed_quantity",
        sizing_params={"quantity": 10},
    )


def test_a_crossing_bar_produces_a_signal_an_order_a_fill_and_a_journal_entry(
    account, aapl, strategy
):
    # Flat at 10 then a jump: SMA(2) crosses above SMA(3) on the bar that closes at 12.
    feed(aapl, [10, 10, 10, 10, 12])
    signal = Signal.objects.get()
    assert (signal.side, signal.target, signal.status) == ("buy", 1, "ordered")
    assert signal.bar_ts == T0 + timedelta(minutes=4)
    assert "crossed above" in signal.reason
    order = signal.order
    assert order.source == "strategy" and order.client_order_id == f"sig-{signal.pk}"
    assert order.status == "filled" and order.quantity == D("10")
    assert Position.objects.get(account=account).quantity == D("10")
    trade = Trade.objects.get(account=account)
    assert trade.entry_reason == signal.reason and trade.strategy == strategy

    # Down through the averages: the exit signal closes the position and the round trip.
    feed(aapl, [11, 9], start=T0 + timedelta(minutes=5))
    exit_signal = Signal.objects.order_by("-id").first()
    assert (exit_signal.side, exit_signal.target) == ("sell", 0)
    assert Position.objects.get(account=account).quantity == 0
    trade.refresh_from_db()
    assert trade.status == "closed" and trade.exit_reason == exit_signal.reason
    assert trade.mfe >= 0 >= trade.mae


def test_a_bar_delivered_twice_trades_once(account, aapl, strategy):
    feed(aapl, [10, 10, 10, 10, 12])
    again = feed(aapl, [10, 10, 10, 10, 12])
    assert all(not event.created for event in again)
    # Even forcing the strategy to run again on the same bar changes nothing.
    from apps.execution.pipeline import strategy_evaluate_bar

    strategy_evaluate_bar(strategy=strategy, instrument=aapl, bar_ts=T0 + timedelta(minutes=4))
    assert Signal.objects.count() == 1 and Order.objects.count() == 1


def test_a_retried_signal_execution_places_no_second_order(account, aapl, strategy):
    feed(aapl, [10, 10, 10, 10, 12])
    signal = Signal.objects.get()
    Signal.objects.filter(pk=signal.pk).update(
        status="new"
    )  # as if the worker died before marking it
    signal_execute(signal_id=signal.pk)
    assert Order.objects.count() == 1
    signal.refresh_from_db()
    assert signal.status == "ordered" and signal.order.pk == Order.objects.get().pk


def test_a_rejected_signal_is_stored_with_the_reason(account, aapl, strategy):
    risk_rule_create(
        owner=account.owner,
        account=account,
        data=RuleInput(rule_type="position_limit", params={"max_positions": 1}),
    )
    msft = InstrumentFactory(symbol="MSFT")
    from apps.execution.domain.intents import OrderIntent
    from apps.execution.services import order_submit

    Bar.objects.create(
        instrument=msft, timeframe="1m", ts=T0, open=1, high=1, low=1, close=1, volume=1e6
    )
    order_submit(account=account, intent=OrderIntent(symbol="MSFT", side="buy", quantity=D("1")))
    feed(aapl, [10, 10, 10, 10, 12])
    signal = Signal.objects.get()
    assert signal.status == "rejected" and signal.reject_code == "POSITION_LIMIT_EXCEEDED"
    assert "position" in signal.reject_reason.lower()
    assert signal.decision["outcome"] == "rejected"
    assert not Order.objects.filter(signal=signal).exists()


def test_strategies_that_are_off_or_on_other_timeframes_do_not_run(account, aapl, strategy):
    strategy.mode = "off"
    strategy.save()
    feed(aapl, [10, 10, 10, 10, 12])
    assert not Signal.objects.exists()


def test_minute_bars_roll_up_and_close_higher_timeframes(aapl):
    events = feed(
        aapl, [10 + i * 0.1 for i in range(15)], start=datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    )
    five = Bar.objects.filter(instrument=aapl, timeframe="5m").order_by("ts")
    assert five.count() == 3
    first = five.first()
    minutes = Bar.objects.filter(
        instrument=aapl, timeframe="1m", ts__lt=first.ts + timedelta(minutes=5)
    )
    assert first.open == minutes.order_by("ts").first().open
    assert first.close == minutes.order_by("ts").last().close
    assert first.volume == sum(m.volume for m in minutes)
    closed = [tf for event in events for tf, _ in event.closed if tf != "1m"]
    assert closed == ["5m", "5m", "5m", "15m"]
    assert Bar.objects.filter(instrument=aapl, timeframe="1d").count() == 1


@pytest.mark.parametrize(
    ("ts", "timeframe", "start", "end"),
    [
        (
            datetime(2026, 3, 2, 15, 7, tzinfo=UTC),
            "5m",
            datetime(2026, 3, 2, 15, 5, tzinfo=UTC),
            datetime(2026, 3, 2, 15, 10, tzinfo=UTC),
        ),
        (
            datetime(2026, 3, 2, 15, 59, tzinfo=UTC),
            "1h",
            datetime(2026, 3, 2, 15, 0, tzinfo=UTC),
            datetime(2026, 3, 2, 16, 0, tzinfo=UTC),
        ),
        # 03:00 UTC on the 3rd is still the 2nd in New York (EST, UTC-5).
        (
            datetime(2026, 3, 3, 3, 0, tzinfo=UTC),
            "1d",
            datetime(2026, 3, 2, 0, 0, tzinfo=UTC),
            datetime(2026, 3, 3, 5, 0, tzinfo=UTC),
        ),
    ],
)
def test_bucket_bounds(ts, timeframe, start, end):
    assert bucket_bounds(ts, timeframe) == (start, end)


@pytest.mark.parametrize(
    ("target", "position", "size", "expected"),
    [
        (1, D("0"), D("10"), ("buy", D("10"), True)),
        (1, D("5"), D("10"), None),  # already long
        (1, D("-4"), D("10"), ("buy", D("14"), True)),  # reverse
        (0, D("7"), None, ("sell", D("7"), False)),
        (0, D("0"), None, None),
        (-1, D("3"), D("2"), ("sell", D("5"), True)),
        (1, D("0"), D("0"), None),  # sizing gives nothing
    ],
)
def test_plan_order(target, position, size, expected):
    signal = Signal(target=target)
    plan = plan_order(signal=signal, position=position, size=size)
    assert (None if plan is None else (plan.side, plan.quantity, plan.opening)) == expected
