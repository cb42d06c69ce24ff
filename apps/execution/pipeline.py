"""The signal path: a closed bar -> the strategies that watch it -> a stored Signal -> sizing ->
the pre-trade risk check (inside ``order_submit``) -> an order at the broker.

These are services (they own their writes); the Celery tasks in ``tasks.py`` call them with ids.

At most one order per signal, whatever is delivered twice or retried:
- a Signal is unique per (strategy, instrument, bar open time), so a bar seen twice finds it;
- its order carries ``client_order_id = "sig-<signal id>"``, unique per account under the
  account lock, so a retried execution cannot place a second order (it links the first);
- a signal that is no longer ``new`` is never executed again.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import TradingAccount
from apps.accounts.selectors import AccountValuation, account_valuation
from apps.core import sql
from apps.core.errors import Conflict, DomainError
from apps.execution.domain.intents import OrderIntent
from apps.execution.domain.matching import round_to_tick, to_decimal
from apps.execution.models import OPEN_STATUSES, Order, OrderSource, Position, Signal
from apps.marketdata.models import Bar, Instrument
from apps.marketdata.selectors import bars_frame
from apps.marketdata.services import TIMEFRAME_DELTA, BarIngested
from apps.risk.domain.rules import max_position_value
from apps.risk.domain.sizing import size_position
from apps.risk.domain.types import Rule, RuleType
from apps.risk.selectors import market_snapshot, rules_for_account
from apps.risk.services import RiskRejected
from apps.strategies.domain.base import BarSeries
from apps.strategies.domain.params import InvalidParameters
from apps.strategies.domain.registry import get_strategy, latest_signal
from apps.strategies.models import Strategy

logger = logging.getLogger(__name__)

# How much history a strategy sees on each bar: several times its warm-up, so smoothed
# indicators (RSI, MACD) have settled the way they have in a backtest over the same data.
HISTORY_FACTOR = 4
MIN_HISTORY = 200
ACTIVE_MODES = (Strategy.Mode.PAPER, Strategy.Mode.LIVE)


# --- from bars to strategies --------------------------------------------------------------


def strategies_watching(*, instrument_id: int, timeframe: str):
    return (
        Strategy.objects.filter(
            mode__in=ACTIVE_MODES, timeframe=timeframe, instruments=instrument_id
        )
        .select_related("account", "owner")
        .order_by("id")
    )


def bar_closed_process(*, instrument_id: int, timeframe: str, bar_ts: datetime) -> list[Signal]:
    """Run every strategy in paper or live mode that watches this instrument and timeframe,
    then execute their new signals together (``apps.execution.batch``: one transaction per
    account)."""
    from apps.execution.batch import signals_execute_batch

    signals = []
    instrument = Instrument.objects.get(pk=instrument_id)
    for strategy in strategies_watching(instrument_id=instrument_id, timeframe=timeframe):
        try:
            signal = strategy_evaluate_bar(
                strategy=strategy, instrument=instrument, bar_ts=bar_ts, execute=False
            )
        except Exception:
            logger.exception("strategy %s failed on %s %s", strategy.pk, instrument.symbol, bar_ts)
            continue
        if signal is not None:
            signals.append(signal)
    fresh = [s.pk for s in signals if s.status == Signal.Status.NEW]
    if fresh:
        signals_execute_batch(signal_ids=fresh)
        outcome = Signal.objects.in_bulk(fresh)
        signals = [outcome.get(s.pk, s) for s in signals]
    return signals


def strategy_evaluate_bar(
    *, strategy: Strategy, instrument: Instrument, bar_ts: datetime, execute: bool = True
) -> Signal | None:
    """Run the strategy's library code on the history up to and including the bar at
    ``bar_ts``; store the signal if its target changes on that bar, and (``execute``)
    execute it."""
    definition = get_strategy(strategy.kind)
    history = max(MIN_HISTORY, definition.warmup(strategy.params) * HISTORY_FACTOR)
    frame = bars_frame(
        instrument=instrument,
        timeframe=strategy.timeframe,
        end=bar_ts + TIMEFRAME_DELTA[strategy.timeframe],
        last=history,
    )
    if frame.empty or frame.index[-1].to_pydatetime() != bar_ts:
        return None  # the bar is not stored (yet): nothing to decide on
    event = latest_signal(strategy.kind, strategy.params, BarSeries.from_frame(frame))
    if event is None:
        return None
    signal = signal_record(
        strategy=strategy,
        instrument=instrument,
        bar_ts=bar_ts,
        side=event.side,
        target=event.target,
        strength=event.strength,
        reason=event.reason,
        price=float(frame["close"].iloc[-1]),
    )
    if execute and signal.status == Signal.Status.NEW:
        signal = signal_execute(signal_id=signal.pk)
    return signal


def signal_record(
    *,
    strategy: Strategy,
    instrument: Instrument,
    bar_ts: datetime,
    side: str,
    target: int,
    strength: float,
    reason: str,
    price: float | None = None,
) -> Signal:
    """Store a signal once per strategy, instrument and bar (a second call returns the first)."""
    try:
        with transaction.atomic():
            signal, created = Signal.objects.get_or_create(
                strategy=strategy,
                instrument=instrument,
                bar_ts=bar_ts,
                defaults={
                    "account": strategy.account,
                    "timeframe": strategy.timeframe,
                    "side": side,
                    "target": target,
                    "strength": strength,
                    "reason": reason,
                    "price": to_decimal(price) if price is not None else None,
                },
            )
    except IntegrityError:  # created concurrently by another worker
        return Signal.objects.get(strategy=strategy, instrument=instrument, bar_ts=bar_ts)
    if created:
        _notify_signal(signal)
    return signal


# --- from a signal to an order ------------------------------------------------------------


@dataclass(frozen=True)
class OrderPlan:
    side: str
    quantity: Decimal
    opening: bool  # adds exposure (entry or reversal); exits only close
    reason: str


def _signal_with_context(signal_id: int) -> tuple[Signal, Order | None, Decimal]:
    """The signal with its strategy, instrument and account, the order already placed for it
    (a retry) and the account's position in the instrument: one statement."""
    client_order_id = f"sig-{signal_id}"
    if not sql.is_postgresql():
        signal = Signal.objects.select_related("strategy", "instrument", "account").get(
            pk=signal_id
        )
        existing = Order.objects.filter(
            account_id=signal.account_id, client_order_id=client_order_id
        ).first()
        position = (
            Position.objects.filter(
                account_id=signal.account_id, instrument_id=signal.instrument_id
            )
            .values_list("quantity", flat=True)
            .first()
        )
        return signal, existing, position or Decimal("0")
    row = sql.fetchone(
        f"SELECT {sql.columns('g', Signal)}, {sql.columns('s', Strategy)}, "
        f"{sql.columns('i', Instrument)}, {sql.columns('a', TradingAccount)}, "
        f"(SELECT o.id FROM {sql.table(Order)} o "
        "WHERE o.account_id = g.account_id AND o.client_order_id = %s), "
        f"(SELECT p.quantity FROM {sql.table(Position)} p "
        "WHERE p.account_id = g.account_id AND p.instrument_id = g.instrument_id) "
        f"FROM {sql.table(Signal)} g JOIN {sql.table(Strategy)} s ON s.id = g.strategy_id "
        f"JOIN {sql.table(Instrument)} i ON i.id = g.instrument_id "
        f"JOIN {sql.table(TradingAccount)} a ON a.id = g.account_id WHERE g.id = %s",
        [client_order_id, signal_id],
    )
    if row is None:
        raise Signal.DoesNotExist(f"No signal with id {signal_id}.")
    *models, existing_id, quantity = row
    signal, strategy, instrument, account = sql.instances(
        models, Signal, Strategy, Instrument, TradingAccount
    )
    cache = signal._state.fields_cache
    cache["strategy"], cache["instrument"], cache["account"] = strategy, instrument, account
    existing = Order.objects.get(pk=existing_id) if existing_id is not None else None
    return signal, existing, quantity if quantity is not None else Decimal("0")


def _entry_size(
    *,
    strategy: Strategy,
    instrument: Instrument,
    side: str,
    price: float,
    valuation: AccountValuation | None = None,
    rules: list[Rule] | None = None,
    market=market_snapshot,
) -> Decimal:
    """The strategy's sizing method for a new position, capped by buying power and the
    max-position rules, on the lot grid. A batch passes the account's valuation and rules
    (kept in memory) and a memo of ``market_snapshot``."""
    account = strategy.account
    if valuation is None:
        valuation = account_valuation(account=account)
    if rules is None:
        rules = rules_for_account(account=account)
    equity = float(valuation.equity)
    stop_price = None
    atr = None
    stop_rules = [
        r for r in rules if r.type is RuleType.STOP_LOSS and r.strategy_id in (None, strategy.pk)
    ]
    needs_atr = strategy.sizing_method == "volatility" or any(
        r.params.get("mode") == "atr" for r in stop_rules
    )
    if needs_atr:
        info = market(symbols=[instrument.symbol], now=timezone.now(), with_atr=True)
        atr = info.instruments[instrument.symbol].atr
    if strategy.sizing_method == "pct_risk" and stop_rules:
        stop_price = _rule_stop(stop_rules[0].params, side=side, price=price, atr=atr)
    result = size_position(
        strategy.sizing_method,
        equity=equity,
        cash=float(valuation.cash),
        price=price,
        lot_size=float(instrument.lot_size),
        params=strategy.sizing_params or None,
        stop_price=stop_price,
        atr=atr,
        max_position_value=max_position_value(
            rules, equity=equity, price=price, strategy_id=strategy.pk
        ),
        side=side,
    )
    steps = (Decimal(repr(result.quantity)) / instrument.lot_size).to_integral_value(
        rounding=ROUND_DOWN
    )
    return steps * instrument.lot_size


def _rule_stop(params: dict, *, side: str, price: float, atr: float | None) -> float | None:
    mode, value = params.get("mode"), float(params.get("value", 0))
    direction = 1 if side == "buy" else -1
    if mode == "pct":
        return price * (1 - direction * value / 100)
    if mode == "atr" and atr:
        return price - direction * value * atr
    return None  # a money stop depends on the quantity: sizing by risk needs pct or atr


def plan_order(*, signal: Signal, position: Decimal, size: Decimal | None) -> OrderPlan | None:
    """What order moves the position to the signal's target: close, open or reverse.

    ``size`` is the entry size (None when the plan only closes). The strategy's target is the
    exposure it wants; the account's actual position is the starting point, so a position
    changed by hand or by a stop is respected.
    """
    target = signal.target
    if target == 0:
        if position == 0:
            return None
        return OrderPlan("sell" if position > 0 else "buy", abs(position), False, "close")
    wanted_side = "buy" if target > 0 else "sell"
    if (position > 0 and target > 0) or (position < 0 and target < 0):
        return None  # already positioned the way the strategy wants
    if size is None or size <= 0:
        return None
    return OrderPlan(wanted_side, abs(position) + size, True, "reverse" if position else "open")


def _limit_price(
    *, strategy: Strategy, instrument: Instrument, side: str, price: Decimal
) -> Decimal:
    offset = strategy.limit_offset_bps / Decimal(10000)
    raw = price * (1 - offset) if side == "buy" else price * (1 + offset)
    # Inside the market by the offset, rounded to the tick in the trader's favour.
    return round_to_tick(raw, instrument.tick_size, up=side == "sell")


def signal_size(*, signal: Signal, price, **known) -> Decimal | None:
    """The entry size for the signal's target at ``price`` (None for an exit, or without a
    price); ``known`` passes what a batch keeps in memory on to ``_entry_size``. Raises
    ``InvalidParameters`` when the strategy's sizing cannot size it."""
    if signal.target == 0 or not price:
        return None
    return _entry_size(
        strategy=signal.strategy,
        instrument=signal.instrument,
        side="buy" if signal.target > 0 else "sell",
        price=float(price),
        **known,
    )


def skip_reason(signal: Signal, size: Decimal | None) -> str:
    """Why a signal that needs no order needs none."""
    if signal.target and (size is None or size <= 0):
        return "the sizing method gives no whole lot at this price"
    return "already positioned as the signal wants" if signal.target else "no position to close"


def signal_intent(*, signal: Signal, plan: OrderPlan, price) -> OrderIntent:
    """The order that carries out ``plan``: a market order, or for a strategy that enters
    with limits, an entry priced inside the market by its offset."""
    strategy, instrument = signal.strategy, signal.instrument
    limit = None
    if plan.opening and strategy.entry_order_type == "limit" and price:
        limit = _limit_price(strategy=strategy, instrument=instrument, side=plan.side, price=price)
    return OrderIntent(
        symbol=instrument.symbol,
        side=plan.side,
        quantity=plan.quantity,
        order_type="limit" if limit is not None else "market",
        time_in_force="day",
        limit_price=limit,
        client_order_id=f"sig-{signal.pk}",
    )


def signal_execute(*, signal_id: int) -> Signal:
    """Size, check and place the order for a new signal; record what happened to it."""
    from apps.execution.services import order_submit

    signal, existing, position = _signal_with_context(signal_id)
    if signal.status != Signal.Status.NEW:
        return signal
    strategy, instrument = signal.strategy, signal.instrument
    if strategy.account_id == signal.account_id:
        strategy.account = signal.account  # loaded already: sizing reads it
    client_order_id = f"sig-{signal.pk}"
    if existing is not None:  # a retry after the order was placed
        return _signal_done(signal, Signal.Status.ORDERED, order=existing)

    price = instrument.last_price or signal.price
    try:
        size = signal_size(signal=signal, price=price)
    except InvalidParameters as exc:
        return _signal_done(
            signal,
            Signal.Status.REJECTED,
            code="SIZING_FAILED",
            reason=f"Sizing: {exc.message}",
        )
    plan = plan_order(signal=signal, position=position, size=size)
    if plan is None:
        return _signal_done(signal, Signal.Status.SKIPPED, reason=skip_reason(signal, size))

    intent = signal_intent(signal=signal, plan=plan, price=price)
    try:
        order = order_submit(
            account=signal.account,
            intent=intent,
            source=OrderSource.STRATEGY,
            strategy=strategy,
            signal=signal,
        )
    except RiskRejected as rejected:
        return _signal_done(
            signal,
            Signal.Status.REJECTED,
            code=rejected.code,
            reason=rejected.message,
            decision=rejected.decision.as_dict(),
        )
    except Conflict as exc:
        if exc.code == "duplicate_client_order_id":
            order = Order.objects.get(account=signal.account, client_order_id=client_order_id)
            return _signal_done(signal, Signal.Status.ORDERED, order=order)
        return _signal_done(signal, Signal.Status.REJECTED, code=exc.code, reason=exc.message)
    except DomainError as exc:
        return _signal_done(signal, Signal.Status.REJECTED, code=exc.code, reason=exc.message)
    if order.signal_id == signal.pk and signal.status == Signal.Status.ORDERED:
        return signal  # recorded with the order, in its transaction
    return _signal_done(signal, Signal.Status.ORDERED, order=order)


def _signal_done_fields(
    signal: Signal,
    status: str,
    *,
    order: Order | None = None,
    code: str = "",
    reason: str = "",
    decision: dict | None = None,
) -> dict:
    """Set the signal's outcome on the instance; returns the fields and values."""
    outcome = {
        "status": status,
        "reject_code": code[:48],
        "reject_reason": reason,
        "decision": decision if decision is not None else (order.risk_decision if order else None),
        "processed_at": timezone.now(),
    }
    for field, value in outcome.items():
        setattr(signal, field, value)
    return outcome


def _signal_done(signal: Signal, status: str, **outcome) -> Signal:
    """Record the signal's outcome (``_signal_done_fields``'s keywords) unless another worker
    recorded one first."""
    order = outcome.get("order")
    outcome = _signal_done_fields(signal, status, **outcome)
    # One conditional UPDATE (the database serialises two workers on the row): a signal that
    # is no longer new keeps its outcome, unless an order was placed for it, which always wins.
    rows = Signal.objects.filter(pk=signal.pk)
    if status != Signal.Status.ORDERED:
        rows = rows.filter(status=Signal.Status.NEW)
    link_order = order is not None and order.signal_id != signal.pk
    with transaction.atomic() if link_order else nullcontext():
        if not rows.update(**outcome):
            return Signal.objects.get(pk=signal.pk)
        if link_order:
            Order.objects.filter(pk=order.pk, signal__isnull=True).update(signal=signal.pk)
    return signal


def _notify_signal(signal: Signal) -> None:
    from apps.execution.services import _notify

    direction = {1: "long", 0: "flat", -1: "short"}[signal.target]
    _notify(
        user_id=signal.strategy.owner_id,
        type="strategy_signal",
        title=f"{signal.strategy.name}: {signal.instrument.symbol} -> {direction}",
        body=signal.reason,
        link=reverse("execution:orders"),
        data={"signal": signal.pk, "strategy": signal.strategy_id},
        dedupe_key=f"signal-{signal.pk}",
    )


# --- resting limit orders that follow the market ------------------------------------------


def limit_orders_reprice(*, instrument_id: int, now: datetime | None = None) -> int:
    """Re-price open strategy limit entries (with ``reprice_limit``) that the market has moved
    away from: a buy limit below the new price minus the offset moves up to it (and a sell
    mirrors). Returns how many orders were replaced."""
    from apps.execution.services import order_replace

    instrument = Instrument.objects.get(pk=instrument_id)
    if instrument.last_price is None:
        return 0
    replaced = 0
    orders = Order.objects.filter(
        instrument_id=instrument_id,
        status__in=OPEN_STATUSES,
        order_type="limit",
        source=OrderSource.STRATEGY,
        strategy__reprice_limit=True,
    ).select_related("strategy", "account", "instrument")
    for order in orders:
        target = _limit_price(
            strategy=order.strategy,
            instrument=instrument,
            side=order.side,
            price=instrument.last_price,
        )
        away = target > order.limit_price if order.side == "buy" else target < order.limit_price
        if not away:
            continue
        try:
            order_replace(
                order=order,
                limit_price=target,
                source=OrderSource.STRATEGY,
                reason="re-priced to follow the market",
            )
            replaced += 1
        except DomainError as exc:
            logger.info("re-pricing order %s skipped: %s", order.pk, exc.message)
    return replaced


# --- the listener that connects market data to this app -----------------------------------


def on_bar_ingested(event: BarIngested) -> None:
    """Called after a live bar is stored: queue the work for every bar it closed."""
    from apps.execution.tasks import process_closed_bar

    for timeframe, ts in event.closed:
        process_closed_bar.delay(
            event.instrument_id, timeframe, ts.isoformat(), timeframe == event.timeframe
        )


def closed_bar_handle(*, instrument_id: int, timeframe: str, bar_ts: datetime, base: bool) -> dict:
    """Everything a closed bar triggers: on the feed's base timeframe, paper matching, open
    trades' excursions and limit re-pricing; on every timeframe, the strategies watching it."""
    from apps.execution.services import paper_orders_match_bar, trades_track_excursions

    summary = {"fills": 0, "repriced": 0, "signals": 0}
    if base:
        bar = Bar.objects.filter(
            instrument_id=instrument_id, timeframe=timeframe, ts=bar_ts
        ).first()
        if bar is not None:
            summary["fills"] = paper_orders_match_bar(bar=bar)
            trades_track_excursions(instrument_id=instrument_id, high=bar.high, low=bar.low)
            summary["repriced"] = limit_orders_reprice(instrument_id=instrument_id)
    summary["signals"] = len(
        bar_closed_process(instrument_id=instrument_id, timeframe=timeframe, bar_ts=bar_ts)
    )
    return summary
