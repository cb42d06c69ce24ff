"""Formatting for trading pages: money, prices, quantities, PnL colours and status badges.

Every filter accepts ``None`` and junk (showing a dash) so a missing value never breaks a page.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import template
from django.utils.html import format_html

register = template.Library()

DASH = "\u2014"
UTC = ZoneInfo("UTC")

# Status -> badge tone, for orders, trades, accounts and strategy modes.
TONES = {
    "filled": "success",
    "partially_filled": "info",
    "new": "pending",
    "submitted": "pending",
    "accepted": "pending",
    "cancelled": "muted",
    "expired": "muted",
    "rejected": "danger",
    "active": "success",
    "halted": "danger",
    "open": "info",
    "closed": "muted",
    "off": "muted",
    "paper": "info",
    "live": "warning",
    "long": "success",
    "short": "danger",
    "buy": "success",
    "sell": "danger",
}


def _decimal(value) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def _fixed(number: Decimal, places: int) -> str:
    quantum = Decimal(1).scaleb(-places)
    rounded = number.quantize(quantum, rounding=ROUND_HALF_UP)
    if rounded == 0:
        rounded = abs(rounded)  # never show "-0.00"
    return f"{rounded:,.{places}f}"


@register.filter
def money(value, places: int = 2) -> str:
    """``1234.5`` -> ``1,234.50``."""
    number = _decimal(value)
    return DASH if number is None else _fixed(number, int(places))


@register.filter
def signed_money(value, places: int = 2) -> str:
    """``12.3`` -> ``+12.30``; negative values keep their minus sign."""
    number = _decimal(value)
    if number is None:
        return DASH
    text = _fixed(number, int(places))
    return f"+{text}" if number.quantize(Decimal(1).scaleb(-int(places))) > 0 else text


@register.filter
def price(value) -> str:
    """A price with at least two and at most eight decimals, trailing zeros dropped."""
    number = _decimal(value)
    if number is None:
        return DASH
    text = _fixed(number, 8).rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


@register.filter
def qty(value) -> str:
    """A quantity without meaningless zeros: ``10.00000000`` -> ``10``, ``0.5`` -> ``0.5``."""
    number = _decimal(value)
    if number is None:
        return DASH
    text = _fixed(number, 8).rstrip("0").rstrip(".")
    return text or "0"


@register.filter
def pct(value, places: int = 2) -> str:
    number = _decimal(value)
    return DASH if number is None else f"{_fixed(number, int(places))}%"


@register.filter
def signed_pct(value, places: int = 2) -> str:
    number = _decimal(value)
    return DASH if number is None else f"{signed_money(number, places)}%"


@register.filter
def pnl_class(value) -> str:
    """CSS class for a profit (``pos``), a loss (``neg``) or nothing (``flat``)."""
    number = _decimal(value)
    if number is None or number == 0:
        return "flat"
    return "pos" if number > 0 else "neg"


@register.filter
def tone(status) -> str:
    return TONES.get(str(status), "muted")


@register.simple_tag
def badge(value, label=None):
    """``<span class="badge badge-success">Filled</span>`` for a status value."""
    if value in (None, ""):
        return DASH
    text = label if label not in (None, "") else str(value).replace("_", " ").capitalize()
    return format_html('<span class="badge badge-{}">{}</span>', tone(value), text)


@register.filter
def user_tz(user) -> ZoneInfo:
    """The user's time zone, UTC when unset or unknown (a bad value must not break pages)."""
    name = getattr(user, "time_zone", "") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


@register.filter
def is_checkbox(bound_field) -> bool:
    return getattr(bound_field.field.widget, "input_type", "") == "checkbox"


@register.filter
def percent_of(value, base):
    """``value`` as a percentage of ``base`` (None when either is missing or base is zero)."""
    number, whole = _decimal(value), _decimal(base)
    if number is None or not whole:
        return None
    return number / whole * 100


@register.filter
def times(value, other):
    """``value * other`` for Decimals (None when either is missing)."""
    a, b = _decimal(value), _decimal(other)
    return None if a is None or b is None else a * b


@register.filter
def lookup(mapping, key):
    """``mapping[key]`` in a template; the key itself when it is missing."""
    try:
        return mapping[key]
    except (KeyError, TypeError, IndexError):
        return key


@register.filter
def param_value(value) -> str:
    """A strategy parameter as a trader reads it: yes/no for flags, 2.0 -> 2."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
