"""The order state machine and order intent checks (pure)."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import pytest

from apps.execution.domain import orders as s
from apps.execution.domain.intents import InstrumentSpec, OrderIntent, intent_errors

ALL = list(s.TRANSITIONS)
LEGAL = {
    (s.NEW, s.SUBMITTED),
    (s.NEW, s.REJECTED),
    (s.NEW, s.CANCELLED),
    (s.SUBMITTED, s.ACCEPTED),
    (s.SUBMITTED, s.PARTIALLY_FILLED),
    (s.SUBMITTED, s.FILLED),
    (s.SUBMITTED, s.CANCELLED),
    (s.SUBMITTED, s.REJECTED),
    (s.SUBMITTED, s.EXPIRED),
    (s.ACCEPTED, s.PARTIALLY_FILLED),
    (s.ACCEPTED, s.FILLED),
    (s.ACCEPTED, s.CANCELLED),
    (s.ACCEPTED, s.EXPIRED),
    (s.ACCEPTED, s.REJECTED),
    (s.PARTIALLY_FILLED, s.PARTIALLY_FILLED),
    (s.PARTIALLY_FILLED, s.FILLED),
    (s.PARTIALLY_FILLED, s.CANCELLED),
    (s.PARTIALLY_FILLED, s.EXPIRED),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(ALL, ALL)))
def test_every_pair_of_statuses(current, target):
    if (current, target) in LEGAL:
        s.check_transition(current, target)
    else:
        with pytest.raises(s.IllegalTransition) as err:
            s.check_transition(current, target)
        assert err.value.status_code == 409
        assert current in err.value.message


def test_terminal_states_have_no_exit():
    for status in s.TERMINAL:
        assert not s.TRANSITIONS[status]


SPEC = InstrumentSpec("AAPL", True, D("1"), D("0.01"))


def intent(**kw):
    base = {"symbol": "AAPL", "side": "buy", "quantity": D("10")}
    return OrderIntent(**(base | kw))


@pytest.mark.parametrize(
    ("kw", "field", "fragment"),
    [
        ({"quantity": D("0")}, "quantity", "greater than zero"),
        ({"quantity": D("-5")}, "quantity", "greater than zero"),
        ({"quantity": D("1.5")}, "quantity", "lot size"),
        ({"quantity": D("NaN")}, "quantity", "greater than zero"),
        ({"order_type": "limit"}, "limit_price", "required"),
        ({"order_type": "stop"}, "stop_price", "required"),
        ({"order_type": "stop_limit", "stop_price": D("1")}, "limit_price", "required"),
        ({"order_type": "limit", "limit_price": D("100.005")}, "limit_price", "tick size"),
        ({"order_type": "limit", "limit_price": D("-1")}, "limit_price", "greater than zero"),
        ({"limit_price": D("100")}, "limit_price", "does not apply"),
        ({"side": "hold"}, "side", "buy or sell"),
        ({"order_type": "iceberg"}, "order_type", "one of"),
        ({"time_in_force": "forever"}, "time_in_force", "one of"),
        (
            {"order_type": "stop", "stop_price": D("1"), "time_in_force": "ioc"},
            "time_in_force",
            "IOC",
        ),
        ({"client_order_id": "x" * 65}, "client_order_id", "64"),
    ],
)
def test_intent_errors_name_the_field(kw, field, fragment):
    errors = intent_errors(intent(**kw), SPEC)
    assert field in errors
    assert fragment in errors[field]


def test_valid_intents_have_no_errors():
    assert intent_errors(intent(), SPEC) == {}
    assert (
        intent_errors(
            intent(order_type="stop_limit", stop_price=D("99"), limit_price=D("99.5")), SPEC
        )
        == {}
    )


def test_untradable_instrument():
    errors = intent_errors(intent(), InstrumentSpec("XYZ", False, D("1"), D("0.01")))
    assert "not tradable" in errors["symbol"]
