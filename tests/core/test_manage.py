"""manage.py answers a configuration error with the error, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "TESTING")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_without_a_secret_key_says_so_in_one_line():
    result = run_manage("makemigrations", "--check", "--dry-run", DEBUG="false")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Configuration error: SECRET_KEY is not set.")
    assert "Traceback" not in result.stderr


def test_development_settings_run_the_command():
    result = run_manage("makemigrations", "--check", "--dry-run", DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert "No changes detected" in result.stdout
