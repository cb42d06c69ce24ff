"""REST API of broker API keys under ``/api/v1/api-keys/``.

Secrets are write-only: responses carry masks (last four characters) and the fingerprint,
never a key id or secret, encrypted or not. Every call is audited, including refusals; another
user's key id answers 404 exactly like a missing one (and that attempt is audited too).
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from django.views.decorators.debug import sensitive_variables
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.api import OwnAccountField
from apps.apikeys.audit import Action, Channel, audit_context
from apps.apikeys.crypto import Secret
from apps.apikeys.models import ApiKey, ApiKeyAuditLog
from apps.apikeys.ratelimit import RateLimited
from apps.apikeys.selectors import (
    api_key_for_user,
    api_key_history,
    api_key_usage,
    api_keys_for_user,
    audit_entries_for_key,
)
from apps.apikeys.services import (
    api_key_access_refused,
    api_key_create,
    api_key_delete,
    api_key_list_viewed,
    api_key_revoke,
    api_key_rotate,
    api_key_update,
    api_key_verify,
    api_key_viewed,
)

_SECRET_STYLE = {"input_type": "password"}


class SecretField(serializers.CharField):
    """Write-only; the validated value is a ``Secret`` (masked repr), never echoed back."""

    def __init__(self, **kwargs) -> None:
        kwargs.update(write_only=True, max_length=256, trim_whitespace=True, style=_SECRET_STYLE)
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty) -> Secret:
        return Secret(super().run_validation(data))


def _secret_field(help_text: str) -> SecretField:
    # Bounded so junk is refused early; the service checks the shape.
    return SecretField(help_text=help_text)


# --- serializers ----------------------------------------------------------------------------


class ApiKeySerializer(serializers.ModelSerializer):
    key_id_masked = serializers.CharField(read_only=True, help_text="Last four characters.")
    secret_masked = serializers.CharField(read_only=True, help_text="Last four characters.")
    is_expired = serializers.SerializerMethodField()
    rotated_to = serializers.SerializerMethodField(help_text="The key that replaced this one.")

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "broker",
            "environment",
            "status",
            "status_reason",
            "key_id_masked",
            "secret_masked",
            "fingerprint",
            "account",
            "last_verified_at",
            "last_verification_ok",
            "last_verification_message",
            "broker_account_status",
            "last_used_at",
            "use_count",
            "expires_at",
            "is_expired",
            "rotated_from",
            "rotated_to",
            "retired_at",
            "deleted_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_is_expired(self, key: ApiKey) -> bool:
        return key.is_expired()

    def get_rotated_to(self, key: ApiKey) -> int | None:
        try:
            return key.rotated_to.pk
        except ObjectDoesNotExist:
            return None


class ApiKeyHistorySerializer(serializers.ModelSerializer):
    key_id_masked = serializers.CharField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "status", "key_id_masked", "fingerprint", "created_at", "retired_at"]
        read_only_fields = fields


class ApiKeyDetailSerializer(ApiKeySerializer):
    history = serializers.SerializerMethodField(
        help_text="The rotation chain, oldest first (this key included)."
    )

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "history"]
        read_only_fields = fields

    @extend_schema_field(ApiKeyHistorySerializer(many=True))
    def get_history(self, key: ApiKey) -> list[dict]:
        return ApiKeyHistorySerializer(api_key_history(api_key=key), many=True).data


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    environment = serializers.ChoiceField(
        choices=ApiKey.Environment.choices, default=ApiKey.Environment.PAPER
    )
    key_id = _secret_field("The Alpaca API key id (write-only).")
    secret_key = _secret_field("The Alpaca secret key (write-only).")
    account = OwnAccountField(
        required=False, allow_null=True, help_text="One of your Alpaca trading accounts."
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    verify = serializers.BooleanField(
        default=False, help_text="Ask Alpaca first and refuse credentials it does not accept."
    )


class ApiKeyUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    environment = serializers.ChoiceField(choices=ApiKey.Environment.choices, required=False)
    account = OwnAccountField(required=False, allow_null=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyRotateSerializer(serializers.Serializer):
    key_id = _secret_field("The new API key id (write-only).")
    secret_key = _secret_field("The new secret key (write-only).")
    verify = serializers.BooleanField(
        default=True, help_text="Ask Alpaca first (recommended): refused keys are not stored."
    )


class VerificationSerializer(serializers.Serializer):
    verified = serializers.BooleanField(help_text="Alpaca accepted the credentials.")
    rejected = serializers.BooleanField(help_text="Alpaca refused them: the key is now invalid.")
    message = serializers.CharField()
    key = ApiKeySerializer(source="api_key")


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField(
        help_text='"you", "system", or "another user" (whose address is not shown).'
    )
    ip_address = serializers.SerializerMethodField()
    user_agent = serializers.SerializerMethodField()

    class Meta:
        model = ApiKeyAuditLog
        fields = [
            "id",
            "at",
            "action",
            "success",
            "reason",
            "actor",
            "channel",
            "ip_address",
            "user_agent",
            "purpose",
            "data",
        ]
        read_only_fields = fields

    def _own(self, entry: ApiKeyAuditLog) -> bool:
        return entry.actor_id is None or entry.actor_id == entry.owner_id

    def get_actor(self, entry: ApiKeyAuditLog) -> str:
        if entry.actor_id is None:
            return "system"
        return "you" if entry.actor_id == entry.owner_id else "another user"

    def get_ip_address(self, entry: ApiKeyAuditLog) -> str | None:
        return entry.ip_address if self._own(entry) else None

    def get_user_agent(self, entry: ApiKeyAuditLog) -> str:
        return entry.user_agent if self._own(entry) else ""


class DailyUsageSerializer(serializers.Serializer):
    day = serializers.DateField()
    uses = serializers.IntegerField()
    failures = serializers.IntegerField()


class UsageSerializer(serializers.Serializer):
    use_count = serializers.IntegerField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    last_verified_at = serializers.DateTimeField(allow_null=True)
    last_verification_ok = serializers.BooleanField(allow_null=True)
    uses = serializers.IntegerField(help_text="Successful decryptions for use (audit trail).")
    failed_uses = serializers.IntegerField()
    verifications = serializers.IntegerField()
    failed_verifications = serializers.IntegerField()
    uses_by_purpose = serializers.DictField(child=serializers.IntegerField())
    days = serializers.IntegerField()
    daily = DailyUsageSerializer(many=True, help_text="Uses per day over the last `days` days.")


class ApiKeyFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=ApiKey.Status.choices)
    environment = filters.ChoiceFilter(choices=ApiKey.Environment.choices)
    account = filters.NumberFilter(field_name="account_id")
    include_deleted = filters.BooleanFilter(
        method="_include_deleted", label="Include deleted keys (hidden by default)."
    )

    class Meta:
        model = ApiKey
        fields = ["status", "environment", "account"]

    def _include_deleted(self, queryset, name, value):
        return queryset  # applied in the view's queryset; declared here for validation and docs


# --- the viewset ----------------------------------------------------------------------------

_ERRORS = (
    "Another user's key id answers 404. Too many failed attempts (or verifications) answer 429 "
    "with Retry-After; Alpaca unreachable answers 503."
)
_AUDIT_ACTIONS = {
    "retrieve": Action.VIEW,
    "partial_update": Action.UPDATE,
    "destroy": Action.DELETE,
    "verify": Action.VERIFY,
    "rotate": Action.ROTATE,
    "revoke": Action.REVOKE,
    "audit": Action.AUDIT,
    "usage": Action.USAGE,
}


@extend_schema_view(
    list=extend_schema(summary="List your broker API keys (masked)", description=_ERRORS),
    retrieve=extend_schema(
        summary="One API key (masked) with its rotation history",
        responses=ApiKeyDetailSerializer,
        description=_ERRORS,
    ),
)
class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your broker API keys. Secrets go in, never out."""

    queryset = ApiKey.objects.none()
    serializer_class = ApiKeySerializer
    filterset_class = ApiKeyFilter
    ordering_fields = ["created_at", "name", "id"]
    ordering = ["-created_at", "-id"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        include_deleted = self.request.query_params.get("include_deleted", "").lower() in (
            "1",
            "true",
            "yes",
        )
        return api_keys_for_user(
            user=self.request.user, include_deleted=include_deleted
        ).select_related("rotated_to")

    def _context(self):
        return audit_context(self.request, Channel.API)

    def get_object(self) -> ApiKey:
        pk = self.kwargs["pk"]
        key = api_key_for_user(user=self.request.user, pk=pk)
        if key is None:
            api_key_access_refused(
                requested_id=pk, action=_AUDIT_ACTIONS[self.action], context=self._context()
            )
            raise NotFound("No such API key.")
        return key

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(exc.retry_after)
        return response

    def _key(self, key: ApiKey, *, status_code: int = status.HTTP_200_OK) -> Response:
        stored = api_keys_for_user(user=self.request.user, include_deleted=True).get(pk=key.pk)
        return Response(
            ApiKeyDetailSerializer(stored, context=self.get_serializer_context()).data,
            status=status_code,
        )

    def list(self, request: Request, *args, **kwargs) -> Response:
        api_key_list_viewed(owner=request.user, context=self._context())
        return super().list(request, *args, **kwargs)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        key = self.get_object()
        api_key_viewed(api_key=key, context=self._context())
        return self._key(key)

    @extend_schema(
        summary="Store a broker API key (encrypted)",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyDetailSerializer},
        description="The key id and secret are encrypted before they are stored and never "
        "returned. With verify=true Alpaca must accept them first (400 credentials_rejected "
        "otherwise). The same secret twice, a name in use or an account that already has a "
        "key answer 409. " + _ERRORS,
    )
    @sensitive_variables("data")
    def create(self, request: Request) -> Response:
        serializer = ApiKeyCreateSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        key = api_key_create(owner=request.user, context=self._context(), **data)
        return self._key(key, status_code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Rename a key, change its environment, account or expiry",
        request=ApiKeyUpdateSerializer,
        responses=ApiKeyDetailSerializer,
        description="Credentials change only by rotation. A retired key answers 409. " + _ERRORS,
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        key = self.get_object()
        serializer = ApiKeyUpdateSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        key = api_key_update(api_key=key, context=self._context(), **serializer.validated_data)
        return self._key(key)

    @extend_schema(
        summary="Delete a key (revokes it; the audit trail is kept)",
        request=None,
        responses={204: None},
        description="The key is revoked, its credentials erased and it leaves the list "
        "(?include_deleted=true shows it). " + _ERRORS,
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        api_key_delete(api_key=self.get_object(), context=self._context())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Verify the key with Alpaca",
        request=None,
        responses=VerificationSerializer,
        description="Calls Alpaca's account endpoint with the stored credentials. Accepted: "
        "verified=true and the key is active. Refused: rejected=true and the key becomes "
        "invalid. " + _ERRORS,
    )
    @action(detail=True, methods=["post"])
    def verify(self, request: Request, pk: str | None = None) -> Response:
        result = api_key_verify(api_key=self.get_object(), context=self._context())
        return Response(VerificationSerializer(result, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="Rotate: replace the credentials",
        request=ApiKeyRotateSerializer,
        responses={201: ApiKeyDetailSerializer},
        description="Creates the successor key (answered, with its new id) and retires this one "
        "(status rotated, credentials erased, kept in the history) in one transaction. With "
        "verify (default) Alpaca must accept the new pair, for the same Alpaca account. " + _ERRORS,
    )
    @action(detail=True, methods=["post"])
    @sensitive_variables("data")
    def rotate(self, request: Request, pk: str | None = None) -> Response:
        key = self.get_object()
        serializer = ApiKeyRotateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        new = api_key_rotate(api_key=key, context=self._context(), **data)
        return self._key(new, status_code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Revoke: stop using the key for good",
        request=None,
        responses=ApiKeyDetailSerializer,
        description="Credentials are erased; the key stays listed as revoked. " + _ERRORS,
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        key = api_key_revoke(api_key=self.get_object(), context=self._context())
        return self._key(key)

    @extend_schema(
        summary="The key's audit trail, newest first",
        responses=AuditEntrySerializer(many=True),
        filters=False,
        description=_ERRORS,
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def audit(self, request: Request, pk: str | None = None) -> Response:
        key = self.get_object()
        api_key_viewed(api_key=key, context=self._context(), action=Action.AUDIT)
        page = self.paginate_queryset(audit_entries_for_key(api_key=key))
        return self.get_paginated_response(AuditEntrySerializer(page, many=True).data)

    @extend_schema(
        summary="Usage statistics of the key",
        parameters=[
            OpenApiParameter(
                "days", OpenApiTypes.INT, description="Days of daily figures (1-366, default 30)."
            )
        ],
        responses=UsageSerializer,
        filters=False,
        description=_ERRORS,
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def usage(self, request: Request, pk: str | None = None) -> Response:
        key = self.get_object()
        days_text = request.query_params.get("days", "30")
        if not days_text.isdigit() or not 1 <= int(days_text) <= 366:
            raise serializers.ValidationError({"days": ["A whole number from 1 to 366."]})
        api_key_viewed(api_key=key, context=self._context(), action=Action.USAGE)
        return Response(UsageSerializer(api_key_usage(api_key=key, days=int(days_text))).data)
