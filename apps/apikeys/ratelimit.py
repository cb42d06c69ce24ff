"""Fixed-window counters in the Django cache (Redis in production and CI).

Rates read like ``"10/minute"``, ``"20/15min"``, ``"100/hour"``, ``"5/30s"``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from apps.core.errors import DomainError

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


class RateLimited(DomainError):
    status_code = 429
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int


def parse_rate(text: str) -> Rate:
    match = _RATE_RE.match(text.lower())
    if not match or match.group(3) not in _UNITS:
        raise ValueError(f"Not a rate: {text!r} (expected e.g. '10/minute' or '20/15min').")
    multiple = int(match.group(2) or 1)
    return Rate(limit=int(match.group(1)), period=multiple * _UNITS[match.group(3)])


def _key(scope: str, ident: str, rate: Rate, now: float) -> tuple[str, int]:
    window = int(now // rate.period)
    retry_after = max(1, int((window + 1) * rate.period - now))
    # The namespace lets tests (and a deliberate reset) start from fresh counters.
    namespace = getattr(settings, "APIKEYS_RATELIMIT_NAMESPACE", "rl")
    return f"apikeys:{namespace}:{scope}:{ident}:{rate.period}:{window}", retry_after


def hit(scope: str, ident: str, rate_text: str) -> tuple[bool, int]:
    """Count one event; ``(allowed, seconds until the window resets)``."""
    rate = parse_rate(rate_text)
    now = time.time()
    key, retry_after = _key(scope, ident, rate, now)
    cache.add(key, 0, timeout=rate.period + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=rate.period + 1)
        count = 1
    return count <= rate.limit, retry_after


def exceeded(scope: str, ident: str, rate_text: str) -> tuple[bool, int]:
    """Whether the limit is already reached, without counting."""
    rate = parse_rate(rate_text)
    now = time.time()
    key, retry_after = _key(scope, ident, rate, now)
    return (cache.get(key) or 0) >= rate.limit, retry_after
