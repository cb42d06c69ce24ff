"""``manage.py seed_demo``: demo trader, admin, instruments with history, strategies, account."""

from django.core.management.base import BaseCommand, CommandParser

from apps.core.demo import ADMIN_PASSWORD, ADMIN_USERNAME, DEMO_PASSWORD, DEMO_USERNAME, seed_demo


class Command(BaseCommand):
    help = "Create demo data (idempotent: a second run adds nothing). Demo use only."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--demo-password", default=DEMO_PASSWORD)
        parser.add_argument("--admin-password", default=ADMIN_PASSWORD)

    def handle(self, *args, demo_password: str, admin_password: str, **options) -> None:
        report = seed_demo(demo_password=demo_password, admin_password=admin_password)
        if report.created or report.bars_inserted:
            for line in report.created:
                self.stdout.write(f"  created {line}")
            self.stdout.write(f"  stored {report.bars_inserted:,} bars")
        else:
            self.stdout.write("Demo data already present; nothing to do.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo trader: {DEMO_USERNAME} / {demo_password}    "
                f"Admin: {ADMIN_USERNAME} / {admin_password}"
            )
        )
