"""What each channel sends for a notification: the live event, the web-push payload, the
webhook body (plain JSON, Slack or Discord) with its HMAC signature, and the daily summary's
text. Plain data in, plain data out."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from apps.notifications.domain.catalog import Severity


@dataclass(frozen=True)
class NotificationData:
    """One notification as the transports see it (loaded once from its row)."""

    id: int
    uid: str
    user_id: int
    type: str
    type_label: str
    severity: str
    title: str
    body: str
    data: Mapping[str, Any]
    link: str  # absolute URL, or "" when the notification points nowhere
    created_at: datetime

    @property
    def critical(self) -> bool:
        return self.severity == Severity.CRITICAL


# --- in-app and push ---------------------------------------------------------------------

TOAST_LEVEL = {
    Severity.INFO: "info",
    Severity.SUCCESS: "success",
    Severity.WARNING: "warning",
    Severity.ERROR: "error",
    Severity.CRITICAL: "error",
}


def in_app_event(n: NotificationData, *, unread_count: int, link_path: str) -> dict[str, Any]:
    """The ``notification`` event pushed to the trader's open pages (toast + badge)."""
    return {
        "id": n.id,
        "type": n.type,
        "type_label": n.type_label,
        "severity": n.severity,
        "level": TOAST_LEVEL.get(Severity(n.severity), "info"),
        "title": n.title,
        "body": n.body,
        "link": link_path,
        "created_at": n.created_at.isoformat(),
        "unread_count": unread_count,
    }


def push_payload(n: NotificationData, *, open_url: str) -> dict[str, Any]:
    """What the service worker shows (title, body, where a click leads)."""
    return {
        "title": n.title,
        "body": n.body[:400],
        "url": open_url,
        "tag": f"notification-{n.id}",
        "type": n.type,
        "severity": n.severity,
        "id": n.id,
        "require_interaction": n.critical,
    }


# --- webhooks ----------------------------------------------------------------------------


class WebhookFormat(StrEnum):
    JSON = "json"
    SLACK = "slack"
    DISCORD = "discord"


_DISCORD_COLOURS = {
    Severity.INFO: 0x2563EB,
    Severity.SUCCESS: 0x0E9F6E,
    Severity.WARNING: 0xD97706,
    Severity.ERROR: 0xE02424,
    Severity.CRITICAL: 0x9B1C1C,
}
_SLACK_MARKS = {
    Severity.INFO: ":information_source:",
    Severity.SUCCESS: ":white_check_mark:",
    Severity.WARNING: ":warning:",
    Severity.ERROR: ":x:",
    Severity.CRITICAL: ":rotating_light:",
}


def webhook_body(n: NotificationData, *, fmt: str, delivery_id: str) -> dict[str, Any]:
    """The JSON body POSTed to the trader's URL in the chosen format."""
    fmt = WebhookFormat(fmt)
    severity = Severity(n.severity)
    if fmt == WebhookFormat.SLACK:
        lines = [f"{_SLACK_MARKS[severity]} *{_slack_escape(n.title)}*"]
        if n.body:
            lines.append(_slack_escape(n.body))
        if n.link:
            lines.append(f"<{n.link}|Open in Trade Platform>")
        text = "\n".join(lines)
        section = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
        return {"text": text, "blocks": [section]}
    if fmt == WebhookFormat.DISCORD:
        embed: dict[str, Any] = {
            "title": n.title[:256],
            "description": n.body[:4000],
            "color": _DISCORD_COLOURS[severity],
            "timestamp": n.created_at.isoformat(),
            "footer": {"text": f"{n.type_label} \u00b7 {severity.value}"},
        }
        if n.link:
            embed["url"] = n.link
        return {"username": "Trade Platform", "content": "", "embeds": [embed]}
    return {
        "event": "notification",
        "delivery_id": delivery_id,
        "notification": {
            "id": n.id,
            "uid": n.uid,
            "type": n.type,
            "severity": n.severity,
            "title": n.title,
            "body": n.body,
            "data": dict(n.data),
            "link": n.link,
            "created_at": n.created_at.isoformat(),
        },
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


SIGNATURE_HEADER = "X-TradePlatform-Signature"


def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """Header value ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``.

    The timestamp is signed with the body so a captured request cannot be replayed later;
    receivers check the age (``verify_webhook_signature``)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook_signature(
    *, secret: str, header: str, body: bytes, now: int, tolerance: int = 300
) -> bool:
    """What a receiver does: recompute the MAC, compare in constant time, refuse stale ones."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = webhook_signature(secret=secret, timestamp=timestamp, body=body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


# --- the daily summary -----------------------------------------------------------------------


@dataclass(frozen=True)
class PositionLine:
    symbol: str
    quantity: Decimal
    average_price: Decimal
    last_price: Decimal
    unrealized_pnl: Decimal


@dataclass(frozen=True)
class TradeLine:
    symbol: str
    direction: str
    quantity: Decimal
    net_pnl: Decimal
    exit_time: datetime


@dataclass(frozen=True)
class RiskLine:
    severity: str
    code: str
    message: str
    at: datetime


@dataclass(frozen=True)
class AccountDay:
    name: str
    currency: str
    equity: Decimal
    day_pnl: Decimal | None  # None before the day's first equity snapshot
    fills: int
    trades: tuple[TradeLine, ...] = ()
    positions: tuple[PositionLine, ...] = ()

    @property
    def realized_pnl(self) -> Decimal:
        return sum((t.net_pnl for t in self.trades), Decimal("0"))


@dataclass(frozen=True)
class DailySummary:
    day: date
    accounts: tuple[AccountDay, ...]
    # None when the risk app is not installed (the section is left out, not shown empty).
    risk_events: tuple[RiskLine, ...] | None = field(default=None)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(Decimal('0.01')):f}"


def _signed(value: Decimal) -> str:
    text = f"{abs(value.quantize(Decimal('0.01'))):,.2f}"
    return f"+{text}" if value > 0 else (f"-{text}" if value < 0 else text)


def daily_summary_message(summary: DailySummary) -> tuple[str, str, dict[str, Any]]:
    """Title, plain body and JSON data of the summary (the e-mail template reads the data)."""
    day_pnl = [a.day_pnl for a in summary.accounts if a.day_pnl is not None]
    total = sum(day_pnl, Decimal("0")) if day_pnl else None
    trades = sum(len(a.trades) for a in summary.accounts)
    positions = sum(len(a.positions) for a in summary.accounts)
    title = f"Daily summary for {summary.day:%a %d %b %Y}"
    if total is not None:
        title += f": PnL {_signed(total)}"
    lines = [
        f"{trades} trade{'s' if trades != 1 else ''} closed, "
        f"{positions} open position{'s' if positions != 1 else ''}."
    ]
    for account in summary.accounts:
        pnl = "n/a" if account.day_pnl is None else _signed(account.day_pnl)
        lines.append(
            f"{account.name}: equity {account.equity:,.2f} {account.currency}, day PnL {pnl}, "
            f"{account.fills} fill{'s' if account.fills != 1 else ''}."
        )
    if summary.risk_events is not None:
        count = len(summary.risk_events)
        lines.append(f"{count} risk event{'s' if count != 1 else ''}.")
    data: dict[str, Any] = {
        "day": summary.day.isoformat(),
        "day_pnl": _money(total),
        "trades_closed": trades,
        "open_positions": positions,
        "accounts": [
            {
                "name": a.name,
                "currency": a.currency,
                "equity": _money(a.equity),
                "day_pnl": _money(a.day_pnl),
                "realized_pnl": _money(a.realized_pnl),
                "fills": a.fills,
                "trades": [
                    {
                        "symbol": t.symbol,
                        "direction": t.direction,
                        "quantity": f"{t.quantity.normalize():f}",
                        "net_pnl": _money(t.net_pnl),
                        "exit_time": t.exit_time.isoformat(),
                    }
                    for t in a.trades
                ],
                "positions": [
                    {
                        "symbol": p.symbol,
                        "quantity": f"{p.quantity.normalize():f}",
                        "average_price": f"{p.average_price.normalize():f}",
                        "last_price": f"{p.last_price.normalize():f}",
                        "unrealized_pnl": _money(p.unrealized_pnl),
                    }
                    for p in a.positions
                ],
            }
            for a in summary.accounts
        ],
    }
    if summary.risk_events is not None:
        data["risk_events"] = [
            {"severity": r.severity, "code": r.code, "message": r.message, "at": r.at.isoformat()}
            for r in summary.risk_events
        ]
    return title, "\n".join(lines), data


def digest_subject(count: int) -> str:
    return f"{count} notification{'s' if count != 1 else ''} while e-mails were paused"


def summarize_titles(items: Sequence[NotificationData], limit: int = 50) -> list[str]:
    return [n.title for n in items[:limit]]
