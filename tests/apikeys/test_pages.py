"""The API key pages through Django's test client, as the browser's HTMX calls them."""

from __future__ import annotations

import json
import re

import pytest

from apps.apikeys.models import ApiKey
from tests.apikeys.conftest import KEY_ID, KEY_ID_2, SECRET, SECRET_2, last_audit

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
LIST = "/api-keys/"


@pytest.fixture
def browser(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def other_browser(client, other_user):
    from django.test import Client

    other = Client()
    other.force_login(other_user)
    return other


def page(key, suffix=""):
    return f"/api-keys/{key.pk}/{suffix}"


def html(response) -> str:
    return response.content.decode()


def assert_no_secrets(response) -> None:
    text = html(response)
    for needle in (SECRET, KEY_ID, SECRET_2, KEY_ID_2, "tpsec:"):
        assert needle not in text


def triggers(response) -> dict:
    return json.loads(response.get("HX-Trigger") or "{}")


def form_data(**overrides):
    data = {
        "name": "Main",
        "environment": "paper",
        "key_id": KEY_ID,
        "secret_key": SECRET,
        "account": "",
        "expires_on": "",
    }
    data.update(overrides)
    return data


def test_list_page_shows_keys_with_status_and_verification(browser, key):
    response = browser.get(LIST)
    assert response.status_code == 200
    text = html(response)
    assert 'id="keys-table"' in text and "Main" in text
    assert "\u2022" * 8 + KEY_ID[-4:] in text
    assert 'data-status="active"' in text and "never" in text
    assert key.fingerprint[:16] in text
    assert re.search(r'<a href="/api-keys/"[^>]*class="active"', text)  # navigation entry
    assert_no_secrets(response)
    entry = last_audit(action="list")
    assert entry.success and entry.channel == "page"


def test_add_a_key_over_htmx(browser, user, alpaca_account):
    response = browser.post(LIST, form_data(account=alpaca_account.pk), **HX)
    assert response.status_code == 200
    key = ApiKey.objects.get(owner=user)
    assert key.account == alpaca_account and key.name == "Main"
    text = html(response)
    assert text.lstrip().startswith('<div id="keys-panel"') and f'data-key="{key.pk}"' in text
    assert triggers(response)["toast"]["message"].startswith("Stored Main")
    assert_no_secrets(response)
    assert last_audit(action="create").channel == "page"


def test_add_without_htmx_redirects_to_the_key(browser, user):
    response = browser.post(LIST, form_data())
    key = ApiKey.objects.get(owner=user)
    assert response.status_code == 302 and response["Location"] == page(key)


def test_a_form_with_errors_never_renders_the_secret_back(browser):
    response = browser.post(LIST, form_data(name=""), **HX)
    assert response.status_code == 422
    text = html(response)
    assert 'data-error-for="name"' in text
    assert_no_secrets(response)
    assert re.search(r'<input type="password" name="secret_key"(?![^>]*value=)', text)
    assert ApiKey.objects.count() == 0


def test_a_refused_key_shows_the_reason_inline(browser, fake_alpaca):
    response = browser.post(LIST, form_data(verify="on"), **HX)
    assert response.status_code == 422
    assert "Alpaca refused these credentials" in html(response)
    assert_no_secrets(response)


def test_the_detail_page(browser, key):
    response = browser.get(page(key))
    assert response.status_code == 200
    text = html(response)
    for part in ('id="key-summary"', 'id="key-verify"', 'id="key-rotate"', 'id="key-edit"'):
        assert part in text
    assert 'id="key-audit"' in text and 'data-action="create"' in text
    assert key.fingerprint in text
    assert_no_secrets(response)
    assert last_audit(action="view").channel == "page"


def test_verify_button_shows_the_result_inline(browser, key, fake_alpaca):
    fake_alpaca.add_key(KEY_ID, SECRET)
    response = browser.post(page(key, "verify/"), **HX)
    assert response.status_code == 200
    assert 'data-outcome="verified"' in html(response)
    assert "apikeys-changed" in triggers(response)
    summary = browser.get(page(key), **HX)  # the summary refreshes itself on that event
    assert html(summary).lstrip().startswith('<section class="card" id="key-summary"')
    assert "Alpaca account active" in html(summary)


def test_verify_refused_and_broker_down_inline(browser, key, fake_alpaca):
    response = browser.post(page(key, "verify/"), **HX)
    assert response.status_code == 200 and 'data-outcome="rejected"' in html(response)
    assert ApiKey.objects.get(pk=key.pk).status == "invalid"
    fake_alpaca.fail_next(500)
    response = browser.post(page(key, "verify/"), **HX)
    assert response.status_code == 409
    assert 'data-outcome="broker_unavailable"' in html(response)
    assert "unavailable (500)" in html(response)


def test_rotate_over_htmx(browser, key, fake_alpaca):
    fake_alpaca.add_key(KEY_ID_2, SECRET_2)
    response = browser.post(
        page(key, "rotate/"), {"key_id": KEY_ID_2, "secret_key": SECRET_2, "verify": "on"}, **HX
    )
    assert response.status_code == 200
    new = ApiKey.objects.get(rotated_from=key)
    text = html(response)
    assert 'data-outcome="rotated"' in text and page(new) in text
    assert "apikeys-changed" in triggers(response)
    assert_no_secrets(response)
    assert ApiKey.objects.get(pk=key.pk).status == "rotated"


def test_rotate_errors_stay_in_the_form(browser, key, fake_alpaca):
    response = browser.post(
        page(key, "rotate/"), {"key_id": KEY_ID_2, "secret_key": SECRET_2, "verify": "on"}, **HX
    )
    assert response.status_code == 422
    assert "Alpaca refused these credentials" in html(response)
    assert_no_secrets(response)
    response = browser.post(page(key, "rotate/"), {"key_id": "", "secret_key": ""}, **HX)
    assert response.status_code == 422 and 'data-error-for="key_id"' in html(response)
    assert ApiKey.objects.count() == 1


def test_edit_over_htmx(browser, key):
    response = browser.post(
        page(key, "edit/"), {"name": "Renamed", "environment": "live", "account": ""}, **HX
    )
    assert response.status_code == 200 and 'value="Renamed"' in html(response)
    key.refresh_from_db()
    assert (key.name, key.environment, key.account) == ("Renamed", "live", None)
    response = browser.post(page(key, "edit/"), {"name": "", "environment": "live"}, **HX)
    assert response.status_code == 422 and 'data-error-for="name"' in html(response)


def test_revoke_and_delete(browser, key):
    response = browser.post(page(key, "revoke/"), **HX)
    assert response.status_code == 200 and response["HX-Redirect"] == page(key)
    assert ApiKey.objects.get(pk=key.pk).status == "revoked"
    response = browser.post(page(key, "delete/"))
    assert response.status_code == 302 and response["Location"] == LIST
    assert f'data-key="{key.pk}"' not in html(browser.get(LIST))


def test_audit_partial(browser, key):
    response = browser.get(page(key, "audit/"), **HX)
    assert response.status_code == 200
    text = html(response)
    assert text.lstrip().startswith('<div id="key-audit"')
    # The read itself is recorded first, then the trail is shown (with that read on top).
    assert 'data-action="create"' in text and 'data-action="audit"' in text
    assert last_audit(action="audit").channel == "page"


@pytest.mark.parametrize(
    ("method", "suffix", "action"),
    [
        ("get", "", "view"),
        ("post", "edit/", "update"),
        ("post", "verify/", "verify"),
        ("post", "rotate/", "rotate"),
        ("post", "revoke/", "revoke"),
        ("post", "delete/", "delete"),
        ("get", "audit/", "audit"),
    ],
)
def test_another_users_key_page_answers_404_and_is_audited(
    other_browser, other_user, key, method, suffix, action, fake_alpaca
):
    data = {"name": "x", "environment": "paper", "key_id": KEY_ID_2, "secret_key": SECRET_2}
    response = getattr(other_browser, method)(page(key, suffix), data if method == "post" else None)
    assert response.status_code == 404
    assert_no_secrets(response)
    assert ApiKey.objects.get(pk=key.pk).status == "active"
    entry = last_audit()
    assert (entry.action, entry.success, entry.api_key_id, entry.actor_id, entry.channel) == (
        action,
        False,
        key.pk,
        other_user.pk,
        "page",
    )


def test_anonymous_visitors_are_sent_to_log_in(client, key):
    response = client.get(page(key))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_locked_out_users_get_a_429_page(other_browser, key, settings):
    settings.APIKEYS_FAILED_ATTEMPTS_RATE = "2/15min"
    other_browser.get(page(key))
    other_browser.get(page(key))
    response = other_browser.get(LIST)
    assert response.status_code == 429 and 'data-outcome="rate_limited"' in html(response)
    assert int(response["Retry-After"]) > 0


def test_a_rotated_key_page_shows_the_history_and_no_actions(browser, key, alpaca_account, ctx):
    from apps.apikeys.services import api_key_credentials_for_use, api_key_rotate

    api_key_credentials_for_use(account=alpaca_account, purpose="submit_order")
    new = api_key_rotate(
        api_key=key, key_id=KEY_ID_2, secret_key=SECRET_2, context=ctx, verify=False
    )
    old_page = html(browser.get(page(key)))
    assert 'id="key-history"' in old_page and 'data-status="rotated"' in old_page
    assert 'id="key-verify"' not in old_page and 'id="key-rotate"' not in old_page
    assert "submit_order" in old_page  # usage by purpose
    new_page = browser.get(page(new))
    assert new_page.status_code == 200
    assert f'href="{page(key)}"' in html(new_page)  # "Replaced key #..."
    assert_no_secrets(new_page)
