"""The built-in paper broker: simulated fills against the platform's own market data.

Submission fills marketable orders at once against the instrument's last price (with the
account's slippage and commission, capped by the last bar's volume); everything else rests and
is matched bar by bar (``match_bar``). Fill ids are deterministic (order id + sequence), so
matching the same bar twice cannot create a second fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.utils import timezone

from apps.execution.domain.matching import (
    Match,
    PaperConfig,
    PriceBar,
    WorkingOrder,
    match_at_price,
    match_on_bar,
    to_decimal,
)
from apps.marketdata.selectors import latest_bar_any

from .base import BrokerFill, CancelAck, ReplaceAck, SubmitAck

if TYPE_CHECKING:
    from apps.accounts.models import TradingAccount
    from apps.execution.models import Order
    from apps.marketdata.models import Bar


def paper_config(account: TradingAccount, order: Order) -> PaperConfig:
    instrument = order.instrument
    return PaperConfig(
        slippage_bps=account.slippage_bps,
        commission_rate=account.commission_rate,
        commission_minimum=account.commission_minimum,
        max_volume_participation=account.max_volume_participation,
        lot_size=instrument.lot_size,
        tick_size=instrument.tick_size,
    )


def working_order(order: Order) -> WorkingOrder:
    return WorkingOrder(
        side=order.side,
        order_type=order.order_type,
        time_in_force=order.time_in_force,
        remaining=order.quantity - order.filled_quantity,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        stop_triggered=order.stop_triggered,
    )


def fill_id(order: Order, sequence: int) -> str:
    return f"paper-{order.pk}-{sequence}"


@dataclass(frozen=True)
class BarMatch:
    match: Match
    fill: BrokerFill | None


class PaperBroker:
    name = "paper"

    def __init__(self, account: TradingAccount) -> None:
        self.account = account

    def submit_order(self, order: Order) -> SubmitAck:
        if order.instrument.last_price is None:
            return self.submit_at_bar(order, None)
        return self.submit_at_bar(order, latest_bar_any(instrument=order.instrument))

    def submit_at_bar(self, order: Order, bar: Bar | None) -> SubmitAck:
        """``submit_order`` with the instrument's latest bar (its volume caps the fill) read
        already: a batch of signals reads it once per instrument."""
        instrument = order.instrument
        last_price = instrument.last_price
        if last_price is None:
            return SubmitAck(False, reason=f"No market price for {instrument.symbol} yet.")
        volume = to_decimal(bar.volume) if bar is not None else Decimal("0")
        match = match_at_price(
            working_order(order),
            last_price=last_price,
            volume=volume,
            config=paper_config(self.account, order),
        )
        fills: tuple[BrokerFill, ...] = ()
        if match.filled:
            assert match.price is not None
            fills = (
                BrokerFill(
                    fill_id(order, 1), match.quantity, match.price, match.commission, timezone.now()
                ),
            )
        return SubmitAck(
            True,
            broker_order_id=f"paper-{order.pk}",
            fills=fills,
            stop_triggered=match.stop_triggered,
            cancel_rest=match.cancel_rest,
            cancel_reason=match.note if match.cancel_rest else "",
        )

    def cancel_order(self, order: Order) -> CancelAck:
        return CancelAck(True)

    def replace_order(
        self,
        order: Order,
        *,
        quantity: Decimal,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
    ) -> ReplaceAck:
        # The book is ours: the new terms apply from the next bar on.
        return ReplaceAck(True, broker_order_id=order.broker_order_id)

    def match_bar(self, order: Order, bar: Bar, *, at: datetime) -> BarMatch:
        price_bar = PriceBar(
            open=to_decimal(bar.open),
            high=to_decimal(bar.high),
            low=to_decimal(bar.low),
            close=to_decimal(bar.close),
            volume=to_decimal(bar.volume),
        )
        match = match_on_bar(working_order(order), price_bar, paper_config(self.account, order))
        if not match.filled:
            return BarMatch(match, None)
        assert match.price is not None
        # The id names the bar, so a bar delivered twice maps to the same fill.
        broker_fill_id = f"paper-{order.pk}-{bar.timeframe}-{int(bar.ts.timestamp())}"
        return BarMatch(
            match, BrokerFill(broker_fill_id, match.quantity, match.price, match.commission, at)
        )
