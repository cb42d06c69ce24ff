"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepted.

It can be stopped and started again on the same port (a mail server going away mid-run),
refuse recipients with a chosen answer, or answer DATA with a chosen code::

    with FakeSMTP() as smtp:                    # or the ``smtp_server`` fixture
        settings.EMAIL_HOST, settings.EMAIL_PORT = smtp.host, smtp.port
        smtp.refuse("bounce@example.com", 550, "5.1.1 No such user")
        smtp.stop(); smtp.start()
        smtp.wait_for(3)
        [m.subject for m in smtp.messages]

A message counts as received when the server accepted its DATA (what it then answers 250 to).
"""

from __future__ import annotations

import email
import logging
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import compat32
from functools import cached_property

from aiosmtpd.controller import Controller

# aiosmtpd logs every SMTP command at INFO; the tests read what arrived instead.
logging.getLogger("mail.log").setLevel(logging.WARNING)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes = field(repr=False)
    received_at: float = field(default_factory=time.monotonic)
    message_id: str = ""

    def __post_init__(self) -> None:
        # Only the headers now (cheap); the full parse happens when a test reads the message.
        headers = BytesHeaderParser(policy=compat32).parsebytes(self.raw)
        self.message_id = str(headers["Message-ID"] or "").strip()

    @cached_property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=policy.default)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def to(self) -> str:
        return str(self.message["To"] or "")

    def part(self, content_type: str) -> str | None:
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_multipart():
                return part.get_content()
        return None

    @property
    def text(self) -> str | None:
        return self.part("text/plain")

    @property
    def html(self) -> str | None:
        return self.part("text/html")


class _Handler:
    def __init__(self, fake: FakeSMTP) -> None:
        self.fake = fake

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.fake._refused.get(address.lower())
        if answer is not None:
            return f"{answer[0]} {answer[1]}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        answer = self.fake._data_answer
        if answer is not None:
            return f"{answer[0]} {answer[1]}"
        self.fake._record(
            ReceivedMessage(
                mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos), raw=envelope.content
            )
        )
        return "250 2.0.0 Message accepted for delivery"


class FakeSMTP:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.messages: list[ReceivedMessage] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._controller: Controller | None = None
        self._refused: dict[str, tuple[int, str]] = {}
        self._data_answer: tuple[int, str] | None = None
        self._stop_after: int | None = None
        self.stopped_by_itself = threading.Event()
        self.starts = 0

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> FakeSMTP:
        if self._controller is None:
            controller = Controller(
                _Handler(self), hostname=self.host, port=self.port, ready_timeout=10
            )
            controller.start()
            self._controller = controller
            self.starts += 1
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> FakeSMTP:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- behaviour ------------------------------------------------------------------------

    def refuse(self, address: str, code: int, text: str) -> None:
        """Answer RCPT TO for ``address`` with ``code text`` (550 permanent, 450 temporary)."""
        self._refused[address.lower()] = (code, text)

    def answer_data(self, code: int | None, text: str = "") -> None:
        """Answer every DATA with ``code text`` instead of accepting (None: accept again)."""
        self._data_answer = None if code is None else (code, text)

    def stop_after(self, count: int) -> None:
        """Go away (as if the mail server stopped) once ``count`` messages have arrived."""
        self.stopped_by_itself.clear()
        self._stop_after = count

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
        self._refused.clear()
        self._data_answer = None
        self._stop_after = None

    # --- what arrived -----------------------------------------------------------------------

    def _record(self, message: ReceivedMessage) -> None:
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
            if self._stop_after is not None and len(self.messages) >= self._stop_after:
                self._stop_after = None
                # Not from the server's own event loop thread: stop() joins that thread.
                threading.Thread(target=self._stop_now, daemon=True).start()

    def _stop_now(self) -> None:
        self.stop()
        self.stopped_by_itself.set()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` messages arrived (False on timeout)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._arrived.wait(remaining)
        return True

    def message_id_counts(self) -> Counter:
        with self._lock:
            return Counter(m.message_id for m in self.messages)

    def duplicates(self) -> dict[str, int]:
        return {mid: n for mid, n in self.message_id_counts().items() if n > 1}
