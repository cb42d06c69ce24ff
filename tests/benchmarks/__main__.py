"""Run every benchmark and print its figures: ``python -m tests.benchmarks [name ...]``.

Each benchmark runs in a process of its own (each sets Django up on its own scratch
database). PostgreSQL comes from DATABASE_URL, Redis from REDIS_URL (default: local, db 10).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

BENCHMARKS = (
    "bench_indicators",
    "bench_import",
    "bench_crypto",
    "bench_risk",
    "bench_risk_service",
    "bench_notifications",
    "bench_signals",
)


def main(names: list[str] | None = None) -> int:
    env = {**os.environ}
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/10")
    failed = []
    for name in names or BENCHMARKS:
        print(f"\n##### {name}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"tests.benchmarks.{name}"], env=env)
        print(f"({time.perf_counter() - started:.1f}s)", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
