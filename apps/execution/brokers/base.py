"""The broker protocol every broker implements (paper, Alpaca), and what they answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from apps.execution.models import Order


class BrokerError(Exception):
    """The broker did not do what was asked. ``transient`` says whether retrying can help."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


@dataclass(frozen=True)
class BrokerFill:
    broker_fill_id: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    filled_at: datetime


@dataclass(frozen=True)
class SubmitAck:
    accepted: bool
    broker_order_id: str = ""
    reason: str = ""
    fills: tuple[BrokerFill, ...] = field(default_factory=tuple)
    stop_triggered: bool = False
    # IOC / FOK: the part that did not fill at once is cancelled.
    cancel_rest: bool = False
    cancel_reason: str = ""


@dataclass(frozen=True)
class CancelAck:
    cancelled: bool
    reason: str = ""


@dataclass(frozen=True)
class ReplaceAck:
    replaced: bool
    broker_order_id: str = ""  # a broker may give the replacement a new id
    reason: str = ""


class Broker(Protocol):
    name: str

    def submit_order(self, order: Order) -> SubmitAck: ...

    def cancel_order(self, order: Order) -> CancelAck: ...

    def replace_order(
        self,
        order: Order,
        *,
        quantity: Decimal,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
    ) -> ReplaceAck: ...
