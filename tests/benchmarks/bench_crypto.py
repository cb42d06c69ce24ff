"""Benchmark: AES-256-GCM encrypt/decrypt of one secret (median and p99, microseconds) and
``rotate_master_key`` over 10,000 stored API keys (keys per second).

Run: ``python -m tests.benchmarks.bench_crypto`` (needs DATABASE_URL to a PostgreSQL server;
uses a scratch database ``tp_bench_keys``). Goal: encrypt and decrypt median at most 50 us.
"""

from __future__ import annotations

import os
import statistics
import time

SAMPLES = 20_000
KEYS = 10_000
GOAL_MEDIAN_US = 50.0


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    median = statistics.median(ordered) / 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000
    return median, p99


def _time_each(function, inputs) -> list[int]:
    clock = time.perf_counter_ns
    samples = []
    for item in inputs:
        started = clock()
        function(item)
        samples.append(clock() - started)
    return samples


def _micro(samples: int) -> dict[str, float]:
    """Encrypt and decrypt one 40-character secret, as the field does (with its identity)."""
    import uuid

    from apps.apikeys.crypto import Keyring

    ring = Keyring({1: os.urandom(32)}, 1)
    aad = f"apikeys.apikey\x1fsecret\x1fowner_id=42\x1fuid={uuid.uuid4()}".encode()
    secret = "sEcReT0123456789abcdefghijklmnopqrstuvwx"
    for _ in range(1000):  # warm-up
        ring.decrypt(ring.encrypt(secret, associated_data=aad), associated_data=aad)
    encrypt = _time_each(lambda _: ring.encrypt(secret, associated_data=aad), range(samples))
    tokens = [ring.encrypt(secret, associated_data=aad) for _ in range(samples)]
    decrypt = _time_each(lambda token: ring.decrypt(token, associated_data=aad), tokens)
    fingerprint = _time_each(lambda _: ring.fingerprint(secret), range(samples))
    figures = {}
    for name, values in (("encrypt", encrypt), ("decrypt", decrypt), ("fingerprint", fingerprint)):
        median, p99 = _percentiles(values)
        figures[f"{name}_median_us"] = median
        figures[f"{name}_p99_us"] = p99
    return figures


def _rotation(keys: int) -> dict[str, float]:
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    from apps.accounts.models import User
    from apps.apikeys.crypto import Secret, token_version
    from apps.apikeys.fields import reveal
    from apps.apikeys.keyring import get_keyring
    from apps.apikeys.models import ApiKey

    k1, k2 = os.urandom(32), os.urandom(32)
    with connection.cursor() as cursor:  # a clean slate (TRUNCATE is allowed on the audit log)
        cursor.execute("TRUNCATE apikeys_apikey, apikeys_apikeyauditlog")
    owner, _ = User.objects.get_or_create(username="bench-keys")

    with override_settings(SECRETS_MASTER_KEYS={1: k1}, SECRETS_MASTER_KEY_VERSION=1):
        ring = get_keyring()
        started = time.perf_counter()
        rows = []
        for i in range(keys):
            key_id, secret = f"PKBENCH{i:013d}", f"{i:08d}" + "s" * 32
            rows.append(
                ApiKey(
                    owner=owner,
                    name=f"bench {i}",
                    key_id=Secret(key_id),
                    secret=Secret(secret),
                    key_id_last4=key_id[-4:],
                    secret_last4=secret[-4:],
                    fingerprint=ring.fingerprint(secret),
                )
            )
        ApiKey.objects.bulk_create(rows, batch_size=1000)
        stored = time.perf_counter() - started
    print(f"stored {keys:,} encrypted keys in {stored:.2f}s")

    with override_settings(SECRETS_MASTER_KEYS={1: k1, 2: k2}, SECRETS_MASTER_KEY_VERSION=2):
        started = time.perf_counter()
        call_command("rotate_master_key", batch_size=500, stdout=_Null())
        elapsed = time.perf_counter() - started
    with override_settings(SECRETS_MASTER_KEYS={2: k2}, SECRETS_MASTER_KEY_VERSION=2):
        versions = {token_version(t) for t in ApiKey.objects.values_list("secret", flat=True)}
        sample = ApiKey.objects.order_by("?").first()
        assert versions == {2}, versions
        assert reveal(sample, "secret").startswith(sample.name.split()[1].zfill(8))
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE apikeys_apikey, apikeys_apikeyauditlog")
    return {
        "rotate_keys": keys,
        "rotate_seconds": elapsed,
        "rotate_keys_per_s": keys / elapsed,
        "rotate_ciphertexts_per_s": 2 * keys / elapsed,
    }


def main(samples: int = SAMPLES, keys: int = KEYS) -> dict[str, float]:
    from tests.benchmarks._django import setup_django

    setup_django("tp_bench_keys")
    figures = _micro(samples)
    goal = f"goal: median <= {GOAL_MEDIAN_US:.0f} us"
    print(f"{'operation':<14} {'median us':>10} {'p99 us':>10}  {goal}")
    for name in ("encrypt", "decrypt", "fingerprint"):
        median, p99 = figures[f"{name}_median_us"], figures[f"{name}_p99_us"]
        verdict = "ok" if median <= GOAL_MEDIAN_US else "BELOW GOAL"
        if name == "fingerprint":
            verdict = ""
        print(f"{name:<14} {median:>10.1f} {p99:>10.1f}  {verdict}")
    figures.update(_rotation(keys))
    print(
        f"rotate_master_key: {figures['rotate_keys']:,} keys "
        f"({2 * figures['rotate_keys']:,} ciphertexts) in {figures['rotate_seconds']:.2f}s = "
        f"{figures['rotate_keys_per_s']:,.0f} keys/s"
    )
    return figures


class _Null:
    def write(self, *_args, **_kwargs) -> None:
        pass

    def flush(self) -> None:
        pass


if __name__ == "__main__":
    main()
