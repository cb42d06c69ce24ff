"""Broker API keys (encrypted at rest) and their append-only audit log."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.apikeys.crypto import mask
from apps.apikeys.fields import EncryptedField


class ApiKey(models.Model):
    """One pair of broker credentials (key id + secret) of one trader.

    Rotation never edits credentials in place: it retires this row (status ``rotated``, its
    ciphertexts erased) and creates the successor (``rotated_from``) in one transaction. All
    the rows of one chain share ``lineage``. At most one *current* key (active or invalid) per
    trading account and per name.
    """

    class Broker(models.TextChoices):
        ALPACA = "alpaca", "Alpaca"

    class Environment(models.TextChoices):
        PAPER = "paper", "Paper"
        LIVE = "live", "Live"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        INVALID = "invalid", "Invalid"
        ROTATED = "rotated", "Rotated"
        REVOKED = "revoked", "Revoked"

    CURRENT_STATUSES = (Status.ACTIVE, Status.INVALID)
    RETIRED_STATUSES = (Status.ROTATED, Status.REVOKED)

    # The record's identity in the associated data: both exist before the INSERT.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    lineage = models.UUIDField(default=uuid.uuid4, editable=False, db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    account = models.ForeignKey(
        "accounts.TradingAccount",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_keys",
        help_text="The trading account that trades with this key.",
    )
    name = models.CharField(max_length=100)
    broker = models.CharField(max_length=16, choices=Broker.choices, default=Broker.ALPACA)
    environment = models.CharField(
        max_length=8, choices=Environment.choices, default=Environment.PAPER
    )

    key_id = EncryptedField(associated_data=("owner_id", "uid"))
    secret = EncryptedField(associated_data=("owner_id", "uid"), fingerprint_field="fingerprint")
    key_id_last4 = models.CharField(max_length=4, blank=True)
    secret_last4 = models.CharField(max_length=4, blank=True)
    fingerprint = models.CharField(
        max_length=32, blank=True, db_index=True, help_text="HMAC-SHA256 of the secret (hex)."
    )

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(max_length=255, blank=True)

    last_verified_at = models.DateTimeField(null=True, blank=True)
    last_verification_ok = models.BooleanField(null=True, blank=True)
    last_verification_message = models.CharField(max_length=255, blank=True)
    broker_account_id = models.CharField(max_length=64, blank=True)
    broker_account_status = models.CharField(max_length=32, blank=True)

    last_used_at = models.DateTimeField(null=True, blank=True)
    use_count = models.PositiveBigIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)

    rotated_from = models.OneToOneField(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="rotated_to",
        help_text="The key this one replaced.",
    )
    retired_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner_id", "-created_at", "-id"]
        verbose_name = "API key"
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=models.Q(status__in=["active", "invalid"]),
                name="apikey_one_current_key_per_account",
            ),
            models.UniqueConstraint(
                fields=["owner", "name"],
                condition=models.Q(status__in=["active", "invalid"]),
                name="apikey_unique_current_name_per_owner",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "invalid", "rotated", "revoked"]),
                name="apikey_status_valid",
            ),
            # A current key always has its credentials; a retired key never keeps them.
            models.CheckConstraint(
                condition=(
                    models.Q(
                        status__in=["active", "invalid"],
                        key_id__isnull=False,
                        secret__isnull=False,
                    )
                    | models.Q(
                        status__in=["rotated", "revoked"],
                        key_id__isnull=True,
                        secret__isnull=True,
                    )
                ),
                name="apikey_credentials_only_while_current",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.environment} {self.key_id_masked})"

    @property
    def key_id_masked(self) -> str:
        return mask(None, last4=self.key_id_last4)

    @property
    def secret_masked(self) -> str:
        return mask(None, last4=self.secret_last4)

    @property
    def is_current(self) -> bool:
        return self.status in self.CURRENT_STATUSES

    @property
    def paper(self) -> bool:
        return self.environment == self.Environment.PAPER

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def status_tone(self) -> str:
        if self.status == self.Status.ACTIVE:
            return "warning" if self.is_expired() else "success"
        return {"invalid": "danger", "rotated": "muted", "revoked": "muted"}[self.status]


class AppendOnlyError(Exception):
    """Audit rows are never changed or deleted."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("The API key audit log is append-only.")

    def delete(self):
        raise AppendOnlyError("The API key audit log is append-only.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("The API key audit log is append-only.")


class ApiKeyAuditLog(models.Model):
    """What happened to API keys, successful or not. Append-only: the model refuses updates and
    deletes, and on PostgreSQL a trigger refuses UPDATE and DELETE statements too.

    The references are plain ids without database constraints, so rows outlive the keys and
    users they name (``actor_username`` keeps the name).
    """

    class Action(models.TextChoices):
        CREATE = "create", "Create"
        LIST = "list", "List"
        VIEW = "view", "View"
        UPDATE = "update", "Update"
        VERIFY = "verify", "Verify"
        ROTATE = "rotate", "Rotate"
        REVOKE = "revoke", "Revoke"
        DELETE = "delete", "Delete"
        USE = "use", "Decrypt for use"
        AUDIT = "audit", "Read audit log"
        USAGE = "usage", "Read usage"
        REENCRYPT = "reencrypt", "Re-encrypt (master key rotation)"

    class Channel(models.TextChoices):
        API = "api", "API"
        PAGE = "page", "Page"
        ADMIN = "admin", "Admin"
        SYSTEM = "system", "System"
        COMMAND = "command", "Command"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    success = models.BooleanField()
    reason = models.CharField(max_length=255, blank=True)
    api_key = models.ForeignKey(
        ApiKey,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="audit_entries",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        help_text="Owner of the key concerned.",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who acted; empty for the system (the execution path, commands).",
    )
    actor_username = models.CharField(max_length=150, blank=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)
    purpose = models.CharField(max_length=64, blank=True)
    target = models.CharField(
        max_length=64, blank=True, help_text="The key id that was asked for (refused lookups)."
    )
    data = models.JSONField(default=dict, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "API key audit entry"
        verbose_name_plural = "API key audit log"
        indexes = [
            models.Index(fields=["api_key", "at"], name="apikey_audit_key_at"),
            models.Index(fields=["owner", "at"], name="apikey_audit_owner_at"),
            models.Index(fields=["actor", "at"], name="apikey_audit_actor_at"),
        ]

    def __str__(self) -> str:
        outcome = "ok" if self.success else f"failed: {self.reason}"
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} key={self.api_key_id} {outcome}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("The API key audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("The API key audit log is append-only.")
