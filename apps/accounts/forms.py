from __future__ import annotations

from decimal import Decimal

from django import forms


class TradingAccountCreateForm(forms.Form):
    """Open another paper account; the service decides what is acceptable."""

    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "Swing paper"})
    )
    cash = forms.DecimalField(
        label="Starting cash",
        max_digits=20,
        decimal_places=2,
        initial=Decimal("100000"),
        min_value=Decimal("0"),
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0"}),
    )
