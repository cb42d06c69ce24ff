from __future__ import annotations

from django import forms

PARTIALS = ("summary", "positions", "orders")


class DashboardQueryForm(forms.Form):
    """``?account=ID`` picks one of the user's accounts; ``?partial=`` asks for one fragment."""

    account = forms.IntegerField(required=False, min_value=1)
    partial = forms.ChoiceField(required=False, choices=[(p, p) for p in PARTIALS])
