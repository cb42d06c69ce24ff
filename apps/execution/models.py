"""Orders and their history, fills, positions and the trade journal.

Status changes of an order go through ``apps.execution.services.order_transition`` only; the
legal transitions live in ``apps.execution.domain.orders``.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

QTY = {"max_digits": 24, "decimal_places": 8}
PRICE = {"max_digits": 24, "decimal_places": 8}
MONEY = {"max_digits": 20, "decimal_places": 4}


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderType(models.TextChoices):
    MARKET = "market", "Market"
    LIMIT = "limit", "Limit"
    STOP = "stop", "Stop"
    STOP_LIMIT = "stop_limit", "Stop limit"


class TimeInForce(models.TextChoices):
    DAY = "day", "Day"
    GTC = "gtc", "Good till cancelled"
    IOC = "ioc", "Immediate or cancel"
    FOK = "fok", "Fill or kill"


class OrderStatus(models.TextChoices):
    NEW = "new", "New"
    SUBMITTED = "submitted", "Submitted"
    ACCEPTED = "accepted", "Accepted"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


OPEN_STATUSES = (
    OrderStatus.NEW,
    OrderStatus.SUBMITTED,
    OrderStatus.ACCEPTED,
    OrderStatus.PARTIALLY_FILLED,
)


class OrderSource(models.TextChoices):
    MANUAL = "manual", "Manual (page)"
    API = "api", "API"
    STRATEGY = "strategy", "Strategy"
    RISK = "risk", "Risk engine"
    SYSTEM = "system", "System"
    ADMIN = "admin", "Admin"


class Signal(models.Model):
    """What a strategy decided at a bar's close, and what became of it.

    Unique per strategy, instrument and bar: a bar delivered twice or a retried task finds the
    signal already there and does not trade again.
    """

    class Status(models.TextChoices):
        NEW = "new", "New"
        ORDERED = "ordered", "Order placed"
        REJECTED = "rejected", "Rejected"
        SKIPPED = "skipped", "Nothing to do"
        FAILED = "failed", "Failed"

    strategy = models.ForeignKey(
        "strategies.Strategy", on_delete=models.CASCADE, related_name="signals"
    )
    account = models.ForeignKey(
        "accounts.TradingAccount", on_delete=models.CASCADE, related_name="signals"
    )
    instrument = models.ForeignKey(
        "marketdata.Instrument", on_delete=models.PROTECT, related_name="signals"
    )
    timeframe = models.CharField(max_length=3)
    bar_ts = models.DateTimeField(help_text="Open time of the bar whose close decided it.")
    side = models.CharField(max_length=4, choices=Side.choices)
    target = models.SmallIntegerField(help_text="Exposure wanted: 1 long, 0 flat, -1 short.")
    strength = models.FloatField(default=0.0)
    reason = models.TextField()
    price = models.DecimalField(**PRICE, null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.NEW)
    reject_code = models.CharField(max_length=48, blank=True)
    reject_reason = models.TextField(blank=True)
    decision = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["strategy", "instrument", "bar_ts"], name="signal_once_per_bar"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.strategy_id} {self.side} {self.instrument_id} @ {self.bar_ts:%Y-%m-%d %H:%M}"


class Order(models.Model):
    account = models.ForeignKey(
        "accounts.TradingAccount", on_delete=models.PROTECT, related_name="orders"
    )
    instrument = models.ForeignKey(
        "marketdata.Instrument", on_delete=models.PROTECT, related_name="orders"
    )
    strategy = models.ForeignKey(
        "strategies.Strategy",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="orders",
    )
    signal = models.OneToOneField(
        Signal, on_delete=models.SET_NULL, null=True, blank=True, related_name="order"
    )
    client_order_id = models.CharField(max_length=64)
    broker_order_id = models.CharField(max_length=64, blank=True, db_index=True)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=16, choices=OrderType.choices)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices)
    quantity = models.DecimalField(**QTY)
    limit_price = models.DecimalField(**PRICE, null=True, blank=True)
    stop_price = models.DecimalField(**PRICE, null=True, blank=True)
    # A stop or stop-limit order becomes live once the market trades through its stop.
    stop_triggered = models.BooleanField(default=False)
    status = models.CharField(
        max_length=16, choices=OrderStatus.choices, default=OrderStatus.NEW, db_index=True
    )
    filled_quantity = models.DecimalField(**QTY, default=Decimal("0"))
    average_fill_price = models.DecimalField(**PRICE, null=True, blank=True)
    commission = models.DecimalField(**MONEY, default=Decimal("0"))
    source = models.CharField(max_length=16, choices=OrderSource.choices)
    # Risk: the pre-trade decision (every check with value and limit), an order that may only
    # shrink a position, the protective levels attached to an entry, and for the exits the
    # risk engine places, which protection fired.
    risk_decision = models.JSONField(null=True, blank=True)
    reduce_only = models.BooleanField(default=False)
    stop_loss_price = models.DecimalField(**PRICE, null=True, blank=True)
    take_profit_price = models.DecimalField(**PRICE, null=True, blank=True)
    protective_kind = models.CharField(
        max_length=12,
        blank=True,
        choices=[("stop_loss", "Stop loss"), ("take_profit", "Take profit")],
    )
    reject_reason = models.TextField(blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    filled_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "client_order_id"], name="order_unique_client_order_id"
            ),
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="order_qty_positive"),
            models.CheckConstraint(
                condition=models.Q(filled_quantity__gte=0)
                & models.Q(filled_quantity__lte=models.F("quantity")),
                name="order_filled_within_qty",
            ),
            models.CheckConstraint(
                condition=~models.Q(order_type__in=["limit", "stop_limit"])
                | models.Q(limit_price__gt=0),
                name="order_limit_price_required",
            ),
            models.CheckConstraint(
                condition=~models.Q(order_type__in=["stop", "stop_limit"])
                | models.Q(stop_price__gt=0),
                name="order_stop_price_required",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "status"], name="order_account_status"),
            models.Index(fields=["instrument", "status"], name="order_instrument_status"),
            # The rate-limit count of every pre-trade check: submissions of the last minute.
            models.Index(fields=["account", "created_at"], name="order_account_created"),
        ]

    def __str__(self) -> str:
        quantity = self.quantity.normalize()
        symbol = self.instrument.symbol
        return f"#{self.pk} {self.side} {quantity} {symbol} {self.order_type} [{self.status}]"

    @property
    def remaining_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class OrderEvent(models.Model):
    """One status change (or notable event) of an order, with when and who caused it."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    from_status = models.CharField(max_length=16, choices=OrderStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=OrderStatus.choices)
    source = models.CharField(max_length=16, choices=OrderSource.choices)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["order_id", "id"]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_status or '-'} -> {self.to_status}"


class Fill(models.Model):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    account = models.ForeignKey(
        "accounts.TradingAccount", on_delete=models.PROTECT, related_name="fills"
    )
    instrument = models.ForeignKey(
        "marketdata.Instrument", on_delete=models.PROTECT, related_name="fills"
    )
    broker_fill_id = models.CharField(max_length=64)
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = models.DecimalField(**QTY)
    price = models.DecimalField(**PRICE)
    commission = models.DecimalField(**MONEY, default=Decimal("0"))
    filled_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["filled_at", "id"]
        constraints = [
            # Applying the same broker fill twice is impossible, whatever retries happen.
            models.UniqueConstraint(
                fields=["account", "broker_fill_id"], name="fill_unique_broker_fill_id"
            ),
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="fill_qty_positive"),
            models.CheckConstraint(condition=models.Q(price__gt=0), name="fill_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} @ {self.price}"


class Position(models.Model):
    """Net holding of one instrument in one account; quantity is signed (short < 0)."""

    account = models.ForeignKey(
        "accounts.TradingAccount", on_delete=models.CASCADE, related_name="positions"
    )
    instrument = models.ForeignKey(
        "marketdata.Instrument", on_delete=models.PROTECT, related_name="positions"
    )
    quantity = models.DecimalField(**QTY, default=Decimal("0"))
    average_price = models.DecimalField(**PRICE, default=Decimal("0"))
    realized_pnl = models.DecimalField(**MONEY, default=Decimal("0"))
    commission_paid = models.DecimalField(**MONEY, default=Decimal("0"))
    # Live protective levels, from the entry orders; monitoring closes the position when the
    # last price crosses one.
    stop_loss_price = models.DecimalField(**PRICE, null=True, blank=True)
    take_profit_price = models.DecimalField(**PRICE, null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "instrument__symbol"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "instrument"], name="position_unique_account_instrument"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id}: {self.quantity} @ {self.average_price}"

    @property
    def is_open(self) -> bool:
        return self.quantity != 0

    @property
    def direction(self) -> str:
        if self.quantity > 0:
            return "long"
        return "short" if self.quantity < 0 else "flat"


class Tag(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trade_tags"
    )
    name = models.CharField(max_length=50)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="tag_unique_name_per_owner"),
        ]

    def __str__(self) -> str:
        return self.name


class Trade(models.Model):
    """One round trip: from flat to a position and back to flat, for the journal."""

    class Direction(models.TextChoices):
        LONG = "long", "Long"
        SHORT = "short", "Short"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    account = models.ForeignKey(
        "accounts.TradingAccount", on_delete=models.CASCADE, related_name="trades"
    )
    instrument = models.ForeignKey(
        "marketdata.Instrument", on_delete=models.PROTECT, related_name="trades"
    )
    strategy = models.ForeignKey(
        "strategies.Strategy",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="trades",
    )
    direction = models.CharField(max_length=5, choices=Direction.choices)
    status = models.CharField(max_length=6, choices=Status.choices, default=Status.OPEN)
    entry_time = models.DateTimeField()
    exit_time = models.DateTimeField(null=True, blank=True)
    # Total quantity opened (absolute) and its average price; likewise for the exits.
    entry_quantity = models.DecimalField(**QTY)
    entry_price = models.DecimalField(**PRICE)
    exit_quantity = models.DecimalField(**QTY, default=Decimal("0"))
    exit_price = models.DecimalField(**PRICE, null=True, blank=True)
    fees = models.DecimalField(**MONEY, default=Decimal("0"))
    gross_pnl = models.DecimalField(**MONEY, default=Decimal("0"))
    net_pnl = models.DecimalField(**MONEY, default=Decimal("0"))
    return_pct = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    entry_order = models.ForeignKey(
        Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Why it was entered and left (the strategy's signal reason, a stop, a manual order).
    entry_reason = models.TextField(blank=True)
    exit_reason = models.TextField(blank=True)
    # The stop in force at entry: the R multiple is net PnL over the risk it defined.
    initial_stop_price = models.DecimalField(**PRICE, null=True, blank=True)
    r_multiple = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    # Best and worst prices seen while the trade was open (from fills and every bar), and the
    # excursions in money they mean for the trade's size: MAE <= 0 <= MFE.
    best_price = models.DecimalField(**PRICE, null=True, blank=True)
    worst_price = models.DecimalField(**PRICE, null=True, blank=True)
    mae = models.DecimalField(**MONEY, null=True, blank=True)
    mfe = models.DecimalField(**MONEY, null=True, blank=True)
    notes = models.TextField(blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="trades")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-entry_time", "-id"]
        indexes = [
            models.Index(fields=["account", "status"], name="trade_account_status"),
            models.Index(fields=["account", "exit_time"], name="trade_account_exit"),
        ]
        constraints = [
            # At most one open round trip per account and instrument.
            models.UniqueConstraint(
                fields=["account", "instrument"],
                condition=models.Q(status="open"),
                name="trade_one_open_per_instrument",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.instrument_id} {self.entry_time:%Y-%m-%d} [{self.status}]"

    @property
    def holding_time(self):
        return (self.exit_time - self.entry_time) if self.exit_time else None


class ReconciliationFinding(models.Model):
    """Something reconciliation found wrong and could not safely repair: the platform's books
    and the broker's disagree (Alpaca), or the books disagree with themselves (paper).

    One open finding per account and ``key``: a run that sees it again counts it, a run that no
    longer sees it resolves it. Written by ``apps.execution.reconciliation`` only."""

    class Severity(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"

    class Kind(models.TextChoices):
        POSITION_MISMATCH = "position_mismatch", "Position differs from the broker's"
        ORDER_MISMATCH = "order_mismatch", "Order differs from the broker's"
        ORDER_MISSING = "order_missing", "Order unknown to the broker"
        UNKNOWN_BROKER_ORDER = "unknown_broker_order", "Broker order unknown to the platform"
        FILLS_MISMATCH = "fills_mismatch", "Filled quantity differs from the fills"
        CASH_MISMATCH = "cash_mismatch", "Cash differs from the fills"
        BROKER_UNAVAILABLE = "broker_unavailable", "Broker could not be asked"

    account = models.ForeignKey(
        "accounts.TradingAccount", on_delete=models.CASCADE, related_name="reconciliation_findings"
    )
    order = models.ForeignKey(
        Order,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reconciliation_findings",
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    key = models.CharField(max_length=200, help_text="What was found, to recognise it again.")
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    seen_count = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        indexes = [
            models.Index(fields=["account", "resolved_at"], name="finding_account_resolved"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "key"],
                condition=models.Q(resolved_at__isnull=True),
                name="finding_one_open_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.severity} {self.kind}: {self.key}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
