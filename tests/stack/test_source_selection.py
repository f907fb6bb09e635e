"""Source address selection (RFC 1122 §3.3.4.3 for IPv4, RFC 6724 in short for IPv6)."""

from __future__ import annotations

import errno
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_address

import pytest

from ethox_asyncio.stack.interface import Interface, InterfaceConfig
from ethox_asyncio.stack.wire.ethernet import EthernetAddress
from ethox_asyncio.stack.wire.ndisc import link_local_from_mac

MAC = EthernetAddress("02:00:00:00:00:02")
LINK_LOCAL = link_local_from_mac(MAC)


def interface(*addresses: str) -> Interface:
    parsed = tuple(IPv6Interface(a) if ":" in a else IPv4Interface(a) for a in addresses)
    return Interface(InterfaceConfig(mac=MAC, addresses=parsed))


MULTI = ("198.18.0.2/24", "198.19.7.2/24", "fd00::2/64", "fd00:1::2/64")


@pytest.mark.parametrize(("destination", "source"), [
    ("198.18.0.9", "198.18.0.2"),  # on the first network
    ("198.19.7.9", "198.19.7.2"),  # on the second: that network's address, not the first
    ("198.18.200.1", "198.18.0.2"),  # on no network: the first address
    ("fd00::9", "fd00::2"),
    ("fd00:1::9", "fd00:1::2"),  # the address on the destination's prefix
    ("fd00:2::9", "fd00::2"),  # on no prefix: the first global address
    ("fe80::1", str(LINK_LOCAL)),  # link-local destination: the link-local address
    ("ff02::1", str(LINK_LOCAL)),  # link-scope multicast: link-local too
    ("ff05::1:3", "fd00::2"),  # site-scope multicast: a global address
])
def test_the_source_is_the_address_on_the_destinations_network(destination: str,
                                                                source: str) -> None:
    assert interface(*MULTI).source_address(ip_address(destination)) == ip_address(source)


def test_a_bound_address_wins_over_selection() -> None:
    iface = interface(*MULTI)
    assert iface.ipv4.source_for(IPv4Address("198.19.7.2"), IPv4Address("198.18.0.9")) \
        == IPv4Address("198.19.7.2")
    assert iface.ipv6.source_for(IPv6Address("fd00:1::2"), IPv6Address("fd00::9")) \
        == IPv6Address("fd00:1::2")
    # The unspecified address means "choose": selection as without a binding.
    assert iface.ipv4.source_for(IPv4Address(0), IPv4Address("198.19.7.9")) \
        == IPv4Address("198.19.7.2")
    assert iface.ipv6.source_for(IPv6Address(0), IPv6Address("fd00:1::9")) \
        == IPv6Address("fd00:1::2")


@pytest.mark.parametrize(("addresses", "destination", "message"), [
    (("fd00::2/64",), "198.18.0.1", "no IPv4 address configured on the interface"),
    (("198.18.0.2/24",), "fd00::1", "no global IPv6 address configured on the interface"),
])
def test_no_address_of_the_family_is_enetunreach(addresses: tuple[str, ...], destination: str,
                                                 message: str) -> None:
    with pytest.raises(OSError, match=message) as raised:
        interface(*addresses).source_address(ip_address(destination))
    assert raised.value.errno == errno.ENETUNREACH


def test_link_local_destinations_work_without_a_global_address() -> None:
    assert interface("198.18.0.2/24").source_address(IPv6Address("fe80::1")) == LINK_LOCAL
