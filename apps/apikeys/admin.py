"""Admin: keys are read-only (masks and fingerprints only, never ciphertexts) with a revoke
action that goes through the service; the audit log can be read and nothing else."""

from __future__ import annotations

from django.contrib import admin, messages

from apps.apikeys.audit import Channel, audit_context
from apps.apikeys.models import ApiKey, ApiKeyAuditLog
from apps.apikeys.services import api_key_revoke
from apps.core.errors import DomainError

_KEY_FIELDS = (
    "name",
    "owner",
    "account",
    "broker",
    "environment",
    "status",
    "status_reason",
    "key_id_masked",
    "secret_masked",
    "fingerprint",
    "last_verified_at",
    "last_verification_ok",
    "last_verification_message",
    "broker_account_status",
    "last_used_at",
    "use_count",
    "expires_at",
    "rotated_from",
    "retired_at",
    "deleted_at",
    "created_at",
    "updated_at",
)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "owner",
        "environment",
        "status",
        "key_id_masked",
        "fingerprint_short",
        "last_verified_at",
        "use_count",
        "created_at",
    )
    list_filter = ("status", "environment", "broker")
    search_fields = ("name", "owner__username", "fingerprint")
    list_select_related = ("owner",)
    fields = _KEY_FIELDS
    readonly_fields = _KEY_FIELDS
    actions = ("revoke_keys",)

    @admin.display(description="Fingerprint")
    def fingerprint_short(self, key: ApiKey) -> str:
        return key.fingerprint[:16]

    def get_queryset(self, request):
        # The ciphertexts never leave the database through the admin.
        return super().get_queryset(request).defer("key_id", "secret")

    def has_add_permission(self, request) -> bool:
        return False  # keys are added by their owners, who type the secret

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting is revoking; audit rows refer to keys

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("apikeys.change_apikey")

    @admin.action(description="Revoke the selected keys", permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        context = audit_context(request, Channel.ADMIN)
        done = 0
        for key in queryset:
            try:
                api_key_revoke(
                    api_key=key,
                    context=context,
                    reason=f"Revoked by {request.user.get_username()} (admin).",
                )
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{key}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Revoked {done} key(s).", messages.WARNING)


@admin.register(ApiKeyAuditLog)
class ApiKeyAuditLogAdmin(admin.ModelAdmin):
    list_display = ("at", "action", "success", "reason", "api_key_id", "actor_username", "channel")
    list_filter = ("action", "success", "channel")
    search_fields = ("actor_username", "reason", "target")
    date_hierarchy = "at"
    fields = (
        "at",
        "action",
        "success",
        "reason",
        "api_key_id",
        "owner_id",
        "actor_id",
        "actor_username",
        "channel",
        "ip_address",
        "user_agent",
        "purpose",
        "target",
        "data",
    )
    readonly_fields = fields
    actions = None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
