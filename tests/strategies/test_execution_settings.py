"""A strategy's execution settings (sizing method and parameters, entry order type, limit
offset, re-pricing) in the strategy form and the API: fields generated from the sizing specs,
re-rendered when the method changes, checked by the strategy services, errors naming the
field, nothing written on an error."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.urls import reverse

from apps.risk.domain.sizing import describe_sizing_methods
from apps.strategies.models import Strategy
from tests.factories import StrategyFactory

pytestmark = pytest.mark.django_db

CREATE = reverse("strategies:create")
SIZING = reverse("strategies:sizing")
STRATEGIES = "/api/v1/strategies/"


@pytest.fixture
def owner_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def strategy(user, account, instrument):
    return StrategyFactory(
        owner=user,
        account=account,
        name="Sized",
        instruments=[instrument],
        sizing_method="fixed_quantity",
        sizing_params={"quantity": 25.0},
        entry_order_type="limit",
        limit_offset_bps=D("12.5"),
        reprice_limit=True,
    )


def form_data(account, **overrides):
    data = {
        "name": "Crossover",
        "account": account.pk,
        "kind": "sma_crossover",
        "symbols": "AAPL",
        "timeframe": "1d",
        "mode": "off",
        "description": "",
        "param_fast": "5",
        "param_slow": "20",
        "sizing_method": "pct_equity",
        "sizing_pct": "",
        "entry_order_type": "market",
        "limit_offset_bps": "0",
    }
    data.update(overrides)
    return data


def _input(html: str, name: str) -> str:
    """The ``<input ...>`` tag of a field."""
    before, after = html.split(f'name="{name}"', 1)
    return before[before.rindex("<input") :] + after.split(">", 1)[0]


def _errors_for(html: str, field: str) -> str:
    assert f'data-error-for="{field}"' in html, html
    return html.split(f'data-error-for="{field}"', 1)[1].split("</ul>", 1)[0]


# --- the form -----------------------------------------------------------------------------


def test_create_form_has_the_execution_fields_of_the_default_method(owner_client, account):
    html = owner_client.get(CREATE).content.decode()
    assert f'hx-get="{SIZING}"' in html and 'name="sizing_method"' in html
    for method in describe_sizing_methods():
        assert f'<option value="{method["method"]}"' in html
    assert '<option value="pct_equity" selected>' in html
    assert 'name="sizing_pct"' in html and 'placeholder="10.0"' in html
    assert 'name="entry_order_type"' in html and 'name="limit_offset_bps"' in html
    assert 'name="reprice_limit"' in html


@pytest.mark.parametrize("described", describe_sizing_methods(), ids=lambda d: d["method"])
def test_changing_the_method_renders_its_fields(owner_client, account, described):
    response = owner_client.get(
        SIZING, {"sizing_method": described["method"]}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert html.strip().startswith('<div id="sizing-fields"')
    assert described["description"] in html
    names = {spec["name"] for spec in described["params"]}
    for name in names:
        assert f'name="sizing_{name}"' in html
    others = {
        spec["name"] for other in describe_sizing_methods() for spec in other["params"]
    } - names
    for name in others:
        assert f'name="sizing_{name}"' not in html


def test_edit_shows_the_strategys_own_settings_and_keeps_them_when_switching_back(
    owner_client, strategy
):
    html = owner_client.get(reverse("strategies:edit", args=[strategy.pk])).content.decode()
    assert '<option value="fixed_quantity" selected>' in html
    assert 'name="sizing_quantity"' in html and 'value="25.0"' in html
    assert '<option value="limit" selected>' in html and 'value="12.5"' in html
    assert "checked" in _input(html, "reprice_limit")

    other = owner_client.get(
        SIZING, {"sizing_method": "kelly", "strategy": strategy.pk}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'name="sizing_fraction"' in other and 'value="0.5"' in other  # Kelly's defaults
    back = owner_client.get(
        SIZING, {"sizing_method": "fixed_quantity", "strategy": strategy.pk}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'value="25.0"' in back


def test_sizing_fields_of_another_users_strategy_is_404(owner_client, other_user, other_account):
    foreign = StrategyFactory(owner=other_user, account=other_account)
    response = owner_client.get(SIZING, {"sizing_method": "kelly", "strategy": foreign.pk})
    assert response.status_code == 404


def test_create_with_execution_settings(owner_client, user, account, instrument):
    response = owner_client.post(
        CREATE,
        form_data(
            account,
            sizing_method="fixed_money",
            sizing_amount="5000",
            entry_order_type="limit",
            limit_offset_bps="15",
            reprice_limit="on",
        ),
    )
    assert response.status_code == 302, response.content.decode()
    strategy = Strategy.objects.get(owner=user)
    assert (strategy.sizing_method, strategy.sizing_params) == ("fixed_money", {"amount": 5000.0})
    assert (strategy.entry_order_type, strategy.limit_offset_bps, strategy.reprice_limit) == (
        "limit",
        D("15"),
        True,
    )


def test_blank_sizing_parameters_take_their_defaults(owner_client, user, account, instrument):
    response = owner_client.post(CREATE, form_data(account, sizing_method="kelly"))
    assert response.status_code == 302
    strategy = Strategy.objects.get(owner=user)
    assert strategy.sizing_params == {"win_rate": 0.5, "payoff_ratio": 1.5, "fraction": 0.5}
    assert strategy.reprice_limit is False


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"sizing_pct": "150"}, "sizing_pct", "must be at most 100"),
        ({"sizing_pct": "lots"}, "sizing_pct", "must be a number"),
        ({"sizing_pct": "0"}, "sizing_pct", "must be greater than 0"),
        (
            {"sizing_method": "volatility", "sizing_atr_multiple": "-1"},
            "sizing_atr_multiple",
            "must be at least 0",
        ),
        ({"sizing_method": "martingale"}, "sizing_method", "Select a valid choice"),
        ({"entry_order_type": "stop"}, "entry_order_type", "Select a valid choice"),
        ({"limit_offset_bps": "5000"}, "limit_offset_bps", "0 to 1000 basis points"),
        ({"limit_offset_bps": "abc"}, "limit_offset_bps", "Enter a number."),
    ],
)
def test_invalid_settings_are_inline_422_naming_the_field_and_write_nothing(
    owner_client, account, instrument, overrides, field, message
):
    response = owner_client.post(CREATE, form_data(account, **overrides), HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert message in _errors_for(response.content.decode(), field)
    assert not Strategy.objects.exists()


def test_edit_saves_settings_and_an_error_changes_nothing(owner_client, strategy):
    url = reverse("strategies:edit", args=[strategy.pk])
    base = form_data(strategy.account, name="Sized", symbols="AAPL")
    bad = owner_client.post(
        url, {**base, "sizing_method": "pct_risk", "sizing_risk_pct": "101"}, HTTP_HX_REQUEST="true"
    )
    assert bad.status_code == 422
    assert "must be at most 100" in _errors_for(bad.content.decode(), "sizing_risk_pct")
    strategy.refresh_from_db()
    assert (strategy.sizing_method, strategy.sizing_params) == (
        "fixed_quantity",
        {"quantity": 25.0},
    )
    assert strategy.entry_order_type == "limit" and strategy.reprice_limit is True

    good = owner_client.post(url, {**base, "sizing_method": "pct_risk", "sizing_risk_pct": "0.5"})
    assert good.status_code == 302
    strategy.refresh_from_db()
    assert (strategy.sizing_method, strategy.sizing_params) == ("pct_risk", {"risk_pct": 0.5})
    assert strategy.entry_order_type == "market" and strategy.reprice_limit is False


def test_a_form_without_the_execution_section_leaves_it_unchanged(owner_client, strategy):
    data = form_data(strategy.account, name="Renamed", symbols="AAPL")
    for name in ("sizing_method", "sizing_pct", "entry_order_type", "limit_offset_bps"):
        data.pop(name)
    response = owner_client.post(reverse("strategies:edit", args=[strategy.pk]), data)
    assert response.status_code == 302
    strategy.refresh_from_db()
    assert strategy.name == "Renamed"
    assert (strategy.sizing_method, strategy.sizing_params) == (
        "fixed_quantity",
        {"quantity": 25.0},
    )
    assert (strategy.entry_order_type, strategy.reprice_limit) == ("limit", True)


# --- the API ------------------------------------------------------------------------------


def api_body(account, **overrides):
    body = {
        "name": "Sized by API",
        "account": account.pk,
        "kind": "sma_crossover",
        "symbols": ["AAPL"],
    }
    body.update(overrides)
    return body


def test_api_create_with_settings(api_client, account, instrument):
    response = api_client.post(
        STRATEGIES,
        api_body(
            account,
            sizing_method="volatility",
            sizing_params={"risk_pct": "0.75"},
            entry_order_type="limit",
            limit_offset_bps="7.25",
            reprice_limit=True,
        ),
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["sizing_method"] == "volatility"
    assert body["sizing_params"] == {"risk_pct": 0.75, "atr_multiple": 2.0}
    assert (body["entry_order_type"], body["limit_offset_bps"], body["reprice_limit"]) == (
        "limit",
        "7.25",
        True,
    )
    stored = Strategy.objects.get(pk=body["id"])
    assert stored.sizing_params == body["sizing_params"] and stored.limit_offset_bps == D("7.25")


def test_api_create_defaults(api_client, account, instrument):
    body = api_client.post(STRATEGIES, api_body(account), format="json").json()
    assert (body["sizing_method"], body["sizing_params"]) == ("pct_equity", {"pct": 10.0})
    assert (body["entry_order_type"], body["reprice_limit"]) == ("market", False)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"sizing_params": {"pct": 250}}, "sizing_params.pct", "must be at most 100"),
        ({"sizing_params": {"leverage": 2}}, "sizing_params.leverage", "unknown parameter"),
        ({"sizing_method": "martingale"}, "sizing_method", "Sizing method must be one of"),
        ({"entry_order_type": "stop"}, "entry_order_type", "must be market or limit"),
        ({"limit_offset_bps": "1000.5"}, "limit_offset_bps", "0 to 1000 basis points"),
        ({"limit_offset_bps": "1.255"}, "limit_offset_bps", "no more than 2 decimal places"),
        ({"sizing_params": [1]}, "sizing_params", "Expected a dictionary"),
        ({"reprice_limit": "maybe"}, "reprice_limit", "Must be a valid boolean."),
    ],
)
def test_api_invalid_settings_are_400_naming_the_field(
    api_client, account, instrument, overrides, field, message
):
    response = api_client.post(STRATEGIES, api_body(account, **overrides), format="json")
    assert response.status_code == 400, response.json()
    errors = response.json()["errors"]
    assert field in errors and message in " ".join(errors[field]), errors
    assert not Strategy.objects.exists()


def test_api_patch_settings(api_client, strategy):
    url = f"{STRATEGIES}{strategy.pk}/"
    response = api_client.patch(url, {"sizing_params": {"quantity": 40}}, format="json")
    assert response.status_code == 200
    assert response.json()["sizing_params"] == {"quantity": 40.0}
    # Another method starts from its own defaults unless parameters are sent.
    body = api_client.patch(url, {"sizing_method": "pct_equity"}, format="json").json()
    assert (body["sizing_method"], body["sizing_params"]) == ("pct_equity", {"pct": 10.0})
    body = api_client.patch(url, {"reprice_limit": False}, format="json").json()
    assert body["reprice_limit"] is False and body["entry_order_type"] == "limit"


def test_api_invalid_patch_changes_nothing(api_client, strategy):
    before = Strategy.objects.filter(pk=strategy.pk).values().get()
    response = api_client.patch(
        f"{STRATEGIES}{strategy.pk}/",
        {"name": "Changed", "sizing_method": "kelly", "sizing_params": {"win_rate": 2}},
        format="json",
    )
    assert response.status_code == 400
    assert "sizing_params.win_rate" in response.json()["errors"]
    assert Strategy.objects.filter(pk=strategy.pk).values().get() == before
