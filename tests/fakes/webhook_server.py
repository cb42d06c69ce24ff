"""A webhook receiver on 127.0.0.1 that checks the HMAC signature as a trader's would.

The signature check is written here from the documented scheme, independently of the
platform's code: ``X-TradePlatform-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>." + body>``, at most five minutes old::

    with FakeWebhookReceiver() as hook:
        hook.secret = "whsec_..."
        hook.respond(500, "try later")          # next answers, then 200 again
        hook.wait_for(1); hook.received[0].signature_ok
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def check_signature(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), fields.get("v1", ""))


@dataclass
class WebhookRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    answered: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class FakeWebhookReceiver:
    def __init__(self) -> None:
        self.secret = ""
        self.received: list[WebhookRequest] = []
        self._answers: list[tuple[int, str]] = []
        self._lock = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def __enter__(self) -> FakeWebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def respond(self, status: int, body: str = "", times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` (then 200 again)."""
        self._answers.extend([(status, body)] * times)

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self._answers.clear()
            self.secret = ""

    @property
    def accepted(self) -> list[WebhookRequest]:
        return [r for r in self.received if 200 <= r.answered < 300]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                signature = self.headers.get("X-TradePlatform-Signature", "")
                ok = bool(fake.secret) and check_signature(fake.secret, signature, body)
                status, text = (200, "ok") if ok else (401, "bad signature")
                if ok and fake._answers:
                    status, text = fake._answers.pop(0)
                with fake._lock:
                    fake.received.append(
                        WebhookRequest(self.path, dict(self.headers.items()), body, ok, status)
                    )
                    fake._lock.notify_all()
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
