"""The client address behind trusted proxies, and the per-address key."""

from __future__ import annotations

import ipaddress

import pytest

from magpie.guard.address import TrustedProxies, address_key


def proxies(*nets: str) -> TrustedProxies:
    return TrustedProxies(tuple(ipaddress.ip_network(n) for n in nets))


def test_no_trusted_proxy_means_the_header_is_ignored() -> None:
    assert TrustedProxies().client("10.0.0.1", ["203.0.113.9"]) == "10.0.0.1"
    assert not TrustedProxies().trusts("10.0.0.1")


def test_the_header_of_an_untrusted_peer_is_ignored() -> None:
    assert proxies("10.0.0.0/8").client("192.0.2.1", ["203.0.113.9"]) == "192.0.2.1"


@pytest.mark.parametrize(
    ("headers", "client"),
    [
        (["203.0.113.9"], "203.0.113.9"),
        (["1.1.1.1, 203.0.113.9"], "203.0.113.9"),  # a forged first entry is skipped
        (["1.1.1.1, 203.0.113.9, 10.0.0.2"], "203.0.113.9"),  # an inner trusted hop
        (["1.1.1.1", "203.0.113.9"], "203.0.113.9"),  # two header lines, in order
        (["2001:db8::7"], "2001:db8::7"),
        (["[2001:db8::7]:443"], "2001:db8::7"),
        (["198.51.100.4:5000"], "198.51.100.4"),
        (["::ffff:198.51.100.4"], "198.51.100.4"),
        ([], "10.0.0.1"),  # no header: the proxy itself
        (["garbage, 203.0.113.9"], "203.0.113.9"),
        (["203.0.113.9, garbage"], "10.0.0.1"),  # unreadable nearest hop: believe nothing
        (["10.0.0.5, 10.0.0.2"], "10.0.0.5"),  # proxies all the way: the first
    ],
)
def test_the_rightmost_untrusted_hop_is_the_client(headers: list[str], client: str) -> None:
    assert proxies("10.0.0.0/8").client("10.0.0.1", headers) == client


def test_address_keys() -> None:
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2:bbbb::9") == address_key("2001:db8:1:2:aaaa::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("") == ""
