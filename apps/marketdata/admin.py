from django.contrib import admin

from apps.marketdata.models import Bar, Instrument


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = (
        "symbol",
        "name",
        "asset_class",
        "exchange",
        "sector",
        "lot_size",
        "tick_size",
        "last_price",
        "last_price_at",
        "tradable",
    )
    list_filter = ("asset_class", "exchange", "sector", "tradable")
    search_fields = ("symbol", "name")
    readonly_fields = ("last_price", "last_price_at", "created_at")
    actions = ("mark_tradable", "mark_untradable")

    @admin.action(description="Allow trading in the selected instruments")
    def mark_tradable(self, request, queryset):
        self.message_user(request, f"{queryset.update(tradable=True)} instrument(s) now tradable.")

    @admin.action(description="Stop trading in the selected instruments")
    def mark_untradable(self, request, queryset):
        self.message_user(
            request, f"{queryset.update(tradable=False)} instrument(s) no longer tradable."
        )


@admin.register(Bar)
class BarAdmin(admin.ModelAdmin):
    list_display = ("instrument", "timeframe", "ts", "open", "high", "low", "close", "volume")
    list_filter = ("timeframe",)
    search_fields = ("instrument__symbol",)
    list_select_related = ("instrument",)
    # The bar table is large: no full count, no date drill-down over millions of rows.
    show_full_result_count = False
    raw_id_fields = ("instrument",)
    ordering = ("-ts",)

    def has_change_permission(self, request, obj=None):
        # Market data is imported, not edited by hand.
        return False
