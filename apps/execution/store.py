"""Where the order and fill path reads and writes the rows it works on.

The services in ``services.py`` apply an acknowledgement or a fill the same way whoever calls
them; only the reads of the position and the open journal entry, and the writes, go through a
store:

- ``DIRECT`` (the default) reads and writes the database at once, statement by statement;
- ``BatchStore`` serves one account's transaction in a signal batch (``pipeline``): the
  account's positions and open trades are read once, kept in memory as the batch changes
  them, and every write is held back and sent at ``flush`` as one statement per table
  (``apps.core.sql.WriteBehind``); the notifications go to the notification service together.

Same code, same results (``tests/execution/test_batch.py`` compares the two row by row); the
batch only costs fewer round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Model

from apps.accounts.models import TradingAccount
from apps.core import sql
from apps.execution.models import Fill, Order, Position, Trade
from apps.marketdata.models import Instrument


class Store:
    """Reads and writes at once (the default)."""

    def fill_for(self, account: TradingAccount, broker_fill_id: str) -> Fill | None:
        return sql.first(
            Fill,
            "t.account_id = %s AND t.broker_fill_id = %s",
            [account.pk, broker_fill_id],
            fallback=lambda: Fill.objects.filter(
                account=account, broker_fill_id=broker_fill_id
            ).first(),
        )

    def position_for_update(self, account: TradingAccount, instrument: Instrument) -> Position:
        position = sql.first(
            Position,
            "t.account_id = %s AND t.instrument_id = %s",
            [account.pk, instrument.pk],
            for_update=True,
            fallback=lambda: None,
        )
        if position is None:  # the first fill on the instrument (the account lock is held)
            position, _ = Position.objects.select_for_update().get_or_create(
                account=account, instrument=instrument
            )
        return position

    def open_trade(self, account: TradingAccount, instrument: Instrument) -> Trade | None:
        return sql.first(
            Trade,
            "t.account_id = %s AND t.instrument_id = %s AND t.status = %s",
            [account.pk, instrument.pk, Trade.Status.OPEN],
            for_update=True,
            fallback=lambda: (
                Trade.objects.select_for_update()
                .filter(account=account, instrument=instrument, status=Trade.Status.OPEN)
                .first()
            ),
        )

    def insert(self, obj: Model) -> None:
        sql.insert(obj)

    def insert_many(self, objs: Sequence[Model]) -> None:
        sql.insert_many(objs)

    def update(self, obj: Model, fields: Sequence[str] | None = None) -> None:
        sql.update(obj, fields)

    def notify(self, **kwargs: Any) -> None:
        from apps.execution.services import _notify

        _notify(**kwargs)


DIRECT = Store()


class BatchStore(Store):
    """One account's rows in a signal batch, read once and written at ``flush``.

    Built under the account's lock with every position and open trade of the account (both
    locked too), so nothing else changes them until the batch commits. Only for orders the
    batch itself created: their fills cannot be stored already."""

    # Rows referred to before the flush (fill ids and notifications name the order; the
    # journal's notification names its trade) get their primary key when inserted.
    KEYED_NOW = (Order, Trade)

    def __init__(
        self,
        *,
        positions: dict[int, Position],
        open_trades: dict[int, Trade],
    ) -> None:
        self.positions = positions  # by instrument id
        self.open_trades = open_trades  # by instrument id
        self.writes = sql.WriteBehind()
        self.notices: list[dict[str, Any]] = []
        self._fills: dict[tuple[int, str], Fill] = {}

    def fill_for(self, account: TradingAccount, broker_fill_id: str) -> Fill | None:
        return self._fills.get((account.pk, broker_fill_id))

    def position_for_update(self, account: TradingAccount, instrument: Instrument) -> Position:
        position = self.positions.get(instrument.pk)
        if position is None:
            position = Position(account=account, instrument=instrument)
            self.writes.insert(position)
            self.positions[instrument.pk] = position
        return position

    def open_trade(self, account: TradingAccount, instrument: Instrument) -> Trade | None:
        trade = self.open_trades.get(instrument.pk)
        return trade if trade is not None and trade.status == Trade.Status.OPEN else None

    def insert(self, obj: Model) -> None:
        self.writes.insert(obj, pk_now=isinstance(obj, self.KEYED_NOW))
        if isinstance(obj, Trade) and obj.status == Trade.Status.OPEN:
            self.open_trades[obj.instrument_id] = obj
        elif isinstance(obj, Fill):
            self._fills[(obj.account_id, obj.broker_fill_id)] = obj

    def insert_many(self, objs: Sequence[Model]) -> None:
        for obj in objs:
            self.insert(obj)

    def update(self, obj: Model, fields: Sequence[str] | None = None) -> None:
        self.writes.update(obj, fields)

    def notify(self, **kwargs: Any) -> None:
        self.notices.append(kwargs)

    def flush(self) -> None:
        """Write everything held back, then hand the notifications over (in the same
        transaction: they are stored with the trading rows or not at all)."""
        from apps.execution.services import _notify_many

        self.writes.flush()
        notices, self.notices = self.notices, []
        _notify_many(notices)
