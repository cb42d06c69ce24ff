"""Start-up: production refuses to run without master keys; bad values are named clearly."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
KEY = base64.b64encode(b"k" * 32).decode()


def load_settings(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SECRETS_", "TRUSTED_"))}
    clean.update({"DEBUG": "false", "TESTING": "false", "SECRET_KEY": "x" * 50})
    clean.update(env)
    code = (
        "import tradeplatform.settings as s; "
        "print(sorted(s.SECRETS_MASTER_KEYS), s.SECRETS_MASTER_KEY_VERSION, s.TRUSTED_PROXIES)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=clean, capture_output=True, text=True
    )


def test_production_without_master_keys_does_not_start():
    result = load_settings()
    assert result.returncode != 0
    assert "SECRETS_MASTER_KEYS is not set" in result.stderr


def test_production_with_master_keys_starts_and_uses_the_highest_version():
    result = load_settings(SECRETS_MASTER_KEYS=f"1:{KEY},2:{KEY}", TRUSTED_PROXIES="10.0.0.0/8")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[1, 2] 2 ['10.0.0.0/8']"


def test_development_gets_a_derived_key():
    result = load_settings(DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[1] 1")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SECRETS_MASTER_KEYS": "1:c2hvcnQ="}, "the key of version 1 is 5 bytes"),
        ({"SECRETS_MASTER_KEYS": f"1:{KEY}", "SECRETS_MASTER_KEY_VERSION": "2"}, "not in"),
        ({"SECRETS_MASTER_KEYS": f"1:{KEY}", "TRUSTED_PROXIES": "10.0.0.0/33"}, "TRUSTED_PROXIES"),
    ],
)
def test_bad_values_are_named(env, message):
    result = load_settings(**env)
    assert result.returncode != 0 and message in result.stderr
    assert KEY not in result.stderr
