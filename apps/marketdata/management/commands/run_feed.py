"""``manage.py run_feed``: a live bar source for the platform.

    run_feed                                  # simulated 1m bars, every tradable symbol
    run_feed --speed 60                       # one market minute per second
    run_feed --symbols AAPL,MSFT --count 120  # two hours of bars, then stop
    run_feed --replay-from 2026-11-02T14:30Z --replay-to 2026-11-02T21:00Z --speed 120

Every bar is stored, rolled up into 5m/15m/1h/1d, and reaches the paper broker and the
strategies that watch its symbol and timeframe.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.marketdata.feeds import feed_start, replayed_bars, run_feed, simulated_bars
from apps.marketdata.models import Instrument


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"Not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


class Command(BaseCommand):
    help = "Produce live 1-minute bars (simulated, or a replay of stored bars) until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--symbols", help="Comma-separated symbols (default: all tradable).")
        parser.add_argument(
            "--speed",
            type=float,
            default=1.0,
            help="Market minutes per wall-clock minute (1 = real time).",
        )
        parser.add_argument("--count", type=int, help="Stop after this many minutes.")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the simulated walk.")
        parser.add_argument("--replay-from", help="Replay stored 1m bars from this time (ISO).")
        parser.add_argument("--replay-to", help="... up to this time (ISO, exclusive).")

    def handle(self, *args, symbols, speed, count, seed, replay_from, replay_to, **options):
        if speed <= 0:
            raise CommandError("--speed must be greater than 0.")
        if count is not None and count < 1:
            raise CommandError("--count must be at least 1.")
        instruments = list(Instrument.objects.filter(tradable=True).order_by("symbol"))
        if symbols:
            wanted = [s.strip().upper() for s in symbols.split(",") if s.strip()]
            found = {i.symbol: i for i in Instrument.objects.filter(symbol__in=wanted)}
            missing = [s for s in wanted if s not in found]
            if missing:
                raise CommandError(f"Unknown symbol(s): {', '.join(missing)}")
            instruments = [found[s] for s in wanted]
        if not instruments:
            raise CommandError("No instruments to feed (run seed_demo or import_bars first).")
        start = feed_start(instruments, timezone.now())
        if replay_from or replay_to:
            if not (replay_from and replay_to):
                raise CommandError("--replay-from and --replay-to go together.")
            source_start, source_end = _instant(replay_from), _instant(replay_to)
            if source_end <= source_start:
                raise CommandError("--replay-to must be after --replay-from.")
            bars = replayed_bars(
                instruments, start=start, source_start=source_start, source_end=source_end
            )
            what = f"replay of {source_start:%Y-%m-%d %H:%M} .. {source_end:%Y-%m-%d %H:%M}"
        else:
            bars = simulated_bars(instruments, start=start, seed=seed)
            what = "simulated random walk"
        self.stdout.write(
            f"Feeding {len(instruments)} instrument(s) from {start:%Y-%m-%d %H:%M} UTC: {what}, "
            f"{speed:g} market minute(s) per minute. Ctrl-C stops."
        )
        try:
            stored = run_feed(bars, speed=speed, count=count)
        except KeyboardInterrupt:
            self.stdout.write("Feed stopped.")
            return
        self.stdout.write(self.style.SUCCESS(f"Feed done: {stored} new bar(s) stored."))
