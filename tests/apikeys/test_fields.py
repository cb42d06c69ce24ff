"""EncryptedField on real rows: what the database holds, the record identity bound into each
ciphertext, and the ways around the encryption that are closed."""

from __future__ import annotations

import io
import os
import subprocess

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from apps.apikeys.crypto import DecryptionError, Secret, token_version
from apps.apikeys.fields import EncryptedField, encrypted_models, reveal
from apps.apikeys.models import ApiKey
from tests.apikeys.conftest import KEY_ID, SECRET, store_key
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_values_are_stored_as_tokens_and_read_back(key):
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.key_id.startswith("tpsec:1:") and stored.secret.startswith("tpsec:1:")
    assert reveal(stored, "key_id") == KEY_ID
    assert reveal(stored, "secret") == SECRET
    assert stored.key_id_last4 == KEY_ID[-4:] and stored.secret_last4 == SECRET[-4:]


@pytest.mark.postgres  # a whole row as text: PostgreSQL's row-to-text cast
def test_the_raw_table_holds_no_plaintext(key):
    with connection.cursor() as cursor:
        cursor.execute("SELECT t::text FROM apikeys_apikey t")
        rows = " ".join(row[0] for row in cursor.fetchall())
        cursor.execute("SELECT t::text FROM apikeys_apikeyauditlog t")
        audit = " ".join(row[0] for row in cursor.fetchall())
    assert "tpsec:1:" in rows  # the search does look at the stored columns
    for needle in (SECRET, KEY_ID, SECRET[:12], KEY_ID[:12]):
        assert needle not in rows and needle not in audit


def test_dumpdata_holds_no_plaintext(key):
    out = io.StringIO()
    call_command("dumpdata", "apikeys", stdout=out)
    dump = out.getvalue()
    assert '"secret": "tpsec:1:' in dump
    assert SECRET not in dump and KEY_ID not in dump


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_pg_dump_of_the_database_holds_no_plaintext(user, alpaca_account):
    store_key(user, account=alpaca_account)
    settings = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": settings.get("PASSWORD") or ""}
    dump = subprocess.run(
        [
            "pg_dump",
            "--data-only",
            "-h",
            settings.get("HOST") or "127.0.0.1",
            "-p",
            str(settings.get("PORT") or 5432),
            "-U",
            settings.get("USER") or "postgres",
            settings["NAME"],
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "tpsec:1:" in dump and "COPY public.apikeys_apikey" in dump
    assert SECRET not in dump and KEY_ID not in dump


def test_a_ciphertext_copied_to_another_row_does_not_decrypt(user, key):
    second = store_key(user, name="Second", key_id="PKSECOND000000000001", secret="x" * 40)
    ApiKey.objects.filter(pk=second.pk).update(secret=key.secret)
    second.refresh_from_db()
    with pytest.raises(DecryptionError):
        reveal(second, "secret")


def test_a_ciphertext_moved_to_another_user_does_not_decrypt(key):
    key.owner = UserFactory(username="eve")
    with pytest.raises(DecryptionError):
        reveal(key, "secret")


def test_a_ciphertext_moved_to_another_field_does_not_decrypt(key):
    ApiKey.objects.filter(pk=key.pk).update(key_id=key.secret)
    key.refresh_from_db()
    with pytest.raises(DecryptionError):
        reveal(key, "key_id")


def test_a_wrong_master_key_does_not_decrypt(key, settings):
    settings.SECRETS_MASTER_KEYS = {1: os.urandom(32)}
    with pytest.raises(DecryptionError):
        reveal(ApiKey.objects.get(pk=key.pk), "secret")


def test_update_refuses_plaintext_and_secrets(key):
    with pytest.raises(ValueError, match="not a ciphertext token"), transaction.atomic():
        ApiKey.objects.filter(pk=key.pk).update(secret="plain-text-secret-000000000000")
    with pytest.raises(TypeError, match="encrypted when its row is saved"), transaction.atomic():
        ApiKey.objects.filter(pk=key.pk).update(secret=Secret("plain-text-secret-000000000000"))
    assert reveal(ApiKey.objects.get(pk=key.pk), "secret") == SECRET


def test_assigning_a_plain_string_is_refused_on_save(key):
    key.secret = "plain-text-secret-000000000000"
    with pytest.raises(ValueError, match="not a ciphertext token"), transaction.atomic():
        key.save()
    assert reveal(ApiKey.objects.get(pk=key.pk), "secret") == SECRET


def test_a_secret_assigned_is_encrypted_on_save_with_the_current_version(key, settings):
    settings.SECRETS_MASTER_KEYS = {**settings.SECRETS_MASTER_KEYS, 2: os.urandom(32)}
    settings.SECRETS_MASTER_KEY_VERSION = 2
    key.secret = Secret("z" * 40)
    assert "z" * 40 not in repr(key.secret)
    key.save(update_fields=["secret"])
    stored = ApiKey.objects.get(pk=key.pk)
    assert token_version(stored.secret) == 2
    assert reveal(stored, "secret") == "z" * 40
    assert token_version(stored.key_id) == 1  # untouched, still readable
    assert reveal(stored, "key_id") == KEY_ID


def test_encryption_needs_the_identity_first(user):
    key = ApiKey(name="x", secret=Secret("y" * 40), key_id=Secret("PK" + "1" * 18))
    with pytest.raises(ValueError, match="owner_id must be set"):
        ApiKey._meta.get_field("secret").associated_data_for(key)


def test_the_field_is_never_editable_in_forms_and_deconstructs_short():
    field = ApiKey._meta.get_field("secret")
    assert field.formfield() is None and not field.editable
    _name, path, args, kwargs = field.deconstruct()
    assert path == "apps.apikeys.fields.EncryptedField"
    assert kwargs == {"associated_data": ["owner_id", "uid"], "fingerprint_field": "fingerprint"}
    clone = EncryptedField(*args, **kwargs)
    assert clone.null and clone.blank and not clone.editable


def test_every_encrypted_model_is_found_for_rotation():
    found = {model._meta.label: [f.name for f in fields] for model, fields in encrypted_models()}
    assert found["apikeys.ApiKey"] == ["key_id", "secret"]


def test_system_check_catches_a_misnamed_associated_field():
    field = EncryptedField(associated_data=("nope",))
    field.set_attributes_from_name("token")
    field.model = ApiKey
    assert [e.id for e in field.check()] == ["apikeys.E001"]
