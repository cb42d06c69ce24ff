"""The one interface every channel implements, and the error that says whether retrying helps.

A transport sends one message to one target and returns, or raises a ``TransportError``:

- ``TemporaryFailure`` (``retryable``): the server was unreachable, timed out or answered
  "try later" (SMTP 4xx, HTTP 429/5xx); the delivery is retried with backoff.
- ``PermanentFailure``: the server refused the message for good (SMTP 5xx, HTTP 4xx); the
  delivery is marked failed with the server's answer.
- ``RecipientGone``: the target no longer exists (web push 404/410): the service removes it.

A transport may also offer ``send_many(messages) -> list[TransportError | None]`` (each
message's failure, None when sent) for what one task sends on its channel together; the
in-app transport does, and the delivery service falls back to ``send`` for one that does not.

Transports hold no database state and never write rows: the delivery service decides what a
failure means for the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from apps.notifications.domain.payloads import NotificationData


class TransportError(Exception):
    retryable: bool = False

    def __init__(self, message: str, *, answer: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.answer = answer  # what the server said, verbatim (truncated), for the record
        self.retry_after = retry_after

    def describe(self) -> str:
        return f"{self.message}: {self.answer}" if self.answer else self.message


class TemporaryFailure(TransportError):
    retryable = True


class PermanentFailure(TransportError):
    retryable = False


class RecipientGone(PermanentFailure):
    """The target (a push subscription) is gone for good; remove it, do not retry."""


@dataclass(frozen=True)
class OutgoingMessage:
    """One notification (or a digest of several) for one target on one channel.

    ``delivery_uid`` is stable across retries: the e-mail's Message-ID, the webhook's
    delivery id, so receivers can recognise a repeat.
    """

    delivery_uid: str
    notification: NotificationData
    target: Any  # channel-specific: an address, a URL + secret, a push subscription, a user id
    digest: tuple[NotificationData, ...] = field(default=())
    extra: dict[str, Any] = field(default_factory=dict)


class Transport(Protocol):
    channel: str

    def send(self, message: OutgoingMessage) -> None:
        """Deliver ``message`` or raise a ``TransportError``."""
        ...


def truncate(text: str, limit: int = 1000) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
