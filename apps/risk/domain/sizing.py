"""Position sizing: how many units to trade, with the arithmetic spelled out.

Every method ends the same way: the raw quantity is capped by buying power (cash / price for a
buy; equity / (price * short_margin) for a short sale) and by `max_position_value` (see
`rules.max_position_value`), then rounded DOWN to the lot size. `steps` explains each line
with its numbers; `capped_by` names the caps that bound the result.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apps.strategies.domain.params import InvalidParameters, ParamSpec, validate_params

__all__ = [
    "SIZING_METHODS",
    "SIZING_PARAM_SPECS",
    "SizingResult",
    "describe_sizing_methods",
    "kelly_fraction",
    "size_position",
    "validate_sizing_params",
]

SIZING_PARAM_SPECS: dict[str, tuple[ParamSpec, ...]] = {
    "fixed_quantity": (
        ParamSpec("quantity", float, 1.0, minimum=0.0, help="Units to trade (> 0)."),
    ),
    "fixed_money": (
        ParamSpec("amount", float, 10_000.0, minimum=0.0, help="Position value (> 0)."),
    ),
    "pct_equity": (
        ParamSpec(
            "pct",
            float,
            10.0,
            minimum=0.0,
            maximum=100.0,
            help="Position value as % of equity (0 < pct <= 100).",
        ),
    ),
    "pct_risk": (
        ParamSpec(
            "risk_pct",
            float,
            1.0,
            minimum=0.0,
            maximum=100.0,
            help="% of equity lost if the stop is hit (needs a stop price).",
        ),
    ),
    "volatility": (
        ParamSpec(
            "risk_pct",
            float,
            1.0,
            minimum=0.0,
            maximum=100.0,
            help="% of equity lost on a move of atr_multiple x ATR (needs the ATR).",
        ),
        ParamSpec(
            "atr_multiple",
            float,
            2.0,
            minimum=0.0,
            help="How many ATRs one unit may move against the position (> 0).",
        ),
    ),
    "kelly": (
        ParamSpec(
            "win_rate",
            float,
            0.5,
            minimum=0.0,
            maximum=1.0,
            help="Share of winning trades W (0..1).",
        ),
        ParamSpec(
            "payoff_ratio",
            float,
            1.5,
            minimum=0.0,
            help="Average win / average loss R (> 0).",
        ),
        ParamSpec(
            "fraction",
            float,
            0.5,
            minimum=0.0,
            maximum=1.0,
            help="Share of the full Kelly bet to take (0.5 = half Kelly; 0 < fraction <= 1).",
        ),
    ),
}
SIZING_METHODS = tuple(SIZING_PARAM_SPECS)

_LABELS = {
    "fixed_quantity": ("Fixed quantity", "Always the same number of units."),
    "fixed_money": ("Fixed amount", "Units worth a fixed amount of money."),
    "pct_equity": ("% of equity", "Units worth a share of equity."),
    "pct_risk": (
        "% risk to stop",
        "Units such that hitting the stop loses a share of equity.",
    ),
    "volatility": (
        "Volatility (ATR)",
        "Units such that a move of a few ATRs loses a share of equity.",
    ),
    "kelly": (
        "Kelly",
        "A fraction of the Kelly bet f* = W - (1 - W) / R of equity.",
    ),
}

_STRICTLY_POSITIVE = {
    "fixed_quantity": ("quantity",),
    "fixed_money": ("amount",),
    "pct_equity": ("pct",),
    "pct_risk": ("risk_pct",),
    "volatility": ("risk_pct", "atr_multiple"),
    "kelly": ("payoff_ratio", "fraction"),
}


@dataclass(frozen=True)
class SizingResult:
    quantity: float  # >= 0, on the lot grid
    method: str
    notional: float  # quantity * price
    risk_amount: float | None  # money lost at the stop (or atr_multiple x ATR); None if unknown
    steps: tuple[str, ...]
    capped_by: tuple[str, ...]  # "buying_power", "max_position_value"

    def as_dict(self) -> dict[str, Any]:
        return {
            "quantity": self.quantity,
            "method": self.method,
            "notional": self.notional,
            "risk_amount": self.risk_amount,
            "steps": list(self.steps),
            "capped_by": list(self.capped_by),
        }


def _m(value: float) -> str:
    return f"{value:,.2f}"


def _n(value: float) -> str:
    return f"{value:,.6g}"


def _floor_to_lot(quantity: float, lot: float) -> float:
    units = math.floor(quantity / lot + 1e-9)
    return round(max(units, 0) * lot, 12)


def validate_sizing_params(method: str, raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every parameter of `method`, coerced, checked and completed with defaults; raises
    InvalidParameters naming each bad parameter (or ``method`` when it is unknown)."""
    if method not in SIZING_PARAM_SPECS:
        raise InvalidParameters(
            {
                "method": f"method: unknown sizing method {method!r} "
                f"(valid: {', '.join(SIZING_METHODS)})"
            }
        )
    params = validate_params(SIZING_PARAM_SPECS[method], raw)
    errors = {
        name: f"{name}: must be greater than 0 (got {params[name]:g})"
        for name in _STRICTLY_POSITIVE[method]
        if params[name] <= 0
    }
    if errors:
        raise InvalidParameters(errors)
    return params


def describe_sizing_methods() -> list[dict[str, Any]]:
    """JSON-able descriptions of every sizing method, for forms and the API."""
    return [
        {
            "method": method,
            "label": _LABELS[method][0],
            "description": _LABELS[method][1],
            "params": [spec.to_dict() for spec in specs],
            "defaults": {spec.name: spec.default for spec in specs},
            "needs_stop_price": method == "pct_risk",
            "needs_atr": method == "volatility",
        }
        for method, specs in SIZING_PARAM_SPECS.items()
    ]


def kelly_fraction(win_rate: float, payoff_ratio: float) -> float:
    """The Kelly bet f* = W - (1 - W) / R, clipped at 0 (no edge, no bet)."""
    return max(win_rate - (1.0 - win_rate) / payoff_ratio, 0.0)


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_inputs(
    method: str,
    *,
    equity: Any,
    cash: Any,
    price: Any,
    lot_size: Any,
    stop_price: Any,
    atr: Any,
    max_position_value: Any,
    side: Any,
    short_margin: Any,
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if side not in ("buy", "sell"):
        errors["side"] = f"side: must be buy or sell (got {side!r})"
    if not (_real(price) and price > 0):
        errors["price"] = f"price: must be a number greater than 0 (got {price!r})"
    if not (_real(lot_size) and lot_size > 0):
        errors["lot_size"] = f"lot_size: must be a number greater than 0 (got {lot_size!r})"
    if not _real(equity):
        errors["equity"] = f"equity: must be a number (got {equity!r})"
    elif equity <= 0 and method in ("pct_equity", "pct_risk", "volatility", "kelly"):
        errors["equity"] = f"equity: must be greater than 0 for {method} (got {equity:g})"
    if not _real(cash):
        errors["cash"] = f"cash: must be a number (got {cash!r})"
    if max_position_value is not None and not (
        _real(max_position_value) and max_position_value >= 0
    ):
        errors["max_position_value"] = (
            f"max_position_value: must be a number of at least 0 (got {max_position_value!r})"
        )
    if not (_real(short_margin) and short_margin > 0):
        errors["short_margin"] = f"short_margin: must be greater than 0 (got {short_margin!r})"
    if stop_price is None:
        if method == "pct_risk":
            errors["stop_price"] = "stop_price: required for pct_risk sizing"
    else:
        if not (_real(stop_price) and stop_price > 0):
            errors["stop_price"] = (
                f"stop_price: must be a number greater than 0 (got {stop_price!r})"
            )
        elif "price" not in errors:
            if stop_price == price:
                errors["stop_price"] = f"stop_price: must differ from the price {price:g}"
            elif side == "buy" and stop_price > price:
                errors["stop_price"] = (
                    f"stop_price: must be below the price {price:g} for a buy (got {stop_price:g})"
                )
            elif side == "sell" and stop_price < price:
                errors["stop_price"] = (
                    f"stop_price: must be above the price {price:g} for a sell (got {stop_price:g})"
                )
    if method == "volatility" and not (_real(atr) and atr > 0):
        errors["atr"] = (
            f"atr: required for volatility sizing, a number greater than 0 (got {atr!r})"
        )
    return errors


def size_position(
    method: str,
    *,
    equity: float,
    cash: float,
    price: float,
    lot_size: float,
    params: Mapping[str, Any] | None,
    stop_price: float | None = None,
    atr: float | None = None,
    max_position_value: float | None = None,
    side: str = "buy",
    short_margin: float = 1.0,
) -> SizingResult:
    """The quantity `method` gives, capped and rounded down to `lot_size`.

    Methods (parameters in `SIZING_PARAM_SPECS`):
    - fixed_quantity: quantity.
    - fixed_money: amount / price.
    - pct_equity: equity * pct / 100 / price.
    - pct_risk: equity * risk_pct / 100 / |price - stop_price|.
    - volatility: equity * risk_pct / 100 / (atr_multiple * atr).
    - kelly: f* = W - (1 - W) / R clipped at 0; equity * f* * fraction / price.

    Raises InvalidParameters naming each bad parameter or input (price <= 0, a stop equal to
    or on the wrong side of the price, a missing ATR, ...).
    """
    errors: dict[str, str] = {}
    try:
        values = validate_sizing_params(method, params)
    except InvalidParameters as exc:
        errors.update(exc.errors)
        values = {}
    errors.update(
        _check_inputs(
            method,
            equity=equity,
            cash=cash,
            price=price,
            lot_size=lot_size,
            stop_price=stop_price,
            atr=atr,
            max_position_value=max_position_value,
            side=side,
            short_margin=short_margin,
        )
    )
    if errors:
        raise InvalidParameters(errors)

    steps: list[str] = []
    risk_per_unit: float | None = None
    if stop_price is not None and stop_price != price:
        risk_per_unit = abs(price - stop_price)

    if method == "fixed_quantity":
        raw = float(values["quantity"])
        steps.append(f"Fixed quantity: {_n(raw)}")
    elif method == "fixed_money":
        amount = values["amount"]
        raw = amount / price
        steps.append(f"Quantity = amount {_m(amount)} / price {_m(price)} = {_n(raw)}")
    elif method == "pct_equity":
        pct = values["pct"]
        budget = equity * pct / 100.0
        raw = budget / price
        steps.append(f"Position value = equity {_m(equity)} x {pct:g}% = {_m(budget)}")
        steps.append(f"Quantity = {_m(budget)} / price {_m(price)} = {_n(raw)}")
    elif method == "pct_risk":
        assert stop_price is not None and risk_per_unit is not None
        risk_pct = values["risk_pct"]
        budget = equity * risk_pct / 100.0
        raw = budget / risk_per_unit
        steps.append(f"Risk budget = equity {_m(equity)} x {risk_pct:g}% = {_m(budget)}")
        steps.append(
            f"Stop distance = |price {_m(price)} - stop {_m(stop_price)}| = {_n(risk_per_unit)}"
        )
        steps.append(f"Quantity = {_m(budget)} / {_n(risk_per_unit)} = {_n(raw)}")
    elif method == "volatility":
        assert atr is not None
        risk_pct = values["risk_pct"]
        multiple = values["atr_multiple"]
        budget = equity * risk_pct / 100.0
        risk_per_unit = multiple * atr
        raw = budget / risk_per_unit
        steps.append(f"Risk budget = equity {_m(equity)} x {risk_pct:g}% = {_m(budget)}")
        steps.append(f"Risk per unit = {multiple:g} x ATR {_n(atr)} = {_n(risk_per_unit)}")
        steps.append(f"Quantity = {_m(budget)} / {_n(risk_per_unit)} = {_n(raw)}")
    else:  # kelly
        win_rate, payoff, fraction = values["win_rate"], values["payoff_ratio"], values["fraction"]
        full = win_rate - (1.0 - win_rate) / payoff
        kelly = max(full, 0.0)
        steps.append(
            f"Kelly f* = W - (1 - W) / R = {win_rate:g} - {1 - win_rate:g} / {payoff:g} "
            f"= {full:.6g}" + (" -> 0 (no edge)" if full <= 0 else "")
        )
        share = kelly * fraction
        budget = equity * share
        raw = budget / price
        steps.append(f"Bet = f* x fraction {fraction:g} = {share:.6g} of equity")
        steps.append(f"Position value = equity {_m(equity)} x {share:.6g} = {_m(budget)}")
        steps.append(f"Quantity = {_m(budget)} / price {_m(price)} = {_n(raw)}")

    quantity = raw
    capped_by: list[str] = []
    if side == "buy":
        power = max(cash, 0.0) / price
        power_text = f"cash {_m(cash)} / price {_m(price)} = {_n(power)}"
    else:
        power = max(equity, 0.0) / (price * short_margin)
        power_text = (
            f"equity {_m(equity)} / (price {_m(price)} x margin {short_margin:g}) = {_n(power)}"
        )
    if power < quantity:
        quantity = power
        capped_by.append("buying_power")
        steps.append(f"Capped by buying power: {power_text}")
    else:
        steps.append(f"Within buying power: {power_text}")
    if max_position_value is not None:
        cap = max_position_value / price
        cap_text = f"{_m(max_position_value)} / price {_m(price)} = {_n(cap)}"
        if cap < quantity:
            quantity = cap
            capped_by.append("max_position_value")
            steps.append(f"Capped by the max position value: {cap_text}")
        else:
            steps.append(f"Within the max position value: {cap_text}")
    final = _floor_to_lot(quantity, lot_size)
    steps.append(f"Rounded down to the lot size {_n(lot_size)}: {_n(final)}")
    risk_amount = final * risk_per_unit if risk_per_unit is not None else None
    if risk_amount is not None:
        steps.append(f"Risk = {_n(final)} x {_n(risk_per_unit)} = {_m(risk_amount)}")
    return SizingResult(
        quantity=final,
        method=method,
        notional=final * price,
        risk_amount=risk_amount,
        steps=tuple(steps),
        capped_by=tuple(capped_by),
    )
