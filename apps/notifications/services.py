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

::

    notify_many(notices: Sequence[Notice]) -> list[Notification | None]

A batch (the fills of a signal batch, each with its position) in one go: exactly a loop of
``notify(**fields)`` over the ``Notice`` dataclasses (the same fields), in order, with the
result at each notice's position (``None`` for a dedupe key already stored or repeated
earlier in the list for the same user), at the cost of one call: one read, two INSERTs.
Every notice is validated before anything is written.

How a delivery is sent exactly once (as far as a receiver can tell)
-------------------------------------------------------------------
``delivery_attempt`` claims the row and moves it to ``sending`` with a fresh claim token: one
conditional ``UPDATE`` for in-app, push and webhook rows (a task's in-app rows together: claimed
in one statement, handed to the channel layer in one trip, marked sent in one statement), a
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

import functools
import json
import logging
import random
import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.urls import get_script_prefix, reverse
from django.utils import timezone

from apps.apikeys.crypto import Secret
from apps.apikeys.fields import reveal
from apps.core import sql
from apps.core.errors import NotFound, ValidationFailed
from apps.core.realtime import broadcast_on_commit
from apps.core.templatetags.trading import user_tz
from apps.notifications import selectors
from apps.notifications.domain import catalog
from apps.notifications.domain.payloads import NotificationData, daily_summary_message
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


def _recipients(users: Iterable[Any], types: Iterable[str]) -> dict[int, tuple[Any, dict]]:
    """Every user (a ``User`` or an id) with what planning needs, by id, with their stored
    channel choices for ``types`` (``{type: {channel: enabled}}``).

    notify() runs inside trading transactions, so this is ONE query however many users and
    types: the users, their settings rows (joined), whether any browser of theirs is
    subscribed to push, and their preference rows for the types. A missing user raises
    ``User.DoesNotExist``."""
    user_ids = list(dict.fromkeys(getattr(user, "pk", user) for user in users))
    types = sorted(set(types))
    found: dict[int, tuple[Any, dict]] = {}
    if not sql.is_postgresql():  # the embedded default: the plain ORM will do
        rows = (
            User.objects.select_related("notification_settings")
            .annotate(has_push=Exists(PushSubscription.objects.filter(user_id=OuterRef("pk"))))
            .filter(pk__in=user_ids)
        )
        found = {row.pk: (row, {}) for row in rows}
        for user_id, kind, channel, enabled in NotificationPreference.objects.filter(
            user_id__in=user_ids, type__in=types
        ).values_list("user_id", "type", "channel", "enabled"):
            found[user_id][1].setdefault(kind, {})[channel] = enabled
    else:
        for values in sql.fetchall(
            f"SELECT {sql.columns('u', User)}, {sql.columns('s', NotificationSettings)}, "
            f"EXISTS (SELECT 1 FROM {sql.table(PushSubscription)} p WHERE p.user_id = u.id), "
            "(SELECT json_agg(json_build_array(c.type, c.channel, c.enabled)) "
            f"FROM {sql.table(NotificationPreference)} c "
            "WHERE c.user_id = u.id AND c.type = ANY(%s)) "
            f"FROM {sql.table(User)} u "
            f"LEFT JOIN {sql.table(NotificationSettings)} s ON s.user_id = u.id "
            "WHERE u.id = ANY(%s)",
            [types, user_ids],
        ):
            row, settings_row = sql.instances(values[:-2], User, NotificationSettings)
            row._state.fields_cache["notification_settings"] = settings_row
            row.has_push, stored = values[-2], values[-1]
            if isinstance(stored, str):
                stored = json.loads(stored)
            chosen: dict[str, dict[str, bool]] = {}
            for kind, channel, enabled in stored or ():
                chosen.setdefault(kind, {})[channel] = enabled
            found[row.pk] = (row, chosen)
    for user_id in user_ids:
        if user_id not in found:
            raise User.DoesNotExist(f"No user with id {user_id}.")
    return found


# --- notify ----------------------------------------------------------------------------------

_TYPES = frozenset(NotificationType.values)
_SEVERITIES = frozenset(Severity.values)
_CHANNELS = tuple(Channel.values)


@dataclass(frozen=True)
class Notice:
    """One ``notify()`` call's arguments, for ``notify_many``."""

    user: Any  # a User or a user id
    type: str
    title: str
    body: str = ""
    severity: str | None = None
    data: dict | None = None
    link: str = ""
    dedupe_key: str | None = None


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
    notice = Notice(
        user=user,
        type=type,
        title=title,
        body=body,
        severity=severity,
        data=data,
        link=link,
        dedupe_key=dedupe_key,
    )
    return notify_many([notice])[0]


def notify_many(notices: Sequence[Notice]) -> list[Notification | None]:
    """``notify()`` for each notice, in order, in the caller's transaction: the result has
    the notification (or None: a dedupe key already stored, or given earlier in the list for
    the same user) at each notice's position.

    A batch of trading events (fills, positions) costs as much as one: one read of the
    recipients, one INSERT of the notifications, one of their deliveries, and one task per
    ``TASK_BATCH`` deliveries after the commit. Every notice is validated before anything is
    written."""
    checked = [_checked(notice) for notice in notices]
    if not checked:
        return []
    recipients = _recipients((n.user for n in checked), (n.type for n in checked))
    now = timezone.now()
    wanted: list[Notification | None] = []
    keys: set[tuple[int, str]] = set()
    for notice in checked:
        user, _ = recipients[getattr(notice.user, "pk", notice.user)]
        key = notice.dedupe_key or None
        if key is not None:
            if (user.pk, key) in keys:  # the first of the list wins, as in a loop of notify()
                wanted.append(None)
                continue
            keys.add((user.pk, key))
        wanted.append(
            Notification(
                user=user,
                type=notice.type,
                severity=notice.severity,
                title=notice.title,
                body=notice.body or "",
                data=notice.data or {},
                link=notice.link or "",
                dedupe_key=key,
                created_at=now,
            )
        )
    with transaction.atomic(savepoint=False):
        # The unique dedupe key refuses a second row without an error (no savepoint in the
        # caller's transaction on PostgreSQL): an earlier or concurrent call won.
        stored = _insert_notifications([n for n in wanted if n is not None])
        result = [n if n is not None and n.pk in stored else None for n in wanted]
        deliveries = []
        for notification in result:
            if notification is not None:
                user, chosen = recipients[notification.user_id]
                prefs = selectors.channel_preferences_from(
                    type=notification.type, chosen=chosen.get(notification.type, {})
                )
                deliveries += _plan_deliveries(
                    user=user, notification=notification, now=now, prefs=prefs
                )
        _insert_deliveries(deliveries)
        _deliver_planned(deliveries, now)
    return result


def _checked(notice: Notice) -> Notice:
    """The notice with its severity defaulted and its title tidied; ``ValidationFailed``
    when it cannot be sent."""
    if notice.type not in _TYPES:
        raise ValidationFailed(
            f"Unknown notification type {notice.type!r}.",
            code="unknown_notification_type",
            fields={"type": f"Must be one of: {', '.join(NotificationType.values)}."},
        )
    severity = notice.severity or catalog.default_severity(notice.type).value
    if severity not in _SEVERITIES:
        raise ValidationFailed(
            f"Unknown severity {severity!r}.", code="invalid", fields={"severity": "Unknown."}
        )
    title = " ".join((notice.title or "").split())[:200]
    if not title:
        raise ValidationFailed("A notification needs a title.", fields={"title": "Required."})
    return replace(notice, severity=severity, title=title)


def _insert_notifications(notifications: list[Notification]) -> set[int]:
    """INSERT the notifications, skipping those whose dedupe key is taken; sets the pks of
    the rows written and returns them."""
    if not sql.is_postgresql():  # the embedded default: one row at a time will do
        return {n.pk for n in notifications if sql.insert(n, skip_conflicts=bool(n.dedupe_key))}
    if not notifications:
        return set()
    # The conflict target is the dedupe key's partial unique index: any other violation (a
    # uid drawn twice) is an error, not a silently missing notification.
    written = sql.insert_rows(
        notifications,
        on_conflict="ON CONFLICT (user_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
        match_on="uid",
    )
    return {n.pk for n in written}


def _insert_deliveries(deliveries: list[Delivery]) -> None:
    if not sql.is_postgresql():
        Delivery.objects.bulk_create(deliveries)
    else:
        sql.insert_rows(deliveries)


def _deliver_planned(deliveries: list[Delivery], now: datetime) -> None:
    """Queue the new deliveries after the commit: the pending ones now, the ones held by
    quiet hours when those end (the sweep would wake them too)."""
    deliver_on_commit(d.pk for d in deliveries if d.status == DeliveryStatus.PENDING)
    held: dict[datetime, list[int]] = {}
    for d in deliveries:
        if d.status == DeliveryStatus.SCHEDULED:
            held.setdefault(d.next_attempt_at, []).append(d.pk)
    for until, ids in held.items():
        deliver_on_commit(ids, countdown=max(0.0, (until - now).total_seconds()))


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
    for channel in _CHANNELS:
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
    notification: Notification | None = None  # loaded with its user by an e-mail claim
    unread_count: int | None = None  # the trader's badge, read by an in-app claim
    data: NotificationData | None = None  # read by the other claims


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
    tells the channel of the others, so an e-mail row goes straight to its own claim), sent
    first, together, and marked sent together: they only touch the channel layer, so nothing
    slow holds their claim."""
    ids = list(delivery_ids)
    outcomes: dict[str, int] = {}

    def count(outcome: str) -> None:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    claims: dict[int, Claim] = {}
    channels: dict[int, str] = {}
    if len(ids) > 1 and sql.is_postgresql():
        now = timezone.now()
        try:
            claims, channels = _claim_in_app_rows(delivery_ids=ids, now=now)
        except Exception:
            logger.exception("deliveries %s could not be claimed together", ids)
        if claims:
            try:
                sent = _deliver_in_app(list(claims.values()), now)
            except Exception:  # left claimed: the sweep hands them back
                logger.exception("in-app deliveries %s could not be attempted", list(claims))
                sent = ["error"] * len(claims)
            for outcome in sent:
                count(outcome)
    for delivery_id in ids:
        if delivery_id not in claims:
            try:
                outcome = delivery_attempt(
                    delivery_id=delivery_id, channel=channels.get(delivery_id)
                )
            except Exception:
                logger.exception("delivery %s could not be attempted", delivery_id)
                outcome = "error"
            count(outcome)
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
    except Exception as exc:
        return _failed(claim, _unexpected(exc, [claim]), now)
    return _finish(claim, DeliveryStatus.SENT, now)


def _unexpected(exc: Exception, claims: Sequence[Claim]) -> TemporaryFailure:
    """A bug or an outage we did not foresee: retry, keep the trace."""
    logger.exception("deliveries %s failed unexpectedly", [c.delivery_id for c in claims])
    return TemporaryFailure("Unexpected error", answer=repr(exc))


def _deliver_in_app(claims: list[Claim], now: datetime) -> list[str]:
    """Send claimed in-app rows together (one trip to the channel layer's event loop) and
    mark those that went out sent in one statement; the outcome of each, in order."""
    transport = get_transport(Channel.IN_APP)
    messages = [_in_app_message(claim) for claim in claims]
    send_many = getattr(transport, "send_many", None)  # a transport may send one at a time
    try:
        if send_many is not None:
            failures = send_many(messages)
        else:
            failures = [_send_one(transport, m, c) for m, c in zip(messages, claims, strict=True)]
    except Exception as exc:
        failures = [_unexpected(exc, claims)] * len(claims)
    marked = _mark_sent_many([c for c, f in zip(claims, failures, strict=True) if f is None], now)
    outcomes = []
    for claim, failure in zip(claims, failures, strict=True):
        if failure is not None:
            outcomes.append(_failed(claim, failure, now))
        elif claim.delivery_id in marked:
            outcomes.append(Outcome.SENT)
        else:
            logger.warning(
                "delivery %s: claim expired before it was marked sent", claim.delivery_id
            )
            outcomes.append(Outcome.LOST_CLAIM)
    return outcomes


def _send_one(transport: Any, message: OutgoingMessage, claim: Claim) -> TransportError | None:
    try:
        transport.send(message)
    except TransportError as exc:
        return exc
    except Exception as exc:
        return _unexpected(exc, [claim])
    return None


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

# The notification's columns a claim reads (for the transports' NotificationData).
_DATA_COLUMNS = ", ".join(f"n.{sql.quote(c)}" for c in selectors.NOTIFICATION_DATA_COLUMNS)


def _claim_by_update(*, delivery_id: int, now: datetime, token: uuid.UUID) -> Claim | None:
    """Claim an in-app, push or webhook row with one conditional UPDATE (the database
    serialises two workers on the row; the loser updates nothing), returning the row, its
    notification and, for an in-app row, the trader's unread count."""
    if not sql.is_postgresql():  # the embedded default: the plain ORM will do
        return _claim_by_update_portable(delivery_id=delivery_id, now=now, token=token)
    row = sql.fetchone(
        f"UPDATE {sql.table(Delivery)} AS d SET status = %s, claim_token = %s, claimed_at = %s, "
        f"attempts = d.attempts + 1, updated_at = %s FROM {sql.table(Notification)} AS n "
        "WHERE d.id = %s AND n.id = d.notification_id AND d.status IN (%s, %s, %s) "
        "AND d.next_attempt_at <= %s AND d.batched_into_id IS NULL AND d.channel <> %s "
        "RETURNING d.uid, d.channel, d.attempts, d.user_id, d.progress, "
        f"CASE WHEN d.channel = %s THEN (SELECT count(*) FROM {sql.table(Notification)} AS r "
        f"WHERE r.user_id = d.user_id AND r.read_at IS NULL) END, {_DATA_COLUMNS}",
        [
            DeliveryStatus.SENDING,
            token,
            now,
            now,
            delivery_id,
            *CLAIMABLE_STATUSES,
            now,
            Channel.EMAIL,
            Channel.IN_APP,
        ],
    )
    if row is None:
        return None
    uid, channel, attempts, user_id, progress, unread, *values = row
    return Claim(
        delivery_id=delivery_id,
        uid=str(uid),
        token=token,
        channel=channel,
        attempts=attempts,
        user_id=user_id,
        notification_id=values[0],
        progress=dict(_PROGRESS.from_db_value(progress, None, connection) or {}),
        unread_count=unread,
        data=selectors.notification_data_from_row(values),
    )


_PROGRESS = Delivery._meta.get_field("progress")


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
    columns = selectors.NOTIFICATION_DATA_COLUMNS
    returned = ", ".join(f"n.{sql.quote(c)} AS n_{c}" for c in columns)
    selected = ", ".join(f"c.n_{c}" for c in columns)
    token = uuid.uuid4()
    rows = sql.fetchall(
        "WITH claimed AS ("
        f"UPDATE {sql.table(Delivery)} AS d SET status = %s, claim_token = %s, claimed_at = %s, "
        f"attempts = d.attempts + 1, updated_at = %s FROM {sql.table(Notification)} AS n "
        "WHERE d.id = ANY(%s) AND n.id = d.notification_id AND d.channel = %s "
        "AND d.status IN (%s, %s, %s) AND d.next_attempt_at <= %s "
        "AND d.batched_into_id IS NULL "
        "RETURNING d.id AS d_id, d.uid AS d_uid, d.attempts AS d_attempts, "
        f"d.user_id AS d_user_id, {returned}) "
        "SELECT x.id, x.channel, c.d_uid, c.d_attempts, c.d_user_id, "
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
    for delivery_id, channel, uid, attempts, user_id, unread, *values in rows:
        channels[delivery_id] = channel
        if uid is not None:
            claims[delivery_id] = Claim(
                delivery_id=delivery_id,
                uid=str(uid),
                token=token,
                channel=channel,
                attempts=attempts,
                user_id=user_id,
                notification_id=values[0],
                unread_count=unread,
                data=selectors.notification_data_from_row(values),
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


def _mark_sent_many(claims: list[Claim], now: datetime) -> set[int]:
    """``_mark_sent_by_update`` for the rows of one batch claim (PostgreSQL), in one
    statement per claim token; returns the ids marked."""
    by_token: dict[uuid.UUID, list[int]] = {}
    for claim in claims:
        by_token.setdefault(claim.token, []).append(claim.delivery_id)
    marked: set[int] = set()
    for token, ids in by_token.items():
        rows = sql.fetchall(
            f"UPDATE {sql.table(Delivery)} SET status = %s, claim_token = NULL, sent_at = %s, "
            "updated_at = %s WHERE id = ANY(%s) AND claim_token = %s AND status = %s "
            "RETURNING id",
            [DeliveryStatus.SENT, now, now, ids, token, DeliveryStatus.SENDING],
        )
        marked.update(pk for (pk,) in rows)
    return marked


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
    if claim.channel == Channel.IN_APP:
        return _in_app_message(claim)
    if claim.channel == Channel.EMAIL:
        notification = claim.notification or Notification.objects.select_related("user").get(
            pk=claim.notification_id
        )
        data = selectors.notification_data(notification)
        user = notification.user
        row = selectors.notification_settings_or_default(user=user)
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
        row = selectors.notification_settings_or_default(user=claim.user_id)
        if not row.pk or not row.webhook_url:
            return None
        return OutgoingMessage(
            delivery_uid=claim.uid,
            notification=_notification_data(claim),
            target=WebhookTarget(
                url=row.webhook_url,
                secret=reveal(row, "webhook_secret") or "",
                format=row.webhook_format,
            ),
        )
    raise ValueError(f"unknown channel {claim.channel}")


def _in_app_message(claim: Claim) -> OutgoingMessage:
    """The event for the trader's open pages: the trader's id is all it needs, no user row."""
    unread = claim.unread_count
    if unread is None:
        unread = selectors.unread_count(user=claim.user_id)
    return OutgoingMessage(
        delivery_uid=claim.uid,
        notification=_notification_data(claim),
        target=claim.user_id,
        extra={"unread_count": unread, "link_path": _open_path(claim.notification_id)},
    )


def _notification_data(claim: Claim) -> NotificationData:
    if claim.data is not None:  # read with the claim
        return claim.data
    notification = claim.notification or Notification.objects.get(pk=claim.notification_id)
    return selectors.notification_data(notification)


def _open_path(notification_id: int) -> str:
    """``reverse("notifications:open", args=[notification_id])`` without resolving the
    pattern again for every delivery (35 us each)."""
    head, tail = _open_path_around(get_script_prefix())
    return f"{head}{notification_id}{tail}"


@functools.cache
def _open_path_around(script_prefix: str) -> tuple[str, str]:
    head, _, tail = reverse("notifications:open", args=[0]).rpartition("/0/")
    return f"{head}/", f"/{tail}"


def _unreachable_reason(claim: Claim) -> str:
    return selectors.UNREACHABLE_MESSAGES.get(claim.channel, "Nowhere to deliver to.")


def _send_push(claim: Claim, now: datetime) -> str:
    """Web push goes to every subscribed browser; a retry skips those that already got it."""
    data = _notification_data(claim)
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
    open_url = absolute(_open_path(claim.notification_id))
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
