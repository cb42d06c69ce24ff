"""AES-256-GCM for secrets stored in the database, with versioned master keys.

Pure: no Django import (settings import this module to validate the master keys at start-up).

Scheme (docs/security.md has the whole story):

- A master key is at least 32 random bytes, given in the environment, one per *version*.
- From each master key HKDF-SHA256 derives two independent 32-byte keys: the AES-256-GCM data
  key and the HMAC-SHA256 fingerprint key. The master key itself never encrypts anything.
- A ciphertext is the text token ``tpsec:<version>:<base64url(nonce || ciphertext || tag)>``
  with a fresh random 96-bit nonce per encryption. The token header and the caller's associated
  data (the record's identity) are authenticated, so a token copied to another row, field or
  user, a changed version number or a flipped bit fails to decrypt.
- The version in the token picks the key to decrypt with; new tokens use the current version.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TOKEN_PREFIX = "tpsec"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
MIN_MASTER_KEY_BYTES = 32
FINGERPRINT_BYTES = 16

# HKDF inputs: a fixed application salt and one label per derived key, so the data key and the
# fingerprint key are independent even though they come from the same master key.
_HKDF_SALT = b"tradeplatform/secrets-at-rest/v1"
_INFO_DATA_KEY = b"aes-256-gcm data key"
_INFO_FINGERPRINT_KEY = b"hmac-sha256 fingerprint key"
_INFO_DEVELOPMENT = b"development master key (never for production)"

_TOKEN_RE = re.compile(r"^tpsec:([1-9][0-9]{0,8}):([A-Za-z0-9_-]+)$")
MASK_CHAR = "\u2022"


class CryptoError(Exception):
    """Base of the errors of this module. Messages never contain plaintext or key material."""


class DecryptionError(CryptoError):
    """A token did not decrypt: tampered, wrong associated data, wrong or unknown master key."""


class MalformedToken(DecryptionError):
    pass


class UnknownKeyVersion(DecryptionError):
    def __init__(self, version: int) -> None:
        super().__init__(
            f"No master key of version {version} is configured (was it retired before every "
            "secret was re-encrypted?)."
        )
        self.version = version


class Secret:
    """A plaintext secret in memory. ``repr``/``str`` never show it; it refuses to be pickled
    (so it cannot end up in a cache, a task message or a session by accident)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("A Secret holds a str.")
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def last4(self) -> str:
        return self._value[-4:]

    @property
    def masked(self) -> str:
        return mask(self._value)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self):
        raise TypeError("A Secret is never pickled.")


def mask(value: str | None, *, last4: str | None = None) -> str:
    """Eight dots then the last four characters: the length of the secret is not shown."""
    tail = last4 if last4 is not None else (value or "")[-4:]
    return MASK_CHAR * 8 + tail if tail else ""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hkdf(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_HKDF_SALT, info=info).derive(
        master
    )


def parse_master_keys(text: str) -> dict[int, bytes]:
    """``"2:<base64>,1:<base64>"`` -> ``{2: b"...", 1: b"..."}``.

    Standard or URL-safe base64 of at least 32 bytes. Errors name the version, never the key.
    """
    keys: dict[int, bytes] = {}
    for raw in re.split(r"[,\s]+", text.strip()):
        if not raw:
            continue
        version_text, sep, encoded = raw.partition(":")
        if not sep or not version_text.isdigit() or int(version_text) < 1:
            raise ValueError(
                "each entry must be VERSION:BASE64KEY with a whole version number >= 1, "
                "entries separated by commas"
            )
        version = int(version_text)
        if version in keys:
            raise ValueError(f"version {version} is given twice")
        try:
            padded = encoded + "=" * (-len(encoded) % 4)
            secret = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"the key of version {version} is not valid base64") from None
        if len(secret) < MIN_MASTER_KEY_BYTES:
            raise ValueError(
                f"the key of version {version} is {len(secret)} bytes; at least "
                f"{MIN_MASTER_KEY_BYTES} random bytes are required"
            )
        keys[version] = secret
    return keys


def generate_master_key() -> str:
    """A new master key, base64 of 32 random bytes (what goes after ``VERSION:``)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def derive_development_master_key(seed: str) -> bytes:
    """The development/test master key: derived from ``seed`` (Django's SECRET_KEY), so it is
    stable across restarts and processes without storing anything. Never used in production:
    settings refuse to start without real master keys when DEBUG is off."""
    return _hkdf(seed.encode(), _INFO_DEVELOPMENT)


def token_version(token: str) -> int:
    match = _TOKEN_RE.match(token) if isinstance(token, str) else None
    if match is None:
        raise MalformedToken("Not a ciphertext token.")
    return int(match.group(1))


def is_token(value: object) -> bool:
    return isinstance(value, str) and _TOKEN_RE.match(value) is not None


def token_prefix(version: int) -> str:
    return f"{TOKEN_PREFIX}:{version}:"


@dataclass(frozen=True, repr=False)
class _DerivedKeys:
    aead: AESGCM
    fingerprint_key: bytes


class Keyring:
    """The configured master keys, one of them current. Thread-safe; cheap to call."""

    def __init__(self, master_keys: Mapping[int, bytes], current_version: int) -> None:
        if not master_keys:
            raise CryptoError("At least one master key is required.")
        if current_version not in master_keys:
            raise CryptoError(
                f"The current master key version {current_version} is not configured."
            )
        self.current_version = current_version
        self._keys: dict[int, _DerivedKeys] = {}
        for version, master in master_keys.items():
            if len(master) < MIN_MASTER_KEY_BYTES:
                raise CryptoError(f"The master key of version {version} is too short.")
            self._keys[version] = _DerivedKeys(
                aead=AESGCM(_hkdf(master, _INFO_DATA_KEY)),
                fingerprint_key=_hkdf(master, _INFO_FINGERPRINT_KEY),
            )
        self._current = self._keys[current_version]
        self._current_header = token_prefix(current_version)

    def __repr__(self) -> str:
        return f"<Keyring versions={sorted(self._keys)} current={self.current_version}>"

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self._keys))

    def encrypt(self, plaintext: str, *, associated_data: bytes) -> str:
        header = self._current_header
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._current.aead.encrypt(
            nonce, plaintext.encode("utf-8"), header.encode("ascii") + associated_data
        )
        return header + _b64encode(nonce + sealed)

    def decrypt(self, token: str, *, associated_data: bytes) -> str:
        match = _TOKEN_RE.match(token) if isinstance(token, str) else None
        if match is None:
            raise MalformedToken("Not a ciphertext token.")
        version = int(match.group(1))
        keys = self._keys.get(version)
        if keys is None:
            raise UnknownKeyVersion(version)
        try:
            blob = _b64decode(match.group(2))
        except (binascii.Error, ValueError):
            raise MalformedToken("The ciphertext is not valid base64.") from None
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise MalformedToken("The ciphertext is too short.")
        header = token_prefix(version).encode("ascii")
        try:
            plain = keys.aead.decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], header + associated_data
            )
        except InvalidTag:
            raise DecryptionError(
                "Authentication failed: the ciphertext was tampered with, belongs to another "
                "record, or the master key is wrong."
            ) from None
        return plain.decode("utf-8")

    def needs_reencryption(self, token: str) -> bool:
        return token_version(token) != self.current_version

    def fingerprint(self, plaintext: str) -> str:
        """HMAC-SHA256 under a key derived from the current master key, first 16 bytes in hex.

        Identifies a secret (duplicates, audit) without revealing it; without the master key
        the fingerprints in a stolen database cannot be checked against guesses.
        """
        digest = hmac.new(
            self._current.fingerprint_key, plaintext.encode("utf-8"), hashlib.sha256
        ).digest()
        return digest[:FINGERPRINT_BYTES].hex()
