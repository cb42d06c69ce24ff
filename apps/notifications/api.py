"""REST API of notifications: the user's notifications (paginated, filterable, read marks,
unread count, statistics), preferences per type and channel, contact details / quiet hours /
daily summary (``notification-settings/me/``) and web-push subscriptions.

Every queryset is the requesting user's own, so another user's id answers 404. Writes go
through ``apps.notifications.services``.
"""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.api import refuse_read_only_fields
from apps.apikeys.fields import reveal
from apps.notifications import selectors, services
from apps.notifications.models import (
    Channel,
    Delivery,
    Notification,
    NotificationPreference,
    NotificationSettings,
    NotificationType,
    PushSubscription,
    Severity,
)

# --- notifications ------------------------------------------------------------------------


class NotificationFilter(filters.FilterSet):
    type = filters.ChoiceFilter(choices=NotificationType.choices)
    severity = filters.ChoiceFilter(choices=Severity.choices)
    read = filters.BooleanFilter(
        field_name="read_at", lookup_expr="isnull", exclude=True, label="Read (true) or unread"
    )
    created_after = filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Created at or after (ISO 8601)"
    )
    created_before = filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Created before (ISO 8601)"
    )

    class Meta:
        model = Notification
        fields = ["type", "severity", "read", "created_after", "created_before"]


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "channel",
            "status",
            "hold_reason",
            "attempts",
            "next_attempt_at",
            "sent_at",
            "last_error",
        ]
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer):
    type_label = serializers.CharField(source="get_type_display", read_only=True)
    is_read = serializers.BooleanField(read_only=True)
    data = serializers.DictField(read_only=True)
    deliveries = DeliverySerializer(many=True, read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id",
            "uid",
            "type",
            "type_label",
            "severity",
            "title",
            "body",
            "data",
            "link",
            "created_at",
            "read_at",
            "is_read",
            "deliveries",
        ]
        read_only_fields = fields


class IdsSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=1000
    )


MarkedSerializer = inline_serializer(
    "NotificationsMarked",
    {"marked": serializers.IntegerField(), "unread_count": serializers.IntegerField()},
)
UnreadSerializer = inline_serializer(
    "NotificationsUnread", {"unread_count": serializers.IntegerField()}
)


class NotificationStatsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    unread = serializers.IntegerField()
    by_type = serializers.DictField(child=serializers.IntegerField())
    by_severity = serializers.DictField(child=serializers.IntegerField())
    deliveries = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text="Channel -> delivery status -> count.",
    )


class NotificationViewSet(viewsets.ReadOnlyModelViewSet):
    """Your notifications, newest first. Filter by ``type``, ``severity``, ``read``,
    ``created_after`` / ``created_before``; search titles and bodies with ``search``."""

    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    search_fields = ["title", "body"]
    ordering_fields = ["created_at", "severity", "type"]

    def get_queryset(self):
        return selectors.notifications_for_user(user=self.request.user).prefetch_related(
            "deliveries"
        )

    def _marked(self, count: int) -> Response:
        unread = selectors.unread_count(user=self.request.user)
        return Response({"marked": count, "unread_count": unread})

    @extend_schema(request=None, responses=NotificationSerializer, summary="Mark one read")
    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk=None) -> Response:
        notification = services.notification_mark_read(
            user=request.user, notification=self.get_object()
        )
        return Response(self.get_serializer(notification).data)

    @extend_schema(request=None, responses=NotificationSerializer, summary="Mark one unread")
    @action(detail=True, methods=["post"])
    def unread(self, request: Request, pk=None) -> Response:
        notification = services.notification_mark_unread(
            user=request.user, notification=self.get_object()
        )
        return Response(self.get_serializer(notification).data)

    @extend_schema(
        request=IdsSerializer,
        responses=MarkedSerializer,
        summary="Mark many read",
        description="Ids that are not yours are ignored.",
    )
    @action(detail=False, methods=["post"], url_path="mark-read", filter_backends=[])
    def mark_read(self, request: Request) -> Response:
        serializer = IdsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        count = services.notifications_mark_read(
            user=request.user, ids=serializer.validated_data["ids"]
        )
        return self._marked(count)

    @extend_schema(request=None, responses=MarkedSerializer, summary="Mark all read")
    @action(detail=False, methods=["post"], url_path="mark-all-read", filter_backends=[])
    def mark_all_read(self, request: Request) -> Response:
        return self._marked(services.notifications_mark_read(user=request.user))

    @extend_schema(responses=UnreadSerializer, summary="Unread count")
    @action(
        detail=False,
        methods=["get"],
        url_path="unread-count",
        filter_backends=[],
        pagination_class=None,
    )
    def unread_count(self, request: Request) -> Response:
        return Response({"unread_count": selectors.unread_count(user=request.user)})

    @extend_schema(responses=NotificationStatsSerializer, summary="Statistics")
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def stats(self, request: Request) -> Response:
        stats = selectors.notification_stats(user=request.user)
        return Response(NotificationStatsSerializer(stats).data)


# --- preferences per type and channel ---------------------------------------------------------


class NotificationPreferenceSerializer(serializers.ModelSerializer):
    type = serializers.ChoiceField(
        choices=[c for c in NotificationType.choices if c[0] != NotificationType.TEST]
    )
    channel = serializers.ChoiceField(choices=Channel.choices)

    class Meta:
        model = NotificationPreference
        fields = ["id", "type", "channel", "enabled"]
        read_only_fields = ["id"]
        validators = []  # (user, type, channel) is unique: create updates the existing row


class PreferenceUpdateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()


class PreferenceCellSerializer(serializers.Serializer):
    type = serializers.CharField()
    channel = serializers.CharField()
    enabled = serializers.BooleanField()
    default = serializers.BooleanField()


class PreferenceRowSerializer(serializers.Serializer):
    type = serializers.CharField()
    label = serializers.CharField()
    severity = serializers.CharField()
    cells = PreferenceCellSerializer(many=True)


class NotificationPreferenceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your choices per notification type and channel. Without a row the default applies
    (``matrix/`` shows the effective choice of every pair); ``POST`` sets one pair (creating or
    updating its row), ``DELETE`` returns it to the default."""

    serializer_class = NotificationPreferenceSerializer
    filterset_fields = ["type", "channel"]
    pagination_class = None

    def get_queryset(self):
        return selectors.preferences_for_user(user=self.request.user)

    @extend_schema(
        request=NotificationPreferenceSerializer, responses=NotificationPreferenceSerializer
    )
    def create(self, request: Request) -> Response:
        serializer = NotificationPreferenceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        preference = services.notification_preference_set(user=request.user, **serializer.data)
        return Response(
            NotificationPreferenceSerializer(preference).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=PreferenceUpdateSerializer, responses=NotificationPreferenceSerializer)
    def partial_update(self, request: Request, pk=None) -> Response:
        preference = self.get_object()
        refuse_read_only_fields(
            request.data, writable=["enabled"], message="Read-only: only enabled can change."
        )
        serializer = PreferenceUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        preference = services.notification_preference_set(
            user=request.user,
            type=preference.type,
            channel=preference.channel,
            enabled=serializer.validated_data["enabled"],
        )
        return Response(NotificationPreferenceSerializer(preference).data)

    def perform_destroy(self, instance: NotificationPreference) -> None:
        services.notification_preference_delete(user=self.request.user, preference=instance)

    @extend_schema(responses=PreferenceRowSerializer(many=True), summary="Effective choices")
    @action(detail=False, methods=["get"], filter_backends=[])
    def matrix(self, request: Request) -> Response:
        rows = selectors.preference_matrix(user=request.user)
        return Response(PreferenceRowSerializer(rows, many=True).data)


# --- contact details, quiet hours, daily summary ------------------------------------------------


class NotificationSettingsSerializer(serializers.ModelSerializer):
    webhook_secret_set = serializers.SerializerMethodField()
    time_zone = serializers.SerializerMethodField(
        help_text="Your time zone (quiet hours and the summary time are in it)."
    )
    email_effective = serializers.SerializerMethodField(
        help_text="Where e-mails go: ``email``, or your account's address when it is empty."
    )
    push_available = serializers.SerializerMethodField()
    vapid_public_key = serializers.SerializerMethodField(
        help_text="The applicationServerKey browsers subscribe with."
    )

    class Meta:
        model = NotificationSettings
        fields = [
            "email",
            "email_effective",
            "webhook_url",
            "webhook_format",
            "webhook_secret_set",
            "quiet_hours_enabled",
            "quiet_start",
            "quiet_end",
            "daily_summary_enabled",
            "daily_summary_time",
            "time_zone",
            "push_available",
            "vapid_public_key",
        ]

    def get_webhook_secret_set(self, row: NotificationSettings) -> bool:
        return bool(row.webhook_secret)

    def get_time_zone(self, row: NotificationSettings) -> str:
        return self.context["request"].user.time_zone

    def get_email_effective(self, row: NotificationSettings) -> str:
        return selectors.email_address(user=self.context["request"].user, settings_row=row)

    def get_push_available(self, row: NotificationSettings) -> bool:
        return selectors.push_available()

    def get_vapid_public_key(self, row: NotificationSettings) -> str:
        from django.conf import settings

        return settings.VAPID_PUBLIC_KEY


class TestSendSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=Channel.choices)


class NotificationSettingsViewSet(viewsets.GenericViewSet):
    """Your contact details, quiet hours and daily summary, at ``notification-settings/me/``."""

    serializer_class = NotificationSettingsSerializer
    lookup_value_regex = "me"
    pagination_class = None
    filter_backends = []

    def get_object(self) -> NotificationSettings:
        return selectors.notification_settings_or_default(user=self.request.user)

    def retrieve(self, request: Request, pk=None) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    def _save(self, request: Request, *, partial: bool) -> Response:
        fields = NotificationSettingsSerializer.Meta.fields
        writable = [name for name in fields if name in services.SETTINGS_FIELDS]
        refuse_read_only_fields(request.data, writable=writable, message="Read-only.")
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        row = services.notification_settings_update(
            user=request.user, **dict(serializer.validated_data)
        )
        return Response(self.get_serializer(row).data)

    def update(self, request: Request, pk=None) -> Response:
        return self._save(request, partial=False)

    def partial_update(self, request: Request, pk=None) -> Response:
        return self._save(request, partial=True)

    @extend_schema(
        request=None,
        responses=inline_serializer("WebhookSecret", {"webhook_secret": serializers.CharField()}),
        summary="The webhook signing secret",
    )
    @action(detail=True, methods=["get"], url_path="webhook-secret")
    def webhook_secret(self, request: Request, pk=None) -> Response:
        row = self.get_object()
        return Response({"webhook_secret": (reveal(row, "webhook_secret") if row.pk else "") or ""})

    @extend_schema(
        request=None,
        responses=inline_serializer(
            "WebhookSecretRotated", {"webhook_secret": serializers.CharField()}
        ),
        summary="Replace the webhook signing secret",
    )
    @action(detail=True, methods=["post"], url_path="rotate-webhook-secret")
    def rotate_webhook_secret(self, request: Request, pk=None) -> Response:
        secret = services.notification_settings_rotate_webhook_secret(user=request.user)
        return Response({"webhook_secret": secret})

    @extend_schema(
        request=TestSendSerializer,
        responses={202: NotificationSerializer},
        summary="Send a test message on one channel",
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk=None) -> Response:
        serializer = TestSendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        notification = services.notification_test_send(
            user=request.user, channel=serializer.validated_data["channel"]
        )
        return Response(NotificationSerializer(notification).data, status=status.HTTP_202_ACCEPTED)


# --- web push subscriptions ----------------------------------------------------------------------


class PushKeysSerializer(serializers.Serializer):
    p256dh = serializers.CharField(max_length=200)
    auth = serializers.CharField(max_length=100)


class PushSubscriptionSerializer(serializers.ModelSerializer):
    keys = PushKeysSerializer(write_only=True, help_text="As the browser's PushSubscription.")
    endpoint = serializers.URLField(max_length=2000)

    class Meta:
        model = PushSubscription
        fields = ["id", "endpoint", "keys", "user_agent", "created_at", "last_success_at"]
        read_only_fields = ["id", "created_at", "last_success_at"]
        extra_kwargs = {"user_agent": {"required": False}}


class EndpointSerializer(serializers.Serializer):
    endpoint = serializers.URLField(max_length=2000)


class PushSubscriptionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Browsers subscribed to web push. ``POST`` registers the browser's PushSubscription
    JSON (``endpoint`` + ``keys``); ``DELETE`` or ``unregister/`` (by endpoint) removes it."""

    serializer_class = PushSubscriptionSerializer
    pagination_class = None
    filter_backends = []

    def get_queryset(self):
        return selectors.push_subscriptions_for_user(user=self.request.user)

    def create(self, request: Request) -> Response:
        serializer = PushSubscriptionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        subscription = services.push_subscription_register(
            user=request.user,
            endpoint=data["endpoint"],
            p256dh=data["keys"]["p256dh"],
            auth=data["keys"]["auth"],
            user_agent=data.get("user_agent") or request.headers.get("User-Agent", ""),
        )
        return Response(
            PushSubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED
        )

    def perform_destroy(self, instance: PushSubscription) -> None:
        services.push_subscription_unregister(user=self.request.user, subscription=instance)

    @extend_schema(request=EndpointSerializer, responses={204: None}, summary="Unregister")
    @action(detail=False, methods=["post"])
    def unregister(self, request: Request) -> Response:
        serializer = EndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.push_subscription_unregister(
            user=request.user, endpoint=serializer.validated_data["endpoint"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


__all__ = [
    "NotificationPreferenceViewSet",
    "NotificationSettingsViewSet",
    "NotificationViewSet",
    "PushSubscriptionViewSet",
]
