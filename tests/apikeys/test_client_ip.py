"""The client address for the audit log: X-Forwarded-For counts only behind trusted proxies."""

from __future__ import annotations

import pytest

from apps.apikeys.audit import client_ip


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "expected"),
    [
        # No trusted proxy: the header is the client's own claim and is ignored.
        ([], "203.0.113.5", "1.2.3.4", "203.0.113.5"),
        # The peer is not a trusted proxy: ignored as well.
        (["10.0.0.0/8"], "203.0.113.5", "1.2.3.4", "203.0.113.5"),
        # Behind one trusted proxy: the address it saw.
        (["10.0.0.1"], "10.0.0.1", "198.51.100.7", "198.51.100.7"),
        # The client prepended a fake address: the right-most untrusted one wins.
        (["10.0.0.0/8"], "10.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),
        # Two trusted hops.
        (["10.0.0.0/8"], "10.0.0.1", "198.51.100.7, 10.0.0.2", "198.51.100.7"),
        # Every hop trusted: the left-most (the first proxy's peer).
        (["10.0.0.0/8"], "10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),
        # Junk in the chain: the nearest address a trusted proxy vouched for.
        (["10.0.0.0/8"], "10.0.0.1", "junk, 10.0.0.2", "10.0.0.2"),
        # Ports and IPv6.
        (["10.0.0.0/8"], "10.0.0.1", "198.51.100.7:51234", "198.51.100.7"),
        (["::1"], "::1", "[2001:db8::5]:443", "2001:db8::5"),
        (["::1/128"], "::1", "2001:db8::9", "2001:db8::9"),
        # Trusted proxy, no header: the proxy itself.
        (["10.0.0.0/8"], "10.0.0.1", "", "10.0.0.1"),
    ],
)
def test_client_ip(settings, trusted, remote, forwarded, expected):
    settings.TRUSTED_PROXIES = trusted
    meta = {"REMOTE_ADDR": remote}
    if forwarded:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_ip(meta) == expected


def test_no_address_at_all(settings):
    settings.TRUSTED_PROXIES = []
    assert client_ip({}) is None
    assert client_ip({"REMOTE_ADDR": "not-an-ip"}) is None
