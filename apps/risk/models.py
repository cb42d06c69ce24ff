"""Risk rules a trader sets, the events the engine raises, and the account's trading state
history. The rules' parameters are validated by ``apps.risk.domain.rules`` through the
services; nothing here decides anything."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.risk.domain.types import Action, RuleType


class RiskRule(models.Model):
    class Type(models.TextChoices):
        MAX_POSITION_SIZE = RuleType.MAX_POSITION_SIZE.value, "Max position size"
        DAILY_LOSS = RuleType.DAILY_LOSS.value, "Daily loss"
        MAX_DRAWDOWN = RuleType.MAX_DRAWDOWN.value, "Max drawdown"
        CORRELATION = RuleType.CORRELATION.value, "Correlation"
        LEVERAGE = RuleType.LEVERAGE.value, "Leverage"
        POSITION_LIMIT = RuleType.POSITION_LIMIT.value, "Position limit"
        SECTOR_LIMIT = RuleType.SECTOR_LIMIT.value, "Sector limit"
        STOP_LOSS = RuleType.STOP_LOSS.value, "Stop loss"
        TAKE_PROFIT = RuleType.TAKE_PROFIT.value, "Take profit"
        COOLDOWN = RuleType.COOLDOWN.value, "Cool-down after a stop"

    class Action(models.TextChoices):
        BLOCK = Action.BLOCK.value, "Block"
        WARN = Action.WARN.value, "Warn only"

    class BreachState(models.TextChoices):
        NONE = "none", "Leave trading on"
        REDUCING = "reducing", "Only reducing orders"
        HALTED = "halted", "Halt trading"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_rules"
    )
    account = models.ForeignKey(
        "accounts.TradingAccount", on_delete=models.CASCADE, related_name="risk_rules"
    )
    # Scope: None is the whole account; a strategy limits the rule to that strategy's orders.
    strategy = models.ForeignKey(
        "strategies.Strategy",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="risk_rules",
    )
    name = models.CharField(max_length=100, blank=True)
    rule_type = models.CharField(max_length=32, choices=Type.choices)
    params = models.JSONField(default=dict, blank=True)
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.BLOCK)
    warning_level = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Fraction of the limit that raises a warning (0.8 = at 80% of the limit).",
    )
    enabled = models.BooleanField(default=True)
    # Escalation: what a breach does to the account, and when an unacknowledged event is sent
    # again one severity higher (and moves the account one state further).
    breach_state = models.CharField(
        max_length=8, choices=BreachState.choices, default=BreachState.NONE
    )
    escalate_after_minutes = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "rule_type", "id"]
        indexes = [models.Index(fields=["account", "enabled"], name="riskrule_account_enabled")]

    def __str__(self) -> str:
        return self.name or self.get_rule_type_display()


class RiskEvent(models.Model):
    class Severity(models.TextChoices):
        WARNING = "warning", "Warning"
        BREACH = "breach", "Breach"
        CRITICAL = "critical", "Critical"

    class Source(models.TextChoices):
        PRE_TRADE = "pre_trade", "Pre-trade check"
        MONITOR = "monitor", "Monitoring"
        PROTECTIVE = "protective", "Stop loss / take profit"

    account = models.ForeignKey(
        "accounts.TradingAccount", on_delete=models.CASCADE, related_name="risk_events"
    )
    rule = models.ForeignKey(
        RiskRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    source = models.CharField(max_length=12, choices=Source.choices)
    code = models.CharField(max_length=48, db_index=True)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    symbol = models.CharField(max_length=32, blank=True)
    value = models.FloatField(null=True, blank=True)
    limit = models.FloatField(null=True, blank=True)
    message = models.TextField()
    context = models.JSONField(default=dict, blank=True)
    trading_date = models.DateField()
    # Repeated observations of the same condition update one event instead of adding rows.
    dedupe_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    last_notified_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "created_at"], name="riskevent_account_time"),
            models.Index(fields=["acknowledged_at", "severity"], name="riskevent_open"),
        ]

    def __str__(self) -> str:
        return f"{self.severity} {self.code} ({self.account_id})"

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None


class TradingStateChange(models.Model):
    """Who or which rule moved an account between active, reducing and halted."""

    account = models.ForeignKey(
        "accounts.TradingAccount", on_delete=models.CASCADE, related_name="state_changes"
    )
    from_state = models.CharField(max_length=16)
    to_state = models.CharField(max_length=16)
    reason = models.CharField(max_length=255)
    rule = models.ForeignKey(
        RiskRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    event = models.ForeignKey(
        RiskEvent, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.from_state} -> {self.to_state}"
