"""REST API of accounts: API tokens, the user's trading accounts with their valuation, and each
account's equity curve.

Valuation is computed per account with ``account_valuation`` (two small queries per account).
That is fine for a list page: a trader has a handful of accounts, and a page holds at most
``page_size`` of them. A client that polls many accounts should ask for them one by one or
page through with a small ``page_size``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django_filters import rest_framework as filters
from django_filters.utils import translate_validation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from apps.accounts.models import MONEY, EquitySnapshot, TradingAccount
from apps.accounts.selectors import account_valuation, accounts_for_user
from apps.accounts.services import trading_account_create, trading_account_update

# --- shared by the other apps' APIs --------------------------------------------------------


class OwnAccountField(serializers.PrimaryKeyRelatedField):
    """An account id that must name one of the requesting user's accounts.

    Another user's account answers exactly like an account that does not exist, so ids of
    other users' accounts cannot be probed.
    """

    default_error_messages = {
        "required": "This field is required.",
        "does_not_exist": "No such account.",
        "incorrect_type": "An account id is a whole number.",
    }

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("queryset", TradingAccount.objects.all())
        super().__init__(**kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return TradingAccount.objects.none()
        return TradingAccount.objects.filter(owner=user)


def refuse_read_only_fields(data: object, *, writable: Iterable[str], message: str) -> None:
    """A 400 naming each field the client may not change, rather than ignoring it silently
    (a client that sends ``cash`` must learn that it did not change)."""
    if not isinstance(data, Mapping):
        return  # the serializer reports a body that is not an object
    allowed = set(writable)
    refused = sorted(str(name) for name in data if name not in allowed)
    if refused:
        raise ValidationError({name: [message] for name in refused})


# --- tokens -------------------------------------------------------------------------------


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(
        read_only=True, help_text="Send as `Authorization: Token <token>`."
    )


class AuthTokenView(APIView):
    """Exchange a username and password for the user's API token (created on first use)."""

    # No session authentication here: a browser that is logged in must not need a CSRF token
    # to ask for an API token with credentials it sends anyway.
    authentication_classes = ()
    permission_classes = (AllowAny,)
    # Password guessing is limited per client address.
    throttle_classes = (AnonRateThrottle,)
    throttle_scope = "auth"

    @extend_schema(
        operation_id="auth_token_create",
        request=AuthTokenSerializer,
        responses={200: TokenSerializer},
        auth=[],
        tags=["auth"],
        summary="Get an API token",
        description='Bad credentials answer 400 with "Unable to log in with provided credentials."',
    )
    def post(self, request: Request) -> Response:
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})


# --- accounts -----------------------------------------------------------------------------


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(**MONEY, read_only=True, **kwargs)


class TradingAccountSerializer(serializers.ModelSerializer):
    """An account as stored plus its valuation at the instruments' last prices."""

    equity = _money(source="valuation.equity", help_text="Cash plus positions value.")
    positions_value = _money(
        source="valuation.positions_value", help_text="Signed market value of open positions."
    )
    unrealized_pnl = _money(source="valuation.unrealized_pnl")
    realized_pnl = _money(source="valuation.realized_pnl")
    gross_exposure = _money(source="valuation.gross_exposure")
    day_pnl = _money(
        source="valuation.day_pnl",
        allow_null=True,
        help_text="Equity minus start-of-day equity; null before the first snapshot of the day.",
    )
    drawdown_pct = serializers.DecimalField(
        source="valuation.drawdown_pct",
        max_digits=12,
        decimal_places=2,
        read_only=True,
        allow_null=True,
        help_text="Percent below the high-water mark (0 at a new high).",
    )

    class Meta:
        model = TradingAccount
        fields = [
            "id",
            "name",
            "broker",
            "currency",
            "status",
            "status_reason",
            "initial_cash",
            "cash",
            "equity",
            "positions_value",
            "unrealized_pnl",
            "realized_pnl",
            "gross_exposure",
            "day_pnl",
            "drawdown_pct",
            "start_of_day_equity",
            "high_water_mark",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance: TradingAccount) -> dict:
        instance.valuation = account_valuation(account=instance)
        return super().to_representation(instance)


class TradingAccountCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    cash = serializers.DecimalField(
        **MONEY,
        required=False,
        min_value=0,
        help_text="Starting cash of the paper account; the platform default when left out.",
    )


class TradingAccountUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class EquitySnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = EquitySnapshot
        fields = [
            "taken_at",
            "kind",
            "trading_date",
            "cash",
            "positions_value",
            "equity",
            "high_water_mark",
        ]
        read_only_fields = fields


class TradingAccountFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=TradingAccount.Status.choices)
    broker = filters.ChoiceFilter(choices=TradingAccount.Broker.choices)

    class Meta:
        model = TradingAccount
        fields = ["status", "broker"]


# "from" is a Python keyword, so this filter set is built with type().
EquitySnapshotFilter = type(
    "EquitySnapshotFilter",
    (filters.FilterSet,),
    {
        "from": filters.IsoDateTimeFilter(
            field_name="taken_at", lookup_expr="gte", label="Snapshots taken at or after"
        ),
        "to": filters.IsoDateTimeFilter(
            field_name="taken_at", lookup_expr="lt", label="Snapshots taken before"
        ),
        "kind": filters.ChoiceFilter(choices=EquitySnapshot.Kind.choices),
        "Meta": type("Meta", (), {"model": EquitySnapshot, "fields": ["kind"]}),
    },
)

_EQUITY_PARAMETERS = [
    OpenApiParameter(
        "from",
        OpenApiTypes.DATETIME,
        description="ISO 8601; snapshots taken at or after this time (inclusive).",
    ),
    OpenApiParameter(
        "to", OpenApiTypes.DATETIME, description="ISO 8601; snapshots taken before this time."
    ),
    OpenApiParameter("kind", str, enum=EquitySnapshot.Kind.values),
]


@extend_schema_view(
    list=extend_schema(
        summary="List your trading accounts",
        description="Each account is valued at its instruments' last prices (one valuation per "
        "account on the page; keep page_size small if you hold many accounts).",
    ),
    retrieve=extend_schema(summary="One of your trading accounts, with its valuation"),
)
class TradingAccountViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Your trading accounts. Create a paper account, rename it; accounts are never deleted."""

    queryset = TradingAccount.objects.none()
    serializer_class = TradingAccountSerializer
    filterset_class = TradingAccountFilter
    ordering_fields = ["id", "name", "created_at"]
    ordering = ["id"]

    def get_queryset(self):
        return accounts_for_user(user=self.request.user)

    @extend_schema(
        summary="Open a paper account",
        request=TradingAccountCreateSerializer,
        responses={201: TradingAccountSerializer},
        description="A duplicate name answers 409.",
    )
    def create(self, request: Request) -> Response:
        serializer = TradingAccountCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        account = trading_account_create(owner=request.user, **serializer.validated_data)
        return Response(
            TradingAccountSerializer(account, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        summary="Rename an account",
        request=TradingAccountUpdateSerializer,
        responses=TradingAccountSerializer,
        description="Only the name can change. A duplicate name answers 409.",
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        account = self.get_object()
        refuse_read_only_fields(
            request.data, writable=["name"], message="Read-only: only the name can be changed."
        )
        serializer = TradingAccountUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        account = trading_account_update(account=account, name=serializer.validated_data["name"])
        return Response(
            TradingAccountSerializer(account, context=self.get_serializer_context()).data
        )

    @extend_schema(
        summary="The account's equity curve",
        description="Equity snapshots, oldest first: a start-of-day row per trading day and "
        "intraday rows in between. `from` is inclusive, `to` exclusive.",
        parameters=_EQUITY_PARAMETERS,
        responses=EquitySnapshotSerializer(many=True),
        filters=False,
    )
    @action(detail=True, methods=["get"], filter_backends=[], url_path="equity")
    def equity(self, request: Request, pk: str | None = None) -> Response:
        account = self.get_object()
        snapshots = EquitySnapshot.objects.filter(account=account).order_by("taken_at", "id")
        filterset = EquitySnapshotFilter(request.query_params, queryset=snapshots)
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)
        page = self.paginate_queryset(filterset.qs)
        data = EquitySnapshotSerializer(page, many=True).data
        return self.get_paginated_response(data)
