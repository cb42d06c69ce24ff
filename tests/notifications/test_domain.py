"""The pure core: quiet hours, backoff, the e-mail rate limit, the summary's timing, payloads
and the webhook signature. No database."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from apps.notifications.domain import catalog
from apps.notifications.domain.payloads import (
    AccountDay,
    DailySummary,
    NotificationData,
    PositionLine,
    RiskLine,
    TradeLine,
    daily_summary_message,
    in_app_event,
    push_payload,
    verify_webhook_signature,
    webhook_body,
    webhook_signature,
)
from apps.notifications.domain.schedule import (
    Rate,
    daily_summary_due,
    email_rate_decision,
    local_day_bounds,
    next_attempt_at,
    parse_rate,
    quiet_hours_end,
    retry_delay,
)
from apps.notifications.models import NotificationType, Severity

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- catalogue -------------------------------------------------------------------------------


def test_models_mirror_the_catalogue():
    assert set(NotificationType.values) == {k.value for k in catalog.Kind}
    assert set(Severity.values) == {s.value for s in catalog.Severity}
    for kind in catalog.Kind:
        assert NotificationType(kind.value).default_severity == catalog.DEFAULT_SEVERITY[kind]


def test_the_issue_types_exist_and_breaches_and_alerts_are_critical():
    required = {
        "order_filled", "order_partially_filled", "order_rejected", "order_cancelled",
        "position_opened", "position_closed", "stop_loss_hit", "take_profit_hit",
        "risk_warning", "risk_breach", "strategy_signal", "backtest_finished",
        "daily_summary", "system_alert", "api_key_event",
    }  # fmt: skip
    assert required <= set(NotificationType.values)
    critical = {k for k, s in catalog.DEFAULT_SEVERITY.items() if s == catalog.Severity.CRITICAL}
    assert critical == {catalog.Kind.RISK_BREACH, catalog.Kind.SYSTEM_ALERT}


def test_default_channels():
    assert catalog.default_channel_enabled("order_filled", "in_app")
    assert catalog.default_channel_enabled("order_filled", "email")
    assert not catalog.default_channel_enabled("strategy_signal", "email")
    assert catalog.default_channel_enabled("risk_breach", "push")
    assert not catalog.default_channel_enabled("test", "in_app")  # only by explicit test send


# --- quiet hours -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "start", "end", "expected"),
    [
        # 22:00-07:00 Berlin (CET, UTC+1 in January)
        (utc(2026, 1, 5, 22, 30), time(22), time(7), utc(2026, 1, 6, 6, 0)),  # 23:30 local
        (utc(2026, 1, 6, 5, 0), time(22), time(7), utc(2026, 1, 6, 6, 0)),  # 06:00 local
        (utc(2026, 1, 6, 6, 0), time(22), time(7), None),  # 07:00 local: over
        (utc(2026, 1, 6, 12, 0), time(22), time(7), None),  # afternoon
        (utc(2026, 1, 5, 21, 0), time(22), time(7), utc(2026, 1, 6, 6, 0)),  # 22:00 sharp
        # same-day window 12:00-14:00
        (utc(2026, 1, 6, 11, 30), time(12), time(14), utc(2026, 1, 6, 13, 0)),
        (utc(2026, 1, 6, 13, 0), time(12), time(14), None),
        # start == end: no quiet hours
        (utc(2026, 1, 6, 11, 30), time(9), time(9), None),
    ],
)
def test_quiet_hours_end_in_the_traders_time_zone(now, start, end, expected):
    assert quiet_hours_end(now=now, tz=BERLIN, start=start, end=end) == expected


def test_quiet_hours_across_the_spring_dst_change():
    # New York springs forward on 2026-03-08 at 02:00; quiet 22:00-07:00 ends 07:00 EDT = 11:00Z.
    now = utc(2026, 3, 8, 4, 0)  # 23:00 EST on the 7th
    assert quiet_hours_end(now=now, tz=NEW_YORK, start=time(22), end=time(7)) == utc(
        2026, 3, 8, 11, 0
    )


# --- retries ---------------------------------------------------------------------------------


def test_backoff_doubles_with_equal_jitter_and_caps():
    base, cap = 30.0, 3600.0
    assert retry_delay(attempt=1, base=base, cap=cap, jitter=0.0) == 15.0
    assert retry_delay(attempt=1, base=base, cap=cap, jitter=1.0) == 30.0
    assert retry_delay(attempt=3, base=base, cap=cap, jitter=0.0) == 60.0
    assert retry_delay(attempt=3, base=base, cap=cap, jitter=1.0) == 120.0
    assert retry_delay(attempt=20, base=base, cap=cap, jitter=1.0) == cap
    lows = [retry_delay(attempt=a, base=base, cap=cap, jitter=0.0) for a in range(1, 9)]
    assert lows == sorted(lows)


@pytest.mark.parametrize("bad", [{"attempt": 0, "jitter": 0.5}, {"attempt": 1, "jitter": 1.5}])
def test_backoff_refuses_nonsense(bad):
    with pytest.raises(ValueError):
        retry_delay(base=1, cap=10, **bad)


def test_next_attempt_gives_up_after_max_attempts():
    now = utc(2026, 1, 1)
    kwargs = {"now": now, "max_attempts": 3, "base": 10, "cap": 100, "jitter": 0.5}
    assert next_attempt_at(attempts=1, **kwargs) == now + timedelta(seconds=7.5)
    assert next_attempt_at(attempts=2, **kwargs) == now + timedelta(seconds=15)
    assert next_attempt_at(attempts=3, **kwargs) is None


# --- e-mail rate limit -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [("10/hour", Rate(10, 3600)), ("5/10min", Rate(5, 600)), ("3/day", Rate(3, 86400)),
     ("2/30s", Rate(2, 30)), (" 7 / hours ", Rate(7, 3600))],
)  # fmt: skip
def test_parse_rate(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "10", "ten/hour", "10/fortnight", "0/hour"])
def test_parse_rate_refuses(text):
    with pytest.raises(ValueError):
        parse_rate(text)


def test_rate_limit_sends_until_the_limit_then_folds_into_a_digest():
    now = utc(2026, 1, 1, 12)
    rate = Rate(3, 3600)
    sent = [now - timedelta(minutes=50), now - timedelta(minutes=20), now - timedelta(minutes=5)]
    older = [now - timedelta(hours=2)]

    def decide(recent, critical=False, pending=None):
        return email_rate_decision(
            now=now, critical=critical, recent_sends=recent, rate=rate, pending_digest_at=pending
        )

    assert decide(sent[:2] + older).send_now
    folded = decide(sent + older)
    assert not folded.send_now
    assert folded.digest_at == now + timedelta(minutes=10)  # the oldest of the 3 leaves
    assert decide(sent, critical=True).send_now
    later = now + timedelta(minutes=30)
    assert decide([], pending=later).digest_at == later  # joins the waiting digest


# --- daily summary ---------------------------------------------------------------------------


def test_daily_summary_is_due_once_per_local_date_after_the_chosen_time():
    at = time(18, 0)
    # 16:59Z = 17:59 in Berlin: not yet; 17:00Z = 18:00: due for the 5th.
    assert (
        daily_summary_due(now=utc(2026, 1, 5, 16, 59), tz=BERLIN, at=at, last_sent_on=None) is None
    )
    assert daily_summary_due(
        now=utc(2026, 1, 5, 17, 0), tz=BERLIN, at=at, last_sent_on=None
    ) == date(2026, 1, 5)
    assert (
        daily_summary_due(now=utc(2026, 1, 5, 22), tz=BERLIN, at=at, last_sent_on=date(2026, 1, 5))
        is None
    )
    # 23:30Z on the 5th is already the 6th in Berlin, but before 18:00 there.
    assert (
        daily_summary_due(
            now=utc(2026, 1, 5, 23, 30), tz=BERLIN, at=at, last_sent_on=date(2026, 1, 5)
        )
        is None
    )


def test_local_day_bounds():
    start, end = local_day_bounds(date(2026, 1, 5), NEW_YORK)
    assert (start, end) == (utc(2026, 1, 5, 5), utc(2026, 1, 6, 5))


# --- payloads --------------------------------------------------------------------------------


def sample(**overrides) -> NotificationData:
    values = {
        "id": 7,
        "uid": "uid-7",
        "user_id": 1,
        "type": "order_filled",
        "type_label": "Order filled",
        "severity": "success",
        "title": "Bought 10 AAPL @ 101.5",
        "body": "Order #12 filled <fully>",
        "data": {"order_id": 12},
        "link": "https://trade.example.com/trading/orders/12/",
        "created_at": utc(2026, 1, 5, 15),
    }
    values.update(overrides)
    return NotificationData(**values)


def test_in_app_event_and_push_payload():
    event = in_app_event(sample(), unread_count=3, link_path="/notifications/7/open/")
    assert event["unread_count"] == 3 and event["level"] == "success"
    assert event["link"] == "/notifications/7/open/"
    critical = push_payload(sample(severity="critical"), open_url="https://x/7")
    assert critical["require_interaction"] is True and critical["url"] == "https://x/7"
    assert json.dumps(critical)  # JSON-safe


def test_webhook_bodies():
    plain = webhook_body(sample(), fmt="json", delivery_id="d-1")
    assert plain["delivery_id"] == "d-1" and plain["notification"]["data"] == {"order_id": 12}
    slack = webhook_body(sample(), fmt="slack", delivery_id="d-1")
    assert slack["text"].startswith(":white_check_mark: *Bought 10 AAPL")
    assert (
        "&lt;fully&gt;" in slack["text"] and "<https://trade.example.com/trading" in slack["text"]
    )
    discord = webhook_body(sample(severity="critical"), fmt="discord", delivery_id="d-1")
    embed = discord["embeds"][0]
    assert embed["title"] == "Bought 10 AAPL @ 101.5" and embed["color"] == 0x9B1C1C
    with pytest.raises(ValueError):
        webhook_body(sample(), fmt="xml", delivery_id="d-1")


def test_webhook_signature_round_trip_and_refusals():
    body = b'{"a":1}'
    header = webhook_signature(secret="s3cret", timestamp=1_700_000_000, body=body)
    assert header.startswith("t=1700000000,v1=")
    ok = {"secret": "s3cret", "header": header, "body": body}
    assert verify_webhook_signature(now=1_700_000_100, **ok)
    assert not verify_webhook_signature(now=1_700_000_100, **{**ok, "body": b'{"a":2}'})
    assert not verify_webhook_signature(now=1_700_000_100, **{**ok, "secret": "other"})
    assert not verify_webhook_signature(now=1_700_001_000, **ok)  # too old: replay
    assert not verify_webhook_signature(now=1_700_000_100, **{**ok, "header": "garbage"})


def test_daily_summary_message():
    trade = TradeLine("AAPL", "long", Decimal("10"), Decimal("25.50"), utc(2026, 1, 5, 20))
    position = PositionLine("MSFT", Decimal("5"), Decimal("300"), Decimal("310"), Decimal("50"))
    summary = DailySummary(
        day=date(2026, 1, 5),
        accounts=(
            AccountDay(
                "Main", "USD", Decimal("100075.50"), Decimal("75.5"), 3, (trade,), (position,)
            ),
        ),
        risk_events=(RiskLine("warning", "NEAR_LIMIT", "Daily loss at 80%", utc(2026, 1, 5, 18)),),
    )
    title, body, data = daily_summary_message(summary)
    assert title == "Daily summary for Mon 05 Jan 2026: PnL +75.50"
    assert "1 trade closed, 1 open position." in body and "1 risk event." in body
    assert data["accounts"][0]["trades"][0]["net_pnl"] == "25.50"
    assert data["accounts"][0]["positions"][0]["symbol"] == "MSFT"
    assert data["risk_events"][0]["code"] == "NEAR_LIMIT"
    json.dumps(data)
    _, body_without_risk, data_without_risk = daily_summary_message(
        DailySummary(day=date(2026, 1, 5), accounts=(), risk_events=None)
    )
    assert "risk_events" not in data_without_risk and "risk event" not in body_without_risk
