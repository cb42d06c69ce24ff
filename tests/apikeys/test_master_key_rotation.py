"""``manage.py rotate_master_key``: end to end, interrupted and resumed (also by SIGKILL), and
the old master key retired afterwards."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection

from apps.apikeys import services
from apps.apikeys.audit import AuditContext
from apps.apikeys.crypto import Keyring, parse_master_keys, token_version
from apps.apikeys.fields import reveal
from apps.apikeys.models import ApiKey, ApiKeyAuditLog
from apps.apikeys.services import api_key_create, api_key_revoke
from tests.apikeys.conftest import b64
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

BASE_DIR = Path(django_settings.BASE_DIR)


def secret_of(i: int) -> str:
    return f"sec{i:05d}" + "s" * 32


def key_id_of(i: int) -> str:
    return f"PKROT{i:015d}"


def make_keys(count: int) -> list[ApiKey]:
    user = UserFactory(username="rotator")
    ctx = AuditContext(actor=user, channel="api")
    return [
        api_key_create(
            owner=user,
            name=f"Key {i}",
            environment="paper",
            key_id=key_id_of(i),
            secret_key=secret_of(i),
            context=ctx,
        )
        for i in range(count)
    ]


def all_readable() -> dict[int, tuple[str, str]]:
    return {
        k.pk: (reveal(k, "key_id"), reveal(k, "secret"))
        for k in ApiKey.objects.filter(status="active").order_by("pk")
    }


def versions() -> list[int]:
    return sorted(
        {
            token_version(t)
            for pair in ApiKey.objects.values_list("key_id", "secret")
            for t in pair
            if t
        }
    )


@pytest.fixture
def two_keys(settings):
    k1, k2 = settings.SECRETS_MASTER_KEYS[1], os.urandom(32)

    def add_second() -> None:
        settings.SECRETS_MASTER_KEYS = {1: k1, 2: k2}
        settings.SECRETS_MASTER_KEY_VERSION = 2

    def retire_first() -> None:
        settings.SECRETS_MASTER_KEYS = {2: k2}
        settings.SECRETS_MASTER_KEY_VERSION = 2

    return add_second, retire_first, k1, k2


def run(*args) -> str:
    out = io.StringIO()
    call_command("rotate_master_key", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_rotation_end_to_end_then_the_old_key_is_retired(two_keys):
    add_second, retire_first, _, k2 = two_keys
    keys = make_keys(23)
    api_key_revoke(api_key=keys[0], context=AuditContext.system())  # no credentials left
    expected = all_readable()
    updated_at = dict(ApiKey.objects.values_list("pk", "updated_at"))
    assert versions() == [1]

    add_second()
    with pytest.raises(CommandError, match="44 secret"):
        run("--check")
    output = run("--batch-size", "5")

    assert "Re-encrypted 22 rows" in output and "older master keys can be retired" in output
    assert versions() == [2]
    assert all_readable() == expected
    # Fingerprints follow the new master key (duplicates are still found after rotation).
    ring = Keyring({2: k2}, 2)
    for key in ApiKey.objects.filter(status="active"):
        assert key.fingerprint == ring.fingerprint(reveal(key, "secret"))
    assert dict(ApiKey.objects.values_list("pk", "updated_at")) == updated_at
    batches = ApiKeyAuditLog.objects.filter(action="reencrypt")
    assert sum(b.data["rows"] for b in batches) == 22 and batches.count() == 5
    assert all(b.channel == "command" and b.success for b in batches)

    retire_first()
    assert all_readable() == expected
    assert "older master keys can be retired" in run("--check")
    assert "Re-encrypted 0 rows" in run()


def test_an_interrupted_rotation_loses_nothing_and_resumes(two_keys, monkeypatch):
    add_second, retire_first, _, _ = two_keys
    make_keys(20)
    expected = all_readable()
    add_second()

    real = services.secrets_reencrypt_batch
    calls = {"n": 0}

    def crash_in_the_middle_of_the_second_batch(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            keyring = kwargs["keyring"]
            original = keyring.encrypt
            seen = {"n": 0}

            def encrypt(*args, **kw):
                seen["n"] += 1
                if seen["n"] == 7:
                    raise KeyboardInterrupt  # the operator pressed ^C half way
                return original(*args, **kw)

            monkeypatch.setattr(keyring, "encrypt", encrypt)
        return real(**kwargs)

    monkeypatch.setattr(
        services, "secrets_reencrypt_batch", crash_in_the_middle_of_the_second_batch
    )
    with pytest.raises(KeyboardInterrupt):
        run("--batch-size", "8")
    monkeypatch.undo()

    # The first batch committed, the second rolled back entirely: a mix, all readable.
    mixed = [token_version(k.secret) for k in ApiKey.objects.order_by("pk")]
    assert mixed == [2] * 8 + [1] * 12
    assert all_readable() == expected

    assert "Re-encrypted 12 rows" in run("--batch-size", "8")
    retire_first()
    assert versions() == [2] and all_readable() == expected


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_rotation_killed_with_sigkill_loses_nothing_and_resumes(two_keys, settings):
    add_second, retire_first, k1, k2 = two_keys
    make_keys(60)
    expected = all_readable()
    add_second()

    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER'] or 'postgres'}:{db.get('PASSWORD') or ''}@"
            f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "SECRETS_MASTER_KEYS": f"1:{b64(k1)},2:{b64(k2)}",
        "SECRETS_MASTER_KEY_VERSION": "2",
        "TESTING": "true",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rotate_master_key", "--batch-size", "10", "--pause", "0.3"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = sum(
                1
                for s in ApiKey.objects.values_list("secret", flat=True)
                if s.startswith("tpsec:2:")
            )
            if done >= 20:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL

    done = sum(
        1 for s in ApiKey.objects.values_list("secret", flat=True) if s.startswith("tpsec:2:")
    )
    assert 20 <= done < 60, "the command must have been killed half way"
    assert all_readable() == expected  # nothing lost

    assert f"Re-encrypted {60 - done} rows" in run("--batch-size", "10")
    retire_first()
    assert versions() == [2] and all_readable() == expected


def test_rows_that_do_not_decrypt_are_reported_and_left_alone(two_keys):
    add_second, _, _, _ = two_keys
    keys = make_keys(5)
    # Corrupt one row: another row's ciphertext (wrong associated data).
    ApiKey.objects.filter(pk=keys[2].pk).update(secret=keys[3].secret)
    broken = ApiKey.objects.get(pk=keys[2].pk).secret
    add_second()
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 row"):
        call_command("rotate_master_key", stdout=io.StringIO(), stderr=err)
    assert f"id={keys[2].pk}" in err.getvalue() and "Authentication failed" in err.getvalue()
    assert ApiKey.objects.get(pk=keys[2].pk).secret == broken
    others = ApiKey.objects.exclude(pk=keys[2].pk)
    assert {token_version(k.secret) for k in others} == {2}
    assert ApiKeyAuditLog.objects.filter(action="reencrypt", success=False).count() == 1


def test_generate_key_prints_a_usable_master_key():
    out = run("--generate-key").strip()
    assert len(base64.b64decode(out)) == 32
    assert parse_master_keys(f"3:{out}") == {3: base64.b64decode(out)}
