"""Query filters of the market data API."""

from __future__ import annotations

from django import forms
from django_filters import rest_framework as filters

from apps.marketdata.models import Instrument


class StrictBooleanField(forms.Field):
    """true/false (or 1/0, yes/no); anything else is an error instead of being ignored."""

    widget = forms.TextInput
    default_error_messages = {"invalid": "Must be true or false."}

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


class StrictBooleanFilter(filters.BooleanFilter):
    field_class = StrictBooleanField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", forms.TextInput)
        super().__init__(*args, **kwargs)


class InstrumentFilter(filters.FilterSet):
    asset_class = filters.ChoiceFilter(choices=Instrument.AssetClass.choices)
    sector = filters.CharFilter(lookup_expr="iexact", max_length=64)
    exchange = filters.CharFilter(lookup_expr="iexact", max_length=32)
    tradable = StrictBooleanFilter()

    class Meta:
        model = Instrument
        fields = ["asset_class", "sector", "exchange", "tradable"]
