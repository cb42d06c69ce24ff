"""The OpenAPI schema: served, valid, warning-free, listing every endpoint; the docs page."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

EXPECTED_OPERATIONS = {
    "/api/v1/auth/token/": {"post"},
    "/api/v1/accounts/": {"get", "post"},
    "/api/v1/accounts/{id}/": {"get", "patch"},
    "/api/v1/accounts/{id}/equity/": {"get"},
    "/api/v1/instruments/": {"get"},
    "/api/v1/instruments/{symbol}/": {"get"},
    "/api/v1/bars/": {"get"},
    "/api/v1/strategy-kinds/": {"get"},
    "/api/v1/strategy-kinds/{kind}/": {"get"},
    "/api/v1/strategies/": {"get", "post"},
    "/api/v1/strategies/{id}/": {"get", "put", "patch", "delete"},
    "/api/v1/orders/": {"get", "post"},
    "/api/v1/orders/{id}/": {"get"},
    "/api/v1/orders/{id}/cancel/": {"post"},
    "/api/v1/positions/": {"get"},
    "/api/v1/positions/{id}/": {"get"},
    "/api/v1/trades/": {"get"},
    "/api/v1/trades/{id}/": {"get", "patch"},
}


@pytest.fixture
def schema(api_client):
    response = api_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_schema_is_valid_openapi(schema):
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Trade Platform API"


def test_schema_lists_every_endpoint_and_method(schema):
    operations = {
        path: {method for method in item if method in ("get", "post", "put", "patch", "delete")}
        for path, item in schema["paths"].items()
    }
    # Other apps may add endpoints; these must all be there, with exactly these methods.
    assert {path: operations.get(path) for path in EXPECTED_OPERATIONS} == EXPECTED_OPERATIONS
    assert all(path.startswith("/api/v1/") for path in operations)


def test_schema_generates_without_warnings(capsys):
    # The same check CI runs: any warning fails the command.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    assert "Warning" not in capsys.readouterr().err


def test_schema_documents_the_essentials(schema):
    paths = schema["paths"]
    bar_params = {p["name"]: p for p in paths["/api/v1/bars/"]["get"]["parameters"]}
    assert bar_params["symbol"]["required"] and bar_params["timeframe"]["required"]
    assert {"start", "end", "cursor", "page_size", "ordering"} <= set(bar_params)
    order_filters = {p["name"] for p in paths["/api/v1/orders/"]["get"]["parameters"]}
    assert {"account", "status", "symbol", "side", "source", "created_after", "created_before"} <= (
        order_filters
    )
    trade_filters = {p["name"] for p in paths["/api/v1/trades/"]["get"]["parameters"]}
    assert {"account", "symbol", "strategy", "direction", "status", "tag"} <= trade_filters
    assert {"closed_after", "closed_before"} <= trade_filters
    equity_params = {p["name"] for p in paths["/api/v1/accounts/{id}/equity/"]["get"]["parameters"]}
    assert {"from", "to"} <= equity_params
    created = paths["/api/v1/orders/"]["post"]["responses"]
    assert "201" in created
    # The token endpoint is the one operation that needs no credentials.
    assert paths["/api/v1/auth/token/"]["post"].get("security") in (None, [], [{}])
    schemes = schema["components"]["securitySchemes"]
    assert {"tokenAuth", "cookieAuth"} <= set(schemes)


def test_schema_and_docs_are_served(api_client):
    response = api_client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi:" in response.content
    docs = api_client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content.lower()


def test_schema_is_public_documentation():
    # The schema describes the API, not anyone's data: client generators may read it anonymously.
    assert APIClient().get("/api/schema/").status_code == 200
    assert APIClient().get("/api/docs/").status_code == 200
