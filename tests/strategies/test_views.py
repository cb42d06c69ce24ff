"""Strategy pages: list, create/edit with generated parameter fields, delete, mode switch."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.strategies.models import Strategy
from tests.factories import InstrumentFactory, StrategyFactory

pytestmark = pytest.mark.django_db
LIST = reverse("strategies:list")
CREATE = reverse("strategies:create")


@pytest.fixture
def owner_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def strategy(user, account, instrument):
    return StrategyFactory(owner=user, account=account, name="Tech trend", instruments=[instrument])


@pytest.fixture
def foreign_strategy(other_user, other_account):
    return StrategyFactory(owner=other_user, account=other_account, name="Not yours")


def form_data(owner_account, **overrides):
    data = {
        "name": "Crossover",
        "account": owner_account.pk,
        "kind": "sma_crossover",
        "symbols": "aapl",
        "timeframe": "1d",
        "mode": "off",
        "description": "",
        "param_fast": "5",
        "param_slow": "20",
    }
    data.update(overrides)
    return data


def test_pages_require_login(client, strategy):
    for url in (LIST, CREATE, reverse("strategies:edit", args=[strategy.pk])):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(
            reverse("accounts:login")
        )


def test_list_shows_own_strategies_only(owner_client, strategy, foreign_strategy):
    body = owner_client.get(LIST).content.decode()
    assert "Tech trend" in body and "SMA crossover" in body and "AAPL" in body
    assert "Not yours" not in body


def test_create_form_has_the_parameter_fields_of_the_first_kind(owner_client, account):
    body = owner_client.get(CREATE).content.decode()
    assert (
        'name="param_fast"' in body
        and 'name="param_slow"' in body
        and 'name="param_allow_short"' in body
    )
    assert f'hx-get="{reverse("strategies:params")}"' in body


def test_kind_change_renders_that_kinds_parameter_fields(owner_client, account):
    response = owner_client.get(
        reverse("strategies:params"), {"kind": "rsi_mean_reversion"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert response.status_code == 200 and 'id="param-fields"' in body and "<html" not in body
    assert 'name="param_period"' in body and 'name="param_oversold"' in body
    assert 'name="param_fast"' not in body


def test_kind_change_on_edit_keeps_the_strategys_own_values(owner_client, strategy):
    strategy.params = {"fast": 7, "slow": 40, "allow_short": False}
    strategy.save()
    body = owner_client.get(
        reverse("strategies:params"),
        {"kind": "sma_crossover", "strategy": strategy.pk},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert 'value="7"' in body and 'value="40"' in body


def test_unknown_kind_renders_no_parameter_fields(owner_client, account):
    response = owner_client.get(
        reverse("strategies:params"), {"kind": "astrology"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and "param_" not in response.content.decode()


def test_param_fields_of_another_users_strategy_is_404(owner_client, foreign_strategy):
    response = owner_client.get(
        reverse("strategies:params"), {"kind": "sma_crossover", "strategy": foreign_strategy.pk}
    )
    assert response.status_code == 404


def test_create_through_the_service(owner_client, user, account, instrument):
    response = owner_client.post(CREATE, form_data(account))
    assert response.status_code == 302 and response["Location"] == LIST
    strategy = Strategy.objects.get(owner=user, name="Crossover")
    assert strategy.params == {"fast": 5, "slow": 20, "allow_short": False}
    assert strategy.symbols == ["AAPL"]


def test_create_over_htmx_redirects_the_client(owner_client, account, instrument):
    response = owner_client.post(CREATE, form_data(account), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Redirect"] == LIST


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"param_fast": "1"}, "param_fast", "fast: must be at least 2 (got 1)"),
        (
            {"param_fast": "30", "param_slow": "20"},
            "param_slow",
            "slow: must be greater than fast (30)",
        ),
        ({"param_fast": "ten"}, "param_fast", "fast: must be an integer (got &#x27;ten&#x27;)"),
        ({"symbols": "NOPE"}, "symbols", "Unknown symbol: NOPE."),
        ({"name": "   "}, "name", "This field is required."),
    ],
)
def test_invalid_input_shows_inline_errors_and_writes_nothing(
    owner_client, account, instrument, overrides, field, message
):
    response = owner_client.post(CREATE, form_data(account, **overrides), HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    body = response.content.decode()
    assert f'data-error-for="{field}"' in body
    errors = body.split(f'data-error-for="{field}">')[1].split("</ul>")[0]
    assert message in errors
    assert not Strategy.objects.exists()


def test_duplicate_name_is_a_409_inline(owner_client, account, strategy):
    response = owner_client.post(CREATE, form_data(account, name="Tech trend"))
    assert response.status_code == 409
    assert "You already have a strategy with this name." in response.content.decode()
    assert Strategy.objects.count() == 1


def test_another_users_account_is_refused_inline(owner_client, account, other_account, instrument):
    response = owner_client.post(CREATE, form_data(account, account=other_account.pk))
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()
    assert not Strategy.objects.exists()


def test_edit_prefills_and_saves(owner_client, strategy):
    url = reverse("strategies:edit", args=[strategy.pk])
    body = owner_client.get(url).content.decode()
    assert 'value="Tech trend"' in body and 'value="AAPL"' in body and 'value="10"' in body
    InstrumentFactory(symbol="MSFT")
    response = owner_client.post(
        url,
        form_data(
            strategy.account, name="Tech trend", symbols="AAPL, MSFT", mode="paper", param_fast="12"
        ),
    )
    assert response.status_code == 302
    strategy.refresh_from_db()
    assert strategy.params["fast"] == 12 and strategy.mode == "paper"
    assert sorted(strategy.symbols) == ["AAPL", "MSFT"]


def test_edit_error_leaves_the_strategy_unchanged(owner_client, strategy):
    url = reverse("strategies:edit", args=[strategy.pk])
    response = owner_client.post(url, form_data(strategy.account, name="Renamed", param_slow="3"))
    assert response.status_code == 422
    strategy.refresh_from_db()
    assert strategy.name == "Tech trend" and strategy.params["slow"] == 30


def test_another_users_strategy_is_404_everywhere(owner_client, foreign_strategy):
    pk = foreign_strategy.pk
    assert owner_client.get(reverse("strategies:edit", args=[pk])).status_code == 404
    assert owner_client.post(reverse("strategies:edit", args=[pk]), {}).status_code == 404
    assert owner_client.get(reverse("strategies:delete", args=[pk])).status_code == 404
    assert owner_client.post(reverse("strategies:delete", args=[pk])).status_code == 404
    assert (
        owner_client.post(reverse("strategies:mode", args=[pk]), {"mode": "live"}).status_code
        == 404
    )
    foreign_strategy.refresh_from_db()
    assert foreign_strategy.mode == "off"


def test_delete_asks_for_confirmation_then_deletes(owner_client, strategy):
    url = reverse("strategies:delete", args=[strategy.pk])
    body = owner_client.get(url).content.decode()
    assert "Delete Tech trend?" in body and "Delete strategy" in body
    assert Strategy.objects.filter(pk=strategy.pk).exists()
    response = owner_client.post(url)
    assert response.status_code == 302 and response["Location"] == LIST
    assert not Strategy.objects.filter(pk=strategy.pk).exists()


def test_quick_mode_switch_returns_the_row(owner_client, strategy):
    response = owner_client.post(
        reverse("strategies:mode", args=[strategy.pk]), {"mode": "paper"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.strip().startswith(f'<tr id="strategy-{strategy.pk}"')
    assert 'class="btn btn-sm current mode-paper"' in body
    strategy.refresh_from_db()
    assert strategy.mode == "paper"


def test_quick_mode_switch_rejects_junk(owner_client, strategy):
    response = owner_client.post(
        reverse("strategies:mode", args=[strategy.pk]), {"mode": "turbo"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    strategy.refresh_from_db()
    assert strategy.mode == "off"


def test_quick_mode_switch_without_htmx_redirects(owner_client, strategy):
    response = owner_client.post(reverse("strategies:mode", args=[strategy.pk]), {"mode": "live"})
    assert response.status_code == 302
    strategy.refresh_from_db()
    assert strategy.mode == "live"
