"""The channels' transports, one instance per channel and process (they keep connections).

``get_transport(channel)`` is what the delivery service uses; tests may swap an entry of
``TRANSPORTS`` to simulate a slow or failing channel.
"""

from __future__ import annotations

from apps.notifications.transports.base import (
    OutgoingMessage,
    PermanentFailure,
    RecipientGone,
    TemporaryFailure,
    Transport,
    TransportError,
)

__all__ = [
    "TRANSPORTS",
    "OutgoingMessage",
    "PermanentFailure",
    "RecipientGone",
    "TemporaryFailure",
    "Transport",
    "TransportError",
    "get_transport",
]

TRANSPORTS: dict[str, Transport] = {}


def get_transport(channel: str) -> Transport:
    transport = TRANSPORTS.get(channel)
    if transport is None:
        from apps.notifications.transports.email import EmailTransport
        from apps.notifications.transports.inapp import InAppTransport
        from apps.notifications.transports.webhook import WebhookTransport
        from apps.notifications.transports.webpush import WebPushTransport

        factories = {
            "in_app": InAppTransport,
            "email": EmailTransport,
            "push": WebPushTransport,
            "webhook": WebhookTransport,
        }
        transport = TRANSPORTS.setdefault(channel, factories[channel]())
    return transport
