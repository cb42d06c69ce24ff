"""The AES-256-GCM core, without a database: round trips, every kind of tampering, wrong
associated data and wrong or unknown master keys fail loudly; nonces never repeat."""

from __future__ import annotations

import base64
import os
import pickle

import pytest

from apps.apikeys.crypto import (
    NONCE_BYTES,
    DecryptionError,
    Keyring,
    MalformedToken,
    Secret,
    UnknownKeyVersion,
    derive_development_master_key,
    generate_master_key,
    mask,
    parse_master_keys,
    token_version,
)

AAD = b"apikeys.apikey\x1fsecret\x1fowner_id=7\x1fuid=0b7c"
SECRET = "sEcReT0123456789abcdefghijklmnopqrstuvwx"


@pytest.fixture
def ring() -> Keyring:
    return Keyring({1: os.urandom(32)}, 1)


def _blob(token: str) -> bytes:
    body = token.split(":", 2)[2]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _with_blob(token: str, blob: bytes) -> str:
    head = token.rsplit(":", 1)[0]
    return f"{head}:{base64.urlsafe_b64encode(blob).rstrip(b'=').decode()}"


@pytest.mark.parametrize(
    "plaintext", [SECRET, "", "x", "ünïcødé ✓ secret", "a" * 4096, "line\nbreak\0nul"]
)
def test_round_trip(ring, plaintext):
    token = ring.encrypt(plaintext, associated_data=AAD)
    assert ring.decrypt(token, associated_data=AAD) == plaintext


def test_token_carries_the_version_and_never_the_plaintext(ring):
    token = ring.encrypt(SECRET, associated_data=AAD)
    assert token.startswith("tpsec:1:")
    assert token_version(token) == 1
    assert SECRET not in token
    assert SECRET.encode() not in _blob(token)
    # nonce (12) + ciphertext (same length as the plaintext) + tag (16)
    assert len(_blob(token)) == NONCE_BYTES + len(SECRET) + 16


def test_the_same_plaintext_encrypts_differently_each_time(ring):
    assert ring.encrypt(SECRET, associated_data=AAD) != ring.encrypt(SECRET, associated_data=AAD)


def test_nonces_never_repeat_across_many_encryptions(ring):
    count = 100_000
    nonces = {_blob(ring.encrypt("s", associated_data=AAD))[:NONCE_BYTES] for _ in range(count)}
    assert len(nonces) == count


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
def test_a_flipped_bit_anywhere_fails(ring, where):
    token = ring.encrypt(SECRET, associated_data=AAD)
    blob = bytearray(_blob(token))
    index = {"nonce": 3, "ciphertext": NONCE_BYTES + 5, "tag": len(blob) - 2}[where]
    blob[index] ^= 0x01
    with pytest.raises(DecryptionError, match="Authentication failed"):
        ring.decrypt(_with_blob(token, bytes(blob)), associated_data=AAD)


def test_a_truncated_token_fails(ring):
    token = ring.encrypt(SECRET, associated_data=AAD)
    with pytest.raises(DecryptionError):
        ring.decrypt(_with_blob(token, _blob(token)[:-1]), associated_data=AAD)
    with pytest.raises(MalformedToken, match="too short"):
        ring.decrypt(_with_blob(token, _blob(token)[:20]), associated_data=AAD)


@pytest.mark.parametrize(
    "other",
    [
        b"apikeys.apikey\x1fsecret\x1fowner_id=8\x1fuid=0b7c",  # another user
        b"apikeys.apikey\x1fsecret\x1fowner_id=7\x1fuid=0b7d",  # another row
        b"apikeys.apikey\x1fkey_id\x1fowner_id=7\x1fuid=0b7c",  # another field
        b"",
    ],
)
def test_wrong_associated_data_fails(ring, other):
    token = ring.encrypt(SECRET, associated_data=AAD)
    with pytest.raises(DecryptionError, match="Authentication failed"):
        ring.decrypt(token, associated_data=other)


def test_wrong_master_key_fails():
    token = Keyring({1: os.urandom(32)}, 1).encrypt(SECRET, associated_data=AAD)
    with pytest.raises(DecryptionError, match="Authentication failed"):
        Keyring({1: os.urandom(32)}, 1).decrypt(token, associated_data=AAD)


def test_unknown_version_fails_and_says_so():
    token = Keyring({3: os.urandom(32)}, 3).encrypt(SECRET, associated_data=AAD)
    with pytest.raises(UnknownKeyVersion, match="version 3") as caught:
        Keyring({1: os.urandom(32)}, 1).decrypt(token, associated_data=AAD)
    assert caught.value.version == 3


def test_a_changed_version_number_fails_even_when_that_key_exists():
    k1, k2 = os.urandom(32), os.urandom(32)
    ring = Keyring({1: k1, 2: k2}, 1)
    token = ring.encrypt(SECRET, associated_data=AAD)
    forged = "tpsec:2:" + token.split(":", 2)[2]
    with pytest.raises(DecryptionError):
        ring.decrypt(forged, associated_data=AAD)


@pytest.mark.parametrize(
    "junk",
    ["", SECRET, "tpsec:1:", "tpsec:x:abc", "tpsec:0:abc", "tpsec:1:not base64!", None, 42],
)
def test_malformed_tokens_fail(ring, junk):
    with pytest.raises(MalformedToken):
        ring.decrypt(junk, associated_data=AAD)


def test_old_versions_decrypt_new_encryptions_use_the_current_one():
    k1, k2 = os.urandom(32), os.urandom(32)
    old = Keyring({1: k1}, 1).encrypt(SECRET, associated_data=AAD)
    both = Keyring({1: k1, 2: k2}, 2)
    assert both.decrypt(old, associated_data=AAD) == SECRET
    assert both.needs_reencryption(old)
    new = both.encrypt(SECRET, associated_data=AAD)
    assert token_version(new) == 2 and not both.needs_reencryption(new)
    assert Keyring({2: k2}, 2).decrypt(new, associated_data=AAD) == SECRET


def test_fingerprint_is_keyed_stable_and_short():
    k1 = os.urandom(32)
    ring = Keyring({1: k1}, 1)
    fp = ring.fingerprint(SECRET)
    assert len(fp) == 32 and int(fp, 16) >= 0
    assert fp == Keyring({1: k1}, 1).fingerprint(SECRET)
    assert fp != ring.fingerprint(SECRET + "x")
    # Keyed by the master key: a stolen database alone cannot test guesses against it.
    assert fp != Keyring({1: os.urandom(32)}, 1).fingerprint(SECRET)
    import hashlib

    assert fp != hashlib.sha256(SECRET.encode()).hexdigest()[:32]


def test_keyring_refuses_bad_configuration():
    with pytest.raises(Exception, match="At least one"):
        Keyring({}, 1)
    with pytest.raises(Exception, match="not configured"):
        Keyring({1: os.urandom(32)}, 2)
    with pytest.raises(Exception, match="too short"):
        Keyring({1: b"short"}, 1)


def test_keyring_repr_shows_versions_only():
    key = os.urandom(32)
    text = repr(Keyring({1: key}, 1))
    assert text == "<Keyring versions=[1] current=1>"


def test_parse_master_keys():
    a, b = os.urandom(32), os.urandom(48)
    text = f"2:{base64.b64encode(b).decode()}, 1:{base64.urlsafe_b64encode(a).decode().rstrip('=')}"
    assert parse_master_keys(text) == {2: b, 1: a}
    assert parse_master_keys("") == {}
    assert parse_master_keys(f"1:{generate_master_key()}").keys() == {1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "VERSION:BASE64KEY"),
        ("0:" + base64.b64encode(b"k" * 32).decode(), "VERSION:BASE64KEY"),
        ("1:" + base64.b64encode(b"k" * 16).decode(), "version 1 is 16 bytes"),
        ("1:%%%notbase64", "version 1 is not valid base64"),
        ("1:{k},1:{k}".format(k=base64.b64encode(b"k" * 32).decode()), "given twice"),
    ],
)
def test_parse_master_keys_errors_name_the_version_never_the_key(text, message):
    with pytest.raises(ValueError, match=message) as caught:
        parse_master_keys(text)
    key_part = text.split(":", 1)[1] if ":" in text else text
    assert key_part not in str(caught.value)


def test_development_key_is_stable_and_32_bytes():
    assert derive_development_master_key("seed") == derive_development_master_key("seed")
    assert derive_development_master_key("seed") != derive_development_master_key("other")
    assert len(derive_development_master_key("seed")) == 32


def test_secret_never_shows_itself():
    secret = Secret(SECRET)
    assert SECRET not in repr(secret) and SECRET not in str(secret)
    assert SECRET not in f"{secret}" and SECRET not in repr([secret, {"k": secret}])
    assert secret.reveal() == SECRET
    assert secret.last4 == "uvwx" and secret.masked == "\u2022" * 8 + "uvwx"
    assert secret == Secret(SECRET) and secret != Secret("other")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        hash(secret)
    with pytest.raises(TypeError):
        Secret(123)


def test_mask_hides_the_length():
    assert mask("abcdefgh") == mask("zzzzzzzzzzzzzzzzefgh") == "\u2022" * 8 + "efgh"
    assert mask(None, last4="wxyz") == "\u2022" * 8 + "wxyz"
    assert mask("") == ""
