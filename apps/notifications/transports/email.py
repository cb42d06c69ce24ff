"""E-mail over SMTP, one message per delivery, with a Message-ID fixed per delivery.

Django's ``EmailMultiAlternatives`` builds the message (plain text + HTML). With the SMTP
backend configured, this transport talks SMTP itself (smtplib) so that it knows exactly when
the server took the message: once the server answered 250 to DATA the message is sent,
whatever happens to the connection afterwards (a failing QUIT must not cause a resend). Any
other backend (console in development, locmem in tests) is used through Django.

SMTP answers: 4xx -> ``TemporaryFailure`` (retried), 5xx -> ``PermanentFailure`` with the
server's text; refused or dropped connections and timeouts are temporary.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading

from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from apps.notifications.emails import render_email
from apps.notifications.transports.base import (
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
    TransportError,
    truncate,
)

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def _answer(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return truncate(f"{code} {text}")


def classify_smtp_error(exc: Exception) -> TransportError:
    """What an smtplib error means for the delivery."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        cls = TemporaryFailure if 400 <= code < 500 else PermanentFailure
        return cls("The SMTP server refused the recipient", answer=_answer(code, text))
    if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, data error, auth ...
        code = exc.smtp_code
        cls = PermanentFailure if 500 <= code < 600 else TemporaryFailure
        return cls("The SMTP server refused the message", answer=_answer(code, exc.smtp_error))
    if isinstance(exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
        return TemporaryFailure("The SMTP server closed the connection", answer=str(exc))
    if isinstance(exc, OSError):  # refused, reset, unreachable, timeout, TLS
        return TemporaryFailure("The SMTP server could not be reached", answer=truncate(repr(exc)))
    if isinstance(exc, smtplib.SMTPException):
        return TemporaryFailure("SMTP error", answer=truncate(str(exc)))
    return TemporaryFailure("Unexpected error while sending e-mail", answer=truncate(repr(exc)))


class _Connections(threading.local):
    smtp: smtplib.SMTP | None = None


class EmailTransport:
    channel = "email"

    def __init__(self) -> None:
        # One open SMTP connection per worker thread, reused while the server keeps it.
        self._local = _Connections()

    def send(self, message: OutgoingMessage) -> None:
        email = render_email(message)
        if settings.EMAIL_BACKEND == SMTP_BACKEND:
            self._send_smtp(email)
        else:
            self._send_django(email)

    # --- Django backends (console, locmem, file) ----------------------------------------

    def _send_django(self, email: EmailMultiAlternatives) -> None:
        try:
            email.send(fail_silently=False)
        except Exception as exc:
            raise classify_smtp_error(exc) from exc

    # --- SMTP ----------------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        timeout = settings.EMAIL_TIMEOUT
        host, port = settings.EMAIL_HOST, settings.EMAIL_PORT
        if settings.EMAIL_USE_SSL:
            context = ssl.create_default_context()
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
            if settings.EMAIL_USE_TLS:
                smtp.starttls(context=ssl.create_default_context())
        if settings.EMAIL_HOST_USER:
            smtp.login(settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD)
        return smtp

    def _drop(self) -> None:
        smtp, self._local.smtp = self._local.smtp, None
        if smtp is not None:
            with contextlib.suppress(OSError):
                smtp.close()

    def _envelope(self, email: EmailMultiAlternatives) -> smtplib.SMTP:
        """MAIL FROM and RCPT TO on the thread's open connection, or a new one.

        A reused connection the server has meanwhile closed fails here, before DATA, when
        nothing can have been delivered yet: then the envelope is sent again on a fresh one.
        """
        for reused in (self._local.smtp is not None, False):
            smtp = self._local.smtp or self._connect()
            self._local.smtp = smtp
            try:
                smtp.ehlo_or_helo_if_needed()
                code, answer = smtp.mail(email.from_email)
                if code != 250:
                    raise smtplib.SMTPSenderRefused(code, answer, email.from_email)
                refused = {}
                for recipient in email.recipients():
                    code, answer = smtp.rcpt(recipient)
                    if code not in (250, 251):
                        refused[recipient] = (code, answer)
                if len(refused) == len(email.recipients()):
                    smtp.rset()
                    raise smtplib.SMTPRecipientsRefused(refused)
                return smtp
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                self._drop()
                if not reused:
                    raise
        raise AssertionError("unreachable")

    def _send_smtp(self, email: EmailMultiAlternatives) -> None:
        payload = email.message().as_bytes(linesep="\r\n")
        try:
            smtp = self._envelope(email)
            # The message is sent once the server answers 250 to DATA; a connection problem
            # after that (or at QUIT) does not make it unsent.
            code, answer = smtp.data(payload)
            if code != 250:
                smtp.rset()
                raise smtplib.SMTPDataError(code, answer)
        except (smtplib.SMTPException, OSError) as exc:
            # Whatever state the session is in, start the next message on a fresh one.
            self._drop()
            raise classify_smtp_error(exc) from exc

    def close(self) -> None:
        smtp, self._local.smtp = self._local.smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
