"""``seed_demo``: the demo world, created once, and a second run adds nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import authenticate
from django.core.management import call_command

from apps.accounts.models import EquitySnapshot, TradingAccount, User
from apps.execution.models import Order, Position
from apps.marketdata.models import Bar, Instrument
from apps.strategies.models import Strategy

pytestmark = pytest.mark.django_db


def counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "instruments": Instrument.objects.count(),
        "bars": Bar.objects.count(),
        "accounts": TradingAccount.objects.count(),
        "orders": Order.objects.count(),
        "strategies": Strategy.objects.count(),
    }


@time_machine.travel(datetime(2026, 11, 20, 21, 30, tzinfo=UTC), tick=False)
def test_seed_demo_builds_the_demo_world_once():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert "demo / demo-trader-2026" in out.getvalue()
    assert authenticate(username="demo", password="demo-trader-2026") is not None
    assert User.objects.get(username="admin").is_superuser

    sectors = set(Instrument.objects.values_list("sector", flat=True))
    assert Instrument.objects.count() >= 10 and len(sectors) >= 6
    aapl = Instrument.objects.get(symbol="AAPL")
    daily = Bar.objects.filter(instrument=aapl, timeframe="1d")
    assert 240 <= daily.count() <= 270  # a year of sessions
    minutes = Bar.objects.filter(instrument=aapl, timeframe="1m")
    assert 19 * 390 <= minutes.count() <= 23 * 390  # a month of regular sessions
    for timeframe in ("5m", "15m", "1h"):
        assert Bar.objects.filter(instrument=aapl, timeframe=timeframe).exists()
    # The last price is the last minute's close, and the last daily bar agrees with it.
    last_minute = minutes.order_by("-ts").first()
    assert float(aapl.last_price) == pytest.approx(last_minute.close)
    assert daily.order_by("-ts").first().close == last_minute.close

    demo = User.objects.get(username="demo")
    account = TradingAccount.objects.get(owner=demo)
    assert Order.objects.filter(account=account, status="filled").count() == 4
    assert Position.objects.filter(account=account).exclude(quantity=0).count() == 4
    assert Strategy.objects.filter(owner=demo, mode="paper").count() >= 2
    assert EquitySnapshot.objects.filter(account=account, kind="start_of_day").exists()

    before = counts()
    again = StringIO()
    call_command("seed_demo", stdout=again)
    assert "nothing to do" in again.getvalue()
    assert counts() == before
