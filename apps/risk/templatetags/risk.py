"""Formatting for risk decisions and events: measured values, check results, rule names.

Every filter accepts ``None`` and junk (showing a dash) so a missing value never breaks a page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template

from apps.risk.display import format_measure, unit_for
from apps.risk.models import RiskEvent, RiskRule

register = template.Library()

_SEVERITY_TONES = {"warning": "warning", "breach": "danger", "critical": "danger"}
_CHECK_TONES = {"pass": "success", "near": "warning", "warn": "warning", "fail": "danger"}
_ORDER = {"fail": 0, "warn": 1, "near": 2, "pass": 3}
_STATUS_LABELS = {"pass": "Pass", "near": "Near limit", "warn": "Warning", "fail": "Fail"}
_CHECK_LABELS = {
    "trading_state": "Trading state",
    "instrument": "Instrument",
    "quantity": "Quantity",
    "price": "Price",
    "rate_limit": "Order rate",
    "reduce_only": "Reduce only",
    "buying_power": "Buying power",
    "protective_prices": "Stop / target",
}


@register.filter
def measure(value, unit: str = "") -> str:
    """A measured value or limit: ``measure:"%"`` -> 8.00%; without a unit 1,234.57 for
    large numbers and 4 significant digits below."""
    return format_measure(value, unit)


@register.filter
def severity_tone(severity) -> str:
    return _SEVERITY_TONES.get(str(severity), "muted")


@register.filter
def check_tone(status) -> str:
    return _CHECK_TONES.get(str(status), "muted")


def _status(check: Mapping[str, Any]) -> str:
    if check.get("passed"):
        return "near" if check.get("severity") == "warning" else "pass"
    return "warn" if check.get("action") == "warn" else "fail"


@register.filter
def with_rule_names(decision) -> dict[str, Any]:
    """A stored decision (``Decision.as_dict()``) with each check's status, a label for it and
    the name of its rule (one query for all of them; a deleted rule keeps its type's label)."""
    if not isinstance(decision, Mapping):
        return {"outcome": "", "checks": [], "attention": [], "passed": [], "reason_codes": []}
    checks = [c for c in decision.get("checks") or [] if isinstance(c, Mapping)]
    ids = {c.get("rule_id") for c in checks if isinstance(c.get("rule_id"), int)}
    rules = RiskRule.objects.in_bulk(ids) if ids else {}
    labels = dict(RiskRule.Type.choices)
    enriched = []
    for check in checks:
        name = check.get("check") or check.get("rule_type") or ""
        rule = rules.get(check.get("rule_id"))
        status = _status(check)
        unit = unit_for(name, rule.params if rule is not None else None)
        enriched.append(
            {
                **check,
                "value_text": format_measure(check.get("value"), unit),
                "limit_text": format_measure(check.get("limit"), unit),
                "label": labels.get(name) or _CHECK_LABELS.get(name) or name.replace("_", " "),
                "rule_name": str(rule) if rule is not None else "",
                "status": status,
                "status_label": _STATUS_LABELS[status],
            }
        )
    # Failures first, then warnings and near-limit results; passes apart.
    enriched.sort(key=lambda check: _ORDER[check["status"]])
    return {
        **decision,
        "checks": enriched,
        "attention": [check for check in enriched if check["status"] != "pass"],
        "passed": [check for check in enriched if check["status"] == "pass"],
    }


@register.filter
def event_figure(event: RiskEvent, which: str) -> str:
    """An event's measured ``value`` or its ``limit``, in its rule's unit."""
    context = event.context if isinstance(event.context, Mapping) else {}
    kind = event.rule.rule_type if event.rule_id and event.rule else context.get("check")
    unit = unit_for(kind, event.rule.params if event.rule_id and event.rule else None)
    return format_measure(getattr(event, which, None), unit)
