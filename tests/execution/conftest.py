"""Fixtures of the execution tests that trade through Alpaca: the fake Alpaca server (REST and
the trade-updates websocket) behind the configured URLs, an Alpaca trading account with a stored
key, and Celery in eager mode except in tests marked ``celery``."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from apps.accounts.services import trading_account_create
from apps.apikeys.audit import AuditContext
from apps.apikeys.services import api_key_create
from apps.execution.domain.intents import OrderIntent
from tests.fakes.alpaca_server import FakeAlpaca
from tradeplatform.celery import app as celery_app

KEY_ID = "PKEXECUTIONTEST00001"
SECRET = "eXeCuTiOnSeCrEt0123456789abcdefghijklmno"


@pytest.fixture(autouse=True)
def _tasks_in_process(request):
    """Tasks queued by the code under test run here, unless a real worker is the point."""
    if request.node.get_closest_marker("celery"):
        yield
        return
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


@pytest.fixture(scope="session")
def _alpaca_server():
    with FakeAlpaca() as server:
        server.stream_url  # noqa: B018 - start the websocket once for the session
        yield server


@pytest.fixture
def alpaca(_alpaca_server, settings):
    """The fake Alpaca, empty, behind the configured URLs, with the test key registered."""
    _alpaca_server.reset()
    settings.ALPACA_PAPER_URL = _alpaca_server.url
    settings.ALPACA_LIVE_URL = _alpaca_server.url + "/live-unused"
    settings.ALPACA_PAPER_STREAM_URL = _alpaca_server.stream_url
    settings.ALPACA_TIMEOUT_SECONDS = 1.0
    _alpaca_server.add_key(KEY_ID, SECRET)
    yield _alpaca_server
    _alpaca_server.reset()


@pytest.fixture
def alpaca_account(user, alpaca):
    account = trading_account_create(owner=user, name="Alice Alpaca", broker="alpaca")
    api_key_create(
        owner=user,
        name="Alpaca paper",
        environment="paper",
        key_id=KEY_ID,
        secret_key=SECRET,
        context=AuditContext(actor=user, channel="api"),
        account=account,
    )
    return account


def intent(side: str = "buy", qty: str = "10", symbol: str = "AAPL", **kw) -> OrderIntent:
    return OrderIntent(symbol=symbol, side=side, quantity=Decimal(qty), **kw)


def wait_until(predicate, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
