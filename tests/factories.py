"""factory_boy factories for the models. Tests that exercise behaviour create orders, fills and
positions through the services, not through factories, so invariants hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from apps.accounts.models import TradingAccount, User
from apps.marketdata.models import Bar, Instrument
from apps.strategies.models import Strategy

PASSWORD = "correct-horse-battery-staple"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"trader{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TradingAccountFactory(DjangoModelFactory):
    class Meta:
        model = TradingAccount

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Paper {n}")
    cash = Decimal("100000")
    initial_cash = Decimal("100000")
    slippage_bps = Decimal("0")
    commission_rate = Decimal("0")
    commission_minimum = Decimal("0")
    max_volume_participation = Decimal("1")


class InstrumentFactory(DjangoModelFactory):
    class Meta:
        model = Instrument
        django_get_or_create = ("symbol",)

    symbol = factory.Sequence(lambda n: f"SYM{n}")
    name = factory.LazyAttribute(lambda o: f"{o.symbol} Inc.")
    sector = "Technology"
    exchange = "NASDAQ"
    lot_size = Decimal("1")
    tick_size = Decimal("0.01")
    last_price = Decimal("100.00")
    last_price_at = factory.LazyFunction(lambda: datetime.now(UTC))


class BarFactory(DjangoModelFactory):
    class Meta:
        model = Bar

    instrument = factory.SubFactory(InstrumentFactory)
    timeframe = "1m"
    ts = factory.Sequence(lambda n: datetime(2026, 1, 5, 14, 30, tzinfo=UTC) + timedelta(minutes=n))
    open = 100.0
    high = 101.0
    low = 99.0
    close = 100.5
    volume = 10_000.0


class StrategyFactory(DjangoModelFactory):
    class Meta:
        model = Strategy
        skip_postgeneration_save = True

    owner = factory.SubFactory(UserFactory)
    account = factory.SubFactory(TradingAccountFactory, owner=factory.SelfAttribute("..owner"))
    name = factory.Sequence(lambda n: f"Strategy {n}")
    kind = "sma_crossover"
    params = factory.LazyFunction(lambda: {"fast": 10, "slow": 30, "allow_short": False})
    timeframe = "1d"
    mode = Strategy.Mode.OFF

    @factory.post_generation
    def instruments(obj, create, extracted, **kwargs):
        if create:
            obj.instruments.set(extracted or [InstrumentFactory()])
