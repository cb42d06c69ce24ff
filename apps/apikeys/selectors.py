"""Reads of API keys: the owner's keys, a key's rotation history, audit trail and usage."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.accounts.selectors import accounts_for_user
from apps.apikeys.crypto import MalformedToken, token_version
from apps.apikeys.fields import encrypted_models
from apps.apikeys.models import ApiKey, ApiKeyAuditLog

if TYPE_CHECKING:
    from apps.accounts.models import TradingAccount, User

Action = ApiKeyAuditLog.Action


def api_keys_for_user(
    *, user: User, include_deleted: bool = False, status: str | None = None
) -> QuerySet[ApiKey]:
    keys = ApiKey.objects.filter(owner=user).select_related("account")
    if not include_deleted:
        keys = keys.filter(deleted_at__isnull=True)
    if status:
        keys = keys.filter(status=status)
    return keys.order_by("-created_at", "-id")


def api_key_for_user(*, user: User, pk: object) -> ApiKey | None:
    """The user's key with this id, deleted ones included; None for anyone else's or junk."""
    text = str(pk)
    if not text.isdigit() or len(text) > 18:
        return None
    return ApiKey.objects.filter(owner=user, pk=int(text)).select_related("account").first()


def api_key_history(*, api_key: ApiKey) -> QuerySet[ApiKey]:
    """Every key of the rotation chain, oldest first (this one included)."""
    return ApiKey.objects.filter(lineage=api_key.lineage, owner_id=api_key.owner_id).order_by(
        "created_at", "id"
    )


def audit_entries_for_key(*, api_key: ApiKey) -> QuerySet[ApiKeyAuditLog]:
    return ApiKeyAuditLog.objects.filter(api_key_id=api_key.pk).order_by("-at", "-id")


def alpaca_accounts_for_user(*, user: User) -> QuerySet[TradingAccount]:
    return accounts_for_user(user=user).filter(broker="alpaca")


@dataclass(frozen=True)
class DailyUsage:
    day: date
    uses: int
    failures: int


@dataclass(frozen=True)
class UsageStats:
    use_count: int
    last_used_at: datetime | None
    last_verified_at: datetime | None
    last_verification_ok: bool | None
    uses: int
    failed_uses: int
    verifications: int
    failed_verifications: int
    uses_by_purpose: dict[str, int]
    daily: tuple[DailyUsage, ...]
    days: int


def api_key_usage(*, api_key: ApiKey, now: datetime | None = None, days: int = 30) -> UsageStats:
    """Usage of one key from its audit trail: totals, by purpose, and per day over ``days``."""
    now = now or timezone.now()
    entries = ApiKeyAuditLog.objects.filter(api_key_id=api_key.pk)
    totals = entries.aggregate(
        uses=Count("id", filter=Q(action=Action.USE, success=True)),
        failed_uses=Count("id", filter=Q(action=Action.USE, success=False)),
        verifications=Count("id", filter=Q(action=Action.VERIFY)),
        failed_verifications=Count("id", filter=Q(action=Action.VERIFY, success=False)),
    )
    by_purpose = {
        row["purpose"]: row["n"]
        for row in entries.filter(action=Action.USE, success=True)
        .values("purpose")
        .annotate(n=Count("id"))
        .order_by("purpose")
    }
    since = now - timedelta(days=days)
    per_day = (
        entries.filter(action=Action.USE, at__gte=since)
        .annotate(day=TruncDate("at"))
        .values("day")
        .annotate(
            uses=Count("id", filter=Q(success=True)), failures=Count("id", filter=Q(success=False))
        )
        .order_by("day")
    )
    return UsageStats(
        use_count=api_key.use_count,
        last_used_at=api_key.last_used_at,
        last_verified_at=api_key.last_verified_at,
        last_verification_ok=api_key.last_verification_ok,
        uses_by_purpose=by_purpose,
        daily=tuple(DailyUsage(row["day"], row["uses"], row["failures"]) for row in per_day),
        days=days,
        **totals,
    )


def secrets_by_key_version() -> dict[str, Counter]:
    """How many stored secrets each master key version holds, per model (None: unreadable)."""
    counts: dict[str, Counter] = {}
    for model, fields in encrypted_models():
        counter: Counter = Counter()
        attnames = [f.attname for f in fields]
        for values in model._base_manager.values_list(*attnames).iterator(chunk_size=2000):
            for token in values:
                if not token:
                    continue
                try:
                    counter[token_version(token)] += 1
                except MalformedToken:
                    counter[None] += 1
        counts[model._meta.label] = counter
    return counts
