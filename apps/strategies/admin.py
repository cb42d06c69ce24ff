from django import forms
from django.contrib import admin

from apps.core.errors import ValidationFailed
from apps.strategies.models import Strategy
from apps.strategies.services import strategy_params_validate


class StrategyAdminForm(forms.ModelForm):
    """Admins edit parameters as JSON; they are checked by the same library specs as the API."""

    class Meta:
        model = Strategy
        fields = (
            "owner",
            "account",
            "name",
            "description",
            "kind",
            "params",
            "instruments",
            "timeframe",
            "mode",
        )

    def clean(self):
        cleaned = super().clean()
        kind, params = cleaned.get("kind"), cleaned.get("params")
        if kind:
            try:
                cleaned["params"] = strategy_params_validate(kind=kind, params=params or {})
            except ValidationFailed as exc:
                target = "kind" if "kind" in exc.fields else "params"
                self.add_error(target, exc.message)
        account, owner = cleaned.get("account"), cleaned.get("owner")
        if account and owner and account.owner_id != owner.pk:
            self.add_error("account", "The account must belong to the strategy's owner.")
        return cleaned


@admin.register(Strategy)
class StrategyAdmin(admin.ModelAdmin):
    form = StrategyAdminForm
    list_display = (
        "name",
        "owner",
        "account",
        "kind",
        "timeframe",
        "mode",
        "symbol_list",
        "updated_at",
    )
    list_filter = ("mode", "kind", "timeframe")
    search_fields = ("name", "owner__username", "instruments__symbol")
    list_select_related = ("owner", "account")
    filter_horizontal = ("instruments",)
    readonly_fields = ("created_at", "updated_at")
    actions = ("switch_off",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("instruments")

    @admin.display(description="Symbols")
    def symbol_list(self, obj: Strategy) -> str:
        return ", ".join(obj.symbols)

    @admin.action(description="Switch the selected strategies off")
    def switch_off(self, request, queryset):
        self.message_user(
            request, f"{queryset.update(mode=Strategy.Mode.OFF)} strategy(ies) switched off."
        )
