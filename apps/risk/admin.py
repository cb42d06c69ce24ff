from django.contrib import admin, messages

from apps.core.errors import DomainError
from apps.risk.models import RiskEvent, RiskRule, TradingStateChange
from apps.risk.services import risk_event_acknowledge, risk_rule_update


@admin.register(RiskRule)
class RiskRuleAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "rule_type",
        "account",
        "strategy",
        "action",
        "warning_level",
        "enabled",
        "breach_state",
        "escalate_after_minutes",
        "updated_at",
    )
    list_filter = ("rule_type", "action", "enabled", "breach_state")
    search_fields = ("name", "account__name", "owner__username")
    list_select_related = ("account", "strategy")
    readonly_fields = ("created_at", "updated_at")
    actions = ("enable_rules", "disable_rules")

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)

        class ValidatingForm(form):
            def clean(self):
                cleaned = super().clean()
                from apps.risk.domain.rules import validate_rule_params
                from apps.strategies.domain.params import InvalidParameters

                try:
                    cleaned["params"] = validate_rule_params(
                        cleaned.get("rule_type"), cleaned.get("params") or {}
                    )
                except InvalidParameters as exc:
                    self.add_error("params", exc.message)
                return cleaned

        return ValidatingForm

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        done = 0
        for rule in queryset:
            try:
                risk_rule_update(rule=rule, changes={"enabled": enabled})
                done += 1
            except DomainError as exc:
                self.message_user(request, f"Rule {rule.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{'Enabled' if enabled else 'Disabled'} {done} rule(s).")

    @admin.action(description="Enable the selected rules")
    def enable_rules(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable the selected rules")
    def disable_rules(self, request, queryset):
        self._set_enabled(request, queryset, False)


@admin.register(RiskEvent)
class RiskEventAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "account",
        "severity",
        "code",
        "symbol",
        "value",
        "limit",
        "source",
        "escalation_level",
        "acknowledged_at",
        "acknowledged_by",
    )
    list_filter = ("severity", "source", "code", ("acknowledged_at", admin.EmptyFieldListFilter))
    search_fields = ("code", "message", "account__name", "symbol")
    list_select_related = ("account", "acknowledged_by")
    date_hierarchy = "created_at"
    actions = ("acknowledge",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Acknowledge the selected events (as their account's owner)")
    def acknowledge(self, request, queryset):
        for event in queryset.select_related("account__owner"):
            risk_event_acknowledge(event=event, user=event.account.owner)
        self.message_user(request, f"Acknowledged {queryset.count()} event(s).")


@admin.register(TradingStateChange)
class TradingStateChangeAdmin(admin.ModelAdmin):
    list_display = ("at", "account", "from_state", "to_state", "reason", "rule", "changed_by")
    list_filter = ("to_state",)
    search_fields = ("account__name", "reason")
    list_select_related = ("account", "rule", "changed_by")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
