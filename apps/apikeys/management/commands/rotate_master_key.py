"""``manage.py rotate_master_key``: re-encrypt every stored secret under the current master key.

Procedure (docs/security.md): add the new key to SECRETS_MASTER_KEYS next to the old one and
make it current (SECRETS_MASTER_KEY_VERSION, or simply the highest version), deploy, run this
command (resumable: run it again after any interruption), check with ``--check``, then remove
the old key from the environment.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.apikeys.crypto import generate_master_key
from apps.apikeys.keyring import get_keyring
from apps.apikeys.selectors import secrets_by_key_version
from apps.apikeys.services import ReencryptReport, master_key_rotate


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the current master key version (resumable)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction.")
        parser.add_argument(
            "--pause",
            type=float,
            default=0.0,
            help="Seconds to wait between batches, to spare a busy database.",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Only report how many secrets each key version holds; exit 1 if any is not "
            "under the current version (the old key must not be retired yet).",
        )
        parser.add_argument(
            "--generate-key",
            action="store_true",
            help="Print a new random master key (base64 of 32 bytes) and exit.",
        )

    def handle(self, *args, batch_size: int, pause: float, check: bool, **options) -> None:
        if options["generate_key"]:
            # For the operator's terminal only: put it in the environment, never in a file
            # under version control.
            self.stdout.write(generate_master_key())
            return
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        keyring = get_keyring()
        current = keyring.current_version
        self.stdout.write(
            f"Master key versions configured: {', '.join(map(str, keyring.versions))}; "
            f"current: {current}."
        )
        if check:
            self._check(current)
            return

        started = time.perf_counter()

        def progress(report: ReencryptReport) -> None:
            rate = report.rows / max(time.perf_counter() - started, 1e-9)
            self.stdout.write(
                f"  {report.model}: {report.rows:,} rows re-encrypted "
                f"({report.batches} batches, {rate:,.0f} rows/s)"
            )

        reports = master_key_rotate(batch_size=batch_size, pause_seconds=pause, progress=progress)
        elapsed = time.perf_counter() - started
        total = sum(r.rows for r in reports)
        failures = [(r.model, pk, reason) for r in reports for pk, reason in r.failures]
        self.stdout.write(f"Re-encrypted {total:,} rows in {elapsed:.2f}s.")
        for model, pk, reason in failures[:20]:
            self.stderr.write(f"  {model} id={pk}: {reason}")
        if failures:
            raise CommandError(
                f"{len(failures)} row(s) could not be decrypted and were left as they are; "
                "keep every old master key until they are fixed."
            )
        self._check(current)

    def _check(self, current: int) -> None:
        stale = 0
        for model, counter in secrets_by_key_version().items():
            parts = ", ".join(f"v{v}: {n:,}" for v, n in sorted(counter.items(), key=str)) or "none"
            self.stdout.write(f"  {model}: {parts}")
            stale += sum(n for v, n in counter.items() if v != current)
        if stale:
            raise CommandError(
                f"{stale:,} secret(s) are not under version {current} yet: run rotate_master_key "
                "(again) before retiring an old master key."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Every secret is under version {current}; older master keys can be retired."
            )
        )
