"""Every write of the risk app, and the risk side of the order path.

fetch -> compute -> persist: selectors build the portfolio and market snapshots, the pure
engine (``apps.risk.domain.engine``) decides, and these functions store rules, events and
trading-state changes and schedule notifications after commit.

- ``pre_trade_check`` runs inside ``order_submit``'s transaction with the account row locked,
  so two orders of one account are checked one after the other, each seeing the other's
  remainder as pending: two concurrent orders cannot both pass a limit only one fits under.
- ``risk_monitor_account`` re-evaluates the account-level rules (beat task, and after every
  price update of a held instrument), records warning/breach/critical events once per
  condition and day, moves the account to reducing/halted as the rule says, and closes
  positions whose stop loss or take profit was crossed.
- ``risk_escalate_due`` re-sends unacknowledged events one severity higher after the rule's
  delay, and moves the account one state further.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import TradingAccount, User
from apps.accounts.services import trading_date
from apps.core.errors import DomainError, NotFound, ValidationFailed
from apps.core.realtime import broadcast_on_commit
from apps.execution.domain.intents import OrderIntent
from apps.marketdata.models import Instrument
from apps.risk.domain.engine import evaluate_account, evaluate_order, protective_exits
from apps.risk.domain.portfolio import PortfolioRisk, portfolio_risk
from apps.risk.domain.rules import (
    max_position_value,
    validate_rule_params,
    validate_rule_type,
    validate_warning_level,
)
from apps.risk.domain.sizing import SizingResult, size_position
from apps.risk.domain.types import (
    CheckResult,
    Decision,
    OrderProposal,
    PortfolioSnapshot,
    RuleType,
    Severity,
    TradingState,
)
from apps.risk.models import RiskEvent, RiskRule, TradingStateChange
from apps.risk.selectors import (
    engine_limits,
    market_snapshot,
    needs_market_history,
    portfolio_snapshot,
    rules_for_account,
)
from apps.strategies.domain.params import InvalidParameters
from apps.strategies.models import Strategy

logger = logging.getLogger(__name__)

STATE_ORDER = (TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED)
# Risk event severity -> notification severity (critical goes through quiet hours).
NOTIFICATION_SEVERITY = {"warning": "warning", "breach": "error", "critical": "critical"}
SEVERITY_ORDER = (
    RiskEvent.Severity.WARNING,
    RiskEvent.Severity.BREACH,
    RiskEvent.Severity.CRITICAL,
)


class RiskRejected(DomainError):
    """The pre-trade check refused the order; carries the full decision for the caller."""

    status_code = 422

    def __init__(self, decision: Decision, *, symbol: str = "") -> None:
        failures = [c for c in decision.failures if c.action == "block"]
        code = failures[0].code if failures else "RISK_REJECTED"
        super().__init__(f"Order rejected by risk checks: {decision.message}", code=str(code))
        self.decision = decision
        self.symbol = symbol
        if code == "TRADING_HALTED":
            self.status_code = 409

    def as_dict(self) -> dict:
        body = super().as_dict()
        body["risk"] = self.decision.as_dict()
        return body


# --- rules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleInput:
    rule_type: str
    params: Mapping[str, Any]
    action: str = RiskRule.Action.BLOCK
    warning_level: Any = None
    strategy_id: int | None = None
    enabled: bool = True
    name: str = ""
    breach_state: str = RiskRule.BreachState.NONE
    escalate_after_minutes: int | None = None


def _clean_rule(*, owner: User, account: TradingAccount, data: RuleInput) -> dict[str, Any]:
    errors: dict[str, str] = {}
    if account.owner_id != owner.pk:
        errors["account"] = "No such account."
    try:
        rule_type = validate_rule_type(data.rule_type)
    except InvalidParameters as exc:
        rule_type = None
        errors["rule_type"] = next(iter(exc.errors.values()))
    params: dict[str, Any] = {}
    if rule_type is not None:
        try:
            params = validate_rule_params(rule_type, data.params or {})
        except InvalidParameters as exc:
            errors.update({f"params.{name}": message for name, message in exc.errors.items()})
    warning_level = None
    try:
        warning_level = validate_warning_level(data.warning_level)
    except InvalidParameters as exc:
        errors["warning_level"] = next(iter(exc.errors.values()))
    if data.action not in RiskRule.Action.values:
        errors["action"] = "Action must be block or warn."
    if data.breach_state not in RiskRule.BreachState.values:
        errors["breach_state"] = "Breach state must be none, reducing or halted."
    if data.escalate_after_minutes is not None and not (
        isinstance(data.escalate_after_minutes, int) and 1 <= data.escalate_after_minutes <= 10080
    ):
        errors["escalate_after_minutes"] = "Escalation delay must be 1 to 10080 minutes."
    strategy = None
    if data.strategy_id is not None:
        strategy = Strategy.objects.filter(pk=data.strategy_id, owner=owner).first()
        if strategy is None:
            errors["strategy"] = "No such strategy."
        elif strategy.account_id != account.pk:
            errors["strategy"] = "The strategy trades another account."
    if len(data.name or "") > 100:
        errors["name"] = "A name is at most 100 characters."
    if errors:
        raise ValidationFailed(next(iter(errors.values())), fields=errors)
    return {
        "rule_type": rule_type.value,
        "params": params,
        "action": data.action,
        "warning_level": Decimal(str(warning_level)) if warning_level is not None else None,
        "strategy": strategy,
        "enabled": bool(data.enabled),
        "name": (data.name or "").strip(),
        "breach_state": data.breach_state,
        "escalate_after_minutes": data.escalate_after_minutes,
    }


def risk_rule_create(*, owner: User, account: TradingAccount, data: RuleInput) -> RiskRule:
    fields = _clean_rule(owner=owner, account=account, data=data)
    return RiskRule.objects.create(owner=owner, account=account, **fields)


def risk_rule_update(*, rule: RiskRule, changes: Mapping[str, Any]) -> RiskRule:
    """Apply ``changes`` (any RuleInput field) and re-validate the whole rule."""
    current = RuleInput(
        rule_type=rule.rule_type,
        params=rule.params,
        action=rule.action,
        warning_level=rule.warning_level,
        strategy_id=rule.strategy_id,
        enabled=rule.enabled,
        name=rule.name,
        breach_state=rule.breach_state,
        escalate_after_minutes=rule.escalate_after_minutes,
    )
    values = {**current.__dict__, **dict(changes)}
    if (
        "rule_type" in changes
        and changes["rule_type"] != rule.rule_type
        and "params" not in changes
    ):
        values["params"] = {}  # another type starts from its own defaults
    fields = _clean_rule(owner=rule.owner, account=rule.account, data=RuleInput(**values))
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.save()
    return rule


def risk_rule_delete(*, rule: RiskRule) -> None:
    rule.delete()


@dataclass(frozen=True)
class BulkItemError:
    index: int
    detail: str
    errors: dict


def risk_rules_bulk(*, owner: User, operations: list[dict[str, Any]]) -> list[RiskRule | None]:
    """Create/update/enable/disable/delete many rules in one transaction: all or nothing.

    Each operation is ``{"op": "create", "account": id, ...RuleInput fields}``,
    ``{"op": "update", "id": id, ...changes}``, ``{"op": "enable"|"disable"|"delete", "id": id}``.
    When any item fails, nothing is saved and ``ValidationFailed`` lists every item's errors
    (``fields={"items": [{"index", "detail", "errors"}]}``).
    """
    if not operations:
        raise ValidationFailed("No operations given.", fields={"items": "At least one operation."})
    failures: list[BulkItemError] = []
    results: list[RiskRule | None] = []
    try:
        with transaction.atomic():
            for index, raw in enumerate(operations):
                try:
                    results.append(_bulk_one(owner=owner, raw=raw))
                except DomainError as exc:
                    failures.append(BulkItemError(index, exc.message, exc.fields))
                    results.append(None)
            if failures:
                raise _BulkFailed
    except _BulkFailed:
        raise ValidationFailed(
            f"{len(failures)} of {len(operations)} operations are invalid; nothing was saved.",
            code="bulk_invalid",
            fields={"items": [f.__dict__ for f in failures]},
        ) from None
    return results


class _BulkFailed(Exception):
    pass


def _owned_rule(owner: User, rule_id: Any) -> RiskRule:
    try:
        return RiskRule.objects.select_related("account").get(pk=int(rule_id), owner=owner)
    except (RiskRule.DoesNotExist, TypeError, ValueError):
        raise NotFound(f"No such rule {rule_id!r}.", fields={"id": "No such rule."}) from None


_RULE_FIELDS = set(RuleInput.__dataclass_fields__)


def _bulk_one(*, owner: User, raw: Mapping[str, Any]) -> RiskRule | None:
    if not isinstance(raw, Mapping):
        raise ValidationFailed("Each operation is an object.")
    op = raw.get("op")
    body = {k: v for k, v in raw.items() if k not in ("op", "id", "account")}
    unknown = set(body) - _RULE_FIELDS
    if unknown:
        raise ValidationFailed(
            f"Unknown field(s): {', '.join(sorted(unknown))}.",
            fields={name: "Unknown field." for name in unknown},
        )
    if op == "create":
        try:
            account = TradingAccount.objects.get(pk=int(raw.get("account")), owner=owner)
        except (TradingAccount.DoesNotExist, TypeError, ValueError):
            raise ValidationFailed(
                "No such account.", fields={"account": "No such account."}
            ) from None
        if "rule_type" not in body:
            raise ValidationFailed("rule_type is required.", fields={"rule_type": "Required."})
        return risk_rule_create(
            owner=owner, account=account, data=RuleInput(**{"params": {}, **body})
        )
    if op in ("update", "enable", "disable", "delete"):
        rule = _owned_rule(owner, raw.get("id"))
        if op == "delete":
            risk_rule_delete(rule=rule)
            return None
        changes = body if op == "update" else {"enabled": op == "enable"}
        return risk_rule_update(rule=rule, changes=changes)
    raise ValidationFailed(
        "op must be create, update, enable, disable or delete.", fields={"op": "Unknown operation."}
    )


# --- trading state ------------------------------------------------------------------------


def trading_state_set(
    *,
    account: TradingAccount,
    state: str,
    reason: str,
    rule: RiskRule | None = None,
    event: RiskEvent | None = None,
    changed_by: User | None = None,
    now: datetime | None = None,
) -> TradingAccount:
    """Move the account to active, reducing or halted, recording who or which rule did it."""
    if state not in TradingAccount.Status.values:
        raise ValidationFailed(f"Unknown trading state {state!r}.", fields={"state": "Unknown."})
    now = now or timezone.now()
    with transaction.atomic():
        locked = TradingAccount.objects.select_for_update().get(pk=account.pk)
        if locked.status == state:
            return locked
        TradingStateChange.objects.create(
            account=locked,
            from_state=locked.status,
            to_state=state,
            reason=reason[:255],
            rule=rule,
            event=event,
            changed_by=changed_by,
            at=now,
        )
        previous = locked.status
        locked.status = state
        locked.status_reason = "" if state == TradingAccount.Status.ACTIVE else reason[:255]
        locked.save(update_fields=["status", "status_reason", "updated_at"])
        broadcast_on_commit(
            locked.owner_id,
            "account.status",
            {"account": locked.pk, "status": state, "previous": previous, "reason": reason},
        )
        _notify(
            user=locked.owner,
            type="risk_breach" if state != "active" else "system_alert",
            severity={"halted": "critical", "reducing": "error", "active": "info"}[state],
            title=f"{locked.name}: trading {'resumed' if state == 'active' else state}",
            body=reason,
            link=reverse("risk:dashboard"),
            dedupe_key=f"state-{locked.pk}-{state}-{now.isoformat()}",
        )
    account.status, account.status_reason = locked.status, locked.status_reason
    return locked


def _escalate_state(current: str, target: str) -> bool:
    return STATE_ORDER.index(TradingState(target)) > STATE_ORDER.index(TradingState(current))


# --- the pre-trade check ------------------------------------------------------------------


def _proposal(
    *, intent: OrderIntent, instrument: Instrument, strategy_id: int | None, reduce_only: bool
) -> OrderProposal:
    price = intent.limit_price or intent.stop_price or instrument.last_price or Decimal("0")
    return OrderProposal(
        symbol=instrument.symbol,
        side=intent.side,
        quantity=float(intent.quantity),
        price=float(price),
        order_type=intent.order_type,
        strategy_id=strategy_id,
        reduce_only=reduce_only,
        stop_loss_price=float(intent.stop_loss_price) if intent.stop_loss_price else None,
        take_profit_price=float(intent.take_profit_price) if intent.take_profit_price else None,
    )


def pre_trade_check(
    *,
    account: TradingAccount,
    instrument: Instrument,
    intent: OrderIntent,
    strategy_id: int | None = None,
    protective: bool = False,
    now: datetime | None = None,
) -> Decision:
    """Evaluate one order against the account's state and rules (no writes).

    ``protective`` exits placed by the risk engine itself (stops, targets) are reducing by
    construction and are let through a halted account as if it were reducing, so a halt never
    keeps a losing position open past its stop.
    """
    now = now or timezone.now()
    rules = rules_for_account(account=account)
    portfolio = portfolio_snapshot(account=account, now=now, with_stop_outs=needs_stop_outs(rules))
    return pre_trade_decide(
        account=account,
        instrument=instrument,
        intent=intent,
        rules=rules,
        portfolio=portfolio,
        strategy_id=strategy_id,
        protective=protective,
        now=now,
    )


def needs_stop_outs(rules) -> bool:
    return any(rule.type is RuleType.COOLDOWN for rule in rules)


def pre_trade_decide(
    *,
    account: TradingAccount,
    instrument: Instrument,
    intent: OrderIntent,
    rules,
    portfolio: PortfolioSnapshot,
    strategy_id: int | None = None,
    protective: bool = False,
    now: datetime,
    market=market_snapshot,
) -> Decision:
    """``pre_trade_check`` on rules and a portfolio already read (a batch of signals keeps
    them in memory); ``market`` is ``market_snapshot`` or a memo of it."""
    if protective and portfolio.state == TradingState.HALTED:
        from dataclasses import replace

        portfolio = replace(portfolio, state=TradingState.REDUCING)
    symbols = {instrument.symbol, *(h.symbol for h in portfolio.holdings)}
    with_returns, with_atr = needs_market_history(rules)
    snapshot = market(
        symbols=symbols,
        now=now,
        with_returns=with_returns,
        with_atr=with_atr,
        atr_symbols=[instrument.symbol],
    )
    proposal = _proposal(
        intent=intent,
        instrument=instrument,
        strategy_id=strategy_id,
        reduce_only=intent.reduce_only or protective,
    )
    decision = evaluate_order(proposal, portfolio, snapshot, rules, now=now, limits=engine_limits())
    return _with_state_reason(decision, account)


def _with_state_reason(decision: Decision, account: TradingAccount) -> Decision:
    """Say why the account is halted or reducing in the trading-state refusal: the engine
    knows only the state, the trader needs the reason (and which account)."""
    reason = (account.status_reason or "").strip().rstrip(".")
    if not reason or all(c.passed or c.check != "trading_state" for c in decision.checks):
        return decision
    checks = []
    for check in decision.checks:
        if check.check == "trading_state" and not check.passed:
            if check.code == "TRADING_HALTED":
                message = f"Trading is halted on {account.name}: {reason}. No order may be placed."
            else:
                message = f"{check.message} ({account.name} is reducing only: {reason}.)"
            check = replace(check, message=message)
        checks.append(check)
    return replace(decision, checks=tuple(checks))


def decision_quantity(decision: Decision, lot_size: Decimal) -> Decimal:
    """The approved quantity as a Decimal on the lot grid (the engine works in float)."""
    steps = (Decimal(repr(decision.quantity)) / lot_size).to_integral_value(rounding=ROUND_DOWN)
    return steps * lot_size


def risk_order_test(
    *, account: TradingAccount, intent: OrderIntent, strategy_id: int | None = None
) -> Decision:
    """Evaluate a hypothetical order without placing it (the rule test endpoint)."""
    try:
        instrument = Instrument.objects.get(symbol=(intent.symbol or "").strip().upper())
    except Instrument.DoesNotExist:
        raise ValidationFailed(
            f"Unknown symbol {intent.symbol!r}.",
            code="unknown_symbol",
            fields={"symbol": "Unknown symbol."},
        ) from None
    return pre_trade_check(
        account=account, instrument=instrument, intent=intent, strategy_id=strategy_id
    )


def risk_rejection_record(*, account: TradingAccount, rejected: RiskRejected) -> RiskEvent:
    """Keep a rejected order's decision as an event (the order itself is never written)."""
    now = timezone.now()
    failures = [c for c in rejected.decision.failures if c.action == "block"]
    first = failures[0] if failures else None
    with transaction.atomic():
        event = RiskEvent.objects.create(
            account=account,
            rule_id=first.rule_id if first else None,
            source=RiskEvent.Source.PRE_TRADE,
            code=rejected.code,
            severity=RiskEvent.Severity.WARNING,
            symbol=rejected.symbol,
            value=first.value if first else None,
            limit=first.limit if first else None,
            message=rejected.message,
            context=rejected.decision.as_dict(),
            trading_date=trading_date(now),
            created_at=now,
            last_seen_at=now,
            last_notified_at=now,
        )
        _notify(
            user=account.owner,
            type="order_rejected",
            title=f"Order rejected: {rejected.symbol} ({rejected.code})",
            body=rejected.message,
            link=reverse("risk:dashboard"),
            dedupe_key=f"risk-reject-{event.pk}",
        )
    return event


# --- monitoring ---------------------------------------------------------------------------


def _severity(check: CheckResult) -> str | None:
    if check.severity == Severity.CRITICAL:
        return RiskEvent.Severity.CRITICAL
    if check.severity == Severity.BREACH:
        return RiskEvent.Severity.BREACH
    if check.severity == Severity.WARNING:
        return RiskEvent.Severity.WARNING
    return None


def _event_symbol(check: CheckResult) -> str:
    return getattr(check, "subject", None) or ""


def risk_event_raise(
    *,
    account: TradingAccount,
    rule: RiskRule | None,
    check: CheckResult,
    severity: str,
    now: datetime,
    source: str = RiskEvent.Source.MONITOR,
) -> tuple[RiskEvent, bool]:
    """Record a condition once per rule, subject, severity and trading day; later sightings
    only refresh ``last_seen_at`` (and the measured value). Returns ``(event, created)``."""
    day = trading_date(now)
    subject = _event_symbol(check)
    key = f"{account.pk}:{rule.pk if rule else check.code}:{subject}:{severity}:{day.isoformat()}"
    existing = RiskEvent.objects.filter(dedupe_key=key).first()
    if existing is not None:
        RiskEvent.objects.filter(pk=existing.pk).update(last_seen_at=now, value=check.value)
        return existing, False
    try:
        with transaction.atomic():
            event = RiskEvent.objects.create(
                account=account,
                rule=rule,
                source=source,
                code=str(check.code),
                severity=severity,
                symbol=subject,
                value=check.value,
                limit=check.limit,
                message=check.message,
                context=check.as_dict(),
                trading_date=day,
                dedupe_key=key,
                created_at=now,
                last_seen_at=now,
                last_notified_at=now,
            )
    except IntegrityError:  # another worker recorded it first
        return RiskEvent.objects.get(dedupe_key=key), False
    _notify_event(event)
    return event, True


def _notify_event(event: RiskEvent, *, escalated: bool = False) -> None:
    kind = "risk_warning" if event.severity == RiskEvent.Severity.WARNING else "risk_breach"
    prefix = "Escalated: " if escalated else ""
    _notify(
        user=event.account.owner,
        type=kind,
        severity=NOTIFICATION_SEVERITY[event.severity],
        title=f"{prefix}{event.account.name}: {event.code.replace('_', ' ').lower()}",
        body=event.message,
        link=reverse("risk:dashboard"),
        data={"event": event.pk, "account": event.account_id, "code": event.code},
        dedupe_key=f"risk-event-{event.pk}-{event.escalation_level}",
    )
    broadcast_on_commit(
        event.account.owner_id,
        "risk.event",
        {"id": event.pk, "severity": event.severity, "code": event.code, "message": event.message},
    )


def risk_monitor_account(
    *, account: TradingAccount, now: datetime | None = None
) -> list[RiskEvent]:
    """Re-evaluate the account-level rules on open (unrealised) PnL and act on what they find."""
    now = now or timezone.now()
    account.refresh_from_db()
    rules = {rule.pk: rule for rule in RiskRule.objects.filter(account=account, enabled=True)}
    engine_rules = rules_for_account(account=account)
    portfolio = portfolio_snapshot(account=account, now=now)
    symbols = [h.symbol for h in portfolio.holdings]
    market = market_snapshot(symbols=symbols, now=now)
    raised: list[RiskEvent] = []
    for check in evaluate_account(portfolio, market, engine_rules, now=now):
        severity = _severity(check)
        if severity is None:
            continue
        rule = rules.get(check.rule_id) if check.rule_id else None
        event, created = risk_event_raise(
            account=account, rule=rule, check=check, severity=severity, now=now
        )
        if created:
            raised.append(event)
        _apply_breach_state(account=account, rule=rule, event=event, now=now)
    _protective_exits(account=account, portfolio=portfolio, now=now)
    return raised


def _target_state(rule: RiskRule | None, event: RiskEvent) -> str | None:
    if event.severity == RiskEvent.Severity.CRITICAL:
        return TradingState.HALTED.value
    if rule is None or event.severity == RiskEvent.Severity.WARNING:
        return None
    if rule.rule_type == RuleType.MAX_DRAWDOWN and rule.action == RiskRule.Action.BLOCK:
        return TradingState.HALTED.value  # a drawdown breach halts until a person resumes
    if rule.breach_state != RiskRule.BreachState.NONE:
        return rule.breach_state
    return None


def _apply_breach_state(
    *, account: TradingAccount, rule: RiskRule | None, event: RiskEvent, now: datetime
) -> None:
    target = _target_state(rule, event)
    if target and _escalate_state(account.status, target):
        trading_state_set(
            account=account,
            state=target,
            reason=f"{event.code}: {event.message}",
            rule=rule,
            event=event,
            now=now,
        )


def _protective_exits(*, account: TradingAccount, portfolio, now: datetime) -> list:
    """Close positions whose stop loss or take profit the last price crossed (once each)."""
    from apps.execution.models import Order, Position
    from apps.execution.services import order_submit

    placed = []
    for exit_ in protective_exits(portfolio):
        position = (
            Position.objects.select_related("instrument")
            .filter(account=account, instrument__symbol=exit_.symbol)
            .first()
        )
        if position is None or position.quantity == 0 or position.opened_at is None:
            continue
        # One protective exit per position lifetime: the id names the position's opening.
        client_order_id = f"protect-{position.pk}-{int(position.opened_at.timestamp())}"
        if Order.objects.filter(account=account, client_order_id=client_order_id).exists():
            continue
        intent = OrderIntent(
            symbol=exit_.symbol,
            side=exit_.side,
            quantity=abs(position.quantity),
            client_order_id=client_order_id,
            reduce_only=True,
        )
        try:
            order = order_submit(
                account=account, intent=intent, source="risk", protective_kind=exit_.kind
            )
        except DomainError as exc:
            logger.warning("protective exit for %s not placed: %s", exit_.symbol, exc.message)
            continue
        placed.append(order)
        check = CheckResult(
            code="STOP_LOSS_HIT" if exit_.kind == "stop_loss" else "TAKE_PROFIT_HIT",
            passed=False,
            severity=Severity.WARNING if exit_.kind == "take_profit" else Severity.BREACH,
            message=(
                f"{exit_.symbol} last {exit_.last_price:g} crossed the "
                f"{exit_.kind.replace('_', ' ')} at {exit_.trigger_price:g}; "
                f"closing {abs(position.quantity).normalize()}."
            ),
            value=exit_.last_price,
            limit=exit_.trigger_price,
        )
        RiskEvent.objects.create(
            account=account,
            source=RiskEvent.Source.PROTECTIVE,
            code=check.code,
            severity=RiskEvent.Severity.WARNING
            if exit_.kind == "take_profit"
            else RiskEvent.Severity.BREACH,
            symbol=exit_.symbol,
            value=exit_.last_price,
            limit=exit_.trigger_price,
            message=check.message,
            context={"order": order.pk, **exit_.as_dict()},
            trading_date=trading_date(now),
            created_at=now,
            last_seen_at=now,
            last_notified_at=now,
        )
        _notify(
            user=account.owner,
            type="stop_loss_hit" if exit_.kind == "stop_loss" else "take_profit_hit",
            title=f"{exit_.symbol}: {exit_.kind.replace('_', ' ')} hit",
            body=check.message,
            link=reverse("execution:order_detail", args=[order.pk]),
            dedupe_key=f"protect-{order.pk}",
        )
    return placed


def risk_monitor_instrument(*, instrument_id: int, now: datetime | None = None) -> int:
    """The hook on a price update: re-check every account holding the instrument."""
    from apps.execution.models import Position

    accounts = TradingAccount.objects.filter(
        pk__in=Position.objects.filter(instrument_id=instrument_id)
        .exclude(quantity=0)
        .values("account_id")
    )
    count = 0
    for account in accounts:
        try:
            risk_monitor_account(account=account, now=now)
            count += 1
        except Exception:
            logger.exception("risk monitoring of account %s failed", account.pk)
    return count


def risk_monitor_all(*, now: datetime | None = None) -> int:
    count = 0
    for account in TradingAccount.objects.exclude(positions=None).distinct().iterator():
        try:
            risk_monitor_account(account=account, now=now)
            count += 1
        except Exception:
            logger.exception("risk monitoring of account %s failed", account.pk)
    return count


# --- escalation and acknowledgement -------------------------------------------------------


def risk_escalate_due(*, now: datetime | None = None) -> int:
    """Re-send every unacknowledged event whose rule's delay has passed, one severity higher
    (critical reaches every channel, quiet hours or not), and move the account one state
    further when the event is a breach. Safe to run twice: a step happens once per delay."""
    now = now or timezone.now()
    candidates = (
        RiskEvent.objects.filter(
            acknowledged_at__isnull=True,
            rule__escalate_after_minutes__isnull=False,
            source=RiskEvent.Source.MONITOR,
        )
        .exclude(severity=RiskEvent.Severity.CRITICAL, escalation_level__gte=2)
        .select_related("rule", "account", "account__owner")
    )
    stepped = 0
    for event in candidates:
        delay = timedelta(minutes=event.rule.escalate_after_minutes)
        if event.last_notified_at and event.last_notified_at + delay > now:
            continue
        with transaction.atomic():
            locked = RiskEvent.objects.select_for_update().get(pk=event.pk)
            if locked.acknowledged_at or (
                locked.last_notified_at and locked.last_notified_at + delay > now
            ):
                continue
            index = SEVERITY_ORDER.index(locked.severity)
            locked.severity = SEVERITY_ORDER[min(index + 1, len(SEVERITY_ORDER) - 1)]
            locked.escalation_level += 1
            locked.last_notified_at = now
            locked.save(update_fields=["severity", "escalation_level", "last_notified_at"])
            _notify_event(locked, escalated=True)
            account = locked.account
            if locked.severity in (RiskEvent.Severity.BREACH, RiskEvent.Severity.CRITICAL):
                current = STATE_ORDER.index(TradingState(account.status))
                target = STATE_ORDER[min(current + 1, len(STATE_ORDER) - 1)]
                moves_state = (
                    locked.severity == RiskEvent.Severity.CRITICAL
                    or event.rule.breach_state != "none"
                )
                if moves_state and _escalate_state(account.status, target.value):
                    trading_state_set(
                        account=account,
                        state=target.value,
                        reason=f"escalated: {locked.code} unacknowledged",
                        rule=event.rule,
                        event=locked,
                        now=now,
                    )
            stepped += 1
    return stepped


def risk_event_acknowledge(
    *, event: RiskEvent, user: User, now: datetime | None = None
) -> RiskEvent:
    if event.account.owner_id != user.pk:
        raise NotFound("No such event.")
    if event.acknowledged_at is not None:
        return event
    event.acknowledged_at = now or timezone.now()
    event.acknowledged_by = user
    event.save(update_fields=["acknowledged_at", "acknowledged_by"])
    broadcast_on_commit(user.pk, "risk.event", {"id": event.pk, "acknowledged": True})
    return event


def risk_events_acknowledge(
    *, user: User, event_ids: list[int], now: datetime | None = None
) -> list[RiskEvent]:
    """Acknowledge several of the user's events in one transaction. An id that is not one of
    the user's events refuses the whole request (``ids`` names them) and changes nothing."""
    wanted = list(dict.fromkeys(event_ids))
    now = now or timezone.now()
    with transaction.atomic():
        events = {
            event.pk: event
            for event in RiskEvent.objects.select_for_update(of=("self",))
            .select_related("account")
            .filter(pk__in=wanted, account__owner=user)
        }
        missing = [str(pk) for pk in wanted if pk not in events]
        if missing:
            raise ValidationFailed(
                f"No such event: {', '.join(missing)}.",
                fields={"ids": f"No such event: {', '.join(missing)}."},
            )
        return [risk_event_acknowledge(event=events[pk], user=user, now=now) for pk in wanted]


def account_resume_trading(
    *, account: TradingAccount, user: User, reason: str = ""
) -> TradingAccount:
    """A person puts a reducing or halted account back to active."""
    return trading_state_set(
        account=account,
        state=TradingState.ACTIVE.value,
        reason=reason or f"resumed by {user.get_username()}",
        changed_by=user,
    )


# --- sizing and portfolio risk ------------------------------------------------------------


def position_size(
    *,
    account: TradingAccount,
    symbol: str,
    method: str,
    params: Mapping[str, Any] | None,
    side: str = "buy",
    stop_price: float | None = None,
    price: float | None = None,
    strategy_id: int | None = None,
) -> SizingResult:
    """Size a position for the account with the library's methods, capped by buying power and
    the account's max-position rules, rounded down to the lot size."""
    from apps.accounts.selectors import account_valuation

    try:
        instrument = Instrument.objects.get(symbol=(symbol or "").strip().upper())
    except Instrument.DoesNotExist:
        raise ValidationFailed(
            f"Unknown symbol {symbol!r}.",
            code="unknown_symbol",
            fields={"symbol": "Unknown symbol."},
        ) from None
    if side not in ("buy", "sell"):
        raise ValidationFailed("Side must be buy or sell.", fields={"side": "Must be buy or sell."})
    reference = (
        price
        if price is not None
        else (float(instrument.last_price) if instrument.last_price else None)
    )
    if reference is None:
        raise ValidationFailed(
            f"No price for {instrument.symbol} yet; give one.",
            fields={"price": "Required: no market price."},
        )
    valuation = account_valuation(account=account)
    rules = rules_for_account(account=account)
    equity = float(valuation.equity)
    cap = max_position_value(rules, equity=equity, price=reference, strategy_id=strategy_id)
    held = next((p for p in valuation.positions if p.symbol == instrument.symbol), None)
    if cap is not None and held is not None:
        cap = max(cap - abs(float(held.market_value)), 0.0)
    market = market_snapshot(
        symbols=[instrument.symbol], now=timezone.now(), with_atr=method == "volatility"
    )
    atr = (
        market.instruments[instrument.symbol].atr
        if instrument.symbol in market.instruments
        else None
    )
    try:
        return size_position(
            method,
            equity=equity,
            cash=float(valuation.cash),
            price=reference,
            lot_size=float(instrument.lot_size),
            params=params,
            stop_price=stop_price,
            atr=atr,
            max_position_value=cap,
            side=side,
        )
    except InvalidParameters as exc:
        raise ValidationFailed(
            f"Invalid sizing input: {exc.message}",
            code="invalid_parameters",
            fields={_sizing_field(name): message for name, message in exc.errors.items()},
        ) from None


def _sizing_field(name: str) -> str:
    inputs = {"method", "price", "stop_price", "atr", "side", "equity", "cash", "lot_size"}
    return name if name in inputs else f"params.{name}"


def portfolio_risk_for_account(
    *, account: TradingAccount, now: datetime | None = None
) -> PortfolioRisk:
    now = now or timezone.now()
    portfolio = portfolio_snapshot(account=account, now=now)
    market = market_snapshot(
        symbols=[h.symbol for h in portfolio.holdings], now=now, with_returns=True
    )
    return portfolio_risk(portfolio, market)


def rule_status_for_account(
    *, account: TradingAccount, now: datetime | None = None
) -> tuple[CheckResult, ...]:
    """How close the account is to each rule right now (for the gauges)."""
    now = now or timezone.now()
    portfolio = portfolio_snapshot(account=account, now=now)
    market = market_snapshot(symbols=[h.symbol for h in portfolio.holdings], now=now)
    return evaluate_account(portfolio, market, rules_for_account(account=account), now=now)


@dataclass(frozen=True)
class AccountRiskOverview:
    """Everything the risk page and ``GET /api/v1/accounts/{id}/risk/`` show about one account:
    the portfolio's risk, how close each rule is to its limit, and the trading state with the
    change that set it."""

    account: TradingAccount
    as_of: datetime
    risk: PortfolioRisk
    checks: tuple[CheckResult, ...]
    rules: tuple[RiskRule, ...]
    last_state_change: TradingStateChange | None

    def as_dict(self) -> dict[str, Any]:
        change = self.last_state_change
        return {
            "account": self.account.pk,
            "as_of": self.as_of,
            "trading_state": {
                "state": self.account.status,
                "reason": self.account.status_reason,
                "changed_at": change.at if change else None,
                "changed_by": change.changed_by.get_username()
                if change and change.changed_by
                else None,
                "rule": change.rule_id if change else None,
                "rule_name": str(change.rule) if change and change.rule else None,
            },
            **self.risk.as_dict(),
            "checks": [check.as_dict() for check in self.checks],
        }


def account_risk_overview(
    *, account: TradingAccount, now: datetime | None = None
) -> AccountRiskOverview:
    """Portfolio risk and rule status from ONE portfolio and market snapshot (daily returns
    loaded once for correlation and VaR)."""
    now = now or timezone.now()
    account.refresh_from_db(fields=["status", "status_reason"])
    portfolio = portfolio_snapshot(account=account, now=now)
    engine_rules = rules_for_account(account=account)
    _, with_atr = needs_market_history(engine_rules)
    market = market_snapshot(
        symbols=[h.symbol for h in portfolio.holdings],
        now=now,
        with_returns=True,
        with_atr=with_atr,
    )
    return AccountRiskOverview(
        account=account,
        as_of=now,
        risk=portfolio_risk(portfolio, market),
        checks=evaluate_account(portfolio, market, engine_rules, now=now),
        rules=tuple(
            RiskRule.objects.filter(account=account).select_related("strategy").order_by("id")
        ),
        last_state_change=TradingStateChange.objects.filter(account=account)
        .select_related("changed_by", "rule")
        .first(),
    )


# --- notifications ------------------------------------------------------------------------


def _notify(**kwargs) -> None:
    """Hand a notification to the notification service (in the caller's transaction)."""
    from django.apps import apps as django_apps

    if not django_apps.is_installed("apps.notifications"):
        return
    from apps.notifications.services import notify

    user = kwargs.pop("user")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    notify(user=user, **kwargs)


__all__ = [
    "AccountRiskOverview",
    "RiskRejected",
    "RuleInput",
    "account_resume_trading",
    "account_risk_overview",
    "decision_quantity",
    "portfolio_risk_for_account",
    "position_size",
    "pre_trade_check",
    "risk_escalate_due",
    "risk_event_acknowledge",
    "risk_events_acknowledge",
    "risk_monitor_account",
    "risk_monitor_all",
    "risk_monitor_instrument",
    "risk_order_test",
    "risk_rejection_record",
    "risk_rule_create",
    "risk_rule_delete",
    "risk_rule_update",
    "risk_rules_bulk",
    "rule_status_for_account",
    "trading_state_set",
]
