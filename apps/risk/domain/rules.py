"""Risk rule types: their parameters, validation, and descriptions for forms and the API.

Parameters arrive from JSON, forms and the admin, so they go through the strategies' `ParamSpec`
machinery (string coercion, defaults, every problem collected, each message starting with the
parameter's name). `ParamSpec` bounds are inclusive; the strict ones ("limit > 0", "below 100")
are checked here after it. The engine trusts `Rule.params` to be the output of
`validate_rule_params` (the services validate when a rule is saved).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from apps.risk.domain.types import Action, ReasonCode, Rule, RuleType
from apps.strategies.domain.params import InvalidParameters, ParamSpec, validate_params

__all__ = [
    "RULE_PARAM_SPECS",
    "RULE_REASON_CODES",
    "describe_rule_types",
    "max_position_value",
    "rule_applies",
    "validate_rule_params",
    "validate_rule_type",
    "validate_warning_level",
]

RULE_PARAM_SPECS: dict[RuleType, tuple[ParamSpec, ...]] = {
    RuleType.MAX_POSITION_SIZE: (
        ParamSpec(
            "mode",
            str,
            "pct_equity",
            choices=("pct_equity", "money", "units"),
            help="pct_equity: % of equity; money: position value; units: quantity.",
        ),
        ParamSpec(
            "limit",
            float,
            20.0,
            minimum=0.0,
            help="Largest |position| in the symbol after the order, in the mode's unit (> 0).",
        ),
    ),
    RuleType.DAILY_LOSS: (
        ParamSpec(
            "mode",
            str,
            "pct",
            choices=("pct", "money"),
            help="pct: % of start-of-day equity; money: account currency.",
        ),
        ParamSpec(
            "limit",
            float,
            2.0,
            minimum=0.0,
            help="Loss since the start of the day (unrealised included) that stops new risk.",
        ),
        ParamSpec(
            "halt_on_breach",
            bool,
            False,
            help="Halt the account when the limit is reached (else only new risk is blocked).",
        ),
    ),
    RuleType.MAX_DRAWDOWN: (
        ParamSpec(
            "limit_pct",
            float,
            10.0,
            minimum=0.0,
            maximum=100.0,
            help="Drawdown from the high-water mark, in % (0 < limit < 100).",
        ),
    ),
    RuleType.CORRELATION: (
        ParamSpec(
            "threshold",
            float,
            0.8,
            minimum=0.0,
            maximum=1.0,
            help="Largest |correlation| of daily returns with any other holding (0..1).",
        ),
        ParamSpec(
            "lookback",
            int,
            60,
            minimum=10,
            maximum=500,
            help="Number of most recent daily returns compared.",
        ),
    ),
    RuleType.LEVERAGE: (
        ParamSpec(
            "max_leverage",
            float,
            2.0,
            minimum=0.0,
            help="Largest gross exposure / equity after the order (> 0).",
        ),
    ),
    RuleType.POSITION_LIMIT: (
        ParamSpec(
            "max_positions",
            int,
            10,
            minimum=1,
            help="Largest number of open positions (pending orders included).",
        ),
    ),
    RuleType.SECTOR_LIMIT: (
        ParamSpec(
            "limit_pct",
            float,
            30.0,
            minimum=0.0,
            help="Largest gross exposure in one sector, in % of equity (> 0).",
        ),
    ),
    RuleType.STOP_LOSS: (
        ParamSpec(
            "mode",
            str,
            "pct",
            choices=("pct", "money", "atr"),
            help="pct: % of the entry price; money: loss for the whole order; atr: ATR multiple.",
        ),
        ParamSpec(
            "value",
            float,
            2.0,
            minimum=0.0,
            help="Distance of the stop attached to entries that have none (> 0).",
        ),
    ),
    RuleType.TAKE_PROFIT: (
        ParamSpec(
            "mode",
            str,
            "pct",
            choices=("pct", "money", "rr"),
            help="pct: % of the entry price; money: gain for the whole order; "
            "rr: multiple of the stop distance.",
        ),
        ParamSpec(
            "value",
            float,
            4.0,
            minimum=0.0,
            help="Distance of the target attached to entries that have none (> 0).",
        ),
    ),
    RuleType.COOLDOWN: (
        ParamSpec(
            "minutes",
            int,
            60,
            minimum=1,
            help="No new risk in a symbol for this many minutes after a stop loss there.",
        ),
    ),
}

# The code a failed rule of each type reports (STOP_LOSS/TAKE_PROFIT also report the
# built-in INVALID_* codes for a given price on the wrong side).
RULE_REASON_CODES: dict[RuleType, ReasonCode] = {
    RuleType.MAX_POSITION_SIZE: ReasonCode.MAX_POSITION_SIZE_EXCEEDED,
    RuleType.DAILY_LOSS: ReasonCode.DAILY_LOSS_LIMIT,
    RuleType.MAX_DRAWDOWN: ReasonCode.MAX_DRAWDOWN_EXCEEDED,
    RuleType.CORRELATION: ReasonCode.CORRELATION_TOO_HIGH,
    RuleType.LEVERAGE: ReasonCode.LEVERAGE_EXCEEDED,
    RuleType.POSITION_LIMIT: ReasonCode.POSITION_LIMIT_EXCEEDED,
    RuleType.SECTOR_LIMIT: ReasonCode.SECTOR_LIMIT_EXCEEDED,
    RuleType.STOP_LOSS: ReasonCode.STOP_LOSS_UNAVAILABLE,
    RuleType.TAKE_PROFIT: ReasonCode.TAKE_PROFIT_UNAVAILABLE,
    RuleType.COOLDOWN: ReasonCode.COOLDOWN_ACTIVE,
}

_LABELS: dict[RuleType, tuple[str, str]] = {
    RuleType.MAX_POSITION_SIZE: (
        "Max position size",
        "Caps the position in one symbol after the order (pending orders included).",
    ),
    RuleType.DAILY_LOSS: (
        "Daily loss limit",
        "Once the loss since the start of the day reaches the limit, only orders that reduce "
        "risk pass.",
    ),
    RuleType.MAX_DRAWDOWN: (
        "Max drawdown",
        "Once equity falls this far below its high-water mark, only orders that reduce risk "
        "pass and the account is halted.",
    ),
    RuleType.CORRELATION: (
        "Correlation limit",
        "Blocks a new or larger position whose daily returns move too closely with another "
        "holding's.",
    ),
    RuleType.LEVERAGE: (
        "Max leverage",
        "Caps gross exposure (pending orders included) divided by equity.",
    ),
    RuleType.POSITION_LIMIT: (
        "Max open positions",
        "Caps the number of symbols with a position or a pending order.",
    ),
    RuleType.SECTOR_LIMIT: (
        "Sector limit",
        "Caps the gross exposure in the order's sector as a share of equity.",
    ),
    RuleType.STOP_LOSS: (
        "Stop loss",
        "Attaches a stop loss to every entry that has none.",
    ),
    RuleType.TAKE_PROFIT: (
        "Take profit",
        "Attaches a profit target to every entry that has none.",
    ),
    RuleType.COOLDOWN: (
        "Cool-down after a stop",
        "No new risk in a symbol for a while after a stop loss closed a position there.",
    ),
}

# Rules whose measured value can approach a limit (so a warning level means something).
_MEASURED = frozenset(
    {
        RuleType.MAX_POSITION_SIZE,
        RuleType.DAILY_LOSS,
        RuleType.MAX_DRAWDOWN,
        RuleType.CORRELATION,
        RuleType.LEVERAGE,
        RuleType.POSITION_LIMIT,
        RuleType.SECTOR_LIMIT,
    }
)

# Parameters that must be strictly positive (ParamSpec's minimum is inclusive).
_STRICTLY_POSITIVE: dict[RuleType, tuple[str, ...]] = {
    RuleType.MAX_POSITION_SIZE: ("limit",),
    RuleType.DAILY_LOSS: ("limit",),
    RuleType.MAX_DRAWDOWN: ("limit_pct",),
    RuleType.LEVERAGE: ("max_leverage",),
    RuleType.SECTOR_LIMIT: ("limit_pct",),
    RuleType.STOP_LOSS: ("value",),
    RuleType.TAKE_PROFIT: ("value",),
}

RULE_DEFAULTS: dict[RuleType, dict[str, Any]] = {
    rule_type: {spec.name: spec.default for spec in specs}
    for rule_type, specs in RULE_PARAM_SPECS.items()
}


def _fmt(value: float) -> str:
    return f"{value:g}"


def validate_rule_type(rule_type: RuleType | str) -> RuleType:
    """The RuleType for `rule_type`; InvalidParameters naming ``type`` if unknown."""
    try:
        return RuleType(rule_type)
    except ValueError:
        valid = ", ".join(item.value for item in RuleType)
        raise InvalidParameters(
            {"type": f"type: unknown rule type {rule_type!r} (valid: {valid})"}
        ) from None


def validate_rule_params(
    rule_type: RuleType | str, raw: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Every parameter of `rule_type`, coerced, checked and completed with defaults.

    Raises InvalidParameters whose `errors` map each bad parameter to a message starting with
    its name. Cross-parameter rules (a percentage below 100) run once each value is valid.
    """
    kind = validate_rule_type(rule_type)
    params = validate_params(RULE_PARAM_SPECS[kind], raw)
    errors: dict[str, str] = {}
    for name in _STRICTLY_POSITIVE.get(kind, ()):
        if params[name] <= 0:
            errors[name] = f"{name}: must be greater than 0 (got {_fmt(params[name])})"
    if kind is RuleType.MAX_DRAWDOWN and params["limit_pct"] >= 100:
        errors["limit_pct"] = f"limit_pct: must be below 100 (got {_fmt(params['limit_pct'])})"
    if (
        kind in (RuleType.DAILY_LOSS, RuleType.STOP_LOSS)
        and params["mode"] == "pct"
        and "limit" not in errors
        and "value" not in errors
    ):
        name = "limit" if kind is RuleType.DAILY_LOSS else "value"
        if params[name] >= 100:
            errors[name] = (
                f"{name}: a percentage must be below 100 in pct mode (got {_fmt(params[name])})"
            )
    if errors:
        raise InvalidParameters(errors)
    return params


def validate_warning_level(value: Any) -> float | None:
    """The warning level as a fraction strictly between 0 and 1, or None when not given.

    0.8 raises a warning once the measured value reaches 80% of the limit.
    """
    spec = ParamSpec("warning_level", float, 0.8, minimum=0.0, maximum=1.0)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    level = spec.coerce(value)
    if not 0 < level < 1:
        raise InvalidParameters(
            {"warning_level": f"warning_level: must be between 0 and 1, exclusive (got {level:g})"}
        )
    return level


def describe_rule_types() -> list[dict[str, Any]]:
    """JSON-able descriptions of every rule type, for forms and the API."""
    described = []
    for rule_type, specs in RULE_PARAM_SPECS.items():
        label, description = _LABELS[rule_type]
        described.append(
            {
                "type": rule_type.value,
                "label": label,
                "description": description,
                "reason_code": RULE_REASON_CODES[rule_type].value,
                "params": [spec.to_dict() for spec in specs],
                "defaults": dict(RULE_DEFAULTS[rule_type]),
                "supports_warning_level": rule_type in _MEASURED,
                "actions": [action.value for action in Action],
            }
        )
    return described


def rule_applies(rule: Rule, strategy_id: int | None) -> bool:
    """An enabled rule applies to the whole account (strategy_id None) or to its strategy."""
    return rule.enabled and (rule.strategy_id is None or rule.strategy_id == strategy_id)


def max_position_value(
    rules: Iterable[Rule], *, equity: float, price: float, strategy_id: int | None = None
) -> float | None:
    """The smallest money cap the blocking max-position-size rules put on one position, or
    None when no such rule applies. Feed it to `sizing.size_position(max_position_value=...)`;
    it caps the whole position, so subtract an existing position's value yourself."""
    caps = []
    for rule in rules:
        if (
            rule.type != RuleType.MAX_POSITION_SIZE
            or rule.action != Action.BLOCK
            or not rule_applies(rule, strategy_id)
        ):
            continue
        mode = rule.params.get("mode", "pct_equity")
        limit = float(rule.params.get("limit", RULE_DEFAULTS[RuleType.MAX_POSITION_SIZE]["limit"]))
        if mode == "pct_equity":
            caps.append(max(equity, 0.0) * limit / 100.0)
        elif mode == "money":
            caps.append(limit)
        else:
            caps.append(limit * price)
    return min(caps) if caps else None
