"""Signals in batches: many signals of one paper account executed in one transaction.

``pipeline.signal_execute`` takes one signal through sizing, the pre-trade check, the order,
the paper fill, the position, the cash and the journal in two transactions and some thirty
statements. A busy account's signals queue up faster than that; ``signals_execute_batch``
takes them together, in id order, per account:

1. lock the account, then its new signals, positions and open journal entries (one
   statement each), read the rules and the orders the risk engine counts;
2. for each signal, in memory: size it, plan it, check it (the same pure engine, on a
   portfolio snapshot built from the batch's own positions and cash), build the order,
   fill it at the paper broker, and apply the fill with the very services the single path
   uses, through a ``BatchStore`` (``apps.execution.store``) that keeps the positions and
   trades in memory and holds every write back;
3. write everything in one statement per table, hand the notifications over together,
   commit once.

Whatever the fast path does not cover is left to the single path, which then runs the
signal and every later one of the account in this batch, in order, after the batch commits:
a signal whose order was already placed (a retry), a limit entry (it rests), an order the
risk engine rejects or reduces to nothing, an ack that is not a full fill (volume cap), a
sizing error, an account that is not a paper account. An error anywhere rolls the batch back
and the single path takes all its signals: a crash, a timeout or a retry loses nothing and
duplicates nothing (each signal's order carries ``client_order_id = "sig-<signal id>"``).

The batch decides on the prices and rows as of its start (it holds the account's lock; a
last price that moves meanwhile is seen by the next batch), which is what one signal sees in
the single path too, only over a few more milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import TradingAccount
from apps.accounts.selectors import valuation_of
from apps.core import sql
from apps.execution.brokers.paper import PaperBroker
from apps.execution.domain.intents import InstrumentSpec, intent_errors
from apps.execution.models import Order, OrderSource, Position, Signal, Trade
from apps.execution.store import BatchStore
from apps.marketdata.models import Instrument
from apps.marketdata.selectors import latest_bar_any
from apps.risk.selectors import (
    RATE_WINDOW,
    STOP_OUT_WINDOW,
    market_snapshot,
    order_rows,
    portfolio_from,
    rules_for_account,
)
from apps.risk.services import decision_quantity, needs_stop_outs, pre_trade_decide
from apps.strategies.domain.params import InvalidParameters
from apps.strategies.models import Strategy

logger = logging.getLogger(__name__)

BATCH_SIZE = 100  # signals per transaction


def signals_execute_batch(*, signal_ids: Sequence[int]) -> list[int]:
    """Execute those of ``signal_ids`` that are still new, per account in id order; returns
    the ids this call processed. On SQLite (the embedded default) one at a time."""
    from apps.execution.pipeline import signal_execute

    ids = sorted(set(signal_ids))
    if not ids:
        return []
    if not sql.is_postgresql():
        new = list(
            Signal.objects.filter(pk__in=ids, status=Signal.Status.NEW).values_list("pk", flat=True)
        )
        for signal_id in new:
            signal_execute(signal_id=signal_id)
        return new
    rows = sql.fetchall(
        f"SELECT id, account_id FROM {sql.table(Signal)} WHERE id = ANY(%s) AND status = %s "
        "ORDER BY id",
        [ids, Signal.Status.NEW],
    )
    by_account: dict[int, list[int]] = {}
    for signal_id, account_id in rows:
        by_account.setdefault(account_id, []).append(signal_id)
    processed: list[int] = []
    failure: Exception | None = None
    for account_id, account_ids in by_account.items():
        for start in range(0, len(account_ids), BATCH_SIZE):
            chunk = account_ids[start : start + BATCH_SIZE]
            try:
                with transaction.atomic():
                    done, rest = _account_batch(account_id, chunk)
            except Exception:
                logger.exception("signal batch of account %s failed; one at a time", account_id)
                done, rest = [], chunk
            processed += done
            for signal_id in rest:
                try:
                    signal_execute(signal_id=signal_id)
                    processed.append(signal_id)
                except Exception as exc:  # the others still run; the task reports the first
                    logger.exception("signal %s failed", signal_id)
                    failure = failure or exc
    if failure is not None:
        raise failure
    return processed


def pending_signals(*, signal_id: int, limit: int = BATCH_SIZE) -> list[int]:
    """The new signals of ``signal_id``'s account, in id order: ``signal_id`` itself when it
    is still new, and the oldest others up to ``limit``: what a worker takes together. A
    signal that an earlier batch took still brings along what its account has queued
    since."""
    if not sql.is_postgresql():
        account_id = Signal.objects.filter(pk=signal_id).values_list("account_id", flat=True)
        new = Signal.objects.filter(account_id__in=account_id, status=Signal.Status.NEW)
        ids = list(new.exclude(pk=signal_id).order_by("pk").values_list("pk", flat=True)[:limit])
        if new.filter(pk=signal_id).exists():
            ids = [*ids[: limit - 1], signal_id]
        return sorted(ids)
    # The one asked for first (when still new), then the oldest others.
    rows = sql.fetchall(
        f"SELECT g.id FROM {sql.table(Signal)} g WHERE g.account_id = "
        f"(SELECT s.account_id FROM {sql.table(Signal)} s WHERE s.id = %s) "
        "AND g.status = %s ORDER BY g.id = %s DESC, g.id LIMIT %s",
        [signal_id, Signal.Status.NEW, signal_id, limit],
    )
    return sorted(pk for (pk,) in rows)


# --- one account's batch ------------------------------------------------------------------


class _Batch:
    """What one account's batch reads once and keeps up to date in memory."""

    def __init__(self, account: TradingAccount, now: datetime) -> None:
        self.account = account
        self.now = now
        self.rules = rules_for_account(account=account)
        self.with_stop_outs = needs_stop_outs(self.rules)
        self.recent, self.order_rows = order_rows(
            account.pk,
            recent_since=now - RATE_WINDOW,
            stop_outs_since=now - STOP_OUT_WINDOW if self.with_stop_outs else None,
        )
        positions = _positions_locked(account)
        self.store = BatchStore(
            positions=positions,
            open_trades=_open_trades_locked(account, positions),
        )
        self._markets: dict[tuple, object] = {}
        self._bars: dict[int, object] = {}

    def market(self, *, symbols, now, with_returns=False, with_atr=False, atr_symbols=None):
        """``market_snapshot``, once per distinct question in the batch."""
        key = (
            frozenset(symbols),
            with_returns,
            with_atr,
            None if atr_symbols is None else frozenset(atr_symbols),
        )
        if key not in self._markets:
            self._markets[key] = market_snapshot(
                symbols=symbols,
                now=now,
                with_returns=with_returns,
                with_atr=with_atr,
                atr_symbols=atr_symbols,
            )
        return self._markets[key]

    def bar(self, instrument: Instrument):
        if instrument.pk not in self._bars:
            self._bars[instrument.pk] = latest_bar_any(instrument=instrument)
        return self._bars[instrument.pk]

    def positions_by_symbol(self) -> list[Position]:
        return sorted(self.store.positions.values(), key=lambda p: p.instrument.symbol)

    def holdings(self) -> list[tuple]:
        """The non-flat positions as ``risk.selectors._holding_rows`` gives them."""
        rows = []
        for position in self.positions_by_symbol():
            if position.quantity == 0:
                continue
            instrument = position.instrument
            rows.append(
                (
                    instrument.symbol,
                    instrument.sector,
                    float(position.quantity),
                    float(position.average_price),
                    _float(instrument.last_price),
                    _float(position.stop_loss_price),
                    _float(position.take_profit_price),
                )
            )
        return rows


def _account_batch(account_id: int, signal_ids: list[int]) -> tuple[list[int], list[int]]:
    """In the caller's transaction: execute the account's signals until one needs the single
    path. Returns (processed here, left for the single path, in order)."""
    account = sql.first(
        TradingAccount, "t.id = %s", [account_id], for_update=True, fallback=lambda: None
    )
    if account is None or account.broker != TradingAccount.Broker.PAPER:
        return [], signal_ids
    signals = _signals_locked(account, signal_ids)
    if not signals:
        return [], []
    batch = _Batch(account, timezone.now())
    done: list[int] = []
    for index, (signal, has_order) in enumerate(signals):
        if has_order or not _execute_one(batch, signal):
            rest = [s.pk for s, _ in signals[index:]]
            break
        done.append(signal.pk)
    else:
        rest = []
    batch.store.flush()
    return done, rest


def _execute_one(batch: _Batch, signal: Signal) -> bool:
    """Execute one signal into the batch's store; False (nothing changed) when it needs the
    single path."""
    from apps.execution.pipeline import (
        _signal_done_fields,
        plan_order,
        signal_intent,
        signal_size,
        skip_reason,
    )
    from apps.execution.services import (
        SIGNAL_OUTCOME_FIELDS,
        _ack_apply_locked,
        _order_build,
        _order_created,
        _order_writes_batched,
    )

    account, store, now = batch.account, batch.store, batch.now
    strategy, instrument = signal.strategy, signal.instrument
    strategy.account = account
    position = store.positions.get(instrument.pk)
    held = position.quantity if position is not None else 0
    try:
        size = signal_size(
            signal=signal,
            price=instrument.last_price or signal.price,
            valuation=valuation_of(account=account, positions=batch.positions_by_symbol()),
            rules=batch.rules,
            market=batch.market,
        )
    except InvalidParameters:
        return False
    plan = plan_order(signal=signal, position=held, size=size)
    if plan is None:
        _signal_done_fields(signal, Signal.Status.SKIPPED, reason=skip_reason(signal, size))
        store.update(signal, SIGNAL_OUTCOME_FIELDS)
        return True
    intent = signal_intent(signal=signal, plan=plan, price=instrument.last_price)
    if intent.order_type != "market" or instrument.last_price is None:
        return False  # a limit entry rests: the single path places it
    spec = InstrumentSpec(
        instrument.symbol, instrument.tradable, instrument.lot_size, instrument.tick_size
    )
    if intent_errors(intent, spec):
        return False
    portfolio = portfolio_from(
        account=account,
        holdings=batch.holdings(),
        recent_submissions=batch.recent,
        orders=batch.order_rows,
        with_stop_outs=batch.with_stop_outs,
    )
    decision = pre_trade_decide(
        account=account,
        instrument=instrument,
        intent=intent,
        rules=batch.rules,
        portfolio=portfolio,
        strategy_id=strategy.pk,
        now=now,
        market=batch.market,
    )
    if not decision.approved:
        return False
    order = _order_build(
        account=account,
        instrument=instrument,
        intent=intent,
        source=OrderSource.STRATEGY,
        strategy=strategy,
        protective_kind="",
        signal=signal,
        decision=decision,
        quantity=decision_quantity(decision, instrument.lot_size),
        client_order_id=intent.client_order_id,
        now=now,
    )
    store.writes.assign_pk(order)  # the paper fill's id names the order
    ack = PaperBroker(account).submit_at_bar(order, batch.bar(instrument))
    filled = sum((fill.quantity for fill in ack.fills), start=0)
    if not ack.accepted or ack.cancel_rest or filled != order.quantity:
        return False  # a partial fill or a refusal: the single path books it as it comes
    store.insert(order)
    _order_created(order, intent=intent, source=OrderSource.STRATEGY, now=now, store=store)
    with _order_writes_batched(order, store):
        _ack_apply_locked(order, ack, store)
    batch.recent += 1
    return True


# --- the reads, each one statement under the account's lock --------------------------------


def _signals_locked(account: TradingAccount, ids: list[int]) -> list[tuple[Signal, bool]]:
    """The account's still-new signals among ``ids`` with their strategies and instruments,
    locked, in id order, each with whether its order exists already (a retry)."""
    rows = sql.fetchall(
        f"SELECT {sql.columns('g', Signal)}, {sql.columns('s', Strategy)}, "
        f"{sql.columns('i', Instrument)}, EXISTS (SELECT 1 FROM {sql.table(Order)} o "
        "WHERE o.account_id = g.account_id AND o.client_order_id = 'sig-' || g.id) "
        f"FROM {sql.table(Signal)} g JOIN {sql.table(Strategy)} s ON s.id = g.strategy_id "
        f"JOIN {sql.table(Instrument)} i ON i.id = g.instrument_id "
        "WHERE g.id = ANY(%s) AND g.account_id = %s AND g.status = %s ORDER BY g.id "
        "FOR UPDATE OF g",
        [ids, account.pk, Signal.Status.NEW],
    )
    out = []
    instruments: dict[int, Instrument] = {}
    for *values, has_order in rows:
        signal, strategy, instrument = sql.instances(values, Signal, Strategy, Instrument)
        instrument = instruments.setdefault(instrument.pk, instrument)
        cache = signal._state.fields_cache
        cache["strategy"], cache["instrument"], cache["account"] = strategy, instrument, account
        out.append((signal, has_order))
    return out


def _positions_locked(account: TradingAccount) -> dict[int, Position]:
    rows = sql.fetchall(
        f"SELECT {sql.columns('p', Position)}, {sql.columns('i', Instrument)} "
        f"FROM {sql.table(Position)} p JOIN {sql.table(Instrument)} i ON i.id = p.instrument_id "
        "WHERE p.account_id = %s FOR UPDATE OF p",
        [account.pk],
    )
    positions = {}
    for row in rows:
        position, instrument = sql.instances(row, Position, Instrument)
        position._state.fields_cache["instrument"] = instrument
        position._state.fields_cache["account"] = account
        positions[instrument.pk] = position
    return positions


def _open_trades_locked(
    account: TradingAccount, positions: dict[int, Position]
) -> dict[int, Trade]:
    rows = sql.fetchall(
        f"SELECT {sql.columns('t', Trade)}, {sql.columns('i', Instrument)} "
        f"FROM {sql.table(Trade)} t JOIN {sql.table(Instrument)} i ON i.id = t.instrument_id "
        "WHERE t.account_id = %s AND t.status = %s ORDER BY t.id FOR UPDATE OF t",
        [account.pk, Trade.Status.OPEN],
    )
    trades: dict[int, Trade] = {}
    for row in rows:
        trade, instrument = sql.instances(row, Trade, Instrument)
        position = positions.get(instrument.pk)
        trade._state.fields_cache["instrument"] = (
            position.instrument if position is not None else instrument
        )
        trade._state.fields_cache["account"] = account
        trades.setdefault(instrument.pk, trade)  # the first by id, as the single path reads
    return trades


def _float(value) -> float | None:
    return float(value) if value is not None else None
