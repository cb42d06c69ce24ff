import json
import math

import numpy as np
import pytest

from apps.strategies.domain import (
    InvalidParameters,
    ParamSpec,
    UnknownStrategy,
    describe_strategies,
    get_strategy,
    strategy_kinds,
    validate_params,
    validate_strategy_params,
)

SPECS = (
    ParamSpec("fast", int, 10, minimum=2, maximum=500),
    ParamSpec("k", float, 2.0, minimum=0.5, maximum=5.0),
    ParamSpec("allow_short", bool, False),
    ParamSpec("mode", str, "close", choices=("close", "typical")),
)
DEFAULTS = {"fast": 10, "k": 2.0, "allow_short": False, "mode": "close"}


def test_missing_parameters_get_their_defaults():
    assert validate_params(SPECS, {}) == DEFAULTS
    assert validate_params(SPECS, None) == DEFAULTS
    assert list(validate_params(SPECS, {"k": 3}).keys()) == ["fast", "k", "allow_short", "mode"]


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("fast", "20", 20),
        ("fast", " 20 ", 20),
        ("fast", "20.0", 20),
        ("fast", 20.0, 20),
        ("fast", np.int64(20), 20),
        ("k", "2.5", 2.5),
        ("k", 3, 3.0),
        ("k", np.float32(2.5), 2.5),
        ("allow_short", "true", True),
        ("allow_short", "True", True),
        ("allow_short", "1", True),
        ("allow_short", "yes", True),
        ("allow_short", "on", True),
        ("allow_short", "false", False),
        ("allow_short", "0", False),
        ("allow_short", "off", False),
        ("allow_short", 1, True),
        ("allow_short", 0, False),
        ("allow_short", True, True),
        ("mode", "typical", "typical"),
    ],
)
def test_strings_and_numbers_are_coerced(name, raw, expected):
    value = validate_params(SPECS, {name: raw})[name]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(("name", "blank"), [("fast", ""), ("k", "  "), ("allow_short", None)])
def test_blank_form_fields_mean_the_default(name, blank):
    assert validate_params(SPECS, {name: blank}) == DEFAULTS


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("fast", 900, "fast: must be at most 500 (got 900)"),
        ("fast", "1", "fast: must be at least 2 (got 1)"),
        ("fast", 2.5, "fast: must be an integer (got 2.5)"),
        ("fast", "2.5", "fast: must be an integer (got '2.5')"),
        ("fast", "ten", "fast: must be an integer (got 'ten')"),
        ("fast", True, "fast: must be an integer, not a boolean (got True)"),
        ("fast", float("nan"), "fast: must be an integer (got nan)"),
        ("fast", [10], "fast: must be an integer (got list)"),
        ("k", float("nan"), "k: must be a finite number (got nan)"),
        ("k", float("inf"), "k: must be a finite number (got inf)"),
        ("k", "inf", "k: must be a finite number (got inf)"),
        ("k", "NaN", "k: must be a finite number (got NaN)"),
        ("k", False, "k: must be a number, not a boolean (got False)"),
        ("k", 0.1, "k: must be at least 0.5 (got 0.1)"),
        ("k", "5.5", "k: must be at most 5.0 (got 5.5)"),
        ("allow_short", "maybe", "allow_short: must be true or false (got 'maybe')"),
        ("allow_short", 2, "allow_short: must be true or false (got 2)"),
        ("allow_short", 0.5, "allow_short: must be true or false (got 0.5)"),
        ("mode", "open", "mode: must be one of 'close', 'typical' (got 'open')"),
        ("mode", 3, "mode: must be a string (got int)"),
    ],
)
def test_invalid_values_are_rejected_with_a_message_naming_the_parameter(name, raw, message):
    with pytest.raises(InvalidParameters) as excinfo:
        validate_params(SPECS, {name: raw})
    assert excinfo.value.errors == {name: message}
    assert str(excinfo.value) == message


def test_unknown_names_are_rejected_and_the_valid_ones_listed():
    with pytest.raises(InvalidParameters) as excinfo:
        validate_params(SPECS, {"fats": 3})
    assert excinfo.value.errors == {
        "fats": "fats: unknown parameter (valid: fast, k, allow_short, mode)"
    }


def test_every_error_is_collected_before_raising():
    with pytest.raises(InvalidParameters) as excinfo:
        validate_params(SPECS, {"fast": 900, "k": "x", "allow_short": "maybe", "extra": 1})
    errors = excinfo.value.errors
    assert set(errors) == {"fast", "k", "allow_short", "extra"}
    for name, message in errors.items():
        assert message.startswith(f"{name}: ")
        assert message in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    assert excinfo.value.code == "invalid_parameters"


def test_params_must_be_a_mapping():
    with pytest.raises(InvalidParameters, match="params: must be an object"):
        validate_params(SPECS, [("fast", 3)])  # type: ignore[arg-type]


def test_spec_describes_itself_as_json():
    described = SPECS[3].to_dict()
    assert json.loads(json.dumps(described)) == {
        "name": "mode",
        "type": "str",
        "default": "close",
        "minimum": None,
        "maximum": None,
        "choices": ["close", "typical"],
        "label": "Mode",
        "help": "",
    }
    assert SPECS[0].to_dict()["type"] == "int"
    assert SPECS[0].to_dict()["maximum"] == 500


def test_a_spec_with_an_invalid_default_fails_at_definition():
    with pytest.raises(ValueError, match="fast: must be at most 5"):
        ParamSpec("fast", int, 10, maximum=5)
    with pytest.raises(TypeError):
        ParamSpec("when", list, [])  # type: ignore[arg-type]


# --- strategy parameters through the registry --------------------------------------------


@pytest.mark.parametrize(
    ("kind", "raw", "errors"),
    [
        (
            "sma_crossover",
            {"fast": 20, "slow": 10},
            {"slow": "slow: must be greater than fast (20)"},
        ),
        (
            "sma_crossover",
            {"fast": 10, "slow": 10},
            {"slow": "slow: must be greater than fast (10)"},
        ),
        ("sma_crossover", {"fast": 900}, {"fast": "fast: must be at most 500 (got 900)"}),
        ("macd_trend", {"fast": 30}, {"slow": "slow: must be greater than fast (30)"}),
        (
            "rsi_mean_reversion",
            {"oversold": 50, "overbought": 50, "exit_level": 50},
            {"overbought": "overbought: must be greater than oversold (50)"},
        ),
        (
            "rsi_mean_reversion",
            {"exit_level": 75},
            {"exit_level": "exit_level: must be between oversold (30) and overbought (70)"},
        ),
        (
            "rsi_mean_reversion",
            {"oversold": 20, "exit_level": "20"},
            {"exit_level": "exit_level: must be between oversold (20) and overbought (70)"},
        ),
        ("bollinger_breakout", {"k": 9}, {"k": "k: must be at most 5.0 (got 9.0)"}),
    ],
)
def test_strategy_parameter_errors_name_the_parameter(kind, raw, errors):
    with pytest.raises(InvalidParameters) as excinfo:
        validate_strategy_params(kind, raw)
    assert excinfo.value.errors == errors


def test_field_errors_are_reported_together_before_cross_field_rules():
    with pytest.raises(InvalidParameters) as excinfo:
        validate_strategy_params("sma_crossover", {"fast": "x", "slow": 2, "allow_short": "?"})
    assert set(excinfo.value.errors) == {"fast", "slow", "allow_short"}


def test_strategy_params_are_coerced_and_completed():
    assert validate_strategy_params("sma_crossover", {"fast": "5", "allow_short": "true"}) == {
        "fast": 5,
        "slow": 30,
        "allow_short": True,
    }
    validated = validate_strategy_params("rsi_mean_reversion", {})
    assert validated == {
        "period": 14,
        "oversold": 30.0,
        "overbought": 70.0,
        "exit_level": 50.0,
        "allow_short": False,
    }
    # Validating an already validated dict changes nothing.
    assert validate_strategy_params("rsi_mean_reversion", validated) == validated


@pytest.mark.parametrize("kind", ["nope", "", "SMA_CROSSOVER", None])
def test_unknown_kind_lists_the_valid_kinds(kind):
    with pytest.raises(UnknownStrategy) as excinfo:
        get_strategy(kind)  # type: ignore[arg-type]
    message = str(excinfo.value)
    assert repr(kind) in message
    for valid in ("sma_crossover", "rsi_mean_reversion", "bollinger_breakout", "macd_trend"):
        assert valid in message
    assert isinstance(excinfo.value, ValueError)
    with pytest.raises(UnknownStrategy):
        validate_strategy_params(kind, {})  # type: ignore[arg-type]


def test_every_default_is_valid_and_json_describable():
    described = describe_strategies()
    assert [d["kind"] for d in described] == [s.kind for s in strategy_kinds()]
    assert [d["kind"] for d in described][:4] == [
        "sma_crossover",
        "rsi_mean_reversion",
        "bollinger_breakout",
        "macd_trend",
    ]
    assert json.loads(json.dumps(described)) == described
    for entry in described:
        assert entry["label"] and entry["description"]
        defaults = {p["name"]: p["default"] for p in entry["params"]}
        assert validate_strategy_params(entry["kind"], {}) == defaults == entry["defaults"]
        assert defaults["allow_short"] is False
        for param in entry["params"]:
            if param["type"] in ("int", "float"):
                assert param["minimum"] <= param["default"] <= param["maximum"]
                assert not math.isnan(param["default"])
