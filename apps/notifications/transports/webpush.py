"""Web push (RFC 8030/8291/8292) through pywebpush: one message to one browser subscription.

The payload is encrypted for the subscription (aes128gcm) and the request signed with the
VAPID key from settings. Answers: 2xx sent; 404/410 -> ``RecipientGone`` (the browser
unsubscribed or the subscription expired: the service deletes it); 429 and 5xx, or no answer,
are retried; other 4xx (bad payload, bad VAPID) are permanent.
"""

from __future__ import annotations

import json
import threading
from functools import cache

import requests
from django.conf import settings
from py_vapid import Vapid02, VapidException
from pywebpush import WebPushException, webpush

from apps.notifications.domain.payloads import push_payload
from apps.notifications.transports.base import (
    OutgoingMessage,
    PermanentFailure,
    RecipientGone,
    TemporaryFailure,
    truncate,
)
from apps.notifications.vapid import load_private_key

GONE_STATUSES = frozenset({404, 410})


@cache
def _vapid(private_key: str) -> Vapid02:
    return Vapid02(private_key=load_private_key(private_key))


class _Sessions(threading.local):
    session: requests.Session | None = None


class WebPushTransport:
    channel = "push"

    def __init__(self) -> None:
        self._local = _Sessions()

    def _session(self) -> requests.Session:
        if self._local.session is None:
            self._local.session = requests.Session()
        return self._local.session

    def send(self, message: OutgoingMessage) -> None:
        if not settings.VAPID_PRIVATE_KEY:
            raise PermanentFailure("Web push is not configured (VAPID_PRIVATE_KEY is not set).")
        payload = push_payload(message.notification, open_url=message.extra.get("open_url", ""))
        try:
            webpush(
                subscription_info=message.target,
                data=json.dumps(payload, separators=(",", ":")),
                vapid_private_key=_vapid(settings.VAPID_PRIVATE_KEY),
                vapid_claims={"sub": settings.VAPID_SUBJECT},
                ttl=settings.NOTIFICATIONS_PUSH_TTL_SECONDS,
                timeout=settings.NOTIFICATIONS_PUSH_TIMEOUT_SECONDS,
                requests_session=self._session(),
                headers={"Urgency": "high" if message.notification.critical else "normal"},
            )
        except WebPushException as exc:
            response = exc.response
            if response is None:
                raise TemporaryFailure("Web push failed", answer=truncate(str(exc))) from exc
            status = getattr(response, "status_code", None) or getattr(response, "status", 0)
            answer = truncate(f"HTTP {status}: {getattr(response, 'text', '')}")
            if status in GONE_STATUSES:
                raise RecipientGone("The push subscription has expired", answer=answer) from exc
            if status == 429 or status >= 500:
                raise TemporaryFailure("The push service is busy", answer=answer) from exc
            raise PermanentFailure("The push service refused the message", answer=answer) from exc
        except requests.RequestException as exc:
            raise TemporaryFailure(
                "The push service could not be reached", answer=truncate(repr(exc))
            ) from exc
        except VapidException as exc:  # the server's VAPID settings are wrong: fix, then retry
            raise PermanentFailure("VAPID configuration error", answer=str(exc)) from exc
        except (ValueError, TypeError) as exc:  # a malformed subscription (keys) cannot work
            raise PermanentFailure("The push subscription is invalid", answer=str(exc)) from exc
