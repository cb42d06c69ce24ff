"""Two orders at once cannot both pass a limit that only one of them fits under (PostgreSQL).

The pre-trade check runs with the account row locked, and counts the other order's remainder
as pending, so the second order sees the first however the two are interleaved.
"""

from __future__ import annotations

import threading
from decimal import Decimal as D

import pytest
from django.db import connection

from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Order, Position
from apps.execution.services import order_submit
from apps.risk.services import RiskRejected, RuleInput, risk_rule_create
from tests.factories import BarFactory, InstrumentFactory, TradingAccountFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(targets) -> list:
    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = targets[i]()
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.fixture
def account():
    return TradingAccountFactory(owner=UserFactory(username="racer"))


def market(symbol: str):
    instrument = InstrumentFactory(symbol=symbol)
    BarFactory(instrument=instrument, volume=1e9)
    return instrument


@pytest.mark.parametrize("attempt", range(3))
def test_two_new_positions_race_for_the_last_slot(account, attempt):
    market("AAA")
    market("BBB")
    risk_rule_create(
        owner=account.owner,
        account=account,
        data=RuleInput(rule_type="position_limit", params={"max_positions": 1}),
    )
    results = race(
        [
            lambda: order_submit(
                account=account, intent=OrderIntent(symbol="AAA", side="buy", quantity=D("1"))
            ),
            lambda: order_submit(
                account=account, intent=OrderIntent(symbol="BBB", side="buy", quantity=D("1"))
            ),
        ]
    )
    placed = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, RiskRejected)]
    assert len(placed) == 1 and len(refused) == 1, results
    assert refused[0].code == "POSITION_LIMIT_EXCEEDED"
    assert Position.objects.filter(account=account).exclude(quantity=0).count() == 1


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_buys_never_exceed_the_position_cap_together(account, attempt):
    market("AAA")
    risk_rule_create(
        owner=account.owner,
        account=account,
        data=RuleInput(rule_type="max_position_size", params={"mode": "units", "limit": 50}),
    )
    # Each fits alone (40 <= 50); together they would hold 120.
    results = race(
        [
            (
                lambda: order_submit(
                    account=account, intent=OrderIntent(symbol="AAA", side="buy", quantity=D("40"))
                )
            )
            for _ in range(3)
        ]
    )
    orders = [r for r in results if isinstance(r, Order)]
    assert all(isinstance(r, (Order, RiskRejected)) for r in results), results
    total = sum((o.quantity for o in orders), D("0"))
    assert total == D("50")  # the first gets 40, the next is cut to the 10 left, the last refused
    assert Position.objects.get(account=account).quantity == D("50")
    assert sorted(o.quantity for o in orders) == [D("10"), D("40")]
