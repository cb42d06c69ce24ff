"""``manage.py import_bars SYMBOL PATH --timeframe 1d``: load a CSV of bars, idempotently."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.errors import DomainError
from apps.marketdata.domain.csv_bars import parse_bars_csv
from apps.marketdata.models import Instrument, Timeframe
from apps.marketdata.services import bars_import, instrument_get_or_create


class Command(BaseCommand):
    help = (
        "Import bars from a CSV with header timestamp,open,high,low,close,volume (ISO timestamps, "
        "UTC when no offset; a bar's timestamp is its open time). The whole file is validated "
        "first and stored in one transaction; re-importing the same file changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("symbol", help="Instrument symbol, e.g. AAPL (created if unknown).")
        parser.add_argument("path", help="CSV file path, or - for standard input.")
        parser.add_argument("--timeframe", default="1d", choices=Timeframe.values)
        parser.add_argument(
            "--no-create", action="store_true", help="Fail instead of creating an unknown symbol."
        )

    def handle(self, *args, symbol: str, path: str, timeframe: str, no_create: bool, **options):
        started = time.perf_counter()
        source = self.stdin if path == "-" else Path(path)
        if path != "-" and not source.is_file():
            raise CommandError(f"No such file: {path}")
        try:
            bars = parse_bars_csv(source, timeframe)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        parsed = time.perf_counter()

        if no_create:
            try:
                instrument = Instrument.objects.get(symbol=symbol.strip().upper())
            except Instrument.DoesNotExist:
                raise CommandError(
                    f"Unknown symbol {symbol.upper()!r} (--no-create given)."
                ) from None
        else:
            instrument, created = instrument_get_or_create(symbol=symbol, name=symbol.upper())
            if created:
                self.stdout.write(f"Created instrument {instrument.symbol}.")
        try:
            result = bars_import(instrument=instrument, timeframe=timeframe, bars=bars)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        done = time.perf_counter()
        rate = result.received / (done - started) if done > started else 0.0
        self.stdout.write(
            self.style.SUCCESS(
                f"{instrument.symbol} {timeframe}: {result.received} bars read, "
                f"{result.inserted} inserted, {result.updated} updated, "
                f"{result.unchanged} unchanged "
                f"({bars.index[0]:%Y-%m-%d %H:%M} .. {bars.index[-1]:%Y-%m-%d %H:%M} UTC; "
                f"parse {parsed - started:.2f}s, store {done - parsed:.2f}s, {rate:,.0f} rows/s)."
            )
        )
