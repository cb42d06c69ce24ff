"""In-app: push the ``notification`` event to every open page of the trader.

The notification row itself is what the centre shows; this transport only makes open pages
show a toast and bump the badge, through the same per-user group (``user.<id>``) the pages'
WebSocket (``/ws/events/``) listens to.

Sends run on one event loop per process, kept in a background thread: the Redis channel layer
keeps its connection pool per loop, so a worker does not reconnect for every delivery (as a
fresh ``async_to_sync`` loop would). ``send_many`` hands a task's events to that loop in one
trip (the channel layer has no call that sends several events to a group: each event is one
``group_send``, and a page gets one WebSocket message per notification).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout

from channels.layers import get_channel_layer

from apps.core.realtime import user_group
from apps.notifications.domain.payloads import in_app_event
from apps.notifications.transports.base import (
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
    TransportError,
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
        failure = self.send_many([message])[0]
        if failure is not None:
            raise failure

    def send_many(self, messages: Sequence[OutgoingMessage]) -> list[TransportError | None]:
        """``send`` for several messages in one trip to the loop thread: each trader's events
        one after the other, in order, and different traders' at the same time. Returns each
        message's failure (None: sent)."""
        layer = get_channel_layer()
        if layer is None:
            return [PermanentFailure("No channel layer is configured (CHANNEL_LAYERS).")] * len(
                messages
            )
        groups: dict[str, list[tuple[int, dict]]] = {}
        for position, message in enumerate(messages):
            data = in_app_event(
                message.notification,
                unread_count=message.extra.get("unread_count", 0),
                link_path=message.extra.get("link_path", ""),
            )
            event = {"type": "user.event", "event": EVENT, "data": data}
            groups.setdefault(user_group(message.target), []).append((position, event))
        timeout = TemporaryFailure("The channel layer did not answer in time")
        # Filled in on the loop thread as the sends complete: what is still the timeout
        # when time is up did not go out (as far as this worker knows).
        failures: list[TransportError | None] = [timeout] * len(messages)

        async def send_group(group: str, events: list[tuple[int, dict]]) -> None:
            for position, event in events:
                try:
                    await layer.group_send(group, event)
                except Exception as exc:  # Redis down or refusing: the next attempt may pass
                    failures[position] = TemporaryFailure(
                        "The channel layer did not take the event", answer=truncate(repr(exc))
                    )
                else:
                    failures[position] = None

        async def send_all() -> None:
            await asyncio.gather(*(send_group(g, events) for g, events in groups.items()))

        future = asyncio.run_coroutine_threadsafe(send_all(), _LOOP.loop())
        try:
            future.result(SEND_TIMEOUT_SECONDS)
        except FutureTimeout:
            future.cancel()
        return list(failures)
