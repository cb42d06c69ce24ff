"""Position and round-trip accounting for one fill, in Decimal.

``apply_fill`` is the single definition of how a fill changes a position: average price on
additions, realised PnL on reductions, and a flip (long to short or back) split into a close and
an open. ``RoundTrip`` follows one trip from flat back to flat for the journal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

PRICE_Q = Decimal("0.00000001")
MONEY_Q = Decimal("0.0001")
ZERO = Decimal("0")


def q_price(value: Decimal) -> Decimal:
    return value.quantize(PRICE_Q, rounding=ROUND_HALF_EVEN)


def q_money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_Q, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class PositionState:
    quantity: Decimal  # signed: short < 0
    average_price: Decimal

    @classmethod
    def flat(cls) -> PositionState:
        return cls(ZERO, ZERO)


@dataclass(frozen=True)
class FillEffect:
    position: PositionState
    realized_pnl: Decimal  # gross, from the part of the fill that closed exposure
    closed_quantity: Decimal  # absolute quantity that reduced the old position
    opened_quantity: Decimal  # absolute quantity that added to / opened the new position
    cash_delta: Decimal  # signed change of cash, commission included

    @property
    def flipped(self) -> bool:
        return self.closed_quantity > 0 and self.opened_quantity > 0


def apply_fill(
    state: PositionState, *, side: str, quantity: Decimal, price: Decimal, commission: Decimal
) -> FillEffect:
    if quantity <= 0:
        raise ValueError("fill quantity must be positive")
    if price <= 0:
        raise ValueError("fill price must be positive")
    signed = quantity if side == "buy" else -quantity
    cash_delta = q_money(-signed * price - commission)
    old = state.quantity

    if old == 0 or (old > 0) == (signed > 0):
        new_qty = old + signed
        average = (abs(old) * state.average_price + quantity * price) / abs(new_qty)
        return FillEffect(
            PositionState(new_qty, q_price(average)), ZERO, ZERO, quantity, cash_delta
        )

    closed = min(quantity, abs(old))
    direction = Decimal(1) if old > 0 else Decimal(-1)
    realized = q_money(closed * (price - state.average_price) * direction)
    opened = quantity - closed
    new_qty = old + signed
    if new_qty == 0:
        new_state = PositionState.flat()
    elif opened > 0:  # flipped through zero: the rest opens at this price
        new_state = PositionState(new_qty, q_price(price))
    else:
        new_state = PositionState(new_qty, state.average_price)
    return FillEffect(new_state, realized, closed, opened, cash_delta)


@dataclass(frozen=True)
class RoundTrip:
    """One trip from flat to flat, as the journal shows it."""

    direction: str  # "long" | "short"
    entry_time: datetime
    entry_quantity: Decimal
    entry_price: Decimal
    exit_quantity: Decimal = ZERO
    exit_price: Decimal | None = None
    exit_time: datetime | None = None
    fees: Decimal = ZERO
    gross_pnl: Decimal = ZERO

    @property
    def net_pnl(self) -> Decimal:
        return q_money(self.gross_pnl - self.fees)

    @property
    def is_closed(self) -> bool:
        return self.exit_time is not None

    @property
    def return_pct(self) -> Decimal | None:
        """Net PnL as a percentage of the capital put in at entry."""
        cost = self.entry_quantity * self.entry_price
        if cost == 0:
            return None
        return (self.net_pnl / cost * 100).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)

    @classmethod
    def open(
        cls, *, direction: str, at: datetime, quantity: Decimal, price: Decimal, fees: Decimal
    ) -> RoundTrip:
        return cls(direction, at, quantity, q_price(price), fees=q_money(fees))

    def add(self, *, quantity: Decimal, price: Decimal, fees: Decimal) -> RoundTrip:
        total = self.entry_quantity + quantity
        average = (self.entry_quantity * self.entry_price + quantity * price) / total
        return replace(
            self, entry_quantity=total, entry_price=q_price(average), fees=q_money(self.fees + fees)
        )

    def reduce(
        self,
        *,
        quantity: Decimal,
        price: Decimal,
        fees: Decimal,
        realized: Decimal,
        at: datetime,
        closes: bool,
    ) -> RoundTrip:
        total = self.exit_quantity + quantity
        previous = self.exit_price or ZERO
        average = (self.exit_quantity * previous + quantity * price) / total
        return replace(
            self,
            exit_quantity=total,
            exit_price=q_price(average),
            fees=q_money(self.fees + fees),
            gross_pnl=q_money(self.gross_pnl + realized),
            exit_time=at if closes else None,
        )


def split_commission(
    commission: Decimal, closed: Decimal, total: Decimal
) -> tuple[Decimal, Decimal]:
    """Split a flip's commission between its closing and opening parts, by quantity."""
    closing = q_money(commission * closed / total)
    return closing, commission - closing


def favourable(direction: str, a: Decimal, b: Decimal) -> Decimal:
    """The better of two prices for a trade in ``direction`` (higher for a long)."""
    return max(a, b) if direction == "long" else min(a, b)


def adverse(direction: str, a: Decimal, b: Decimal) -> Decimal:
    return min(a, b) if direction == "long" else max(a, b)


def excursions(
    *, direction: str, entry_price: Decimal, quantity: Decimal, best: Decimal, worst: Decimal
) -> tuple[Decimal, Decimal]:
    """(MAE, MFE) in money for ``quantity`` held from ``entry_price``: the worst open loss
    (<= 0) and the best open gain (>= 0) the trade showed while it was open."""
    sign = Decimal(1) if direction == "long" else Decimal(-1)
    mae = min(Decimal(0), (worst - entry_price) * quantity * sign)
    mfe = max(Decimal(0), (best - entry_price) * quantity * sign)
    return q_money(mae), q_money(mfe)


def r_multiple(
    *, net_pnl: Decimal, entry_price: Decimal, stop_price: Decimal | None, quantity: Decimal
) -> Decimal | None:
    """Net PnL in units of the risk the initial stop defined; None without a usable stop."""
    if stop_price is None:
        return None
    risk = abs(entry_price - stop_price) * quantity
    if risk == 0:
        return None
    return (net_pnl / risk).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
