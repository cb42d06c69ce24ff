"""Position and round-trip accounting (pure, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from apps.execution.domain.positions import PositionState, RoundTrip, apply_fill, split_commission

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def test_opening_and_adding_averages_the_price():
    first = apply_fill(
        PositionState.flat(), side="buy", quantity=D("10"), price=D("100"), commission=D("1")
    )
    assert first.position == PositionState(D("10"), D("100"))
    assert first.cash_delta == D("-1001")
    second = apply_fill(
        first.position, side="buy", quantity=D("30"), price=D("104"), commission=D("0")
    )
    # (10*100 + 30*104) / 40
    assert second.position.average_price == (D("10") * 100 + D("30") * 104) / 40
    assert second.realized_pnl == 0 and second.opened_quantity == D("30")


@pytest.mark.parametrize(
    ("side", "start_qty", "fill_price", "expected_pnl"),
    [
        ("sell", D("10"), D("110"), D("40")),  # long 10 @100, sell 4 @110 -> +40
        ("sell", D("10"), D("90"), D("-40")),
        ("buy", D("-10"), D("90"), D("40")),  # short 10 @100, buy 4 @90 -> +40
        ("buy", D("-10"), D("110"), D("-40")),
    ],
)
def test_reducing_realises_pnl_and_keeps_the_average(side, start_qty, fill_price, expected_pnl):
    effect = apply_fill(
        PositionState(start_qty, D("100")),
        side=side,
        quantity=D("4"),
        price=fill_price,
        commission=D("0"),
    )
    assert effect.realized_pnl == expected_pnl
    assert effect.position.average_price == D("100")
    assert abs(effect.position.quantity) == D("6")
    assert effect.closed_quantity == D("4") and effect.opened_quantity == 0


def test_closing_to_flat_resets_the_average():
    effect = apply_fill(
        PositionState(D("5"), D("100")),
        side="sell",
        quantity=D("5"),
        price=D("101"),
        commission=D("0"),
    )
    assert effect.position == PositionState.flat()
    assert effect.realized_pnl == D("5")


def test_flip_closes_then_opens_at_the_fill_price():
    effect = apply_fill(
        PositionState(D("5"), D("100")),
        side="sell",
        quantity=D("8"),
        price=D("98"),
        commission=D("0"),
    )
    assert effect.flipped
    assert effect.closed_quantity == D("5") and effect.opened_quantity == D("3")
    assert effect.realized_pnl == D("-10")
    assert effect.position == PositionState(D("-3"), D("98"))


@pytest.mark.parametrize("bad", [{"quantity": D("0")}, {"quantity": D("-1")}, {"price": D("0")}])
def test_rejects_non_positive_fills(bad):
    kwargs = {"side": "buy", "quantity": D("1"), "price": D("1"), "commission": D("0")} | bad
    with pytest.raises(ValueError):
        apply_fill(PositionState.flat(), **kwargs)


def test_cash_is_conserved_over_a_round_trip():
    state = PositionState.flat()
    cash = D("0")
    fills = [("buy", "10", "100", "1"), ("buy", "5", "102", "0.5"), ("sell", "15", "105", "1.5")]
    realized = D("0")
    for side, qty, price, fee in fills:
        effect = apply_fill(state, side=side, quantity=D(qty), price=D(price), commission=D(fee))
        state, cash, realized = (
            effect.position,
            cash + effect.cash_delta,
            realized + effect.realized_pnl,
        )
    assert state.quantity == 0
    # With no position left, cash change equals realised PnL minus all commissions.
    assert cash == realized - D("3")


def test_round_trip_journal_figures():
    trip = RoundTrip.open(direction="long", at=T0, quantity=D("10"), price=D("100"), fees=D("1"))
    trip = trip.add(quantity=D("10"), price=D("110"), fees=D("1"))
    assert trip.entry_price == D("105")
    trip = trip.reduce(
        quantity=D("20"),
        price=D("120"),
        fees=D("2"),
        realized=D("300"),
        at=T0 + timedelta(days=2),
        closes=True,
    )
    assert trip.is_closed and trip.exit_price == D("120")
    assert trip.net_pnl == D("296")
    assert trip.return_pct == (D("296") / D("2100") * 100).quantize(D("0.0001"))


def test_split_commission_keeps_the_total():
    closing, opening = split_commission(D("1.00"), D("1"), D("3"))
    assert closing + opening == D("1.00")
    assert closing == D("0.3333")
