"""The paper broker's matching rules, pure.

Two entry points decide how much of a working order fills and at what price:

- ``match_at_price``: at submission, against the last traded price (a market order fills at
  once; a marketable limit fills at the better of the two; a stop whose level is already
  through triggers).
- ``match_on_bar``: when a new bar arrives, for orders that are resting. Stops trigger when the
  bar's range touches them (at the open when it gaps through), limits fill when the range
  reaches them (at the open when it gaps through in the order's favour).

Market fills pay slippage (basis points against the trader, rounded to the tick away from the
trader); limit fills never fill worse than their limit. No fill takes more than
``max_volume_participation`` of the bar's volume, so large orders fill partially over several
bars. Commission is a fraction of notional with an optional minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from .positions import q_money

ZERO = Decimal("0")
BPS = Decimal("10000")


@dataclass(frozen=True)
class PaperConfig:
    slippage_bps: Decimal
    commission_rate: Decimal
    commission_minimum: Decimal
    max_volume_participation: Decimal
    lot_size: Decimal
    tick_size: Decimal


@dataclass(frozen=True)
class WorkingOrder:
    side: str  # "buy" | "sell"
    order_type: str  # "market" | "limit" | "stop" | "stop_limit"
    time_in_force: str  # "day" | "gtc" | "ioc" | "fok"
    remaining: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_triggered: bool = False


@dataclass(frozen=True)
class PriceBar:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class Match:
    quantity: Decimal  # 0 when nothing fills now
    price: Decimal | None
    commission: Decimal
    stop_triggered: bool
    # IOC/FOK: what did not fill now must be cancelled.
    cancel_rest: bool
    note: str

    @property
    def filled(self) -> bool:
        return self.quantity > 0


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """Bar prices are float64; ``repr`` gives the shortest string that round-trips."""
    return value if isinstance(value, Decimal) else Decimal(repr(float(value)))


def round_to_tick(price: Decimal, tick: Decimal, *, up: bool) -> Decimal:
    steps = (price / tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return (steps * tick).normalize() if steps > 0 else tick


def floor_to_lot(quantity: Decimal, lot: Decimal) -> Decimal:
    return (quantity / lot).to_integral_value(rounding=ROUND_DOWN) * lot


def commission_for(quantity: Decimal, price: Decimal, config: PaperConfig) -> Decimal:
    return q_money(max(config.commission_minimum, quantity * price * config.commission_rate))


def _with_slippage(price: Decimal, side: str, config: PaperConfig) -> Decimal:
    factor = config.slippage_bps / BPS
    if side == "buy":
        return round_to_tick(price * (1 + factor), config.tick_size, up=True)
    return round_to_tick(price * (1 - factor), config.tick_size, up=False)


def _capacity(volume: Decimal, config: PaperConfig) -> Decimal:
    return floor_to_lot(volume * config.max_volume_participation, config.lot_size)


def _result(
    order: WorkingOrder,
    price: Decimal | None,
    volume: Decimal,
    config: PaperConfig,
    *,
    triggered: bool,
    note: str,
) -> Match:
    immediate = order.time_in_force in ("ioc", "fok")
    if price is None:
        return Match(ZERO, None, ZERO, triggered, immediate, note)
    quantity = min(order.remaining, _capacity(volume, config))
    if order.time_in_force == "fok" and quantity < order.remaining:
        return Match(ZERO, None, ZERO, triggered, True, "not enough volume to fill the whole order")
    if quantity <= 0:
        return Match(ZERO, None, ZERO, triggered, immediate, "no volume available")
    rest = quantity < order.remaining
    partial = f"; {order.remaining - quantity} left (volume cap)" if rest else ""
    return Match(
        quantity,
        price,
        commission_for(quantity, price, config),
        triggered,
        immediate and rest,
        note + partial,
    )


def _limit_price_for(order: WorkingOrder, reference: Decimal) -> Decimal | None:
    """Fill price of a (triggered) limit at ``reference`` if the limit allows it, else None."""
    limit = order.limit_price
    assert limit is not None
    if order.side == "buy":
        return min(reference, limit) if reference <= limit else None
    return max(reference, limit) if reference >= limit else None


def match_at_price(
    order: WorkingOrder, *, last_price: Decimal, volume: Decimal, config: PaperConfig
) -> Match:
    """Match an order just submitted against the last price and the last bar's volume."""
    buy = order.side == "buy"
    triggered = order.stop_triggered
    if order.order_type in ("stop", "stop_limit") and not triggered:
        assert order.stop_price is not None
        triggered = last_price >= order.stop_price if buy else last_price <= order.stop_price
        if not triggered:
            return _result(order, None, volume, config, triggered=False, note="stop not reached")

    if order.order_type in ("market", "stop"):
        price = _with_slippage(last_price, order.side, config)
        return _result(order, price, volume, config, triggered=triggered, note="market fill")
    price = _limit_price_for(order, _with_slippage(last_price, order.side, config))
    note = "marketable limit" if price is not None else "limit resting"
    return _result(order, price, volume, config, triggered=triggered, note=note)


def match_on_bar(order: WorkingOrder, bar: PriceBar, config: PaperConfig) -> Match:
    """Match a resting order against one new bar."""
    buy = order.side == "buy"
    triggered = order.stop_triggered
    trigger_price: Decimal | None = None
    if order.order_type in ("stop", "stop_limit") and not triggered:
        stop = order.stop_price
        assert stop is not None
        if buy and bar.high >= stop:
            trigger_price = max(bar.open, stop)
        elif not buy and bar.low <= stop:
            trigger_price = min(bar.open, stop)
        if trigger_price is None:
            return _result(
                order, None, bar.volume, config, triggered=False, note="stop not reached"
            )
        triggered = True

    if order.order_type == "market":
        price = _with_slippage(bar.open, order.side, config)
        return _result(order, price, bar.volume, config, triggered=triggered, note="market at open")
    if order.order_type == "stop":
        reference = trigger_price if trigger_price is not None else bar.open
        price = _with_slippage(reference, order.side, config)
        return _result(order, price, bar.volume, config, triggered=True, note="stop triggered")

    limit = order.limit_price
    assert limit is not None
    # A stop-limit triggered inside this bar can only trade from the trigger price onward.
    start = trigger_price if trigger_price is not None else bar.open
    if buy:
        price = start if start <= limit else (limit if bar.low <= limit else None)
    else:
        price = start if start >= limit else (limit if bar.high >= limit else None)
    note = "limit reached" if price is not None else "limit not reached"
    return _result(order, price, bar.volume, config, triggered=triggered, note=note)
