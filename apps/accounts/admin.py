from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from apps.accounts.models import EquitySnapshot, TradingAccount, User
from apps.accounts.services import account_halt, account_resume, equity_snapshot_take


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = (*BaseUserAdmin.fieldsets, ("Preferences", {"fields": ("time_zone",)}))
    list_display = ("username", "email", "is_staff", "is_active", "date_joined", "last_login")


@admin.register(TradingAccount)
class TradingAccountAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "owner",
        "broker",
        "status",
        "cash",
        "start_of_day_equity",
        "high_water_mark",
        "created_at",
    )
    list_filter = ("broker", "status", "currency")
    search_fields = ("name", "owner__username", "owner__email")
    list_select_related = ("owner",)
    autocomplete_fields = ("owner",)
    # Cash and equity marks move only through fills and snapshots, never by hand.
    readonly_fields = (
        "cash",
        "initial_cash",
        "start_of_day_equity",
        "start_of_day_date",
        "high_water_mark",
        "status",
        "status_reason",
        "created_at",
        "updated_at",
    )
    actions = ("halt_trading", "resume_trading", "take_equity_snapshot")

    @admin.action(description="Halt trading on the selected accounts")
    def halt_trading(self, request, queryset):
        for account in queryset:
            account_halt(
                account=account,
                reason=f"halted by {request.user.get_username()} (admin)",
                changed_by=request.user,
            )
        self.message_user(request, f"Halted {queryset.count()} account(s).", messages.WARNING)

    @admin.action(description="Resume trading on the selected accounts")
    def resume_trading(self, request, queryset):
        for account in queryset:
            account_resume(account=account, changed_by=request.user)
        self.message_user(request, f"Resumed {queryset.count()} account(s).")

    @admin.action(description="Take an equity snapshot now")
    def take_equity_snapshot(self, request, queryset):
        for account in queryset:
            equity_snapshot_take(account=account)
        self.message_user(request, f"Snapshot taken for {queryset.count()} account(s).")


@admin.register(EquitySnapshot)
class EquitySnapshotAdmin(admin.ModelAdmin):
    list_display = (
        "account",
        "kind",
        "taken_at",
        "trading_date",
        "equity",
        "cash",
        "high_water_mark",
    )
    list_filter = ("kind", "trading_date")
    search_fields = ("account__name", "account__owner__username")
    date_hierarchy = "taken_at"
    list_select_related = ("account",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
