"""REST API of strategies: the library's kinds with their parameter specs, and the user's
configured strategies (create, change and delete go through the strategy services)."""

from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.api import OwnAccountField
from apps.accounts.models import User
from apps.core.filters import IdFilter
from apps.marketdata.models import Timeframe
from apps.strategies.domain.registry import describe_strategies
from apps.strategies.models import Strategy
from apps.strategies.services import strategy_create, strategy_delete, strategy_update

# --- strategy kinds (the library) ---------------------------------------------------------


class ParamSpecSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["int", "float", "bool", "str"])
    default = serializers.JSONField()
    minimum = serializers.FloatField(allow_null=True)
    maximum = serializers.FloatField(allow_null=True)
    choices = serializers.ListField(child=serializers.JSONField(), allow_null=True)
    label = serializers.CharField()
    help = serializers.CharField(allow_blank=True)


class StrategyKindSerializer(serializers.Serializer):
    kind = serializers.CharField()
    label = serializers.CharField()
    description = serializers.CharField()
    params = ParamSpecSerializer(many=True)
    defaults = serializers.DictField(child=serializers.JSONField())


@extend_schema_view(
    list=extend_schema(summary="The strategy library", responses=StrategyKindSerializer(many=True)),
    retrieve=extend_schema(
        summary="One strategy kind",
        responses=StrategyKindSerializer,
        parameters=[OpenApiParameter("kind", str, OpenApiParameter.PATH)],
    ),
)
class StrategyKindViewSet(viewsets.ViewSet):
    """The kinds a strategy can be, with every parameter's type, default and allowed range.
    Not paginated: the library is small."""

    lookup_field = "kind"
    lookup_value_regex = r"[^/]+"

    def list(self, request: Request) -> Response:
        return Response(StrategyKindSerializer(describe_strategies(), many=True).data)

    def retrieve(self, request: Request, kind: str | None = None) -> Response:
        for described in describe_strategies():
            if described["kind"] == kind:
                return Response(StrategyKindSerializer(described).data)
        raise NotFound(f"No strategy kind {kind!r}.")


# --- strategies ---------------------------------------------------------------------------


class StrategySerializer(serializers.ModelSerializer):
    symbols = serializers.ListField(child=serializers.CharField(), read_only=True)
    params = serializers.DictField(read_only=True)
    sizing_params = serializers.DictField(read_only=True)

    class Meta:
        model = Strategy
        fields = [
            "id",
            "name",
            "description",
            "account",
            "kind",
            "params",
            "symbols",
            "timeframe",
            "mode",
            "sizing_method",
            "sizing_params",
            "entry_order_type",
            "limit_offset_bps",
            "reprice_limit",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class StrategyWriteSerializer(serializers.Serializer):
    """What a client may send; the strategy services check the rest (kind, params, symbols)."""

    name = serializers.CharField(max_length=100)
    description = serializers.CharField(allow_blank=True, required=False, trim_whitespace=False)
    account = OwnAccountField(help_text="Id of one of your trading accounts.")
    kind = serializers.CharField(max_length=64, help_text="See /api/v1/strategy-kinds/.")
    params = serializers.DictField(
        required=False,
        help_text="Parameter name -> value; left-out parameters take their defaults.",
    )
    symbols = serializers.ListField(
        child=serializers.CharField(max_length=32), max_length=500, help_text="Ticker symbols."
    )
    timeframe = serializers.ChoiceField(choices=Timeframe.choices, required=False)
    mode = serializers.ChoiceField(choices=Strategy.Mode.choices, required=False)
    # Execution settings; the strategy services check them (errors name the field, and a
    # sizing parameter as ``sizing_params.<name>``).
    sizing_method = serializers.CharField(
        max_length=32,
        required=False,
        help_text="How entries are sized: see /api/v1/position-size/methods/.",
    )
    sizing_params = serializers.DictField(
        required=False,
        help_text="Sizing parameter name -> value; left-out parameters take their defaults.",
    )
    entry_order_type = serializers.CharField(
        max_length=16, required=False, help_text="market or limit."
    )
    limit_offset_bps = serializers.DecimalField(
        max_digits=8,
        decimal_places=2,
        required=False,
        help_text="How far inside the last price a limit entry sits (0 to 1000 bps).",
    )
    reprice_limit = serializers.BooleanField(
        required=False, help_text="Move an unfilled limit entry with the market on each bar."
    )


class StrategyFilter(filters.FilterSet):
    mode = filters.ChoiceFilter(choices=Strategy.Mode.choices)
    kind = filters.CharFilter(max_length=64)
    timeframe = filters.ChoiceFilter(choices=Timeframe.choices)
    account = IdFilter(field_name="account_id")

    class Meta:
        model = Strategy
        fields = ["mode", "kind", "timeframe", "account"]


def strategies_of(user: User) -> QuerySet[Strategy]:
    return (
        Strategy.objects.filter(owner=user).prefetch_related("instruments").order_by("name", "id")
    )


@extend_schema_view(
    list=extend_schema(summary="List your strategies"),
    retrieve=extend_schema(summary="One of your strategies"),
    destroy=extend_schema(summary="Delete a strategy"),
)
class StrategyViewSet(viewsets.ModelViewSet):
    """Your strategies. Invalid parameters answer 400 naming the parameter (`params.fast`,
    `sizing_params.pct`); an account that is not yours answers 400 "No such account."; a
    duplicate name 409."""

    queryset = Strategy.objects.none()
    serializer_class = StrategySerializer
    filterset_class = StrategyFilter
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at", "kind", "mode"]
    ordering = ["name"]

    def get_queryset(self):
        return strategies_of(self.request.user)

    def _stored(self, strategy: Strategy) -> dict:
        stored = strategies_of(self.request.user).get(pk=strategy.pk)
        return StrategySerializer(stored, context=self.get_serializer_context()).data

    def _write_serializer(self, *, partial: bool) -> StrategyWriteSerializer:
        serializer = StrategyWriteSerializer(
            data=self.request.data, partial=partial, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        return serializer

    @extend_schema(
        summary="Create a strategy",
        request=StrategyWriteSerializer,
        responses={201: StrategySerializer},
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = dict(self._write_serializer(partial=False).validated_data)
        strategy = strategy_create(owner=request.user, params=data.pop("params", None), **data)
        return Response(self._stored(strategy), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace a strategy",
        request=StrategyWriteSerializer,
        responses=StrategySerializer,
    )
    def update(self, request: Request, *args, **kwargs) -> Response:
        strategy = self.get_object()
        data = self._write_serializer(partial=kwargs.get("partial", False)).validated_data
        strategy = strategy_update(strategy=strategy, **data)
        return Response(self._stored(strategy))

    @extend_schema(
        summary="Change some fields of a strategy",
        request=StrategyWriteSerializer,
        responses=StrategySerializer,
    )
    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        strategy_delete(strategy=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
