"""VAPID keys for web push (RFC 8292): parse the configured private key, derive the public key
browsers subscribe with, and a development key derived from SECRET_KEY.

Imported by the settings module, so it imports nothing from Django.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# Order of the P-256 group: a private scalar is in [1, n - 1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_private_key(value: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM, or from base64url of the raw 32-byte scalar or DER."""
    value = value.strip()
    try:
        if "-----BEGIN" in value:
            key = serialization.load_pem_private_key(value.encode(), password=None)
        else:
            raw = b64url_decode(value)
            if len(raw) == 32:
                key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
            else:
                key = serialization.load_der_private_key(raw, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a P-256 private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("VAPID keys are P-256 (prime256v1) elliptic-curve keys")
    return key


def private_key_raw(key: ec.EllipticCurvePrivateKey) -> str:
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def public_key_b64(value: str) -> str:
    """The uncompressed public point, base64url: the browser's ``applicationServerKey``."""
    key = load_private_key(value)
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


def derive_development_key(secret_key: str) -> str:
    """A stable key for development and tests only (the settings refuse it in production)."""
    digest = hashlib.sha256(b"tradeplatform-vapid-dev\x00" + secret_key.encode()).digest()
    scalar = int.from_bytes(digest, "big") % (_P256_ORDER - 1) + 1
    return private_key_raw(ec.derive_private_key(scalar, ec.SECP256R1()))


def generate_key() -> str:
    """A new private key (base64url raw), for ``VAPID_PRIVATE_KEY``."""
    return private_key_raw(ec.generate_private_key(ec.SECP256R1()))
