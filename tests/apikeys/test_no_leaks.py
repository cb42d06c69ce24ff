"""Secrets never appear in logs, error reports, exceptions, repr() or templates."""

from __future__ import annotations

import logging
import sys

import pytest
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from apps.apikeys import services
from apps.apikeys.audit import AuditContext
from apps.apikeys.crypto import Secret
from apps.apikeys.models import ApiKey
from apps.apikeys.services import (
    api_key_create,
    api_key_credentials_for_use,
    api_key_rotate,
    api_key_verify,
)
from apps.apikeys.views import key_list
from tests.apikeys.conftest import KEY_ID, KEY_ID_2, SECRET, SECRET_2

pytestmark = pytest.mark.django_db

NEEDLES = (SECRET, KEY_ID, SECRET_2, KEY_ID_2)


def assert_clean(text: str) -> None:
    for needle in NEEDLES:
        assert needle not in text


def test_a_whole_key_lifecycle_logs_no_secret(
    caplog, api_client, user, alpaca_account, fake_alpaca, settings
):
    fake_alpaca.add_key(KEY_ID, SECRET)
    fake_alpaca.add_key(KEY_ID_2, SECRET_2, account=fake_alpaca.credentials[KEY_ID].account)
    with caplog.at_level(logging.DEBUG):  # urllib3, django.request, django.db ... everything
        body = {
            "name": "Main",
            "key_id": KEY_ID,
            "secret_key": SECRET,
            "account": alpaca_account.pk,
            "verify": True,
        }
        created = api_client.post("/api/v1/api-keys/", body, format="json")
        assert created.status_code == 201
        pk = created.json()["id"]
        api_client.post(f"/api/v1/api-keys/{pk}/verify/")
        api_client.post(f"/api/v1/api-keys/{pk}/rotate/", {"key_id": "bad"}, format="json")
        rotated = api_client.post(
            f"/api/v1/api-keys/{pk}/rotate/",
            {"key_id": KEY_ID_2, "secret_key": SECRET_2},
            format="json",
        )
        assert rotated.status_code == 201
        api_key_credentials_for_use(account=alpaca_account, purpose="submit_order")
        fake_alpaca.fail_next(500)
        api_client.post(f"/api/v1/api-keys/{rotated.json()['id']}/verify/")
        settings.ALPACA_PAPER_URL = "http://127.0.0.1:9"
        api_client.post(f"/api/v1/api-keys/{rotated.json()['id']}/verify/")
    assert len(caplog.records) > 5  # the capture did see the traffic
    text = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert_clean(text)


def test_reprs_never_show_secrets(key, alpaca_account, ctx):
    creds = api_key_credentials_for_use(account=alpaca_account, purpose="submit_order")
    stored = ApiKey.objects.get(pk=key.pk)
    for obj in (creds, stored, Secret(SECRET), ctx, [creds], {"k": Secret(SECRET)}):
        assert_clean(repr(obj))
        assert_clean(str(obj))


def test_error_reports_hide_the_posted_secret_and_the_locals(monkeypatch, user, alpaca_account):
    """What Django shows on a 500 page (DEBUG) or e-mails to admins: no secret."""

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "get_keyring", explode)
    request = RequestFactory().post(
        "/api-keys/",
        {"name": "Main", "environment": "paper", "key_id": KEY_ID, "secret_key": SECRET},
    )
    request.user = user
    request.session = {}
    request._messages = None
    with pytest.raises(RuntimeError) as caught:
        key_list(request)
    report = ExceptionReporter(request, caught.type, caught.value, caught.tb)
    assert "boom" in report.get_traceback_text()
    assert_clean(report.get_traceback_text())
    assert_clean(report.get_traceback_html())


def test_error_reports_of_the_service_hide_the_locals(monkeypatch, user):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "get_keyring", explode)
    try:
        api_key_create(
            owner=user,
            name="Main",
            environment="paper",
            key_id=KEY_ID,
            secret_key=SECRET,
            context=AuditContext(actor=user, channel="api"),
        )
    except RuntimeError:
        report = ExceptionReporter(None, *sys.exc_info())
        html = report.get_traceback_html()
        assert "api_key_create" in html and "Local vars" in html
        assert_clean(html)
        assert_clean(report.get_traceback_text())
    else:
        pytest.fail("the service should have failed")


def test_exceptions_of_the_services_carry_no_secret(user, key, ctx, fake_alpaca):
    caught = []
    for call in (
        lambda: api_key_rotate(api_key=key, key_id=KEY_ID_2, secret_key=SECRET_2, context=ctx),
        lambda: api_key_rotate(api_key=key, key_id=KEY_ID, secret_key=SECRET, context=ctx),
        lambda: api_key_create(
            owner=user,
            name="Main",
            environment="paper",
            key_id=KEY_ID,
            secret_key=SECRET,
            context=ctx,
        ),
        lambda: api_key_verify(api_key=key, context=ctx),
    ):
        try:
            call()
        except Exception as exc:
            caught.append(exc)
    assert len(caught) == 3  # verify is a result (rejected), the others refuse
    for exc in caught:
        assert_clean(str(exc))
        assert_clean(repr(exc))
        assert_clean(str(getattr(exc, "as_dict", dict)()))


def test_audit_rows_carry_no_secret(key, ctx, fake_alpaca, alpaca_account):
    from apps.apikeys.models import ApiKeyAuditLog

    api_key_verify(api_key=key, context=ctx)
    fake_alpaca.add_key(KEY_ID, SECRET)
    api_key_verify(api_key=key, context=ctx)
    api_key_credentials_for_use(account=alpaca_account, purpose="submit_order")
    rows = list(ApiKeyAuditLog.objects.values())
    assert rows
    assert_clean(repr(rows))
