"""loop.py's cache of address text (peername/sockname of accepted connections)."""

from __future__ import annotations

import ipaddress

from ethox_asyncio import loop as ethox_loop
from ethox_asyncio.loop import EthoxEventLoop


def test_address_text_is_what_ipaddress_writes() -> None:
    for text in ("198.18.0.1", "0.0.0.0", "255.255.255.255", "fd00::1", "::",
                 "::ffff:198.18.0.1", "fe80::1:2:3:4", "fd00:0:0:1::"):
        address = ipaddress.ip_address(text)
        for _ in range(2):  # filled, then from the cache
            assert ethox_loop._address_text(address.version, int(address)) == str(address)
    # The same int in both families is two entries.
    assert ethox_loop._address_text(4, 1) == "0.0.0.1"
    assert ethox_loop._address_text(6, 1) == "::1"


def test_extra_info_tuples_keep_their_shape() -> None:
    v4 = EthoxEventLoop._tcp_extra_of(4, int(ipaddress.ip_address("198.18.0.2")), 80,
                                      int(ipaddress.ip_address("198.18.0.1")), 40000)
    assert v4 == {"socket": None, "sockname": ("198.18.0.2", 80),
                  "peername": ("198.18.0.1", 40000)}
    v6 = EthoxEventLoop._tcp_extra_of(6, int(ipaddress.ip_address("fd00::2")), 80,
                                      int(ipaddress.ip_address("fd00::1")), 40000)
    assert v6 == {"socket": None, "sockname": ("fd00::2", 80, 0, 0),
                  "peername": ("fd00::1", 40000, 0, 0)}


def test_address_text_cache_is_bounded() -> None:
    for value in range(ethox_loop._ADDRESS_TEXT_LIMIT + 10):
        ethox_loop._address_text(4, value)
    assert len(ethox_loop._ADDRESS_TEXT) <= ethox_loop._ADDRESS_TEXT_LIMIT
    assert ethox_loop._address_text(4, 0xC6120001) == "198.18.0.1"
