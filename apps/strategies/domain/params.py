"""Strategy parameters: typed specs and their validation.

Values arrive from JSON (API), HTML forms and the CLI, so strings are coerced ("20" -> 20,
"2.5" -> 2.5, "true"/"false"/"1"/"0" -> bool); None or a blank string means "use the
default". Every problem is collected before `InvalidParameters` is raised, each message
starting with the parameter's name.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["InvalidParameters", "ParamSpec", "validate_params"]

ParamType = type[int] | type[float] | type[bool] | type[str]
_TYPE_NAMES: dict[type, str] = {int: "int", float: "float", bool: "bool", str: "str"}
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class InvalidParameters(ValueError):
    """Parameters that failed validation; `errors` maps each parameter to its message."""

    code = "invalid_parameters"

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors: dict[str, str] = dict(errors)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return "; ".join(self.errors.values())

    def __str__(self) -> str:
        return self.message


class _Invalid(Exception):
    """A single coercion problem, turned into a "name: message" entry by the caller."""


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class ParamSpec:
    """One strategy parameter: its type, default and allowed values."""

    name: str
    type: ParamType
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    label: str = ""
    help: str = ""

    def __post_init__(self) -> None:
        if self.type not in _TYPE_NAMES:
            raise TypeError(f"{self.name}: type must be int, float, bool or str")
        if self.choices is not None and not isinstance(self.choices, tuple):
            object.__setattr__(self, "choices", tuple(self.choices))
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " ").capitalize())
        # A spec whose own default is invalid is a programming error: fail at import time.
        try:
            self.coerce(self.default)
        except InvalidParameters as exc:
            raise ValueError(f"invalid default for {exc}") from None

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.type]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description for the API and forms."""
        return {
            "name": self.name,
            "type": self.type_name,
            "default": self.default,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "choices": list(self.choices) if self.choices is not None else None,
            "label": self.label,
            "help": self.help,
        }

    def coerce(self, value: Any) -> Any:
        """The value converted to this spec's type and checked; InvalidParameters if not."""
        try:
            converted = _CONVERTERS[self.type](value)
            self._check_allowed(converted)
        except _Invalid as exc:
            raise InvalidParameters({self.name: f"{self.name}: {exc}"}) from None
        return converted

    def _check_allowed(self, value: Any) -> None:
        if self.minimum is not None and value < self.minimum:
            raise _Invalid(f"must be at least {_fmt(self.minimum)} (got {_fmt(value)})")
        if self.maximum is not None and value > self.maximum:
            raise _Invalid(f"must be at most {_fmt(self.maximum)} (got {_fmt(value)})")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(_fmt(c) for c in self.choices)
            raise _Invalid(f"must be one of {allowed} (got {_fmt(value)})")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Invalid(f"must be an integer, not a boolean (got {value})")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise _Invalid(f"must be an integer (got {value!r})") from None
        if math.isfinite(number) and number.is_integer():
            return int(number)
        raise _Invalid(f"must be an integer (got {value!r})")
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isfinite(number) and number.is_integer():
            return int(number)
        raise _Invalid(f"must be an integer (got {value})")
    raise _Invalid(f"must be an integer (got {type(value).__name__})")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Invalid(f"must be a number, not a boolean (got {value})")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _Invalid(f"must be a number (got {value!r})") from None
    elif isinstance(value, numbers.Real):
        number = float(value)
    else:
        raise _Invalid(f"must be a number (got {type(value).__name__})")
    if not math.isfinite(number):
        raise _Invalid(f"must be a finite number (got {value})")
    return number


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _Invalid(f"must be true or false (got {value!r})")
    raise _Invalid(f"must be true or false (got {value!r})")


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    raise _Invalid(f"must be a string (got {type(value).__name__})")


_CONVERTERS = {int: _to_int, float: _to_float, bool: _to_bool, str: _to_str}


def _is_missing(spec: ParamSpec, value: Any) -> bool:
    if value is None:
        return True
    # An empty form field means "not given"; for a string parameter "" may be a real value.
    return spec.type is not str and isinstance(value, str) and not value.strip()


def validate_params(specs: Iterable[ParamSpec], raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Coerce and check `raw` against `specs`; return every parameter, defaults filled in.

    Raises InvalidParameters listing every unknown name, wrong type, out-of-range value and
    value not in `choices`.
    """
    specs = tuple(specs)
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise InvalidParameters({"params": "params: must be an object of name -> value"})
    known = {spec.name for spec in specs}
    errors: dict[str, str] = {}
    for name in raw:
        if name not in known:
            valid = ", ".join(spec.name for spec in specs) or "none"
            errors[str(name)] = f"{name}: unknown parameter (valid: {valid})"
    values: dict[str, Any] = {}
    for spec in specs:
        value = raw.get(spec.name)
        if _is_missing(spec, value):
            values[spec.name] = spec.default
            continue
        try:
            values[spec.name] = spec.coerce(value)
        except InvalidParameters as exc:
            errors.update(exc.errors)
    if errors:
        raise InvalidParameters(errors)
    return values
