"""A local Web Push service (RFC 8030) that decrypts what it receives, as a browser would.

``subscribe()`` creates a browser-side subscription: a P-256 key pair and a 16-byte auth
secret, and an endpoint on this server; it returns the PushSubscription JSON the browser
would hand to the page. Each POST to an endpoint is checked like a real push service does
(VAPID ``Authorization: vapid t=<JWT>,k=<key>`` signature, audience and expiry) and its body
decrypted with the subscription's private key (RFC 8291, aes128gcm via http_ece)::

    with FakePushService() as push:
        info = push.subscribe()
        push.expire(info["endpoint"])           # answers 410 Gone from now on
        push.fail_next(503)
        push.wait_for(1); push.received[0].payload  # the decrypted JSON
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class BrowserSubscription:
    token: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes
    gone_status: int | None = None

    @property
    def info(self) -> dict:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "keys": {"p256dh": _b64url(public), "auth": _b64url(self.auth_secret)},
        }


@dataclass
class PushMessage:
    endpoint: str
    payload: Any
    headers: dict[str, str]  # names in lower case
    vapid_claims: dict = field(default_factory=dict)
    vapid_key: str = ""


def verify_vapid(authorization: str, *, audience: str) -> tuple[dict, str]:
    """Check a ``vapid t=<JWT>,k=<public key>`` header; return the claims and the key."""
    scheme, _, params = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError("not a vapid Authorization header")
    parts = dict(item.strip().split("=", 1) for item in params.split(","))
    token, key = parts["t"], parts["k"]
    header_b64, claims_b64, signature_b64 = token.split(".")
    header = json.loads(_unb64url(header_b64))
    if header.get("alg") != "ES256":
        raise ValueError("VAPID tokens are ES256")
    signature = _unb64url(signature_b64)
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64url(key))
    try:
        public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("bad VAPID signature") from None
    claims = json.loads(_unb64url(claims_b64))
    if claims.get("aud") != audience:
        raise ValueError(f"VAPID audience {claims.get('aud')!r} is not {audience!r}")
    if int(claims.get("exp", 0)) < time.time():
        raise ValueError("VAPID token expired")
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        raise ValueError("VAPID sub must be a mailto: or https: URL")
    return claims, key


class FakePushService:
    def __init__(self) -> None:
        self.subscriptions: dict[str, BrowserSubscription] = {}
        self.received: list[PushMessage] = []
        self.refused: list[tuple[str, int, str]] = []  # endpoint, status, why
        self._failures: list[int] = []
        self._lock = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakePushService:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- the browser side -------------------------------------------------------------------

    def subscribe(self) -> dict:
        token = secrets.token_urlsafe(16)
        subscription = BrowserSubscription(
            token=token,
            endpoint=f"{self.url}/push/{token}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth_secret=secrets.token_bytes(16),
        )
        self.subscriptions[token] = subscription
        return subscription.info

    def expire(self, endpoint: str, status: int = 410) -> None:
        """The browser unsubscribed: the endpoint answers ``status`` (404 or 410) from now on."""
        self.subscriptions[endpoint.rsplit("/", 1)[1]].gone_status = status

    def fail_next(self, status: int, count: int = 1) -> None:
        self._failures.extend([status] * count)

    def reset(self) -> None:
        with self._lock:
            self.subscriptions.clear()
            self.received.clear()
            self.refused.clear()
            self._failures.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    # --- the service side --------------------------------------------------------------------

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, text: str = "") -> None:
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                token = self.path.rsplit("/", 1)[-1]
                subscription = fake.subscriptions.get(token)
                if not self.path.startswith("/push/") or subscription is None:
                    return self._refuse(404, "no such subscription")
                if subscription.gone_status:
                    return self._refuse(subscription.gone_status, "push subscription has expired")
                if fake._failures:
                    return self._refuse(fake._failures.pop(0), "push service overloaded")
                if "TTL" not in self.headers:
                    return self._refuse(400, "TTL header missing")
                if self.headers.get("Content-Encoding") != "aes128gcm":
                    return self._refuse(415, "only aes128gcm")
                try:
                    claims, key = verify_vapid(
                        self.headers.get("Authorization", ""), audience=fake.url
                    )
                except (ValueError, KeyError) as exc:
                    return self._refuse(403, f"VAPID: {exc}")
                try:
                    plaintext = http_ece.decrypt(
                        body,
                        private_key=subscription.private_key,
                        auth_secret=subscription.auth_secret,
                        version="aes128gcm",
                    )
                except Exception as exc:
                    return self._refuse(400, f"cannot decrypt: {exc}")
                try:
                    payload: Any = json.loads(plaintext)
                except ValueError:
                    payload = plaintext.decode("utf-8", "replace")
                with fake._lock:
                    fake.received.append(
                        PushMessage(
                            endpoint=subscription.endpoint,
                            payload=payload,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            vapid_claims=claims,
                            vapid_key=key,
                        )
                    )
                    fake._lock.notify_all()
                self.send_response(201)
                self.send_header("Location", f"{fake.url}/message/{secrets.token_hex(8)}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _refuse(self, status: int, why: str) -> None:
                with fake._lock:
                    fake.refused.append((self.path, status, why))
                self._answer(status, why)

        return Handler
