"""Forms of the trading pages: the manual order ticket, listing filters, journal notes."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django import forms

from apps.accounts.models import TradingAccount, User
from apps.accounts.selectors import accounts_for_user
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Order, OrderStatus, OrderType, Side, Signal, TimeInForce, Trade
from apps.execution.selectors import OPEN
from apps.strategies.models import Strategy

PRICE_FIELDS = {
    "limit_price": (OrderType.LIMIT, OrderType.STOP_LIMIT),
    "stop_price": (OrderType.STOP, OrderType.STOP_LIMIT),
}


class AccountChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: TradingAccount) -> str:
        return obj.name


class StrategyChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Strategy) -> str:
        return obj.name


def strategies_choice(user: User):
    return Strategy.objects.filter(owner=user).order_by("name", "id")


class OrderForm(forms.Form):
    """The manual order ticket. Shapes input only; the order service decides what is valid."""

    account = AccountChoiceField(queryset=TradingAccount.objects.none(), empty_label=None)
    symbol = forms.CharField(
        max_length=32,
        widget=forms.TextInput(
            attrs={
                "list": "symbol-options",
                "autocomplete": "off",
                "placeholder": "AAPL",
                "spellcheck": "false",
            }
        ),
    )
    side = forms.ChoiceField(choices=Side.choices, initial=Side.BUY, widget=forms.RadioSelect)
    quantity = forms.DecimalField(
        max_digits=24, decimal_places=8, widget=forms.NumberInput(attrs={"step": "any", "min": "0"})
    )
    order_type = forms.ChoiceField(
        label="Type", choices=OrderType.choices, initial=OrderType.MARKET
    )
    time_in_force = forms.ChoiceField(
        label="Time in force", choices=TimeInForce.choices, initial=TimeInForce.DAY
    )
    limit_price = forms.DecimalField(
        required=False,
        max_digits=24,
        decimal_places=8,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
    )
    stop_price = forms.DecimalField(
        required=False,
        max_digits=24,
        decimal_places=8,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
    )
    client_order_id = forms.CharField(
        label="Client order id",
        required=False,
        max_length=64,
        help_text=(
            "Optional. Reusing one on the same account is refused, "
            "so a retry never doubles an order."
        ),
    )

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts_for_user(user=user)

    def clean_symbol(self) -> str:
        return self.cleaned_data["symbol"].strip().upper()

    def clean(self) -> dict:
        cleaned = super().clean()
        # A price the chosen type does not use may still sit in its hidden input: drop it.
        order_type = cleaned.get("order_type")
        for name, types in PRICE_FIELDS.items():
            if order_type and order_type not in types:
                cleaned[name] = None
        return cleaned

    def intent(self) -> OrderIntent:
        data = self.cleaned_data
        return OrderIntent(
            symbol=data["symbol"],
            side=data["side"],
            quantity=data["quantity"],
            order_type=data["order_type"],
            time_in_force=data["time_in_force"],
            limit_price=data.get("limit_price"),
            stop_price=data.get("stop_price"),
            client_order_id=data.get("client_order_id") or None,
        )


EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)
ORDER_STATUS_FILTER = [("", "Any status"), (OPEN, "Open"), *OrderStatus.choices]


class OrderFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=ORDER_STATUS_FILTER)
    symbol = forms.CharField(
        required=False, max_length=32, widget=forms.TextInput(attrs={"placeholder": "Any"})
    )
    account = AccountChoiceField(
        required=False, queryset=TradingAccount.objects.none(), empty_label="All accounts"
    )

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts_for_user(user=user)

    def filters(self) -> dict:
        """The valid filters only: a bad value is reported on the form and ignored."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        account = data.get("account")
        return {
            "status": data.get("status") or None,
            "symbol": data.get("symbol") or None,
            "account_id": account.pk if account else None,
        }


class AccountFilterForm(forms.Form):
    account = AccountChoiceField(
        required=False, queryset=TradingAccount.objects.none(), empty_label="All accounts"
    )

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts_for_user(user=user)


class DateRangeMixin:
    """``date_from`` / ``date_to`` as whole days in the trader's zone, checked for sense."""

    def clean_date_range(self, cleaned: dict) -> None:
        for name in ("date_from", "date_to"):
            day = cleaned.get(name)
            if day and not (EARLIEST <= day <= LATEST):
                self.add_error(name, f"Pick a date between {EARLIEST:%Y} and {LATEST:%Y}.")
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", "The end date is before the start date.")

    @staticmethod
    def day_bounds(data: dict, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
        start, end = data.get("date_from"), data.get("date_to")
        return (
            datetime.combine(start, time(0), zone) if start else None,
            datetime.combine(end + timedelta(days=1), time(0), zone) if end else None,
        )


def _date_field(label: str) -> forms.DateField:
    return forms.DateField(
        label=label, required=False, widget=forms.DateInput(attrs={"type": "date"})
    )


class JournalFilterForm(DateRangeMixin, forms.Form):
    account = AccountChoiceField(
        required=False, queryset=TradingAccount.objects.none(), empty_label="All accounts"
    )
    strategy = StrategyChoiceField(
        required=False, queryset=Strategy.objects.none(), empty_label="Any strategy"
    )
    symbol = forms.CharField(
        required=False, max_length=32, widget=forms.TextInput(attrs={"placeholder": "Any"})
    )
    direction = forms.ChoiceField(required=False, choices=[("", "Any"), *Trade.Direction.choices])
    status = forms.ChoiceField(required=False, choices=[("", "Any"), *Trade.Status.choices])
    tag = forms.CharField(
        required=False, max_length=50, widget=forms.TextInput(attrs={"placeholder": "Any"})
    )
    date_from = _date_field("From")
    date_to = _date_field("To")

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["account"].queryset = accounts_for_user(user=user)
        self.fields["strategy"].queryset = strategies_choice(user)

    def clean(self) -> dict:
        cleaned = super().clean()
        self.clean_date_range(cleaned)
        return cleaned

    def filters(self, zone: ZoneInfo) -> dict:
        """Valid filters as selector arguments; dates are whole days in the trader's zone."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        account, strategy = data.get("account"), data.get("strategy")
        entered_from, entered_before = self.day_bounds(data, zone)
        return {
            "account_id": account.pk if account else None,
            "strategy_id": strategy.pk if strategy else None,
            "symbol": data.get("symbol") or None,
            "direction": data.get("direction") or None,
            "status": data.get("status") or None,
            "tag": data.get("tag") or None,
            "entered_from": entered_from,
            "entered_before": entered_before,
        }


class SignalFilterForm(DateRangeMixin, forms.Form):
    strategy = StrategyChoiceField(
        required=False, queryset=Strategy.objects.none(), empty_label="All strategies"
    )
    symbol = forms.CharField(
        required=False, max_length=32, widget=forms.TextInput(attrs={"placeholder": "Any"})
    )
    status = forms.ChoiceField(required=False, choices=[("", "Any"), *Signal.Status.choices])
    date_from = _date_field("Bars from")
    date_to = _date_field("To")

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["strategy"].queryset = strategies_choice(user)

    def clean(self) -> dict:
        cleaned = super().clean()
        self.clean_date_range(cleaned)
        return cleaned

    def filters(self, zone: ZoneInfo) -> dict:
        """Valid filters as selector arguments; a bad value is reported and ignored."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        strategy = data.get("strategy")
        bar_from, bar_before = self.day_bounds(data, zone)
        return {
            "strategy_id": strategy.pk if strategy else None,
            "symbol": data.get("symbol") or None,
            "status": data.get("status") or None,
            "bar_from": bar_from,
            "bar_before": bar_before,
        }


class TradeNotesForm(forms.Form):
    notes = forms.CharField(
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "Why did you take it? What happened?"}
        ),
    )
    tags = forms.CharField(
        required=False,
        max_length=500,
        help_text="Comma separated, e.g. breakout, earnings",
        widget=forms.TextInput(attrs={"placeholder": "breakout, earnings"}),
    )

    def tag_list(self) -> list[str]:
        return [part.strip() for part in self.cleaned_data["tags"].split(",") if part.strip()]


def _price_input(**attrs) -> forms.NumberInput:
    return forms.NumberInput(attrs={"step": "any", "min": "0", **attrs})


class OrderReplaceForm(forms.Form):
    """Modify an open order: its working prices and a lower quantity. Fields the order type
    does not use are left out; values equal to the order's mean "unchanged"."""

    quantity = forms.DecimalField(
        required=False, max_digits=24, decimal_places=8, widget=_price_input()
    )
    limit_price = forms.DecimalField(
        label="Limit", required=False, max_digits=24, decimal_places=8, widget=_price_input()
    )
    stop_price = forms.DecimalField(
        label="Stop", required=False, max_digits=24, decimal_places=8, widget=_price_input()
    )

    def __init__(self, *args, order: Order, **kwargs) -> None:
        kwargs.setdefault(
            "initial",
            {
                "quantity": _plain(order.quantity),
                "limit_price": _plain(order.limit_price),
                "stop_price": _plain(order.stop_price),
            },
        )
        super().__init__(*args, **kwargs)
        self.order = order
        for name, types in PRICE_FIELDS.items():
            if order.order_type not in types:
                del self.fields[name]
        self.fields["quantity"].help_text = f"At most {_plain(order.quantity)}" + (
            f", more than the {_plain(order.filled_quantity)} filled."
            if order.filled_quantity
            else "."
        )

    def changes(self) -> dict[str, Decimal]:
        """The service arguments: only what differs from the order."""
        changed = {}
        for name in ("quantity", "limit_price", "stop_price"):
            value = self.cleaned_data.get(name)
            if name in self.fields and value is not None and value != getattr(self.order, name):
                changed[name] = value
        return changed

    def clean(self) -> dict:
        cleaned = super().clean()
        if not self.errors and not self.changes():
            raise forms.ValidationError("Change the quantity or a price first.", code="unchanged")
        return cleaned


def _plain(value: Decimal | None) -> str:
    """``10.00000000`` -> ``10`` for an input's initial value."""
    return "" if value is None else format(value.normalize(), "f")


MODIFIABLE_TYPES = (OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT)


def order_modifiable(order: Order) -> bool:
    """Open working orders with a price can be modified (a market order fills or is gone)."""
    return order.is_open and order.order_type in MODIFIABLE_TYPES
