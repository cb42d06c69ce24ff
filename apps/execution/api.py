"""REST API of execution: orders (manual orders to the account's broker, cancel, replace),
positions, the trade journal (with performance attribution and a CSV export) and the
strategies' signals. Every queryset is the requesting user's own, so another user's id answers
404; writes go through the execution services."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.api import OwnAccountField, refuse_read_only_fields
from apps.execution.domain.intents import OrderIntent
from apps.execution.filters import IdFilter, OrderFilter, PositionFilter, SymbolFilter, TradeFilter
from apps.execution.models import (
    PRICE,
    QTY,
    Fill,
    Order,
    OrderEvent,
    OrderSource,
    OrderType,
    Position,
    Side,
    Signal,
    TimeInForce,
    Trade,
)
from apps.execution.selectors import (
    ATTRIBUTION_DIMENSIONS,
    journal_csv,
    order_detail_for_user,
    orders_for_user,
    position_valuation,
    positions_for_user,
    signals_for_user,
    trade_attribution,
    trades_for_user,
)
from apps.execution.services import order_cancel, order_replace, order_submit, trade_annotate
from apps.execution.views import journal_filename, streaming_csv

# --- orders -------------------------------------------------------------------------------


class FillSerializer(serializers.ModelSerializer):
    class Meta:
        model = Fill
        fields = ["id", "broker_fill_id", "side", "quantity", "price", "commission", "filled_at"]
        read_only_fields = fields


class OrderEventSerializer(serializers.ModelSerializer):
    data = serializers.DictField(read_only=True)

    class Meta:
        model = OrderEvent
        fields = ["at", "from_status", "to_status", "source", "message", "data"]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    remaining_quantity = serializers.DecimalField(**QTY, read_only=True)
    risk_decision = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text=(
            "The pre-trade risk decision: outcome (approved | reduced), requested_quantity, "
            "quantity, reason_codes, message and every check with its value and limit. "
            'When outcome is "reduced", quantity is smaller than what was asked.'
        ),
    )
    signal_reason = serializers.CharField(
        source="signal.reason",
        read_only=True,
        allow_null=True,
        help_text="For a strategy order: why the strategy decided it (see /api/v1/signals/).",
    )
    protective_kind = serializers.CharField(
        read_only=True,
        help_text='For an exit the risk engine placed: "stop_loss" or "take_profit"; else "".',
    )

    class Meta:
        model = Order
        fields = [
            "id",
            "account",
            "symbol",
            "strategy",
            "client_order_id",
            "broker_order_id",
            "side",
            "order_type",
            "time_in_force",
            "quantity",
            "limit_price",
            "stop_price",
            "stop_triggered",
            "status",
            "filled_quantity",
            "remaining_quantity",
            "average_fill_price",
            "commission",
            "source",
            "signal",
            "signal_reason",
            "reject_reason",
            "risk_decision",
            "reduce_only",
            "stop_loss_price",
            "take_profit_price",
            "protective_kind",
            "submitted_at",
            "filled_at",
            "closed_at",
            "expires_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class OrderDetailSerializer(OrderSerializer):
    fills = FillSerializer(many=True, read_only=True)
    events = OrderEventSerializer(many=True, read_only=True, help_text="The order's history.")

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "fills", "events"]
        read_only_fields = fields


def _greater_than_zero(value: Decimal) -> None:
    if value <= 0:
        raise serializers.ValidationError("Must be greater than zero.")


class OrderReplaceSerializer(serializers.Serializer):
    """New terms for an open order; what is left out stays as it is."""

    quantity = serializers.DecimalField(
        **QTY,
        required=False,
        validators=[_greater_than_zero],
        help_text="At most the order's quantity and more than what has filled.",
    )
    limit_price = serializers.DecimalField(
        **PRICE,
        required=False,
        validators=[_greater_than_zero],
        help_text="Limit and stop-limit orders only; on the instrument's tick grid.",
    )
    stop_price = serializers.DecimalField(
        **PRICE,
        required=False,
        validators=[_greater_than_zero],
        help_text="Stop and stop-limit orders only; on the instrument's tick grid.",
    )

    def validate(self, attrs: dict) -> dict:
        if not attrs:
            raise serializers.ValidationError(
                "Send at least one of quantity, limit_price, stop_price."
            )
        return attrs


class OrderCreateSerializer(serializers.Serializer):
    """A manual order. Decimals are accepted as strings ("10.5") or JSON numbers; NaN, infinite,
    zero and negative values are refused."""

    account = OwnAccountField(help_text="Id of one of your trading accounts.")
    symbol = serializers.CharField(max_length=32)
    side = serializers.ChoiceField(choices=Side.choices)
    quantity = serializers.DecimalField(**QTY, validators=[_greater_than_zero])
    order_type = serializers.ChoiceField(choices=OrderType.choices, default=OrderType.MARKET)
    time_in_force = serializers.ChoiceField(choices=TimeInForce.choices, default=TimeInForce.DAY)
    limit_price = serializers.DecimalField(
        **PRICE,
        required=False,
        allow_null=True,
        validators=[_greater_than_zero],
        help_text="Required for limit and stop-limit orders.",
    )
    stop_price = serializers.DecimalField(
        **PRICE,
        required=False,
        allow_null=True,
        validators=[_greater_than_zero],
        help_text="Required for stop and stop-limit orders.",
    )
    client_order_id = serializers.CharField(
        max_length=64,
        required=False,
        help_text="Your idempotency key, unique per account; generated when left out.",
    )
    reduce_only = serializers.BooleanField(
        default=False, help_text="Only shrink the position: refused if it would grow or flip it."
    )
    stop_loss_price = serializers.DecimalField(
        **PRICE,
        required=False,
        allow_null=True,
        validators=[_greater_than_zero],
        help_text="Protective stop for an entry (the stop-loss rule attaches one when missing).",
    )
    take_profit_price = serializers.DecimalField(
        **PRICE,
        required=False,
        allow_null=True,
        validators=[_greater_than_zero],
        help_text="Profit target for an entry (the take-profit rule attaches one when missing).",
    )


@extend_schema_view(
    list=extend_schema(summary="List your orders, newest first"),
    retrieve=extend_schema(summary="One order with its fills and history"),
)
class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your orders. Orders are never edited or deleted; cancel an open one instead."""

    queryset = Order.objects.none()
    serializer_class = OrderSerializer
    filterset_class = OrderFilter
    ordering_fields = ["created_at", "updated_at", "id"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        if self.action == "list":
            return orders_for_user(user=self.request.user)
        return order_detail_for_user(user=self.request.user)

    def get_serializer_class(self):
        return OrderSerializer if self.action == "list" else OrderDetailSerializer

    def _stored(self, order: Order) -> dict:
        stored = order_detail_for_user(user=self.request.user).get(pk=order.pk)
        return OrderDetailSerializer(stored, context=self.get_serializer_context()).data

    @extend_schema(
        summary="Send a manual order to the account's broker",
        request=OrderCreateSerializer,
        responses={
            201: OrderDetailSerializer,
            422: OpenApiResponse(
                description='Refused by a risk rule: {"detail", "code", "risk": {decision}}.'
            ),
        },
        description=(
            "Answers 201 with the order as stored: filled, partially_filled, accepted (resting) "
            "or rejected by the broker (see reject_reason). Invalid input answers 400 naming the "
            "field; a client_order_id already used on the account, or a halted account, 409. "
            "No order is written on a 4xx. A risk rule that refuses the order answers 422 "
            "(409 TRADING_HALTED for a halted account) with the rule's reason code in `code` "
            "and the whole decision in `risk` (every check with its value and limit; the "
            "decision is also kept as a risk event). An order the risk rules shrank answers "
            "201 with the smaller quantity and "
            '`risk_decision.outcome` "reduced".'
        ),
    )
    def create(self, request: Request) -> Response:
        serializer = OrderCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        account = data.pop("account")
        order = order_submit(account=account, intent=OrderIntent(**data), source=OrderSource.API)
        return Response(self._stored(order), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Cancel an open order",
        request=None,
        responses=OrderDetailSerializer,
        description="An order that is no longer open answers 409.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        order = order_cancel(order=self.get_object(), source=OrderSource.API)
        return Response(self._stored(order))

    @extend_schema(
        summary="Modify an open order (prices, a lower quantity)",
        request=OrderReplaceSerializer,
        responses={
            200: OrderDetailSerializer,
            400: OpenApiResponse(description="Invalid terms; `errors` names the field."),
            409: OpenApiResponse(description="The order is no longer open (`not_open`)."),
        },
        description=(
            "Replaces the working order's limit price, stop price or quantity at the broker. "
            "The quantity can only go down, and must stay above what has filled (a larger size "
            "is a new order, checked by the risk rules on its own); prices must be on the "
            "instrument's tick grid and fit the order type. Answers the order as stored; its "
            "history holds the change (`data.before` / `data.after`). Nothing changes on a 4xx."
        ),
    )
    @action(detail=True, methods=["post"])
    def replace(self, request: Request, pk: str | None = None) -> Response:
        order = self.get_object()
        serializer = OrderReplaceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = order_replace(
            order=order,
            source=OrderSource.API,
            reason="modified through the API",
            **serializer.validated_data,
        )
        return Response(self._stored(order))


# --- positions ----------------------------------------------------------------------------


def _price(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(**PRICE, read_only=True, **kwargs)


class PositionSerializer(serializers.ModelSerializer):
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    direction = serializers.ChoiceField(choices=["long", "short", "flat"], read_only=True)
    last_price = _price(
        source="valuation.last_price",
        help_text="The instrument's last price (the average price while none exists).",
    )
    priced = serializers.BooleanField(
        source="valuation.priced", read_only=True, help_text="False while no market price exists."
    )
    market_value = serializers.DecimalField(
        max_digits=20,
        decimal_places=4,
        source="valuation.market_value",
        read_only=True,
        help_text="Signed: shorts are negative.",
    )
    unrealized_pnl = serializers.DecimalField(
        max_digits=20, decimal_places=4, source="valuation.unrealized_pnl", read_only=True
    )
    unrealized_pct = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        source="valuation.unrealized_pct",
        read_only=True,
        allow_null=True,
    )

    class Meta:
        model = Position
        fields = [
            "id",
            "account",
            "symbol",
            "direction",
            "quantity",
            "average_price",
            "last_price",
            "priced",
            "market_value",
            "unrealized_pnl",
            "unrealized_pct",
            "realized_pnl",
            "commission_paid",
            "opened_at",
            "updated_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance: Position) -> dict:
        instance.valuation = position_valuation(position=instance)
        return super().to_representation(instance)


class PositionQuerySerializer(serializers.Serializer):
    include_flat = serializers.BooleanField(default=False)


@extend_schema_view(
    list=extend_schema(
        summary="List your open positions",
        parameters=[
            OpenApiParameter(
                "include_flat",
                OpenApiTypes.BOOL,
                description="Also list positions that are flat now (quantity 0).",
            )
        ],
    ),
    retrieve=extend_schema(summary="One position (open or flat)"),
)
class PositionViewSet(viewsets.ReadOnlyModelViewSet):
    """Your positions valued at the instruments' last prices (one query per page)."""

    queryset = Position.objects.none()
    serializer_class = PositionSerializer
    filterset_class = PositionFilter
    ordering_fields = ["id", "instrument__symbol", "quantity", "updated_at", "opened_at"]
    ordering = ["account_id", "instrument__symbol"]

    def get_queryset(self):
        include_flat = True
        if self.action == "list":
            query = PositionQuerySerializer(data=self.request.query_params)
            query.is_valid(raise_exception=True)
            include_flat = query.validated_data["include_flat"]
        return positions_for_user(user=self.request.user, include_flat=include_flat)


# --- the journal --------------------------------------------------------------------------


class TradeSerializer(serializers.ModelSerializer):
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    tags = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    holding_time = serializers.SerializerMethodField(
        help_text="Seconds from entry to exit; null while the trade is open."
    )
    r_multiple = serializers.DecimalField(
        max_digits=12,
        decimal_places=4,
        read_only=True,
        allow_null=True,
        help_text="Net PnL over the risk the initial stop defined; null without a stop.",
    )
    mae = serializers.DecimalField(
        max_digits=20,
        decimal_places=4,
        read_only=True,
        allow_null=True,
        help_text="Maximum adverse excursion in money (<= 0), set when the trade closes.",
    )
    mfe = serializers.DecimalField(
        max_digits=20,
        decimal_places=4,
        read_only=True,
        allow_null=True,
        help_text="Maximum favourable excursion in money (>= 0), set when the trade closes.",
    )

    class Meta:
        model = Trade
        fields = [
            "id",
            "account",
            "symbol",
            "strategy",
            "direction",
            "status",
            "entry_time",
            "exit_time",
            "entry_quantity",
            "entry_price",
            "exit_quantity",
            "exit_price",
            "fees",
            "gross_pnl",
            "net_pnl",
            "return_pct",
            "holding_time",
            "initial_stop_price",
            "r_multiple",
            "best_price",
            "worst_price",
            "mae",
            "mfe",
            "entry_reason",
            "exit_reason",
            "entry_order",
            "notes",
            "tags",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_holding_time(self, trade: Trade) -> int | None:
        held = trade.holding_time
        return None if held is None else int(held.total_seconds())


class TradeAnnotateSerializer(serializers.Serializer):
    notes = serializers.CharField(
        required=False, allow_blank=True, max_length=20_000, trim_whitespace=False
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50, allow_blank=True),
        required=False,
        max_length=50,
        help_text="Replaces the trade's tags; names are stored lower-case.",
    )


ANNOTATABLE = frozenset(TradeAnnotateSerializer._declared_fields)


class AttributionQuerySerializer(serializers.Serializer):
    by = serializers.ChoiceField(choices=list(ATTRIBUTION_DIMENSIONS), default="strategy")


class AttributionGroupSerializer(serializers.Serializer):
    key = serializers.JSONField(
        help_text="Strategy id (null: no strategy), symbol, long/short, or tag (null: untagged)."
    )
    label = serializers.CharField()
    trades = serializers.IntegerField(help_text="Closed trades in the group.")
    winners = serializers.IntegerField()
    losers = serializers.IntegerField()
    win_rate = serializers.DecimalField(
        max_digits=5, decimal_places=1, allow_null=True, help_text="Percent."
    )
    net_pnl = serializers.DecimalField(max_digits=20, decimal_places=4)
    gross_profit = serializers.DecimalField(max_digits=20, decimal_places=4)
    gross_loss = serializers.DecimalField(max_digits=20, decimal_places=4)
    fees = serializers.DecimalField(max_digits=20, decimal_places=4)
    average_r = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        allow_null=True,
        help_text="Average R multiple over the `r_trades` trades that had a stop.",
    )
    r_trades = serializers.IntegerField()
    profit_factor = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        allow_null=True,
        help_text="Gross profit / gross loss; null without a losing trade.",
    )
    expectancy = serializers.DecimalField(
        max_digits=20,
        decimal_places=2,
        allow_null=True,
        help_text="Average net PnL per trade.",
    )


class AttributionSerializer(serializers.Serializer):
    by = serializers.ChoiceField(choices=list(ATTRIBUTION_DIMENSIONS))
    groups = AttributionGroupSerializer(many=True)


class CSVRenderer(BaseRenderer):
    """Lets a client ask for ``text/csv``. The export streams its own response, so only an
    error reaches this renderer: it becomes a one-row CSV (detail, code)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["detail", "code"])
        if isinstance(data, dict):
            writer.writerow([data.get("detail", ""), data.get("code", "")])
        return buffer.getvalue().encode(self.charset)


@extend_schema_view(
    list=extend_schema(summary="Your trade journal, newest first"),
    retrieve=extend_schema(summary="One journal entry"),
)
class TradeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Round trips of your accounts. Only notes and tags can be changed."""

    queryset = Trade.objects.none()
    serializer_class = TradeSerializer
    filterset_class = TradeFilter
    search_fields = ["notes"]
    ordering_fields = ["entry_time", "exit_time", "net_pnl", "return_pct"]
    ordering = ["-entry_time", "-id"]

    def get_queryset(self):
        return trades_for_user(user=self.request.user)

    @extend_schema(
        summary="Set a trade's notes and tags",
        request=TradeAnnotateSerializer,
        responses=TradeSerializer,
        description="Any other field in the body answers 400: the rest of a trade is read-only.",
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        trade = self.get_object()
        refuse_read_only_fields(
            request.data,
            writable=ANNOTATABLE,
            message="Read-only: only notes and tags can be changed.",
        )
        serializer = TradeAnnotateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        trade_annotate(trade=trade, **serializer.validated_data)
        stored = self.get_queryset().get(pk=trade.pk)
        return Response(TradeSerializer(stored, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="Performance attribution of your closed trades",
        parameters=[
            OpenApiParameter(
                "by",
                OpenApiTypes.STR,
                enum=list(ATTRIBUTION_DIMENSIONS),
                description="Group by strategy (default), symbol, direction (long/short) or tag.",
            )
        ],
        filters=True,
        responses=AttributionSerializer,
        description=(
            "Count, win rate, net PnL, gross profit and loss, fees, average R, profit factor "
            "and expectancy of the closed trades per group, best net PnL first; the journal's "
            "filters apply. A trade with several tags counts under each."
        ),
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def attribution(self, request: Request) -> Response:
        query = AttributionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        by = query.validated_data["by"]
        groups = trade_attribution(trades=self.filter_queryset(self.get_queryset()), by=by)
        return Response(AttributionSerializer({"by": by, "groups": groups}).data)

    @extend_schema(
        summary="Export your journal as CSV",
        filters=True,
        description=(
            "Every trade the journal's filters keep, one CSV row each with all its figures "
            "(holding time in seconds, R multiple, MAE/MFE, reasons, tags joined with ';', "
            "notes), streamed as an attachment. Invalid filters answer 400 before any row."
        ),
        responses={
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description=(
                    "One row per trade with every column (tags joined with ';'); streamed. "
                    "Text cells starting with = + - @ are prefixed with a quote."
                ),
            )
        },
    )
    @action(
        detail=False,
        methods=["get"],
        pagination_class=None,
        renderer_classes=[JSONRenderer, CSVRenderer],
    )
    def export(self, request: Request):
        trades = self.filter_queryset(self.get_queryset())
        return streaming_csv(journal_csv(trades=trades), filename=journal_filename())


# --- signals ------------------------------------------------------------------------------


class SignalFilter(filters.FilterSet):
    strategy = IdFilter(field_name="strategy_id")
    account = IdFilter(field_name="account_id")
    symbol = SymbolFilter()
    status = filters.ChoiceFilter(choices=Signal.Status.choices)
    side = filters.ChoiceFilter(choices=Side.choices)
    bar_after = filters.IsoDateTimeFilter(
        field_name="bar_ts", lookup_expr="gte", label="Bar opened at or after (ISO 8601)"
    )
    bar_before = filters.IsoDateTimeFilter(
        field_name="bar_ts", lookup_expr="lt", label="Bar opened before (ISO 8601)"
    )

    class Meta:
        model = Signal
        fields = ["strategy", "account", "symbol", "status", "side", "bar_after", "bar_before"]


class SignalSerializer(serializers.ModelSerializer):
    strategy_name = serializers.CharField(source="strategy.name", read_only=True)
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    order = serializers.IntegerField(
        source="order.pk",
        read_only=True,
        allow_null=True,
        help_text="The order the signal placed (status ordered), else null.",
    )
    order_status = serializers.CharField(source="order.status", read_only=True, allow_null=True)
    decision = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text="The pre-trade risk decision (every check with its value and limit).",
    )

    class Meta:
        model = Signal
        fields = [
            "id",
            "strategy",
            "strategy_name",
            "account",
            "symbol",
            "timeframe",
            "bar_ts",
            "side",
            "target",
            "strength",
            "reason",
            "price",
            "status",
            "reject_code",
            "reject_reason",
            "decision",
            "order",
            "order_status",
            "created_at",
            "processed_at",
        ]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(summary="What your strategies decided, newest bar first"),
    retrieve=extend_schema(summary="One signal"),
)
class SignalViewSet(viewsets.ReadOnlyModelViewSet):
    """Signals of your strategies: the bar, side, target exposure (1 long, 0 flat, -1 short),
    strength and reason, and what became of it: `ordered` (see `order`), `rejected` (with
    `reject_code`, `reject_reason` and the risk `decision`) or `skipped`. Read-only."""

    queryset = Signal.objects.none()
    serializer_class = SignalSerializer
    filterset_class = SignalFilter
    ordering_fields = ["bar_ts", "created_at", "id"]
    ordering = ["-bar_ts", "-id"]

    def get_queryset(self):
        return signals_for_user(user=self.request.user)
