from __future__ import annotations

from django import forms

from apps.marketdata.models import Timeframe

TRADABLE_CHOICES = [("", "Any"), ("yes", "Tradable"), ("no", "Not tradable")]


class InstrumentFilterForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Symbol or name"}),
    )
    sector = forms.ChoiceField(required=False)
    tradable = forms.ChoiceField(required=False, choices=TRADABLE_CHOICES)

    def __init__(self, *args, sectors: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["sector"].choices = [("", "All sectors"), *((s, s) for s in sectors)]

    def filters(self) -> dict:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        tradable = {"yes": True, "no": False}.get(data.get("tradable") or "")
        return {
            "query": data.get("q") or None,
            "sector": data.get("sector") or None,
            "tradable": tradable,
        }


class ChartForm(forms.Form):
    """Which bars the price chart shows; bad values fall back to the defaults."""

    DEFAULT_TIMEFRAME = Timeframe.D1
    DEFAULT_BARS = 200

    tf = forms.ChoiceField(label="Timeframe", required=False, choices=Timeframe.choices)
    bars = forms.IntegerField(label="Bars", required=False, min_value=10, max_value=2000)

    def chart(self) -> tuple[str, int]:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return data.get("tf") or self.DEFAULT_TIMEFRAME, data.get("bars") or self.DEFAULT_BARS
