"""When a delivery may go out: quiet hours, the e-mail rate limit (excess folds into a digest),
the retry backoff and the daily summary's moment. Every function takes the time it decides
for; randomness (the backoff's jitter) is an argument too."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

# --- quiet hours ---------------------------------------------------------------------------


def quiet_hours_end(*, now: datetime, tz: tzinfo, start: time, end: time) -> datetime | None:
    """The UTC moment the trader's quiet hours end, when ``now`` lies inside them; else None.

    ``start``/``end`` are wall-clock times in ``tz``; ``start > end`` spans midnight
    (22:00-07:00). ``start == end`` means no quiet hours. Across a DST change the end is the
    wall-clock time on the day it falls (a skipped local time maps to the moment after the gap).
    """
    if start == end:
        return None
    local = now.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:
        inside = clock >= start or clock < end
        end_day = local.date() if clock < end else local.date() + timedelta(days=1)
    if not inside:
        return None
    ends = datetime.combine(end_day, end, tzinfo=tz).astimezone(UTC)
    return max(ends, now.astimezone(UTC))


# --- retries -------------------------------------------------------------------------------


def retry_delay(*, attempt: int, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait after the ``attempt``-th failed attempt (1, 2, ...).

    Exponential (base, 2 x base, 4 x base ...) capped at ``cap``, with "equal jitter": half the
    delay is fixed and half is ``jitter`` (a draw in [0, 1)), so retries of many deliveries that
    failed together spread out but never come sooner than half the schedule.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter is a draw in [0, 1]")
    raw = min(cap, base * (2 ** (attempt - 1)))
    return raw / 2 + raw / 2 * jitter


def next_attempt_at(
    *,
    now: datetime,
    attempts: int,
    max_attempts: int,
    base: float,
    cap: float,
    jitter: float,
) -> datetime | None:
    """When to try again after ``attempts`` failed attempts; None once they are used up."""
    if attempts >= max_attempts:
        return None
    return now + timedelta(seconds=retry_delay(attempt=attempts, base=base, cap=cap, jitter=jitter))


# --- e-mail rate limit -----------------------------------------------------------------------

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*$")


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.seconds)


def parse_rate(text: str) -> Rate:
    """``"10/hour"``, ``"5/10min"``, ``"100/day"`` -> Rate(count, seconds)."""
    match = _RATE.match(text.lower())
    if not match or match.group(3) not in _UNITS:
        raise ValueError(f"{text!r} is not a rate such as 10/hour or 5/10min")
    count = int(match.group(1))
    seconds = int(match.group(2) or 1) * _UNITS[match.group(3)]
    if count < 1 or seconds < 1:
        raise ValueError(f"{text!r}: the count and the period must be positive")
    return Rate(count, seconds)


@dataclass(frozen=True)
class EmailDecision:
    send_now: bool
    digest_at: datetime | None = None  # when the folded e-mail goes out in the next digest


def email_rate_decision(
    *,
    now: datetime,
    critical: bool,
    recent_sends: Sequence[datetime],
    rate: Rate,
    pending_digest_at: datetime | None,
) -> EmailDecision:
    """Send this e-mail now, or fold it into the trader's next digest.

    ``recent_sends`` are the moments e-mails (digests included) went to this trader.
    Critical messages always go at once (they still count). While a digest is waiting,
    new e-mails join it, so the trader reads them in order; otherwise an e-mail over the
    limit starts a digest due when the oldest e-mail in the window leaves it.
    """
    if critical:
        return EmailDecision(send_now=True)
    if pending_digest_at is not None:
        return EmailDecision(send_now=False, digest_at=pending_digest_at)
    window_start = now - rate.window
    in_window = sorted(t for t in recent_sends if t > window_start)
    if len(in_window) < rate.count:
        return EmailDecision(send_now=True)
    slot = in_window[len(in_window) - rate.count] + rate.window
    return EmailDecision(send_now=False, digest_at=max(slot, now))


# --- daily summary -----------------------------------------------------------------------------


def daily_summary_due(
    *, now: datetime, tz: tzinfo, at: time, last_sent_on: date | None
) -> date | None:
    """The trader's local date whose summary is due now, or None.

    Due once the local clock has passed ``at`` and no summary went out for that date yet; a
    sweep that runs late (or every few minutes) still sends exactly one per date.
    """
    local = now.astimezone(tz)
    if local.time().replace(tzinfo=None) < at:
        return None
    today = local.date()
    if last_sent_on is not None and last_sent_on >= today:
        return None
    return today


def local_day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) of the local calendar day ``day`` in ``tz``, as UTC datetimes."""
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end
