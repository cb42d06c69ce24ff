"""Set up Django for a benchmark on its own scratch database (never the development one)."""

from __future__ import annotations

import os


def setup_django(database: str = "tp_bench") -> str:
    """Point Django at a scratch PostgreSQL database (created and migrated when missing)."""
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get(
        "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
    )
    if not base.startswith("postgres"):
        raise SystemExit("Benchmarks run on PostgreSQL: set DATABASE_URL to a postgres:// URL.")
    root, _, _ = base.rpartition("/")
    url = f"{root}/{database}"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeplatform.settings")
    os.environ.setdefault("TESTING", "true")

    import psycopg

    with psycopg.connect(f"{root}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return url
