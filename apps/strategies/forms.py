"""The strategy form: common fields plus one field per parameter of the chosen kind, and the
execution settings (sizing method with one field per sizing parameter, entry order type).

The parameter fields are generated from the kind's ParamSpecs (the sizing fields from the risk
library's sizing specs) and submitted as raw text, so the strategy service (the same one the
API uses) does all the coercing and checking and its errors (``params.fast``,
``sizing_params.pct``) land next to the matching input (``param_fast``, ``sizing_pct``).
"""

from __future__ import annotations

import re
from typing import Any

from django import forms

from apps.accounts.models import TradingAccount, User
from apps.accounts.selectors import accounts_for_user
from apps.marketdata.models import Timeframe
from apps.risk.domain.sizing import SIZING_PARAM_SPECS, describe_sizing_methods
from apps.strategies.domain.params import ParamSpec
from apps.strategies.domain.registry import UnknownStrategy, get_strategy, strategy_kinds
from apps.strategies.models import Strategy

PARAM_PREFIX = "param_"
SIZING_PREFIX = "sizing_"
DEFAULT_SIZING_METHOD = "pct_equity"
ENTRY_ORDER_TYPES = [("market", "Market"), ("limit", "Limit")]


def param_field_name(service_field: str) -> str | None:
    """A service error key -> the form field: ``params.fast`` -> ``param_fast``,
    ``sizing_params.pct`` -> ``sizing_pct``."""
    if service_field.startswith("params."):
        return PARAM_PREFIX + service_field.removeprefix("params.")
    if service_field.startswith("sizing_params."):
        return SIZING_PREFIX + service_field.removeprefix("sizing_params.")
    return None


def sizing_specs(method: str | None) -> tuple[ParamSpec, ...]:
    return SIZING_PARAM_SPECS.get(method or "", ())


def param_specs(kind: str | None) -> tuple[ParamSpec, ...]:
    try:
        return tuple(get_strategy(kind).params) if kind else ()
    except UnknownStrategy:
        return ()


def _initial_text(value: Any) -> Any:
    return value if value is not None else ""


def param_form_field(spec: ParamSpec, value: Any) -> forms.Field:
    help_parts = [spec.help] if spec.help else []
    if spec.type is bool:
        field: forms.Field = forms.BooleanField(required=False)
    elif spec.choices is not None:
        field = forms.ChoiceField(choices=[(str(c), str(c)) for c in spec.choices], required=False)
    else:
        attrs: dict[str, Any] = {"placeholder": str(spec.default)}
        if spec.type in (int, float):
            attrs.update(inputmode="decimal" if spec.type is float else "numeric")
            attrs["step"] = "1" if spec.type is int else "any"
            if spec.minimum is not None:
                attrs["min"] = spec.minimum
            if spec.maximum is not None:
                attrs["max"] = spec.maximum
            widget: forms.Widget = forms.NumberInput(attrs=attrs)
            bounds = _bounds(spec)
            if bounds:
                help_parts.append(bounds)
        else:
            widget = forms.TextInput(attrs=attrs)
        field = forms.CharField(required=False, strip=True, widget=widget)
    field.label = spec.label
    field.help_text = " ".join(help_parts)
    field.initial = value if spec.type is bool else _initial_text(value)
    field.widget.attrs["data-param"] = spec.name
    return field


def _bounds(spec: ParamSpec) -> str:
    if spec.minimum is not None and spec.maximum is not None:
        return f"{spec.minimum:g} to {spec.maximum:g}."
    if spec.minimum is not None:
        return f"At least {spec.minimum:g}."
    if spec.maximum is not None:
        return f"At most {spec.maximum:g}."
    return ""


class AccountChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: TradingAccount) -> str:
        return obj.name


class StrategyForm(forms.Form):
    name = forms.CharField(max_length=100)
    account = AccountChoiceField(queryset=TradingAccount.objects.none(), empty_label=None)
    kind = forms.ChoiceField(label="Strategy")
    symbols = forms.CharField(
        max_length=500,
        help_text="One or more symbols, separated by commas.",
        widget=forms.TextInput(
            attrs={"placeholder": "AAPL, MSFT", "autocomplete": "off", "spellcheck": "false"}
        ),
    )
    timeframe = forms.ChoiceField(choices=Timeframe.choices, initial=Timeframe.D1)
    mode = forms.ChoiceField(
        choices=Strategy.Mode.choices,
        initial=Strategy.Mode.OFF,
        help_text="Off: no signals traded. Paper: orders on the paper broker. Live: real orders.",
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    # Execution: how a signal becomes an order.
    sizing_method = forms.ChoiceField(
        label="Position sizing", required=False, help_text="How many units each entry trades."
    )
    entry_order_type = forms.ChoiceField(
        label="Entry order",
        choices=ENTRY_ORDER_TYPES,
        required=False,
        help_text="Exits are always market orders.",
    )
    limit_offset_bps = forms.DecimalField(
        label="Limit offset (bps)",
        required=False,
        max_digits=8,
        decimal_places=2,
        help_text="How far inside the last price a limit entry sits; 0 to 1000 basis points.",
        widget=forms.NumberInput(attrs={"step": "any", "min": "0", "max": "1000"}),
    )
    reprice_limit = forms.BooleanField(
        label="Re-price unfilled limit entries on each bar",
        required=False,
        help_text="The limit follows the market while it has not filled.",
    )

    def __init__(
        self,
        data=None,
        *,
        user: User,
        strategy: Strategy | None = None,
        kind: str | None = None,
        sizing_method: str | None = None,
        **kwargs,
    ) -> None:
        initial = kwargs.pop("initial", None) or {}
        if strategy is not None:
            initial = {
                "name": strategy.name,
                "account": strategy.account_id,
                "kind": strategy.kind,
                "symbols": ", ".join(strategy.symbols),
                "timeframe": strategy.timeframe,
                "mode": strategy.mode,
                "description": strategy.description,
                "sizing_method": strategy.sizing_method,
                "entry_order_type": strategy.entry_order_type,
                "limit_offset_bps": strategy.limit_offset_bps.normalize(),
                "reprice_limit": strategy.reprice_limit,
                **initial,
            }
        super().__init__(data, initial=initial, **kwargs)
        self.fields["account"].queryset = accounts_for_user(user=user)
        kinds = strategy_kinds()
        self.fields["kind"].choices = [(k.kind, k.label) for k in kinds]
        self.kind_descriptions = {k.kind: k.description for k in kinds}

        # The parameter fields follow the kind being submitted, else the one asked for, else
        # the strategy's own, else the first of the library.
        chosen = (
            (data or {}).get("kind")
            or kind
            or initial.get("kind")
            or (kinds[0].kind if kinds else None)
        )
        self.kind = chosen
        self.specs = param_specs(chosen)
        current = strategy.params if strategy is not None and strategy.kind == chosen else {}
        for spec in self.specs:
            self.fields[PARAM_PREFIX + spec.name] = param_form_field(
                spec, current.get(spec.name, spec.default)
            )
        if not self.is_bound:
            self.initial.setdefault("kind", chosen)
        self._add_sizing_fields(data, strategy, sizing_method)

    def _add_sizing_fields(self, data, strategy: Strategy | None, asked: str | None) -> None:
        methods = describe_sizing_methods()
        self.fields["sizing_method"].choices = [(m["method"], m["label"]) for m in methods]
        self.sizing_descriptions = {m["method"]: m["description"] for m in methods}
        # A form posted without the execution section (an older client) leaves it unchanged.
        self.execution_submitted = data is None or "sizing_method" in data
        own = strategy.sizing_method if strategy is not None else DEFAULT_SIZING_METHOD
        chosen = (data or {}).get("sizing_method") or asked or own
        if chosen not in SIZING_PARAM_SPECS:
            chosen = own
        self.chosen_sizing_method = chosen
        self.sizing_param_specs = sizing_specs(chosen)
        current = strategy.sizing_params if strategy is not None and own == chosen else {}
        for spec in self.sizing_param_specs:
            field = param_form_field(spec, (current or {}).get(spec.name, spec.default))
            field.widget.attrs["data-sizing-param"] = spec.name
            self.fields[SIZING_PREFIX + spec.name] = field
        if not self.is_bound:
            self.initial["sizing_method"] = chosen
            self.initial.setdefault("entry_order_type", "market")
            self.initial.setdefault("limit_offset_bps", 0)

    @property
    def param_fields(self) -> list[forms.BoundField]:
        return [self[PARAM_PREFIX + spec.name] for spec in self.specs]

    @property
    def sizing_fields(self) -> list[forms.BoundField]:
        return [self[SIZING_PREFIX + spec.name] for spec in self.sizing_param_specs]

    @property
    def sizing_description(self) -> str:
        return self.sizing_descriptions.get(self.chosen_sizing_method or "", "")

    @property
    def execution_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("entry_order_type", "limit_offset_bps")]

    @property
    def common_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("name", "account", "kind", "symbols", "timeframe", "mode")]

    @property
    def kind_description(self) -> str:
        return self.kind_descriptions.get(self.kind or "", "")

    def params(self) -> dict[str, Any]:
        """Raw parameter values for the service: blank means "use the default"."""
        values: dict[str, Any] = {}
        for spec in self.specs:
            value = self.cleaned_data.get(PARAM_PREFIX + spec.name)
            if spec.type is bool:
                values[spec.name] = bool(value)
            elif value not in (None, ""):
                values[spec.name] = value
        return values

    def sizing_params(self) -> dict[str, Any]:
        """Raw sizing parameter values for the service: blank means "use the default"."""
        values: dict[str, Any] = {}
        for spec in self.sizing_param_specs:
            value = self.cleaned_data.get(SIZING_PREFIX + spec.name)
            if spec.type is bool:
                values[spec.name] = bool(value)
            elif value not in (None, ""):
                values[spec.name] = value
        return values

    def execution_arguments(self) -> dict[str, Any]:
        """The execution settings for the service (none when the form did not carry them)."""
        if not self.execution_submitted:
            return {}
        data = self.cleaned_data
        offset = data.get("limit_offset_bps")
        return {
            "sizing_method": data.get("sizing_method") or self.chosen_sizing_method,
            "sizing_params": self.sizing_params(),
            "entry_order_type": data.get("entry_order_type") or "market",
            "limit_offset_bps": offset if offset is not None else 0,
            "reprice_limit": bool(data.get("reprice_limit")),
        }

    def symbol_list(self) -> list[str]:
        return [part for part in re.split(r"[\s,;]+", self.cleaned_data["symbols"]) if part]

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "account": data["account"],
            "kind": data["kind"],
            "params": self.params(),
            "symbols": self.symbol_list(),
            "timeframe": data["timeframe"],
            "mode": data["mode"],
            "description": data.get("description", ""),
            **self.execution_arguments(),
        }


class ModeForm(forms.Form):
    mode = forms.ChoiceField(choices=Strategy.Mode.choices)


class KindForm(forms.Form):
    kind = forms.CharField(max_length=64)
    strategy = forms.IntegerField(required=False, min_value=1)


class SizingMethodForm(forms.Form):
    sizing_method = forms.CharField(max_length=32)
    strategy = forms.IntegerField(required=False, min_value=1)
