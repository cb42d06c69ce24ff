"""Push events to a user's open pages, after the transaction that caused them commits.

With the Redis channel layer, sends go through one background event loop per process (its
connections stay open), so a trading path that emits several events after a commit pays
microseconds per event instead of an event loop and a Redis connection each. Sending is
fire-and-forget: a page that misses a live update refreshes on its next poll or reconnect, and
trading never waits for it. In-memory layers (single process: the embedded default and tests)
are sent to synchronously, on the caller's thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

logger = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def _json_safe(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


class _BackgroundLoop:
    """One event loop thread per process (re-created after a fork, e.g. in Celery workers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="realtime-sender", daemon=True
                )
                thread.start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_background = _BackgroundLoop()


def _log_failure(future) -> None:
    exc = future.exception()
    if exc is not None:
        logger.warning("a live update was not delivered: %s", exc)


class _Outbox:
    """The process's live updates, sent one after another by one coroutine on the background
    loop: a batch that commits hundreds of updates at once queues them instead of opening a
    Redis connection each (the layer's pool refuses beyond its size)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[tuple[Any, str, dict]] = []
        self._draining = False  # a drain is scheduled or running; it empties the queue
        self._pid = os.getpid()

    def put(self, layer, group: str, message: dict) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked child starts afresh
                self._pid, self._queue, self._draining = os.getpid(), [], False
            self._queue.append((layer, group, message))
            if self._draining:
                return
            self._draining = True
        try:
            future = asyncio.run_coroutine_threadsafe(self._drain(), _background.loop())
        except Exception:
            with self._lock:
                self._draining = False
            raise
        future.add_done_callback(_log_failure)

    async def _drain(self) -> None:
        try:
            while True:
                with self._lock:
                    if not self._queue:
                        self._draining = False  # decided under the lock: no put is missed
                        return
                    batch, self._queue = self._queue, []
                for layer, group, message in batch:
                    try:
                        await layer.group_send(group, message)
                    except Exception as exc:  # the next ones still go
                        logger.warning("a live update was not delivered: %s", exc)
        finally:  # cancelled or failed: the next put starts a new drain
            with self._lock:
                self._draining = False


_outbox = _Outbox()


def broadcast(user_id: int, event: str, data: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "user.event", "event": event, "data": _json_safe(data)}
    group = user_group(user_id)
    try:
        if "Redis" in type(layer).__name__:
            _outbox.put(layer, group, message)
        else:
            async_to_sync(layer.group_send)(group, message)
    except Exception:  # A page that misses a live update reloads it; trading must go on.
        logger.exception("live update %s for user %s was not delivered", event, user_id)


def broadcast_on_commit(user_id: int, event: str, data: dict[str, Any]) -> None:
    """Send ``event`` to every open page of the user once the current transaction commits."""
    data = _json_safe(data)  # freeze the values as they are now
    transaction.on_commit(lambda: broadcast(user_id, event, data))
