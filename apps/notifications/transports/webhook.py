"""Webhook: a JSON POST to the trader's URL, signed with HMAC-SHA256.

Headers: ``X-TradePlatform-Signature: t=<unix time>,v1=<hex HMAC of "<t>." + body>`` with
the trader's signing secret, ``X-TradePlatform-Delivery`` (stable across retries, so the
receiver can drop repeats) and ``X-TradePlatform-Event``. Slack and Discord incoming webhooks
get their own body shapes (``domain.payloads.webhook_body``).

Answers: 2xx sent; 408, 425, 429 and 5xx (and no answer at all) are retried; redirects and
other 4xx are permanent, recorded with the status and body.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings

from apps.notifications.domain.payloads import SIGNATURE_HEADER, webhook_body, webhook_signature
from apps.notifications.transports.base import (
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
    truncate,
)

RETRYABLE_STATUSES = frozenset({408, 425, 429})
USER_AGENT = "TradePlatform-Webhooks/1.0"


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str
    format: str = "json"


def check_public_address(url: str) -> None:
    """Refuse URLs whose host is loopback, private, link-local or otherwise internal.

    Raises ``PermanentFailure`` (ValueError-like callers use the message). Called when the URL
    is saved and again before each POST, since DNS answers change.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentFailure("The webhook URL must be an http(s) URL with a host name.")
    if settings.NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TemporaryFailure("The webhook host name does not resolve", answer=str(exc)) from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise PermanentFailure(
                f"The webhook URL points to an internal address ({address}); "
                "only public addresses are allowed."
            )


class _Sessions(threading.local):
    session: requests.Session | None = None


class WebhookTransport:
    channel = "webhook"

    def __init__(self) -> None:
        self._local = _Sessions()

    def _session(self) -> requests.Session:
        if self._local.session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            self._local.session = session
        return self._local.session

    def send(self, message: OutgoingMessage) -> None:
        target: WebhookTarget = message.target
        check_public_address(target.url)
        n = message.notification
        body = json.dumps(
            webhook_body(n, fmt=target.format, delivery_id=message.delivery_uid),
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-TradePlatform-Delivery": message.delivery_uid,
            "X-TradePlatform-Event": n.type,
            SIGNATURE_HEADER: webhook_signature(
                secret=target.secret, timestamp=int(time.time()), body=body
            ),
        }
        try:
            response = self._session().post(
                target.url,
                data=body,
                headers=headers,
                timeout=settings.NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise TemporaryFailure(
                "The webhook URL could not be reached", answer=truncate(repr(exc))
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        answer = truncate(f"HTTP {status} {response.reason}: {response.text}")
        if status >= 500 or status in RETRYABLE_STATUSES:
            raise TemporaryFailure(
                "The webhook receiver asked to try later",
                answer=answer,
                retry_after=_retry_after(response),
            )
        raise PermanentFailure("The webhook receiver refused the delivery", answer=answer)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
