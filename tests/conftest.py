"""Shared fixtures. The suite runs on the database in DATABASE_URL (PostgreSQL in CI)."""

from __future__ import annotations

import os

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import InstrumentFactory, TradingAccountFactory, UserFactory


def pytest_collection_modifyitems(config, items):
    # In CI a PostgreSQL-only test must never be skipped silently: the run fails instead.
    for item in items:
        if item.get_closest_marker("postgres"):
            item.fixturenames.append("_require_postgres")


@pytest.fixture
def _require_postgres(db):
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("This test needs PostgreSQL; CI must run the suite with DATABASE_URL set.")
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


@pytest.fixture
def user(db):
    return UserFactory(username="alice")


@pytest.fixture
def other_user(db):
    return UserFactory(username="mallory")


@pytest.fixture
def account(user):
    return TradingAccountFactory(owner=user, name="Alice paper")


@pytest.fixture
def other_account(other_user):
    return TradingAccountFactory(owner=other_user, name="Mallory paper")


@pytest.fixture
def instrument(db):
    return InstrumentFactory(symbol="AAPL", name="Apple Inc.", sector="Technology")


@pytest.fixture
def api_client(user):
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def other_api_client(other_user):
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=other_user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Every test starts with an empty cache (rate limits, throttles) of its own worker."""
    from django.conf import settings
    from django.core.cache import cache

    def clear() -> None:
        from apps.risk.selectors import market_memo_clear

        market_memo_clear()
        if "Redis" in settings.CACHES["default"]["BACKEND"]:
            client = cache._cache.get_client(write=True)
            keys = list(client.scan_iter(match=f"{settings.CACHE_KEY_PREFIX}:*", count=1000))
            if keys:
                client.delete(*keys)
        else:
            cache.clear()

    clear()
    yield
    clear()
