from django.contrib import admin, messages

from apps.core.errors import DomainError
from apps.execution.models import (
    Fill,
    Order,
    OrderEvent,
    OrderSource,
    Position,
    ReconciliationFinding,
    Signal,
    Tag,
    Trade,
)
from apps.execution.reconciliation import finding_resolve
from apps.execution.services import order_cancel, orders_expire_due


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fields = ("at", "from_status", "to_status", "source", "message")
    readonly_fields = fields


class FillInline(ReadOnlyInline):
    model = Fill
    fields = ("broker_fill_id", "quantity", "price", "commission", "filled_at")
    readonly_fields = fields


class ImmutableAdmin(admin.ModelAdmin):
    """Trading records are written by the services only; admins read them and use actions."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(ImmutableAdmin):
    list_display = (
        "id",
        "created_at",
        "account",
        "instrument",
        "side",
        "order_type",
        "quantity",
        "filled_quantity",
        "average_fill_price",
        "status",
        "source",
    )
    list_filter = ("status", "side", "order_type", "time_in_force", "source", "account__broker")
    search_fields = (
        "client_order_id",
        "broker_order_id",
        "instrument__symbol",
        "account__name",
        "account__owner__username",
    )
    list_select_related = ("account", "instrument")
    date_hierarchy = "created_at"
    inlines = (FillInline, OrderEventInline)
    actions = ("cancel_orders", "expire_due_orders")

    @admin.action(description="Cancel the selected open orders")
    def cancel_orders(self, request, queryset):
        done = failed = 0
        for order in queryset.select_related("account", "instrument"):
            if not order.is_open:
                continue
            try:
                order_cancel(
                    order=order,
                    source=OrderSource.ADMIN,
                    reason=f"cancelled by {request.user.get_username()} (admin)",
                )
                done += 1
            except DomainError as exc:
                failed += 1
                self.message_user(request, f"Order {order.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Cancelled {done} order(s); {failed} failed.")

    @admin.action(description="Expire orders whose time in force has ended")
    def expire_due_orders(self, request, queryset):
        self.message_user(request, f"Expired {orders_expire_due()} order(s).")


@admin.register(OrderEvent)
class OrderEventAdmin(ImmutableAdmin):
    list_display = ("order", "at", "from_status", "to_status", "source", "message")
    list_filter = ("to_status", "source")
    search_fields = ("order__client_order_id", "message")
    date_hierarchy = "at"


@admin.register(Fill)
class FillAdmin(ImmutableAdmin):
    list_display = (
        "broker_fill_id",
        "filled_at",
        "account",
        "instrument",
        "side",
        "quantity",
        "price",
        "commission",
    )
    list_filter = ("side",)
    search_fields = ("broker_fill_id", "instrument__symbol", "order__client_order_id")
    list_select_related = ("account", "instrument")
    date_hierarchy = "filled_at"


@admin.register(Position)
class PositionAdmin(ImmutableAdmin):
    list_display = (
        "account",
        "instrument",
        "quantity",
        "average_price",
        "realized_pnl",
        "opened_at",
        "updated_at",
    )
    list_filter = ("account__broker",)
    search_fields = ("instrument__symbol", "account__name", "account__owner__username")
    list_select_related = ("account", "instrument")


@admin.register(Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "account",
        "instrument",
        "direction",
        "status",
        "entry_time",
        "exit_time",
        "entry_quantity",
        "entry_price",
        "exit_price",
        "net_pnl",
        "return_pct",
    )
    list_filter = ("status", "direction")
    search_fields = ("instrument__symbol", "account__name", "notes", "tags__name")
    list_select_related = ("account", "instrument")
    date_hierarchy = "entry_time"
    # The numbers come from fills; only the trader's notes and tags may be edited.
    readonly_fields = (
        "account",
        "instrument",
        "strategy",
        "direction",
        "status",
        "entry_time",
        "exit_time",
        "entry_quantity",
        "entry_price",
        "exit_quantity",
        "exit_price",
        "fees",
        "gross_pnl",
        "net_pnl",
        "return_pct",
        "entry_order",
        "created_at",
        "updated_at",
    )
    filter_horizontal = ("tags",)

    def has_add_permission(self, request):
        return False


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "owner")
    search_fields = ("name", "owner__username")
    list_select_related = ("owner",)


@admin.register(ReconciliationFinding)
class ReconciliationFindingAdmin(ImmutableAdmin):
    list_display = (
        "last_seen_at",
        "account",
        "severity",
        "kind",
        "message",
        "seen_count",
        "resolved_at",
    )
    list_filter = (
        "severity",
        "kind",
        ("resolved_at", admin.EmptyFieldListFilter),
        "account__broker",
    )
    search_fields = ("message", "key", "account__name", "account__owner__username")
    list_select_related = ("account",)
    date_hierarchy = "last_seen_at"
    actions = ["resolve"]

    @admin.action(description="Mark the selected findings resolved")
    def resolve(self, request, queryset):
        count = 0
        for finding in queryset.filter(resolved_at__isnull=True):
            finding_resolve(finding=finding, resolution=f"resolved by {request.user}")
            count += 1
        self.message_user(request, f"{count} finding(s) resolved.", messages.SUCCESS)


@admin.register(Signal)
class SignalAdmin(ImmutableAdmin):
    list_display = (
        "created_at",
        "strategy",
        "instrument",
        "timeframe",
        "bar_ts",
        "side",
        "target",
        "strength",
        "status",
        "reject_code",
    )
    list_filter = ("status", "side", "timeframe")
    search_fields = ("strategy__name", "instrument__symbol", "reason", "reject_reason")
    list_select_related = ("strategy", "instrument")
    date_hierarchy = "created_at"
    actions = ("execute_again",)

    @admin.action(description="Execute the selected new signals now (idempotent)")
    def execute_again(self, request, queryset):
        from apps.execution.pipeline import signal_execute

        done = 0
        for signal in queryset.filter(status=Signal.Status.NEW):
            signal_execute(signal_id=signal.pk)
            done += 1
        self.message_user(request, f"Executed {done} new signal(s); others were already handled.")
