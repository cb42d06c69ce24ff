"""Brokers behind one protocol; ``broker_for`` picks the one an account trades through."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.core.errors import ValidationFailed

from .base import Broker, BrokerError, BrokerFill, CancelAck, ReplaceAck, SubmitAck

if TYPE_CHECKING:
    from apps.accounts.models import TradingAccount

__all__ = [
    "Broker",
    "BrokerError",
    "BrokerFill",
    "CancelAck",
    "ReplaceAck",
    "SubmitAck",
    "broker_for",
]


def broker_for(account: TradingAccount) -> Broker:
    if account.broker == "paper":
        from .paper import PaperBroker

        return PaperBroker(account)
    if account.broker == "alpaca":
        from .alpaca import AlpacaBroker

        return AlpacaBroker(account)
    raise ValidationFailed(
        f"Broker {account.broker!r} is not available for trading yet.", code="broker_unavailable"
    )
