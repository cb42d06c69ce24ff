"""/api/v1/api-keys/ as a client calls it: every endpoint, its audit row, other users' ids,
rate limits, and no secret (plain or encrypted) in any response."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.apikeys.models import ApiKey, ApiKeyAuditLog
from tests.apikeys.conftest import KEY_ID, KEY_ID_2, SECRET, SECRET_2, last_audit

pytestmark = pytest.mark.django_db

URL = "/api/v1/api-keys/"


def detail(key) -> str:
    return f"{URL}{key.pk}/"


def assert_no_secrets(response) -> None:
    text = response.content.decode()
    for needle in (SECRET, KEY_ID, SECRET_2, KEY_ID_2, "tpsec:", "mAlLoRySeCrEt", "PKMALLORY"):
        assert needle not in text, f"{needle!r} leaked into {response.request['PATH_INFO']}"


def body(**overrides) -> dict:
    data = {"name": "Main", "environment": "paper", "key_id": KEY_ID, "secret_key": SECRET}
    data.update(overrides)
    return data


# --- each endpoint, for the owner -----------------------------------------------------------


def test_create_answers_the_masked_key(api_client, user, alpaca_account):
    response = api_client.post(URL, body(account=alpaca_account.pk), format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    key = ApiKey.objects.get()
    assert data["id"] == key.pk and data["status"] == "active"
    assert data["key_id_masked"] == "\u2022" * 8 + KEY_ID[-4:]
    assert data["secret_masked"] == "\u2022" * 8 + SECRET[-4:]
    assert data["fingerprint"] == key.fingerprint and data["account"] == alpaca_account.pk
    assert data["history"] == [
        {
            "id": key.pk,
            "status": "active",
            "key_id_masked": data["key_id_masked"],
            "fingerprint": key.fingerprint,
            "created_at": data["created_at"],
            "retired_at": None,
        }
    ]
    assert "key_id" not in data and "secret_key" not in data and "secret" not in data
    assert_no_secrets(response)
    entry = last_audit(action="create")
    assert entry.success and entry.api_key_id == key.pk and entry.channel == "api"
    assert entry.ip_address == "127.0.0.1"


def test_create_errors_name_the_field_and_never_echo_the_secret(api_client):
    junk = "not a secret but typed with spaces " + SECRET
    response = api_client.post(URL, body(secret_key=junk), format="json")
    assert response.status_code == 400
    data = response.json()
    assert data["code"] == "invalid" and "secret_key" in data["errors"]
    assert junk not in response.content.decode() and SECRET not in response.content.decode()
    too_long = "x" * 300
    response = api_client.post(URL, body(secret_key=too_long), format="json")
    assert response.status_code == 400 and too_long not in response.content.decode()
    assert ApiKey.objects.count() == 0


def test_create_with_another_users_account_is_refused(api_client, other_alpaca_account):
    response = api_client.post(URL, body(account=other_alpaca_account.pk), format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["account"] == ["No such account."]
    assert ApiKey.objects.count() == 0


def test_create_with_verify_refused_by_alpaca(api_client, fake_alpaca):
    response = api_client.post(URL, body(verify=True), format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "credentials_rejected"
    assert_no_secrets(response)


def test_list_shows_only_own_keys_and_is_audited(api_client, user, key, other_key):
    response = api_client.get(URL)
    assert response.status_code == 200
    assert [k["id"] for k in response.json()["results"]] == [key.pk]
    assert_no_secrets(response)
    entry = last_audit(action="list")
    assert entry.success and entry.owner_id == user.pk and entry.api_key_id is None


def test_list_hides_deleted_keys_unless_asked(api_client, key):
    assert api_client.delete(detail(key)).status_code == 204
    assert api_client.get(URL).json()["results"] == []
    shown = api_client.get(URL, {"include_deleted": "true"}).json()["results"]
    assert [(k["id"], k["status"]) for k in shown] == [(key.pk, "revoked")]
    assert api_client.get(URL, {"status": "revoked", "include_deleted": "1"}).json()["count"] == 1


def test_retrieve_is_audited_as_a_view(api_client, key):
    response = api_client.get(detail(key))
    assert response.status_code == 200 and response.json()["id"] == key.pk
    assert_no_secrets(response)
    entry = last_audit(action="view")
    assert entry.success and entry.api_key_id == key.pk


def test_partial_update(api_client, key):
    response = api_client.patch(detail(key), {"name": "Renamed", "account": None}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "Renamed" and response.json()["account"] is None
    assert last_audit(action="update").data == {"changed": ["account", "name"]}
    assert api_client.put(detail(key), {"name": "x"}, format="json").status_code == 405


def test_verify(api_client, key, fake_alpaca):
    fake_alpaca.add_key(KEY_ID, SECRET)
    response = api_client.post(detail(key) + "verify/")
    assert response.status_code == 200
    data = response.json()
    assert data["verified"] is True and data["rejected"] is False
    assert data["key"]["last_verification_ok"] is True
    assert_no_secrets(response)


def test_verify_refused_and_broker_down(api_client, key, fake_alpaca):
    response = api_client.post(detail(key) + "verify/")
    assert response.status_code == 200
    assert response.json()["rejected"] is True and response.json()["key"]["status"] == "invalid"
    fake_alpaca.fail_next(503)
    response = api_client.post(detail(key) + "verify/")
    assert response.status_code == 503 and response.json()["code"] == "broker_unavailable"


def test_verify_rate_limit_answers_429_with_retry_after(api_client, key, fake_alpaca, settings):
    settings.APIKEYS_VERIFY_RATE = "1/minute"
    fake_alpaca.add_key(KEY_ID, SECRET)
    assert api_client.post(detail(key) + "verify/").status_code == 200
    response = api_client.post(detail(key) + "verify/")
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert last_audit(action="verify").reason.startswith("rate_limited")


def test_rotate_answers_the_new_key(api_client, key, fake_alpaca):
    fake_alpaca.add_key(KEY_ID_2, SECRET_2)
    response = api_client.post(
        detail(key) + "rotate/", {"key_id": KEY_ID_2, "secret_key": SECRET_2}, format="json"
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["id"] != key.pk and data["rotated_from"] == key.pk
    assert [h["status"] for h in data["history"]] == ["rotated", "active"]
    assert_no_secrets(response)
    old = api_client.get(detail(key)).json()
    assert old["status"] == "rotated" and old["rotated_to"] == data["id"]


def test_rotate_refused_by_alpaca_keeps_the_key(api_client, key, fake_alpaca):
    response = api_client.post(
        detail(key) + "rotate/", {"key_id": KEY_ID_2, "secret_key": SECRET_2}, format="json"
    )
    assert response.status_code == 400 and response.json()["code"] == "credentials_rejected"
    assert_no_secrets(response)
    assert ApiKey.objects.get(pk=key.pk).status == "active"


def test_revoke_and_delete(api_client, key):
    response = api_client.post(detail(key) + "revoke/")
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert api_client.post(detail(key) + "revoke/").status_code == 409
    assert api_client.delete(detail(key)).status_code == 204
    assert api_client.get(detail(key)).json()["deleted_at"] is not None


def test_audit_log_of_a_key(api_client, key, other_api_client):
    other_api_client.get(detail(key))  # Mallory probes Alice's key
    api_client.get(detail(key))
    response = api_client.get(detail(key) + "audit/")
    assert response.status_code == 200
    rows = response.json()["results"]
    actions = [(r["action"], r["success"], r["actor"]) for r in rows]
    # Reading the audit log is itself audited, before the rows are read.
    assert actions == [
        ("audit", True, "you"),
        ("view", True, "you"),
        ("view", False, "another user"),
        ("create", True, "you"),
    ]
    probe = rows[2]
    assert probe["ip_address"] is None and probe["user_agent"] == ""
    assert rows[1]["ip_address"] == "127.0.0.1"


def test_usage_statistics(api_client, key, alpaca_account):
    from apps.apikeys.services import api_key_credentials_for_use

    for purpose in ("submit_order", "submit_order", "cancel_order"):
        api_key_credentials_for_use(account=alpaca_account, purpose=purpose)
    response = api_client.get(detail(key) + "usage/", {"days": "7"})
    assert response.status_code == 200
    data = response.json()
    assert data["use_count"] == 3 and data["uses"] == 3 and data["days"] == 7
    assert data["uses_by_purpose"] == {"cancel_order": 1, "submit_order": 2}
    assert sum(day["uses"] for day in data["daily"]) == 3
    assert api_client.get(detail(key) + "usage/", {"days": "0"}).status_code == 400
    assert last_audit(action="usage").api_key_id == key.pk


# --- another user's token on every endpoint -------------------------------------------------

ENDPOINTS = [
    ("get", "", None, "view"),
    ("patch", "", {"name": "Stolen"}, "update"),
    ("delete", "", None, "delete"),
    ("post", "verify/", None, "verify"),
    ("post", "rotate/", {"key_id": KEY_ID_2, "secret_key": SECRET_2, "verify": False}, "rotate"),
    ("post", "revoke/", None, "revoke"),
    ("get", "audit/", None, "audit"),
    ("get", "usage/", None, "usage"),
]


def alice_state(user):
    return list(ApiKey.objects.filter(owner=user).values().order_by("pk"))


@pytest.mark.parametrize(("method", "suffix", "payload", "action"), ENDPOINTS)
def test_another_users_key_answers_404_and_the_attempt_is_audited(
    other_api_client, other_user, user, key, fake_alpaca, method, suffix, payload, action
):
    fake_alpaca.add_key(KEY_ID, SECRET)
    before = alice_state(user)
    response = getattr(other_api_client, method)(detail(key) + suffix, payload, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "No such API key.", "code": "not_found"}
    assert_no_secrets(response)
    assert alice_state(user) == before
    assert fake_alpaca.requests == []  # nobody called Alpaca with Alice's key
    entry = last_audit()
    assert (entry.action, entry.success, entry.api_key_id, entry.owner_id, entry.actor_id) == (
        action,
        False,
        key.pk,
        user.pk,
        other_user.pk,
    )
    assert entry.reason.startswith("not_owner") and entry.target == str(key.pk)


@pytest.mark.parametrize(("method", "suffix", "payload", "action"), ENDPOINTS)
def test_a_missing_key_answers_404_the_same_way(api_client, user, method, suffix, payload, action):
    response = getattr(api_client, method)(f"{URL}999999/{suffix}", payload, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "No such API key.", "code": "not_found"}
    entry = last_audit()
    assert (entry.action, entry.success, entry.api_key_id, entry.target) == (
        action,
        False,
        None,
        "999999",
    )


def test_other_users_keys_never_appear_in_their_list(other_api_client, key):
    response = other_api_client.get(URL, {"include_deleted": "true"})
    assert response.status_code == 200 and response.json()["results"] == []


def test_too_many_failed_attempts_lock_the_user_out(api_client, other_api_client, key, settings):
    settings.APIKEYS_FAILED_ATTEMPTS_RATE = "3/15min"
    for _ in range(3):
        assert other_api_client.get(detail(key)).status_code == 404
    # Locked: every endpoint, their own list included, answers 429 (and says nothing more).
    for response in (other_api_client.get(detail(key)), other_api_client.get(URL)):
        assert response.status_code == 429
        assert response.json()["code"] == "too_many_failures"
        assert int(response["Retry-After"]) > 0
    refusals = list(ApiKeyAuditLog.objects.order_by("-id")[:2])
    assert [(r.action, r.reason.split(":")[0]) for r in refusals] == [
        ("list", "too_many_failures"),
        ("view", "too_many_failures"),
    ]
    assert refusals[1].api_key_id == key.pk
    # Alice is not affected by Mallory's failures.
    assert api_client.get(URL).status_code == 200


def test_anonymous_requests_are_refused(key):
    client = APIClient()
    assert client.get(URL).status_code in (401, 403)
    assert client.get(detail(key)).status_code in (401, 403)
    assert ApiKeyAuditLog.objects.filter(action="view").count() == 0


def test_the_client_address_comes_from_trusted_proxies_only(api_client, key, settings):
    api_client.get(detail(key), HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert last_audit(action="view").ip_address == "127.0.0.1"  # no proxy trusted: ignored
    settings.TRUSTED_PROXIES = ["127.0.0.0/8"]
    api_client.get(detail(key), HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.1")
    assert last_audit(action="view").ip_address == "198.51.100.1"
