"""The e-mails: subject, plain text and HTML, rendered from templates per type.

``templates/notifications/email/<name>.txt`` and ``.html``: ``order_filled``, ``risk_breach``,
``daily_summary``, ``system_alert``, ``generic`` for every other type, and ``digest`` for the
e-mail that carries the messages the rate limit held back.
"""

from __future__ import annotations

from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from apps.notifications.domain.catalog import Severity
from apps.notifications.domain.payloads import digest_subject
from apps.notifications.transports.base import OutgoingMessage

TEMPLATE_BY_TYPE = {
    "order_filled": "order_filled",
    "risk_breach": "risk_breach",
    "daily_summary": "daily_summary",
    "system_alert": "system_alert",
}
SUBJECT_PREFIX = "[Trade Platform]"


def message_id(delivery_uid: str) -> str:
    """The Message-ID of a delivery's e-mail: the same on every attempt."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "tradeplatform.local"
    return f"<{delivery_uid}@{domain}>"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def absolute(link: str) -> str:
    if not link or link.startswith(("http://", "https://")):
        return link
    return settings.SITE_URL + (link if link.startswith("/") else "/" + link)


def template_name(message: OutgoingMessage) -> str:
    if message.digest:
        return "digest"
    return TEMPLATE_BY_TYPE.get(message.notification.type, "generic")


def subject_for(message: OutgoingMessage) -> str:
    n = message.notification
    if message.digest:
        return f"{SUBJECT_PREFIX} {digest_subject(len(message.digest))}"
    prefix = f"{SUBJECT_PREFIX}[CRITICAL]" if n.severity == Severity.CRITICAL else SUBJECT_PREFIX
    return _one_line(f"{prefix} {n.title}")[:250]


def render_email(message: OutgoingMessage) -> EmailMultiAlternatives:
    n = message.notification
    name = template_name(message)
    context = {
        "n": n,
        "data": n.data,
        "items": message.digest,
        "link": absolute(n.link),
        "site_url": settings.SITE_URL,
        "centre_url": absolute(reverse("notifications:centre")),
        "preferences_url": absolute(reverse("notifications:preferences")),
        "recipient_name": message.extra.get("recipient_name", ""),
        "subject": subject_for(message),
    }
    text = render_to_string(f"notifications/email/{name}.txt", context)
    html = render_to_string(f"notifications/email/{name}.html", context)
    email = EmailMultiAlternatives(
        subject=context["subject"],
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[message.target],
        headers={
            "Message-ID": message_id(message.delivery_uid),
            "X-TradePlatform-Notification": n.uid,
            "X-TradePlatform-Type": "digest" if message.digest else n.type,
            "Auto-Submitted": "auto-generated",
        },
    )
    email.attach_alternative(html, "text/html")
    return email
