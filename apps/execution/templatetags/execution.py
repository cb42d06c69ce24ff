"""Formatting for the execution pages: holding times, signal targets, order replacements."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()

DASH = "\u2014"
TARGETS = {1: "Long", 0: "Flat", -1: "Short"}
REPLACED_FIELDS = (("quantity", "Qty"), ("limit_price", "Limit"), ("stop_price", "Stop"))


@register.filter
def holding(value: timedelta | None) -> str:
    """A holding time as a trader reads it: ``45s``, ``12m 05s``, ``3h 07m``, ``2d 4h``."""
    if not isinstance(value, timedelta):
        return DASH
    seconds = max(int(value.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


@register.filter
def target_label(value) -> str:
    """A signal's wanted exposure: 1 long, 0 flat, -1 short."""
    return TARGETS.get(value, str(value))


@register.filter
def replaced(data) -> list[tuple[str, str | None, str | None]]:
    """What an order replacement changed, from its event data: ``[(label, before, after)]``."""
    if not isinstance(data, dict):
        return []
    before, after = data.get("before"), data.get("after")
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    return [
        (label, before.get(name), after.get(name))
        for name, label in REPLACED_FIELDS
        if _number(before.get(name)) != _number(after.get(name))
    ]


def _number(value) -> Decimal | str | None:
    # "10.00000000" and "10" are the same quantity.
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return str(value)
