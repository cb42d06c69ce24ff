"""Reconciliation: the platform's books against the broker's, repaired where that is safe and
flagged where it is not; and the bounded retry of submissions whose outcome is unknown.

Alpaca accounts (``account_reconcile``): the open and recent platform orders are compared with
Alpaca's orders (``get_orders`` over the look-back window, single reads for older open ones)
and every difference Alpaca's side explains is applied through ``broker_order_apply``: missed
fills, cancels, expiries, rejections, replacements; each repair writes an ``OrderEvent``
(source ``system``) saying so. An order still ``submitted`` that Alpaca has never seen is marked
rejected once ``RECONCILE_SUBMITTED_GRACE_SECONDS`` have passed (sending a minutes-old order
now could trade at a price nobody decided on). Then positions are compared; what cannot be
repaired (a position that differs, an order Alpaca no longer knows, fills that could not be
booked, an open order at Alpaca the platform never placed) becomes a ``ReconciliationFinding``
with a severity and a ``system_alert`` notification to the owner.

Paper accounts: the platform is the broker, so the books are checked against themselves: each
position's quantity is the signed sum of its fills, cash is the initial cash plus the signed
fill flows less commissions, each order's filled quantity is the sum of its fills. An order
stuck in ``submitted`` past the grace period (a crash between storing and matching it) is
marked rejected. Everything else is flagged.

Every run is idempotent: repairs find nothing left to repair the second time, an open finding
seen again is counted (one per account and key), and findings no longer seen are resolved.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import TradingAccount
from apps.execution.brokers import BrokerError, broker_for
from apps.execution.brokers.alpaca import (
    AlpacaBroker,
    BrokerOrderView,
    client_order_id_root,
    fill_id_prefix,
)
from apps.execution.domain.positions import q_money
from apps.execution.models import (
    OPEN_STATUSES,
    Fill,
    Order,
    OrderEvent,
    OrderSource,
    OrderStatus,
    Position,
    ReconciliationFinding,
)
from apps.execution.trade_updates import broker_order_apply, plain

logger = logging.getLogger(__name__)

Kind = ReconciliationFinding.Kind
Severity = ReconciliationFinding.Severity


# --- one order at a time --------------------------------------------------------------------


@contextmanager
def order_guard(order_id: int, *, seconds: int = 120) -> Iterator[bool]:
    """A short cache lock per order for the paths that ask the broker and then act (retry,
    rejection by reconciliation), so two of them never both decide to send or to give up.
    No database lock is held while the broker is called."""
    key = f"execution:order-guard:{order_id}"
    token = uuid.uuid4().hex
    acquired = cache.add(key, token, seconds)
    try:
        yield acquired
    finally:
        if acquired and cache.get(key) == token:
            cache.delete(key)


# --- submissions whose answer was lost --------------------------------------------------------


def submission_retry_delay(attempt: int) -> float:
    base = settings.ALPACA_SUBMIT_RETRY_BASE_SECONDS
    return min(base * 2 ** max(0, attempt - 1), settings.ALPACA_SUBMIT_RETRY_MAX_DELAY_SECONDS)


def submission_retry_schedule(*, order_id: int, attempt: int) -> None:
    """Queue attempt ``attempt`` of ``retry_submission`` after the current transaction."""
    from apps.execution.tasks import retry_submission

    delay = submission_retry_delay(attempt)
    transaction.on_commit(
        lambda: retry_submission.apply_async((order_id, attempt), countdown=delay), robust=True
    )


def _system_note(order: Order, message: str, data: dict | None = None) -> None:
    OrderEvent.objects.create(
        order=order,
        at=timezone.now(),
        from_status=order.status,
        to_status=order.status,
        source=OrderSource.SYSTEM,
        message=message,
        data=data or {},
    )


def order_submission_retry(*, order_id: int, attempt: int = 1) -> str:
    """Find out what became of a submission whose answer was lost, and finish it.

    The broker is asked first, by client order id: if it has the order, its state is applied
    (nothing is sent). Only if it has never seen it is the order sent again, with the same
    client order id (so even a send racing a late first one is refused by the broker as a
    duplicate, and that answer is resolved by reading the order back). Unknown again: the next
    attempt is queued with backoff, up to ``ALPACA_SUBMIT_RETRY_MAX_ATTEMPTS``; after that the
    order is left to reconciliation. Safe to run twice."""
    from apps.execution.services import order_apply_ack

    order = Order.objects.select_related("account", "instrument").get(pk=order_id)
    if order.status != OrderStatus.SUBMITTED or order.broker_order_id:
        return "settled"
    broker = broker_for(order.account)
    if not hasattr(broker, "order_view"):
        return "not supported"
    with order_guard(order.pk) as mine:
        if not mine:
            return "busy"
        order.refresh_from_db()
        if order.status != OrderStatus.SUBMITTED or order.broker_order_id:
            return "settled"
        try:
            view = broker.order_view(order)
        except BrokerError as exc:
            return _retry_later(order, attempt, str(exc), permanent=not exc.transient)
        if view is not None:
            broker_order_apply(order_id=order.pk, view=view, origin="retry")
            _system_note(
                order,
                f"submission retry: Alpaca had the order (broker order {view.broker_order_id}, "
                f"{view.status}); nothing was sent again",
                {"attempt": attempt, "broker_order_id": view.broker_order_id},
            )
            return "found"
        _system_note(
            order,
            f"submission retry: Alpaca has never seen the order; sending it again with the same "
            f"client order id (attempt {attempt})",
            {"attempt": attempt},
        )
        try:
            ack = broker.submit_order(order)
        except BrokerError as exc:
            if exc.transient:
                return _retry_later(order, attempt, str(exc))
            order_apply_ack(order_id=order.pk, ack=_refused(exc))
            return "rejected"
        order_apply_ack(order_id=order.pk, ack=ack)
        return "sent"


def _refused(exc: BrokerError):
    from apps.execution.brokers import SubmitAck

    return SubmitAck(False, reason=str(exc))


def _retry_later(order: Order, attempt: int, reason: str, *, permanent: bool = False) -> str:
    if permanent or attempt >= settings.ALPACA_SUBMIT_RETRY_MAX_ATTEMPTS:
        _system_note(
            order,
            f"submission retry gave up after attempt {attempt} ({reason}); "
            "reconciliation will settle the order",
            {"attempt": attempt},
        )
        return "left for reconciliation"
    _system_note(
        order,
        f"submission retry: outcome still unknown ({reason}); trying again",
        {"attempt": attempt},
    )
    submission_retry_schedule(order_id=order.pk, attempt=attempt + 1)
    return "retry queued"


# --- findings -------------------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    account_id: int
    repairs: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # keys seen this run
    complete: bool = True

    def summary(self) -> dict:
        return {
            "account": self.account_id,
            "repairs": len(self.repairs),
            "findings": len(self.findings),
            "complete": self.complete,
        }


NOTIFY_SEVERITY = {Severity.WARNING: "warning", Severity.CRITICAL: "critical"}


def finding_raise(
    *,
    account: TradingAccount,
    report: ReconcileReport,
    key: str,
    kind: str,
    severity: str,
    message: str,
    order: Order | None = None,
    data: dict | None = None,
    now: datetime | None = None,
) -> tuple[ReconciliationFinding, bool]:
    """Record a finding (or count it again); a new warning or critical one alerts the owner."""
    now = now or timezone.now()
    report.findings.append(key)
    with transaction.atomic():
        existing = (
            ReconciliationFinding.objects.select_for_update()
            .filter(account=account, key=key, resolved_at__isnull=True)
            .first()
        )
        if existing is not None:
            existing.last_seen_at = now
            existing.seen_count += 1
            existing.message, existing.severity, existing.data = message, severity, data or {}
            existing.save(
                update_fields=["last_seen_at", "seen_count", "message", "severity", "data"]
            )
            return existing, False
        try:
            with transaction.atomic():
                finding = ReconciliationFinding.objects.create(
                    account=account,
                    order=order,
                    kind=kind,
                    severity=severity,
                    key=key,
                    message=message,
                    data=data or {},
                    first_seen_at=now,
                    last_seen_at=now,
                )
        except IntegrityError:  # raised concurrently by another run
            return ReconciliationFinding.objects.get(
                account=account, key=key, resolved_at__isnull=True
            ), False
        if severity in NOTIFY_SEVERITY:
            _alert(account=account, finding=finding)
    logger.warning("reconciliation finding on account %s: %s", account.pk, message)
    return finding, True


def _alert(*, account: TradingAccount, finding: ReconciliationFinding) -> None:
    from apps.execution.services import _notify

    link = reverse("execution:order_detail", args=[finding.order_id]) if finding.order_id else ""
    _notify(
        user_id=account.owner_id,
        type="system_alert",
        severity=NOTIFY_SEVERITY[finding.severity],
        title=f"{account.name}: {finding.get_kind_display().lower()}",
        body=finding.message,
        link=link,
        data={"finding": finding.pk, "account": account.pk, "kind": finding.kind},
        dedupe_key=f"reconciliation-finding-{finding.pk}",
    )


def findings_settle(*, account: TradingAccount, report: ReconcileReport, now: datetime) -> int:
    """Resolve the account's open findings this (complete) run no longer saw."""
    if not report.complete:
        return 0
    return (
        ReconciliationFinding.objects.filter(account=account, resolved_at__isnull=True)
        .exclude(key__in=report.findings)
        .update(resolved_at=now, resolution="no longer seen by reconciliation")
    )


def finding_resolve(*, finding: ReconciliationFinding, resolution: str) -> ReconciliationFinding:
    """An operator closes a finding by hand (it comes back if the next run sees it again)."""
    if finding.resolved_at is None:
        finding.resolved_at = timezone.now()
        finding.resolution = resolution[:255]
        finding.save(update_fields=["resolved_at", "resolution"])
    return finding


# --- the runs -------------------------------------------------------------------------------------


def accounts_to_reconcile() -> list[int]:
    return list(TradingAccount.objects.order_by("id").values_list("pk", flat=True))


def account_reconcile(*, account_id: int, now: datetime | None = None) -> ReconcileReport:
    """Reconcile one account (see the module docstring). Safe to run twice, or at once."""
    now = now or timezone.now()
    account = TradingAccount.objects.select_related("owner").get(pk=account_id)
    report = ReconcileReport(account.pk)
    if account.broker == TradingAccount.Broker.ALPACA:
        _reconcile_alpaca(account, report, now)
    else:
        _check_paper(account, report, now)
    findings_settle(account=account, report=report, now=now)
    if report.repairs:
        logger.info("reconciliation repaired account %s: %s", account.pk, report.repairs)
    return report


def _grace() -> timedelta:
    return timedelta(seconds=settings.RECONCILE_SUBMITTED_GRACE_SECONDS)


def _reject_unsent(order: Order, report: ReconcileReport, now: datetime, why: str) -> None:
    """Mark an order that never reached the broker rejected (under the order guard, so a
    retry cannot send it meanwhile)."""
    from apps.execution.services import _lock_order, order_transition

    with order_guard(order.pk) as mine:
        if not mine:
            return
        with transaction.atomic():
            locked = _lock_order(order.pk)
            if locked.status != OrderStatus.SUBMITTED or locked.broker_order_id:
                return
            order_transition(
                order=locked,
                to_status=OrderStatus.REJECTED,
                source=OrderSource.SYSTEM,
                message=f"reconciliation: {why}; marked rejected",
                at=now,
            )
    report.repairs.append(f"order {order.pk} rejected: {why}")


def _reconcile_alpaca(account: TradingAccount, report: ReconcileReport, now: datetime) -> None:
    broker = AlpacaBroker(account)
    since = now - timedelta(hours=settings.RECONCILE_LOOKBACK_HOURS)
    try:
        views = broker.recent_orders(after=since)
    except BrokerError as exc:
        report.complete = False
        finding_raise(
            account=account,
            report=report,
            key="broker-unavailable",
            kind=Kind.BROKER_UNAVAILABLE,
            severity=Severity.WARNING if exc.transient else Severity.CRITICAL,
            message=f"Reconciliation could not ask Alpaca: {exc}",
            now=now,
        )
        return

    by_client: dict[str, list[BrokerOrderView]] = defaultdict(list)
    for view in views:
        by_client[view.client_order_id].append(view)
        root = client_order_id_root(view.client_order_id)
        if root != view.client_order_id:
            by_client[root].append(view)

    orders = list(
        Order.objects.filter(account=account)
        .filter(Q(status__in=OPEN_STATUSES) | Q(updated_at__gte=since))
        .select_related("instrument")
        .order_by("id")
    )
    claimed: set[str] = set()
    for order in orders:
        mine = sorted(
            {v.broker_order_id: v for v in by_client.get(order.client_order_id, [])}.values(),
            key=lambda v: (v.submitted_at or now, v.broker_order_id),
        )
        claimed.update(v.broker_order_id for v in mine)
        try:
            if not mine and order.is_open:
                found = broker.order_view(order)
                mine = [found] if found is not None else []
        except BrokerError as exc:
            report.complete = False
            logger.warning("reconciliation could not read order %s: %s", order.pk, exc)
            continue
        if not mine:
            _alpaca_order_unseen(account, order, report, now)
            continue
        for view in mine:
            applied = broker_order_apply(
                order_id=order.pk, view=view, at=now, origin="reconciliation"
            )
            report.repairs.extend(f"order {order.pk}: {c}" for c in applied.changes)
        _alpaca_order_check(account, order, mine, report, now)

    _unknown_broker_orders(account, views, claimed, report, now)
    _alpaca_positions_check(account, broker, report, now)


def _alpaca_order_unseen(
    account: TradingAccount, order: Order, report: ReconcileReport, now: datetime
) -> None:
    if not order.is_open:
        return
    if order.status == OrderStatus.SUBMITTED and not order.broker_order_id:
        if order.submitted_at and now - order.submitted_at >= _grace():
            _reject_unsent(
                order,
                report,
                now,
                f"Alpaca has no order with client order id {order.client_order_id} "
                f"{int((now - order.submitted_at).total_seconds())} s after it was submitted",
            )
        return
    finding_raise(
        account=account,
        report=report,
        key=f"order-missing:{order.pk}",
        kind=Kind.ORDER_MISSING,
        severity=Severity.CRITICAL,
        message=(
            f"Order #{order.pk} ({order.side} {plain(order.quantity)} "
            f"{order.instrument.symbol}) is {order.status} on the platform but Alpaca does not "
            f"know broker order {order.broker_order_id or order.client_order_id}."
        ),
        order=order,
        now=now,
    )


def _alpaca_order_check(
    account: TradingAccount,
    order: Order,
    views: list[BrokerOrderView],
    report: ReconcileReport,
    now: datetime,
) -> None:
    """After the repairs: whatever still differs is flagged."""
    order.refresh_from_db()
    problems = []
    for view in views:
        booked = Fill.objects.filter(
            order=order, broker_fill_id__startswith=fill_id_prefix(view.broker_order_id)
        ).aggregate(q=Sum("quantity"))["q"] or Decimal("0")
        if booked != view.filled_quantity:
            problems.append(
                f"broker order {view.broker_order_id} has {plain(view.filled_quantity)} "
                f"filled at Alpaca, {plain(booked)} booked"
            )
    current = next((v for v in views if v.broker_order_id == order.broker_order_id), None)
    if current is not None and not current.is_open and order.is_open:
        problems.append(f"Alpaca says {current.status}, the platform {order.status}")
    if current is not None and current.is_open and not order.is_open:
        problems.append(f"Alpaca still works the order, the platform has it {order.status}")
    if not problems:
        return
    finding_raise(
        account=account,
        report=report,
        key=f"order-mismatch:{order.pk}",
        kind=Kind.ORDER_MISMATCH,
        severity=Severity.CRITICAL,
        message=f"Order #{order.pk} ({order.instrument.symbol}): " + "; ".join(problems) + ".",
        order=order,
        data={"problems": problems},
        now=now,
    )


def _unknown_broker_orders(
    account: TradingAccount,
    views: list[BrokerOrderView],
    claimed: set[str],
    report: ReconcileReport,
    now: datetime,
) -> None:
    unclaimed = [v for v in views if v.broker_order_id not in claimed and v.is_open]
    if not unclaimed:
        return
    ids = {v.client_order_id for v in unclaimed} | {
        client_order_id_root(v.client_order_id) for v in unclaimed
    }
    known = set(
        Order.objects.filter(account=account, client_order_id__in=ids).values_list(
            "client_order_id", flat=True
        )
    )
    for view in unclaimed:
        if view.client_order_id in known or client_order_id_root(view.client_order_id) in known:
            continue
        finding_raise(
            account=account,
            report=report,
            key=f"unknown-order:{view.broker_order_id}",
            kind=Kind.UNKNOWN_BROKER_ORDER,
            severity=Severity.WARNING,
            message=(
                f"Alpaca works an order the platform did not place: {view.side} "
                f"{plain(view.quantity or Decimal(0))} {view.symbol} "
                f"(broker order {view.broker_order_id}, {view.status})."
            ),
            data={"broker_order_id": view.broker_order_id},
            now=now,
        )


def _alpaca_positions_check(
    account: TradingAccount, broker: AlpacaBroker, report: ReconcileReport, now: datetime
) -> None:
    try:
        theirs = {p.symbol: p.quantity for p in broker.positions()}
    except BrokerError as exc:
        report.complete = False
        logger.warning("reconciliation could not read positions of %s: %s", account.pk, exc)
        return
    ours = {
        symbol: quantity
        for symbol, quantity in Position.objects.filter(account=account)
        .exclude(quantity=0)
        .values_list("instrument__symbol", "quantity")
    }
    for symbol in sorted(set(theirs) | set(ours)):
        mine, alpaca = ours.get(symbol, Decimal("0")), theirs.get(symbol, Decimal("0"))
        if mine == alpaca:
            continue
        finding_raise(
            account=account,
            report=report,
            key=f"position:{symbol}",
            kind=Kind.POSITION_MISMATCH,
            severity=Severity.CRITICAL,
            message=(f"{symbol}: the platform holds {plain(mine)}, Alpaca {plain(alpaca)}."),
            data={"symbol": symbol, "platform": str(mine), "alpaca": str(alpaca)},
            now=now,
        )


def _check_paper(account: TradingAccount, report: ReconcileReport, now: datetime) -> None:
    """The paper book against itself."""
    signed_by_instrument: dict[int, Decimal] = defaultdict(Decimal)
    symbols: dict[int, str] = {}
    cash = account.initial_cash
    fills = (
        Fill.objects.filter(account=account)
        .values_list(
            "instrument_id", "instrument__symbol", "side", "quantity", "price", "commission"
        )
        .order_by("id")
    )
    for instrument_id, symbol, side, quantity, price, commission in fills.iterator():
        signed = quantity if side == "buy" else -quantity
        signed_by_instrument[instrument_id] += signed
        symbols[instrument_id] = symbol
        # Each fill moves cash by the same rounded amount the accounting books.
        cash += q_money(-signed * price - commission)

    positions = {
        instrument_id: (symbol, quantity)
        for instrument_id, symbol, quantity in Position.objects.filter(account=account).values_list(
            "instrument_id", "instrument__symbol", "quantity"
        )
    }
    for instrument_id in sorted(set(positions) | set(signed_by_instrument)):
        symbol, held = positions.get(instrument_id, (symbols.get(instrument_id), Decimal("0")))
        expected = signed_by_instrument.get(instrument_id, Decimal("0"))
        if held != expected:
            finding_raise(
                account=account,
                report=report,
                key=f"position:{symbol}",
                kind=Kind.POSITION_MISMATCH,
                severity=Severity.CRITICAL,
                message=(
                    f"{symbol}: the position holds {plain(held)} but its fills add up to "
                    f"{plain(expected)}."
                ),
                data={"symbol": symbol, "position": str(held), "fills": str(expected)},
                now=now,
            )

    account.refresh_from_db(fields=["cash"])
    if account.cash != cash:
        finding_raise(
            account=account,
            report=report,
            key="cash",
            kind=Kind.CASH_MISMATCH,
            severity=Severity.CRITICAL,
            message=(
                f"Cash is {account.cash} but the initial {account.initial_cash} and the fills "
                f"since give {cash}."
            ),
            data={"cash": str(account.cash), "expected": str(cash)},
            now=now,
        )

    mismatched = (
        Order.objects.filter(account=account)
        .annotate(booked=Sum("fills__quantity"))
        .filter(~Q(filled_quantity=0) | Q(booked__isnull=False))
        .select_related("instrument")
    )
    for order in mismatched:
        booked = order.booked or Decimal("0")
        if booked == order.filled_quantity:
            continue
        finding_raise(
            account=account,
            report=report,
            key=f"order-fills:{order.pk}",
            kind=Kind.FILLS_MISMATCH,
            severity=Severity.CRITICAL,
            message=(
                f"Order #{order.pk} ({order.instrument.symbol}) says "
                f"{plain(order.filled_quantity)} filled but its fills add up to "
                f"{plain(booked)}."
            ),
            order=order,
            now=now,
        )

    stuck = Order.objects.filter(
        account=account, status=OrderStatus.SUBMITTED, submitted_at__lte=now - _grace()
    ).order_by("id")
    for order in stuck:
        _reject_unsent(order, report, now, "the paper book never received the order")
