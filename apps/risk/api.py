"""REST API of risk: rules (CRUD, bulk, a what-if order test), the rule-type and sizing
libraries, position sizing, the account's risk snapshot, risk events (acknowledge one or many)
and the account's trading state (halt, resume).

Every object is the requesting user's own: another user's id answers 404, another user's
account id in a body answers 400 "No such account.". The views parse and authorise; the risk
services (the same ones the risk page calls) validate the rest and write.

Routes (see ``tradeplatform/api_urls.py``):

- ``risk-rules/`` CRUD, ``risk-rules/bulk/``, ``risk-rules/test/``
- ``risk-rule-types/`` the rule library, ``position-size/`` and ``position-size/methods/``
- ``accounts/{id}/risk/`` the snapshot, ``accounts/{id}/halt/``, ``accounts/{id}/resume/``
- ``risk-events/`` list and detail, ``risk-events/{id}/acknowledge/``,
  ``risk-events/acknowledge/`` (many ids)

Fields named ``action``, ``severity`` and ``source`` are plain strings in the schema (their
values are in the descriptions): other apps use the same names for other choice sets, and one
enum per name keeps the generated clients unambiguous.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.api import OwnAccountField
from apps.accounts.models import TradingAccount
from apps.accounts.selectors import accounts_for_user
from apps.core.errors import ValidationFailed
from apps.core.filters import IdFilter
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import PRICE, QTY, OrderType, Side
from apps.risk.domain.rules import describe_rule_types
from apps.risk.domain.sizing import describe_sizing_methods
from apps.risk.models import RiskEvent, RiskRule, TradingStateChange
from apps.risk.selectors import events_for_user, rules_for_user
from apps.risk.services import (
    RuleInput,
    account_resume_trading,
    account_risk_overview,
    position_size,
    risk_event_acknowledge,
    risk_events_acknowledge,
    risk_order_test,
    risk_rule_create,
    risk_rule_delete,
    risk_rule_update,
    risk_rules_bulk,
    trading_state_set,
)
from apps.strategies.api import ParamSpecSerializer
from apps.strategies.models import Strategy

ACTION_HELP = "block (refuse or shrink the order) | warn (only raise a warning)."
SEVERITY_HELP = "warning | breach | critical."
SOURCE_HELP = "pre_trade (an order check) | monitor (monitoring) | protective (stop/target hit)."
MAX_BULK_OPERATIONS = 500
MAX_ACKNOWLEDGE_IDS = 1000


class OwnStrategyField(serializers.PrimaryKeyRelatedField):
    """A strategy id that must name one of the requesting user's strategies."""

    default_error_messages = {
        "does_not_exist": "No such strategy.",
        "incorrect_type": "A strategy id is a whole number.",
    }

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("queryset", Strategy.objects.all())
        super().__init__(**kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return Strategy.objects.none()
        return Strategy.objects.filter(owner=user)


# --- rules --------------------------------------------------------------------------------


class RiskRuleSerializer(serializers.ModelSerializer):
    params = serializers.DictField(
        read_only=True, help_text="Every parameter of the rule type, defaults filled in."
    )
    action = serializers.CharField(read_only=True, help_text=ACTION_HELP)
    warning_level = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="Fraction of the limit that raises a warning (0.8 = at 80%).",
    )
    strategy = serializers.IntegerField(
        source="strategy_id",
        read_only=True,
        allow_null=True,
        help_text="The strategy the rule is limited to; null: the whole account.",
    )

    class Meta:
        model = RiskRule
        fields = [
            "id",
            "account",
            "strategy",
            "name",
            "rule_type",
            "params",
            "action",
            "warning_level",
            "enabled",
            "breach_state",
            "escalate_after_minutes",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class _RuleFieldsSerializer(serializers.Serializer):
    """The rule fields a client may send, typed; the risk services check their values."""

    name = serializers.CharField(max_length=100, allow_blank=True, required=False)
    rule_type = serializers.CharField(max_length=32, help_text="See /api/v1/risk-rule-types/.")
    params = serializers.DictField(
        required=False,
        help_text="Parameter name -> value; left-out parameters take their defaults.",
    )
    action = serializers.CharField(max_length=8, required=False, help_text=ACTION_HELP)
    warning_level = serializers.FloatField(
        allow_null=True,
        required=False,
        help_text="0 < level < 1: warn at this fraction of the limit; null for none.",
    )
    strategy = serializers.IntegerField(
        allow_null=True,
        required=False,
        min_value=1,
        help_text="Limit the rule to one strategy of the account; null: the whole account.",
    )
    enabled = serializers.BooleanField(required=False)
    breach_state = serializers.ChoiceField(
        choices=RiskRule.BreachState.choices,
        required=False,
        help_text="What a breach found by monitoring does to the account.",
    )
    escalate_after_minutes = serializers.IntegerField(
        allow_null=True,
        required=False,
        min_value=1,
        max_value=10080,
        help_text="Re-send an unacknowledged event one severity higher after this delay.",
    )


class RiskRuleWriteSerializer(_RuleFieldsSerializer):
    account = OwnAccountField(help_text="Id of one of your trading accounts.")


# What a full replacement (PUT) gives the fields it leaves out.
RULE_DEFAULTS = {
    name: field.default
    for name, field in RuleInput.__dataclass_fields__.items()
    if name not in ("rule_type", "params")
}


def _rule_changes(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validated serializer data -> RuleInput field names (``strategy`` -> ``strategy_id``)."""
    changes = {name: value for name, value in data.items() if name != "account"}
    if "strategy" in changes:
        changes["strategy_id"] = changes.pop("strategy")
    return changes


class RiskRuleFilter(filters.FilterSet):
    account = IdFilter(field_name="account_id")
    strategy = IdFilter(field_name="strategy_id")
    rule_type = filters.ChoiceFilter(choices=RiskRule.Type.choices)
    enabled = filters.BooleanFilter()
    account_wide = filters.BooleanFilter(
        field_name="strategy", lookup_expr="isnull", label="Only rules for the whole account"
    )

    class Meta:
        model = RiskRule
        fields = ["account", "strategy", "rule_type", "enabled", "account_wide"]


class BulkRequestSerializer(serializers.Serializer):
    operations = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        max_length=MAX_BULK_OPERATIONS,
        help_text=(
            'Each is {"op": "create", "account": id, ...rule fields}, '
            '{"op": "update", "id": id, ...changed fields} or '
            '{"op": "enable"|"disable"|"delete", "id": id}. Applied in order.'
        ),
    )


class _BulkOperationSerializer(_RuleFieldsSerializer):
    op = serializers.CharField(max_length=16)
    id = serializers.IntegerField(required=False, min_value=1)
    account = serializers.IntegerField(required=False, min_value=1)
    rule_type = serializers.CharField(max_length=32, required=False)


class BulkResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    op = serializers.CharField()
    id = serializers.IntegerField(help_text="The rule's id (a deleted rule's former id).")
    rule = RiskRuleSerializer(allow_null=True, help_text="The rule as stored; null once deleted.")


class BulkResponseSerializer(serializers.Serializer):
    results = BulkResultSerializer(many=True)


def _bulk_operations(raw: Any) -> list[dict[str, Any]]:
    """Type-check every operation (the services check the values) and name the rule fields as
    the services do. Every bad item is reported at once, with its index; nothing is saved."""
    operations = raw.get("operations") if isinstance(raw, Mapping) else raw
    if not isinstance(operations, list) or not 1 <= len(operations) <= MAX_BULK_OPERATIONS:
        raise ValidationFailed(
            f"Send a list of 1 to {MAX_BULK_OPERATIONS} operations.",
            fields={"operations": f"Send a list of 1 to {MAX_BULK_OPERATIONS} operations."},
        )
    cleaned, failures = [], []
    known = set(_BulkOperationSerializer().fields)
    for index, item in enumerate(operations):
        if not isinstance(item, Mapping):
            failures.append(
                {"index": index, "detail": "Each operation is an object.", "errors": {}}
            )
            continue
        serializer = _BulkOperationSerializer(data=item, partial=True)
        if not serializer.is_valid():
            errors = {name: [str(e) for e in value] for name, value in serializer.errors.items()}
            name, messages = next(iter(errors.items()))
            failures.append({"index": index, "detail": f"{name}: {messages[0]}", "errors": errors})
            continue
        operation = dict(serializer.validated_data)
        if "strategy" in operation:
            operation["strategy_id"] = operation.pop("strategy")
        # Unknown names go through, for the service to name them.
        operation.update({k: v for k, v in item.items() if k not in known})
        cleaned.append(operation)
    if failures:
        raise ValidationFailed(
            f"{len(failures)} of {len(operations)} operations are invalid; nothing was saved.",
            code="bulk_invalid",
            fields={"items": failures},
        )
    return cleaned


class DecisionCheckSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="OK, NEAR_LIMIT, or the reason a check failed.")
    passed = serializers.BooleanField()
    severity = serializers.CharField(help_text="ok | " + SEVERITY_HELP)
    message = serializers.CharField()
    rule_id = serializers.IntegerField(allow_null=True, help_text="null for built-in checks.")
    rule_type = serializers.CharField(allow_null=True)
    action = serializers.CharField(help_text=ACTION_HELP)
    value = serializers.FloatField(allow_null=True, help_text="What was measured.")
    limit = serializers.FloatField(allow_null=True)
    max_quantity = serializers.FloatField(
        allow_null=True, help_text="The largest quantity this check lets through."
    )
    check = serializers.CharField(help_text="The rule type, or the built-in check's name.")
    subject = serializers.CharField(
        allow_blank=True, help_text="The symbol or sector a result is about."
    )


class DecisionSerializer(serializers.Serializer):
    outcome = serializers.CharField(help_text="approved | reduced | rejected.")
    requested_quantity = serializers.FloatField()
    quantity = serializers.FloatField(help_text="The approved quantity (0 when rejected).")
    reason_codes = serializers.ListField(child=serializers.CharField())
    message = serializers.CharField()
    stop_loss_price = serializers.FloatField(
        allow_null=True, help_text="Given, or attached by a stop-loss rule."
    )
    take_profit_price = serializers.FloatField(
        allow_null=True, help_text="Given, or attached by a take-profit rule."
    )
    checks = DecisionCheckSerializer(many=True)


def _greater_than_zero(value) -> None:
    if value <= 0:
        raise serializers.ValidationError("Must be greater than zero.")


def _price_field(help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(
        **PRICE,
        required=False,
        allow_null=True,
        validators=[_greater_than_zero],
        help_text=help_text,
    )


class OrderTestSerializer(serializers.Serializer):
    """A hypothetical order: checked like a real one, never placed."""

    account = OwnAccountField(help_text="Id of one of your trading accounts.")
    symbol = serializers.CharField(max_length=32)
    side = serializers.ChoiceField(choices=Side.choices)
    quantity = serializers.DecimalField(**QTY, validators=[_greater_than_zero])
    order_type = serializers.ChoiceField(choices=OrderType.choices, default=OrderType.MARKET)
    limit_price = _price_field("For limit and stop-limit orders.")
    stop_price = _price_field("For stop and stop-limit orders.")
    stop_loss_price = _price_field("A protective stop for the entry.")
    take_profit_price = _price_field("A profit target for the entry.")
    reduce_only = serializers.BooleanField(default=False)
    strategy = OwnStrategyField(
        required=False,
        allow_null=True,
        help_text="Check as this strategy's order (its scoped rules apply too).",
    )

    def validate(self, attrs: dict) -> dict:
        strategy = attrs.get("strategy")
        if strategy is not None and strategy.account_id != attrs["account"].pk:
            raise serializers.ValidationError({"strategy": "The strategy trades another account."})
        return attrs


@extend_schema_view(
    list=extend_schema(
        summary="List your risk rules",
        parameters=[
            OpenApiParameter(
                "account_wide", bool, description="true: only rules for the whole account."
            )
        ],
    ),
    retrieve=extend_schema(summary="One of your risk rules"),
    destroy=extend_schema(summary="Delete a risk rule"),
)
class RiskRuleViewSet(viewsets.ModelViewSet):
    """Your risk rules. Bad parameters answer 400 naming the parameter (`params.limit`) and
    save nothing; another user's account or strategy answers 400 "No such account." /
    "No such strategy."."""

    queryset = RiskRule.objects.none()
    serializer_class = RiskRuleSerializer
    filterset_class = RiskRuleFilter
    search_fields = ["name"]
    ordering_fields = ["id", "rule_type", "created_at", "updated_at", "name"]
    ordering = ["account_id", "rule_type", "id"]

    def get_queryset(self) -> QuerySet[RiskRule]:
        return rules_for_user(user=self.request.user)

    def _stored(self, rule: RiskRule) -> dict:
        stored = rules_for_user(user=self.request.user).get(pk=rule.pk)
        return RiskRuleSerializer(stored, context=self.get_serializer_context()).data

    @extend_schema(
        summary="Create a risk rule",
        request=RiskRuleWriteSerializer,
        responses={201: RiskRuleSerializer},
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = RiskRuleWriteSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        rule = risk_rule_create(
            owner=request.user,
            account=data["account"],
            data=RuleInput(**{"params": {}, **_rule_changes(data)}),
        )
        return Response(self._stored(rule), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace a risk rule",
        request=RiskRuleWriteSerializer,
        responses=RiskRuleSerializer,
        description="Fields left out take their defaults. A rule stays on its account.",
    )
    def update(self, request: Request, *args, **kwargs) -> Response:
        rule = self.get_object()
        partial = kwargs.get("partial", False)
        serializer = RiskRuleWriteSerializer(
            data=request.data, partial=partial, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "account" in data and data["account"].pk != rule.account_id:
            raise ValidationFailed(
                "A rule stays on its account; create a rule on the other account instead.",
                fields={"account": "A rule cannot move to another account."},
            )
        changes = _rule_changes(data)
        if not partial:
            changes = {**RULE_DEFAULTS, "params": {}, **changes}
        rule = risk_rule_update(rule=rule, changes=changes)
        return Response(self._stored(rule))

    @extend_schema(
        summary="Change some fields of a risk rule",
        request=RiskRuleWriteSerializer,
        responses=RiskRuleSerializer,
        description="Changing rule_type without params resets params to the type's defaults.",
    )
    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        risk_rule_delete(rule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Create, change, enable, disable or delete many rules at once",
        request=BulkRequestSerializer,
        responses={
            200: BulkResponseSerializer,
            400: OpenApiResponse(
                description='All or nothing: {"detail", "code": "bulk_invalid", '
                '"errors": {"items": [{"index", "detail", "errors"}]}} and nothing saved.'
            ),
        },
        description="One transaction. The body may also be the bare list of operations.",
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request: Request) -> Response:
        operations = _bulk_operations(request.data)
        rules = risk_rules_bulk(owner=request.user, operations=operations)
        stored = {
            rule.pk: rule
            for rule in rules_for_user(user=request.user).filter(
                pk__in=[rule.pk for rule in rules if rule is not None]
            )
        }
        context = self.get_serializer_context()
        results = []
        for index, (operation, rule) in enumerate(zip(operations, rules, strict=True)):
            results.append(
                {
                    "index": index,
                    "op": operation["op"],
                    "id": rule.pk if rule is not None else operation.get("id"),
                    "rule": RiskRuleSerializer(stored[rule.pk], context=context).data
                    if rule is not None
                    else None,
                }
            )
        return Response({"results": results})

    @extend_schema(
        summary="Check a hypothetical order against your rules without placing it",
        request=OrderTestSerializer,
        responses={200: DecisionSerializer},
        description=(
            "The decision the pre-trade check would take now: outcome, approved quantity, "
            "reason codes, every check with its measured value and limit, and the stop/target "
            "the rules would attach. Nothing is written."
        ),
    )
    @action(detail=False, methods=["post"])
    def test(self, request: Request) -> Response:
        serializer = OrderTestSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        account, strategy = data.pop("account"), data.pop("strategy", None)
        decision = risk_order_test(
            account=account,
            intent=OrderIntent(**data),
            strategy_id=strategy.pk if strategy is not None else None,
        )
        return Response(DecisionSerializer(decision.as_dict()).data)


# --- libraries ----------------------------------------------------------------------------


class RuleTypeSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="The value of a rule's rule_type.")
    label = serializers.CharField()
    description = serializers.CharField()
    reason_code = serializers.CharField(help_text="The code an order refused by it reports.")
    params = ParamSpecSerializer(many=True)
    defaults = serializers.DictField(child=serializers.JSONField())
    supports_warning_level = serializers.BooleanField()
    actions = serializers.ListField(child=serializers.CharField())


@extend_schema_view(
    list=extend_schema(summary="The risk rule types", responses=RuleTypeSerializer(many=True)),
    retrieve=extend_schema(
        summary="One risk rule type",
        responses=RuleTypeSerializer,
        parameters=[OpenApiParameter("type", str, OpenApiParameter.PATH)],
    ),
)
class RiskRuleTypeViewSet(viewsets.ViewSet):
    """Every rule type with its parameters (type, default, bounds). Not paginated."""

    lookup_field = "type"
    lookup_value_regex = r"[^/]+"

    def list(self, request: Request) -> Response:
        return Response(RuleTypeSerializer(describe_rule_types(), many=True).data)

    def retrieve(self, request: Request, type: str | None = None) -> Response:
        for described in describe_rule_types():
            if described["type"] == type:
                return Response(RuleTypeSerializer(described).data)
        raise NotFound(f"No risk rule type {type!r}.")


class SizingMethodSerializer(serializers.Serializer):
    method = serializers.CharField()
    label = serializers.CharField()
    description = serializers.CharField()
    params = ParamSpecSerializer(many=True)
    defaults = serializers.DictField(child=serializers.JSONField())
    needs_stop_price = serializers.BooleanField()
    needs_atr = serializers.BooleanField()


class PositionSizeRequestSerializer(serializers.Serializer):
    account = OwnAccountField(help_text="Id of one of your trading accounts.")
    symbol = serializers.CharField(max_length=32)
    method = serializers.CharField(max_length=32, help_text="See /api/v1/position-size/methods/.")
    params = serializers.DictField(required=False, help_text="The method's parameters.")
    side = serializers.ChoiceField(choices=Side.choices, default=Side.BUY)
    stop_price = serializers.FloatField(
        required=False, allow_null=True, help_text="Required by pct_risk."
    )
    price = serializers.FloatField(
        required=False, allow_null=True, help_text="Entry price; the last price when left out."
    )
    strategy = OwnStrategyField(
        required=False,
        allow_null=True,
        help_text="Apply this strategy's max-position rules too.",
    )


class SizingResultSerializer(serializers.Serializer):
    quantity = serializers.FloatField(help_text="On the lot grid, rounded down.")
    method = serializers.CharField()
    notional = serializers.FloatField(help_text="quantity x price.")
    risk_amount = serializers.FloatField(
        allow_null=True, help_text="Money lost at the stop (or atr_multiple x ATR)."
    )
    steps = serializers.ListField(child=serializers.CharField(), help_text="The arithmetic.")
    capped_by = serializers.ListField(
        child=serializers.CharField(), help_text="buying_power, max_position_value."
    )


class PositionSizeViewSet(viewsets.ViewSet):
    """Position sizing with the library's methods, capped by buying power and the account's
    max-position rules, rounded down to the lot size."""

    @extend_schema(
        summary="Size a position",
        request=PositionSizeRequestSerializer,
        responses={200: SizingResultSerializer},
        description="Bad inputs answer 400 naming them (params.risk_pct, stop_price, ...).",
    )
    def create(self, request: Request) -> Response:
        serializer = PositionSizeRequestSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        strategy = data.get("strategy")
        result = position_size(
            account=data["account"],
            symbol=data["symbol"],
            method=data["method"],
            params=data.get("params"),
            side=data["side"],
            stop_price=data.get("stop_price"),
            price=data.get("price"),
            strategy_id=strategy.pk if strategy is not None else None,
        )
        return Response(SizingResultSerializer(result.as_dict()).data)

    @extend_schema(summary="The sizing methods", responses=SizingMethodSerializer(many=True))
    @action(detail=False, methods=["get"])
    def methods(self, request: Request) -> Response:
        return Response(SizingMethodSerializer(describe_sizing_methods(), many=True).data)


# --- the account's risk and trading state -------------------------------------------------


class TradingStateSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=TradingAccount.Status.choices)
    reason = serializers.CharField(allow_blank=True)
    changed_at = serializers.DateTimeField(allow_null=True, help_text="When the state last moved.")
    changed_by = serializers.CharField(allow_null=True, help_text="The person, if one did it.")
    rule = serializers.IntegerField(allow_null=True, help_text="The rule, if one did it.")
    rule_name = serializers.CharField(allow_null=True)


class PositionExposureSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    side = serializers.CharField(help_text="long | short.")
    quantity = serializers.FloatField()
    last_price = serializers.FloatField()
    value = serializers.FloatField(help_text="Signed market value.")
    pct_of_equity = serializers.FloatField(allow_null=True)
    sector = serializers.CharField(allow_blank=True)


class SectorExposureSerializer(serializers.Serializer):
    sector = serializers.CharField(allow_blank=True)
    gross = serializers.FloatField()
    net = serializers.FloatField()
    gross_pct = serializers.FloatField(allow_null=True)
    net_pct = serializers.FloatField(allow_null=True)


class StopRiskSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    stop_price = serializers.FloatField()
    last_price = serializers.FloatField()
    risk = serializers.FloatField(help_text="Money lost if the stop fills at its price.")


class CorrelationSerializer(serializers.Serializer):
    symbols = serializers.ListField(child=serializers.CharField())
    matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="Pearson correlation of daily returns; null where unmeasurable.",
    )


class VarSerializer(serializers.Serializer):
    confidence = serializers.FloatField()
    lookback = serializers.IntegerField()
    value = serializers.FloatField(allow_null=True, help_text="1-day historical VaR (a loss).")
    observations = serializers.IntegerField()
    missing = serializers.ListField(
        child=serializers.CharField(), help_text="Holdings without return history."
    )


class AccountRiskSerializer(serializers.Serializer):
    account = serializers.IntegerField()
    as_of = serializers.DateTimeField()
    trading_state = TradingStateSerializer()
    equity = serializers.FloatField()
    cash = serializers.FloatField()
    positions = PositionExposureSerializer(many=True)
    sectors = SectorExposureSerializer(many=True)
    long_exposure = serializers.FloatField()
    short_exposure = serializers.FloatField()
    gross_exposure = serializers.FloatField()
    net_exposure = serializers.FloatField()
    leverage = serializers.FloatField(allow_null=True, help_text="Gross exposure / equity.")
    heat = serializers.FloatField(help_text="Open risk to the stops, money.")
    heat_pct = serializers.FloatField(allow_null=True)
    stop_risks = StopRiskSerializer(many=True)
    unprotected = serializers.ListField(
        child=serializers.CharField(), help_text="Holdings without a stop loss."
    )
    correlation = CorrelationSerializer()
    high_water_mark = serializers.FloatField(allow_null=True)
    drawdown_pct = serializers.FloatField(allow_null=True)
    start_of_day_equity = serializers.FloatField(allow_null=True)
    daily_pnl = serializers.FloatField(allow_null=True)
    daily_pnl_pct = serializers.FloatField(allow_null=True)
    var = VarSerializer()
    checks = DecisionCheckSerializer(
        many=True, help_text="How close the account is to each rule now."
    )


class TradingStateChangeSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=255, required=False, allow_blank=True, help_text="Kept in the state history."
    )


class AccountTradingStateSerializer(TradingStateSerializer):
    account = serializers.IntegerField()


def _trading_state(account: TradingAccount) -> dict:
    change = (
        TradingStateChange.objects.filter(account=account)
        .select_related("changed_by", "rule")
        .first()
    )
    return {
        "account": account.pk,
        "state": account.status,
        "reason": account.status_reason,
        "changed_at": change.at if change else None,
        "changed_by": change.changed_by.get_username() if change and change.changed_by else None,
        "rule": change.rule_id if change else None,
        "rule_name": str(change.rule) if change and change.rule else None,
    }


class AccountRiskViewSet(viewsets.GenericViewSet):
    """The risk side of your accounts, at ``/accounts/{id}/...`` next to the accounts API."""

    queryset = TradingAccount.objects.none()
    serializer_class = AccountTradingStateSerializer
    filter_backends: list = []
    pagination_class = None

    def get_queryset(self) -> QuerySet[TradingAccount]:
        return accounts_for_user(user=self.request.user)

    @extend_schema(
        summary="The account's risk now",
        responses=AccountRiskSerializer,
        description=(
            "Exposures by position and sector, gross/net exposure and leverage, heat (open risk "
            "to the stops), correlation of the holdings, drawdown, daily PnL, 1-day historical "
            "VaR 95%, how close each rule is to its limit (`checks`), and the trading state "
            "with the change that set it."
        ),
    )
    @action(detail=True, methods=["get"])
    def risk(self, request: Request, pk: str | None = None) -> Response:
        overview = account_risk_overview(account=self.get_object())
        return Response(AccountRiskSerializer(overview.as_dict()).data)

    @extend_schema(
        summary="Halt trading on the account",
        request=TradingStateChangeSerializer,
        responses=AccountTradingStateSerializer,
        description="No new orders pass until the account is resumed (protective exits still "
        "close positions at their stops). Halting a halted account changes nothing.",
    )
    @action(detail=True, methods=["post"])
    def halt(self, request: Request, pk: str | None = None) -> Response:
        account = self.get_object()
        serializer = TradingStateChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = (
            serializer.validated_data.get("reason") or f"halted by {request.user.get_username()}"
        )
        account = trading_state_set(
            account=account,
            state=TradingAccount.Status.HALTED,
            reason=reason,
            changed_by=request.user,
        )
        return Response(AccountTradingStateSerializer(_trading_state(account)).data)

    @extend_schema(
        summary="Resume trading on a reducing or halted account",
        request=TradingStateChangeSerializer,
        responses=AccountTradingStateSerializer,
        description="Resuming an active account changes nothing.",
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        account = self.get_object()
        serializer = TradingStateChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        account = account_resume_trading(
            account=account, user=request.user, reason=serializer.validated_data.get("reason", "")
        )
        return Response(AccountTradingStateSerializer(_trading_state(account)).data)


# --- events -------------------------------------------------------------------------------


class RiskEventSerializer(serializers.ModelSerializer):
    source = serializers.CharField(read_only=True, help_text=SOURCE_HELP)
    severity = serializers.CharField(read_only=True, help_text=SEVERITY_HELP)
    context = serializers.DictField(read_only=True, help_text="The check or decision behind it.")
    acknowledged = serializers.BooleanField(read_only=True)
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.username", read_only=True, allow_null=True, default=None
    )
    rule_name = serializers.SerializerMethodField()

    class Meta:
        model = RiskEvent
        fields = [
            "id",
            "account",
            "rule",
            "rule_name",
            "source",
            "code",
            "severity",
            "symbol",
            "value",
            "limit",
            "message",
            "context",
            "trading_date",
            "escalation_level",
            "created_at",
            "last_seen_at",
            "acknowledged",
            "acknowledged_at",
            "acknowledged_by",
        ]
        read_only_fields = fields

    def get_rule_name(self, event: RiskEvent) -> str | None:
        return str(event.rule) if event.rule_id else None


class RiskEventFilter(filters.FilterSet):
    account = IdFilter(field_name="account_id")
    rule = IdFilter(field_name="rule_id")
    severity = filters.ChoiceFilter(choices=RiskEvent.Severity.choices)
    source = filters.ChoiceFilter(choices=RiskEvent.Source.choices)
    code = filters.CharFilter(lookup_expr="iexact", max_length=48)
    symbol = filters.CharFilter(lookup_expr="iexact", max_length=32)
    acknowledged = filters.BooleanFilter(
        field_name="acknowledged_at", lookup_expr="isnull", exclude=True
    )
    created_after = filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Created at or after (ISO 8601)"
    )
    created_before = filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Created before (ISO 8601)"
    )

    class Meta:
        model = RiskEvent
        fields = [
            "account",
            "rule",
            "severity",
            "source",
            "code",
            "symbol",
            "acknowledged",
            "created_after",
            "created_before",
        ]


class AcknowledgeManySerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        min_length=1,
        max_length=MAX_ACKNOWLEDGE_IDS,
        help_text="Ids of your events; any other id refuses the whole request.",
    )


class AcknowledgeManyResponseSerializer(serializers.Serializer):
    acknowledged = serializers.IntegerField(help_text="How many were open before this call.")
    results = RiskEventSerializer(many=True)


@extend_schema_view(
    list=extend_schema(summary="Your risk events, newest first"),
    retrieve=extend_schema(summary="One risk event"),
)
class RiskEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Warnings, breaches and critical events raised by the pre-trade check, monitoring and
    protective exits on your accounts."""

    queryset = RiskEvent.objects.none()
    serializer_class = RiskEventSerializer
    filterset_class = RiskEventFilter
    search_fields = ["message", "code", "symbol"]
    ordering_fields = ["created_at", "last_seen_at", "severity", "id"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self) -> QuerySet[RiskEvent]:
        return events_for_user(user=self.request.user).select_related("acknowledged_by")

    @extend_schema(
        summary="Acknowledge an event",
        request=None,
        responses=RiskEventSerializer,
        description="Stops its escalation. Acknowledging twice changes nothing.",
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        event = risk_event_acknowledge(event=self.get_object(), user=request.user)
        stored = self.get_queryset().get(pk=event.pk)
        return Response(RiskEventSerializer(stored, context=self.get_serializer_context()).data)

    @extend_schema(
        operation_id="risk_events_acknowledge_many",
        summary="Acknowledge many events",
        request=AcknowledgeManySerializer,
        responses=AcknowledgeManyResponseSerializer,
        description="All or nothing: an id that is not one of your events answers 400 naming "
        "it (errors.ids) and acknowledges none.",
    )
    @action(detail=False, methods=["post"], url_path="acknowledge", url_name="acknowledge-many")
    def acknowledge_many(self, request: Request) -> Response:
        serializer = AcknowledgeManySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        now = timezone.now()
        events = risk_events_acknowledge(
            user=request.user, event_ids=serializer.validated_data["ids"], now=now
        )
        stored = self.get_queryset().in_bulk([event.pk for event in events])
        context = self.get_serializer_context()
        return Response(
            {
                "acknowledged": sum(1 for event in events if event.acknowledged_at == now),
                "results": [
                    RiskEventSerializer(stored[event.pk], context=context).data for event in events
                ],
            }
        )
