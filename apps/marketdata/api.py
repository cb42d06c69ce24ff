"""REST API of market data: instruments (shared reference data) and their price bars."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from apps.marketdata.filters import InstrumentFilter
from apps.marketdata.models import Bar, Instrument, Timeframe
from apps.marketdata.selectors import bars_in_range

# --- instruments --------------------------------------------------------------------------


class InstrumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Instrument
        fields = [
            "id",
            "symbol",
            "name",
            "asset_class",
            "exchange",
            "sector",
            "currency",
            "lot_size",
            "tick_size",
            "tradable",
            "last_price",
            "last_price_at",
        ]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(summary="List instruments"),
    retrieve=extend_schema(
        summary="One instrument, by symbol",
        parameters=[
            OpenApiParameter(
                "symbol",
                str,
                OpenApiParameter.PATH,
                description="Ticker, case-insensitive (aapl = AAPL). Symbols that contain a "
                "slash cannot be addressed here; use the list with ?search=.",
            )
        ],
    ),
)
class InstrumentViewSet(viewsets.ReadOnlyModelViewSet):
    """Instruments are shared reference data: every authenticated user sees all of them.

    The detail URL is the symbol (`/api/v1/instruments/AAPL/`), not the numeric id, because
    that is what traders and their programs know.
    """

    queryset = Instrument.objects.all().order_by("symbol")
    serializer_class = InstrumentSerializer
    filterset_class = InstrumentFilter
    search_fields = ["symbol", "name"]
    ordering_fields = ["symbol", "name", "sector", "asset_class", "exchange"]
    ordering = ["symbol"]
    lookup_field = "symbol"
    # Symbols such as BRK.B contain dots; the router's default pattern stops at a dot.
    lookup_value_regex = r"[^/]+"

    def get_object(self) -> Instrument:
        symbol = str(self.kwargs[self.lookup_field]).strip().upper()
        # PostgreSQL refuses NUL in text; no symbol contains one.
        instrument = None if "\x00" in symbol else self.get_queryset().filter(symbol=symbol).first()
        if instrument is None:
            raise NotFound(f"No instrument with symbol {symbol!r}.")
        return instrument


# --- bars ---------------------------------------------------------------------------------


class BarSerializer(serializers.ModelSerializer):
    class Meta:
        model = Bar
        fields = ["ts", "open", "high", "low", "close", "volume"]
        read_only_fields = fields


_REQUIRED = "This query parameter is required."


class BarQuerySerializer(serializers.Serializer):
    symbol = serializers.CharField(
        max_length=32, error_messages={"required": _REQUIRED, "blank": _REQUIRED}
    )
    timeframe = serializers.ChoiceField(
        choices=Timeframe.choices,
        error_messages={
            "required": _REQUIRED,
            "invalid_choice": f'"{{input}}" is not a timeframe; use one of '
            f"{', '.join(Timeframe.values)}.",
        },
    )
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)

    def validate(self, attrs: dict) -> dict:
        start, end = attrs.get("start"), attrs.get("end")
        if start is not None and end is not None and start >= end:
            raise ValidationError({"end": ["end must be after start."]})
        return attrs


class BarCursorPagination(CursorPagination):
    """Keyset pages over ts: every page is one index range scan, however deep."""

    ordering = "ts"
    page_size = 500
    page_size_query_param = "page_size"
    max_page_size = 5000


@extend_schema_view(
    list=extend_schema(
        summary="Price bars of one instrument",
        parameters=[
            OpenApiParameter(
                "symbol", str, required=True, description="Instrument symbol (case-insensitive)."
            ),
            OpenApiParameter("timeframe", str, required=True, enum=Timeframe.values),
            OpenApiParameter(
                "start",
                OpenApiTypes.DATETIME,
                description="ISO 8601 (UTC when no offset); bars opening at or after it.",
            ),
            OpenApiParameter(
                "end",
                OpenApiTypes.DATETIME,
                description="ISO 8601 (UTC when no offset); bars opening before it (exclusive).",
            ),
        ],
    )
)
class BarViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """OHLCV bars, oldest first (`?ordering=-ts` for newest first), paged with a cursor: follow
    `next` until it is null. `ts` is the bar's open time in UTC."""

    queryset = Bar.objects.none()
    serializer_class = BarSerializer
    pagination_class = BarCursorPagination
    filter_backends = [OrderingFilter]
    ordering_fields = ["ts"]
    ordering = ["ts"]

    def list(self, request: Request, *args, **kwargs) -> Response:
        query = BarQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        symbol = params["symbol"].strip().upper()
        instrument_id = (
            Instrument.objects.filter(symbol=symbol).values_list("pk", flat=True).first()
        )
        if instrument_id is None:
            raise ValidationError({"symbol": [f"Unknown symbol {symbol!r}."]})
        self.bars = bars_in_range(
            instrument=instrument_id,
            timeframe=params["timeframe"],
            start=params.get("start"),
            end=params.get("end"),
        ).only("ts", "open", "high", "low", "close", "volume")
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        return getattr(self, "bars", Bar.objects.none())
