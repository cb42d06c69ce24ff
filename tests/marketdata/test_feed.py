"""The live bar sources: the simulated walk and the replay, through ``run_feed``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.marketdata.feeds import feed_start, replayed_bars, run_feed, simulated_bars
from apps.marketdata.models import Bar, Instrument
from tests.factories import BarFactory, InstrumentFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def two(db):
    return [InstrumentFactory(symbol="AAA"), InstrumentFactory(symbol="BBB", last_price=50)]


def test_the_simulated_walk_is_seeded_valid_and_continues_from_the_last_price(two):
    first = next(simulated_bars(two, start=T0, seed=3))
    again = next(simulated_bars(two, start=T0, seed=3))
    other = next(simulated_bars(two, start=T0, seed=4))
    assert [(b.open, b.close, b.volume) for b in first] == [
        (b.open, b.close, b.volume) for b in again
    ]
    assert [b.close for b in first] != [b.close for b in other]
    for bar, instrument in zip(first, two, strict=True):
        assert bar.ts == T0
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.volume > 0
        assert abs(bar.open / float(instrument.last_price) - 1) < 0.01  # starts at the last price


def test_run_feed_stores_bars_minute_by_minute_and_paces_them(two):
    now = [0.0]
    slept = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    stored = run_feed(
        simulated_bars(two, start=T0), speed=60, count=5, sleep=sleep, clock=lambda: now[0]
    )
    assert stored == 10
    stamps = list(
        Bar.objects.filter(instrument=two[0], timeframe="1m")
        .order_by("ts")
        .values_list("ts", flat=True)
    )
    assert stamps == [T0 + timedelta(minutes=i) for i in range(5)]
    # 60 market minutes per wall minute: about one second between minutes.
    assert len(slept) == 5 and all(delay == pytest.approx(1.0) for delay in slept)
    assert Bar.objects.filter(instrument=two[0], timeframe="5m").count() == 1
    two[0].refresh_from_db()
    last = Bar.objects.filter(instrument=two[0], timeframe="1m").order_by("-ts").first()
    assert float(two[0].last_price) == pytest.approx(last.close)


def test_a_restart_continues_after_the_newest_bar(two):
    BarFactory(instrument=two[0], timeframe="1m", ts=T0 + timedelta(hours=5))
    assert feed_start(two, T0) == T0 + timedelta(hours=5, minutes=1)
    assert feed_start(two, T0 + timedelta(days=1, seconds=30)) == T0 + timedelta(days=1)


def test_replay_plays_the_shape_of_history_at_todays_level(two):
    aaa = two[0]
    closes = [100.0, 102.0, 101.0]
    for i, close in enumerate(closes):
        BarFactory(
            instrument=aaa,
            timeframe="1m",
            ts=T0 + timedelta(minutes=i),
            open=close,
            high=close + 1,
            low=close - 1,
            close=close,
        )
    Instrument.objects.filter(pk=aaa.pk).update(last_price=200)
    aaa.refresh_from_db()
    start = T0 + timedelta(days=10)
    batches = list(
        replayed_bars([aaa], start=start, source_start=T0, source_end=T0 + timedelta(minutes=3))
    )
    assert [b[0].ts for b in batches] == [start + timedelta(minutes=i) for i in range(3)]
    # Scaled by 200/100: the same moves in percent, from today's level.
    assert [b[0].close for b in batches] == [200.0, 204.0, 202.0]


def test_the_command_validates_its_input(two):
    with pytest.raises(CommandError, match="Unknown symbol"):
        call_command("run_feed", symbols="ZZZ", count=1, stdout=StringIO())
    with pytest.raises(CommandError, match="speed"):
        call_command("run_feed", speed=0, count=1, stdout=StringIO())
    with pytest.raises(CommandError, match="go together"):
        call_command("run_feed", replay_from="2026-01-01T00:00Z", count=1, stdout=StringIO())
    out = StringIO()
    call_command("run_feed", symbols="AAA", count=2, speed=100000, stdout=out)
    assert "2 new bar(s) stored" in out.getvalue()
