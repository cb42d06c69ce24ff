"""Fixtures of the API key tests: fresh master keys and rate-limit counters per test, the fake
Alpaca server behind the configured base URLs, and helpers to store keys."""

from __future__ import annotations

import base64
import os
import uuid

import pytest

from apps.accounts.services import trading_account_create
from apps.apikeys.audit import AuditContext
from apps.apikeys.models import ApiKeyAuditLog
from apps.apikeys.services import api_key_create
from tests.fakes.alpaca_server import FakeAlpaca

# Alpaca-shaped credentials: 20-character key ids, 40-character secrets.
KEY_ID = "PKTESTKEYID000000001"
SECRET = "sEcReT0123456789abcdefghijklmnopqrstuvwx"
KEY_ID_2 = "PKTESTKEYID000000002"
SECRET_2 = "nEwSeCrEt9876543210zyxwvutsrqponmlkjihgf"


def master_key() -> bytes:
    return os.urandom(32)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture(autouse=True)
def _fresh_keys_and_counters(settings):
    settings.SECRETS_MASTER_KEYS = {1: master_key()}
    settings.SECRETS_MASTER_KEY_VERSION = 1
    settings.APIKEYS_RATELIMIT_NAMESPACE = uuid.uuid4().hex
    settings.APIKEYS_VERIFY_RATE = "100/minute"
    settings.APIKEYS_FAILED_ATTEMPTS_RATE = "100/15min"
    settings.TRUSTED_PROXIES = []


@pytest.fixture(scope="session")
def _alpaca_server():
    with FakeAlpaca() as server:
        yield server


@pytest.fixture
def fake_alpaca(_alpaca_server, settings):
    """The fake Alpaca, empty, behind both configured base URLs (paper and live)."""
    _alpaca_server.reset()
    settings.ALPACA_PAPER_URL = _alpaca_server.url
    settings.ALPACA_LIVE_URL = _alpaca_server.url + "/live-unused"
    settings.ALPACA_TIMEOUT_SECONDS = 2.0
    yield _alpaca_server
    _alpaca_server.reset()


@pytest.fixture
def ctx(user) -> AuditContext:
    return AuditContext(actor=user, channel="api", ip_address="203.0.113.9", user_agent="pytest")


@pytest.fixture
def other_ctx(other_user) -> AuditContext:
    return AuditContext(actor=other_user, channel="api", ip_address="198.51.100.7")


@pytest.fixture
def alpaca_account(user):
    return trading_account_create(owner=user, name="Alice Alpaca", broker="alpaca")


@pytest.fixture
def other_alpaca_account(other_user):
    return trading_account_create(owner=other_user, name="Mallory Alpaca", broker="alpaca")


def store_key(owner, *, ctx=None, name="Main", key_id=KEY_ID, secret=SECRET, **kwargs):
    context = ctx or AuditContext(actor=owner, channel="api")
    return api_key_create(
        owner=owner,
        name=name,
        environment=kwargs.pop("environment", "paper"),
        key_id=key_id,
        secret_key=secret,
        context=context,
        **kwargs,
    )


@pytest.fixture
def key(user, alpaca_account, ctx):
    return store_key(user, ctx=ctx, account=alpaca_account)


@pytest.fixture
def other_key(other_user, other_alpaca_account, other_ctx):
    return store_key(
        other_user,
        ctx=other_ctx,
        name="Mallory main",
        key_id="PKMALLORY00000000001",
        secret="mAlLoRySeCrEt000000000000000000000000001",
        account=other_alpaca_account,
    )


def audit_rows(**filters):
    return list(ApiKeyAuditLog.objects.filter(**filters).order_by("id"))


def last_audit(**filters) -> ApiKeyAuditLog:
    return ApiKeyAuditLog.objects.filter(**filters).order_by("-id").first()
