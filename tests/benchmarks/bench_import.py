"""Benchmark: ``import_bars`` of 1,000,000 minute bars into PostgreSQL (rows per second).

Run: ``python -m tests.benchmarks.bench_import`` (needs DATABASE_URL to a PostgreSQL server;
uses a scratch database ``tp_bench``). Goal: at least 100,000 rows/s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

ROWS = 1_000_000
GOAL_ROWS_PER_SECOND = 100_000


def _write_csv(path: Path, rows: int) -> None:
    from apps.marketdata.domain.synthetic import gbm_bars, session_times

    times = session_times("1m", "2020-01-01T00:00Z", "2022-01-01T00:00Z", calendar="24x7")[:rows]
    bars = gbm_bars(times, seed=7, calendar="24x7", timeframe="1m")
    bars.index = bars.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    bars.index.name = "timestamp"
    bars.to_csv(path, float_format="%.6g")


def main(rows: int = ROWS) -> list[dict]:
    from tests.benchmarks._django import setup_django

    setup_django()
    from django.core.management import call_command

    from apps.marketdata.models import Bar, Instrument

    Instrument.objects.filter(symbol="BENCH").delete()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bars.csv"
        started = time.perf_counter()
        _write_csv(path, rows)
        print(
            f"wrote {rows:,} bars CSV ({path.stat().st_size / 1e6:.0f} MB) in "
            f"{time.perf_counter() - started:.1f}s"
        )
        for label in ("first import (all new)", "re-import (all unchanged)"):
            started = time.perf_counter()
            call_command(
                "import_bars", "BENCH", str(path), timeframe="1m", verbosity=0, stdout=_Null()
            )
            elapsed = time.perf_counter() - started
            rate = rows / elapsed
            results.append({"case": label, "rows": rows, "seconds": elapsed, "rows_per_s": rate})
    stored = Bar.objects.filter(instrument__symbol="BENCH").count()
    Instrument.objects.filter(symbol="BENCH").delete()
    print(
        f"{'case':<28} {'rows':>10} {'seconds':>8} {'rows/s':>10}  goal >= {GOAL_ROWS_PER_SECOND:,}"
    )
    for row in results:
        verdict = "ok" if row["rows_per_s"] >= GOAL_ROWS_PER_SECOND else "BELOW GOAL"
        print(
            f"{row['case']:<28} {row['rows']:>10,} {row['seconds']:>8.2f} "
            f"{row['rows_per_s']:>10,.0f}  {verdict}"
        )
    print(f"rows stored: {stored:,}")
    return results


class _Null:
    def write(self, *_args, **_kwargs) -> None:
        pass

    def flush(self) -> None:
        pass


if __name__ == "__main__":
    main()
