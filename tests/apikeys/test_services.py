"""The API key services against the fake Alpaca: each action, its refusals, its audit row."""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.services import trading_account_create
from apps.apikeys.audit import AuditContext
from apps.apikeys.brokers import AlpacaCredentials
from apps.apikeys.crypto import Secret
from apps.apikeys.fields import reveal
from apps.apikeys.models import ApiKey, ApiKeyAuditLog
from apps.apikeys.selectors import api_key_history, api_key_usage
from apps.apikeys.services import (
    BrokerUnavailable,
    CredentialsUnavailable,
    api_key_create,
    api_key_credentials_for_use,
    api_key_delete,
    api_key_revoke,
    api_key_rotate,
    api_key_update,
    api_key_verify,
)
from apps.core.errors import Conflict, ValidationFailed
from tests.apikeys.conftest import (
    KEY_ID,
    KEY_ID_2,
    SECRET,
    SECRET_2,
    audit_rows,
    last_audit,
    store_key,
)
from tests.fakes.alpaca_server import FakeAccount

pytestmark = pytest.mark.django_db


# --- create ---------------------------------------------------------------------------------


def test_create_stores_encrypted_credentials_masks_and_an_audit_row(user, alpaca_account, ctx):
    key = store_key(user, ctx=ctx, account=alpaca_account)

    assert key.status == "active" and key.account == alpaca_account
    assert key.key_id_masked.endswith(KEY_ID[-4:]) and key.secret_masked.endswith(SECRET[-4:])
    assert len(key.fingerprint) == 32
    assert key.last_verified_at is None
    entry = last_audit(action="create")
    assert (entry.success, entry.api_key_id, entry.owner_id, entry.actor_id) == (
        True,
        key.pk,
        user.pk,
        user.pk,
    )
    assert entry.ip_address == "203.0.113.9" and entry.user_agent == "pytest"
    assert entry.channel == "api" and entry.actor_username == "alice"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "  "}, "name"),
        ({"environment": "sandbox"}, "environment"),
        ({"key_id": "short"}, "key_id"),
        ({"key_id": "PK with spaces 00000000"}, "key_id"),
        ({"secret": "tooshort"}, "secret_key"),
        ({"secret": "has a space in it 0000000000000000000"}, "secret_key"),
    ],
)
def test_create_refuses_bad_input_names_the_field_and_audits_the_failure(
    user, ctx, overrides, field
):
    with pytest.raises(ValidationFailed) as caught:
        store_key(user, ctx=ctx, **overrides)
    assert field in caught.value.fields
    sent = overrides.get("secret") or overrides.get("key_id")
    if sent:
        assert sent not in str(caught.value.as_dict())
    assert ApiKey.objects.count() == 0
    entry = last_audit(action="create")
    assert entry.success is False and entry.reason.startswith("invalid:")
    assert entry.api_key_id is None and entry.owner_id == user.pk


def test_create_refuses_the_same_secret_twice(user, ctx, key):
    with pytest.raises(Conflict) as caught:
        store_key(user, ctx=ctx, name="Again", key_id=KEY_ID_2)
    assert caught.value.code == "duplicate_key"
    assert ApiKey.objects.filter(owner=user).count() == 1


def test_create_refuses_a_name_in_use(user, ctx, key):
    with pytest.raises(Conflict) as caught:
        store_key(user, ctx=ctx, name="Main", key_id=KEY_ID_2, secret=SECRET_2)
    assert caught.value.code == "duplicate_name"
    assert last_audit(action="create").reason.startswith("duplicate_name")


def test_create_account_rules(user, ctx, key, alpaca_account, other_alpaca_account):
    paper = trading_account_create(owner=user, name="Paper one")
    for account, code in (
        (alpaca_account, "account_has_key"),
        (paper, "account_not_alpaca"),
        (other_alpaca_account, "invalid"),
    ):
        with pytest.raises((Conflict, ValidationFailed)) as caught:
            store_key(
                user, ctx=ctx, name="Other", key_id=KEY_ID_2, secret=SECRET_2, account=account
            )
        assert caught.value.code == code
        assert "account" in caught.value.fields
    assert ApiKey.objects.count() == 1


def test_create_refuses_a_past_expiry(user, ctx):
    with pytest.raises(ValidationFailed) as caught:
        store_key(user, ctx=ctx, expires_at=timezone.now() - timedelta(minutes=1))
    assert "expires_at" in caught.value.fields


def test_create_with_verify_asks_alpaca_first(user, ctx, fake_alpaca):
    account = fake_alpaca.add_key(KEY_ID, SECRET).account
    key = store_key(user, ctx=ctx, verify=True)
    assert key.last_verification_ok is True and key.broker_account_id == account.id
    assert key.last_verified_at is not None and key.broker_account_status == "ACTIVE"
    (request,) = fake_alpaca.requests_to("/v2/account")
    assert request.key_id == KEY_ID and request.secret == SECRET


def test_create_with_verify_refuses_credentials_alpaca_refuses(user, ctx, fake_alpaca):
    with pytest.raises(ValidationFailed) as caught:
        store_key(user, ctx=ctx, verify=True)
    assert caught.value.code == "credentials_rejected"
    assert "401" in caught.value.message
    assert ApiKey.objects.count() == 0
    assert last_audit(action="create").reason.startswith("credentials_rejected")


# --- verify ---------------------------------------------------------------------------------


def test_verify_accepted_records_the_result(key, ctx, fake_alpaca):
    account = fake_alpaca.add_key(KEY_ID, SECRET).account
    result = api_key_verify(api_key=key, context=ctx)
    assert result.verified and not result.rejected
    key.refresh_from_db()
    assert key.last_verification_ok is True and key.status == "active"
    assert key.broker_account_id == account.id
    assert "active" in key.last_verification_message.lower()
    entry = last_audit(action="verify")
    assert entry.success and entry.api_key_id == key.pk and entry.data["http_status"] == 200


@pytest.mark.parametrize("status", [401, 403])
def test_verify_refused_marks_the_key_invalid(key, ctx, fake_alpaca, status):
    fake_alpaca.unauthorized_status = status
    try:
        result = api_key_verify(api_key=key, context=ctx)
    finally:
        fake_alpaca.unauthorized_status = 401
    assert result.rejected and not result.verified
    assert f"({status}: request is not authorized)" in result.message
    key.refresh_from_db()
    assert key.status == "invalid" and key.last_verification_ok is False
    entry = last_audit(action="verify")
    assert entry.success is False and "Alpaca refused" in entry.reason


def test_verify_accepted_again_makes_an_invalid_key_active(key, ctx, fake_alpaca):
    api_key_verify(api_key=key, context=ctx)
    fake_alpaca.add_key(KEY_ID, SECRET)
    key.refresh_from_db()
    assert key.status == "invalid"
    api_key_verify(api_key=key, context=ctx)
    key.refresh_from_db()
    assert key.status == "active" and key.status_reason == ""


@pytest.mark.parametrize(
    ("status", "text"), [(429, "rate limiting"), (500, r"unavailable \(500\)"), (503, "503")]
)
def test_verify_when_alpaca_fails_changes_nothing(key, ctx, fake_alpaca, status, text):
    fake_alpaca.add_key(KEY_ID, SECRET)
    fake_alpaca.fail_next(status, path="/v2/account")
    with pytest.raises(BrokerUnavailable, match=text) as caught:
        api_key_verify(api_key=key, context=ctx)
    assert caught.value.status_code == 503
    key.refresh_from_db()
    assert key.status == "active" and key.last_verified_at is None
    assert len(fake_alpaca.requests_to("/v2/account")) == 1  # no hidden retries
    assert last_audit(action="verify").reason.startswith("broker_unavailable")


def test_verify_times_out_instead_of_hanging(key, ctx, fake_alpaca, settings):
    settings.ALPACA_TIMEOUT_SECONDS = 0.3
    fake_alpaca.add_key(KEY_ID, SECRET)
    fake_alpaca.slow_next(1.5, path="/v2/account")
    with pytest.raises(BrokerUnavailable, match="did not answer in time"):
        api_key_verify(api_key=key, context=ctx)


def test_verify_when_alpaca_is_down(key, ctx, settings):
    settings.ALPACA_PAPER_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    with pytest.raises(BrokerUnavailable, match="could not be reached"):
        api_key_verify(api_key=key, context=ctx)


def test_verify_is_rate_limited_per_user(key, ctx, fake_alpaca, settings):
    settings.APIKEYS_VERIFY_RATE = "2/hour"
    fake_alpaca.add_key(KEY_ID, SECRET)
    api_key_verify(api_key=key, context=ctx)
    api_key_verify(api_key=key, context=ctx)
    with pytest.raises(Exception) as caught:
        api_key_verify(api_key=key, context=ctx)
    assert caught.value.code == "rate_limited" and caught.value.status_code == 429
    assert 0 < caught.value.retry_after <= 3600
    assert len(fake_alpaca.requests_to("/v2/account")) == 2
    assert last_audit(action="verify").reason.startswith("rate_limited")


# --- rotate ---------------------------------------------------------------------------------


def test_rotate_replaces_the_key_and_keeps_the_history(key, ctx, fake_alpaca, alpaca_account):
    account = fake_alpaca.add_key(KEY_ID, SECRET).account
    api_key_verify(api_key=key, context=ctx)
    fake_alpaca.add_key(KEY_ID_2, SECRET_2, account=account)
    key.refresh_from_db()

    new = api_key_rotate(api_key=key, key_id=KEY_ID_2, secret_key=SECRET_2, context=ctx)

    old = ApiKey.objects.get(pk=key.pk)
    assert old.status == "rotated" and old.retired_at is not None
    assert old.key_id is None and old.secret is None  # credentials erased
    assert old.key_id_masked.endswith(KEY_ID[-4:]) and old.fingerprint == key.fingerprint
    assert new.rotated_from_id == old.pk and new.lineage == old.lineage
    assert new.status == "active" and new.account == alpaca_account and new.name == old.name
    assert reveal(new, "key_id") == KEY_ID_2 and reveal(new, "secret") == SECRET_2
    assert new.last_verification_ok is True
    assert [k.pk for k in api_key_history(api_key=new)] == [old.pk, new.pk]
    rotate_row = last_audit(action="rotate")
    assert rotate_row.success and rotate_row.api_key_id == old.pk
    assert rotate_row.data["new_key"] == new.pk
    assert last_audit(action="create", api_key_id=new.pk).data == {"rotated_from": old.pk}
    creds = api_key_credentials_for_use(account=alpaca_account, purpose="submit_order")
    assert (creds.key_id, creds.secret_key) == (KEY_ID_2, SECRET_2)


def test_rotate_refuses_keys_alpaca_refuses_and_keeps_the_old_one(key, ctx, fake_alpaca):
    with pytest.raises(ValidationFailed) as caught:
        api_key_rotate(api_key=key, key_id=KEY_ID_2, secret_key=SECRET_2, context=ctx)
    assert caught.value.code == "credentials_rejected"
    key.refresh_from_db()
    assert key.status == "active" and reveal(key, "secret") == SECRET
    assert ApiKey.objects.count() == 1
    assert last_audit(action="rotate").success is False


def test_rotate_refuses_a_key_of_another_alpaca_account(key, ctx, fake_alpaca):
    fake_alpaca.add_key(KEY_ID, SECRET)
    api_key_verify(api_key=key, context=ctx)
    fake_alpaca.add_key(KEY_ID_2, SECRET_2, account=FakeAccount())
    key.refresh_from_db()
    with pytest.raises(Conflict) as caught:
        api_key_rotate(api_key=key, key_id=KEY_ID_2, secret_key=SECRET_2, context=ctx)
    assert caught.value.code == "different_broker_account"
    assert ApiKey.objects.get(pk=key.pk).status == "active"


def test_rotate_refuses_the_same_secret_and_retired_keys(key, ctx):
    with pytest.raises(ValidationFailed) as caught:
        api_key_rotate(api_key=key, key_id=KEY_ID_2, secret_key=SECRET, context=ctx, verify=False)
    assert caught.value.code == "same_credentials"
    new = api_key_rotate(
        api_key=key, key_id=KEY_ID_2, secret_key=SECRET_2, context=ctx, verify=False
    )
    assert new.last_verified_at is None
    with pytest.raises(Conflict) as caught:
        api_key_rotate(api_key=key, key_id=KEY_ID, secret_key="q" * 40, context=ctx, verify=False)
    assert caught.value.code == "key_retired"


# --- update, revoke, delete -----------------------------------------------------------------


def test_update_changes_name_environment_account_and_expiry(user, key, ctx, fake_alpaca):
    fake_alpaca.add_key(KEY_ID, SECRET)
    api_key_verify(api_key=key, context=ctx)
    later = timezone.now() + timedelta(days=30)
    key = api_key_update(
        api_key=key, name="Renamed", environment="live", account=None, expires_at=later, context=ctx
    )
    key.refresh_from_db()
    assert (key.name, key.environment, key.account, key.expires_at) == (
        "Renamed",
        "live",
        None,
        later,
    )
    # A new environment needs a new verification.
    assert key.last_verified_at is None and key.broker_account_id == ""
    assert reveal(key, "secret") == SECRET  # credentials untouched
    assert last_audit(action="update").data == {
        "changed": ["account", "environment", "expires_at", "name"]
    }


def test_revoke_erases_credentials_and_keeps_the_row(key, ctx, alpaca_account):
    api_key_revoke(api_key=key, context=ctx)
    key.refresh_from_db()
    assert key.status == "revoked" and key.key_id is None and key.secret is None
    assert key.deleted_at is None and key.retired_at is not None
    with pytest.raises(CredentialsUnavailable) as caught:
        api_key_credentials_for_use(account=alpaca_account, purpose="submit_order")
    assert caught.value.code == "api_key_missing"
    with pytest.raises(Conflict):
        api_key_revoke(api_key=key, context=ctx)
    with pytest.raises(Conflict):
        api_key_update(api_key=key, name="x", context=ctx)
    assert [r.success for r in audit_rows(action="revoke")] == [True, False]


def test_delete_revokes_hides_and_keeps_the_audit(user, key, ctx):
    api_key_delete(api_key=key, context=ctx)
    key.refresh_from_db()
    assert key.status == "revoked" and key.deleted_at is not None
    assert ApiKeyAuditLog.objects.filter(api_key=key).count() >= 2
    api_key_delete(api_key=key, context=ctx)  # again: nothing more to do, still fine
    assert [r.success for r in audit_rows(action="delete")] == [True, True]


# --- the execution path ---------------------------------------------------------------------


def test_credentials_for_use_decrypts_counts_and_audits(key, alpaca_account, fake_alpaca):
    creds = api_key_credentials_for_use(account=alpaca_account, purpose="submit_order")
    assert isinstance(creds, AlpacaCredentials)
    assert (creds.key_id, creds.secret_key, creds.paper) == (KEY_ID, SECRET, True)
    assert creds.base_url == fake_alpaca.url and creds.api_key_id == key.pk
    assert SECRET not in repr(creds) and KEY_ID not in repr(creds) and SECRET not in str(creds)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(creds)
    api_key_credentials_for_use(account=alpaca_account, purpose="cancel_order")
    key.refresh_from_db()
    assert key.use_count == 2 and key.last_used_at is not None
    uses = audit_rows(action="use")
    assert [(u.purpose, u.success, u.channel, u.actor_id) for u in uses] == [
        ("submit_order", True, "system", None),
        ("cancel_order", True, "system", None),
    ]
    usage = api_key_usage(api_key=key)
    assert usage.uses == 2 and usage.uses_by_purpose == {"cancel_order": 1, "submit_order": 1}
    assert usage.daily[-1].uses == 2


def test_credentials_for_use_refusals_are_audited(user, key, alpaca_account, ctx, fake_alpaca):
    paper = trading_account_create(owner=user, name="Paper")
    with pytest.raises(CredentialsUnavailable) as caught:
        api_key_credentials_for_use(account=paper, purpose="submit_order")
    assert caught.value.code == "api_key_not_needed"

    api_key_verify(api_key=key, context=ctx)  # refused by the fake: invalid
    with pytest.raises(CredentialsUnavailable) as caught:
        api_key_credentials_for_use(account=alpaca_account, purpose="submit_order")
    assert caught.value.code == "api_key_invalid"

    ApiKey.objects.filter(pk=key.pk).update(
        status="active", expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(CredentialsUnavailable) as caught:
        api_key_credentials_for_use(account=alpaca_account, purpose="submit_order")
    assert caught.value.code == "api_key_expired"

    failures = audit_rows(action="use", success=False)
    assert [f.reason.split(":")[0] for f in failures] == [
        "api_key_not_needed",
        "api_key_invalid",
        "api_key_expired",
    ]
    assert all(f.owner_id == user.pk for f in failures)
    assert ApiKey.objects.get(pk=key.pk).use_count == 0


def test_credentials_that_do_not_decrypt_are_refused_and_logged_without_secrets(
    key, alpaca_account, settings, caplog
):
    settings.SECRETS_MASTER_KEYS = {1: os.urandom(32)}  # the wrong master key
    with caplog.at_level(logging.DEBUG), pytest.raises(CredentialsUnavailable) as caught:
        api_key_credentials_for_use(account=alpaca_account, purpose="submit_order")
    assert caught.value.code == "api_key_undecryptable"
    assert "could not be decrypted" in caplog.text and SECRET not in caplog.text
    assert last_audit(action="use").reason.startswith("api_key_undecryptable")


def test_purpose_is_required(alpaca_account):
    with pytest.raises(ValueError):
        api_key_credentials_for_use(account=alpaca_account, purpose="")


def test_services_accept_secret_objects(user, ctx):
    key = api_key_create(
        owner=user,
        name="From secrets",
        environment="paper",
        key_id=Secret(KEY_ID),
        secret_key=Secret(SECRET),
        context=ctx,
    )
    assert reveal(key, "secret") == SECRET


def test_system_context_is_not_interactive():
    assert not AuditContext.system().is_interactive and not AuditContext.command().is_interactive
