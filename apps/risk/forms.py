"""Forms of the risk page: a rule (its parameter fields follow the chosen rule type), the
what-if order test, the position size calculator and the halt/resume reason.

Forms shape input only. Parameter fields are submitted as raw text, so the risk services (the
same ones the API calls) coerce and check them, and their errors (``params.limit``) land next
to the matching input (``param_limit``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from apps.accounts.models import TradingAccount
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import OrderType, Side
from apps.risk.domain.rules import RULE_PARAM_SPECS, describe_rule_types
from apps.risk.domain.sizing import SIZING_PARAM_SPECS, describe_sizing_methods
from apps.risk.domain.types import RuleType
from apps.risk.models import RiskRule
from apps.risk.services import RuleInput
from apps.strategies.domain.params import ParamSpec
from apps.strategies.forms import PARAM_PREFIX, param_form_field
from apps.strategies.models import Strategy

PARTIALS = ("overview", "state", "events", "rules")

# Service error names -> form field names (anything else goes to the top of the form).
_RULE_FIELDS = {"warning_level": "warning_pct", "strategy": "strategy"}


def rule_field_name(service_field: str) -> str | None:
    """``params.limit`` -> ``param_limit``; ``warning_level`` -> ``warning_pct``."""
    if service_field.startswith("params."):
        return PARAM_PREFIX + service_field.removeprefix("params.")
    return _RULE_FIELDS.get(service_field, service_field)


def size_field_name(service_field: str) -> str | None:
    if service_field.startswith("params."):
        return PARAM_PREFIX + service_field.removeprefix("params.")
    return service_field


class RiskQueryForm(forms.Form):
    """``?account=ID`` picks one of the user's accounts; ``?partial=`` asks for one fragment."""

    account = forms.IntegerField(required=False, min_value=1)
    partial = forms.ChoiceField(required=False, choices=[(p, p) for p in PARTIALS])


class RuleTypeQueryForm(forms.Form):
    rule_type = forms.ChoiceField(choices=RiskRule.Type.choices)
    rule = forms.IntegerField(required=False, min_value=1)
    prefix = forms.SlugField(required=False, max_length=20)


class SizingMethodQueryForm(forms.Form):
    method = forms.ChoiceField(choices=[(m, m) for m in SIZING_PARAM_SPECS])


class StrategyChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Strategy) -> str:
        return obj.name


def _strategies(account: TradingAccount):
    return Strategy.objects.filter(account=account, owner_id=account.owner_id).order_by("name")


def _add_param_fields(
    form: forms.Form, specs: tuple[ParamSpec, ...], values: dict[str, Any]
) -> None:
    for spec in specs:
        form.fields[PARAM_PREFIX + spec.name] = param_form_field(
            spec, values.get(spec.name, spec.default)
        )


def _raw_params(form: forms.Form, specs: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """Raw parameter values for the service: blank means "use the default"."""
    values: dict[str, Any] = {}
    for spec in specs:
        value = form.cleaned_data.get(PARAM_PREFIX + spec.name)
        if spec.type is bool:
            values[spec.name] = bool(value)
        elif value not in (None, ""):
            values[spec.name] = value
    return values


class RuleForm(forms.Form):
    """A risk rule of one account. ``prefix`` keeps ids unique when several rows are edited."""

    rule_type = forms.ChoiceField(label="Rule", choices=RiskRule.Type.choices)
    name = forms.CharField(
        max_length=100, required=False, widget=forms.TextInput(attrs={"placeholder": "Optional"})
    )
    action = forms.ChoiceField(
        choices=RiskRule.Action.choices,
        initial=RiskRule.Action.BLOCK,
        help_text="Block refuses (or shrinks) the order; warn only raises a warning.",
    )
    warning_pct = forms.DecimalField(
        label="Warn at (% of limit)",
        required=False,
        max_digits=6,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0", "max": "100"}),
        help_text="A warning once the measured value reaches this share of the limit.",
    )
    strategy = StrategyChoiceField(
        label="Scope",
        queryset=Strategy.objects.none(),
        required=False,
        empty_label="Whole account",
    )
    breach_state = forms.ChoiceField(
        label="On a breach",
        choices=RiskRule.BreachState.choices,
        initial=RiskRule.BreachState.NONE,
        help_text="What monitoring does to the account when the rule is breached.",
    )
    escalate_after_minutes = forms.IntegerField(
        label="Escalate after (minutes)",
        required=False,
        min_value=1,
        max_value=10080,
        help_text="Re-send an unacknowledged event one severity higher.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(
        self,
        data=None,
        *,
        account: TradingAccount,
        rule: RiskRule | None = None,
        rule_type: str | None = None,
        **kwargs,
    ) -> None:
        initial = kwargs.pop("initial", None) or {}
        if rule is not None:
            initial = {
                "rule_type": rule.rule_type,
                "name": rule.name,
                "action": rule.action,
                # 0.8000 -> "80" (normalize alone would give 8E+1)
                "warning_pct": f"{(rule.warning_level * 100).normalize():f}"
                if rule.warning_level is not None
                else None,
                "strategy": rule.strategy_id,
                "breach_state": rule.breach_state,
                "escalate_after_minutes": rule.escalate_after_minutes,
                "enabled": rule.enabled,
                **initial,
            }
        kwargs.setdefault("prefix", f"rule{rule.pk}" if rule is not None else "new")
        super().__init__(data, initial=initial, **kwargs)
        self.account = account
        self.rule = rule
        self.fields["strategy"].queryset = _strategies(account)
        described = {d["type"]: d for d in describe_rule_types()}
        submitted = self.data.get(self.add_prefix("rule_type")) if self.is_bound else None
        chosen = submitted or rule_type or initial.get("rule_type") or RuleType.MAX_POSITION_SIZE
        if chosen not in described:
            chosen = RuleType.MAX_POSITION_SIZE.value
        self.chosen_type = str(chosen)
        self.described = described[self.chosen_type]
        self.specs = RULE_PARAM_SPECS[RuleType(self.chosen_type)]
        current = rule.params if rule is not None and rule.rule_type == self.chosen_type else {}
        _add_param_fields(self, self.specs, current)
        if not self.is_bound:
            self.initial["rule_type"] = self.chosen_type

    @property
    def param_fields(self) -> list[forms.BoundField]:
        return [self[PARAM_PREFIX + spec.name] for spec in self.specs]

    @property
    def supports_warning_level(self) -> bool:
        return bool(self.described["supports_warning_level"])

    @property
    def type_description(self) -> str:
        return self.described["description"]

    def clean_warning_pct(self) -> Decimal | None:
        value = self.cleaned_data.get("warning_pct")
        if value is not None and not 0 < value < 100:
            raise forms.ValidationError("Between 0 and 100, exclusive (80 warns at 80%).")
        return value

    def rule_input(self) -> RuleInput:
        data = self.cleaned_data
        pct = data.get("warning_pct") if self.supports_warning_level else None
        strategy = data.get("strategy")
        return RuleInput(
            rule_type=data["rule_type"],
            params=_raw_params(self, self.specs),
            action=data["action"],
            warning_level=float(pct) / 100 if pct is not None else None,
            strategy_id=strategy.pk if strategy is not None else None,
            enabled=bool(data.get("enabled")),
            name=data.get("name") or "",
            breach_state=data["breach_state"],
            escalate_after_minutes=data.get("escalate_after_minutes"),
        )

    def changes(self) -> dict[str, Any]:
        return dict(self.rule_input().__dict__)


def _price(label: str, help_text: str = "") -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=False,
        max_digits=24,
        decimal_places=8,
        min_value=Decimal("0.00000001"),
        help_text=help_text,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
    )


class OrderTestForm(forms.Form):
    """A hypothetical order for the pre-trade check; never placed."""

    symbol = forms.CharField(
        max_length=32,
        widget=forms.TextInput(
            attrs={"list": "risk-symbols", "autocomplete": "off", "placeholder": "AAPL"}
        ),
    )
    side = forms.ChoiceField(choices=Side.choices, initial=Side.BUY, widget=forms.RadioSelect)
    quantity = forms.DecimalField(
        max_digits=24,
        decimal_places=8,
        min_value=Decimal("0.00000001"),
        widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
    )
    order_type = forms.ChoiceField(
        label="Type", choices=OrderType.choices, initial=OrderType.MARKET
    )
    limit_price = _price("Limit price")
    stop_price = _price("Stop price")
    stop_loss_price = _price("Stop loss", "Protective stop for the entry (optional).")
    take_profit_price = _price("Take profit", "Profit target for the entry (optional).")
    strategy = StrategyChoiceField(
        label="As strategy",
        queryset=Strategy.objects.none(),
        required=False,
        empty_label="Manual order",
    )
    reduce_only = forms.BooleanField(label="Reduce only", required=False)

    def __init__(self, *args, account: TradingAccount, **kwargs) -> None:
        kwargs.setdefault("prefix", "test")
        super().__init__(*args, **kwargs)
        self.fields["strategy"].queryset = _strategies(account)

    def clean_symbol(self) -> str:
        return self.cleaned_data["symbol"].strip().upper()

    def clean(self) -> dict:
        cleaned = super().clean()
        order_type = cleaned.get("order_type")
        uses = {
            "limit_price": (OrderType.LIMIT, OrderType.STOP_LIMIT),
            "stop_price": (OrderType.STOP, OrderType.STOP_LIMIT),
        }
        for name, types in uses.items():
            if order_type and order_type not in types:
                cleaned[name] = None
            elif order_type and cleaned.get(name) is None and name not in self.errors:
                self.add_error(name, f"Required for a {order_type.replace('_', '-')} order.")
        return cleaned

    def intent(self) -> OrderIntent:
        data = self.cleaned_data
        return OrderIntent(
            symbol=data["symbol"],
            side=data["side"],
            quantity=data["quantity"],
            order_type=data["order_type"],
            limit_price=data.get("limit_price"),
            stop_price=data.get("stop_price"),
            reduce_only=bool(data.get("reduce_only")),
            stop_loss_price=data.get("stop_loss_price"),
            take_profit_price=data.get("take_profit_price"),
        )

    def strategy_id(self) -> int | None:
        strategy = self.cleaned_data.get("strategy")
        return strategy.pk if strategy is not None else None


class PositionSizeForm(forms.Form):
    """The calculator: a sizing method, its parameters, and the trade's prices."""

    symbol = forms.CharField(
        max_length=32,
        widget=forms.TextInput(
            attrs={"list": "risk-symbols", "autocomplete": "off", "placeholder": "AAPL"}
        ),
    )
    side = forms.ChoiceField(choices=Side.choices, initial=Side.BUY, widget=forms.RadioSelect)
    method = forms.ChoiceField(label="Method")
    price = forms.FloatField(
        label="Entry price",
        required=False,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
        help_text="Leave blank for the last price.",
    )
    stop_price = forms.FloatField(
        label="Stop price",
        required=False,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
        help_text="Needed by % risk to stop.",
    )
    strategy = StrategyChoiceField(
        label="As strategy",
        queryset=Strategy.objects.none(),
        required=False,
        empty_label="Manual",
    )

    def __init__(
        self, data=None, *, account: TradingAccount, method: str | None = None, **kwargs
    ) -> None:
        kwargs.setdefault("prefix", "size")
        super().__init__(data, **kwargs)
        self.fields["strategy"].queryset = _strategies(account)
        methods = describe_sizing_methods()
        self.fields["method"].choices = [(m["method"], m["label"]) for m in methods]
        self.descriptions = {m["method"]: m["description"] for m in methods}
        submitted = self.data.get(self.add_prefix("method")) if self.is_bound else None
        chosen = submitted or method or "pct_risk"
        if chosen not in SIZING_PARAM_SPECS:
            chosen = "pct_risk"
        self.chosen_method = chosen
        self.specs = SIZING_PARAM_SPECS[chosen]
        _add_param_fields(self, self.specs, {})
        if not self.is_bound:
            self.initial["method"] = chosen

    @property
    def param_fields(self) -> list[forms.BoundField]:
        return [self[PARAM_PREFIX + spec.name] for spec in self.specs]

    @property
    def method_description(self) -> str:
        return self.descriptions.get(self.chosen_method, "")

    def clean_symbol(self) -> str:
        return self.cleaned_data["symbol"].strip().upper()

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        strategy = data.get("strategy")
        return {
            "symbol": data["symbol"],
            "method": data["method"],
            "params": _raw_params(self, self.specs),
            "side": data["side"],
            "stop_price": data.get("stop_price"),
            "price": data.get("price"),
            "strategy_id": strategy.pk if strategy is not None else None,
        }


class TradingStateForm(forms.Form):
    reason = forms.CharField(
        max_length=255,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "Reason (optional)"}),
    )
