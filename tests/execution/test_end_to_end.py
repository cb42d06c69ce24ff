"""The whole path with real processes, on PostgreSQL and Redis: bars are ingested here; a real
Celery worker (a subprocess on the test database) runs the strategies, sizes and risk-checks the
signals and places the orders; for the Alpaca account ``manage.py run_trade_stream`` (another
subprocess) books the fill the fake Alpaca reports on its trade-updates websocket. At the end:
one order per signal, filled, the position and the journal, and the owner's notifications."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connections

from apps.execution.models import Fill, Order, Position, Signal, Trade
from apps.marketdata.services import bar_ingest
from apps.notifications.models import Notification
from tests.execution.conftest import wait_until
from tests.factories import InstrumentFactory, StrategyFactory
from tests.fakes.celery_worker import celery_worker, manage_py, output_of

pytestmark = [pytest.mark.celery, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday, in the session
CLOSES = [10, 10, 10, 10, 12]  # SMA(2) crosses above SMA(3) on the bar that closes at 12


def ingest(instrument, index: int, close: float) -> None:
    previous = CLOSES[index - 1] if index else close
    bar_ingest(
        instrument=instrument,
        ts=T0 + timedelta(minutes=index),
        open=previous,
        high=max(previous, close) + 0.05,
        low=min(previous, close) - 0.05,
        close=close,
        volume=1e6,
    )


def state(account) -> dict:
    order = Order.objects.filter(account=account).first()
    position = Position.objects.filter(account=account).first()
    return {
        "signals": list(Signal.objects.filter(account=account).values_list("status", flat=True)),
        "order": order.status if order else None,
        "position": position.quantity if position else None,
        "trade": list(Trade.objects.filter(account=account).values_list("status", flat=True)),
    }


FILLED = {"signals": ["ordered"], "order": "filled", "position": Decimal("10"), "trade": ["open"]}


def test_bars_to_notifications_for_a_paper_and_an_alpaca_account(
    account, alpaca, alpaca_account, user, settings
):
    aapl = InstrumentFactory(symbol="AAPL", last_price=None, last_price_at=None)
    for trading_account, mode in ((account, "paper"), (alpaca_account, "live")):
        StrategyFactory(
            owner=user,
            account=trading_account,
            kind="sma_crossover",
            params={"fast": 2, "slow": 3, "allow_short": False},
            timeframe="1m",
            mode=mode,
            instruments=[aapl],
            sizing_method="fixed_quantity",
            sizing_params={"quantity": 10},
        )
    # Alpaca accepts, then fills on its stream a moment later (not in the answer).
    alpaca.auto_fill("12.02", in_answer=False, delay=0.2)
    alpaca_env = {
        "ALPACA_PAPER_URL": alpaca.url,
        "ALPACA_PAPER_STREAM_URL": alpaca.stream_url,
        "ALPACA_TIMEOUT_SECONDS": "5",
    }

    with (
        celery_worker(env=alpaca_env) as worker,
        manage_py(
            "run_trade_stream",
            "--account",
            str(alpaca_account.pk),
            "--no-reconcile-on-connect",  # so the fill can only come from the stream
            env=worker.env,
        ) as stream,
    ):
        assert alpaca.wait_for_listeners(1, timeout=30), output_of(stream)
        for index, close in enumerate(CLOSES):
            ingest(aapl, index, close)

        done = wait_until(
            lambda: state(account) == FILLED and state(alpaca_account) == FILLED, timeout=60
        )
        assert done, (state(account), state(alpaca_account), worker.output(), output_of(stream))

        # The last bar delivered again: its signals exist, no second order anywhere.
        ingest(aapl, len(CLOSES) - 1, CLOSES[-1])
        time.sleep(3)
        notified = wait_until(lambda: _notifications(user) == _expected(), timeout=30)
        assert notified, (_notifications(user), worker.output(), output_of(stream))

    connections.close_all()
    for trading_account in (account, alpaca_account):
        (signal,) = Signal.objects.filter(account=trading_account)
        (order,) = Order.objects.filter(account=trading_account)
        assert order.signal_id == signal.pk and order.client_order_id == f"sig-{signal.pk}"
        assert order.filled_quantity == Decimal("10")
        (trade,) = Trade.objects.filter(account=trading_account)
        assert trade.entry_order_id == order.pk and trade.entry_quantity == Decimal("10")

    paper_order = Order.objects.get(account=account)
    assert paper_order.average_fill_price >= Decimal("12")  # the last price, with slippage
    alpaca_order = Order.objects.get(account=alpaca_account)
    (post,) = alpaca.requests_to("/v2/orders", "POST")
    assert post.body["client_order_id"] == alpaca_order.client_order_id
    assert alpaca_order.broker_order_id == next(iter(alpaca.orders))
    (fill,) = Fill.objects.filter(order=alpaca_order)
    assert fill.broker_fill_id == f"alpaca:{alpaca_order.broker_order_id}:10"
    assert fill.price == Decimal("12.02")
    # Booked from the stream, not by reconciliation.
    messages = list(alpaca_order.events.values_list("message", flat=True))
    assert not [m for m in messages if m.startswith("reconciliation")], messages


def _notifications(user) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind in Notification.objects.filter(
        user=user, type__in=("order_filled", "position_opened")
    ).values_list("type", flat=True):
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _expected() -> dict[str, int]:
    return {"order_filled": 2, "position_opened": 2}
