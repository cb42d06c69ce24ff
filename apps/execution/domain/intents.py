"""What a trader (or a strategy) asks for, and the checks that need no database."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

ORDER_TYPES = ("market", "limit", "stop", "stop_limit")
SIDES = ("buy", "sell")
TIME_IN_FORCE = ("day", "gtc", "ioc", "fok")


@dataclass(frozen=True)
class OrderIntent:
    symbol: str
    side: str
    quantity: Decimal
    order_type: str = "market"
    time_in_force: str = "day"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    client_order_id: str | None = None
    # May only shrink the position (never grow it or flip it).
    reduce_only: bool = False
    # Protective levels for an entry; the risk rules attach them when missing.
    stop_loss_price: Decimal | None = None
    take_profit_price: Decimal | None = None


@dataclass(frozen=True)
class InstrumentSpec:
    symbol: str
    tradable: bool
    lot_size: Decimal
    tick_size: Decimal


def _on_grid(value: Decimal, step: Decimal) -> bool:
    return (value % step) == 0


def intent_errors(intent: OrderIntent, spec: InstrumentSpec) -> dict[str, str]:
    """Field -> message for everything wrong with the intent; empty when it is acceptable."""
    errors: dict[str, str] = {}
    if intent.side not in SIDES:
        errors["side"] = "Side must be buy or sell."
    if intent.order_type not in ORDER_TYPES:
        errors["order_type"] = f"Order type must be one of {', '.join(ORDER_TYPES)}."
    if intent.time_in_force not in TIME_IN_FORCE:
        errors["time_in_force"] = f"Time in force must be one of {', '.join(TIME_IN_FORCE)}."
    if not spec.tradable:
        errors["symbol"] = f"{spec.symbol} is not tradable."

    quantity = intent.quantity
    if not quantity.is_finite() or quantity <= 0:
        errors["quantity"] = "Quantity must be greater than zero."
    elif not _on_grid(quantity, spec.lot_size):
        errors["quantity"] = (
            f"Quantity must be a multiple of the lot size {spec.lot_size.normalize()}."
        )

    needs_limit = intent.order_type in ("limit", "stop_limit")
    needs_stop = intent.order_type in ("stop", "stop_limit")
    for name, price, needed in (
        ("limit_price", intent.limit_price, needs_limit),
        ("stop_price", intent.stop_price, needs_stop),
    ):
        label = name.replace("_", " ").capitalize()
        if price is None:
            if needed:
                errors[name] = (
                    f"{label} is required for a {intent.order_type.replace('_', '-')} order."
                )
            continue
        if not needed and intent.order_type in ORDER_TYPES:
            errors[name] = (
                f"{label} does not apply to a {intent.order_type.replace('_', '-')} order."
            )
        elif not price.is_finite() or price <= 0:
            errors[name] = f"{label} must be greater than zero."
        elif not _on_grid(price, spec.tick_size):
            errors[name] = (
                f"{label} must be a multiple of the tick size {spec.tick_size.normalize()}."
            )

    if intent.time_in_force in ("ioc", "fok") and intent.order_type in ("stop", "stop_limit"):
        errors["time_in_force"] = "IOC and FOK apply to market and limit orders only."
    for name, price in (
        ("stop_loss_price", intent.stop_loss_price),
        ("take_profit_price", intent.take_profit_price),
    ):
        if price is not None and (not price.is_finite() or price <= 0):
            errors[name] = f"{name.replace('_', ' ').capitalize()} must be greater than zero."
    if intent.client_order_id is not None and not (1 <= len(intent.client_order_id) <= 64):
        errors["client_order_id"] = "Client order id must be 1 to 64 characters."
    return errors
