"""Every write of API keys: create, update, verify, rotate, revoke, delete, decryption for use,
the audit rows of reads, and master key rotation. Each one is audited (``audit.audited``).

Plaintext credentials live only in local variables of these functions (marked sensitive, so
Django's error reports hide them) and in ``Secret`` objects whose repr is a mask; they are never
logged, never put in an exception message and never returned except by
``api_key_credentials_for_use``, whose result hides them in its repr.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F, Model, Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from apps.apikeys import ratelimit
from apps.apikeys.audit import Action, AuditContext, audit_write, audited, ensure_not_locked_out
from apps.apikeys.brokers import (
    AccountCheck,
    AlpacaCredentials,
    alpaca_account_check,
    alpaca_base_url,
)
from apps.apikeys.crypto import DecryptionError, Keyring, Secret, token_prefix
from apps.apikeys.fields import EncryptedField, encrypted_models, reveal
from apps.apikeys.keyring import get_keyring
from apps.apikeys.models import ApiKey
from apps.core.errors import Conflict, DomainError, ValidationFailed

if TYPE_CHECKING:
    from apps.accounts.models import TradingAccount, User

logger = logging.getLogger(__name__)

Status = ApiKey.Status

# Alpaca key ids are 20 upper-case letters and digits, secrets 40 characters; accept a little
# more so a format change at the broker does not lock traders out, and nothing that could be
# a pasting accident (spaces, quotes, line breaks).
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9]{16,64}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{20,128}$")
_PURPOSE_RE = re.compile(r"^[a-z0-9_.:-]{1,64}$")
_UNSET = object()


class BrokerUnavailable(DomainError):
    status_code = 503
    default_code = "broker_unavailable"


class CredentialsUnavailable(Conflict):
    """The execution path cannot have credentials for this account (no key, invalid, ...)."""

    default_code = "api_key_unavailable"


# --- helpers --------------------------------------------------------------------------------


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("A key needs a name.", fields={"name": "This field is required."})
    if len(name) > 100:
        raise ValidationFailed("The name is too long.", fields={"name": "At most 100 characters."})
    return name


def _clean_environment(environment: str) -> str:
    if environment not in ApiKey.Environment.values:
        raise ValidationFailed(
            "The environment is paper or live.",
            fields={"environment": "Choose paper or live."},
        )
    return environment


@sensitive_variables("key_id", "secret_key")
def _clean_credentials(key_id: str | Secret, secret_key: str | Secret) -> tuple[Secret, Secret]:
    # Messages describe the expected shape and never repeat what was sent.
    key_id = Secret(key_id if key_id is not None else "")
    secret_key = Secret(secret_key if secret_key is not None else "")
    errors = {}
    if not _KEY_ID_RE.match(key_id.reveal().strip()):
        errors["key_id"] = "A key id is 16 to 64 letters and digits."
    if not _SECRET_RE.match(secret_key.reveal().strip()):
        errors["secret_key"] = "A secret key is 20 to 128 characters without spaces."
    if errors:
        raise ValidationFailed(
            "These credentials do not look like Alpaca API keys.", code="invalid", fields=errors
        )
    return Secret(key_id.reveal().strip()), Secret(secret_key.reveal().strip())


def _check_account(
    *, owner: User, account: TradingAccount | None, exclude: ApiKey | None = None
) -> None:
    if account is None:
        return
    if account.owner_id != owner.pk:
        raise ValidationFailed("No such account.", fields={"account": "No such account."})
    if account.broker != "alpaca":
        raise ValidationFailed(
            f"{account.name} trades through the paper broker; only Alpaca accounts use API keys.",
            code="account_not_alpaca",
            fields={"account": "Choose an Alpaca account."},
        )
    taken = ApiKey.objects.filter(account=account, status__in=ApiKey.CURRENT_STATUSES)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    if taken.exists():
        raise Conflict(
            f"{account.name} already uses another key; rotate that key instead.",
            code="account_has_key",
            fields={"account": "This account already uses another key."},
        )


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed(
            "The expiry must be in the future.", fields={"expires_at": "Must be in the future."}
        )


def _integrity_conflict(exc: IntegrityError) -> Conflict:
    # PostgreSQL names the constraint; SQLite (the embedded default) names its columns.
    text = str(exc)
    if "apikey_unique_current_name_per_owner" in text or text.endswith(
        "apikeys_apikey.owner_id, apikeys_apikey.name"
    ):
        return Conflict(
            "You already have a key with this name.",
            code="duplicate_name",
            fields={"name": "You already have a key with this name."},
        )
    if "apikey_one_current_key_per_account" in text or text.endswith("apikeys_apikey.account_id"):
        return Conflict(
            "This account already uses another key; rotate that key instead.",
            code="account_has_key",
            fields={"account": "This account already uses another key."},
        )
    return Conflict("The key could not be saved; try again.", code="conflict")


@sensitive_variables("key_id", "secret_key")
def _set_credentials(key: ApiKey, key_id: Secret, secret_key: Secret, keyring: Keyring) -> None:
    key.key_id = key_id
    key.secret = secret_key
    key.key_id_last4 = key_id.last4
    key.secret_last4 = secret_key.last4
    key.fingerprint = keyring.fingerprint(secret_key.reveal())


def _erase_credentials(key: ApiKey) -> None:
    """Retired keys keep their masks and fingerprint for the history, never the credentials."""
    key.key_id = None
    key.secret = None


def _apply_check(key: ApiKey, check: AccountCheck, at: datetime) -> None:
    key.last_verified_at = at
    key.last_verification_ok = check.ok
    key.last_verification_message = check.message[:255]
    if check.ok:
        key.broker_account_id = check.account_id[:64]
        key.broker_account_status = check.account_status[:32]


_CHECK_FIELDS = [
    "last_verified_at",
    "last_verification_ok",
    "last_verification_message",
    "broker_account_id",
    "broker_account_status",
]


def _consume_verification(context: AuditContext) -> None:
    """Verifications call the broker: limited per user (``APIKEYS_VERIFY_RATE``)."""
    ident = str(context.actor.pk) if context.actor is not None else "system"
    allowed, retry_after = ratelimit.hit("verify", ident, settings.APIKEYS_VERIFY_RATE)
    if not allowed:
        raise ratelimit.RateLimited(
            f"Too many verifications; try again in {retry_after} seconds.",
            retry_after=retry_after,
        )


@sensitive_variables("key_id", "secret_key")
def _check_new_credentials(
    *, environment: str, key_id: Secret, secret_key: Secret, context: AuditContext
) -> AccountCheck:
    _consume_verification(context)
    check = alpaca_account_check(
        AlpacaCredentials(
            api_key_id=0,
            environment=environment,
            base_url=alpaca_base_url(environment),
            fingerprint="",
            key_id=key_id.reveal(),
            secret_key=secret_key.reveal(),
        )
    )
    if check.rejected:
        raise ValidationFailed(
            f"{check.message} Check the key id, the secret and the environment.",
            code="credentials_rejected",
            fields={"secret_key": "Alpaca refused these credentials."},
        )
    if not check.ok:
        raise BrokerUnavailable(check.message)
    return check


def _require_current(key: ApiKey) -> None:
    if not key.is_current:
        raise Conflict(
            f"This key is {key.get_status_display().lower()}; nothing can change it any more.",
            code="key_retired",
        )


def _credentials(key: ApiKey) -> AlpacaCredentials:
    try:
        key_id, secret = reveal(key, "key_id"), reveal(key, "secret")
    except DecryptionError as exc:
        logger.error("API key %s could not be decrypted: %s", key.pk, exc)
        raise CredentialsUnavailable(
            "The stored key could not be decrypted; ask an operator to check the master keys.",
            code="api_key_undecryptable",
        ) from None
    return AlpacaCredentials(
        api_key_id=key.pk,
        environment=key.environment,
        base_url=alpaca_base_url(key.environment),
        fingerprint=key.fingerprint,
        key_id=key_id,
        secret_key=secret,
    )


# --- create, update -------------------------------------------------------------------------


@sensitive_variables("key_id", "secret_key", "clean_key_id", "clean_secret")
def api_key_create(
    *,
    owner: User,
    name: str,
    environment: str,
    key_id: str | Secret,
    secret_key: str | Secret,
    context: AuditContext,
    account: TradingAccount | None = None,
    expires_at: datetime | None = None,
    verify: bool = False,
) -> ApiKey:
    """Store a new key, encrypted; with ``verify`` Alpaca must accept it first."""
    with audited(Action.CREATE, context=context, owner_id=owner.pk, atomic=False) as entry:
        name = _clean_name(name)
        environment = _clean_environment(environment)
        clean_key_id, clean_secret = _clean_credentials(key_id, secret_key)
        _check_account(owner=owner, account=account)
        _check_expiry(expires_at)
        keyring = get_keyring()
        fingerprint = keyring.fingerprint(clean_secret.reveal())
        if ApiKey.objects.filter(
            owner=owner, fingerprint=fingerprint, status__in=ApiKey.CURRENT_STATUSES
        ).exists():
            raise Conflict(
                "This key is already stored.",
                code="duplicate_key",
                fields={"secret_key": "You already stored this key."},
            )
        check = None
        if verify:
            check = _check_new_credentials(
                environment=environment,
                key_id=clean_key_id,
                secret_key=clean_secret,
                context=context,
            )
        key = ApiKey(
            owner=owner, name=name, environment=environment, account=account, expires_at=expires_at
        )
        _set_credentials(key, clean_key_id, clean_secret, keyring)
        if check is not None:
            _apply_check(key, check, timezone.now())
        entry.data = {"environment": environment, "verified": check is not None}
        try:
            with entry.transaction():
                key.save()
                entry.api_key = key
        except IntegrityError as exc:
            entry.api_key = None
            raise _integrity_conflict(exc) from None
    return key


def api_key_update(
    *,
    api_key: ApiKey,
    context: AuditContext,
    name: str | None = None,
    environment: str | None = None,
    account=_UNSET,
    expires_at=_UNSET,
) -> ApiKey:
    """Rename, change the environment, the trading account or the expiry. Credentials change
    only by rotation. A new environment needs a new verification."""
    with audited(Action.UPDATE, context=context, api_key=api_key) as entry:
        key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        _require_current(key)
        changed: list[str] = []
        if name is not None and _clean_name(name) != key.name:
            key.name = _clean_name(name)
            changed.append("name")
        if environment is not None and _clean_environment(environment) != key.environment:
            key.environment = environment
            key.last_verified_at = None
            key.last_verification_ok = None
            key.last_verification_message = ""
            key.broker_account_id = ""
            key.broker_account_status = ""
            if key.status == Status.INVALID:
                key.status, key.status_reason = Status.ACTIVE, ""
            changed += ["environment", "status", "status_reason", *_CHECK_FIELDS]
        if account is not _UNSET and getattr(account, "pk", None) != key.account_id:
            _check_account(owner=key.owner, account=account, exclude=key)
            key.account = account
            changed.append("account")
        if expires_at is not _UNSET and expires_at != key.expires_at:
            _check_expiry(expires_at)
            key.expires_at = expires_at
            changed.append("expires_at")
        entry.data = {
            "changed": sorted(
                {f for f in changed if f in ("name", "environment", "account", "expires_at")}
            )
        }
        if changed:
            try:
                with transaction.atomic():
                    key.save(update_fields=[*dict.fromkeys(changed), "updated_at"])
            except IntegrityError as exc:
                raise _integrity_conflict(exc) from None
    return key


# --- verify, rotate -------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    api_key: ApiKey
    verified: bool
    rejected: bool
    message: str


def api_key_verify(*, api_key: ApiKey, context: AuditContext) -> Verification:
    """Ask Alpaca for the account with the stored credentials and record the answer.

    Accepted: the key is active. Refused (401/403): the key becomes invalid. Alpaca
    unreachable, rate limiting or failing: ``BrokerUnavailable`` and the key is unchanged.
    """
    with audited(Action.VERIFY, context=context, api_key=api_key, atomic=False) as entry:
        _require_current(api_key)
        _consume_verification(context)
        check = alpaca_account_check(_credentials(api_key))
        if not check.ok and not check.rejected:
            raise BrokerUnavailable(check.message)
        entry.data = {"http_status": check.http_status, "broker_status": check.account_status}
        if check.rejected:
            entry.fail(check.message, code="credentials_rejected")
        with entry.transaction():
            key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
            _apply_check(key, check, timezone.now())
            fields = list(_CHECK_FIELDS)
            if check.ok and key.status == Status.INVALID:
                key.status, key.status_reason = Status.ACTIVE, ""
                fields += ["status", "status_reason"]
            elif check.rejected and key.status == Status.ACTIVE:
                key.status, key.status_reason = Status.INVALID, check.message[:255]
                fields += ["status", "status_reason"]
            key.save(update_fields=[*fields, "updated_at"])
    return Verification(
        api_key=key, verified=check.ok, rejected=check.rejected, message=check.message
    )


@sensitive_variables("key_id", "secret_key", "clean_key_id", "clean_secret")
def api_key_rotate(
    *,
    api_key: ApiKey,
    key_id: str | Secret,
    secret_key: str | Secret,
    context: AuditContext,
    verify: bool = True,
) -> ApiKey:
    """Replace the key's credentials: the successor row and the retirement of this one commit
    together, under a lock on this row.

    A reader (``api_key_credentials_for_use``) reads one row in one statement, so it gets the
    old pair or the new pair, never a mix; an order already sent with the old pair completes
    with it. With ``verify`` (the default) Alpaca must accept the new pair first and, when the
    old key was verified, it must open the same Alpaca account.
    """
    with audited(Action.ROTATE, context=context, api_key=api_key, atomic=False) as entry:
        _require_current(api_key)
        clean_key_id, clean_secret = _clean_credentials(key_id, secret_key)
        keyring = get_keyring()
        if keyring.fingerprint(clean_secret.reveal()) == api_key.fingerprint:
            raise ValidationFailed(
                "The new secret is the same as the current one.",
                code="same_credentials",
                fields={"secret_key": "Enter the new secret key."},
            )
        check = None
        if verify:
            check = _check_new_credentials(
                environment=api_key.environment,
                key_id=clean_key_id,
                secret_key=clean_secret,
                context=context,
            )
            if api_key.broker_account_id and check.account_id != api_key.broker_account_id:
                raise Conflict(
                    "The new key opens a different Alpaca account than the current one.",
                    code="different_broker_account",
                    fields={"key_id": "This key belongs to another Alpaca account."},
                )
        with entry.transaction():
            old = ApiKey.objects.select_for_update().get(pk=api_key.pk)
            _require_current(old)
            now = timezone.now()
            old.status = Status.ROTATED
            old.status_reason = "Replaced by a new key."
            old.retired_at = now
            _erase_credentials(old)
            old.save(
                update_fields=[
                    "status",
                    "status_reason",
                    "retired_at",
                    "key_id",
                    "secret",
                    "updated_at",
                ]
            )
            new = ApiKey(
                owner_id=old.owner_id,
                lineage=old.lineage,
                name=old.name,
                broker=old.broker,
                environment=old.environment,
                account_id=old.account_id,
                rotated_from=old,
                broker_account_id=old.broker_account_id,
                broker_account_status=old.broker_account_status,
            )
            _set_credentials(new, clean_key_id, clean_secret, keyring)
            if check is not None:
                _apply_check(new, check, now)
            new.save()
            entry.data = {"new_key": new.pk, "verified": check is not None}
            audit_write(
                action=Action.CREATE,
                success=True,
                context=context,
                api_key=new,
                reason=f"Created by rotating key {old.pk}.",
                data={"rotated_from": old.pk},
            )
    return new


# --- revoke, delete -------------------------------------------------------------------------


def _revoke_locked(key: ApiKey, *, reason: str) -> None:
    key.status = Status.REVOKED
    key.status_reason = reason[:255]
    key.retired_at = timezone.now()
    _erase_credentials(key)
    key.save(
        update_fields=["status", "status_reason", "retired_at", "key_id", "secret", "updated_at"]
    )


def api_key_revoke(*, api_key: ApiKey, context: AuditContext, reason: str = "") -> ApiKey:
    """Stop using the key for good: its credentials are erased, its history stays."""
    with audited(Action.REVOKE, context=context, api_key=api_key):
        key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        _require_current(key)
        _revoke_locked(key, reason=reason or "Revoked.")
    return key


def api_key_delete(*, api_key: ApiKey, context: AuditContext) -> ApiKey:
    """Revoke (when still current) and hide from the key list; the audit trail stays and the
    key can still be looked up by id."""
    with audited(Action.DELETE, context=context, api_key=api_key) as entry:
        key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        entry.data = {"status_before": key.status}
        if key.is_current:
            _revoke_locked(key, reason="Deleted.")
        if key.deleted_at is None:
            key.deleted_at = timezone.now()
            key.save(update_fields=["deleted_at", "updated_at"])
    return key


# --- reads that are audited -----------------------------------------------------------------


def api_key_list_viewed(*, owner: User, context: AuditContext) -> None:
    with audited(Action.LIST, context=context, owner_id=owner.pk):
        pass


def api_key_viewed(*, api_key: ApiKey, context: AuditContext, action: str = Action.VIEW) -> None:
    """A read of the masked view (or of its audit log / usage) of one key."""
    with audited(action, context=context, api_key=api_key):
        pass


def api_key_access_refused(*, requested_id: object, action: str, context: AuditContext) -> None:
    """Someone asked for a key that is not theirs (or does not exist): audit it, with the real
    owner when the key exists, and count it as a failed attempt. The caller answers 404 (or
    429 when the actor is locked out, which is audited the same way)."""
    target = str(requested_id)[:64]
    key = None
    if target.isdigit() and len(target) <= 18:
        key = ApiKey.objects.filter(pk=int(target)).only("pk", "owner_id").first()
    owner_id = key.owner_id if key is not None else None
    mine = key is not None and context.actor is not None and owner_id == context.actor.pk
    record = {
        "action": action,
        "success": False,
        "context": context,
        "api_key": key,
        "owner_id": owner_id,
        "target": target,
    }
    try:
        ensure_not_locked_out(context)
    except ratelimit.RateLimited as exc:
        audit_write(reason=f"{exc.code}: {exc.message}", code=exc.code, **record)
        raise
    reason = "not_found: No such API key." if key is None or mine else "not_owner: Not yours."
    audit_write(reason=reason, code="not_found", **record)


# --- the execution path ---------------------------------------------------------------------


def api_key_credentials_for_use(
    *, account: TradingAccount, purpose: str, context: AuditContext | None = None
) -> AlpacaCredentials:
    """Decrypted credentials of the account's key, for one broker call (``purpose`` says which,
    e.g. ``submit_order``). Every call is audited and counted in the key's usage.

    Raises ``CredentialsUnavailable`` (409) when the account has no usable key: none, invalid
    (Alpaca refused it at the last verification), expired, or undecryptable. Call it outside a
    transaction, right before the broker call, and keep the result only for that call.
    """
    context = context or AuditContext.system()
    if not _PURPOSE_RE.match(purpose or ""):
        raise ValueError("purpose is 1-64 characters of a-z, 0-9 and _.:-")
    with audited(
        Action.USE, context=context, owner_id=account.owner_id, purpose=purpose, atomic=False
    ) as entry:
        if account.broker != "alpaca":
            raise CredentialsUnavailable(
                f"{account.name} trades through the {account.broker} broker, without API keys.",
                code="api_key_not_needed",
            )
        # One statement reads the whole row: the old credentials or the new ones, never a mix.
        key = ApiKey.objects.filter(
            account_id=account.pk, status__in=ApiKey.CURRENT_STATUSES
        ).first()
        if key is None:
            raise CredentialsUnavailable(
                f"{account.name} has no Alpaca API key; add one on the API keys page.",
                code="api_key_missing",
            )
        entry.api_key = key
        if key.owner_id != account.owner_id:
            raise CredentialsUnavailable(
                "The account's key belongs to someone else.", code="api_key_owner_mismatch"
            )
        if key.status == Status.INVALID:
            raise CredentialsUnavailable(
                f"Alpaca refused the key {key.name!r} at its last verification; rotate it.",
                code="api_key_invalid",
            )
        now = timezone.now()
        if key.is_expired(now):
            raise CredentialsUnavailable(
                f"The key {key.name!r} expired; rotate it.", code="api_key_expired"
            )
        credentials = _credentials(key)
        with entry.transaction():
            ApiKey.objects.filter(pk=key.pk).update(use_count=F("use_count") + 1, last_used_at=now)
        return credentials


# --- master key rotation --------------------------------------------------------------------


@dataclass
class ReencryptReport:
    model: str
    rows: int = 0
    batches: int = 0
    failures: list[tuple[object, str]] = field(default_factory=list)


def _stale_filter(fields: list[EncryptedField], prefix: str) -> Q:
    stale = Q()
    for f in fields:
        stale |= Q(**{f"{f.attname}__isnull": False}) & ~Q(**{f"{f.attname}__startswith": prefix})
    return stale


def _write_columns(model: type[Model], rows: list[Model], attnames: list[str]) -> None:
    """One prepared UPDATE per row, sent as a batch (``bulk_update``'s CASE expressions cost
    ten times more here). The values are tokens and fingerprints this module just made."""
    opts = model._meta
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    columns = [opts.get_field(name).column for name in attnames]
    assignments = ", ".join(f"{quote(column)} = %s" for column in columns)
    sql = f"UPDATE {quote(opts.db_table)} SET {assignments} WHERE {quote(opts.pk.column)} = %s"
    with connection.cursor() as cursor:
        cursor.executemany(
            sql, [[getattr(row, name) for name in attnames] + [row.pk] for row in rows]
        )


def secrets_reencrypt_batch(
    *,
    model: type[Model],
    fields: list[EncryptedField],
    after_pk: object = None,
    batch_size: int = 500,
    keyring: Keyring | None = None,
) -> tuple[int, object, list[tuple[object, str]]]:
    """Re-encrypt up to ``batch_size`` rows (after ``after_pk``) still under an older master key
    version, in one transaction with the rows locked. Returns (rows re-encrypted, last pk
    looked at, failures). A row that does not decrypt is left as it is and reported."""
    keyring = keyring or get_keyring()
    prefix = token_prefix(keyring.current_version)
    manager = model._base_manager
    with transaction.atomic():
        query = manager.select_for_update(of=("self",)).filter(_stale_filter(fields, prefix))
        if after_pk is not None:
            query = query.filter(pk__gt=after_pk)
        rows = list(query.order_by("pk")[:batch_size])
        if not rows:
            return 0, after_pk, []
        changed, failures = [], []
        update_fields = {f.attname for f in fields} | {
            f.fingerprint_field for f in fields if f.fingerprint_field
        }
        for row in rows:
            try:
                for f in fields:
                    token = getattr(row, f.attname)
                    if not token or token.startswith(prefix):
                        continue
                    aad = f.associated_data_for(row)
                    plain = keyring.decrypt(token, associated_data=aad)
                    setattr(row, f.attname, keyring.encrypt(plain, associated_data=aad))
                    if f.fingerprint_field:
                        setattr(row, f.fingerprint_field, keyring.fingerprint(plain))
                    del plain
                changed.append(row)
            except (DecryptionError, ValueError) as exc:
                failures.append((row.pk, str(exc)))
        if changed:
            _write_columns(model, changed, sorted(update_fields))
        audit_write(
            action=Action.REENCRYPT,
            success=not failures,
            context=AuditContext.command(),
            reason=f"{len(failures)} row(s) did not decrypt." if failures else "",
            data={
                "model": model._meta.label,
                "rows": len(changed),
                "failed": [str(pk) for pk, _ in failures][:50],
                "version": keyring.current_version,
            },
        )
    return len(changed), rows[-1].pk, failures


def master_key_rotate(
    *,
    batch_size: int = 500,
    pause_seconds: float = 0.0,
    max_batches: int | None = None,
    progress: Callable[[ReencryptReport], None] | None = None,
) -> list[ReencryptReport]:
    """Re-encrypt every secret of every model with an ``EncryptedField`` under the current
    master key version. Resumable: each batch commits on its own and the next run simply finds
    the rows still under an older version, so stopping at any point loses nothing."""
    keyring = get_keyring()
    reports = []
    batches = 0
    for model, fields in encrypted_models():
        report = ReencryptReport(model=model._meta.label)
        reports.append(report)
        after = None
        while max_batches is None or batches < max_batches:
            count, after, failures = secrets_reencrypt_batch(
                model=model, fields=fields, after_pk=after, batch_size=batch_size, keyring=keyring
            )
            if after is None or (count == 0 and not failures):
                break
            batches += 1
            report.batches += 1
            report.rows += count
            report.failures += failures
            if progress is not None:
                progress(report)
            if pause_seconds:
                time.sleep(pause_seconds)
    return reports
