"""What a notification can be: its types, severities and channels, and the defaults of each.

The Django models mirror these values as ``TextChoices`` (``apps.notifications.models``); a
test keeps both in step.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """The notification types other apps pass to ``notify(type=...)``."""

    ORDER_FILLED = "order_filled"
    ORDER_PARTIALLY_FILLED = "order_partially_filled"
    ORDER_REJECTED = "order_rejected"
    ORDER_CANCELLED = "order_cancelled"
    POSITION_OPENED = "position_opened"
    POSITION_CLOSED = "position_closed"
    STOP_LOSS_HIT = "stop_loss_hit"
    TAKE_PROFIT_HIT = "take_profit_hit"
    RISK_WARNING = "risk_warning"
    RISK_BREACH = "risk_breach"
    STRATEGY_SIGNAL = "strategy_signal"
    BACKTEST_FINISHED = "backtest_finished"
    DAILY_SUMMARY = "daily_summary"
    SYSTEM_ALERT = "system_alert"
    API_KEY_EVENT = "api_key_event"
    TEST = "test"  # the "send a test" button of the preferences page


class Severity(StrEnum):
    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class Channel(StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"
    PUSH = "push"
    WEBHOOK = "webhook"


SEVERITY_RANK = {
    Severity.INFO: 0,
    Severity.SUCCESS: 0,
    Severity.WARNING: 1,
    Severity.ERROR: 2,
    Severity.CRITICAL: 3,
}

DEFAULT_SEVERITY: dict[Kind, Severity] = {
    Kind.ORDER_FILLED: Severity.SUCCESS,
    Kind.ORDER_PARTIALLY_FILLED: Severity.INFO,
    Kind.ORDER_REJECTED: Severity.ERROR,
    Kind.ORDER_CANCELLED: Severity.INFO,
    Kind.POSITION_OPENED: Severity.INFO,
    Kind.POSITION_CLOSED: Severity.INFO,
    Kind.STOP_LOSS_HIT: Severity.WARNING,
    Kind.TAKE_PROFIT_HIT: Severity.SUCCESS,
    Kind.RISK_WARNING: Severity.WARNING,
    Kind.RISK_BREACH: Severity.CRITICAL,
    Kind.STRATEGY_SIGNAL: Severity.INFO,
    Kind.BACKTEST_FINISHED: Severity.INFO,
    Kind.DAILY_SUMMARY: Severity.INFO,
    Kind.SYSTEM_ALERT: Severity.CRITICAL,
    Kind.API_KEY_EVENT: Severity.WARNING,
    Kind.TEST: Severity.INFO,
}

# Channels a type goes to when the trader has not said otherwise. In-app always; e-mail for
# what a trader must not miss; push for fills and anything urgent; webhooks for everything
# (they only exist when the trader configured a URL). The test type is never routed by
# preference: it goes to the one channel the trader tests.
_EMAIL_BY_DEFAULT = {
    Kind.ORDER_FILLED,
    Kind.ORDER_REJECTED,
    Kind.STOP_LOSS_HIT,
    Kind.TAKE_PROFIT_HIT,
    Kind.RISK_WARNING,
    Kind.RISK_BREACH,
    Kind.BACKTEST_FINISHED,
    Kind.DAILY_SUMMARY,
    Kind.SYSTEM_ALERT,
    Kind.API_KEY_EVENT,
}
_PUSH_BY_DEFAULT = {
    Kind.ORDER_FILLED,
    Kind.ORDER_REJECTED,
    Kind.STOP_LOSS_HIT,
    Kind.TAKE_PROFIT_HIT,
    Kind.RISK_BREACH,
    Kind.SYSTEM_ALERT,
}

# The channels that interrupt the trader wherever they are; quiet hours hold these back.
# In-app is shown in an open page only (the trader is at the screen), so it never waits.
INTERRUPTING_CHANNELS = frozenset({Channel.EMAIL, Channel.PUSH, Channel.WEBHOOK})


def default_severity(kind: str) -> Severity:
    return DEFAULT_SEVERITY[Kind(kind)]


def is_critical(severity: str) -> bool:
    return severity == Severity.CRITICAL


def default_channel_enabled(kind: str, channel: str) -> bool:
    kind, channel = Kind(kind), Channel(channel)
    if kind == Kind.TEST:
        return False
    if channel == Channel.IN_APP or channel == Channel.WEBHOOK:
        return True
    if channel == Channel.EMAIL:
        return kind in _EMAIL_BY_DEFAULT
    return kind in _PUSH_BY_DEFAULT


def routable_kinds() -> list[Kind]:
    """The types a trader sets preferences for (all but the test message)."""
    return [kind for kind in Kind if kind != Kind.TEST]
