"""Alpaca through alpaca-py's ``TradingClient``: the Broker protocol plus the reads that
retries and reconciliation need (one order, recent orders, positions, the account).

Every call takes the account's credentials from ``api_key_credentials_for_use`` right before it
(outside any transaction) and builds a client with ``alpaca_trading_client`` (base URL,
timeout, no hidden retries). Nothing here writes to the database: the services apply what the
broker answered.

What Alpaca answers, and what it means here:

- 2xx: the order as Alpaca holds it (``BrokerOrderView``).
- 403 (forbidden, insufficient buying power), 422 (invalid, not cancelable ...) and other 4xx:
  ``BrokerError(transient=False)``: permanent, with Alpaca's message as the reason. A 422
  "client_order_id must be unique" on submission means an earlier send did arrive: the order
  is read back by its client order id instead.
- 429, 5xx, a timeout, a broken connection or an answer that does not parse:
  ``BrokerError(transient=True)``: the outcome is unknown and must be found out by asking
  Alpaca by client order id, never by sending again blindly.

Fills: Alpaca reports an order's cumulative ``filled_qty`` and ``filled_avg_price``. Every
fill the platform books for an Alpaca order is the step from what it has booked for that broker
order to that cumulative figure, with the id ``alpaca:<broker order id>:<cumulative qty>`` (see
``cumulative_fill_id``), whichever channel told us (the submit answer, the stream,
reconciliation); so the same execution reported twice is one fill.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
)
from django.utils import timezone
from pydantic import ValidationError

from .base import BrokerError, BrokerFill, CancelAck, ReplaceAck, SubmitAck

if TYPE_CHECKING:
    from alpaca.trading.client import TradingClient

    from apps.accounts.models import TradingAccount
    from apps.execution.models import Order

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A replacement at Alpaca is a new order with a client order id of its own; ours is the
# original's plus this separator and a suffix, so every update maps back to the platform order.
REPLACEMENT_SEPARATOR = "~"
DUPLICATE_CLIENT_ORDER_ID = "client_order_id must be unique"
# Alpaca order statuses after which nothing more happens to the order.
CLOSED = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _text(value: Any) -> str:
    """An enum's value or a plain string (alpaca-py's models hold either)."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def cumulative_fill_id(broker_order_id: str, filled_quantity: Decimal) -> str:
    """The fill id of the step that brought the broker order's filled quantity to
    ``filled_quantity``: the same for every channel that reports it."""
    quantity = format(filled_quantity.normalize(), "f")
    fill_id = f"alpaca:{broker_order_id}:{quantity}"
    if len(fill_id) > 64:  # Fill.broker_fill_id holds 64 characters
        fill_id = "alpaca:" + hashlib.sha256(fill_id.encode()).hexdigest()[:57]
    return fill_id


def fill_id_prefix(broker_order_id: str) -> str:
    return f"alpaca:{broker_order_id}:"


def client_order_id_root(client_order_id: str) -> str:
    """The platform's client order id behind a replacement's (``root~suffix``)."""
    return client_order_id.rsplit(REPLACEMENT_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class BrokerOrderView:
    """An order as Alpaca holds it, in the platform's types."""

    broker_order_id: str
    client_order_id: str
    status: str
    symbol: str = ""
    side: str = ""
    order_type: str = ""
    quantity: Decimal | None = None
    filled_quantity: Decimal = Decimal("0")
    filled_average_price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    submitted_at: datetime | None = None
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    replaced_by: str = ""
    replaces: str = ""

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED

    @classmethod
    def from_alpaca(cls, order: Any) -> BrokerOrderView:
        """From alpaca-py's ``Order`` model (REST answers and stream updates alike)."""
        return cls(
            broker_order_id=str(order.id),
            client_order_id=order.client_order_id or "",
            status=_text(order.status),
            symbol=order.symbol or "",
            side=_text(order.side),
            order_type=_text(order.type or order.order_type),
            quantity=_decimal(order.qty),
            filled_quantity=_decimal(order.filled_qty) or Decimal("0"),
            filled_average_price=_decimal(order.filled_avg_price) or None,
            limit_price=_decimal(order.limit_price),
            stop_price=_decimal(order.stop_price),
            submitted_at=order.submitted_at,
            updated_at=order.updated_at,
            filled_at=order.filled_at,
            replaced_by=str(order.replaced_by) if order.replaced_by else "",
            replaces=str(order.replaces) if order.replaces else "",
        )


@dataclass(frozen=True)
class BrokerPosition:
    symbol: str
    quantity: Decimal  # signed: short < 0
    average_price: Decimal


@dataclass(frozen=True)
class BrokerAccount:
    broker_account_id: str
    status: str
    cash: Decimal
    equity: Decimal
    buying_power: Decimal
    trading_blocked: bool


def _broker_message(exc: APIError) -> str:
    try:
        return str(json.loads(str(exc))["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return str(exc)[:300]


def submit_ack(view: BrokerOrderView) -> SubmitAck:
    """The platform's reading of Alpaca's answer to a submission (or of the order found by its
    client order id after an unanswered one)."""
    if view.status == "rejected":
        return SubmitAck(False, broker_order_id=view.broker_order_id, reason="rejected by Alpaca")
    fills: tuple[BrokerFill, ...] = ()
    if view.filled_quantity > 0 and view.filled_average_price:
        # The whole cumulative quantity: applied only while the platform has booked no fill
        # for the order (``order_apply_ack``); otherwise the stream's steps already cover it.
        fills = (
            BrokerFill(
                cumulative_fill_id(view.broker_order_id, view.filled_quantity),
                view.filled_quantity,
                view.filled_average_price,
                Decimal("0"),  # Alpaca charges no commission on equities
                view.filled_at or view.updated_at or timezone.now(),
            ),
        )
    finished = view.status in ("canceled", "expired") and view.filled_quantity != view.quantity
    return SubmitAck(
        True,
        broker_order_id=view.broker_order_id,
        fills=fills,
        cancel_rest=finished,
        cancel_reason=f"the rest was {view.status} at Alpaca" if finished else "",
    )


class AlpacaBroker:
    """The Broker protocol for one Alpaca trading account."""

    name = "alpaca"

    def __init__(self, account: TradingAccount, *, timeout: float | None = None) -> None:
        self.account = account
        self.timeout = timeout

    # --- plumbing ----------------------------------------------------------------------------

    def _client(self, purpose: str) -> TradingClient:
        from apps.apikeys.brokers import alpaca_trading_client
        from apps.apikeys.services import CredentialsUnavailable, api_key_credentials_for_use

        try:
            credentials = api_key_credentials_for_use(account=self.account, purpose=purpose)
        except CredentialsUnavailable as exc:
            raise BrokerError(exc.message, transient=False, status=409) from None
        return alpaca_trading_client(credentials, timeout=self.timeout)

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """Run one alpaca-py call; every failure becomes a ``BrokerError`` that says whether
        the outcome is unknown (transient) or a refusal (permanent)."""
        try:
            return call()
        except APIError as exc:
            status = exc.status_code
            said = _broker_message(exc)
            if status is None or status == 429 or status >= 500:
                raise BrokerError(
                    f"Alpaca could not {what} ({status or 'no status'}: {said})",
                    transient=True,
                    status=status,
                ) from None
            raise BrokerError(
                f"Alpaca refused to {what} ({status}: {said})", transient=False, status=status
            ) from None
        except requests.Timeout:
            raise BrokerError(f"Alpaca did not answer in time ({what})", transient=True) from None
        except requests.RequestException as exc:
            raise BrokerError(
                f"Alpaca could not be reached ({what}: {type(exc).__name__})", transient=True
            ) from None
        except (ValidationError, ValueError, TypeError) as exc:
            # The request may have taken effect even though its answer is unreadable.
            raise BrokerError(
                f"Alpaca's answer could not be read ({what}: {type(exc).__name__})",
                transient=True,
            ) from None

    # --- the Broker protocol -----------------------------------------------------------------

    def order_request(self, order: Order, *, client_order_id: str | None = None):
        """alpaca-py's request for the order (raises ``BrokerError`` if it cannot be sent)."""
        fields: dict[str, Any] = {
            "symbol": order.instrument.symbol,
            "qty": float(order.remaining_quantity),
            "side": OrderSide(order.side),
            "time_in_force": TimeInForce(order.time_in_force),
            "client_order_id": client_order_id or order.client_order_id,
        }
        builders = {
            "market": (MarketOrderRequest, {}),
            "limit": (LimitOrderRequest, {"limit_price": order.limit_price}),
            "stop": (StopOrderRequest, {"stop_price": order.stop_price}),
            "stop_limit": (
                StopLimitOrderRequest,
                {"limit_price": order.limit_price, "stop_price": order.stop_price},
            ),
        }
        if order.order_type not in builders:
            raise BrokerError(f"Alpaca has no {order.order_type} orders.", transient=False)
        request_class, prices = builders[order.order_type]
        fields.update({k: float(v) for k, v in prices.items() if v is not None})
        try:
            return request_class(**fields)
        except (ValidationError, ValueError) as exc:
            raise BrokerError(
                f"The order cannot be sent to Alpaca: {exc}", transient=False
            ) from None

    def submit_order(self, order: Order) -> SubmitAck:
        request = self.order_request(order)
        client = self._client("submit_order")
        try:
            answer = self._call("place the order", lambda: client.submit_order(request))
        except BrokerError as exc:
            if exc.status == 422 and DUPLICATE_CLIENT_ORDER_ID in str(exc):
                # An earlier send arrived (its answer was lost): that order is the one.
                view = self.order_view(order)
                if view is not None:
                    logger.info("order %s was already at Alpaca as %s", order.pk, view)
                    return submit_ack(view)
            raise
        return submit_ack(BrokerOrderView.from_alpaca(answer))

    def cancel_order(self, order: Order) -> CancelAck:
        try:
            view = self.order_view(order)
            if view is None:
                # Never reached Alpaca: nothing to cancel there.
                return CancelAck(True, reason="the order never reached Alpaca")
            if not view.is_open:
                return CancelAck(False, reason=f"the order is already {view.status} at Alpaca")
            client = self._client("cancel_order")
            self._call("cancel the order", lambda: client.cancel_order_by_id(view.broker_order_id))
            after = self._call(
                "read the order", lambda: client.get_order_by_id(view.broker_order_id)
            )
        except BrokerError as exc:
            return CancelAck(False, reason=str(exc))
        status = _text(after.status)
        if status in ("canceled", "expired"):
            return CancelAck(True)
        if status == "pending_cancel":
            return CancelAck(
                False,
                reason="Alpaca is cancelling the order; its confirmation will update it",
            )
        return CancelAck(False, reason=f"the order is {status} at Alpaca")

    def replace_order(
        self,
        order: Order,
        *,
        quantity: Decimal,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
    ) -> ReplaceAck:
        if not order.broker_order_id:
            return ReplaceAck(False, reason="Alpaca has not acknowledged the order yet")
        remaining = quantity - order.filled_quantity
        if remaining != remaining.to_integral_value():
            return ReplaceAck(False, reason="Alpaca replaces whole-share quantities only")
        # Always the quantity left: without one, Alpaca's replacement takes the original's
        # whole quantity again, fills included.
        fields: dict[str, Any] = {
            "qty": int(remaining),
            "client_order_id": replacement_client_order_id(order),
        }
        if order.order_type in ("limit", "stop_limit") and limit_price is not None:
            fields["limit_price"] = float(limit_price)
        if order.order_type in ("stop", "stop_limit") and stop_price is not None:
            fields["stop_price"] = float(stop_price)
        try:
            request = ReplaceOrderRequest(**fields)
        except (ValidationError, ValueError) as exc:
            return ReplaceAck(False, reason=f"The replacement cannot be sent to Alpaca: {exc}")
        try:
            client = self._client("replace_order")
            answer = self._call(
                "replace the order",
                lambda: client.replace_order_by_id(order.broker_order_id, request),
            )
        except BrokerError as exc:
            return ReplaceAck(False, reason=str(exc))
        return ReplaceAck(True, broker_order_id=str(answer.id))

    # --- reads for retries and reconciliation ------------------------------------------------

    def order_view(self, order: Order) -> BrokerOrderView | None:
        """The order as Alpaca holds it (by broker id once known, else by client order id);
        None when Alpaca has never seen it. Raises ``BrokerError`` when it cannot be asked."""
        client = self._client("read_order")
        try:
            if order.broker_order_id:
                found = self._call(
                    "read the order", lambda: client.get_order_by_id(order.broker_order_id)
                )
            else:
                found = self._call(
                    "read the order",
                    lambda: client.get_order_by_client_id(order.client_order_id),
                )
        except BrokerError as exc:
            if exc.status == 404:
                return None
            raise
        return BrokerOrderView.from_alpaca(found)

    def recent_orders(self, *, after: datetime, limit: int = 500) -> list[BrokerOrderView]:
        """Every order (open or closed) submitted after ``after``, oldest first."""
        client = self._client("list_orders")
        request = GetOrdersRequest(
            status=QueryOrderStatus.ALL, after=after, limit=limit, direction=Sort.ASC
        )
        found = self._call("list the orders", lambda: client.get_orders(request))
        return [BrokerOrderView.from_alpaca(o) for o in found]

    def positions(self) -> list[BrokerPosition]:
        client = self._client("list_positions")
        found = self._call("list the positions", client.get_all_positions)
        positions = []
        for row in found:
            quantity = _decimal(row.qty) or Decimal("0")
            if _text(row.side) == "short" and quantity > 0:  # signed, whatever the answer
                quantity = -quantity
            average = _decimal(row.avg_entry_price) or Decimal("0")
            positions.append(BrokerPosition(row.symbol, quantity, average))
        return positions

    def account_state(self) -> BrokerAccount:
        client = self._client("read_account")
        found = self._call("read the account", client.get_account)
        return BrokerAccount(
            broker_account_id=str(found.id),
            status=_text(found.status),
            cash=_decimal(found.cash) or Decimal("0"),
            equity=_decimal(found.equity) or Decimal("0"),
            buying_power=_decimal(found.buying_power) or Decimal("0"),
            trading_blocked=bool(found.trading_blocked or found.account_blocked),
        )


def replacement_client_order_id(order: Order) -> str:
    """A fresh client order id for a replacement, rooted in the order's own."""
    return f"{order.client_order_id}{REPLACEMENT_SEPARATOR}{uuid.uuid4().hex[:8]}"
