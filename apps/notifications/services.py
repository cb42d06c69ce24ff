"""Every write of notifications: ``notify()`` (the entry point of every other app), the
delivery of one outbox row, read marks, preferences, push subscriptions and daily summaries.

The contract other apps call
----------------------------
::

    notify(*, user, type, title, body="", severity=None, data=None, link="",
           dedupe_key=None) -> Notification | None

- ``user``: the ``User`` (or its id) the notification is for; only they ever see it.
- ``type``: a ``NotificationType`` value (``"order_filled"``, ``"risk_breach"``, ...). Anything
  else raises ``ValidationFailed`` (code ``unknown_notification_type``).
- ``severity``: one of ``Severity``; ``None`` takes the type's default (``risk_breach`` and
  ``system_alert`` are ``critical``).
- ``data``: JSON-serialisable details (ids, symbols, amounts; Decimals and datetimes are fine);
  e-mail templates and webhooks read them.
- ``link``: where the notification leads, a site path such as ``/trading/orders/12/``.
- ``dedupe_key``: a caller that may run twice (a retried task) passes a key unique for the
  event, e.g. ``f"order:{order.id}:filled"``; a second call with the same key for the same user
  writes nothing and returns ``None`` (a unique constraint decides, also under races).

It writes the ``Notification`` and one ``Delivery`` per channel the trader enabled for the type
and can be reached on (the outbox) inside the caller's transaction: roll back and nothing was
notified. The deliveries are queued to Celery after the commit, by id. Call it from services,
inside the transaction that made the event happen.

How a delivery is sent exactly once (as far as a receiver can tell)
-------------------------------------------------------------------
``delivery_attempt`` claims the row and moves it to ``sending`` with a fresh claim token: one
conditional ``UPDATE`` for in-app, push and webhook rows (a task's in-app rows together), a
short transaction holding the row and the trader's row (``SELECT ... FOR NO KEY UPDATE``) for
e-mail, whose rate limit counts the trader's sends. Two workers (or a task run twice) never
send the same delivery. It marks ``sent`` only after the transport returned, and
only if its claim token still holds. A worker that dies in between leaves ``sending``; the
periodic sweep (``deliveries_dispatch_due``) hands such rows back after
``NOTIFICATIONS_SENDING_TIMEOUT_SECONDS``. The resend carries the same Message-ID / delivery id,
so at worst a receiver sees a recognisable duplicate. Temporary failures are retried with
exponential backoff and jitter up to ``NOTIFICATIONS_MAX_ATTEMPTS``; permanent ones keep the
server's answer.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import uuid
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from apps.apikeys.crypto import Secret
from apps.apikeys.fields import reveal
from apps.core import sql
from apps.core.errors import NotFound, ValidationFailed
from apps.core.realtime import broadcast_on_commit
from apps.core.templatetags.trading import user_tz
from apps.notifications import selectors
from apps.notifications.domain import catalog
from apps.notifications.domain.payloads import daily_summary_message
from apps.notifications.domain.schedule import (
    daily_summary_due,
    email_rate_decision,
    next_attempt_at,
    parse_rate,
    quiet_hours_end,
)
from apps.notifications.emails import absolute
from apps.notifications.models import (
    CLAIMABLE_STATUSES,
    Channel,
    Delivery,
    DeliveryStatus,
    HoldReason,
    Notification,
    NotificationPreference,
    NotificationSettings,
    NotificationType,
    PushSubscription,
    Severity,
)
from apps.notifications.transports import (
    OutgoingMessage,
    PermanentFailure,
    RecipientGone,
    TemporaryFailure,
    TransportError,
    get_transport,
)
from apps.notifications.transports.base import truncate
from apps.notifications.transports.webhook import WebhookTarget, check_public_address

logger = logging.getLogger(__name__)
qn = connection.ops.quote_name  # for the statements that run on every database
User = get_user_model()

READ_EVENT = "notifications.read"
# A pending delivery's task is queued at commit; the sweep re-queues one only after this long.
PENDING_GRACE = timedelta(seconds=30)


# --- helpers: one per kind of side effect ----------------------------------------------------


# Deliveries per task: one notification's channels travel together (in-app first), and the
# sweep hands out due rows in chunks, so the per-task overhead is shared.
TASK_BATCH = 10


def _enqueue(delivery_ids: tuple[int, ...], countdown: float | None = None) -> None:
    from apps.notifications.tasks import deliver, deliver_many

    if len(delivery_ids) == 1:
        deliver.apply_async((delivery_ids[0],), countdown=countdown)
        return
    for start in range(0, len(delivery_ids), TASK_BATCH):
        deliver_many.apply_async(
            (list(delivery_ids[start : start + TASK_BATCH]),), countdown=countdown
        )


def deliver_on_commit(delivery_ids: Iterable[int], *, countdown: float | None = None) -> None:
    """Queue the delivery tasks (ids only) once the current transaction commits.

    The deliveries of every ``notify()`` in one transaction (a fill tells of the order and of
    the position) leave together: the first call registers the hook, later ones add their ids
    to it, so one task (per ``TASK_BATCH`` rows) carries them. Only a hook registered at the
    same savepoint level is joined (one that a rolled-back savepoint discarded is gone, and
    a nested savepoint may still roll back on its own).

    ``robust``: a broker that is down must not break the caller after its commit; the sweep
    picks the rows up later."""
    ids = tuple(delivery_ids)
    if not ids:
        return
    conn = transaction.get_connection()
    if countdown is None and conn.in_atomic_block:
        pending = getattr(conn, "_pending_deliveries", None)
        here = set(conn.savepoint_ids)
        if pending is not None and any(
            hook is pending and sids == here for sids, hook, _ in conn.run_on_commit
        ):
            pending.ids.extend(ids)
            return
        hook = _enqueue_later(ids, None)
        conn._pending_deliveries = hook
        transaction.on_commit(hook, robust=True)
        return
    transaction.on_commit(_enqueue_later(ids, countdown), robust=True)


def _enqueue_later(ids: tuple[int, ...], countdown: float | None) -> Callable[[], None]:
    # A named function: Django logs a failing robust hook by its __qualname__.
    pending = list(ids)

    def enqueue_deliveries() -> None:
        _enqueue(tuple(pending), countdown)

    enqueue_deliveries.ids = pending  # type: ignore[attr-defined]
    return enqueue_deliveries


def _user_of(user: Any):
    """The user row: as given when it was loaded from the database; fetched when the caller
    passed an id or a bare ``User(pk=...)`` (whose e-mail and time zone are not known)."""
    if isinstance(user, User) and not user._state.adding:
        return user
    return User.objects.get(pk=getattr(user, "pk", user))


def _recipient(user: Any, type: str) -> tuple[Any, dict[str, bool]]:
    """The user with everything planning needs, and their channel choices for ``type``.

    notify() runs inside trading transactions, so this is ONE query: the user, the settings
    row (joined), whether any browser is subscribed to push, and the type's preference rows.
    """
    user_id = getattr(user, "pk", user)
    if not sql.is_postgresql():  # the embedded default: the plain ORM will do
        row = (
            User.objects.select_related("notification_settings")
            .annotate(has_push=Exists(PushSubscription.objects.filter(user_id=OuterRef("pk"))))
            .get(pk=user_id)
        )
        return row, selectors.channel_preferences(user=row, type=type)
    values = sql.fetchone(
        f"SELECT {sql.columns('u', User)}, {sql.columns('s', NotificationSettings)}, "
        f"EXISTS (SELECT 1 FROM {sql.table(PushSubscription)} p WHERE p.user_id = u.id), "
        "(SELECT json_object_agg(c.channel, c.enabled) "
        f"FROM {sql.table(NotificationPreference)} c WHERE c.user_id = u.id AND c.type = %s) "
        f"FROM {sql.table(User)} u "
        f"LEFT JOIN {sql.table(NotificationSettings)} s ON s.user_id = u.id WHERE u.id = %s",
        [type, user_id],
    )
    if values is None:
        raise User.DoesNotExist(f"No user with id {user_id}.")
    row, settings_row = sql.instances(values[:-2], User, NotificationSettings)
    row._state.fields_cache["notification_settings"] = settings_row
    row.has_push, chosen = values[-2], values[-1]
    if isinstance(chosen, str):
        chosen = json.loads(chosen)
    return row, selectors.channel_preferences_from(type=type, chosen=chosen or {})


# --- notify ----------------------------------------------------------------------------------


def notify(
    *,
    user,
    type: str,
    title: str,
    body: str = "",
    severity: str | None = None,
    data: dict | None = None,
    link: str = "",
    dedupe_key: str | None = None,
) -> Notification | None:
    """Tell ``user`` about an event on every channel they enabled. See the module docstring."""
    if type not in NotificationType.values:
        raise ValidationFailed(
            f"Unknown notification type {type!r}.",
            code="unknown_notification_type",
            fields={"type": f"Must be one of: {', '.join(NotificationType.values)}."},
        )
    severity = severity or catalog.default_severity(type).value
    if severity not in Severity.values:
        raise ValidationFailed(
            f"Unknown severity {severity!r}.", code="invalid", fields={"severity": "Unknown."}
        )
    title = " ".join((title or "").split())[:200]
    if not title:
        raise ValidationFailed("A notification needs a title.", fields={"title": "Required."})
    user, prefs = _recipient(user, type)
    now = timezone.now()
    notification = Notification(
        user=user,
        type=type,
        severity=severity,
        title=title,
        body=body or "",
        data=data or {},
        link=link or "",
        dedupe_key=dedupe_key or None,
        created_at=now,
    )
    with transaction.atomic(savepoint=False):
        # The unique dedupe key refuses a second row without an error (no savepoint in the
        # caller's transaction on PostgreSQL): an earlier or concurrent call won.
        if not sql.insert(notification, skip_conflicts=bool(dedupe_key)):
            return None
        deliveries = _plan_deliveries(user=user, notification=notification, now=now, prefs=prefs)
        Delivery.objects.bulk_create(deliveries)
        deliver_on_commit(d.pk for d in deliveries if d.status == DeliveryStatus.PENDING)
        held = [d for d in deliveries if d.status == DeliveryStatus.SCHEDULED]
        if held:  # wake up when the quiet hours end (the sweep would too)
            countdown = max(0.0, (held[0].next_attempt_at - now).total_seconds())
            deliver_on_commit((d.pk for d in held), countdown=countdown)
    return notification


def _plan_deliveries(
    *, user, notification: Notification, now: datetime, prefs: dict[str, bool]
) -> list[Delivery]:
    """One delivery per channel that is enabled for the type and has somewhere to go."""
    row = selectors.notification_settings_or_default(user=user)
    quiet_end = None
    if row.quiet_hours_enabled and not notification.critical:
        quiet_end = quiet_hours_end(
            now=now, tz=user_tz(user), start=row.quiet_start, end=row.quiet_end
        )
    deliveries = []
    for channel in Channel.values:
        if not prefs[channel] or not selectors.channel_reachable(
            user=user, settings_row=row, channel=channel
        ):
            continue
        held = quiet_end is not None and channel in catalog.INTERRUPTING_CHANNELS
        deliveries.append(
            Delivery(
                notification=notification,
                user=user,
                channel=channel,
                status=DeliveryStatus.SCHEDULED if held else DeliveryStatus.PENDING,
                hold_reason=HoldReason.QUIET_HOURS if held else HoldReason.NONE,
                next_attempt_at=quiet_end if held else now,
                created_at=now,
            )
        )
    return deliveries


def notification_test_send(*, user, channel: str) -> Notification:
    """The preferences page's "send a test": one message on ``channel`` only, now.

    Preferences and quiet hours do not apply (the trader asked for it); a channel without a
    destination is refused with a clear message."""
    if channel not in Channel.values:
        raise ValidationFailed(f"Unknown channel {channel!r}.", fields={"channel": "Unknown."})
    user = _user_of(user)
    row = selectors.notification_settings_or_default(user=user)
    if not selectors.channel_reachable(user=user, settings_row=row, channel=channel):
        raise ValidationFailed(
            selectors.UNREACHABLE_MESSAGES[channel], code="channel_not_configured"
        )
    now = timezone.now()
    label = Channel(channel).label
    with transaction.atomic(savepoint=False):
        notification = Notification.objects.create(
            user=user,
            type=NotificationType.TEST,
            severity=Severity.INFO,
            title=f"Test message ({label})",
            body=f"This is a test of your {label} notifications. It works.",
            data={"channel": channel},
            link=reverse("notifications:preferences"),
            created_at=now,
        )
        delivery = Delivery.objects.create(
            notification=notification, user=user, channel=channel, next_attempt_at=now
        )
        deliver_on_commit([delivery.pk])
    return notification


# --- delivering one outbox row -------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    uid: str
    token: uuid.UUID
    channel: str
    attempts: int
    user_id: int
    notification_id: int
    batch_ids: tuple[int, ...] = ()
    progress: dict | None = None
    notification: Notification | None = None  # loaded with its user by the claim
    unread_count: int | None = None  # the trader's badge, read by an in-app claim


class Outcome:
    NOT_DUE = "not_due"
    DEFERRED = "deferred"  # folded into a digest
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"
    LOST_CLAIM = "lost_claim"


def deliveries_attempt(*, delivery_ids: Iterable[int]) -> dict[str, int]:
    """``delivery_attempt`` for each id; one failing row never stops the others (the sweep
    picks it up again).

    On PostgreSQL the task's in-app rows are claimed together in one statement (which also
    tells the channel of the others, so an e-mail row goes straight to its own claim) and sent
    first: they only touch the channel layer, so nothing slow holds their claim."""
    ids = list(delivery_ids)
    outcomes: dict[str, int] = {}

    def record(attempt: Callable[[], str], delivery_id: int) -> None:
        try:
            outcome = attempt()
        except Exception:
            logger.exception("delivery %s could not be attempted", delivery_id)
            outcome = "error"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    claims: dict[int, Claim] = {}
    channels: dict[int, str] = {}
    if len(ids) > 1 and sql.is_postgresql():
        now = timezone.now()
        try:
            claims, channels = _claim_in_app_rows(delivery_ids=ids, now=now)
        except Exception:
            logger.exception("deliveries %s could not be claimed together", ids)
        for delivery_id, claim in claims.items():
            record(lambda claim=claim: _deliver(claim, now), delivery_id)
    for delivery_id in ids:
        if delivery_id not in claims:
            channel = channels.get(delivery_id)
            record(
                lambda i=delivery_id, c=channel: delivery_attempt(delivery_id=i, channel=c),
                delivery_id,
            )
    return outcomes


def delivery_attempt(
    *, delivery_id: int, now: datetime | None = None, channel: str | None = None
) -> str:
    """Claim the delivery if it is due, send it, record the outcome. Safe to run any number
    of times, concurrently too: only the worker holding the claim sends and marks it.
    ``channel``, when the caller knows it, saves the claim that does not apply."""
    now = now or timezone.now()
    claim = _claim(delivery_id=delivery_id, now=now, channel=channel)
    if claim is None or isinstance(claim, str):
        return claim or Outcome.NOT_DUE
    return _deliver(claim, now)


def _deliver(claim: Claim, now: datetime) -> str:
    """Send a claimed delivery and record the outcome."""
    try:
        if claim.channel == Channel.PUSH:
            return _send_push(claim, now)
        message = _outgoing_message(claim)
        if message is None:
            return _finish(claim, DeliveryStatus.SKIPPED, now, error=_unreachable_reason(claim))
        get_transport(claim.channel).send(message)
    except TransportError as exc:
        return _failed(claim, exc, now)
    except Exception as exc:  # a bug or an outage we did not foresee: retry, keep the trace
        logger.exception("delivery %s failed unexpectedly", claim.delivery_id)
        return _failed(claim, TemporaryFailure("Unexpected error", answer=repr(exc)), now)
    return _finish(claim, DeliveryStatus.SENT, now)


def _claim(*, delivery_id: int, now: datetime, channel: str | None = None) -> Claim | str | None:
    """Take the delivery for this worker, if it is due and nobody else has it.

    In-app, push and webhook rows: one conditional UPDATE (the database serialises two
    workers on the row; the loser updates nothing). E-mail rows: under a lock on the
    trader's row, because the rate limit decides on the e-mails sent so far."""
    token = uuid.uuid4()
    if channel != Channel.EMAIL:
        claim = _claim_by_update(delivery_id=delivery_id, now=now, token=token)
        if claim is not None or channel is not None:
            return claim
    return _claim_email(delivery_id=delivery_id, now=now, token=token)


# The hot path, written out in SQL: every delivery runs these statements, and through the ORM
# each costs about 0.7 ms of Python to build (measured), against 0.15 ms written out: a third
# of a worker's time per delivery. What they do is simple enough to read as SQL.

_NOTIFICATION_COLUMNS = [f.column for f in Notification._meta.concrete_fields]


def _claim_by_update(*, delivery_id: int, now: datetime, token: uuid.UUID) -> Claim | None:
    """Claim an in-app, push or webhook row with one conditional UPDATE (the database
    serialises two workers on the row; the loser updates nothing), returning the row and
    its notification."""
    if not sql.is_postgresql():  # the embedded default: the plain ORM will do
        return _claim_by_update_portable(delivery_id=delivery_id, now=now, token=token)
    row = sql.fetchone(
        f"UPDATE {sql.table(Delivery)} AS d SET status = %s, claim_token = %s, claimed_at = %s, "
        f"attempts = d.attempts + 1, updated_at = %s FROM {sql.table(Notification)} AS n "
        "WHERE d.id = %s AND n.id = d.notification_id AND d.status IN (%s, %s, %s) "
        "AND d.next_attempt_at <= %s AND d.batched_into_id IS NULL AND d.channel <> %s "
        f"RETURNING d.uid, d.channel, d.attempts, d.user_id, d.progress, "
        f"{sql.columns('n', Notification)}",
        [
            DeliveryStatus.SENDING,
            token,
            now,
            now,
            delivery_id,
            *CLAIMABLE_STATUSES,
            now,
            Channel.EMAIL,
        ],
    )
    if row is None:
        return None
    uid, channel, attempts, user_id, progress, *values = row
    return _claim_from_row(delivery_id, token, channel, (uid, attempts, user_id, progress), values)


def _claim_from_row(
    delivery_id: int,
    token: uuid.UUID,
    channel: str,
    delivery: tuple[Any, int, int, Any],
    notification_values: list[Any],
    unread_count: int | None = None,
) -> Claim:
    """A claim from a claiming statement's row: the delivery's uid, attempts, user and raw
    progress, and the notification's columns."""
    uid, attempts, user_id, progress = delivery
    notification = sql.instance(Notification, notification_values)
    progress = Delivery._meta.get_field("progress").from_db_value(progress, None, connection)
    return Claim(
        delivery_id=delivery_id,
        uid=str(uid),
        token=token,
        channel=channel,
        attempts=attempts,
        user_id=user_id,
        notification_id=notification.pk,
        progress=dict(progress or {}),
        notification=notification,
        unread_count=unread_count,
    )


def _claim_by_update_portable(*, delivery_id: int, now: datetime, token: uuid.UUID) -> Claim | None:
    claimed = (
        Delivery.objects.filter(
            pk=delivery_id,
            status__in=CLAIMABLE_STATUSES,
            next_attempt_at__lte=now,
            batched_into__isnull=True,
        )
        .exclude(channel=Channel.EMAIL)
        .update(
            status=DeliveryStatus.SENDING,
            claim_token=token,
            claimed_at=now,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    )
    if not claimed:
        return None
    row = Delivery.objects.select_related("notification").get(pk=delivery_id)
    return Claim(
        delivery_id=row.pk,
        uid=str(row.uid),
        token=token,
        channel=row.channel,
        attempts=row.attempts,
        user_id=row.user_id,
        notification_id=row.notification_id,
        progress=dict(row.progress or {}),
        notification=row.notification,
    )


def _claim_in_app_rows(
    *, delivery_ids: list[int], now: datetime
) -> tuple[dict[int, Claim], dict[int, str]]:
    """Claim every due in-app row among ``delivery_ids`` in one statement (PostgreSQL), with
    the notification and the trader's unread count; returns the claims and the channel of
    every row that exists."""
    # The claimed rows' columns under names of their own (the CTE returns two tables' ids).
    returned = ", ".join(f"n.{sql.quote(c)} AS n_{c}" for c in _NOTIFICATION_COLUMNS)
    selected = ", ".join(f"c.n_{c}" for c in _NOTIFICATION_COLUMNS)
    token = uuid.uuid4()
    rows = sql.fetchall(
        "WITH claimed AS ("
        f"UPDATE {sql.table(Delivery)} AS d SET status = %s, claim_token = %s, claimed_at = %s, "
        f"attempts = d.attempts + 1, updated_at = %s FROM {sql.table(Notification)} AS n "
        "WHERE d.id = ANY(%s) AND n.id = d.notification_id AND d.channel = %s "
        "AND d.status IN (%s, %s, %s) AND d.next_attempt_at <= %s "
        "AND d.batched_into_id IS NULL "
        "RETURNING d.id AS d_id, d.uid AS d_uid, d.attempts AS d_attempts, "
        f"d.user_id AS d_user_id, d.progress AS d_progress, {returned}) "
        "SELECT x.id, x.channel, c.d_uid, c.d_attempts, c.d_user_id, c.d_progress, "
        f"(SELECT count(*) FROM {sql.table(Notification)} AS r "
        "WHERE r.user_id = c.d_user_id AND r.read_at IS NULL), "
        f"{selected} FROM {sql.table(Delivery)} AS x LEFT JOIN claimed AS c ON c.d_id = x.id "
        "WHERE x.id = ANY(%s)",
        [
            DeliveryStatus.SENDING,
            token,
            now,
            now,
            delivery_ids,
            Channel.IN_APP,
            *CLAIMABLE_STATUSES,
            now,
            delivery_ids,
        ],
    )
    claims: dict[int, Claim] = {}
    channels: dict[int, str] = {}
    for delivery_id, channel, uid, attempts, user_id, progress, unread, *values in rows:
        channels[delivery_id] = channel
        if uid is not None:
            claims[delivery_id] = _claim_from_row(
                delivery_id, token, channel, (uid, attempts, user_id, progress), values, unread
            )
    # In the order the caller gave (a notification's rows are queued in-app first).
    ordered = {i: claims[i] for i in dict.fromkeys(delivery_ids) if i in claims}
    return ordered, channels


def _token_param(token: uuid.UUID):
    # A UUID column is uuid in PostgreSQL and char(32) in SQLite.
    return Delivery._meta.get_field("claim_token").get_db_prep_value(token, connection)


def _mark_sent_by_update(claim: Claim, now: datetime) -> int:
    """The common outcome, compare-and-set on the claim token."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(Delivery._meta.db_table)} SET status = %s, claim_token = NULL, "
            "sent_at = %s, updated_at = %s WHERE id = %s AND claim_token = %s AND status = %s",
            [
                DeliveryStatus.SENT,
                now,
                now,
                claim.delivery_id,
                _token_param(claim.token),
                DeliveryStatus.SENDING,
            ],
        )
        return cursor.rowcount


def _claim_email(*, delivery_id: int, now: datetime, token: uuid.UUID) -> Claim | str | None:
    with transaction.atomic():
        # The row and the trader's row locked in one statement: one trader's e-mail decisions
        # happen one at a time (the rate limit counts sends). A worker that finds the row
        # locked waits, then sees it claimed (the condition is checked again) and leaves it.
        row = _email_row_locked(delivery_id=delivery_id, now=now)
        if row is None:
            return None
        batch_ids: tuple[int, ...] = ()
        if row.hold_reason == HoldReason.DIGEST:
            batch_ids = _gather_digest(row)
        elif row.attempts == 0 and _fold_into_digest(row, now):
            return Outcome.DEFERRED
        Delivery.objects.filter(pk=row.pk).update(
            status=DeliveryStatus.SENDING,
            claim_token=token,
            claimed_at=now,
            attempts=row.attempts + 1,
            is_digest=bool(batch_ids),
            updated_at=now,
        )
    return Claim(
        delivery_id=row.pk,
        uid=str(row.uid),
        token=token,
        channel=row.channel,
        attempts=row.attempts + 1,
        user_id=row.user_id,
        notification_id=row.notification_id,
        batch_ids=batch_ids,
        progress=dict(row.progress or {}),
        notification=row.notification,
    )


def _email_row_locked(*, delivery_id: int, now: datetime) -> Delivery | None:
    """The e-mail row if it is claimable, with its notification, user and settings loaded,
    locked together with the trader's row (``FOR NO KEY UPDATE OF`` both)."""
    if not sql.is_postgresql():  # the embedded default: the plain ORM will do
        return (
            Delivery.objects.select_for_update(of=("self", "notification__user"), no_key=True)
            .filter(
                pk=delivery_id,
                channel=Channel.EMAIL,
                status__in=CLAIMABLE_STATUSES,
                next_attempt_at__lte=now,
                batched_into__isnull=True,
            )
            .select_related("notification__user__notification_settings")
            .first()
        )
    values = sql.fetchone(
        f"SELECT {sql.columns('d', Delivery)}, {sql.columns('n', Notification)}, "
        f"{sql.columns('u', User)}, {sql.columns('s', NotificationSettings)} "
        f"FROM {sql.table(Delivery)} AS d "
        f"JOIN {sql.table(Notification)} AS n ON n.id = d.notification_id "
        f"JOIN {sql.table(User)} AS u ON u.id = n.user_id "
        f"LEFT JOIN {sql.table(NotificationSettings)} AS s ON s.user_id = u.id "
        "WHERE d.id = %s AND d.channel = %s AND d.status IN (%s, %s, %s) "
        "AND d.next_attempt_at <= %s AND d.batched_into_id IS NULL "
        "FOR NO KEY UPDATE OF d, u",
        [delivery_id, Channel.EMAIL, *CLAIMABLE_STATUSES, now],
    )
    if values is None:
        return None
    row, notification, user, settings_row = sql.instances(
        values, Delivery, Notification, User, NotificationSettings
    )
    user._state.fields_cache["notification_settings"] = settings_row
    notification._state.fields_cache["user"] = user
    row._state.fields_cache["notification"] = notification
    return row


def _fold_into_digest(row: Delivery, now: datetime) -> bool:
    """Apply the e-mail rate limit; True when the row now waits for the next digest."""
    rate = parse_rate(settings.NOTIFICATIONS_EMAIL_RATE)
    history = selectors.email_history(
        user_id=row.user_id, since=now - rate.window, exclude_id=row.pk
    )
    pending_at = history.digest_at
    decision = email_rate_decision(
        now=now,
        critical=row.notification.critical,
        recent_sends=history.sent_at,
        rate=rate,
        pending_digest_at=pending_at,
    )
    if decision.send_now:
        return False
    Delivery.objects.filter(pk=row.pk).update(
        status=DeliveryStatus.SCHEDULED,
        hold_reason=HoldReason.DIGEST,
        next_attempt_at=decision.digest_at,
        updated_at=now,
    )
    if pending_at is None:  # this row starts the digest: wake up when it is due
        countdown = max(0.0, (decision.digest_at - now).total_seconds())
        transaction.on_commit(_enqueue_later((row.pk,), countdown), robust=True)
    return True


def _gather_digest(carrier: Delivery) -> tuple[int, ...]:
    """The rows a digest e-mail carries: on its first attempt the carrier takes every other
    e-mail waiting for a digest; a retry sends the same batch again (same Message-ID)."""
    batch = list(carrier.batch.values_list("pk", flat=True))
    if carrier.attempts:
        return tuple(batch)
    waiting = list(
        Delivery.objects.select_for_update(skip_locked=True)
        .filter(
            user_id=carrier.user_id,
            channel=Channel.EMAIL,
            status=DeliveryStatus.SCHEDULED,
            hold_reason=HoldReason.DIGEST,
            batched_into__isnull=True,
        )
        .exclude(pk=carrier.pk)
        .values_list("pk", flat=True)
    )
    if waiting:
        Delivery.objects.filter(pk__in=waiting).update(batched_into=carrier.pk)
    return tuple(batch + waiting)


def _outgoing_message(claim: Claim) -> OutgoingMessage | None:
    """What the transport sends, or None when the channel has nowhere to go any more."""
    notification = claim.notification or Notification.objects.select_related("user").get(
        pk=claim.notification_id
    )
    data = selectors.notification_data(notification)
    if claim.channel == Channel.IN_APP:  # the user's id is all it needs: no user row
        unread = claim.unread_count
        if unread is None:
            unread = selectors.unread_count(user=notification.user_id)
        return OutgoingMessage(
            delivery_uid=claim.uid,
            notification=data,
            target=notification.user_id,
            extra={
                "unread_count": unread,
                "link_path": reverse("notifications:open", args=[notification.pk]),
            },
        )
    user = notification.user
    row = selectors.notification_settings_or_default(user=user)
    if claim.channel == Channel.EMAIL:
        address = selectors.email_address(user=user, settings_row=row)
        if not address:
            return None
        digest = ()
        if claim.batch_ids:
            batch = Notification.objects.filter(deliveries__pk__in=claim.batch_ids).order_by(
                "created_at", "id"
            )
            digest = tuple(
                sorted(
                    [data, *(selectors.notification_data(n) for n in batch)],
                    key=lambda item: (item.created_at, item.id),
                )
            )
        return OutgoingMessage(
            delivery_uid=claim.uid,
            notification=data,
            target=address,
            digest=digest,
            extra={"recipient_name": user.get_full_name() or user.get_username()},
        )
    if claim.channel == Channel.WEBHOOK:
        if not row.pk or not row.webhook_url:
            return None
        return OutgoingMessage(
            delivery_uid=claim.uid,
            notification=data,
            target=WebhookTarget(
                url=row.webhook_url,
                secret=reveal(row, "webhook_secret") or "",
                format=row.webhook_format,
            ),
        )
    raise ValueError(f"unknown channel {claim.channel}")


def _unreachable_reason(claim: Claim) -> str:
    return selectors.UNREACHABLE_MESSAGES.get(claim.channel, "Nowhere to deliver to.")


def _send_push(claim: Claim, now: datetime) -> str:
    """Web push goes to every subscribed browser; a retry skips those that already got it."""
    notification = claim.notification or Notification.objects.get(pk=claim.notification_id)
    data = selectors.notification_data(notification)
    progress = dict(claim.progress or {})
    done = set(progress.get("done", []))
    failed: dict[str, str] = dict(progress.get("failed", {}))
    subscriptions = [
        s
        for s in PushSubscription.objects.filter(user_id=claim.user_id).order_by("pk")
        if s.pk not in done
    ]
    temporary: list[TransportError] = []
    gone: list[str] = []
    transport = get_transport(Channel.PUSH)
    open_url = absolute(reverse("notifications:open", args=[notification.pk]))
    for subscription in subscriptions:
        message = OutgoingMessage(
            delivery_uid=claim.uid,
            notification=data,
            target=subscription.subscription_info,
            extra={"open_url": open_url},
        )
        try:
            transport.send(message)
        except RecipientGone as exc:
            gone.append(exc.describe())
            push_subscription_expire(subscription=subscription, answer=exc.describe())
        except PermanentFailure as exc:
            failed[str(subscription.pk)] = exc.describe()
            PushSubscription.objects.filter(pk=subscription.pk).update(last_failure=exc.describe())
        except TemporaryFailure as exc:
            temporary.append(exc)
        else:
            done.add(subscription.pk)
            PushSubscription.objects.filter(pk=subscription.pk).update(
                last_success_at=now, last_failure=""
            )
    progress = {"done": sorted(done), "failed": failed}
    if temporary:
        return _failed(claim, temporary[0], now, progress=progress)
    if done:
        return _finish(claim, DeliveryStatus.SENT, now, progress=progress)
    if failed:
        error = "; ".join(failed.values())
        return _finish(claim, DeliveryStatus.FAILED_PERMANENT, now, error=error, progress=progress)
    error = "; ".join(gone) or _unreachable_reason(claim)
    return _finish(claim, DeliveryStatus.SKIPPED, now, error=error, progress=progress)


def _failed(
    claim: Claim, exc: TransportError, now: datetime, *, progress: dict | None = None
) -> str:
    if not exc.retryable:
        return _finish(
            claim, DeliveryStatus.FAILED_PERMANENT, now, error=exc.describe(), progress=progress
        )
    retry_at = next_attempt_at(
        now=now,
        attempts=claim.attempts,
        max_attempts=settings.NOTIFICATIONS_MAX_ATTEMPTS,
        base=settings.NOTIFICATIONS_RETRY_BASE_SECONDS,
        cap=settings.NOTIFICATIONS_RETRY_MAX_SECONDS,
        jitter=random.random(),
    )
    if retry_at is None:
        error = f"Gave up after {claim.attempts} attempts. {exc.describe()}"
        return _finish(claim, DeliveryStatus.FAILED_PERMANENT, now, error=error, progress=progress)
    if exc.retry_after:
        retry_at = max(retry_at, now + timedelta(seconds=exc.retry_after))
    outcome = _finish(
        claim,
        DeliveryStatus.FAILED_TEMPORARY,
        now,
        error=exc.describe(),
        next_at=retry_at,
        progress=progress,
    )
    if outcome == Outcome.RETRY:
        _enqueue((claim.delivery_id,), countdown=(retry_at - now).total_seconds())
    return outcome


_OUTCOMES = {
    DeliveryStatus.SENT: Outcome.SENT,
    DeliveryStatus.FAILED_TEMPORARY: Outcome.RETRY,
    DeliveryStatus.FAILED_PERMANENT: Outcome.FAILED,
    DeliveryStatus.SKIPPED: Outcome.SKIPPED,
}


def _finish(
    claim: Claim,
    status: str,
    now: datetime,
    *,
    error: str = "",
    next_at: datetime | None = None,
    progress: dict | None = None,
) -> str:
    """Record the outcome, if this worker still holds the claim (compare-and-set)."""
    if status == DeliveryStatus.SENT and not claim.batch_ids and progress is None:
        if _mark_sent_by_update(claim, now):
            return Outcome.SENT
        logger.warning("delivery %s: claim expired before it was marked sent", claim.delivery_id)
        return Outcome.LOST_CLAIM
    updates: dict[str, Any] = {"status": status, "claim_token": None, "updated_at": now}
    if status == DeliveryStatus.SENT:
        updates["sent_at"] = now
    if error:
        updates["last_error"] = truncate(error, 2000)
        updates["last_error_at"] = now
    if next_at is not None:
        updates["next_attempt_at"] = next_at
    if progress is not None:
        updates["progress"] = progress
    with transaction.atomic() if claim.batch_ids else nullcontext():
        held = Delivery.objects.filter(
            pk=claim.delivery_id, claim_token=claim.token, status=DeliveryStatus.SENDING
        ).update(**updates)
        if not held:
            logger.warning(
                "delivery %s: claim expired before the outcome (%s) was recorded",
                claim.delivery_id,
                status,
            )
            return Outcome.LOST_CLAIM
        if claim.batch_ids and status != DeliveryStatus.FAILED_TEMPORARY:
            batch_updates = {k: v for k, v in updates.items() if k not in ("progress",)}
            Delivery.objects.filter(
                pk__in=claim.batch_ids, batched_into_id=claim.delivery_id
            ).update(**batch_updates)
    return _OUTCOMES[status]


def deliveries_dispatch_due(*, now: datetime | None = None, limit: int = 2000) -> int:
    """The periodic sweep: hand back deliveries whose worker died mid-send (visibility
    timeout) and queue every delivery that is due (retries, ends of quiet hours, digests,
    and pending rows whose task was lost). Returns how many it queued."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.NOTIFICATIONS_SENDING_TIMEOUT_SECONDS)
    lost = "The worker sending this stopped before recording the outcome."
    in_flight = Delivery.objects.filter(
        status=DeliveryStatus.SENDING, claimed_at__lt=stale, batched_into__isnull=True
    )
    in_flight.filter(attempts__gte=settings.NOTIFICATIONS_MAX_ATTEMPTS).update(
        status=DeliveryStatus.FAILED_PERMANENT,
        claim_token=None,
        last_error=f"Gave up: {lost}",
        last_error_at=now,
        updated_at=now,
    )
    in_flight.update(
        status=DeliveryStatus.FAILED_TEMPORARY,
        claim_token=None,
        next_attempt_at=now,
        last_error=lost,
        last_error_at=now,
        updated_at=now,
    )
    due = list(
        Delivery.objects.filter(batched_into__isnull=True)
        .filter(
            Q(
                status__in=[DeliveryStatus.SCHEDULED, DeliveryStatus.FAILED_TEMPORARY],
                next_attempt_at__lte=now,
            )
            | Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now - PENDING_GRACE)
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    _enqueue(tuple(due))
    return len(due)


def deliveries_retry(*, delivery_ids: Iterable[int]) -> int:
    """The admin's "retry delivery": failed (or skipped) rows go back to pending, now.

    A digest's carrier takes its batch with it; a row that was part of a failed digest is
    sent on its own."""
    now = timezone.now()
    retryable = [
        DeliveryStatus.FAILED_PERMANENT,
        DeliveryStatus.FAILED_TEMPORARY,
        DeliveryStatus.SKIPPED,
    ]
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update()
            .filter(pk__in=list(delivery_ids), status__in=retryable)
            .values_list("pk", "is_digest")
        )
        ids = [pk for pk, _ in rows]
        Delivery.objects.filter(pk__in=ids).update(
            status=DeliveryStatus.PENDING,
            hold_reason=HoldReason.NONE,
            batched_into=None,
            attempts=0,
            next_attempt_at=now,
            claim_token=None,
            updated_at=now,
        )
        carriers = [pk for pk, is_digest in rows if is_digest]
        if carriers:
            Delivery.objects.filter(batched_into_id__in=carriers).update(
                status=DeliveryStatus.SCHEDULED, updated_at=now
            )
            Delivery.objects.filter(pk__in=carriers).update(hold_reason=HoldReason.DIGEST)
        deliver_on_commit(ids)
    return len(ids)


# --- reading marks --------------------------------------------------------------------------


def _announce_read(user_id: int) -> None:
    broadcast_on_commit(user_id, READ_EVENT, {"unread_count": selectors.unread_count(user=user_id)})


def notifications_mark_read(
    *, user, ids: Iterable[int] | None = None, now: datetime | None = None
) -> int:
    """Mark the user's notifications read: ``ids`` (others' ids are ignored), or all."""
    now = now or timezone.now()
    with transaction.atomic():
        qs = Notification.objects.filter(user=user, read_at__isnull=True)
        if ids is not None:
            qs = qs.filter(pk__in=list(ids))
        count = qs.update(read_at=now)
        if count:
            _announce_read(user.pk)
    return count


def notification_mark_read(*, user, notification: Notification) -> Notification:
    if notification.user_id != user.pk:
        raise NotFound("No such notification.")
    if notification.read_at is None:
        notifications_mark_read(user=user, ids=[notification.pk])
        notification.refresh_from_db(fields=["read_at"])
    return notification


def notification_mark_unread(*, user, notification: Notification) -> Notification:
    if notification.user_id != user.pk:
        raise NotFound("No such notification.")
    with transaction.atomic():
        if Notification.objects.filter(pk=notification.pk, read_at__isnull=False).update(
            read_at=None
        ):
            _announce_read(user.pk)
    notification.read_at = None
    return notification


# --- preferences -------------------------------------------------------------------------------

SETTINGS_FIELDS = (
    "email",
    "webhook_url",
    "webhook_format",
    "quiet_hours_enabled",
    "quiet_start",
    "quiet_end",
    "daily_summary_enabled",
    "daily_summary_time",
)


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def validate_webhook_url(url: str) -> None:
    if not url:
        return
    try:
        check_public_address(url)
    except TemporaryFailure:
        pass  # DNS trouble now says nothing about the URL; sending will tell
    except PermanentFailure as exc:
        raise ValidationFailed(exc.message, fields={"webhook_url": exc.message}) from None


def notification_settings_update(*, user, **changes: Any) -> NotificationSettings:
    """Save contact details, quiet hours and the daily summary. A webhook URL gets a signing
    secret the first time one is set."""
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown settings: {', '.join(sorted(unknown))}.")
    if "webhook_url" in changes:
        validate_webhook_url(changes["webhook_url"] or "")
    if changes.get("webhook_format", "json") not in ("json", "slack", "discord"):
        raise ValidationFailed("Unknown webhook format.", fields={"webhook_format": "Unknown."})
    with transaction.atomic():
        row, _ = NotificationSettings.objects.select_for_update().get_or_create(user=user)
        for name, value in changes.items():
            setattr(row, name, value if value is not None else "")
        if row.webhook_url and not row.webhook_secret:
            row.webhook_secret = Secret(new_webhook_secret())
        row.full_clean(exclude=["user", "webhook_secret"])
        row.save()
    return row


def notification_settings_rotate_webhook_secret(*, user) -> str:
    """A new signing secret (the old one stops working at once); returns it."""
    secret = new_webhook_secret()
    with transaction.atomic():
        row, _ = NotificationSettings.objects.select_for_update().get_or_create(user=user)
        row.webhook_secret = Secret(secret)
        row.save(update_fields=["webhook_secret", "updated_at"])
    return secret


def notification_preference_set(
    *, user, type: str, channel: str, enabled: bool
) -> NotificationPreference:
    if type not in NotificationType.values or type == NotificationType.TEST:
        raise ValidationFailed(f"Unknown notification type {type!r}.", fields={"type": "Unknown."})
    if channel not in Channel.values:
        raise ValidationFailed(f"Unknown channel {channel!r}.", fields={"channel": "Unknown."})
    preference, _ = NotificationPreference.objects.update_or_create(
        user=user, type=type, channel=channel, defaults={"enabled": bool(enabled)}
    )
    return preference


def notification_preference_delete(*, user, preference: NotificationPreference) -> None:
    """Forget the choice: the default for the type and channel applies again."""
    if preference.user_id != user.pk:
        raise NotFound("No such preference.")
    preference.delete()


def notification_preferences_save(*, user, enabled: set[tuple[str, str]]) -> int:
    """The preferences page's matrix: exactly the (type, channel) pairs in ``enabled`` are on.

    Stores a row only where the choice differs from the default, so defaults can evolve."""
    with transaction.atomic():
        NotificationPreference.objects.filter(user=user).delete()
        rows = [
            NotificationPreference(user=user, type=kind, channel=channel, enabled=on)
            for kind in catalog.routable_kinds()
            for channel in Channel.values
            if (on := (kind.value, channel) in enabled)
            != catalog.default_channel_enabled(kind, channel)
        ]
        NotificationPreference.objects.bulk_create(rows)
    return len(rows)


# --- push subscriptions -------------------------------------------------------------------------


def push_subscription_register(
    *, user, endpoint: str, p256dh: str, auth: str, user_agent: str = ""
) -> PushSubscription:
    """Store (or refresh) a browser's subscription. The endpoint identifies the browser: when
    another user signs in on it, the subscription moves to them."""
    from apps.notifications.vapid import b64url_decode

    errors = {}
    if not endpoint.startswith("https://") and not (
        settings.DEBUG or settings.TESTING or endpoint.startswith("http://127.0.0.1")
    ):
        errors["endpoint"] = "A push endpoint is an https URL."
    try:
        if len(b64url_decode(p256dh)) != 65:
            errors["p256dh"] = "Expected the browser's P-256 public key (65 bytes, base64url)."
        if len(b64url_decode(auth)) != 16:
            errors["auth"] = "Expected the 16-byte auth secret (base64url)."
    except ValueError:
        errors["keys"] = "The keys are not base64url."
    if errors:
        raise ValidationFailed("The push subscription is invalid.", fields=errors)
    taken = PushSubscription.objects.filter(endpoint=endpoint).exclude(user=user).first()
    if taken is not None and (taken.p256dh, taken.auth) != (p256dh, auth):
        # The same browser signing in as someone else presents the same keys; an endpoint
        # alone (with other keys) must not take another trader's subscription away.
        raise ValidationFailed(
            "This push endpoint is registered with other keys.", fields={"endpoint": "Taken."}
        )
    subscription, _ = PushSubscription.objects.update_or_create(
        endpoint=endpoint,
        defaults={
            "user": user,
            "p256dh": p256dh,
            "auth": auth,
            "user_agent": (user_agent or "")[:300],
            "last_failure": "",
        },
    )
    return subscription


def push_subscription_unregister(
    *, user, endpoint: str | None = None, subscription: PushSubscription | None = None
) -> bool:
    qs = PushSubscription.objects.filter(user=user)
    if subscription is not None:
        qs = qs.filter(pk=subscription.pk)
    elif endpoint:
        qs = qs.filter(endpoint=endpoint)
    else:
        return False
    deleted, _ = qs.delete()
    return bool(deleted)


def push_subscription_expire(*, subscription: PushSubscription, answer: str) -> None:
    """The push service said 404/410: the browser is gone, forget it."""
    logger.info("push subscription %s removed: %s", subscription.pk, answer)
    PushSubscription.objects.filter(pk=subscription.pk).delete()


# --- daily summary ----------------------------------------------------------------------------


def daily_summaries_due(*, now: datetime | None = None) -> list[tuple[int, date]]:
    """Traders whose chosen local time has passed today and who have no summary for today."""
    now = now or timezone.now()
    horizon = now.date() + timedelta(days=1)  # no local date is later than this
    rows = (
        NotificationSettings.objects.filter(daily_summary_enabled=True)
        .filter(Q(daily_summary_last_date__isnull=True) | Q(daily_summary_last_date__lt=horizon))
        .select_related("user")
    )
    due = []
    for row in rows:
        day = daily_summary_due(
            now=now,
            tz=user_tz(row.user),
            at=row.daily_summary_time,
            last_sent_on=row.daily_summary_last_date,
        )
        if day is not None:
            due.append((row.user_id, day))
    return due


def daily_summary_send(
    *, user_id: int, day: date, now: datetime | None = None
) -> Notification | None:
    """The day's summary for one trader, once per local date (safe to run twice)."""
    now = now or timezone.now()
    with transaction.atomic():
        row = (
            NotificationSettings.objects.select_for_update()
            .select_related("user")
            .filter(user_id=user_id)
            .first()
        )
        if row is None or (row.daily_summary_last_date and row.daily_summary_last_date >= day):
            return None
        summary = selectors.daily_summary_for(user=row.user, day=day, now=now)
        title, body, data = daily_summary_message(summary)
        notification = notify(
            user=row.user,
            type=NotificationType.DAILY_SUMMARY,
            title=title,
            body=body,
            data=data,
            link=reverse("dashboard"),
            dedupe_key=f"daily_summary:{day.isoformat()}",
        )
        row.daily_summary_last_date = day
        row.save(update_fields=["daily_summary_last_date", "updated_at"])
    return notification
