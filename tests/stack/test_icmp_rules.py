"""ICMP error policy: rate limiting, RFC 1122 §3.2.2 / RFC 4443 §2.4 (e), quoting."""

from __future__ import annotations

import math
import struct
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from ethox_asyncio.stack.icmp import (
    DEFAULT_ICMP_BURST,
    DEFAULT_ICMP_RATE,
    TokenBucket,
    is_icmpv4_error,
    is_icmpv6_error,
    may_send_icmpv4_error,
    may_send_icmpv6_error,
    quote_ipv4,
    quote_ipv6,
)
from ethox_asyncio.stack.wire import icmpv4, icmpv6
from ethox_asyncio.stack.wire.icmpv6 import Icmpv6Type

# --- token bucket -----------------------------------------------------------------------


def test_defaults_are_linux() -> None:
    bucket = TokenBucket()
    assert (bucket.rate, bucket.burst) == (DEFAULT_ICMP_RATE, DEFAULT_ICMP_BURST) == (1000.0, 50)


def test_burst_then_suppress() -> None:
    bucket = TokenBucket(10.0, 5)
    assert [bucket.allow(100.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert bucket.stats == {"allowed": 5, "suppressed": 2}


def test_refill_with_virtual_clock() -> None:
    bucket = TokenBucket(10.0, 5)
    now = 100.0
    for _ in range(5):
        assert bucket.allow(now)
    assert not bucket.allow(now)
    assert not bucket.allow(now + 0.09)  # 0.9 token
    assert bucket.allow(now + 0.1)  # one token after 1/rate
    assert not bucket.allow(now + 0.1)
    assert bucket.tokens(now + 0.3) == pytest.approx(2.0)
    assert [bucket.allow(now + 0.3) for _ in range(3)] == [True, True, False]
    # a long idle period refills only up to the burst
    assert bucket.tokens(now + 1000) == 5
    assert sum(bucket.allow(now + 1000) for _ in range(10)) == 5


def test_steady_rate() -> None:
    bucket = TokenBucket(100.0, 1)
    sent = sum(bucket.allow(i * 0.001) for i in range(10_000))  # 10 s at 1000/s offered
    assert sent == pytest.approx(1000, abs=2)
    assert bucket.suppressed == 10_000 - sent


def test_clock_going_backwards_adds_nothing() -> None:
    bucket = TokenBucket(1.0, 1)
    assert bucket.allow(50.0)
    assert not bucket.allow(10.0)
    assert not bucket.allow(50.5)
    assert bucket.allow(51.0)


def test_unlimited_and_validation() -> None:
    bucket = TokenBucket(math.inf, 1)
    assert all(bucket.allow(0.0) for _ in range(1000))
    assert bucket.tokens(0.0) == math.inf
    for rate, burst in [(0.0, 1), (-1.0, 1), (math.nan, 1), (1.0, 0)]:
        with pytest.raises(ValueError):
            TokenBucket(rate, burst)
    assert "allowed=1000" in repr(bucket)


# --- type classification ----------------------------------------------------------------


def test_icmpv4_error_types() -> None:
    assert [t for t in range(256) if is_icmpv4_error(t)] == [3, 4, 5, 11, 12]


def test_icmpv6_error_types() -> None:
    assert is_icmpv6_error(1) and is_icmpv6_error(4) and is_icmpv6_error(127)
    assert not is_icmpv6_error(128) and not is_icmpv6_error(135)


# --- RFC 1122 §3.2.2 --------------------------------------------------------------------

V4_OK: dict[str, Any] = {
    "dst_is_broadcast_or_multicast": False, "src": IPv4Address("198.18.0.9"),
    "is_icmp_error": False, "frag_offset": 0, "link_broadcast": False,
}


def test_icmpv4_allowed_normally() -> None:
    assert may_send_icmpv4_error(**V4_OK)


@pytest.mark.parametrize("change", [
    {"is_icmp_error": True},
    {"dst_is_broadcast_or_multicast": True},
    {"link_broadcast": True},
    {"frag_offset": 8},
    {"frag_offset": 1480},
    {"src_is_broadcast": True},
    {"src": IPv4Address("0.0.0.0")},
    {"src": IPv4Address("0.1.2.3")},
    {"src": IPv4Address("127.0.0.1")},
    {"src": IPv4Address("127.9.9.9")},
    {"src": IPv4Address("255.255.255.255")},
    {"src": IPv4Address("224.0.0.1")},
    {"src": IPv4Address("239.255.255.250")},
    {"src": IPv4Address("240.0.0.1")},
    {"src": IPv4Address("250.1.2.3")},
], ids=repr)
def test_icmpv4_exclusions(change: dict[str, Any]) -> None:
    assert not may_send_icmpv4_error(**{**V4_OK, **change})


# --- RFC 4443 §2.4 (e) ------------------------------------------------------------------

UNREACH = int(Icmpv6Type.DEST_UNREACHABLE)
V6_OK: dict[str, Any] = {
    "error_type": UNREACH, "dst": IPv6Address("fd00::1"),
    "src": IPv6Address("fd00::9"), "is_icmp_error": False, "link_multicast": False,
}
MCAST = IPv6Address("ff02::1")


def test_icmpv6_allowed_normally() -> None:
    assert may_send_icmpv6_error(**V6_OK)


@pytest.mark.parametrize("change", [
    {"is_icmp_error": True},  # e.1
    {"dst": MCAST},  # e.3
    {"dst": IPv6Address("ff05::1:3")},
    {"link_multicast": True},  # e.4, e.5
    {"src": IPv6Address("::")},  # e.6
    {"src": MCAST},
    {"dst": MCAST, "error_type": int(Icmpv6Type.TIME_EXCEEDED)},
    # Parameter Problem code 2 may go to multicast only for an option of action 10;
    # the rule is not told the action, and we send no code 2: refused for every code.
    {"dst": MCAST, "error_type": int(Icmpv6Type.PARAM_PROBLEM)},
    {"link_multicast": True, "error_type": int(Icmpv6Type.PARAM_PROBLEM)},
    # the exceptions never override the source rule
    {"src": IPv6Address("::"), "error_type": int(Icmpv6Type.PACKET_TOO_BIG)},
    {"src": MCAST, "error_type": int(Icmpv6Type.PACKET_TOO_BIG)},
    {"is_icmp_error": True, "dst": MCAST, "error_type": int(Icmpv6Type.PACKET_TOO_BIG)},
], ids=repr)
def test_icmpv6_exclusions(change: dict[str, Any]) -> None:
    assert not may_send_icmpv6_error(**{**V6_OK, **change})


@pytest.mark.parametrize("change", [
    {"dst": MCAST, "error_type": int(Icmpv6Type.PACKET_TOO_BIG)},
    {"link_multicast": True, "error_type": int(Icmpv6Type.PACKET_TOO_BIG)},
    {"error_type": int(Icmpv6Type.PARAM_PROBLEM)},
], ids=repr)
def test_icmpv6_multicast_exceptions(change: dict[str, Any]) -> None:
    assert may_send_icmpv6_error(**{**V6_OK, **change})


# --- quoting ----------------------------------------------------------------------------


def ipv4_packet(payload_len: int, padding: int = 0) -> bytes:
    total = 20 + payload_len
    header = struct.pack("!BBHHHBBHII", 0x45, 0, total, 1, 0, 64, 17, 0, 0xC6120001, 0xC6120002)
    return header + bytes(range(256)) * (payload_len // 256) + bytes(payload_len % 256) \
        + b"\xee" * padding


def ipv6_packet(payload_len: int, padding: int = 0) -> bytes:
    header = struct.pack("!IHBB16s16s", 6 << 28, payload_len, 17, 64, b"\1" * 16, b"\2" * 16)
    return header + b"\x55" * payload_len + b"\xee" * padding


def test_quote_constants_come_from_wire() -> None:
    assert icmpv4.MAX_QUOTED_LEN == 548 and icmpv6.MAX_QUOTED_LEN == 1232


@pytest.mark.parametrize(("payload_len", "expected"), [
    (0, 20), (8, 28), (100, 120), (528, 548), (529, 548), (1480, 548)])
def test_quote_ipv4_lengths(payload_len: int, expected: int) -> None:
    packet = ipv4_packet(payload_len)
    quoted = quote_ipv4(memoryview(packet))
    assert isinstance(quoted, bytes)
    assert quoted == packet[:expected]


def test_quote_ipv4_drops_link_padding_and_tolerates_garbage() -> None:
    assert quote_ipv4(ipv4_packet(6, padding=20)) == ipv4_packet(6)
    assert quote_ipv4(b"\x45\x00") == b"\x45\x00"
    bad = bytearray(ipv4_packet(1000))
    bad[2:4] = b"\x00\x05"  # total length below the header: quote what came, bounded
    assert len(quote_ipv4(bad)) == 548
    bad[2:4] = b"\xff\xff"  # longer than received
    assert quote_ipv4(bad[:100]) == bytes(bad[:100])


@pytest.mark.parametrize(("payload_len", "expected"), [
    (0, 40), (8, 48), (1192, 1232), (1193, 1232), (8000, 1232)])
def test_quote_ipv6_lengths(payload_len: int, expected: int) -> None:
    packet = ipv6_packet(payload_len)
    assert quote_ipv6(packet) == packet[:expected]


def test_quote_ipv6_drops_link_padding() -> None:
    assert quote_ipv6(ipv6_packet(10, padding=14)) == ipv6_packet(10)
    assert quote_ipv6(bytearray(ipv6_packet(10))[:30]) == ipv6_packet(10)[:30]
