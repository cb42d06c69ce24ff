"""The risk engine in the order path and in monitoring, on the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
import time_machine

from apps.accounts.models import TradingAccount
from apps.accounts.services import equity_snapshot_take
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Order, Position
from apps.execution.services import order_submit
from apps.marketdata.models import Instrument
from apps.risk.models import RiskEvent, RiskRule, TradingStateChange
from apps.risk.services import (
    RiskRejected,
    RuleInput,
    account_resume_trading,
    risk_escalate_due,
    risk_monitor_account,
    risk_rule_create,
)
from tests.factories import BarFactory, InstrumentFactory, StrategyFactory

pytestmark = pytest.mark.django_db


def rule(account, rule_type, params, **kw):
    return risk_rule_create(
        owner=account.owner,
        account=account,
        data=RuleInput(rule_type=rule_type, params=params, **kw),
    )


def buy(qty, symbol="AAPL", **kw):
    return OrderIntent(symbol=symbol, side="buy", quantity=D(qty), **kw)


def sell(qty, symbol="AAPL", **kw):
    return OrderIntent(symbol=symbol, side="sell", quantity=D(qty), **kw)


@pytest.fixture
def market(instrument):
    BarFactory(instrument=instrument, volume=1e9)
    return instrument


def set_price(instrument: Instrument, price: str) -> None:
    Instrument.objects.filter(pk=instrument.pk).update(last_price=D(price))
    instrument.refresh_from_db()


def test_a_breached_rule_blocks_a_manual_order_and_writes_no_order(account, market):
    rule(account, "max_position_size", {"mode": "money", "limit": 5000}, name="5k cap")
    order_submit(account=account, intent=buy("50"), source="manual")  # exactly at the cap
    with pytest.raises(RiskRejected) as err:
        order_submit(account=account, intent=buy("1"), source="manual")
    assert err.value.code == "MAX_POSITION_SIZE_EXCEEDED"
    assert "5,000" in err.value.message or "5000" in err.value.message
    assert Order.objects.count() == 1
    assert Position.objects.get(account=account).quantity == D("50")


def test_an_order_over_a_limit_is_reduced_to_what_fits(account, market):
    rule(account, "max_position_size", {"mode": "money", "limit": 5000})
    order = order_submit(account=account, intent=buy("60"), source="manual")
    assert order.quantity == D("50") and order.status == "filled"
    assert order.risk_decision["outcome"] == "reduced"
    assert "MAX_POSITION_SIZE_EXCEEDED" in order.risk_decision["reason_codes"]
    assert "reduced from 60" in order.events.first().message


def test_a_rejection_keeps_the_decision_as_an_event(account, market):
    rule(account, "position_limit", {"max_positions": 1})
    InstrumentFactory(symbol="MSFT")
    BarFactory(instrument=Instrument.objects.get(symbol="MSFT"), volume=1e9)
    order_submit(account=account, intent=buy("1"))
    with pytest.raises(RiskRejected) as err:
        order_submit(account=account, intent=buy("1", symbol="MSFT"))
    assert err.value.code == "POSITION_LIMIT_EXCEEDED" and err.value.status_code == 422
    assert Order.objects.count() == 1
    event = RiskEvent.objects.get(source="pre_trade")
    assert event.code == "POSITION_LIMIT_EXCEEDED" and event.symbol == "MSFT"
    assert event.context["outcome"] == "rejected"


def test_a_strategy_order_is_blocked_by_its_strategy_scoped_rule_only(account, market):
    strategy = StrategyFactory(owner=account.owner, account=account)
    rule(account, "max_position_size", {"mode": "units", "limit": 5}, strategy_id=strategy.pk)
    capped = order_submit(account=account, intent=buy("10"), strategy=strategy, source="strategy")
    assert capped.quantity == D("5")  # reduced to the strategy's cap
    with pytest.raises(RiskRejected) as err:
        order_submit(account=account, intent=buy("1"), strategy=strategy, source="strategy")
    assert err.value.code == "MAX_POSITION_SIZE_EXCEEDED"
    manual = order_submit(account=account, intent=buy("10"), source="manual")
    assert manual.status == "filled" and manual.quantity == D("10")


def test_after_a_daily_loss_breach_only_reducing_orders_pass(account, market):
    now = datetime.now(UTC)
    rule(account, "daily_loss", {"mode": "money", "limit": 500})
    order_submit(account=account, intent=buy("100"))
    equity_snapshot_take(account=account, now=now)  # start of day with the position on
    account.refresh_from_db()
    account.start_of_day_equity = D("100000")
    account.save()
    set_price(market, "94.00")  # unrealised loss of 600
    with pytest.raises(RiskRejected) as err:
        order_submit(account=account, intent=buy("1"))
    assert err.value.code == "DAILY_LOSS_LIMIT"
    reducing = order_submit(account=account, intent=sell("40"))
    assert reducing.status == "filled"
    assert Position.objects.get(account=account).quantity == D("60")


def test_a_halt_stops_trading_until_a_person_resumes(account, market, user):
    from apps.accounts.services import account_halt

    account_halt(account=account, reason="manual halt")
    with pytest.raises(RiskRejected) as err:
        order_submit(account=account, intent=buy("1"))
    assert err.value.code == "TRADING_HALTED" and err.value.status_code == 409
    account_resume_trading(account=account, user=user)
    assert order_submit(account=account, intent=buy("1")).status == "filled"
    changes = list(
        TradingStateChange.objects.filter(account=account).values_list("to_state", "changed_by")
    )
    assert changes == [("active", user.pk), ("halted", None)]


def test_entries_get_a_stop_and_monitoring_closes_the_position_when_it_is_crossed(account, market):
    rule(account, "stop_loss", {"mode": "pct", "value": 5})
    order = order_submit(account=account, intent=buy("10"))
    assert order.stop_loss_price == D("95.00")
    position = Position.objects.get(account=account)
    assert position.stop_loss_price == D("95.00")
    set_price(market, "96.00")
    risk_monitor_account(account=account)
    assert Order.objects.filter(source="risk").count() == 0
    set_price(market, "94.50")
    risk_monitor_account(account=account)
    risk_monitor_account(account=account)  # a second pass places nothing new
    exits = Order.objects.filter(source="risk")
    assert exits.count() == 1
    exit_order = exits.get()
    assert exit_order.protective_kind == "stop_loss" and exit_order.side == "sell"
    assert exit_order.status == "filled" and exit_order.reduce_only
    position.refresh_from_db()
    assert position.quantity == 0 and position.stop_loss_price is None
    assert RiskEvent.objects.filter(code="STOP_LOSS_HIT", symbol="AAPL").count() == 1


def test_cooldown_after_a_stop_out(account, market):
    rule(account, "stop_loss", {"mode": "pct", "value": 5})
    rule(account, "cooldown", {"minutes": 30})
    order_submit(account=account, intent=buy("10"))
    set_price(market, "90.00")
    risk_monitor_account(account=account)
    assert Position.objects.get(account=account).quantity == 0
    with pytest.raises(RiskRejected) as err:
        order_submit(account=account, intent=buy("10"))
    assert err.value.code == "COOLDOWN_ACTIVE"


def test_monitoring_raises_a_breach_once_and_escalation_steps_up(account, market):
    rule(
        account,
        "daily_loss",
        {"mode": "money", "limit": 500},
        warning_level="0.5",
        breach_state="reducing",
        escalate_after_minutes=10,
    )
    order_submit(account=account, intent=buy("100"))
    TradingAccount.objects.filter(pk=account.pk).update(start_of_day_equity=D("100000"))
    start = datetime.now(UTC)

    set_price(market, "97.00")  # loss 300: past the warning level (250), under the limit
    risk_monitor_account(account=account, now=start)
    assert list(RiskEvent.objects.filter(source="monitor").values_list("severity", flat=True)) == [
        "warning"
    ]
    account.refresh_from_db()
    assert account.status == "active"

    set_price(market, "94.00")  # loss 600: breach
    risk_monitor_account(account=account, now=start)
    risk_monitor_account(account=account, now=start)  # seen again: no second event
    breach = RiskEvent.objects.get(source="monitor", severity="breach")
    account.refresh_from_db()
    assert account.status == TradingAccount.Status.REDUCING
    change = TradingStateChange.objects.get(account=account, to_state="reducing")
    assert change.rule_id is not None and change.event_id == breach.pk

    assert risk_escalate_due(now=start + timedelta(minutes=5)) == 0  # not yet
    stepped = risk_escalate_due(now=start + timedelta(minutes=11))
    assert stepped >= 1
    breach.refresh_from_db()
    assert breach.severity == "critical" and breach.escalation_level == 1
    account.refresh_from_db()
    assert account.status == TradingAccount.Status.HALTED


def test_acknowledged_events_do_not_escalate(account, market, user):
    from apps.risk.services import risk_event_acknowledge

    rule(account, "leverage", {"max_leverage": 0.005}, escalate_after_minutes=1)
    rule_obj = RiskRule.objects.get()
    RiskRule.objects.filter(pk=rule_obj.pk).update(action="warn")
    order_submit(account=account, intent=buy("10"))
    risk_monitor_account(account=account)
    event = RiskEvent.objects.get(source="monitor")
    risk_event_acknowledge(event=event, user=user)
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1)):
        assert risk_escalate_due() == 0
    event.refresh_from_db()
    assert event.escalation_level == 0 and event.acknowledged_by == user
