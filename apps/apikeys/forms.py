"""Forms of the API key pages. Secret inputs are write-only: a form shown again (with errors)
never renders what was typed into them. The services decide what is acceptable."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django import forms

from apps.apikeys.crypto import Secret
from apps.apikeys.models import ApiKey
from apps.apikeys.selectors import alpaca_accounts_for_user


class SecretInput(forms.PasswordInput):
    def __init__(self, attrs: dict | None = None) -> None:
        base = {"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}
        super().__init__(attrs={**base, **(attrs or {})}, render_value=False)


class SecretFormField(forms.CharField):
    """Cleans to a ``Secret``; errors never repeat the value."""

    widget = SecretInput

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 256)
        super().__init__(**kwargs)

    def clean(self, value) -> Secret:
        return Secret(super().clean(value))


def _expiry(day) -> datetime | None:
    """A key "expires on" a date: from the end of that day (UTC)."""
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


class _AccountAndExpiry(forms.Form):
    account = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label="No account yet",
        help_text="The Alpaca trading account that trades with this key.",
    )
    expires_on = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional: the key stops being used after this day.",
    )

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = alpaca_accounts_for_user(user=user)

    @property
    def expires_at(self) -> datetime | None:
        return _expiry(self.cleaned_data.get("expires_on"))


class ApiKeyCreateForm(_AccountAndExpiry):
    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "Main paper key"})
    )
    environment = forms.ChoiceField(
        choices=ApiKey.Environment.choices, initial=ApiKey.Environment.PAPER
    )
    key_id = SecretFormField(label="API key id")
    secret_key = SecretFormField(label="Secret key")
    verify = forms.BooleanField(
        required=False, initial=True, label="Verify with Alpaca before saving"
    )

    field_order = ["name", "environment", "key_id", "secret_key", "account", "expires_on", "verify"]


class ApiKeyUpdateForm(_AccountAndExpiry):
    name = forms.CharField(max_length=100)
    environment = forms.ChoiceField(choices=ApiKey.Environment.choices)

    field_order = ["name", "environment", "account", "expires_on"]

    @classmethod
    def for_key(cls, key: ApiKey, *, user, data=None) -> ApiKeyUpdateForm:
        initial = {
            "name": key.name,
            "environment": key.environment,
            "account": key.account_id,
            "expires_on": (key.expires_at - timedelta(days=1)).date() if key.expires_at else None,
        }
        return cls(data, user=user, initial=initial)


class ApiKeyRotateForm(forms.Form):
    key_id = SecretFormField(label="New API key id")
    secret_key = SecretFormField(label="New secret key")
    verify = forms.BooleanField(
        required=False, initial=True, label="Verify the new key with Alpaca first"
    )
