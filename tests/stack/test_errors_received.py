"""ICMP errors we receive: matched to the UDP endpoint they quote, with Linux's errno.

RFC 1122 §3.2.2.1 / §4.1.3.3 (UDP passes ICMP errors up), RFC 4443 §3; the errno
values are the ones Linux's ``icmp_err_convert`` / ``icmpv6_err_convert`` tables give
a UDP socket.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import pytest

from ethox_asyncio.stack.common import UdpError
from ethox_asyncio.stack.wire.icmpv4 import (
    Icmpv4DestUnreachable,
    Icmpv4DestUnreachableCode,
    Icmpv4TimeExceeded,
)
from ethox_asyncio.stack.wire.icmpv6 import (
    Icmpv6DestUnreachable,
    Icmpv6DestUnreachableCode,
    Icmpv6PacketTooBig,
    Icmpv6TimeExceeded,
)
from ethox_asyncio.stack.wire.ip import IpProtocol
from tests.stack.test_answers import (
    OUR_IP,
    OUR_IP6,
    PEER_IP,
    PEER_IP6,
    Link,
    icmpv4_bytes,
    icmpv6_bytes,
    ip_frame,
    ipv4_packet,
    ipv6_packet,
    udp_bytes,
    udp_packet,
)

OUR_PORT, THEIR_PORT = 5353, 9999


def _our_datagram(family: int) -> bytes:
    """A datagram as we would have sent it: ours → peer, OUR_PORT → THEIR_PORT."""
    if family == 4:
        return ipv4_packet(OUR_IP, PEER_IP, IpProtocol.UDP,
                           udp_bytes(OUR_IP, PEER_IP, b"hello", src_port=OUR_PORT,
                                     dst_port=THEIR_PORT))
    return ipv6_packet(OUR_IP6, PEER_IP6, IpProtocol.UDP,
                       udp_bytes(OUR_IP6, PEER_IP6, b"hello", src_port=OUR_PORT,
                                 dst_port=THEIR_PORT))


def _error_frame(family: int, message: object) -> bytes:
    if family == 4:
        return ip_frame(4, ipv4_packet(PEER_IP, OUR_IP, IpProtocol.ICMP,
                                       icmpv4_bytes(message)))  # type: ignore[arg-type]
    return ip_frame(6, ipv6_packet(PEER_IP6, OUR_IP6, IpProtocol.ICMPV6,
                                   icmpv6_bytes(message, PEER_IP6, OUR_IP6)))  # type: ignore[arg-type]


V4_CASES = [
    (Icmpv4DestUnreachableCode.PORT_UNREACHABLE, errno.ECONNREFUSED, ConnectionRefusedError),
    (Icmpv4DestUnreachableCode.FRAG_NEEDED, errno.EMSGSIZE, OSError),
    (Icmpv4DestUnreachableCode.NET_UNREACHABLE, errno.ENETUNREACH, OSError),
    (Icmpv4DestUnreachableCode.HOST_UNREACHABLE, errno.EHOSTUNREACH, OSError),
    (Icmpv4DestUnreachableCode.PROTOCOL_UNREACHABLE, errno.EHOSTUNREACH, OSError),
]


@pytest.mark.parametrize(("code", "expected", "kind"), V4_CASES, ids=lambda v: str(v))
def test_icmpv4_destination_unreachable_reaches_the_endpoint_with_linux_errno(
        code: int, expected: int, kind: type) -> None:
    link = Link()
    endpoint = link.iface.udp.bind(OUR_IP, OUR_PORT, family=4)
    quote = _our_datagram(4)[:28]
    link.send(_error_frame(4, Icmpv4DestUnreachable(code, quote, next_hop_mtu=1400)))
    errors = [e for e in link.iface.events if isinstance(e, UdpError)]
    assert [(e.endpoint, e.error.errno, type(e.error)) for e in errors] == [
        (endpoint, expected, kind)]
    if code == Icmpv4DestUnreachableCode.FRAG_NEEDED:
        assert "1400" in str(errors[0].error)


def test_icmpv4_time_exceeded_is_host_unreachable() -> None:
    link = Link()
    endpoint = link.iface.udp.bind(IPv4Address(0), OUR_PORT, family=4)
    link.send(_error_frame(4, Icmpv4TimeExceeded(0, _our_datagram(4)[:28])))
    errors = [e for e in link.iface.events if isinstance(e, UdpError)]
    assert [(e.endpoint, e.error.errno) for e in errors] == [(endpoint, errno.EHOSTUNREACH)]


V6_CASES = [
    (lambda q: Icmpv6DestUnreachable(Icmpv6DestUnreachableCode.PORT_UNREACHABLE, q),
     errno.ECONNREFUSED, ConnectionRefusedError),
    (lambda q: Icmpv6DestUnreachable(Icmpv6DestUnreachableCode.NO_ROUTE, q),
     errno.EHOSTUNREACH, OSError),
    (lambda q: Icmpv6DestUnreachable(Icmpv6DestUnreachableCode.ADDRESS_UNREACHABLE, q),
     errno.EHOSTUNREACH, OSError),
    (lambda q: Icmpv6PacketTooBig(1280, q), errno.EMSGSIZE, OSError),
    (lambda q: Icmpv6TimeExceeded(0, q), errno.EHOSTUNREACH, OSError),
]


@pytest.mark.parametrize(("build", "expected", "kind"), V6_CASES,
                         ids=["port", "no-route", "address", "too-big", "time"])
def test_icmpv6_errors_reach_the_endpoint_with_linux_errno(
        build: Callable[[bytes], object], expected: int, kind: type) -> None:
    link = Link()
    endpoint = link.iface.udp.bind(IPv6Address(0), OUR_PORT, family=6)
    message = build(_our_datagram(6))
    link.send(_error_frame(6, message))
    errors = [e for e in link.iface.events if isinstance(e, UdpError)]
    assert [(e.endpoint, e.error.errno, type(e.error)) for e in errors] == [
        (endpoint, expected, kind)]
    if isinstance(message, Icmpv6PacketTooBig):
        assert "1280" in str(errors[0].error)


@pytest.mark.parametrize("family", [4, 6])
def test_an_error_quoting_no_endpoint_of_ours_is_counted(family: int) -> None:
    """No endpoint sent the quoted datagram (or it is not UDP): counted, no event."""
    link = Link()
    link.iface.udp.bind(OUR_IP if family == 4 else OUR_IP6, OUR_PORT + 1, family=family)
    if family == 4:
        message: object = Icmpv4DestUnreachable(3, _our_datagram(4)[:28])
        not_udp: object = Icmpv4DestUnreachable(3, _our_datagram(4)[:9] + b"\x2f"
                                                + _our_datagram(4)[10:28])
    else:
        message = Icmpv6DestUnreachable(4, _our_datagram(6))
        raw = bytearray(_our_datagram(6))
        raw[6] = 47  # GRE: not UDP
        not_udp = Icmpv6DestUnreachable(4, bytes(raw))
    link.send(_error_frame(family, message))
    link.send(_error_frame(family, not_udp))
    assert not [e for e in link.iface.events if isinstance(e, UdpError)]
    assert link.iface.stats["icmp_error_unmatched"] == 2


@pytest.mark.parametrize("family", [4, 6])
def test_a_datagram_from_the_peer_reaches_the_bound_endpoint(family: int) -> None:
    """Control for the above: the same link delivers ordinary datagrams."""
    link = Link()
    ours, theirs = (OUR_IP, PEER_IP) if family == 4 else (OUR_IP6, PEER_IP6)
    endpoint = link.iface.udp.bind(ours, OUR_PORT, family=family)
    link.send(ip_frame(family, udp_packet(family, theirs, ours, b"x", dst_port=OUR_PORT)))
    assert [e.endpoint for e in link.iface.events if not isinstance(e, UdpError)] == [endpoint]
