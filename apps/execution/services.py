"""Every write of the execution app: submitting, transitioning and cancelling orders, applying
fills to orders, positions, cash and the journal, and matching paper orders on new bars.

Submission is three steps so that no database transaction is open while a broker is called:
(1) validate and store the order as ``submitted`` (account row locked, so orders of one
account are checked one at a time), (2) call the broker, (3) apply its answer. A crash between
(2) and (3) leaves the order ``submitted`` for reconciliation; it is never sent twice, because
the broker sees the same ``client_order_id``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import TradingAccount
from apps.core import sql
from apps.core.errors import Conflict, NotFound, ValidationFailed
from apps.core.realtime import broadcast_on_commit
from apps.execution.brokers import BrokerError, BrokerFill, SubmitAck, broker_for
from apps.execution.domain import orders as states
from apps.execution.domain.intents import InstrumentSpec, OrderIntent, intent_errors
from apps.execution.domain.matching import to_decimal
from apps.execution.domain.positions import (
    PositionState,
    RoundTrip,
    adverse,
    apply_fill,
    excursions,
    favourable,
    q_money,
    q_price,
    r_multiple,
    split_commission,
)
from apps.execution.models import (
    OPEN_STATUSES,
    Fill,
    Order,
    OrderEvent,
    OrderSource,
    OrderStatus,
    Signal,
    Tag,
    Trade,
)
from apps.execution.store import DIRECT, Store
from apps.marketdata.models import Bar, Instrument
from apps.risk.services import (
    RiskRejected,
    decision_quantity,
    pre_trade_check,
    risk_rejection_record,
)
from apps.strategies.models import Strategy

logger = logging.getLogger(__name__)

EXCHANGE_ZONE = ZoneInfo("America/New_York")
SESSION_CLOSE = time(16, 0)


# --- helpers ------------------------------------------------------------------------------


def _price_or_none(value: float | None) -> Decimal | None:
    return Decimal(repr(value)) if value is not None else None


def new_client_order_id() -> str:
    return f"tp-{uuid.uuid4().hex}"


def day_order_expiry(*, instrument: Instrument, now: datetime) -> datetime:
    """A DAY order lives until the session close (16:00 New York) of the day it was placed;
    24x7 markets (crypto) use the end of the UTC day."""
    if instrument.asset_class == Instrument.AssetClass.CRYPTO:
        midnight = datetime.combine(
            now.astimezone(ZoneInfo("UTC")).date(), time(0), ZoneInfo("UTC")
        )
        return midnight + timedelta(days=1)
    local = now.astimezone(EXCHANGE_ZONE)
    close = datetime.combine(local.date(), SESSION_CLOSE, EXCHANGE_ZONE)
    if local >= close:
        close = datetime.combine(local.date() + timedelta(days=1), SESSION_CLOSE, EXCHANGE_ZONE)
    while close.weekday() >= 5:  # placed at the weekend: lives until Monday's close
        close += timedelta(days=1)
    return close


def order_payload(order: Order) -> dict:
    return {
        "id": order.pk,
        "account": order.account_id,
        "symbol": order.instrument.symbol,
        "side": order.side,
        "order_type": order.order_type,
        "quantity": order.quantity,
        "filled_quantity": order.filled_quantity,
        "average_fill_price": order.average_fill_price,
        "status": order.status,
        "reject_reason": order.reject_reason,
    }


def _broadcast_order(order: Order) -> None:
    broadcast_on_commit(order.account.owner_id, "order.updated", order_payload(order))


# --- transitions --------------------------------------------------------------------------


def order_transition(
    *,
    order: Order,
    to_status: str,
    source: str,
    message: str = "",
    at: datetime | None = None,
    data: dict | None = None,
    also_save: tuple[str, ...] = (),
    filled_at: datetime | None = None,
    store: Store = DIRECT,
) -> Order:
    """Move an order to ``to_status`` (the only place statuses change) and record the event.

    ``also_save`` names other fields the caller changed, written in the same UPDATE;
    ``filled_at`` is the broker's execution time of the last fill (default: now); ``store``
    is where the writes go (``apps.execution.store``)."""
    states.check_transition(order.status, to_status)
    at = at or timezone.now()
    previous = order.status
    order.status = to_status
    fields = ["status", "updated_at", *also_save]
    if to_status == OrderStatus.SUBMITTED:
        order.submitted_at = at
        fields.append("submitted_at")
    if to_status == OrderStatus.FILLED:
        order.filled_at = filled_at or at
        fields.append("filled_at")
    if to_status in states.TERMINAL:
        order.closed_at = at
        fields.append("closed_at")
    if to_status == OrderStatus.REJECTED:
        order.reject_reason = message
        fields.append("reject_reason")
    event = OrderEvent(
        order=order,
        at=at,
        from_status=previous,
        to_status=to_status,
        source=source,
        message=message,
        data=data or {},
    )
    pending = getattr(order, "_pending_writes", None)
    if pending is None:
        store.update(order, fields)
        store.insert(event)
    else:  # inside _order_writes_batched: written once, when the block ends
        pending.fields.update(dict.fromkeys(fields))
        pending.events.append(event)
    _broadcast_order(order)
    if to_status in ORDER_NOTIFICATIONS:
        _notify_order(order, to_status, message, store)
    return order


@dataclass
class _PendingWrites:
    fields: dict[str, None] = field(default_factory=dict)  # ordered set
    events: list[OrderEvent] = field(default_factory=list)


@contextmanager
def _order_writes_batched(order: Order, store: Store = DIRECT) -> Iterator[None]:
    """Within one transaction, the order's transitions write it once, at the end of the
    block: one UPDATE with every changed field and one INSERT of all their events (a paper
    fill moves an order submitted -> accepted -> filled in one go). Nothing in the block may
    read the order's row back; an exception writes nothing (its transaction rolls back)."""
    pending = order._pending_writes = _PendingWrites()
    try:
        yield
    finally:
        del order._pending_writes
    if pending.fields:
        store.update(order, list(pending.fields))
    store.insert_many(pending.events)


# Status -> notification type (the notification service knows their severities).
ORDER_NOTIFICATIONS = {
    OrderStatus.FILLED: "order_filled",
    OrderStatus.PARTIALLY_FILLED: "order_partially_filled",
    OrderStatus.REJECTED: "order_rejected",
    OrderStatus.CANCELLED: "order_cancelled",
    OrderStatus.EXPIRED: "order_cancelled",
}


def _notify_order(order: Order, to_status: str, message: str, store: Store = DIRECT) -> None:
    symbol = order.instrument.symbol
    quantity = order.quantity.normalize()
    if to_status in (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED):
        price = order.average_fill_price.normalize() if order.average_fill_price else "-"
        title = (
            f"{order.side.capitalize()} {order.filled_quantity.normalize()}/{quantity} {symbol}"
            f" @ {price}"
        )
    else:
        title = f"{order.side.capitalize()} {quantity} {symbol} {to_status.replace('_', ' ')}"
    store.notify(
        user_id=order.account.owner_id,
        type=ORDER_NOTIFICATIONS[to_status],
        title=title,
        body=message or f"Order {order.client_order_id} is {order.get_status_display().lower()}.",
        link=reverse("execution:order_detail", args=[order.pk]),
        data={"order": order.pk, "status": to_status},
        dedupe_key=f"order-{order.pk}-{to_status}-{order.filled_quantity}",
    )


# --- submission ---------------------------------------------------------------------------


def _resolve_instrument(symbol: str) -> Instrument:
    symbol = (symbol or "").strip().upper()
    instrument = sql.first(
        Instrument,
        "t.symbol = %s",
        [symbol],
        fallback=lambda: Instrument.objects.filter(symbol=symbol).first(),
    )
    if instrument is None:
        raise ValidationFailed(
            f"Unknown symbol {symbol!r}.",
            code="unknown_symbol",
            fields={"symbol": "Unknown symbol."},
        )
    return instrument


def _order_create(
    *,
    account: TradingAccount,
    intent: OrderIntent,
    source: str,
    strategy=None,
    protective_kind: str = "",
    signal=None,
) -> Order:
    instrument = _resolve_instrument(intent.symbol)
    errors = intent_errors(
        intent,
        InstrumentSpec(
            instrument.symbol, instrument.tradable, instrument.lot_size, instrument.tick_size
        ),
    )
    if errors:
        first = next(iter(errors.values()))
        raise ValidationFailed(first, fields=errors)
    if instrument.last_price is None and intent.limit_price is None and intent.stop_price is None:
        # Nothing to value a market order at: neither risk nor a paper fill is possible.
        raise ValidationFailed(
            f"No market price for {instrument.symbol} yet; use a limit order or wait for data.",
            code="no_market_price",
            fields={"symbol": "No market price yet."},
        )
    client_order_id = intent.client_order_id or new_client_order_id()
    now = timezone.now()
    with transaction.atomic():
        locked = sql.first(
            TradingAccount,
            "t.id = %s",
            [account.pk],
            for_update=True,
            fallback=lambda: TradingAccount.objects.select_for_update().get(pk=account.pk),
        )
        if locked is None:
            raise TradingAccount.DoesNotExist(f"No trading account with id {account.pk}.")
        if sql.first(
            Order,
            "t.account_id = %s AND t.client_order_id = %s",
            [locked.pk, client_order_id],
            fallback=lambda: Order.objects.filter(
                account=locked, client_order_id=client_order_id
            ).first(),
        ):
            raise Conflict(
                f"An order with client order id {client_order_id!r} already exists.",
                code="duplicate_client_order_id",
                fields={"client_order_id": "Already used on this account."},
            )
        # The pre-trade check runs under the account lock: orders of one account are checked
        # one at a time, each seeing the others' remainders as pending.
        decision = pre_trade_check(
            account=locked,
            instrument=instrument,
            intent=intent,
            strategy_id=strategy.pk if strategy is not None else None,
            protective=bool(protective_kind),
            now=now,
        )
        if not decision.approved:
            raise RiskRejected(decision, symbol=instrument.symbol)
        quantity = decision_quantity(decision, instrument.lot_size)
        order = _order_build(
            account=locked,
            instrument=instrument,
            intent=intent,
            source=source,
            strategy=strategy,
            protective_kind=protective_kind,
            signal=signal,
            decision=decision,
            quantity=quantity,
            client_order_id=client_order_id,
            now=now,
        )
        # A concurrent request with the same client order id (or the signal's order placed
        # meanwhile) loses here: the unique constraints refuse the row without an error.
        if not sql.insert(order, skip_conflicts=True):
            raise Conflict(
                f"An order with client order id {client_order_id!r} already exists.",
                code="duplicate_client_order_id",
                fields={"client_order_id": "Already used on this account."},
            )
        _order_created(order, intent=intent, source=source, now=now)
    return order


def _order_created(
    order: Order, *, intent: OrderIntent, source: str, now: datetime, store: Store = DIRECT
) -> None:
    """What goes with an order just written: its events (new, submitted), its signal marked
    ordered, and the live update."""
    store.insert_many(_creation_events(order, intent=intent, source=source, now=now))
    if order.signal is not None:
        # The signal is ordered once its order exists: recorded in the same transaction
        # (whatever the broker answers, the order is the signal's outcome).
        store.update(_signal_ordered(order.signal, order, now), SIGNAL_OUTCOME_FIELDS)
    _broadcast_order(order)


def _order_build(
    *,
    account: TradingAccount,
    instrument: Instrument,
    intent: OrderIntent,
    source: str,
    strategy,
    protective_kind: str,
    signal,
    decision,
    quantity: Decimal,
    client_order_id: str,
    now: datetime,
) -> Order:
    """The order row for an approved intent (not yet written)."""
    return Order(
        account=account,
        instrument=instrument,
        strategy=strategy,
        client_order_id=client_order_id,
        side=intent.side,
        order_type=intent.order_type,
        time_in_force=intent.time_in_force,
        quantity=quantity,
        limit_price=intent.limit_price,
        stop_price=intent.stop_price,
        source=source,
        risk_decision=decision.as_dict(),
        reduce_only=intent.reduce_only or bool(protective_kind),
        stop_loss_price=_price_or_none(decision.stop_loss_price),
        take_profit_price=_price_or_none(decision.take_profit_price),
        protective_kind=protective_kind,
        signal=signal,
        # Created and handed to the broker in one step: stored as submitted with both
        # events (new, submitted), one INSERT each instead of four statements; the move is
        # the state machine's new -> submitted.
        status=OrderStatus.SUBMITTED,
        submitted_at=now,
        expires_at=(
            day_order_expiry(instrument=instrument, now=now)
            if intent.time_in_force == "day"
            else None
        ),
    )


def _creation_events(
    order: Order, *, intent: OrderIntent, source: str, now: datetime
) -> list[OrderEvent]:
    """The events of a new order stored as submitted: new, then submitted."""
    message = "order created"
    if order.quantity != intent.quantity:
        message = f"order created; quantity reduced from {intent.quantity} by risk checks"
    states.check_transition(OrderStatus.NEW, OrderStatus.SUBMITTED)
    return [
        OrderEvent(
            order=order,
            at=now,
            from_status="",
            to_status=OrderStatus.NEW,
            source=source,
            message=message,
            data={"risk": order.risk_decision["outcome"]},
        ),
        OrderEvent(
            order=order,
            at=now,
            from_status=OrderStatus.NEW,
            to_status=OrderStatus.SUBMITTED,
            source=source,
        ),
    ]


SIGNAL_OUTCOME_FIELDS = ("status", "reject_code", "reject_reason", "decision", "processed_at")


def _signal_ordered(signal: Signal, order: Order, now: datetime) -> Signal:
    signal.status = signal.Status.ORDERED
    signal.reject_code = signal.reject_reason = ""
    signal.decision = order.risk_decision
    signal.processed_at = now
    return signal


def order_submit(
    *,
    account: TradingAccount,
    intent: OrderIntent,
    source: str = OrderSource.API,
    strategy=None,
    protective_kind: str = "",
    signal=None,
) -> Order:
    """Validate, check against the risk rules, store and send an order to the account's
    broker; apply what it answers. A risk rejection raises ``RiskRejected`` (nothing about the
    order is written; the decision is kept as a risk event)."""
    try:
        order = _order_create(
            account=account,
            intent=intent,
            source=source,
            strategy=strategy,
            protective_kind=protective_kind,
            signal=signal,
        )
    except RiskRejected as rejected:
        risk_rejection_record(account=account, rejected=rejected)
        raise
    broker = broker_for(order.account)
    try:
        ack = broker.submit_order(order)
    except BrokerError as exc:
        logger.warning("broker refused or failed order %s: %s", order.pk, exc)
        if exc.transient:
            # Unknown outcome: a retry asks the broker by client_order_id first and sends again
            # only if it never saw the order; reconciliation settles what the retries cannot.
            OrderEvent.objects.create(
                order=order,
                at=timezone.now(),
                from_status=order.status,
                to_status=order.status,
                source=OrderSource.SYSTEM,
                message=f"broker unavailable, to reconcile: {exc}",
            )
            from apps.execution.reconciliation import submission_retry_schedule

            submission_retry_schedule(order_id=order.pk, attempt=1)
            return order
        ack = SubmitAck(False, reason=str(exc))
    return order_apply_ack(order_id=order.pk, ack=ack)


def order_apply_ack(*, order_id: int, ack: SubmitAck) -> Order:
    """Apply the broker's answer to a submission. A real broker's stream can be faster than its
    answer: a status or fills booked meanwhile stand, and the answer only adds what they lack."""
    with transaction.atomic():
        order = _lock_order(order_id)
        with _order_writes_batched(order):
            _ack_apply_locked(order, ack)
    if ack.accepted and ack.cancel_rest and order.is_open:
        order = order_close_unfilled(
            order=order, reason=ack.cancel_reason or "immediate order not filled"
        )
    return order


def _ack_apply_locked(order: Order, ack: SubmitAck, store: Store = DIRECT) -> None:
    if not ack.accepted:
        if order.status == OrderStatus.SUBMITTED:
            order_transition(
                order=order,
                to_status=OrderStatus.REJECTED,
                source=OrderSource.SYSTEM,
                message=ack.reason or "rejected by the broker",
                store=store,
            )
        return
    fields = []
    if ack.broker_order_id and order.broker_order_id != ack.broker_order_id:
        order.broker_order_id = ack.broker_order_id
        fields.append("broker_order_id")
    if ack.stop_triggered and not order.stop_triggered:
        order.stop_triggered = True
        fields.append("stop_triggered")
    if order.status == OrderStatus.SUBMITTED:  # with the changed fields, one UPDATE
        order_transition(
            order=order,
            to_status=OrderStatus.ACCEPTED,
            source=OrderSource.SYSTEM,
            also_save=tuple(fields),
            store=store,
        )
    elif fields:
        store.update(order, [*fields, "updated_at"])
    # Fills booked before the answer came (from the broker's stream) are the same
    # executions reported sooner: the answer's own fills would count them twice.
    if order.filled_quantity == 0 and order.is_open:
        for fill in ack.fills:
            _fill_apply_locked(order, fill, store)


def _lock_order(order_id: int) -> Order:
    """Lock the order's account, then the order: the one lock order everywhere (no deadlocks).

    Only those two rows are locked (``of=("self",)``): the instrument, strategy and signal are
    read along but stay free, so orders of other accounts on the same symbol and the market
    data writers never wait on them."""
    if not sql.is_postgresql():  # the embedded default: the plain ORM will do
        account = TradingAccount.objects.select_for_update(of=("self",)).get(orders__pk=order_id)
        order = (
            Order.objects.select_for_update(of=("self",))
            .select_related("instrument", "strategy", "signal")
            .get(pk=order_id)
        )
        order.account = account
        return order
    # Every fill, ack and cancel starts here: written out (see apps.core.sql).
    row = sql.fetchone(
        f"SELECT {sql.columns('a', TradingAccount)} FROM {sql.table(TradingAccount)} a "
        f"WHERE a.id = (SELECT o.account_id FROM {sql.table(Order)} o WHERE o.id = %s) "
        "FOR UPDATE",
        [order_id],
    )
    if row is None:
        raise Order.DoesNotExist(f"No order with id {order_id}.")
    (account,) = sql.instances(row, TradingAccount)
    row = sql.fetchone(
        f"SELECT {sql.columns('o', Order)}, {sql.columns('i', Instrument)}, "
        f"{sql.columns('s', Strategy)}, {sql.columns('g', Signal)} "
        f"FROM {sql.table(Order)} o JOIN {sql.table(Instrument)} i ON i.id = o.instrument_id "
        f"LEFT JOIN {sql.table(Strategy)} s ON s.id = o.strategy_id "
        f"LEFT JOIN {sql.table(Signal)} g ON g.id = o.signal_id "
        "WHERE o.id = %s FOR UPDATE OF o",
        [order_id],
    )
    order, instrument, strategy, signal = sql.instances(row, Order, Instrument, Strategy, Signal)
    cache = order._state.fields_cache
    cache["account"], cache["instrument"] = account, instrument
    cache["strategy"], cache["signal"] = strategy, signal
    return order


# --- cancellation and expiry --------------------------------------------------------------


def order_cancel(*, order: Order, source: str, reason: str = "cancelled by the trader") -> Order:
    if not order.is_open:
        raise Conflict(
            f"The order is already {order.status}; it cannot be cancelled.", code="not_open"
        )
    ack = broker_for(order.account).cancel_order(order)
    if not ack.cancelled:
        raise Conflict(f"The broker did not cancel the order: {ack.reason}", code="cancel_refused")
    with transaction.atomic():
        locked = _lock_order(order.pk)
        if not locked.is_open:  # filled while we asked
            return locked
        order_transition(
            order=locked, to_status=OrderStatus.CANCELLED, source=source, message=reason
        )
    return locked


def order_replace(
    *,
    order: Order,
    source: str,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    quantity: Decimal | None = None,
    reason: str = "replaced",
) -> Order:
    """Change an open order's prices or lower its quantity (never below what has filled).

    A larger quantity is a new order (it must pass the risk checks on its own)."""
    if not order.is_open:
        raise Conflict(
            f"The order is already {order.status}; it cannot be changed.", code="not_open"
        )
    new_quantity = quantity if quantity is not None else order.quantity
    new_limit = limit_price if limit_price is not None else order.limit_price
    new_stop = stop_price if stop_price is not None else order.stop_price
    instrument = order.instrument
    errors = intent_errors(
        OrderIntent(
            symbol=instrument.symbol,
            side=order.side,
            quantity=new_quantity,
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            limit_price=new_limit,
            stop_price=new_stop,
        ),
        InstrumentSpec(
            instrument.symbol, instrument.tradable, instrument.lot_size, instrument.tick_size
        ),
    )
    if new_quantity > order.quantity:
        errors["quantity"] = "A replacement cannot increase the quantity; place another order."
    elif new_quantity <= order.filled_quantity:
        errors["quantity"] = (
            f"The quantity must stay above the {order.filled_quantity} already filled."
        )
    if errors:
        raise ValidationFailed(next(iter(errors.values())), fields=errors)
    ack = broker_for(order.account).replace_order(
        order, quantity=new_quantity, limit_price=new_limit, stop_price=new_stop
    )
    if not ack.replaced:
        raise Conflict(
            f"The broker did not replace the order: {ack.reason}", code="replace_refused"
        )
    with transaction.atomic():
        locked = _lock_order(order.pk)
        if not locked.is_open:
            raise Conflict(f"The order became {locked.status} meanwhile.", code="not_open")
        before = {
            "quantity": str(locked.quantity),
            "limit_price": str(locked.limit_price) if locked.limit_price is not None else None,
            "stop_price": str(locked.stop_price) if locked.stop_price is not None else None,
        }
        locked.quantity, locked.limit_price, locked.stop_price = new_quantity, new_limit, new_stop
        if ack.broker_order_id:
            locked.broker_order_id = ack.broker_order_id
        locked.save(
            update_fields=["quantity", "limit_price", "stop_price", "broker_order_id", "updated_at"]
        )
        OrderEvent.objects.create(
            order=locked,
            at=timezone.now(),
            from_status=locked.status,
            to_status=locked.status,
            source=source,
            message=reason,
            data={
                "before": before,
                "after": {
                    "quantity": str(new_quantity),
                    "limit_price": str(new_limit) if new_limit is not None else None,
                    "stop_price": str(new_stop) if new_stop is not None else None,
                },
            },
        )
        _broadcast_order(locked)
    return locked


def order_close_unfilled(*, order: Order, reason: str) -> Order:
    """Cancel what is left of an IOC/FOK order (the broker already dropped it)."""
    with transaction.atomic():
        locked = _lock_order(order.pk)
        if locked.is_open:
            order_transition(
                order=locked,
                to_status=OrderStatus.CANCELLED,
                source=OrderSource.SYSTEM,
                message=reason,
            )
    return locked


def orders_expire_due(*, now: datetime | None = None) -> int:
    """Expire open orders whose time in force has run out. Safe to run twice."""
    now = now or timezone.now()
    due = list(
        Order.objects.filter(status__in=OPEN_STATUSES, expires_at__lte=now).values_list(
            "pk", flat=True
        )
    )
    expired = 0
    for order_id in due:
        with transaction.atomic():
            order = _lock_order(order_id)
            if order.is_open and order.expires_at and order.expires_at <= now:
                order_transition(
                    order=order,
                    to_status=OrderStatus.EXPIRED,
                    source=OrderSource.SYSTEM,
                    message="time in force ended",
                    at=now,
                )
                expired += 1
    return expired


# --- fills --------------------------------------------------------------------------------


def fill_apply(*, order_id: int, fill: BrokerFill) -> tuple[Fill, bool]:
    """Apply one broker fill exactly once: order, position, cash and journal in one transaction.

    Returns ``(fill, created)``; a fill id seen before changes nothing and returns the first.
    """
    with transaction.atomic():
        order = _lock_order(order_id)
        return _fill_apply_locked(order, fill)


def _fill_apply_locked(order: Order, fill: BrokerFill, store: Store = DIRECT) -> tuple[Fill, bool]:
    """``fill_apply`` for a caller that already holds the account and order locks."""
    account = order.account
    existing = store.fill_for(account, fill.broker_fill_id)
    if existing is not None:
        return existing, False
    if fill.quantity <= 0 or fill.price <= 0:
        raise ValidationFailed("A fill needs a positive quantity and price.")
    if fill.quantity > order.remaining_quantity:
        raise Conflict(
            f"Fill of {fill.quantity} exceeds the {order.remaining_quantity} left on the order.",
            code="overfill",
        )
    # A real broker can report an execution after the order was cancelled or expired here
    # (the cancel raced the fill, or updates arrived out of order): it happened, so it is
    # booked, and the order keeps its final status.
    late = order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)
    if not order.is_open and not late:
        states.check_transition(order.status, OrderStatus.FILLED)

    record = Fill(
        order=order,
        account=account,
        instrument=order.instrument,
        broker_fill_id=fill.broker_fill_id,
        side=order.side,
        quantity=fill.quantity,
        price=fill.price,
        commission=fill.commission,
        filled_at=fill.filled_at,
    )
    store.insert(record)

    filled_before = order.filled_quantity
    filled_now = filled_before + fill.quantity
    paid_before = (order.average_fill_price or Decimal("0")) * filled_before
    order.average_fill_price = q_price((paid_before + fill.quantity * fill.price) / filled_now)
    order.filled_quantity = filled_now
    order.commission = q_money(order.commission + fill.commission)
    fill_fields = ("filled_quantity", "average_fill_price", "commission")
    done = filled_now == order.quantity
    if late:
        store.update(order, [*fill_fields, "updated_at"])
        event = OrderEvent(
            order=order,
            at=timezone.now(),
            from_status=order.status,
            to_status=order.status,
            source=OrderSource.SYSTEM,
            message=f"late fill after the order was {order.status}: "
            f"{fill.quantity} @ {fill.price.normalize()}",
            data={"fill": fill.broker_fill_id, "filled_at": fill.filled_at.isoformat()},
        )
        store.insert(event)
        _broadcast_order(order)
    else:
        # One UPDATE: the fill's figures with the status; a filled order keeps the broker's
        # execution time, not when we heard of it.
        order_transition(
            order=order,
            to_status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
            source=OrderSource.SYSTEM,
            message=f"{fill.quantity} @ {fill.price.normalize()}",
            data={"fill": fill.broker_fill_id, "filled_at": fill.filled_at.isoformat()},
            also_save=fill_fields,
            filled_at=fill.filled_at,
            store=store,
        )

    _position_apply(account=account, order=order, fill=record, store=store)
    return record, True


def _position_apply(
    *, account: TradingAccount, order: Order, fill: Fill, store: Store = DIRECT
) -> None:
    position = store.position_for_update(account, order.instrument)
    before = PositionState(position.quantity, position.average_price)
    effect = apply_fill(
        before, side=fill.side, quantity=fill.quantity, price=fill.price, commission=fill.commission
    )
    position.quantity = effect.position.quantity
    position.average_price = effect.position.average_price
    position.realized_pnl = q_money(position.realized_pnl + effect.realized_pnl)
    position.commission_paid = q_money(position.commission_paid + fill.commission)
    if before.quantity == 0 or effect.flipped:
        position.opened_at = fill.filled_at
    if effect.opened_quantity > 0 and (order.stop_loss_price or order.take_profit_price):
        # An entry's protective levels become the position's (the latest entry's win).
        position.stop_loss_price = order.stop_loss_price
        position.take_profit_price = order.take_profit_price
    elif effect.flipped:
        position.stop_loss_price = position.take_profit_price = None
    if effect.position.quantity == 0:
        position.opened_at = None
        position.stop_loss_price = position.take_profit_price = None
    store.update(position)

    account.cash += effect.cash_delta
    store.update(account, ["cash"])  # the locked row: its cash is the current one

    _journal_apply(
        account=account, order=order, fill=fill, before=before, effect=effect, store=store
    )
    broadcast_on_commit(
        account.owner_id,
        "position.updated",
        {
            "account": account.pk,
            "symbol": order.instrument.symbol,
            "quantity": position.quantity,
            "average_price": position.average_price,
            "realized_pnl": position.realized_pnl,
            "cash": account.cash,
        },
    )


def _round_trip(trade: Trade) -> RoundTrip:
    return RoundTrip(
        direction=trade.direction,
        entry_time=trade.entry_time,
        entry_quantity=trade.entry_quantity,
        entry_price=trade.entry_price,
        exit_quantity=trade.exit_quantity,
        exit_price=trade.exit_price,
        exit_time=trade.exit_time,
        fees=trade.fees,
        gross_pnl=trade.gross_pnl,
    )


def _save_round_trip(trade: Trade, trip: RoundTrip, store: Store = DIRECT) -> None:
    trade.entry_quantity = trip.entry_quantity
    trade.entry_price = trip.entry_price
    trade.exit_quantity = trip.exit_quantity
    trade.exit_price = trip.exit_price
    trade.exit_time = trip.exit_time
    trade.fees = trip.fees
    trade.gross_pnl = trip.gross_pnl
    trade.net_pnl = trip.net_pnl
    trade.return_pct = trip.return_pct
    trade.status = Trade.Status.CLOSED if trip.is_closed else Trade.Status.OPEN
    if trade.pk is None:
        store.insert(trade)
    else:
        store.update(trade)


def _journal_apply(
    *, account, order: Order, fill: Fill, before: PositionState, effect, store: Store = DIRECT
) -> None:
    """Keep the round-trip journal in step with the position (one open trip per instrument)."""
    trade = store.open_trade(account, order.instrument)
    closing_fee, opening_fee = (
        split_commission(fill.commission, effect.closed_quantity, fill.quantity)
        if effect.closed_quantity
        else (Decimal("0"), fill.commission)
    )
    if trade is not None:
        _track_extremes(trade, fill.price)
    if effect.closed_quantity and trade is not None:
        trip = _round_trip(trade).reduce(
            quantity=effect.closed_quantity,
            price=fill.price,
            fees=closing_fee,
            realized=effect.realized_pnl,
            at=fill.filled_at,
            closes=effect.position.quantity == 0 or effect.flipped,
        )
        if trip.is_closed:
            trade.exit_reason = _reason_for(order)
            _close_figures(trade, trip)
        _save_round_trip(trade, trip, store)
        if trip.is_closed:
            _notify_trade_closed(account=account, trade=trade, store=store)
            broadcast_on_commit(
                account.owner_id,
                "trade.closed",
                {"trade": trade.pk, "symbol": order.instrument.symbol, "net_pnl": trade.net_pnl},
            )
        trade = None
    if effect.opened_quantity:
        if trade is None:
            trip = RoundTrip.open(
                direction="long" if effect.position.quantity > 0 else "short",
                at=fill.filled_at,
                quantity=effect.opened_quantity,
                price=fill.price,
                fees=opening_fee,
            )
            trade = Trade(
                account=account,
                instrument=order.instrument,
                strategy=order.strategy,
                direction=trip.direction,
                entry_time=trip.entry_time,
                entry_quantity=trip.entry_quantity,
                entry_price=trip.entry_price,
                entry_order=order,
                entry_reason=_reason_for(order),
                initial_stop_price=order.stop_loss_price,
                best_price=fill.price,
                worst_price=fill.price,
            )
            _save_round_trip(trade, trip, store)
            store.notify(
                user_id=account.owner_id,
                type="position_opened",
                title=f"Opened {trip.direction} {order.instrument.symbol}",
                body=f"{trip.entry_quantity.normalize()} @ {trip.entry_price.normalize()}"
                f" ({trade.entry_reason})",
                link=reverse("execution:journal"),
                dedupe_key=f"trade-open-{trade.pk}",
            )
        else:
            _save_round_trip(
                trade,
                _round_trip(trade).add(
                    quantity=effect.opened_quantity, price=fill.price, fees=opening_fee
                ),
                store,
            )


def _reason_for(order: Order) -> str:
    if order.protective_kind:
        return f"{order.get_protective_kind_display()} hit"
    signal = getattr(order, "signal", None)
    if signal is not None:
        return signal.reason
    return f"{order.get_source_display()} order"


def _track_extremes(trade: Trade, price: Decimal) -> None:
    trade.best_price = favourable(trade.direction, trade.best_price or price, price)
    trade.worst_price = adverse(trade.direction, trade.worst_price or price, price)


def _close_figures(trade: Trade, trip: RoundTrip) -> None:
    trade.mae, trade.mfe = excursions(
        direction=trade.direction,
        entry_price=trip.entry_price,
        quantity=trip.entry_quantity,
        best=trade.best_price or trip.entry_price,
        worst=trade.worst_price or trip.entry_price,
    )
    trade.r_multiple = r_multiple(
        net_pnl=trip.net_pnl,
        entry_price=trip.entry_price,
        stop_price=trade.initial_stop_price,
        quantity=trip.entry_quantity,
    )


def trades_track_excursions(*, instrument_id: int, high: float, low: float) -> int:
    """Widen the best/worst prices of the instrument's open trades with a new bar's range."""
    high_d, low_d = to_decimal(high), to_decimal(low)
    updated = 0
    for trade in Trade.objects.filter(instrument_id=instrument_id, status=Trade.Status.OPEN):
        best, worst = trade.best_price, trade.worst_price
        favourable_edge, adverse_edge = (
            (high_d, low_d) if trade.direction == "long" else (low_d, high_d)
        )
        new_best = favourable(trade.direction, best or favourable_edge, favourable_edge)
        new_worst = adverse(trade.direction, worst or adverse_edge, adverse_edge)
        if (new_best, new_worst) != (best, worst):
            Trade.objects.filter(pk=trade.pk, status=Trade.Status.OPEN).update(
                best_price=new_best, worst_price=new_worst
            )
            updated += 1
    return updated


def _notify_trade_closed(*, account, trade: Trade, store: Store = DIRECT) -> None:
    pnl = trade.net_pnl
    exit_price = trade.exit_price.normalize() if trade.exit_price else "-"
    r_text = trade.r_multiple if trade.r_multiple is not None else "n/a"
    store.notify(
        user_id=account.owner_id,
        type="position_closed",
        title=f"Closed {trade.direction} {trade.instrument.symbol}: {'+' if pnl >= 0 else ''}{pnl}",
        body=f"{trade.exit_reason}. Exit {exit_price}, R {r_text}.",
        link=reverse("execution:journal"),
        data={"trade": trade.pk, "net_pnl": str(pnl)},
        dedupe_key=f"trade-closed-{trade.pk}",
    )


def _notify(*, user_id: int, **kwargs) -> None:
    """Hand a notification to the notification service, in the caller's transaction."""
    from django.apps import apps as django_apps

    if not django_apps.is_installed("apps.notifications"):
        return
    from apps.accounts.models import User
    from apps.notifications.services import notify

    notify(user=User(pk=user_id), **{k: v for k, v in kwargs.items() if v is not None})


def _notify_many(notices: list[dict]) -> None:
    """``_notify`` for each of ``notices`` (its keyword arguments), together: one statement
    per table however many there are (``notifications.services.notify_many``)."""
    from django.apps import apps as django_apps

    if not notices or not django_apps.is_installed("apps.notifications"):
        return
    from apps.notifications.services import Notice, notify_many

    notify_many(
        [
            Notice(user=kwargs.pop("user_id"), **{k: v for k, v in kwargs.items() if v is not None})
            for kwargs in (dict(n) for n in notices)
        ]
    )


# --- paper matching on new bars -----------------------------------------------------------


def paper_orders_match_bar(*, bar: Bar, now: datetime | None = None) -> int:
    """Match the resting paper orders of the bar's instrument against it; returns fills made.

    Only orders placed before the bar opened are matched (no look-ahead). Call this with the
    feed's base timeframe only, so the same trading is not matched twice at two timeframes.
    """
    from apps.execution.brokers.paper import PaperBroker

    now = now or timezone.now()
    candidates = list(
        Order.objects.filter(
            instrument_id=bar.instrument_id,
            account__broker=TradingAccount.Broker.PAPER,
            status__in=(OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED),
            submitted_at__lte=bar.ts,
        ).values_list("pk", flat=True)
    )
    fills = 0
    for order_id in candidates:
        with transaction.atomic():
            order = _lock_order(order_id)
            if order.status not in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
                continue
            result = PaperBroker(order.account).match_bar(order, bar, at=now)
            if result.match.stop_triggered and not order.stop_triggered:
                order.stop_triggered = True
                order.save(update_fields=["stop_triggered", "updated_at"])
                OrderEvent.objects.create(
                    order=order,
                    at=now,
                    from_status=order.status,
                    to_status=order.status,
                    source=OrderSource.SYSTEM,
                    message="stop triggered",
                )
            if result.fill is not None:
                _, created = fill_apply(order_id=order_id, fill=result.fill)
                fills += int(created)
    return fills


def order_get_for_user(*, user, order_id: int) -> Order:
    try:
        return Order.objects.select_related("instrument", "account").get(
            pk=order_id, account__owner=user
        )
    except Order.DoesNotExist:
        raise NotFound("No such order.") from None


def trade_annotate(
    *, trade: Trade, notes: str | None = None, tags: list[str] | None = None
) -> Trade:
    """Set the trader's notes and tags on a journal entry (tags are created on first use)."""
    with transaction.atomic():
        if notes is not None:
            trade.notes = notes
            trade.save(update_fields=["notes", "updated_at"])
        if tags is not None:
            cleaned = []
            for raw in tags:
                name = str(raw).strip().lower()
                if not name:
                    continue
                if len(name) > 50:
                    raise ValidationFailed(
                        "A tag is at most 50 characters.",
                        fields={"tags": "A tag is at most 50 characters."},
                    )
                if name not in cleaned:
                    cleaned.append(name)
            owner = trade.account.owner
            objs = [Tag.objects.get_or_create(owner=owner, name=name)[0] for name in cleaned]
            trade.tags.set(objs)
    return trade
