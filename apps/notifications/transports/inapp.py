"""In-app: push the ``notification`` event to every open page of the trader.

The notification row itself is what the centre shows; this transport only makes open pages
show a toast and bump the badge, through the same per-user group (``user.<id>``) the pages'
WebSocket (``/ws/events/``) listens to.

Sends run on one event loop per process, kept in a background thread: the Redis channel layer
keeps its connection pool per loop, so a worker does not reconnect for every delivery (as a
fresh ``async_to_sync`` loop would).
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import TimeoutError as FutureTimeout

from channels.layers import get_channel_layer

from apps.core.realtime import user_group
from apps.notifications.domain.payloads import in_app_event
from apps.notifications.transports.base import (
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
    truncate,
)

EVENT = "notification"
SEND_TIMEOUT_SECONDS = 10.0


class _LoopThread:
    """An asyncio loop running in a daemon thread, started on first use (and after a fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="in-app-transport", daemon=True
                ).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_LOOP = _LoopThread()


class InAppTransport:
    channel = "in_app"

    def send(self, message: OutgoingMessage) -> None:
        layer = get_channel_layer()
        if layer is None:
            raise PermanentFailure("No channel layer is configured (CHANNEL_LAYERS).")
        data = in_app_event(
            message.notification,
            unread_count=message.extra.get("unread_count", 0),
            link_path=message.extra.get("link_path", ""),
        )
        event = {"type": "user.event", "event": EVENT, "data": data}
        future = asyncio.run_coroutine_threadsafe(
            layer.group_send(user_group(message.target), event), _LOOP.loop()
        )
        try:
            future.result(SEND_TIMEOUT_SECONDS)
        except FutureTimeout as exc:
            future.cancel()
            raise TemporaryFailure("The channel layer did not answer in time") from exc
        except Exception as exc:  # Redis down or refusing: the next attempt may get through
            raise TemporaryFailure(
                "The channel layer did not take the event", answer=truncate(repr(exc))
            ) from exc
