"""``manage.py run_platform``: start the whole platform on this machine and supervise it.

Starts the ASGI web server (daphne: pages, API, WebSockets) and, when Redis answers, a Celery
worker and beat on it; otherwise tasks run in-process. Prints where it serves and how to log
in, then waits; Ctrl-C (or any part dying) stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.demo import ADMIN_PASSWORD, ADMIN_USERNAME, DEMO_PASSWORD, DEMO_USERNAME
from tradeplatform.celery import worker_queues

DEFAULT_LOCAL_REDIS = "redis://127.0.0.1:6379/1"


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    import redis

    try:
        return bool(
            redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping()
        )
    except Exception:
        return False


class Command(BaseCommand):
    help = "Run the web server (and Celery when Redis is reachable) until interrupted."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-worker", action="store_true", help="Never start Celery.")
        parser.add_argument("--no-feed", action="store_true", help="Do not start the live feed.")
        parser.add_argument(
            "--feed-speed",
            type=float,
            default=float(os.environ.get("FEED_SPEED", "30")),
            help="Market minutes per wall-clock minute of the simulated feed (default 30).",
        )

    def handle(
        self,
        *args,
        host: str,
        port: int,
        no_worker: bool,
        no_feed: bool,
        feed_speed: float,
        **options,
    ) -> None:
        env = os.environ.copy()
        redis_url = settings.REDIS_URL or DEFAULT_LOCAL_REDIS
        use_redis = not no_worker and redis_answers(redis_url)
        if use_redis:
            env["REDIS_URL"] = redis_url
            env.pop("CELERY_TASK_ALWAYS_EAGER", None)
            tasks = f"Celery worker + beat on Redis ({redacted(redis_url)})"
        else:
            env.pop("REDIS_URL", None)
            env["CELERY_TASK_ALWAYS_EAGER"] = "true"
            reason = (
                "disabled by --no-worker"
                if no_worker
                else f"Redis not reachable at {redacted(redis_url)}"
            )
            tasks = f"in-process (no worker; {reason})"

        python = sys.executable
        bin_dir = os.path.dirname(python)
        processes: list[tuple[str, subprocess.Popen]] = []

        def start(name: str, command: list[str]) -> None:
            processes.append((name, subprocess.Popen(command, env=env)))

        start(
            "web",
            [
                os.path.join(bin_dir, "daphne"),
                "-b",
                host,
                "-p",
                str(port),
                "tradeplatform.asgi:application",
            ],
        )
        if use_redis:
            celery = os.path.join(bin_dir, "celery")
            os.makedirs(os.path.join(settings.BASE_DIR, "var"), exist_ok=True)
            start(
                "worker",
                [
                    celery,
                    "-A",
                    "tradeplatform",
                    "-q",
                    "worker",
                    "-Q",
                    worker_queues(),
                    "--loglevel=WARNING",
                    "--concurrency=2",
                    "--without-mingle",
                    "--without-gossip",
                ],
            )
            start(
                "beat",
                [
                    celery,
                    "-A",
                    "tradeplatform",
                    "-q",
                    "beat",
                    "--loglevel=WARNING",
                    "--schedule",
                    os.path.join(settings.BASE_DIR, "var", "celerybeat-schedule"),
                ],
            )

        if not no_feed:
            # The simulated market: one bar per instrument per market minute, so the demo's
            # paper strategies trade on their own.
            start(
                "feed",
                [
                    python,
                    os.path.join(settings.BASE_DIR, "manage.py"),
                    "run_feed",
                    "--speed",
                    str(feed_speed),
                ],
            )
        feed = "off (--no-feed)" if no_feed else f"simulated, {feed_speed:g} market minutes/minute"
        url = f"http://{host}:{port}/"
        try:
            self._wait_until_up(url + "healthz", processes)
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nTrade Platform is running at {url}\n"
                    f"  log in at {url}accounts/login/ as {DEMO_USERNAME} / {DEMO_PASSWORD}\n"
                    f"  admin at {url}admin/ as {ADMIN_USERNAME} / {ADMIN_PASSWORD}; "
                    f"API docs at {url}api/docs/\n"
                    f"  database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}"
                    f" ({redacted(str(settings.DATABASES['default']['NAME']))})\n"
                    f"  tasks: {tasks}\n"
                    f"  market feed: {feed}\n"
                    f"Press Ctrl-C to stop.\n"
                )
            )
            self._supervise(processes)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping...")
        finally:
            for _, process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for _, process in processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()

    def _wait_until_up(self, url: str, processes) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for name, process in processes:
                if process.poll() is not None:
                    raise CommandError(f"The {name} process exited with code {process.returncode}.")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise CommandError(f"The web server did not answer at {url} within 60 seconds.")

    def _supervise(self, processes) -> None:
        while True:
            for name, process in processes:
                if process.poll() is not None:
                    raise CommandError(f"The {name} process exited with code {process.returncode}.")
            time.sleep(0.5)


def redacted(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url
