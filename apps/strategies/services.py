"""Writes of strategies. Parameters are validated by the strategy library's own specs, so the
form, the API and the backtester accept and refuse exactly the same values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction

from apps.accounts.models import TradingAccount, User
from apps.core.errors import Conflict, ValidationFailed
from apps.marketdata.models import Instrument, Timeframe
from apps.strategies.domain.params import InvalidParameters
from apps.strategies.domain.registry import UnknownStrategy, validate_strategy_params
from apps.strategies.models import Strategy


def strategy_params_validate(*, kind: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Coerce and check parameters; errors are keyed ``params.<name>`` for the API and forms."""
    try:
        return validate_strategy_params(kind, params or {})
    except UnknownStrategy as exc:
        raise ValidationFailed(
            exc.message, code="unknown_strategy", fields={"kind": exc.message}
        ) from None
    except InvalidParameters as exc:
        raise ValidationFailed(
            f"Invalid parameters: {exc.message}",
            code="invalid_parameters",
            fields={f"params.{name}": message for name, message in exc.errors.items()},
        ) from None


EXECUTION_FIELDS = (
    "sizing_method",
    "sizing_params",
    "entry_order_type",
    "limit_offset_bps",
    "reprice_limit",
)


def strategy_execution_validate(
    *,
    sizing_method: str,
    sizing_params: Mapping[str, Any] | None,
    entry_order_type: str = "market",
    limit_offset_bps: Any = 0,
    reprice_limit: bool = False,
) -> dict[str, Any]:
    """How the strategy's signals become orders: the sizing method and its parameters (the
    risk library's specs) and the entry order type. Errors name the field."""
    from apps.risk.domain.sizing import SIZING_PARAM_SPECS, validate_sizing_params

    errors: dict[str, str] = {}
    clean_sizing: dict[str, Any] = {}
    if sizing_method not in SIZING_PARAM_SPECS:
        errors["sizing_method"] = f"Sizing method must be one of {', '.join(SIZING_PARAM_SPECS)}."
    else:
        try:
            clean_sizing = validate_sizing_params(sizing_method, sizing_params or {})
        except InvalidParameters as exc:
            errors.update({f"sizing_params.{k}": v for k, v in exc.errors.items()})
    if entry_order_type not in ("market", "limit"):
        errors["entry_order_type"] = "Entry order type must be market or limit."
    try:
        offset = Decimal(str(limit_offset_bps))
        if not offset.is_finite() or not (0 <= offset <= 1000):
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        errors["limit_offset_bps"] = "Limit offset is 0 to 1000 basis points."
        offset = Decimal("0")
    if errors:
        raise ValidationFailed(next(iter(errors.values())), fields=errors)
    return {
        "sizing_method": sizing_method,
        "sizing_params": clean_sizing,
        "entry_order_type": entry_order_type,
        "limit_offset_bps": offset,
        "reprice_limit": bool(reprice_limit),
    }


def _instruments(symbols: Iterable[str]) -> list[Instrument]:
    wanted = []
    for symbol in symbols:
        cleaned = str(symbol).strip().upper()
        if cleaned and cleaned not in wanted:
            wanted.append(cleaned)
    if not wanted:
        raise ValidationFailed(
            "Choose at least one symbol.", fields={"symbols": "Choose at least one symbol."}
        )
    found = {i.symbol: i for i in Instrument.objects.filter(symbol__in=wanted)}
    missing = [s for s in wanted if s not in found]
    if missing:
        message = f"Unknown symbol{'s' if len(missing) > 1 else ''}: {', '.join(missing)}."
        raise ValidationFailed(message, code="unknown_symbol", fields={"symbols": message})
    return [found[s] for s in wanted]


def _check_common(*, owner: User, account: TradingAccount, timeframe: str, mode: str) -> None:
    errors = {}
    if account.owner_id != owner.pk:
        errors["account"] = "No such account."
    if timeframe not in Timeframe.values:
        errors["timeframe"] = f"Timeframe must be one of {', '.join(Timeframe.values)}."
    if mode not in Strategy.Mode.values:
        errors["mode"] = f"Mode must be one of {', '.join(Strategy.Mode.values)}."
    if errors:
        raise ValidationFailed(next(iter(errors.values())), fields=errors)


def strategy_create(
    *,
    owner: User,
    account: TradingAccount,
    name: str,
    kind: str,
    params: Mapping[str, Any] | None,
    symbols: Iterable[str],
    timeframe: str = Timeframe.D1,
    mode: str = Strategy.Mode.OFF,
    description: str = "",
    sizing_method: str = "pct_equity",
    sizing_params: Mapping[str, Any] | None = None,
    entry_order_type: str = "market",
    limit_offset_bps: Any = 0,
    reprice_limit: bool = False,
) -> Strategy:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed(
            "A strategy needs a name.", fields={"name": "This field is required."}
        )
    _check_common(owner=owner, account=account, timeframe=timeframe, mode=mode)
    clean_params = strategy_params_validate(kind=kind, params=params)
    execution = strategy_execution_validate(
        sizing_method=sizing_method,
        sizing_params=sizing_params,
        entry_order_type=entry_order_type,
        limit_offset_bps=limit_offset_bps,
        reprice_limit=reprice_limit,
    )
    instruments = _instruments(symbols)
    try:
        with transaction.atomic():
            strategy = Strategy.objects.create(
                owner=owner,
                account=account,
                name=name,
                description=description,
                kind=kind,
                params=clean_params,
                timeframe=timeframe,
                mode=mode,
                **execution,
            )
            strategy.instruments.set(instruments)
    except IntegrityError:
        raise Conflict(
            f"You already have a strategy named {name!r}.",
            code="duplicate_name",
            fields={"name": "You already have a strategy with this name."},
        ) from None
    return strategy


def strategy_update(
    *,
    strategy: Strategy,
    name: str | None = None,
    kind: str | None = None,
    params: Mapping[str, Any] | None = None,
    symbols: Iterable[str] | None = None,
    timeframe: str | None = None,
    mode: str | None = None,
    description: str | None = None,
    account: TradingAccount | None = None,
    sizing_method: str | None = None,
    sizing_params: Mapping[str, Any] | None = None,
    entry_order_type: str | None = None,
    limit_offset_bps: Any = None,
    reprice_limit: bool | None = None,
) -> Strategy:
    """Change what is given; parameters are re-validated whenever kind or params change."""
    new_kind = kind if kind is not None else strategy.kind
    new_account = account if account is not None else strategy.account
    _check_common(
        owner=strategy.owner,
        account=new_account,
        timeframe=timeframe if timeframe is not None else strategy.timeframe,
        mode=mode if mode is not None else strategy.mode,
    )
    if kind is not None or params is not None:
        base = (
            params
            if params is not None
            else ({} if kind not in (None, strategy.kind) else strategy.params)
        )
        strategy.params = strategy_params_validate(kind=new_kind, params=base)
        strategy.kind = new_kind
    given = {
        "sizing_method": sizing_method,
        "sizing_params": sizing_params,
        "entry_order_type": entry_order_type,
        "limit_offset_bps": limit_offset_bps,
        "reprice_limit": reprice_limit,
    }
    if any(value is not None for value in given.values()):
        current = {name: getattr(strategy, name) for name in EXECUTION_FIELDS}
        if (
            sizing_method is not None
            and sizing_method != strategy.sizing_method
            and sizing_params is None
        ):
            current["sizing_params"] = {}  # another method starts from its own defaults
        merged = {**current, **{k: v for k, v in given.items() if v is not None}}
        for field, value in strategy_execution_validate(**merged).items():
            setattr(strategy, field, value)
    instruments = _instruments(symbols) if symbols is not None else None
    if name is not None:
        name = name.strip()
        if not name:
            raise ValidationFailed(
                "A strategy needs a name.", fields={"name": "This field is required."}
            )
        strategy.name = name
    for field, value in (("timeframe", timeframe), ("mode", mode), ("description", description)):
        if value is not None:
            setattr(strategy, field, value)
    strategy.account = new_account
    try:
        with transaction.atomic():
            strategy.save()
            if instruments is not None:
                strategy.instruments.set(instruments)
    except IntegrityError:
        raise Conflict(
            f"You already have a strategy named {strategy.name!r}.",
            code="duplicate_name",
            fields={"name": "You already have a strategy with this name."},
        ) from None
    return strategy


def strategy_delete(*, strategy: Strategy) -> None:
    strategy.delete()
