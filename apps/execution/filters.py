"""Query filters of the orders, positions and journal API. Filters only narrow what the
view's user-scoped queryset already holds, so an id of another user's object finds nothing."""

from __future__ import annotations

from django_filters import rest_framework as filters

from apps.core.filters import IdFilter
from apps.execution.models import Order, OrderSource, OrderStatus, Position, Side, Trade


class SymbolFilter(filters.CharFilter):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("field_name", "instrument__symbol")
        kwargs.setdefault("lookup_expr", "iexact")
        kwargs.setdefault("max_length", 32)
        super().__init__(**kwargs)


class OrderFilter(filters.FilterSet):
    account = IdFilter(field_name="account_id")
    strategy = IdFilter(field_name="strategy_id")
    status = filters.ChoiceFilter(choices=OrderStatus.choices)
    symbol = SymbolFilter()
    side = filters.ChoiceFilter(choices=Side.choices)
    source = filters.ChoiceFilter(choices=OrderSource.choices)
    created_after = filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Created at or after (ISO 8601)"
    )
    created_before = filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Created before (ISO 8601)"
    )

    class Meta:
        model = Order
        fields = [
            "account",
            "strategy",
            "status",
            "symbol",
            "side",
            "source",
            "created_after",
            "created_before",
        ]


class PositionFilter(filters.FilterSet):
    account = IdFilter(field_name="account_id")
    symbol = SymbolFilter()

    class Meta:
        model = Position
        fields = ["account", "symbol"]


class TradeFilter(filters.FilterSet):
    account = IdFilter(field_name="account_id")
    strategy = IdFilter(field_name="strategy_id")
    symbol = SymbolFilter()
    direction = filters.ChoiceFilter(choices=Trade.Direction.choices)
    status = filters.ChoiceFilter(choices=Trade.Status.choices)
    tag = filters.CharFilter(method="filter_tag", max_length=50, label="Tag name")
    closed_after = filters.IsoDateTimeFilter(
        field_name="exit_time", lookup_expr="gte", label="Closed at or after (ISO 8601)"
    )
    closed_before = filters.IsoDateTimeFilter(
        field_name="exit_time", lookup_expr="lt", label="Closed before (ISO 8601)"
    )

    class Meta:
        model = Trade
        fields = [
            "account",
            "strategy",
            "symbol",
            "direction",
            "status",
            "tag",
            "closed_after",
            "closed_before",
        ]

    def filter_tag(self, queryset, name, value):
        # Tags are stored lower-case and unique per owner, so the join adds no duplicates.
        return queryset.filter(tags__name=value.strip().lower())
