"""The README's run command: the platform starts on the embedded default and serves pages."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _count_minute_bars(database: Path) -> int:
    import sqlite3

    with sqlite3.connect(database) as connection:
        return connection.execute(
            "SELECT count(*) FROM marketdata_bar WHERE timeframe = '1m'"
        ).fetchone()[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_platform_serves_on_sqlite_with_in_process_tasks(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "TESTING", "SECRET_KEY")
    }
    env |= {
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONUNBUFFERED": "1",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(
        [*manage, "migrate", "--noinput", "-v0"], env=env, check=True, cwd=ROOT, timeout=120
    )
    subprocess.run(
        [*manage, "seed_demo"], env=env, check=True, cwd=ROOT, timeout=300, capture_output=True
    )
    database = tmp_path / "db.sqlite3"
    minutes_before = _count_minute_bars(database)
    port = free_port()
    process = subprocess.Popen(
        [*manage, "run_platform", "--no-worker", "--feed-speed", "1200", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ""
    try:
        deadline = time.monotonic() + 60
        while "Press Ctrl-C" not in output and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            output += line
        assert f"running at http://127.0.0.1:{port}/" in output, output
        assert "tasks: in-process" in output
        assert "market feed: simulated" in output
        assert "demo / demo-trader-2026" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/accounts/login/", timeout=5
        ) as response:
            assert response.status == 200
            assert b"password" in response.read().lower()
        # The feed is live: new minute bars keep arriving (20 market minutes per second).
        deadline = time.monotonic() + 30
        while _count_minute_bars(database) < minutes_before + 26 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _count_minute_bars(database) >= minutes_before + 26  # 2+ minutes x 13 symbols
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    # The web server went down with it: nothing left listening.
    with socket.socket() as sock, pytest.raises(OSError):
        sock.settimeout(1)
        sock.connect(("127.0.0.1", port))
