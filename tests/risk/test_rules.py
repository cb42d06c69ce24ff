"""Risk rule parameters: validation (every message names its parameter), descriptions for
forms and the API, and the max-position money cap used by sizing."""

from __future__ import annotations

import json

import pytest

from apps.risk.domain.rules import (
    RULE_PARAM_SPECS,
    describe_rule_types,
    max_position_value,
    validate_rule_params,
    validate_rule_type,
    validate_warning_level,
)
from apps.risk.domain.types import Action, Rule, RuleType
from apps.strategies.domain.params import InvalidParameters


def test_every_rule_type_has_specs_and_valid_defaults():
    assert set(RULE_PARAM_SPECS) == set(RuleType)
    for rule_type in RuleType:
        defaults = validate_rule_params(rule_type, None)
        assert set(defaults) == {spec.name for spec in RULE_PARAM_SPECS[rule_type]}


@pytest.mark.parametrize(
    ("rule_type", "raw", "expected"),
    [
        (
            "max_position_size",
            {"mode": "money", "limit": "25000"},
            {"mode": "money", "limit": 25000.0},
        ),
        (
            "daily_loss",
            {"limit": "3", "halt_on_breach": "yes"},
            {"mode": "pct", "limit": 3.0, "halt_on_breach": True},
        ),
        (
            "daily_loss",
            {"mode": "money", "limit": 5000},
            {"mode": "money", "limit": 5000.0, "halt_on_breach": False},
        ),
        ("max_drawdown", {"limit_pct": 12.5}, {"limit_pct": 12.5}),
        ("correlation", {"threshold": "0.7"}, {"threshold": 0.7, "lookback": 60}),
        ("correlation", {"threshold": 1, "lookback": "500"}, {"threshold": 1.0, "lookback": 500}),
        ("leverage", {"max_leverage": 1.5}, {"max_leverage": 1.5}),
        ("position_limit", {"max_positions": "1"}, {"max_positions": 1}),
        ("sector_limit", {"limit_pct": 25}, {"limit_pct": 25.0}),
        ("stop_loss", {"mode": "atr", "value": 2}, {"mode": "atr", "value": 2.0}),
        ("stop_loss", {"mode": "money", "value": 250}, {"mode": "money", "value": 250.0}),
        ("take_profit", {"mode": "rr", "value": "2"}, {"mode": "rr", "value": 2.0}),
        ("cooldown", {"minutes": "15"}, {"minutes": 15}),
    ],
)
def test_valid_params_are_coerced_and_completed(rule_type, raw, expected):
    assert validate_rule_params(rule_type, raw) == expected


@pytest.mark.parametrize(
    ("rule_type", "raw", "name", "fragment"),
    [
        ("max_position_size", {"limit": 0}, "limit", "greater than 0"),
        ("max_position_size", {"limit": -5}, "limit", "at least 0"),
        ("max_position_size", {"mode": "shares"}, "mode", "must be one of"),
        ("max_position_size", {"limti": 5}, "limti", "unknown parameter"),
        ("daily_loss", {"limit": 100}, "limit", "below 100"),
        ("daily_loss", {"halt_on_breach": "maybe"}, "halt_on_breach", "true or false"),
        ("max_drawdown", {"limit_pct": 100}, "limit_pct", "below 100"),
        ("max_drawdown", {"limit_pct": 0}, "limit_pct", "greater than 0"),
        ("correlation", {"threshold": 1.2}, "threshold", "at most 1"),
        ("correlation", {"lookback": 9}, "lookback", "at least 10"),
        ("correlation", {"lookback": 501}, "lookback", "at most 500"),
        ("correlation", {"lookback": 20.5}, "lookback", "integer"),
        ("leverage", {"max_leverage": 0}, "max_leverage", "greater than 0"),
        ("position_limit", {"max_positions": 0}, "max_positions", "at least 1"),
        ("sector_limit", {"limit_pct": "x"}, "limit_pct", "must be a number"),
        ("stop_loss", {"mode": "pct", "value": 100}, "value", "below 100"),
        ("stop_loss", {"value": 0}, "value", "greater than 0"),
        ("take_profit", {"mode": "trailing"}, "mode", "must be one of"),
        ("cooldown", {"minutes": 0}, "minutes", "at least 1"),
    ],
)
def test_invalid_params_name_the_parameter(rule_type, raw, name, fragment):
    with pytest.raises(InvalidParameters) as caught:
        validate_rule_params(rule_type, raw)
    assert name in caught.value.errors
    message = caught.value.errors[name]
    assert message.startswith(f"{name}:")
    assert fragment in message


def test_percentages_above_100_are_fine_outside_pct_mode():
    assert validate_rule_params("daily_loss", {"mode": "money", "limit": 150})["limit"] == 150
    assert validate_rule_params("stop_loss", {"mode": "money", "value": 150})["value"] == 150


def test_every_problem_is_reported_at_once():
    with pytest.raises(InvalidParameters) as caught:
        validate_rule_params("correlation", {"threshold": 2, "lookback": 1, "extra": 1})
    assert set(caught.value.errors) == {"threshold", "lookback", "extra"}


def test_unknown_rule_type_names_the_type():
    with pytest.raises(InvalidParameters) as caught:
        validate_rule_type("max_fun")
    assert "type" in caught.value.errors and "max_fun" in caught.value.message
    assert validate_rule_type("cooldown") is RuleType.COOLDOWN


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), ("0.8", 0.8), (0.5, 0.5)])
def test_warning_level_valid(raw, expected):
    assert validate_warning_level(raw) == expected


@pytest.mark.parametrize("raw", [0, 1, 1.5, -0.1, "high", True])
def test_warning_level_invalid(raw):
    with pytest.raises(InvalidParameters) as caught:
        validate_warning_level(raw)
    assert list(caught.value.errors) == ["warning_level"]
    assert caught.value.message.startswith("warning_level:")


def test_describe_rule_types_is_json_for_forms():
    described = describe_rule_types()
    assert [d["type"] for d in described] == [t.value for t in RuleType]
    by_type = {d["type"]: d for d in described}
    assert by_type["correlation"]["reason_code"] == "CORRELATION_TOO_HIGH"
    assert by_type["cooldown"]["reason_code"] == "COOLDOWN_ACTIVE"
    assert by_type["stop_loss"]["supports_warning_level"] is False
    assert by_type["leverage"]["supports_warning_level"] is True
    assert by_type["max_position_size"]["params"][0]["choices"] == ["pct_equity", "money", "units"]
    assert by_type["correlation"]["defaults"] == {"threshold": 0.8, "lookback": 60}
    json.dumps(described, allow_nan=False)


def _rule(params, *, action=Action.BLOCK, strategy_id=None, enabled=True, id=1):
    return Rule(
        id=id,
        type=RuleType.MAX_POSITION_SIZE,
        params=validate_rule_params(RuleType.MAX_POSITION_SIZE, params),
        action=action,
        strategy_id=strategy_id,
        enabled=enabled,
    )


def test_max_position_value_takes_the_smallest_applicable_cap():
    rules = [
        _rule({"mode": "pct_equity", "limit": 20}, id=1),  # 20,000
        _rule({"mode": "money", "limit": 15_000}, id=2),
        _rule({"mode": "units", "limit": 100}, id=3),  # 100 x 120 = 12,000
        _rule({"mode": "money", "limit": 1}, id=4, action=Action.WARN),  # does not block
        _rule({"mode": "money", "limit": 2}, id=5, enabled=False),
        _rule({"mode": "money", "limit": 3}, id=6, strategy_id=9),
        Rule(id=7, type=RuleType.LEVERAGE, params={"max_leverage": 0.01}),
    ]
    assert max_position_value(rules, equity=100_000, price=120) == pytest.approx(12_000)
    assert max_position_value(rules, equity=100_000, price=120, strategy_id=9) == pytest.approx(3)
    assert max_position_value(rules[:1], equity=50_000, price=1) == pytest.approx(10_000)
    assert max_position_value(rules[3:], equity=100_000, price=120) is None
