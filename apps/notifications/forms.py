"""Forms of the notification pages: the centre's filters, settings, the channel matrix."""

from __future__ import annotations

from django import forms

from apps.notifications.domain import catalog
from apps.notifications.models import Channel, NotificationSettings, NotificationType, Severity

READ_CHOICES = [("", "All"), ("unread", "Unread"), ("read", "Read")]


class NotificationFilterForm(forms.Form):
    status = forms.ChoiceField(label="Show", choices=READ_CHOICES, required=False)
    type = forms.ChoiceField(choices=[("", "Any type"), *NotificationType.choices], required=False)
    severity = forms.ChoiceField(choices=[("", "Any severity"), *Severity.choices], required=False)
    q = forms.CharField(
        label="Search",
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "Title or text", "type": "search"}),
    )

    def filters(self) -> dict:
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        read = {"unread": False, "read": True}.get(data.get("status") or "")
        return {
            "type": data.get("type") or None,
            "severity": data.get("severity") or None,
            "read": read,
            "q": (data.get("q") or "").strip() or None,
        }


class TimeInput(forms.TimeInput):
    input_type = "time"

    def __init__(self, **kwargs) -> None:
        super().__init__(format="%H:%M", **kwargs)


class NotificationSettingsForm(forms.ModelForm):
    webhook_url = forms.URLField(
        label="Webhook URL",
        max_length=1000,
        required=False,
        assume_scheme="https",
        help_text="We POST each notification there as JSON, signed with HMAC-SHA256.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/hooks/trading"}),
    )

    class Meta:
        model = NotificationSettings
        fields = [
            "email",
            "webhook_url",
            "webhook_format",
            "quiet_hours_enabled",
            "quiet_start",
            "quiet_end",
            "daily_summary_enabled",
            "daily_summary_time",
        ]
        labels = {
            "email": "E-mail address",
            "webhook_format": "Webhook body",
            "quiet_hours_enabled": "Quiet hours",
            "quiet_start": "From",
            "quiet_end": "Until",
            "daily_summary_enabled": "Daily summary",
            "daily_summary_time": "At",
        }
        help_texts = {
            "webhook_format": "Slack and Discord incoming webhooks need their own body shape.",
            "quiet_hours_enabled": "Hold e-mail, push and webhooks back; critical ones still go.",
        }
        widgets = {
            "quiet_start": TimeInput(),
            "quiet_end": TimeInput(),
            "daily_summary_time": TimeInput(),
            "email": forms.EmailInput(attrs={"placeholder": "your account's address"}),
        }


def matrix_field_name(kind: str, channel: str) -> str:
    return f"pref__{kind}__{channel}"


def enabled_pairs(data) -> set[tuple[str, str]]:
    """The (type, channel) pairs ticked in the matrix form; unknown names are ignored."""
    pairs = set()
    for kind in catalog.routable_kinds():
        for channel in Channel.values:
            if data.get(matrix_field_name(kind.value, channel)) in ("on", "true", "1"):
                pairs.add((kind.value, channel))
    return pairs


class TestChannelForm(forms.Form):
    channel = forms.ChoiceField(choices=Channel.choices)
