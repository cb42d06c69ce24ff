"""Django admin: every model's pages answer, records stay read-only, actions do their job."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.contrib import admin
from django.urls import reverse

from apps.accounts.models import TradingAccount
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Fill, Order, OrderEvent, Position, Tag, Trade
from apps.execution.services import order_submit
from apps.strategies.models import Strategy
from tests.factories import BarFactory, StrategyFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(superuser)
    return client


@pytest.fixture
def trading(account, instrument):
    BarFactory(instrument=instrument, volume=1e6)
    order_submit(account=account, intent=OrderIntent(symbol="AAPL", side="buy", quantity=D("5")))
    resting = order_submit(
        account=account,
        intent=OrderIntent(
            symbol="AAPL", side="buy", quantity=D("5"), order_type="limit", limit_price=D("50")
        ),
    )
    StrategyFactory(owner=account.owner, account=account)
    return resting


def test_every_registered_model_has_working_pages(admin_client, trading):
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        response = admin_client.get(changelist, {"q": "a"} if model_admin.search_fields else {})
        assert response.status_code == 200, changelist
        obj = model.objects.first()
        if obj is not None:
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            assert admin_client.get(change).status_code == 200, change


@pytest.mark.parametrize("model", [Order, OrderEvent, Fill, Position])
def test_trading_records_cannot_be_added_edited_or_deleted(admin_client, trading, model):
    model_admin = admin.site._registry[model]
    request = type(
        "R", (), {"user": UserFactory(username="root2", is_staff=True, is_superuser=True)}
    )()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, model.objects.first())
    assert not model_admin.has_delete_permission(request, model.objects.first())


def test_trade_numbers_are_read_only_but_notes_are_editable(admin_client, trading):
    trade = Trade.objects.get()
    url = reverse("admin:execution_trade_change", args=[trade.pk])
    response = admin_client.post(url, {"notes": "breakout entry", "tags": [], "net_pnl": "999999"})
    assert response.status_code == 302
    trade.refresh_from_db()
    assert trade.notes == "breakout entry"
    assert trade.net_pnl != D("999999")


def test_cancel_action_cancels_open_orders_only(admin_client, trading):
    url = reverse("admin:execution_order_changelist")
    ids = list(Order.objects.values_list("pk", flat=True))
    admin_client.post(url, {"action": "cancel_orders", "_selected_action": ids})
    trading.refresh_from_db()
    assert trading.status == "cancelled"
    assert Order.objects.filter(status="filled").count() == 1
    assert trading.events.filter(to_status="cancelled", source="admin").exists()


def test_halt_and_resume_actions(admin_client, account):
    url = reverse("admin:accounts_tradingaccount_changelist")
    admin_client.post(url, {"action": "halt_trading", "_selected_action": [account.pk]})
    account.refresh_from_db()
    assert account.status == TradingAccount.Status.HALTED and "admin" in account.status_reason
    admin_client.post(url, {"action": "resume_trading", "_selected_action": [account.pk]})
    account.refresh_from_db()
    assert account.status == TradingAccount.Status.ACTIVE


def test_strategy_admin_validates_params_with_the_library(admin_client, account, instrument):
    url = reverse("admin:strategies_strategy_add")
    data = {
        "owner": account.owner.pk,
        "account": account.pk,
        "name": "Bad",
        "kind": "sma_crossover",
        "params": '{"fast": 50, "slow": 20}',
        "instruments": [instrument.pk],
        "timeframe": "1d",
        "mode": "off",
        "description": "",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "slow" in response.content.decode()
    assert not Strategy.objects.filter(name="Bad").exists()
    data["params"] = '{"fast": 10, "slow": 20}'
    assert admin_client.post(url, data).status_code == 302
    assert Strategy.objects.get(name="Bad").params["slow"] == 20


def test_tag_admin(admin_client, user):
    Tag.objects.create(owner=user, name="breakout")
    response = admin_client.get(reverse("admin:execution_tag_changelist"), {"q": "break"})
    assert b"breakout" in response.content


def test_every_model_of_the_project_is_in_the_admin():
    from django.apps import apps

    missing = [
        model.__name__
        for model in apps.get_models()
        if model.__module__.startswith("apps.") and model not in admin.site._registry
    ]
    assert missing == []
