"""Position sizing: each method's arithmetic recomputed here from its definition, the caps,
lot rounding, and validation that names the offending input."""

from __future__ import annotations

import json
import math

import pytest

from apps.risk.domain.sizing import (
    SIZING_METHODS,
    describe_sizing_methods,
    kelly_fraction,
    size_position,
    validate_sizing_params,
)
from apps.strategies.domain.params import InvalidParameters

RICH = 1e12  # cash that never caps


def size(method, params, **kwargs):
    kwargs.setdefault("equity", 100_000.0)
    kwargs.setdefault("cash", RICH)
    kwargs.setdefault("price", 50.0)
    kwargs.setdefault("lot_size", 1.0)
    return size_position(method, params=params, **kwargs)


def floor_lot(quantity: float, lot: float) -> float:
    return math.floor(quantity / lot + 1e-9) * lot


def test_fixed_quantity_rounds_down_to_the_lot():
    result = size("fixed_quantity", {"quantity": 37}, lot_size=10)
    assert result.quantity == 30
    assert result.notional == 30 * 50.0
    assert result.capped_by == ()
    assert result.risk_amount is None


@pytest.mark.parametrize(("amount", "price"), [(10_000, 33.0), (5_000, 47.5), (999, 1_000)])
def test_fixed_money(amount, price):
    result = size("fixed_money", {"amount": amount}, price=price)
    assert result.quantity == floor_lot(amount / price, 1)


@pytest.mark.parametrize(("pct", "price", "lot"), [(10, 47.0, 1), (25, 13.3, 5), (3, 0.77, 0.5)])
def test_pct_equity(pct, price, lot):
    result = size("pct_equity", {"pct": pct}, price=price, lot_size=lot)
    expected = floor_lot(100_000 * pct / 100 / price, lot)
    assert result.quantity == pytest.approx(expected)
    assert result.quantity * price <= 100_000 * pct / 100 + 1e-9


@pytest.mark.parametrize(
    ("side", "price", "stop", "risk_pct"),
    [("buy", 50.0, 48.0, 1.0), ("sell", 50.0, 52.5, 0.5), ("buy", 101.37, 97.11, 2.0)],
)
def test_pct_risk(side, price, stop, risk_pct):
    result = size("pct_risk", {"risk_pct": risk_pct}, price=price, stop_price=stop, side=side)
    budget = 100_000 * risk_pct / 100
    expected = floor_lot(budget / abs(price - stop), 1)
    assert result.quantity == expected
    assert result.risk_amount == pytest.approx(expected * abs(price - stop))
    assert result.risk_amount <= budget
    assert any(f"{budget:,.2f}" in step for step in result.steps)


def test_volatility():
    result = size("volatility", {"risk_pct": 1, "atr_multiple": 2}, atr=1.5)
    # 1% of 100,000 = 1,000 at risk; 2 x 1.5 = 3.00 per unit -> 333.33 -> 333.
    assert result.quantity == 333
    assert result.risk_amount == pytest.approx(333 * 3.0)
    assert any("2 x ATR 1.5 = 3" in step for step in result.steps)


@pytest.mark.parametrize(
    ("win_rate", "payoff", "fraction"),
    [(0.55, 1.5, 0.5), (0.6, 2.0, 1.0), (0.3, 1.0, 0.5), (0.5, 1.0, 0.5)],
)
def test_kelly(win_rate, payoff, fraction):
    result = size("kelly", {"win_rate": win_rate, "payoff_ratio": payoff, "fraction": fraction})
    full = win_rate - (1 - win_rate) / payoff
    value = 100_000 * max(full, 0) * fraction
    assert kelly_fraction(win_rate, payoff) == pytest.approx(max(full, 0))
    assert result.quantity == floor_lot(value / 50.0, 1)
    if full <= 0:
        assert result.quantity == 0
        assert "no edge" in result.steps[0]


def test_kelly_worked_example_in_the_steps():
    result = size("kelly", {"win_rate": 0.55, "payoff_ratio": 1.5, "fraction": 0.5})
    # f* = 0.55 - 0.45 / 1.5 = 0.25; half Kelly 0.125; 12,500 / 50 = 250.
    assert result.quantity == 250
    assert result.steps[0].endswith("= 0.25")
    assert "12,500.00" in result.steps[2]


def test_buying_power_caps_purchases():
    result = size("pct_equity", {"pct": 50}, cash=5_000)
    assert result.quantity == 100  # 5,000 / 50, not 50,000 / 50
    assert result.capped_by == ("buying_power",)
    assert any(s.startswith("Capped by buying power") for s in result.steps)
    assert size("pct_equity", {"pct": 50}, cash=-10).quantity == 0


def test_buying_power_for_short_sales_uses_equity_and_margin():
    result = size(
        "fixed_quantity", {"quantity": 5_000}, side="sell", equity=100_000, short_margin=0.5
    )
    assert result.quantity == 4_000  # 100,000 / (50 x 0.5)
    assert result.capped_by == ("buying_power",)


def test_max_position_value_caps_and_both_caps_are_named():
    capped = size("pct_equity", {"pct": 50}, max_position_value=3_000)
    assert (capped.quantity, capped.capped_by) == (60, ("max_position_value",))
    both = size("pct_equity", {"pct": 50}, cash=4_000, max_position_value=3_000)
    assert (both.quantity, both.capped_by) == (60, ("buying_power", "max_position_value"))
    within = size("pct_equity", {"pct": 1}, max_position_value=3_000)
    assert (within.quantity, within.capped_by) == (20, ())


def test_fractional_lots_survive_float_rounding():
    result = size("fixed_money", {"amount": 30}, price=100.0, lot_size=0.1)
    assert result.quantity == pytest.approx(0.3)
    assert result.quantity == 0.3


@pytest.mark.parametrize(
    ("method", "params", "kwargs", "name"),
    [
        ("pct_equity", {"pct": 10}, {"price": 0}, "price"),
        ("pct_equity", {"pct": 10}, {"price": -3}, "price"),
        ("pct_equity", {"pct": 10}, {"price": math.nan}, "price"),
        ("pct_equity", {"pct": 10}, {"equity": 0}, "equity"),
        ("pct_equity", {"pct": 10}, {"lot_size": 0}, "lot_size"),
        ("pct_equity", {"pct": 0}, {}, "pct"),
        ("pct_equity", {"pct": 150}, {}, "pct"),
        ("pct_risk", {"risk_pct": 1}, {}, "stop_price"),
        ("pct_risk", {"risk_pct": 1}, {"stop_price": 50.0}, "stop_price"),
        ("pct_risk", {"risk_pct": 1}, {"stop_price": 51.0}, "stop_price"),
        ("pct_risk", {"risk_pct": 1}, {"stop_price": 49.0, "side": "sell"}, "stop_price"),
        ("volatility", {"risk_pct": 1}, {}, "atr"),
        ("volatility", {"risk_pct": 1}, {"atr": 0}, "atr"),
        ("volatility", {"risk_pct": 1, "atr_multiple": 0}, {"atr": 1}, "atr_multiple"),
        ("kelly", {"win_rate": 1.2}, {}, "win_rate"),
        ("kelly", {"payoff_ratio": 0}, {}, "payoff_ratio"),
        ("fixed_quantity", {"quantity": 5}, {"side": "short"}, "side"),
        ("fixed_quantity", {"quantity": 5}, {"max_position_value": -1}, "max_position_value"),
        ("martingale", {}, {}, "method"),
    ],
)
def test_invalid_inputs_name_the_input(method, params, kwargs, name):
    with pytest.raises(InvalidParameters) as caught:
        size(method, params, **kwargs)
    assert name in caught.value.errors
    assert caught.value.errors[name].startswith(f"{name}:")


def test_validate_sizing_params_fills_defaults():
    assert validate_sizing_params("volatility", {"risk_pct": "0.5"}) == {
        "risk_pct": 0.5,
        "atr_multiple": 2.0,
    }


def test_describe_sizing_methods_is_json():
    described = describe_sizing_methods()
    assert [d["method"] for d in described] == list(SIZING_METHODS)
    assert {d["method"] for d in described if d["needs_stop_price"]} == {"pct_risk"}
    json.dumps(described, allow_nan=False)
    result = size("pct_risk", {"risk_pct": 1}, stop_price=48.0)
    json.dumps(result.as_dict(), allow_nan=False)
