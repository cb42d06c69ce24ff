"""Users and the trading accounts they trade through."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import MinValueValidator
from django.db import models

MONEY = {"max_digits": 20, "decimal_places": 4}


class User(AbstractUser):
    """The platform's user, custom from the first migration so it can grow without pain."""

    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        help_text="IANA time zone used to show times and to place quiet hours and summaries.",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"


class TradingAccount(models.Model):
    class Broker(models.TextChoices):
        PAPER = "paper", "Paper (built in)"
        ALPACA = "alpaca", "Alpaca"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        # Only orders that shrink exposure pass (set by a risk rule or a person).
        REDUCING = "reducing", "Reducing only"
        HALTED = "halted", "Halted"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trading_accounts"
    )
    name = models.CharField(max_length=100)
    broker = models.CharField(max_length=16, choices=Broker.choices, default=Broker.PAPER)
    currency = models.CharField(max_length=3, default="USD")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(max_length=255, blank=True)

    cash = models.DecimalField(**MONEY, default=Decimal("0"))
    initial_cash = models.DecimalField(**MONEY, default=Decimal("0"))

    # Paper broker simulation settings (ignored by real brokers).
    slippage_bps = models.DecimalField(
        max_digits=8, decimal_places=3, default=Decimal("5"), validators=[MinValueValidator(0)]
    )
    commission_rate = models.DecimalField(
        max_digits=10,
        decimal_places=8,
        default=Decimal("0.0005"),
        validators=[MinValueValidator(0)],
        help_text="Commission as a fraction of notional (0.0005 = 5 basis points).",
    )
    commission_minimum = models.DecimalField(**MONEY, default=Decimal("0"))
    max_volume_participation = models.DecimalField(
        max_digits=6,
        decimal_places=4,
        default=Decimal("0.1"),
        validators=[MinValueValidator(Decimal("0.0001"))],
        help_text="Largest share of one bar's volume a paper order may fill against.",
    )

    # Kept current by equity snapshots; read by the risk rules.
    start_of_day_equity = models.DecimalField(**MONEY, null=True, blank=True)
    start_of_day_date = models.DateField(null=True, blank=True)
    high_water_mark = models.DecimalField(**MONEY, null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="account_unique_name_per_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_broker_display()})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class EquitySnapshot(models.Model):
    """A point of the account's equity curve.

    ``start_of_day`` rows anchor the daily-loss rule, the running maximum of equity is the
    high-water mark for the drawdown rule, and ``intraday`` rows draw the equity curve.
    """

    class Kind(models.TextChoices):
        START_OF_DAY = "start_of_day", "Start of day"
        INTRADAY = "intraday", "Intraday"

    account = models.ForeignKey(TradingAccount, on_delete=models.CASCADE, related_name="snapshots")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    taken_at = models.DateTimeField()
    trading_date = models.DateField()
    cash = models.DecimalField(**MONEY)
    positions_value = models.DecimalField(**MONEY)
    equity = models.DecimalField(**MONEY)
    high_water_mark = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["account_id", "taken_at"]
        indexes = [models.Index(fields=["account", "taken_at"], name="snapshot_account_time")]
        constraints = [
            # One start-of-day row per account and day, whatever races happen.
            models.UniqueConstraint(
                fields=["account", "trading_date"],
                condition=models.Q(kind="start_of_day"),
                name="snapshot_one_start_of_day",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.kind} {self.taken_at:%Y-%m-%d %H:%M} {self.equity}"
