"""Strategy services: the library's parameter specs decide, for every entry point alike."""

from __future__ import annotations

import pytest

from apps.core.errors import Conflict, ValidationFailed
from apps.strategies.models import Strategy
from apps.strategies.services import strategy_create, strategy_update
from tests.factories import InstrumentFactory, TradingAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def symbols(db):
    InstrumentFactory(symbol="AAPL")
    InstrumentFactory(symbol="MSFT")
    return ["aapl", "MSFT"]


def create(user, account, **kw):
    base = {
        "owner": user,
        "account": account,
        "name": "Cross",
        "kind": "sma_crossover",
        "params": {"fast": "5", "slow": 20},
        "symbols": ["AAPL"],
        "timeframe": "1d",
    }
    return strategy_create(**(base | kw))


def test_create_coerces_params_and_fills_defaults(user, account, symbols):
    strategy = create(user, account, symbols=symbols)
    assert strategy.params == {"fast": 5, "slow": 20, "allow_short": False}
    assert strategy.symbols == ["AAPL", "MSFT"]
    assert strategy.mode == "off"


@pytest.mark.parametrize(
    ("kw", "field", "fragment"),
    [
        ({"params": {"fast": 900, "slow": 20}}, "params.fast", "fast"),
        ({"params": {"fast": 30, "slow": 20}}, "params.slow", "slow"),
        ({"params": {"speed": 3}}, "params.speed", "speed"),
        ({"kind": "martingale"}, "kind", "martingale"),
        ({"symbols": ["NOPE"]}, "symbols", "NOPE"),
        ({"symbols": []}, "symbols", "at least one"),
        ({"timeframe": "2m"}, "timeframe", "Timeframe"),
        ({"mode": "yolo"}, "mode", "Mode"),
        ({"name": "  "}, "name", "required"),
    ],
)
def test_invalid_input_names_the_field_and_writes_nothing(
    user, account, symbols, kw, field, fragment
):
    with pytest.raises(ValidationFailed) as err:
        create(user, account, **kw)
    assert field in err.value.fields
    assert fragment in str(err.value.fields[field])
    assert not Strategy.objects.exists()


def test_another_users_account_is_refused(user, symbols):
    foreign = TradingAccountFactory()
    with pytest.raises(ValidationFailed) as err:
        create(user, foreign)
    assert "account" in err.value.fields
    assert not Strategy.objects.exists()


def test_duplicate_name_is_a_conflict(user, account, symbols):
    create(user, account)
    with pytest.raises(Conflict):
        create(user, account)
    assert Strategy.objects.count() == 1


def test_update_revalidates_params_and_keeps_others(user, account, symbols):
    strategy = create(user, account)
    strategy_update(strategy=strategy, params={"fast": 8, "slow": 21}, mode="paper")
    strategy.refresh_from_db()
    assert strategy.params["fast"] == 8 and strategy.mode == "paper"
    with pytest.raises(ValidationFailed):
        strategy_update(strategy=strategy, params={"fast": 50, "slow": 21})
    strategy.refresh_from_db()
    assert strategy.params["fast"] == 8


def test_changing_kind_starts_from_that_kinds_defaults(user, account, symbols):
    strategy = create(user, account)
    strategy_update(strategy=strategy, kind="rsi_mean_reversion")
    strategy.refresh_from_db()
    assert strategy.kind == "rsi_mean_reversion"
    assert strategy.params["period"] == 14 and "fast" not in strategy.params
