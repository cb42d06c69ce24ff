"""apps.core.realtime with the Redis channel layer: a burst of live updates (a batch of
signals commits hundreds at once) arrives whole and in order, from one sender per process."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.layers import channel_layers, get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from apps.core.realtime import broadcast, user_group

pytestmark = pytest.mark.asyncio

BURST = 400  # several times the channel layer's connection pool


@pytest.fixture
def roomy_layer():
    """The configured Redis layer with room for the whole burst in one channel (the default
    capacity of 100 drops messages that a busy receiver has not read yet)."""
    default = settings.CHANNEL_LAYERS["default"]
    assert default["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    layer = RedisChannelLayer(**{**default["CONFIG"], "capacity": 2 * BURST})
    previous = channel_layers.set("default", layer)
    yield layer
    if previous is None:  # none was made yet: the next use makes the configured one
        channel_layers.backends.pop("default", None)
    else:
        channel_layers.set("default", previous)


async def test_a_burst_of_live_updates_arrives_whole_and_in_order(roomy_layer):
    layer = get_channel_layer()
    assert layer is roomy_layer
    channel = await layer.new_channel()
    await layer.group_add(user_group(987654), channel)
    try:
        # From a plain thread, as a worker's commit hooks call it.
        sender = threading.Thread(
            target=lambda: [
                broadcast(987654, "order.updated", {"n": n, "price": "1.5"}) for n in range(BURST)
            ]
        )
        sender.start()
        received = []
        async with asyncio.timeout(20):
            while len(received) < BURST:
                received.append(await layer.receive(channel))
        sender.join()
    finally:
        await layer.group_discard(user_group(987654), channel)
    assert [m["data"]["n"] for m in received] == list(range(BURST))
    assert received[0] == {
        "type": "user.event",
        "event": "order.updated",
        "data": {"n": 0, "price": "1.5"},
    }
