"""A trader's configured strategy: which library kind, with which parameters, on what."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.marketdata.models import Timeframe


class Strategy(models.Model):
    class Mode(models.TextChoices):
        OFF = "off", "Off"
        PAPER = "paper", "Paper"
        LIVE = "live", "Live"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="strategies"
    )
    account = models.ForeignKey(
        "accounts.TradingAccount", on_delete=models.PROTECT, related_name="strategies"
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    # Validated against the library's parameter specs by the services, never here.
    kind = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    instruments = models.ManyToManyField(
        "marketdata.Instrument", related_name="strategies", blank=False
    )
    timeframe = models.CharField(max_length=3, choices=Timeframe.choices, default=Timeframe.D1)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.OFF)
    # How a signal becomes an order: the size (apps.risk.domain.sizing methods and their
    # parameters, validated by the services) and the entry order type. A limit entry sits
    # ``limit_offset_bps`` inside the last price and, with ``reprice_limit``, follows the market
    # on each new bar while it has not filled.
    sizing_method = models.CharField(max_length=16, default="pct_equity")
    sizing_params = models.JSONField(default=dict, blank=True)
    entry_order_type = models.CharField(
        max_length=8, choices=[("market", "Market"), ("limit", "Limit")], default="market"
    )
    limit_offset_bps = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    reprice_limit = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner_id", "name"]
        verbose_name_plural = "strategies"
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name"], name="strategy_unique_name_per_owner"
            ),
        ]
        indexes = [models.Index(fields=["mode", "timeframe"], name="strategy_mode_tf")]

    def __str__(self) -> str:
        return self.name

    @property
    def symbols(self) -> list[str]:
        return [instrument.symbol for instrument in self.instruments.all()]
