"""Alpaca's view of an order, mapped onto the platform's order lifecycle.

``broker_order_apply`` brings one platform order in line with what Alpaca says about one of its
broker orders (the original or a replacement). Three channels feed it: the trade-updates stream
(``trade_update_apply``, called by ``manage.py run_trade_stream``), the retry of a submission
whose answer was lost, and reconciliation. It is safe to call with the same view any number of
times and in any order, because it only ever moves the platform towards the broker's state:

- fills: the step from what the platform has booked for that broker order to Alpaca's
  cumulative ``filled_qty``, booked through ``fill_apply`` with the id
  ``alpaca:<broker order id>:<cumulative qty>``. A repeated update finds nothing left to book;
  an older one (a smaller cumulative quantity) is already covered; an update of any channel
  for the same cumulative quantity has the same fill id. The step is computed under the
  account and order locks, so two channels at once cannot both book it.
- status: ``submitted -> accepted`` on any sign of life, ``cancelled`` / ``expired`` /
  ``rejected`` when Alpaca's current broker order says so and the platform order is still
  open; fills move it to ``partially_filled`` / ``filled``. A cancel after a fill, or a
  ``new`` after a fill, changes nothing.
- replacements: a replaced broker order hands over to its ``replaced_by``; a refused
  replacement hands back to the order it was to replace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import DecimalField, ExpressionWrapper, F, Sum
from django.utils import timezone

from apps.core.errors import Conflict
from apps.execution.brokers.alpaca import (
    BrokerOrderView,
    client_order_id_root,
    cumulative_fill_id,
    fill_id_prefix,
)
from apps.execution.brokers.base import BrokerFill
from apps.execution.domain.positions import q_price
from apps.execution.models import Fill, Order, OrderEvent, OrderSource, OrderStatus

logger = logging.getLogger(__name__)

# Alpaca statuses that mean the broker has the order and it is (still) working.
WORKING = frozenset(
    {
        "new",
        "accepted",
        "pending_new",
        "accepted_for_bidding",
        "partially_filled",
        "filled",
        "done_for_day",
        "pending_cancel",
        "pending_replace",
        "pending_review",
        "calculated",
        "held",
        "stopped",
        "suspended",
    }
)

# How each channel signs the order events it writes.
ORIGINS = {
    "stream": "Alpaca",
    "retry": "submission retry: Alpaca",
    "reconciliation": "reconciliation: Alpaca",
}


@dataclass(frozen=True)
class TradeUpdate:
    """One message of Alpaca's ``trade_updates`` stream, in the platform's types."""

    event: str
    order: BrokerOrderView
    at: datetime
    execution_id: str = ""
    price: Decimal | None = None  # of this execution (fill / partial_fill)
    quantity: Decimal | None = None  # of this execution
    position_quantity: Decimal | None = None

    @classmethod
    def from_alpaca(cls, update: Any) -> TradeUpdate:
        """From alpaca-py's ``TradeUpdate`` model."""
        event = str(getattr(update.event, "value", update.event))
        return cls(
            event=event,
            order=BrokerOrderView.from_alpaca(update.order),
            at=update.timestamp,
            execution_id=str(update.execution_id or ""),
            price=_decimal(update.price),
            quantity=_decimal(update.qty),
            position_quantity=_decimal(update.position_qty),
        )


def _decimal(value: Any) -> Decimal | None:
    """alpaca-py parses the stream's prices into floats; their shortest repr is what was sent."""
    if value is None:
        return None
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def plain(value: Decimal) -> str:
    """A quantity or price as a trader writes it (10, not 1E+1; 98.5, not 98.50000000)."""
    return format(value.normalize(), "f")


@dataclass
class Applied:
    """What ``broker_order_apply`` did: the repairs (``changes``) and what it could not do."""

    order_id: int
    changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changes)


# --- finding the platform order -----------------------------------------------------------------


def order_for_view(*, account_id: int, view: BrokerOrderView) -> Order | None:
    """The platform order a broker order belongs to: by broker id, by client order id, by the
    client order id a replacement's was made from, or by the broker order it replaces."""
    orders = Order.objects.filter(account_id=account_id)
    if view.broker_order_id:
        found = orders.filter(broker_order_id=view.broker_order_id).first()
        if found is not None:
            return found
    if view.client_order_id:
        candidates = {view.client_order_id, client_order_id_root(view.client_order_id)}
        for client_order_id in candidates:
            found = orders.filter(client_order_id=client_order_id).first()
            if found is not None:
                return found
    if view.replaces:
        return orders.filter(broker_order_id=view.replaces).first()
    return None


# --- the stream ---------------------------------------------------------------------------------


def trade_update_apply(*, account_id: int, update: TradeUpdate) -> Applied | None:
    """Apply one trade update of the account's stream (None: not an order of the platform)."""
    order = order_for_view(account_id=account_id, view=update.order)
    if order is None:
        logger.info(
            "trade update %s for an order the platform does not know (%s, %s)",
            update.event,
            update.order.broker_order_id,
            update.order.client_order_id,
        )
        return None
    return broker_order_apply(
        order_id=order.pk,
        view=update.order,
        at=update.at,
        origin="stream",
        event=update.event,
        execution=update if update.event in ("fill", "partial_fill") else None,
    )


# --- the mapping ----------------------------------------------------------------------------------


def broker_order_apply(
    *,
    order_id: int,
    view: BrokerOrderView,
    at: datetime | None = None,
    origin: str = "stream",
    event: str = "",
    execution: TradeUpdate | None = None,
) -> Applied:
    """Bring the platform order in line with Alpaca's view of one of its broker orders."""
    from apps.execution.services import _lock_order

    at = at or timezone.now()
    who = ORIGINS[origin]
    with transaction.atomic():
        order = _lock_order(order_id)  # account, then order: the lock order of every write
        applied = Applied(order.pk)
        _follow_broker_order(order, view, applied, who, at)
        current = view.broker_order_id == order.broker_order_id
        _book_fills(order, view, execution, applied, who, at, origin)
        order.refresh_from_db()
        _follow_status(order, view, event, current, applied, who, at)
    return applied


def _note(order: Order, *, message: str, at: datetime, data: dict, once_key: str = "") -> bool:
    """An event that changes no status; with ``once_key``, written once per order."""
    if once_key:
        if OrderEvent.objects.filter(order=order, data__once=once_key).exists():
            return False
        data = {**data, "once": once_key}
    OrderEvent.objects.create(
        order=order,
        at=at,
        from_status=order.status,
        to_status=order.status,
        source=OrderSource.SYSTEM,
        message=message,
        data=data,
    )
    return True


def _follow_broker_order(
    order: Order, view: BrokerOrderView, applied: Applied, who: str, at: datetime
) -> None:
    """Which broker order is the platform order's current one."""
    adopt = ""
    reason = ""
    if not order.broker_order_id:
        adopt, reason = view.broker_order_id, f"{who} acknowledged the order"
    elif (
        view.status == "replaced"
        and view.replaced_by
        and view.broker_order_id == order.broker_order_id
    ):
        adopt, reason = view.replaced_by, f"{who} replaced the order"
    elif view.replaces and view.replaces == order.broker_order_id and view.status != "rejected":
        adopt, reason = view.broker_order_id, f"{who} replaced the order"
    if not adopt or adopt == order.broker_order_id:
        return
    before = order.broker_order_id
    order.broker_order_id = adopt
    order.save(update_fields=["broker_order_id", "updated_at"])
    if before:  # a first id is an acknowledgement, told by the status change that follows
        _note(
            order,
            message=f"{reason}: it continues as broker order {adopt}",
            at=at,
            data={"broker_order_id": adopt, "previous": before},
        )
        applied.changes.append(f"follows broker order {adopt}")


def _booked(order: Order, broker_order_id: str) -> tuple[Decimal, Decimal]:
    """Quantity and notional the platform has booked for one broker order."""
    totals = Fill.objects.filter(
        order=order, broker_fill_id__startswith=fill_id_prefix(broker_order_id)
    ).aggregate(
        booked_quantity=Sum("quantity"),
        booked_notional=Sum(
            ExpressionWrapper(
                F("quantity") * F("price"),
                output_field=DecimalField(max_digits=48, decimal_places=16),
            )
        ),
    )
    return totals["booked_quantity"] or Decimal("0"), totals["booked_notional"] or Decimal("0")


def _book_fills(
    order: Order,
    view: BrokerOrderView,
    execution: TradeUpdate | None,
    applied: Applied,
    who: str,
    at: datetime,
    origin: str,
) -> None:
    from apps.execution.services import fill_apply

    if view.filled_quantity <= 0:
        return
    booked, notional = _booked(order, view.broker_order_id)
    step = view.filled_quantity - booked
    if step <= 0:
        return  # a repeated or older report: already booked
    if execution is not None and execution.quantity == step and execution.price:
        price = execution.price
    elif view.filled_average_price:
        # What the cumulative average says the missing executions cost.
        price = q_price((view.filled_average_price * view.filled_quantity - notional) / step)
    else:
        applied.problems.append(f"{who} reports {view.filled_quantity} filled without a price")
        return
    if price <= 0:
        applied.problems.append(f"{who}'s average price gives no positive price for {step}")
        return
    done = view.filled_quantity == view.quantity
    filled_at = (view.filled_at if done and view.filled_at else None) or (
        at if origin == "stream" else view.updated_at or at
    )
    fill = BrokerFill(
        cumulative_fill_id(view.broker_order_id, view.filled_quantity),
        step,
        price,
        Decimal("0"),  # Alpaca charges no commission on equities
        filled_at,
    )
    try:
        _, created = fill_apply(order_id=order.pk, fill=fill)
    except Conflict as exc:
        problem = f"{who} reports {view.filled_quantity} filled; not booked: {exc.message}"
        applied.problems.append(problem)
        _note(
            order,
            message=problem,
            at=at,
            data={"broker_order_id": view.broker_order_id, "filled": str(view.filled_quantity)},
            once_key=f"unbooked:{view.broker_order_id}:{view.filled_quantity}",
        )
        return
    if not created:
        return
    text = f"{plain(step)} @ {plain(price)}"
    applied.changes.append(f"booked {text}")
    if origin != "stream":
        order.refresh_from_db(fields=["status"])
        _note(
            order,
            message=f"{who} had filled {text} that the platform had missed; booked",
            at=at,
            data={"fill": fill.broker_fill_id, "broker_order_id": view.broker_order_id},
        )


def _follow_status(
    order: Order,
    view: BrokerOrderView,
    event: str,
    current: bool,
    applied: Applied,
    who: str,
    at: datetime,
) -> None:
    from apps.execution.services import order_transition

    def move(to_status: str, message: str) -> None:
        order_transition(
            order=order,
            to_status=to_status,
            source=OrderSource.SYSTEM,
            message=message,
            at=at,
            data={"broker_order_id": view.broker_order_id, "broker_status": view.status},
        )
        applied.changes.append(f"{to_status}")

    status = view.status
    if status == "rejected":
        if not current:
            return
        if view.replaces and order.is_open:
            # Alpaca refused the replacement (the original filled first, say): the original
            # is still the order's broker order.
            order.broker_order_id = view.replaces
            order.save(update_fields=["broker_order_id", "updated_at"])
            _note(
                order,
                message=f"{who} refused the replacement; the order stays as it was",
                at=at,
                data={"rejected": view.broker_order_id, "broker_order_id": view.replaces},
            )
            applied.changes.append("replacement refused")
            return
        if order.status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED):
            move(OrderStatus.REJECTED, f"{who} rejected the order")
        elif order.is_open:
            # Part of it traded: those fills stand, the rest is closed.
            move(OrderStatus.CANCELLED, f"{who} rejected the rest of the order")
        return
    if not current:
        return  # what happens to a replaced broker order changes nothing but its fills
    if status in ("canceled", "expired"):
        if order.is_open:
            to_status = OrderStatus.CANCELLED if status == "canceled" else OrderStatus.EXPIRED
            move(to_status, f"{who} {status} the order")
        return
    if status in WORKING and order.status == OrderStatus.SUBMITTED:
        move(OrderStatus.ACCEPTED, f"{who} accepted the order")
    if event == "done_for_day":
        _note(
            order,
            message=f"{who}: done for the day",
            at=at,
            data={"broker_order_id": view.broker_order_id},
            once_key=f"done_for_day:{view.broker_order_id}:{at.date().isoformat()}",
        )


# --- who has a stream ---------------------------------------------------------------------------


def trade_stream_account_ids(*, account_ids: list[int] | None = None) -> list[int]:
    """Alpaca accounts whose key can be used (active, not expired): the ones with a stream."""
    from django.db.models import Q

    from apps.accounts.models import TradingAccount
    from apps.apikeys.models import ApiKey

    now = timezone.now()
    # One filter(): the same key must be both active and unexpired.
    accounts = TradingAccount.objects.filter(
        Q(api_keys__expires_at__isnull=True) | Q(api_keys__expires_at__gt=now),
        broker=TradingAccount.Broker.ALPACA,
        api_keys__status=ApiKey.Status.ACTIVE,
    )
    if account_ids is not None:
        accounts = accounts.filter(pk__in=account_ids)
    return sorted(set(accounts.values_list("pk", flat=True)))
