"""Reads of notifications, always scoped to one user, and what the delivery service loads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.apps import apps as django_apps
from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, QuerySet

from apps.accounts.selectors import account_valuation, accounts_for_user
from apps.core import sql
from apps.core.templatetags.trading import user_tz
from apps.notifications.domain import catalog
from apps.notifications.domain.payloads import (
    AccountDay,
    DailySummary,
    NotificationData,
    PositionLine,
    RiskLine,
    TradeLine,
)
from apps.notifications.domain.schedule import local_day_bounds
from apps.notifications.emails import absolute
from apps.notifications.models import (
    Channel,
    Delivery,
    DeliveryStatus,
    HoldReason,
    Notification,
    NotificationPreference,
    NotificationSettings,
    NotificationType,
    PushSubscription,
)

UNREACHABLE_MESSAGES = {
    Channel.IN_APP: "In-app notifications are always available.",
    Channel.EMAIL: "Set an e-mail address first (your account has none).",
    Channel.PUSH: "Enable web push in this browser first (no browser is subscribed).",
    Channel.WEBHOOK: "Set a webhook URL first.",
}


_CHANNELS = tuple(Channel.values)  # (the property builds a new list on every use)


def _user_id(user) -> int:
    return user if isinstance(user, int) else user.pk


# --- what notify() and the delivery service read ------------------------------------------


def notification_settings_or_default(*, user) -> NotificationSettings:
    """The trader's settings row, or an unsaved one with the defaults when they have none."""
    cache = getattr(getattr(user, "_state", None), "fields_cache", {})
    if "notification_settings" in cache:  # loaded with select_related (None: no row)
        return cache["notification_settings"] or NotificationSettings(user_id=_user_id(user))
    row = NotificationSettings.objects.filter(user_id=_user_id(user)).first()
    return row if row is not None else NotificationSettings(user_id=_user_id(user))


def channel_preferences_from(*, type: str, chosen: dict[str, bool]) -> dict[str, bool]:
    """Channel -> on/off for one type from the trader's rows (``chosen``) over the defaults."""
    return {
        channel: chosen.get(channel, catalog.default_channel_enabled(type, channel))
        for channel in _CHANNELS
    }


def email_address(*, user, settings_row: NotificationSettings) -> str:
    return settings_row.email or user.email or ""


def push_available() -> bool:
    return bool(settings.VAPID_PRIVATE_KEY)


def channel_reachable(*, user, settings_row: NotificationSettings, channel: str) -> bool:
    """Whether the channel has somewhere to deliver to for this trader."""
    if channel == Channel.IN_APP:
        return True
    if channel == Channel.EMAIL:
        return bool(email_address(user=user, settings_row=settings_row))
    if channel == Channel.WEBHOOK:
        return bool(settings_row.webhook_url)
    if channel == Channel.PUSH:
        if not push_available():
            return False
        known = getattr(user, "has_push", None)  # annotated by the caller, saves a query
        if known is not None:
            return bool(known)
        return PushSubscription.objects.filter(user_id=user.pk).exists()
    return False


@dataclass(frozen=True)
class EmailHistory:
    sent_at: list[datetime]  # e-mails (a digest counts once) sent or being sent in the window
    digest_at: datetime | None  # when the digest that is waiting goes out, if one is waiting


def email_history(*, user_id: int, since: datetime, exclude_id: int) -> EmailHistory:
    """What the e-mail rate limit decides on, in one query."""
    if sql.is_postgresql():  # every e-mail asks: written out (see apps.core.sql)
        rows = sql.fetchall(
            f"SELECT status, claimed_at, next_attempt_at FROM {sql.table(Delivery)} "
            "WHERE user_id = %s AND channel = %s AND batched_into_id IS NULL AND id <> %s "
            "AND ((status IN (%s, %s) AND claimed_at > %s) OR (status = %s AND hold_reason = %s))",
            [
                user_id,
                Channel.EMAIL,
                exclude_id,
                DeliveryStatus.SENDING,
                DeliveryStatus.SENT,
                since,
                DeliveryStatus.SCHEDULED,
                HoldReason.DIGEST,
            ],
        )
    else:
        rows = (
            Delivery.objects.filter(
                user_id=user_id, channel=Channel.EMAIL, batched_into__isnull=True
            )
            .filter(
                Q(status__in=[DeliveryStatus.SENDING, DeliveryStatus.SENT], claimed_at__gt=since)
                | Q(status=DeliveryStatus.SCHEDULED, hold_reason=HoldReason.DIGEST)
            )
            .exclude(pk=exclude_id)
            .values_list("status", "claimed_at", "next_attempt_at")
        )
    sent, waiting = [], []
    for status, claimed_at, next_at in rows:
        if status == DeliveryStatus.SCHEDULED:
            waiting.append(next_at)
        else:
            sent.append(claimed_at)
    return EmailHistory(sent_at=sent, digest_at=min(waiting) if waiting else None)


def notification_data(notification: Notification) -> NotificationData:
    n = notification
    return _notification_data(
        n.pk, n.uid, n.user_id, n.type, n.severity, n.title, n.body, n.data, n.link, n.created_at
    )


# What the delivery claims read of a notification, for ``notification_data_from_row``.
NOTIFICATION_DATA_COLUMNS = (
    "id", "uid", "user_id", "type", "severity", "title", "body", "data", "link", "created_at",
)  # fmt: skip
_TYPE_LABELS = dict(NotificationType.choices)
_DATA_FIELD = Notification._meta.get_field("data")


def notification_data_from_row(values: Sequence[Any]) -> NotificationData:
    """``notification_data`` from the raw ``NOTIFICATION_DATA_COLUMNS`` of a row, with no
    model instance in between (every delivery reads one)."""
    *head, data, link, created_at = values
    data = _DATA_FIELD.from_db_value(data, None, connection)
    return _notification_data(*head, data, link, created_at)


def _notification_data(
    pk, uid, user_id, kind, severity, title, body, data, link, created_at
) -> NotificationData:
    return NotificationData(
        id=pk,
        uid=str(uid),
        user_id=user_id,
        type=kind,
        type_label=_TYPE_LABELS[kind],
        severity=severity,
        title=title,
        body=body,
        data=data or {},
        link=absolute(link),
        created_at=created_at,
    )


# --- the notification centre and the API -----------------------------------------------------


def notifications_for_user(*, user) -> QuerySet[Notification]:
    return Notification.objects.filter(user_id=_user_id(user)).order_by("-created_at", "-id")


def unread_count(*, user) -> int:
    # Every in-app delivery asks (for the badge); the partial index answers it.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {connection.ops.quote_name(Notification._meta.db_table)} "
            "WHERE user_id = %s AND read_at IS NULL",
            [_user_id(user)],
        )
        return cursor.fetchone()[0]


def notifications_search(
    *,
    user,
    type: str | None = None,
    severity: str | None = None,
    read: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: str | None = None,
) -> QuerySet[Notification]:
    """The user's notifications, newest first, narrowed by the centre's and the API's filters."""
    qs = notifications_for_user(user=user)
    if type:
        qs = qs.filter(type=type)
    if severity:
        qs = qs.filter(severity=severity)
    if read is True:
        qs = qs.filter(read_at__isnull=False)
    elif read is False:
        qs = qs.filter(read_at__isnull=True)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    if q:
        qs = qs.filter(Q(title__icontains=q) | Q(body__icontains=q))
    return qs


def latest_for_dropdown(*, user, limit: int = 8) -> list[Notification]:
    return list(notifications_for_user(user=user)[:limit])


@dataclass(frozen=True)
class NotificationStats:
    total: int
    unread: int
    by_type: dict[str, int]
    by_severity: dict[str, int]
    deliveries: dict[str, dict[str, int]]  # channel -> status -> count


def notification_stats(*, user) -> NotificationStats:
    """Counts by type, by severity and deliveries by channel and status: three SQL aggregates."""
    user_id = _user_id(user)
    base = Notification.objects.filter(user_id=user_id).order_by()
    totals = base.aggregate(total=Count("id"), unread=Count("id", filter=Q(read_at__isnull=True)))
    by_type = dict(base.values_list("type").annotate(n=Count("id")).values_list("type", "n"))
    by_severity = dict(
        base.values_list("severity").annotate(n=Count("id")).values_list("severity", "n")
    )
    deliveries: dict[str, dict[str, int]] = {}
    for channel, status, n in (
        Delivery.objects.filter(user_id=user_id)
        .order_by()
        .values_list("channel", "status")
        .annotate(n=Count("id"))
        .values_list("channel", "status", "n")
    ):
        deliveries.setdefault(channel, {})[status] = n
    return NotificationStats(
        total=totals["total"],
        unread=totals["unread"],
        by_type=by_type,
        by_severity=by_severity,
        deliveries=deliveries,
    )


def deliveries_for_notification(*, notification: Notification) -> QuerySet[Delivery]:
    return notification.deliveries.order_by("channel")


def preferences_for_user(*, user) -> QuerySet[NotificationPreference]:
    return NotificationPreference.objects.filter(user_id=_user_id(user)).order_by("type", "channel")


@dataclass(frozen=True)
class PreferenceCell:
    type: str
    channel: str
    enabled: bool
    default: bool

    @property
    def name(self) -> str:
        return f"{self.type}__{self.channel}"


@dataclass(frozen=True)
class PreferenceRow:
    type: str
    label: str
    severity: str
    cells: tuple[PreferenceCell, ...]


def preference_matrix(*, user) -> list[PreferenceRow]:
    """Every routable type x channel with the effective choice (one query)."""
    chosen = {
        (p.type, p.channel): p.enabled
        for p in preferences_for_user(user=user).only("type", "channel", "enabled")
    }
    rows = []
    for kind in catalog.routable_kinds():
        cells = []
        for channel in Channel.values:
            default = catalog.default_channel_enabled(kind, channel)
            cells.append(
                PreferenceCell(
                    type=kind.value,
                    channel=channel,
                    enabled=chosen.get((kind.value, channel), default),
                    default=default,
                )
            )
        rows.append(
            PreferenceRow(
                type=kind.value,
                label=NotificationType(kind.value).label,
                severity=catalog.default_severity(kind).value,
                cells=tuple(cells),
            )
        )
    return rows


def push_subscriptions_for_user(*, user) -> QuerySet[PushSubscription]:
    return PushSubscription.objects.filter(user_id=_user_id(user)).order_by("-created_at")


# --- the daily summary -----------------------------------------------------------------------


def risk_app_installed() -> bool:
    return django_apps.is_installed("apps.risk")


def _risk_events(*, user, start: datetime, end: datetime) -> tuple[RiskLine, ...] | None:
    """The day's risk events, or None when the risk app (and its RiskEvent) is not installed."""
    if not risk_app_installed():
        return None
    try:
        risk_event = django_apps.get_model("risk", "RiskEvent")
    except LookupError:
        return None
    rows = (
        risk_event.objects.filter(
            account__owner_id=_user_id(user), created_at__gte=start, created_at__lt=end
        )
        .order_by("created_at", "id")
        .values_list("severity", "code", "message", "created_at")
    )
    return tuple(RiskLine(*row) for row in rows)


def daily_summary_for(*, user, day: date, now: datetime) -> DailySummary:
    """What the trader's day looked like, account by account (their local calendar day)."""
    from apps.execution.models import Trade
    from apps.execution.selectors import fills_for_user, trades_for_user

    start, end = local_day_bounds(day, user_tz(user))
    end = min(end, now)
    closed = (
        trades_for_user(user=user)
        .filter(status=Trade.Status.CLOSED, exit_time__gte=start, exit_time__lt=end)
        .order_by("exit_time", "id")
    )
    trades_by_account: dict[int, list[TradeLine]] = {}
    for trade in closed:
        trades_by_account.setdefault(trade.account_id, []).append(
            TradeLine(
                symbol=trade.instrument.symbol,
                direction=trade.direction,
                quantity=trade.exit_quantity,
                net_pnl=trade.net_pnl,
                exit_time=trade.exit_time,
            )
        )
    fills = dict(
        fills_for_user(user=user)
        .filter(filled_at__gte=start, filled_at__lt=end)
        .order_by()
        .values_list("account_id")
        .annotate(n=Count("id"))
        .values_list("account_id", "n")
    )
    accounts = []
    for account in accounts_for_user(user=user):
        valuation = account_valuation(account=account)
        accounts.append(
            AccountDay(
                name=account.name,
                currency=account.currency,
                equity=valuation.equity,
                day_pnl=valuation.day_pnl,
                fills=fills.get(account.pk, 0),
                trades=tuple(trades_by_account.get(account.pk, ())),
                positions=tuple(
                    PositionLine(
                        symbol=p.symbol,
                        quantity=p.quantity,
                        average_price=p.average_price,
                        last_price=p.last_price,
                        unrealized_pnl=p.unrealized_pnl,
                    )
                    for p in valuation.positions
                ),
            )
        )
    return DailySummary(
        day=day,
        accounts=tuple(accounts),
        risk_events=_risk_events(user=user, start=start, end=end),
    )
