"""Rotation against concurrent use, on PostgreSQL with real connections and threads: an order
in flight finishes with the old pair, readers get the old or the new pair and never a mix, and
two rotations of one key cannot both win."""

from __future__ import annotations

import threading
import time

import pytest
from alpaca.trading.requests import MarketOrderRequest
from django.db import connection

from apps.apikeys.brokers import alpaca_trading_client
from apps.apikeys.models import ApiKey, ApiKeyAuditLog
from apps.apikeys.services import (
    CredentialsUnavailable,
    api_key_credentials_for_use,
    api_key_rotate,
)
from apps.core.errors import Conflict
from tests.apikeys.conftest import KEY_ID, KEY_ID_2, SECRET, SECRET_2, store_key

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def in_thread(target, results: list, index: int):
    def run() -> None:
        try:
            results[index] = target()
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def send_order(account, symbol="AAPL"):
    """What the execution path does: credentials for this one call, then the broker call."""
    credentials = api_key_credentials_for_use(account=account, purpose="submit_order")
    client = alpaca_trading_client(credentials)
    order = client.submit_order(
        MarketOrderRequest(symbol=symbol, qty=1, side="buy", time_in_force="day")
    )
    return (credentials.key_id, credentials.secret_key), order


def test_rotation_while_an_order_is_being_sent(user, alpaca_account, ctx, fake_alpaca):
    alpaca = fake_alpaca.add_key(KEY_ID, SECRET).account
    fake_alpaca.add_key(KEY_ID_2, SECRET_2, account=alpaca)  # the new key, same account
    key = store_key(user, ctx=ctx, account=alpaca_account, verify=True)

    results: list = [None]
    with fake_alpaca.hold("POST", "/v2/orders") as gate:
        sender = in_thread(lambda: send_order(alpaca_account), results, 0)
        assert gate.entered.wait(10), "the order never reached the broker"
        # The order is on the wire with the old pair; the rotation does not wait for it.
        started = time.monotonic()
        new = api_key_rotate(api_key=key, key_id=KEY_ID_2, secret_key=SECRET_2, context=ctx)
        assert time.monotonic() - started < 5
        assert ApiKey.objects.get(pk=key.pk).status == "rotated"
        gate.release()
        sender.join(timeout=15)

    pair, order = results[0]
    assert pair == (KEY_ID, SECRET)  # complete old credentials ...
    assert str(order.status.value) == "accepted"  # ... and the order went through with them
    (in_flight,) = fake_alpaca.requests_to("/v2/orders", "POST")
    assert (in_flight.key_id, in_flight.secret, in_flight.status) == (KEY_ID, SECRET, 200)

    pair, _ = send_order(alpaca_account)  # the next order uses the new key
    assert pair == (KEY_ID_2, SECRET_2)
    assert ApiKey.objects.get(pk=new.pk).use_count == 1
    assert ApiKey.objects.get(pk=key.pk).use_count == 1
    uses = ApiKeyAuditLog.objects.filter(action="use").order_by("id")
    assert [u.api_key_id for u in uses] == [key.pk, new.pk]


def test_readers_get_the_old_or_the_new_pair_never_a_mix(user, alpaca_account, ctx):
    key = store_key(
        user, ctx=ctx, account=alpaca_account, key_id=f"PKPAIR{0:014d}", secret="s" * 40
    )
    pairs = {(f"PKPAIR{i:014d}", f"{i:02d}" + "s" * 38) for i in range(1, 13)}
    pairs.add((f"PKPAIR{0:014d}", "s" * 40))
    stop = threading.Event()
    seen: list[tuple[str, str]] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def reader() -> None:
        try:
            while not stop.is_set():
                try:
                    creds = api_key_credentials_for_use(account=alpaca_account, purpose="read")
                except Exception as exc:
                    with lock:
                        errors.append(exc)
                    continue
                with lock:
                    seen.append((creds.key_id, creds.secret_key))
        finally:
            connection.close()

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    current = key
    try:
        for i in range(1, 13):
            current = api_key_rotate(
                api_key=current,
                key_id=f"PKPAIR{i:014d}",
                secret_key=f"{i:02d}" + "s" * 38,
                context=ctx,
                verify=False,
            )
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=30)
        connection.close()

    assert errors == []  # never "no key" in the middle of a rotation
    assert len(seen) > 50
    assert set(seen) <= pairs  # every pair read is a complete pair that was stored together
    assert len(set(seen)) >= 3  # and the readers really ran across rotations
    assert ApiKey.objects.filter(account=alpaca_account, status="active").count() == 1
    assert ApiKey.objects.filter(lineage=key.lineage).count() == 13


def test_two_rotations_of_one_key_cannot_both_win(user, alpaca_account, ctx):
    key = store_key(user, ctx=ctx, account=alpaca_account)
    barrier = threading.Barrier(4)
    results: list = [None] * 4

    def rotate(i: int):
        barrier.wait()
        return api_key_rotate(
            api_key=key,
            key_id=f"PKRACE{i:014d}",
            secret_key=f"race{i}" + "r" * 35,
            context=ctx,
            verify=False,
        )

    threads = [in_thread(lambda i=i: rotate(i), results, i) for i in range(4)]
    for thread in threads:
        thread.join(timeout=30)

    winners = [r for r in results if isinstance(r, ApiKey)]
    losers = [r for r in results if isinstance(r, Conflict)]
    assert len(winners) == 1 and len(losers) == 3, results
    assert all(loser.code == "key_retired" for loser in losers)
    assert list(ApiKey.objects.filter(lineage=key.lineage, status="active")) == winners
    rotations = ApiKeyAuditLog.objects.filter(action="rotate", api_key=key)
    assert sorted(r.success for r in rotations) == [False, False, False, True]


def test_two_keys_for_one_account_at_once_make_one(user, alpaca_account, ctx):
    barrier = threading.Barrier(3)
    results: list = [None] * 3

    def create(i: int):
        barrier.wait()
        return store_key(
            user,
            ctx=ctx,
            name=f"Race {i}",
            key_id=f"PKMAKE{i:014d}",
            secret=f"make{i}" + "m" * 35,
            account=alpaca_account,
        )

    threads = [in_thread(lambda i=i: create(i), results, i) for i in range(3)]
    for thread in threads:
        thread.join(timeout=30)
    assert sum(isinstance(r, ApiKey) for r in results) == 1, results
    assert all(r.code == "account_has_key" for r in results if isinstance(r, Conflict))
    assert ApiKey.objects.filter(account=alpaca_account).count() == 1
    creds = api_key_credentials_for_use(account=alpaca_account, purpose="check")
    assert creds.key_id.startswith("PKMAKE")
    assert not isinstance(creds, CredentialsUnavailable)
