"""Who is acting (user, client address, user agent, channel) and the audit trail of actions.

Services wrap each action in ``audited(...)``: it refuses actors locked out by too many failed
attempts, writes one ``ApiKeyAuditLog`` row for the outcome (success, or failure with the
reason) and counts failures towards the lockout. A success row is written in the same
transaction as the change it records; a failure row after the change rolled back, so it is
kept (unless the caller itself rolls back an outer transaction: call services outside one, as
the pages, the API and the execution path do).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import transaction
from django.dispatch import receiver

from apps.apikeys import ratelimit
from apps.apikeys.models import ApiKey, ApiKeyAuditLog
from apps.core.errors import DomainError

if TYPE_CHECKING:
    from django.http import HttpRequest

    from apps.accounts.models import User

logger = logging.getLogger(__name__)

Action = ApiKeyAuditLog.Action
Channel = ApiKeyAuditLog.Channel

# Refusals that are themselves the lockout do not extend it.
_NOT_COUNTED = {"rate_limited", "too_many_failures"}


@dataclass(frozen=True)
class AuditContext:
    """Who acts, from where. ``actor`` None is the system (the execution path, commands)."""

    actor: User | None
    channel: str
    ip_address: str | None = None
    user_agent: str = ""

    @classmethod
    def system(cls) -> AuditContext:
        return cls(actor=None, channel=Channel.SYSTEM)

    @classmethod
    def command(cls) -> AuditContext:
        return cls(actor=None, channel=Channel.COMMAND)

    @property
    def is_interactive(self) -> bool:
        return self.actor is not None and self.channel in (Channel.API, Channel.PAGE)


# --- client address -------------------------------------------------------------------------


@lru_cache(maxsize=1)
def trusted_proxy_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in settings.TRUSTED_PROXIES)


@receiver(setting_changed)
def _reset_proxies(*, setting: str, **kwargs) -> None:
    if setting == "TRUSTED_PROXIES":
        trusted_proxy_networks.cache_clear()


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 203.0.113.7:51234
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_trusted(ip, networks) -> bool:
    return any(ip in network for network in networks)


def client_ip(meta: dict[str, Any]) -> str | None:
    """The client's address: ``REMOTE_ADDR``, unless that is a trusted proxy; then the
    right-most address of ``X-Forwarded-For`` that is not a trusted proxy (addresses further
    left were written by the client and prove nothing)."""
    remote = _parse_ip(str(meta.get("REMOTE_ADDR") or ""))
    networks = trusted_proxy_networks()
    if remote is None or not networks or not _is_trusted(remote, networks):
        return str(remote) if remote is not None else None
    nearest = remote
    for hop in reversed(str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",")):
        if not hop.strip():
            continue
        ip = _parse_ip(hop)
        if ip is None:
            break  # junk in the chain: stop at the last address a trusted proxy vouched for
        if not _is_trusted(ip, networks):
            return str(ip)
        nearest = ip
    return str(nearest)


def audit_context(request: HttpRequest, channel: str) -> AuditContext:
    user = getattr(request, "user", None)
    return AuditContext(
        actor=user if user is not None and user.is_authenticated else None,
        channel=channel,
        ip_address=client_ip(request.META),
        user_agent=str(request.META.get("HTTP_USER_AGENT", ""))[:255],
    )


# --- lockout after failed attempts ----------------------------------------------------------


def ensure_not_locked_out(context: AuditContext) -> None:
    if not context.is_interactive:
        return
    locked, retry_after = ratelimit.exceeded(
        "failures", str(context.actor.pk), settings.APIKEYS_FAILED_ATTEMPTS_RATE
    )
    if locked:
        raise ratelimit.RateLimited(
            "Too many failed attempts on API keys; try again later.",
            retry_after=retry_after,
            code="too_many_failures",
        )


def _count_failure(context: AuditContext, code: str) -> None:
    if context.is_interactive and code not in _NOT_COUNTED:
        ratelimit.hit("failures", str(context.actor.pk), settings.APIKEYS_FAILED_ATTEMPTS_RATE)


# --- writing --------------------------------------------------------------------------------


def audit_write(
    *,
    action: str,
    success: bool,
    context: AuditContext,
    api_key: ApiKey | None = None,
    owner_id: int | None = None,
    reason: str = "",
    code: str = "",
    purpose: str = "",
    target: str = "",
    data: dict | None = None,
) -> ApiKeyAuditLog:
    actor = context.actor
    row = ApiKeyAuditLog.objects.create(
        action=action,
        success=success,
        reason=reason[:255],
        api_key=api_key,
        owner_id=owner_id if owner_id is not None else getattr(api_key, "owner_id", None),
        actor=actor,
        actor_username=actor.get_username() if actor is not None else "",
        channel=context.channel,
        ip_address=context.ip_address,
        user_agent=context.user_agent[:255],
        purpose=purpose[:64],
        target=target[:64],
        data=data or {},
    )
    if not success:
        _count_failure(context, code)
    return row


@dataclass
class AuditEntry:
    action: str
    context: AuditContext
    api_key: ApiKey | None = None
    owner_id: int | None = None
    purpose: str = ""
    target: str = ""
    data: dict = field(default_factory=dict)
    success: bool = True
    reason: str = ""
    code: str = ""
    written: bool = False

    def fail(self, reason: str, *, code: str = "") -> None:
        """The action completed but its outcome is a failure (e.g. the broker refused a key)."""
        self.success = False
        self.reason = reason
        self.code = code

    def write(self) -> None:
        if self.written:
            return
        audit_write(
            action=self.action,
            success=self.success,
            context=self.context,
            api_key=self.api_key,
            owner_id=self.owner_id,
            reason=self.reason,
            code=self.code,
            purpose=self.purpose,
            target=self.target,
            data=self.data,
        )
        self.written = True

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The action's last write and its audit row, committed together."""
        with transaction.atomic():
            yield
            self.write()


@contextmanager
def audited(
    action: str,
    *,
    context: AuditContext,
    api_key: ApiKey | None = None,
    owner_id: int | None = None,
    purpose: str = "",
    target: str = "",
    atomic: bool = True,
) -> Iterator[AuditEntry]:
    """Run one action and audit its outcome. With ``atomic`` the body runs in a transaction
    that also holds the success row; without it (the body calls a broker) the body uses
    ``entry.transaction()`` for its final write, or the row is written after it."""
    if owner_id is None:
        owner_id = api_key.owner_id if api_key is not None else getattr(context.actor, "pk", None)
    entry = AuditEntry(
        action=action,
        context=context,
        api_key=api_key,
        owner_id=owner_id,
        purpose=purpose,
        target=target,
    )
    try:
        ensure_not_locked_out(context)
        if atomic:
            with entry.transaction():
                yield entry
        else:
            yield entry
            entry.write()
    except DomainError as exc:
        _write_failure(entry, f"{exc.code}: {exc.message}", exc.code)
        raise
    except Exception as exc:
        _write_failure(entry, f"error: {type(exc).__name__}", "error")
        raise


def _write_failure(entry: AuditEntry, reason: str, code: str) -> None:
    entry.written = False
    entry.fail(reason, code=code)
    try:
        entry.write()
    except Exception:
        # Never mask the original error; say (without details) that the trail has a gap.
        logger.exception("could not write the audit row of a failed %s", entry.action)
