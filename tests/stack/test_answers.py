"""The answers the stack generates, pinned through the public sans-IO API only.

ICMP errors (RFC 1122 §3.2.2, RFC 4443 §2.4), echo replies, ARP and NDP answers,
and the sources an IP host must refuse (RFC 1122 §3.2.1.3, RFC 4291). Frames are
built with the wire codecs, handed to ``Interface.ingress`` and what
``Interface.egress`` returns is parsed with the same codecs.

The setting: our interface ``02:00:00:00:00:02`` with 198.18.0.2/24 and
fd00::2/64; the peer ``02:00:00:00:00:01`` at 198.18.0.1 / fd00::1. :class:`Link`
seeds our neighbour caches the way the stack learns them (the peer ARPs for us
and sends a Neighbor Solicitation with its link-layer address) and answers our
ARP requests and solicitations for the peer, so answers are never stuck waiting
for resolution.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any

import pytest

from ethox_asyncio.device.base import frame_bytes
from ethox_asyncio.stack.interface import Interface, InterfaceConfig, UdpDatagram
from ethox_asyncio.stack.wire.arp import ArpOperation, ArpPacket, ArpRepr
from ethox_asyncio.stack.wire.checksum import (
    CHECKSUM_SOFTWARE,
    ChecksumCaps,
    TxChecksum,
    fold,
    pseudo_header,
)
from ethox_asyncio.stack.wire.ethernet import (
    BROADCAST,
    EthernetAddress,
    EthernetFrame,
    EthernetRepr,
    EtherType,
    ipv6_multicast_mac,
)
from ethox_asyncio.stack.wire.icmpv4 import (
    Icmpv4DestUnreachable,
    Icmpv4DestUnreachableCode,
    Icmpv4EchoReply,
    Icmpv4EchoRequest,
    Icmpv4ParamProblem,
    Icmpv4Repr,
    Icmpv4TimeExceeded,
    Icmpv4TimeExceededCode,
    parse_icmpv4,
)
from ethox_asyncio.stack.wire.icmpv6 import (
    Icmpv6DestUnreachable,
    Icmpv6DestUnreachableCode,
    Icmpv6EchoReply,
    Icmpv6EchoRequest,
    Icmpv6PacketTooBig,
    Icmpv6ParamProblem,
    Icmpv6ParamProblemCode,
    Icmpv6Repr,
    Icmpv6TimeExceeded,
    Icmpv6TimeExceededCode,
    parse_icmpv6,
)
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr
from ethox_asyncio.stack.wire.ipv6 import (
    Ipv6FragmentRepr,
    Ipv6Packet,
    Ipv6Repr,
    walk_extension_headers,
)
from ethox_asyncio.stack.wire.ndisc import (
    ALL_NODES,
    NdiscRepr,
    NeighborAdvert,
    NeighborSolicit,
    link_local_from_mac,
    solicited_node_multicast,
)
from ethox_asyncio.stack.wire.udp import UdpPacket, UdpRepr

OUR_MAC = EthernetAddress("02:00:00:00:00:02")
PEER_MAC = EthernetAddress("02:00:00:00:00:01")
OTHER_MAC = EthernetAddress("02:00:00:00:00:66")
ALL_NODES_MAC = EthernetAddress("33:33:00:00:00:01")
OUR_IP, PEER_IP = IPv4Address("198.18.0.2"), IPv4Address("198.18.0.1")
OUR_IP6, PEER_IP6 = IPv6Address("fd00::2"), IPv6Address("fd00::1")
OUR_LINK_LOCAL = link_local_from_mac(OUR_MAC)
SUBNET_BROADCAST = IPv4Address("198.18.0.255")
LIMITED_BROADCAST = IPv4Address("255.255.255.255")
OFF_LINK = IPv4Address("198.19.9.9")  # no gateway is configured: no route back
OFF_LINK6 = IPv6Address("fd01::9")
OUR_SOLICITED_NODE = solicited_node_multicast(OUR_IP6)  # ff02::1:ff00:2

REASSEMBLY_V4 = 30.0  # Linux net.ipv4.ipfrag_time
REASSEMBLY_V6 = 60.0  # RFC 8200 §4.5
TIMEOUT = {4: REASSEMBLY_V4, 6: REASSEMBLY_V6}
PEER = {4: PEER_IP, 6: PEER_IP6}
OURS = {4: OUR_IP, 6: OUR_IP6}
OUR_UNICAST = frozenset({OUR_IP, OUR_IP6, OUR_LINK_LOCAL})
CLOSED_PORT = 9
PEER_PORT = 40000
VERIFIED_PARTIAL = ChecksumCaps(tx=TxChecksum.PARTIAL)  # what a NEEDS_CSUM frame carries

IpAddress = IPv4Address | IPv6Address


# --- frames the peer sends ---------------------------------------------------------------


def ethernet(payload: bytes, ethertype: int, *, dst_mac: EthernetAddress = OUR_MAC,
             src_mac: EthernetAddress = PEER_MAC) -> bytes:
    header = bytearray(14)
    EthernetRepr(src_mac, dst_mac, ethertype).emit(header)
    return bytes(header) + payload


def arp_frame(operation: ArpOperation, sender_mac: EthernetAddress, sender_ip: IPv4Address,
              target_mac: EthernetAddress, target_ip: IPv4Address, *,
              dst_mac: EthernetAddress = BROADCAST) -> bytes:
    arp = ArpRepr(operation, sender_mac, sender_ip, target_mac, target_ip)
    buf = bytearray(arp.buffer_len)
    arp.emit(buf)
    return ethernet(bytes(buf), EtherType.ARP, dst_mac=dst_mac, src_mac=sender_mac)


def udp_bytes(src: IpAddress, dst: IpAddress, data: bytes, *, src_port: int = PEER_PORT,
              dst_port: int = CLOSED_PORT, caps: ChecksumCaps = CHECKSUM_SOFTWARE) -> bytes:
    udp = UdpRepr(src_port, dst_port, len(data))
    buf = bytearray(udp.buffer_len)
    udp.emit(buf, src, dst, data, caps)
    return bytes(buf)


def icmpv4_bytes(message: Icmpv4Repr) -> bytes:
    buf = bytearray(message.buffer_len)
    message.emit(buf)
    return bytes(buf)


def icmpv6_bytes(message: Icmpv6Repr | NdiscRepr, src: IPv6Address, dst: IPv6Address) -> bytes:
    buf = bytearray(message.buffer_len)
    message.emit(buf, src, dst)
    return bytes(buf)


def ipv4_packet(src: IPv4Address, dst: IPv4Address, protocol: int, payload: bytes, *,
                ident: int = 1, more: bool = False, offset: int = 0) -> bytes:
    header = Ipv4Repr(src, dst, protocol, len(payload), ident=ident, dont_frag=False,
                      more_frags=more, frag_offset=offset)
    buf = bytearray(header.buffer_len)
    header.emit(buf)
    buf[20:] = payload
    return bytes(buf)


def ipv6_packet(src: IPv6Address, dst: IPv6Address, next_header: int, payload: bytes, *,
                hop_limit: int = 64) -> bytes:
    header = Ipv6Repr(src, dst, next_header, len(payload), hop_limit=hop_limit)
    buf = bytearray(40)
    header.emit(buf)
    return bytes(buf) + payload


def ipv6_fragment(src: IPv6Address, dst: IPv6Address, protocol: int, data: bytes, *,
                  ident: int = 1, more: bool = False, offset: int = 0) -> bytes:
    fragment = bytearray(8)
    Ipv6FragmentRepr(protocol, offset, more, ident).emit(fragment)
    return ipv6_packet(src, dst, IpProtocol.IPV6_FRAG, bytes(fragment) + data)


def fragment(family: int, src: IpAddress, dst: IpAddress, protocol: int, data: bytes, *,
             ident: int = 1, more: bool = False, offset: int = 0) -> bytes:
    """One fragment (an IP packet, no Ethernet) carrying ``data`` at ``offset``."""
    if family == 4:
        assert isinstance(src, IPv4Address) and isinstance(dst, IPv4Address)
        return ipv4_packet(src, dst, protocol, data, ident=ident, more=more, offset=offset)
    assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
    return ipv6_fragment(src, dst, protocol, data, ident=ident, more=more, offset=offset)


def fragments(family: int, src: IpAddress, dst: IpAddress, protocol: int, payload: bytes, *,
              ident: int = 1, chunk: int = 1200) -> list[bytes]:
    """``payload`` (an upper-layer datagram) split in fragments of ``chunk`` bytes."""
    assert chunk % 8 == 0 and len(payload) > chunk
    starts = range(0, len(payload), chunk)
    return [fragment(family, src, dst, protocol, payload[start:start + chunk], ident=ident,
                     more=start + chunk < len(payload), offset=start) for start in starts]


def ip_frame(family: int, packet: bytes, *, dst_mac: EthernetAddress = OUR_MAC,
             src_mac: EthernetAddress = PEER_MAC) -> bytes:
    ethertype = EtherType.IPV4 if family == 4 else EtherType.IPV6
    return ethernet(packet, ethertype, dst_mac=dst_mac, src_mac=src_mac)


def udp_packet(family: int, src: IpAddress, dst: IpAddress, data: bytes, *,
               dst_port: int = CLOSED_PORT, caps: ChecksumCaps = CHECKSUM_SOFTWARE) -> bytes:
    segment = udp_bytes(src, dst, data, dst_port=dst_port, caps=caps)
    if family == 4:
        assert isinstance(src, IPv4Address) and isinstance(dst, IPv4Address)
        return ipv4_packet(src, dst, IpProtocol.UDP, segment)
    assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
    return ipv6_packet(src, dst, IpProtocol.UDP, segment)


def echo_request_packet(family: int, src: IpAddress, dst: IpAddress, *, ident: int = 0x1234,
                        seq_no: int = 1) -> bytes:
    if family == 4:
        assert isinstance(src, IPv4Address) and isinstance(dst, IPv4Address)
        return ipv4_packet(src, dst, IpProtocol.ICMP,
                           icmpv4_bytes(Icmpv4EchoRequest(ident, seq_no, b"ping")))
    assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
    message = icmpv6_bytes(Icmpv6EchoRequest(ident, seq_no, b"ping"), src, dst)
    return ipv6_packet(src, dst, IpProtocol.ICMPV6, message)


def ndp_frame(src: IPv6Address, dst: IPv6Address, message: NdiscRepr, *,
              dst_mac: EthernetAddress, src_mac: EthernetAddress = PEER_MAC) -> bytes:
    body = icmpv6_bytes(message, src, dst)
    return ethernet(ipv6_packet(src, dst, IpProtocol.ICMPV6, body, hop_limit=255),
                    EtherType.IPV6, dst_mac=dst_mac, src_mac=src_mac)


# --- what we send --------------------------------------------------------------------------


def arp_out(frames: list[bytes]) -> list[tuple[EthernetFrame, ArpRepr]]:
    found = []
    for frame in frames:
        eth = EthernetFrame(frame)
        if eth.ethertype == EtherType.ARP:
            found.append((eth, ArpRepr.parse(ArpPacket(bytes(eth.payload)))))
    return found


def ipv4_out(frames: list[bytes]) -> list[tuple[EthernetFrame, Ipv4Packet]]:
    found = []
    for frame in frames:
        eth = EthernetFrame(frame)
        if eth.ethertype == EtherType.IPV4:
            found.append((eth, Ipv4Packet.checked(bytes(eth.payload))))
    return found


def icmpv4_out(frames: list[bytes]) -> list[tuple[EthernetFrame, Ipv4Packet, Icmpv4Repr]]:
    """Our ICMPv4 messages; parsing verifies their checksum."""
    return [(eth, ip, parse_icmpv4(ip.payload)) for eth, ip in ipv4_out(frames)
            if ip.protocol == IpProtocol.ICMP and not ip.frag_offset and not ip.more_frags]


def ipv6_out(frames: list[bytes]) -> list[tuple[EthernetFrame, Ipv6Packet]]:
    found = []
    for frame in frames:
        eth = EthernetFrame(frame)
        if eth.ethertype == EtherType.IPV6:
            found.append((eth, Ipv6Packet.checked(bytes(eth.payload))))
    return found


def icmpv6_out(frames: list[bytes]
               ) -> list[tuple[EthernetFrame, Ipv6Packet, Icmpv6Repr | NdiscRepr]]:
    """Our ICMPv6 messages (NDP included); parsing verifies their checksum."""
    return [(eth, ip, parse_icmpv6(ip.payload, ip.src, ip.dst)) for eth, ip in ipv6_out(frames)
            if ip.next_header == IpProtocol.ICMPV6]


V4_ERRORS = (Icmpv4DestUnreachable, Icmpv4TimeExceeded, Icmpv4ParamProblem)
V6_ERRORS = (Icmpv6DestUnreachable, Icmpv6PacketTooBig, Icmpv6TimeExceeded, Icmpv6ParamProblem)


def icmp_errors(frames: list[bytes]) -> list[tuple[EthernetFrame, IpAddress, IpAddress, Any]]:
    """Every ICMP/ICMPv6 error message we sent, as (ethernet, src, dst, message)."""
    found: list[tuple[EthernetFrame, IpAddress, IpAddress, Any]] = [
        (eth, ip.src, ip.dst, m) for eth, ip, m in icmpv4_out(frames) if isinstance(m, V4_ERRORS)]
    found += [(eth, ip.src, ip.dst, m) for eth, ip, m in icmpv6_out(frames)
              if isinstance(m, V6_ERRORS)]
    return found


def time_exceeded(frames: list[bytes]) -> list[tuple[EthernetFrame, IpAddress, IpAddress, Any]]:
    return [e for e in icmp_errors(frames)
            if isinstance(e[3], (Icmpv4TimeExceeded, Icmpv6TimeExceeded))]


def port_unreachables(frames: list[bytes]
                      ) -> list[tuple[EthernetFrame, IpAddress, IpAddress, Any]]:
    def is_port_unreachable(message: Any) -> bool:
        if isinstance(message, Icmpv4DestUnreachable):
            return message.code == Icmpv4DestUnreachableCode.PORT_UNREACHABLE
        return (isinstance(message, Icmpv6DestUnreachable)
                and message.code == Icmpv6DestUnreachableCode.PORT_UNREACHABLE)
    return [e for e in icmp_errors(frames) if is_port_unreachable(e[3])]


def echo_replies(frames: list[bytes]) -> list[tuple[EthernetFrame, IpAddress, IpAddress, Any]]:
    found: list[tuple[EthernetFrame, IpAddress, IpAddress, Any]] = [
        (eth, ip.src, ip.dst, m) for eth, ip, m in icmpv4_out(frames)
        if isinstance(m, Icmpv4EchoReply)]
    found += [(eth, ip.src, ip.dst, m) for eth, ip, m in icmpv6_out(frames)
              if isinstance(m, Icmpv6EchoReply)]
    return found


def not_resolution(frames: list[bytes]) -> list[bytes]:
    """The frames that are neither ARP nor NDP: what a peer's packet made us send."""
    kept = []
    for frame in frames:
        eth = EthernetFrame(frame)
        if eth.ethertype == EtherType.ARP:
            continue
        if eth.ethertype == EtherType.IPV6:
            ip = Ipv6Packet.checked(bytes(eth.payload))
            if ip.next_header == IpProtocol.ICMPV6 and ip.payload[0] in range(133, 138):
                continue
        kept.append(frame)
    return kept


def quoted_upper_layer(family: int, quote: bytes) -> tuple[Any, int, bytes]:
    """(IP header, fragment offset, bytes after the IP headers) of an error's quote.

    IPv6 accepts both forms of a quoted first fragment: with its Fragment header
    (offset 0) or as Linux quotes a reassembled packet, without one.
    """
    if family == 4:
        header = Ipv4Packet(quote)
        return header, header.frag_offset, bytes(quote[header.header_len:])
    header6 = Ipv6Packet(quote)
    rest = bytes(quote[40:])
    if header6.next_header == IpProtocol.IPV6_FRAG:
        frag = Ipv6FragmentRepr.parse(rest)
        return header6, frag.frag_offset, rest[8:]
    return header6, 0, rest


def stats_matching(stats: dict[str, int], word: str) -> int:
    return sum(value for key, value in stats.items() if word in key)


# --- the link: our interface, a virtual clock and the peer -------------------------------


class Link:
    """Our :class:`Interface` on a virtual clock, and a peer that answers resolution."""

    def __init__(self, *, seed: bool = True, **config: Any) -> None:
        self.iface = Interface(InterfaceConfig(
            mac=OUR_MAC, addresses=(IPv4Interface("198.18.0.2/24"), IPv6Interface("fd00::2/64")),
            **config))
        self.now = 0.0
        if seed:
            self.seed()

    def seed(self) -> None:
        """The peer resolves us (ARP request, NS with its link-layer address): we learn it."""
        self.send(arp_frame(ArpOperation.REQUEST, PEER_MAC, PEER_IP, EthernetAddress(bytes(6)),
                            OUR_IP))
        self.send(ndp_frame(PEER_IP6, OUR_SOLICITED_NODE, NeighborSolicit(OUR_IP6, PEER_MAC),
                            dst_mac=ipv6_multicast_mac(OUR_SOLICITED_NODE)))
        self.pump()

    def send(self, frame: bytes, *, verified: bool = False) -> None:
        self.iface.ingress(frame, self.now, checksum_verified=verified)

    def egress_once(self, budget: int = 1024) -> list[bytes]:
        frames = [frame_bytes(f) for f in self.iface.egress(self.now, budget)]
        self._answer_resolution(frames)
        return frames

    def pump(self) -> list[bytes]:
        """Egress at ``now`` until nothing is left (resolution answers go in between)."""
        out: list[bytes] = []
        for _ in range(50):
            frames = self.egress_once()
            if not frames:
                return out
            out += frames
        raise AssertionError("egress never ran dry")

    def run_until(self, until: float) -> list[bytes]:
        """Like the loop: egress at every deadline before ``until``; ``now`` ends at ``until``
        without an egress there."""
        out = self.pump()
        for _ in range(10_000):
            at = self.iface.poll_at()
            if at is None or at >= until:
                self.now = until
                return out
            self.now = max(self.now, at)
            out += self.pump()
        raise AssertionError("timers never settled")

    def advance(self, until: float) -> list[bytes]:
        """Run the clock to ``until``, egress included; everything sent on the way."""
        out = self.run_until(until)
        return out + self.pump()

    def _answer_resolution(self, frames: list[bytes]) -> None:
        for _, arp in arp_out(frames):
            if arp.operation == ArpOperation.REQUEST and arp.target_protocol_addr == PEER_IP:
                self.send(arp_frame(ArpOperation.REPLY, PEER_MAC, PEER_IP, OUR_MAC,
                                    arp.source_protocol_addr, dst_mac=OUR_MAC))
        for _, ip, message in icmpv6_out(frames):
            if isinstance(message, NeighborSolicit) and message.target_addr == PEER_IP6 \
                    and not ip.src.is_unspecified:
                advert = NeighborAdvert(PEER_IP6, PEER_MAC, solicited=True, override=True)
                self.send(ndp_frame(PEER_IP6, ip.src, advert, dst_mac=OUR_MAC))


def udp_first_fragment(family: int, src: IpAddress, dst: IpAddress, *, ident: int = 7,
                       caps: ChecksumCaps = CHECKSUM_SOFTWARE, whole_udp: bool = False) -> bytes:
    """The first fragment of a UDP datagram whose later fragments never come.

    ``whole_udp``: the UDP datagram (length field included) ends inside this
    fragment, so the fragment carries all the bytes its checksum covers.
    """
    if whole_udp:
        segment = udp_bytes(src, dst, b"W" * 16, caps=caps)  # 24 bytes, 8n
        return fragment(family, src, dst, IpProtocol.UDP, segment, ident=ident, more=True)
    segment = udp_bytes(src, dst, b"F" * 200, caps=caps)
    return fragment(family, src, dst, IpProtocol.UDP, segment[:64], ident=ident, more=True)


# --- 1. a timer's answer that cannot be routed -------------------------------------------


@pytest.mark.parametrize("family", [4, 6])
def test_reassembly_timeout_answer_without_route_is_dropped_and_counted(family: int) -> None:
    """RFC 1122 §3.2.2 / RFC 4443 §2.4 with no route back (RFC 1122 §3.3.1): the Time
    Exceeded for a never-completed datagram from an off-link source with no gateway
    cannot be sent; egress must not raise, drop it and count "answer_dropped_no_route"."""
    link = Link()
    src = OFF_LINK if family == 4 else OFF_LINK6
    link.send(ip_frame(family, udp_first_fragment(family, src, OURS[family])))
    assert link.iface.poll_at() is not None
    out = link.advance(TIMEOUT[family] + 1.0)  # raised OSError(ENETUNREACH) out of egress
    assert time_exceeded(out) == []
    assert link.iface.stats["answer_dropped_no_route"] == 1
    deadline = link.iface.poll_at()
    assert deadline is None or deadline > link.now  # nothing left due: the timer is gone


@pytest.mark.parametrize("family", [4, 6])
def test_unroutable_timer_answer_does_not_stop_the_rest_of_that_egress(family: int) -> None:
    """Remote bytes never raise (module contract): when one family's reassembly timeout
    answer has no route, the same egress call still runs the other family's timers
    (RFC 792 / RFC 8200 §4.5 Time Exceeded) and transmits frames already queued."""
    other = 6 if family == 4 else 4
    link = Link()
    unroutable = OFF_LINK if family == 4 else OFF_LINK6
    # Both datagrams time out at t=60: the IPv6 one arrives at 0, the IPv4 one at 30.
    first_at = {fam: REASSEMBLY_V6 - TIMEOUT[fam] for fam in (4, 6)}
    for fam, src in sorted(((other, PEER[other]), (family, unroutable)),
                           key=lambda item: first_at[item[0]]):
        link.run_until(first_at[fam])
        link.send(ip_frame(fam, udp_first_fragment(fam, src, OURS[fam], ident=11)))
    link.run_until(REASSEMBLY_V6)
    link.send(ip_frame(4, echo_request_packet(4, PEER_IP, OUR_IP)))  # a queued echo reply
    out = [frame_bytes(f) for f in link.iface.egress(link.now, 64)]  # one call
    exceeded = time_exceeded(out)
    assert [(src, dst) for _, src, dst, _ in exceeded] == [(OURS[other], PEER[other])]
    assert [(src, dst) for _, src, dst, _ in echo_replies(out)] == [(OUR_IP, PEER_IP)]
    assert link.iface.stats["answer_dropped_no_route"] == 1


def test_echo_request_from_an_unroutable_source_is_dropped_and_counted() -> None:
    """RFC 1122 §3.2.2.6 echo reply with no route back (no gateway): the answer cannot
    be sent; nothing is transmitted and it is counted under "answer_dropped_*"."""
    link = Link()
    link.send(ip_frame(4, echo_request_packet(4, OFF_LINK, OUR_IP)))
    assert not_resolution(link.pump()) == []
    assert any(key.startswith("answer_dropped_") and value == 1
               for key, value in link.iface.stats.items()), dict(link.iface.stats)


# --- 2. Time Exceeded (fragment reassembly) obeys the error rules ------------------------


@pytest.mark.parametrize("family", [4, 6])
def test_time_exceeded_comes_from_our_address_and_quotes_the_first_fragment(family: int
                                                                            ) -> None:
    """RFC 792 / RFC 1122 §3.2.2 / RFC 8200 §4.5: reassembly timeout with fragment 0
    received sends Time Exceeded code 1 from our unicast address to the source,
    quoting the first fragment (RFC 4443 §3.3)."""
    link = Link()
    first = udp_first_fragment(family, PEER[family], OURS[family])
    link.send(ip_frame(family, first))
    assert time_exceeded(link.advance(TIMEOUT[family] - 1.0)) == []  # not before its time
    out = link.advance(TIMEOUT[family] + 1.0)
    errors = time_exceeded(out)
    assert len(errors) == 1
    eth, src, dst, message = errors[0]
    assert (src, dst, eth.dst) == (OURS[family], PEER[family], PEER_MAC)
    code = (Icmpv4TimeExceededCode.REASSEMBLY_TIME_EXCEEDED if family == 4
            else Icmpv6TimeExceededCode.REASSEMBLY_TIME_EXCEEDED)
    assert message.code == code
    assert message.quoted == first


BROADCAST_AND_MULTICAST_DESTINATIONS = [
    pytest.param(4, SUBNET_BROADCAST, BROADCAST, id="v4-subnet-broadcast"),
    pytest.param(4, LIMITED_BROADCAST, BROADCAST, id="v4-limited-broadcast"),
    pytest.param(6, ALL_NODES, ALL_NODES_MAC, id="v6-all-nodes"),
    pytest.param(6, OUR_SOLICITED_NODE, ipv6_multicast_mac(OUR_SOLICITED_NODE),
                 id="v6-solicited-node"),
]


@pytest.mark.parametrize(("family", "group", "group_mac"), BROADCAST_AND_MULTICAST_DESTINATIONS)
def test_no_time_exceeded_for_fragments_to_broadcast_or_multicast(
        family: int, group: IpAddress, group_mac: EthernetAddress) -> None:
    """RFC 1122 §3.2.2 (IP broadcast/multicast destination) and RFC 4443 §2.4 (e.3): no
    error for a datagram to a broadcast or multicast address; an error is never sourced
    from such an address. The unicast datagram timing out alongside is the control."""
    link = Link()
    link.send(ip_frame(family, udp_first_fragment(family, PEER[family], group, ident=21),
                       dst_mac=group_mac))
    link.send(ip_frame(family, udp_first_fragment(family, PEER[family], OURS[family], ident=22)))
    out = link.advance(TIMEOUT[family] + 1.0)
    errors = icmp_errors(out)
    assert [(src, dst) for _, src, dst, _ in errors] == [(OURS[family], PEER[family])]
    _, _, _, message = errors[0]
    header, _, _ = quoted_upper_layer(family, message.quoted)
    assert header.dst == OURS[family]
    for _, ip in ipv4_out(out) + ipv6_out(out):
        assert ip.src in OUR_UNICAST


@pytest.mark.parametrize("family", [4, 6])
def test_no_time_exceeded_for_a_fragment_received_as_link_layer_broadcast(family: int) -> None:
    """RFC 1122 §3.2.2 ("a datagram sent as a link-layer broadcast") and RFC 4443 §2.4
    (e.4, link-layer multicast): the first fragment, addressed to our unicast IP but
    received in a broadcast/multicast frame, gets no Time Exceeded when it expires."""
    link = Link()
    link_group = BROADCAST if family == 4 else ALL_NODES_MAC
    link.send(ip_frame(family, udp_first_fragment(family, PEER[family], OURS[family], ident=31),
                       dst_mac=link_group))
    link.send(ip_frame(family, udp_first_fragment(family, PEER[family], OURS[family], ident=32)))
    errors = icmp_errors(link.advance(TIMEOUT[family] + 1.0))
    assert len(errors) == 1  # the control, sent to our MAC
    header, _, _ = quoted_upper_layer(family, errors[0][3].quoted)
    ident = header.ident if family == 4 else Ipv6FragmentRepr.parse(
        errors[0][3].quoted[40:]).ident
    assert ident == 32


@pytest.mark.parametrize("family", [4, 6])
def test_time_exceeded_is_rate_limited(family: int) -> None:
    """RFC 4443 §2.4 (f), RFC 1812 §4.3.2.8: ICMP errors are rate limited. 64 datagrams
    expiring at one instant give at most ``icmp_error_burst`` (default 50) errors."""
    link = Link()
    burst = InterfaceConfig(mac=OUR_MAC, addresses=()).icmp_error_burst
    assert burst == 50
    for ident in range(100, 164):
        link.send(ip_frame(family, udp_first_fragment(family, PEER[family], OURS[family],
                                                      ident=ident)))
    out = link.advance(TIMEOUT[family] + 1.0)
    assert len(time_exceeded(out)) == burst
    assert stats_matching(link.iface.stats, "rate_limited") >= 64 - burst


@pytest.mark.parametrize("family", [4, 6])
def test_time_exceeded_and_port_unreachable_share_the_rate_limit(family: int) -> None:
    """RFC 4443 §2.4 (f) / RFC 1812 §4.3.2.8: one limit for all the ICMP errors we
    generate (Linux icmp_global_allow): two Time Exceeded spend two of a burst of 3,
    so of three port unreachables at the same instant only one goes out."""
    link = Link(icmp_error_rate=1.0, icmp_error_burst=3)
    for ident in (41, 42):
        link.send(ip_frame(family, udp_first_fragment(family, PEER[family], OURS[family],
                                                      ident=ident)))
    out = link.advance(TIMEOUT[family])
    assert len(time_exceeded(out)) == 2
    for port in (9, 10, 11):
        link.send(ip_frame(family, udp_packet(family, PEER[family], OURS[family], b"closed",
                                              dst_port=port)))
    assert len(port_unreachables(link.pump())) == 1


@pytest.mark.parametrize("family", [4, 6])
def test_no_time_exceeded_for_a_fragmented_icmp_error(family: int) -> None:
    """RFC 1122 §3.2.2 / RFC 4443 §2.4 (e.1): never an ICMP error in response to an ICMP
    error, also when that error came fragmented and timed out. The fragmented echo
    request timing out alongside is the control: it does get a Time Exceeded."""
    link = Link()
    protocol = IpProtocol.ICMP if family == 4 else IpProtocol.ICMPV6
    quoted = udp_packet(family, OURS[family], PEER[family], b"x" * 1400, dst_port=53)
    if family == 4:
        error = icmpv4_bytes(Icmpv4DestUnreachable(Icmpv4DestUnreachableCode.PORT_UNREACHABLE,
                                                   quoted[:548]))
        echo = icmpv4_bytes(Icmpv4EchoRequest(1, 1, b"e" * 1400))
    else:
        error = icmpv6_bytes(Icmpv6DestUnreachable(Icmpv6DestUnreachableCode.PORT_UNREACHABLE,
                                                   quoted), PEER_IP6, OUR_IP6)
        echo = icmpv6_bytes(Icmpv6EchoRequest(1, 1, b"e" * 1400), PEER_IP6, OUR_IP6)
    link.send(ip_frame(family, fragment(family, PEER[family], OURS[family], protocol,
                                        error[:256], ident=51, more=True)))
    link.send(ip_frame(family, fragment(family, PEER[family], OURS[family], protocol,
                                        echo[:256], ident=52, more=True)))
    errors = time_exceeded(link.advance(TIMEOUT[family] + 1.0))
    assert len(errors) == 1
    _, _, upper = quoted_upper_layer(family, errors[0][3].quoted)
    assert upper[:8] == echo[:8]  # the echo request's, not the error's


@pytest.mark.parametrize("family", [4, 6])
def test_time_exceeded_quote_completes_a_partial_udp_checksum(family: int) -> None:
    """As for port unreachable (quote completion, see ``_complete_udp_checksum``): a
    first fragment the device vouched for (checksum_verified) carrying only the
    pseudo-header sum, and holding every byte its UDP length covers, is quoted with
    the full checksum (RFC 768), so the peer sees the datagram it sent (RFC 1122 §3.2.2,
    RFC 4443 §2.4 (c))."""
    link = Link()
    src, dst = PEER[family], OURS[family]
    first = udp_first_fragment(family, src, dst, caps=VERIFIED_PARTIAL, whole_udp=True)
    link.send(ip_frame(family, first), verified=True)
    errors = time_exceeded(link.advance(TIMEOUT[family] + 1.0))
    assert len(errors) == 1
    header, offset, upper = quoted_upper_layer(family, errors[0][3].quoted)
    assert offset == 0 and (header.src, header.dst) == (src, dst)
    udp = UdpPacket(upper)
    assert udp.length == 24 and len(upper) >= 24
    assert udp.checksum != fold(pseudo_header(int(src), int(dst), IpProtocol.UDP, 24))
    assert udp.verify_checksum(int(src), int(dst))


@pytest.mark.parametrize("family", [4, 6])
def test_time_exceeded_quote_of_a_partial_udp_datagram_is_the_fragment_as_received(
        family: int) -> None:
    """RFC 792 / RFC 4443 §3.3: the quote is the first fragment. When the UDP datagram
    runs past the fragment, its checksum cannot be completed and is quoted as received
    (verified frame with the pseudo-header sum): nothing in the quote is rewritten."""
    link = Link()
    first = udp_first_fragment(family, PEER[family], OURS[family], caps=VERIFIED_PARTIAL)
    link.send(ip_frame(family, first), verified=True)
    errors = time_exceeded(link.advance(TIMEOUT[family] + 1.0))
    assert len(errors) == 1
    assert errors[0][3].quoted == first


# --- 3. and 7. port unreachable ----------------------------------------------------------


@pytest.mark.parametrize("source", [SUBNET_BROADCAST, LIMITED_BROADCAST])
def test_no_port_unreachable_to_a_broadcast_source(source: IPv4Address) -> None:
    """RFC 1122 §3.2.2: no ICMP error for a datagram whose source does not define a
    single host (a broadcast address); above all, never an error broadcast to the link.
    The same datagram from the peer is the control."""
    link = Link()
    link.send(ip_frame(4, udp_packet(4, source, OUR_IP, b"who is closed?")))
    assert not_resolution(link.pump()) == []
    link.send(ip_frame(4, udp_packet(4, PEER_IP, OUR_IP, b"who is closed?")))
    assert [(src, dst) for _, src, dst, _ in port_unreachables(link.pump())] == [
        (OUR_IP, PEER_IP)]


@pytest.mark.parametrize(("family", "group", "group_mac"), BROADCAST_AND_MULTICAST_DESTINATIONS)
def test_no_port_unreachable_for_a_datagram_to_broadcast_or_multicast(
        family: int, group: IpAddress, group_mac: EthernetAddress) -> None:
    """RFC 1122 §3.2.2 / RFC 4443 §2.4 (e.3): no port unreachable for a datagram to an
    IP broadcast or multicast address."""
    link = Link()
    link.send(ip_frame(family, udp_packet(family, PEER[family], group, b"anyone?"),
                       dst_mac=group_mac))
    assert not_resolution(link.pump()) == []
    link.send(ip_frame(family, udp_packet(family, PEER[family], OURS[family], b"anyone?")))
    assert len(port_unreachables(link.pump())) == 1


@pytest.mark.parametrize("family", [4, 6])
def test_port_unreachable_is_rate_limited(family: int) -> None:
    """RFC 1812 §4.3.2.8 / RFC 4443 §2.4 (f): with icmp_error_burst=3, ten datagrams to
    closed ports at one instant give exactly 3 errors; 2/rate seconds later 2 more."""
    rate = 10.0
    link = Link(icmp_error_rate=rate, icmp_error_burst=3)

    def burst() -> int:
        for port in range(1000, 1010):
            link.send(ip_frame(family, udp_packet(family, PEER[family], OURS[family], b"x",
                                                  dst_port=port)))
        return len(port_unreachables(link.pump()))

    assert burst() == 3
    link.advance(link.now + 2 / rate)
    assert burst() == 2


def test_port_unreachables_of_both_families_share_the_rate_limit() -> None:
    """RFC 4443 §2.4 (f): one ICMP error budget per node (Linux's global limit covers
    ICMP and ICMPv6): with a burst of 3, two IPv4 and two IPv6 errors make three."""
    link = Link(icmp_error_rate=1.0, icmp_error_burst=3)
    for family in (4, 6, 4, 6):
        link.send(ip_frame(family, udp_packet(family, PEER[family], OURS[family], b"x")))
    assert len(port_unreachables(link.pump())) == 3


@pytest.mark.parametrize("family", [4, 6])
def test_port_unreachable_quote_completes_a_partial_udp_checksum(family: int) -> None:
    """RFC 1122 §3.2.2 / RFC 4443 §2.4 (c): a datagram the device vouched for that
    carries only the pseudo-header sum is quoted with its full RFC 768 checksum."""
    link = Link()
    datagram = udp_packet(family, PEER[family], OURS[family], b"partial", caps=VERIFIED_PARTIAL)
    link.send(ip_frame(family, datagram), verified=True)
    errors = port_unreachables(link.pump())
    assert len(errors) == 1
    header, offset, upper = quoted_upper_layer(family, errors[0][3].quoted)
    assert (header.src, header.dst, offset) == (PEER[family], OURS[family], 0)
    assert upper[8:] == b"partial"
    assert UdpPacket(upper).verify_checksum(int(PEER[family]), int(OURS[family]))


# --- 5. port unreachable for a reassembled datagram --------------------------------------


@pytest.mark.parametrize("order", ["in-order", "last-first"])
@pytest.mark.parametrize("family", [4, 6])
def test_reassembled_datagram_to_closed_port_gets_one_error_quoting_the_first_fragment(
        family: int, order: str) -> None:
    """RFC 1122 §3.2.2 / RFC 4443 §3.1 (as Linux does): a fragmented UDP datagram to a
    closed port gets one port unreachable whose quote is the first fragment: an IP
    header with offset 0 and the start of the datagram, UDP header included."""
    link = Link()
    src, dst = PEER[family], OURS[family]
    segment = udp_bytes(src, dst, bytes(range(256)) * 12)  # 3080 bytes
    pieces = fragments(family, src, dst, IpProtocol.UDP, segment, ident=61)
    assert len(pieces) == 3
    for piece in pieces if order == "in-order" else pieces[::-1]:
        link.send(ip_frame(family, piece))
    errors = port_unreachables(link.pump())
    assert len(errors) == 1
    _, error_src, error_dst, message = errors[0]
    assert (error_src, error_dst) == (dst, src)
    header, offset, upper = quoted_upper_layer(family, message.quoted)
    assert offset == 0
    assert (header.src, header.dst) == (src, dst)
    if family == 4:
        assert (header.ident, header.protocol) == (61, IpProtocol.UDP)
        quoted_ports = message.quoted_ipv4_header()
        assert quoted_ports is not None
        assert (quoted_ports.src_port, quoted_ports.dst_port) == (PEER_PORT, CLOSED_PORT)
    assert len(upper) >= 8 and upper == segment[:len(upper)]


@pytest.mark.parametrize("family", [4, 6])
def test_reassembled_datagram_quote_completes_a_partial_udp_checksum(family: int) -> None:
    """As for a single datagram (RFC 768, RFC 1122 §3.2.2): fragments the device vouched
    for whose UDP header holds only the pseudo-header sum; the quoted UDP header carries
    the full checksum of the whole reassembled datagram."""
    link = Link()
    src, dst = PEER[family], OURS[family]
    data = bytes(range(256)) * 12
    partial = udp_bytes(src, dst, data, caps=VERIFIED_PARTIAL)
    full = udp_bytes(src, dst, data)
    assert partial[6:8] != full[6:8]
    for piece in fragments(family, src, dst, IpProtocol.UDP, partial, ident=62):
        link.send(ip_frame(family, piece), verified=True)
    errors = port_unreachables(link.pump())
    assert len(errors) == 1
    _, offset, upper = quoted_upper_layer(family, errors[0][3].quoted)
    assert offset == 0
    assert upper[:8] == full[:8]  # ports, length and the full checksum
    assert upper[8:] == data[:len(upper) - 8]


# --- 4. bogus source addresses -------------------------------------------------------------


BOGUS_V4_SOURCES = [
    pytest.param(LIMITED_BROADCAST, id="limited-broadcast"),
    pytest.param(SUBNET_BROADCAST, id="subnet-broadcast"),
    pytest.param(IPv4Address("224.0.0.1"), id="multicast"),
    pytest.param(IPv4Address("239.255.255.250"), id="multicast-admin"),
    pytest.param(IPv4Address("0.0.0.0"), id="this-host"),
    pytest.param(IPv4Address("0.1.2.3"), id="this-network"),
    pytest.param(IPv4Address("240.0.0.1"), id="class-e"),
    pytest.param(IPv4Address("127.0.0.1"), id="loopback"),
    pytest.param(IPv4Address("127.1.2.3"), id="loopback-net"),
    pytest.param(IPv4Address("198.18.0.0"), id="network-address"),
    pytest.param(OUR_IP, id="our-own-address"),
]


@pytest.mark.parametrize("source", BOGUS_V4_SOURCES)
def test_ipv4_bogus_source_is_dropped_and_counted(source: IPv4Address) -> None:
    """RFC 1122 §3.2.1.3: a datagram whose source is not a single host's address
    (broadcast, subnet broadcast, multicast, 0/8, class E) or loopback (§3.2.1.3 (g))
    is silently discarded: no echo reply, no delivery; "drop_ipv4_bogus_source"."""
    link = Link()
    endpoint = link.iface.udp.bind(IPv4Address(0), 7, family=4)
    link.send(ip_frame(4, echo_request_packet(4, source, OUR_IP)))
    link.send(ip_frame(4, udp_packet(4, source, OUR_IP, b"spoofed", dst_port=7)))
    assert not_resolution(link.pump()) == []
    assert link.iface.stats["drop_ipv4_bogus_source"] == 2
    assert not any(isinstance(e, UdpDatagram) for e in link.iface.events)
    # Control: the same packets from the peer are answered and delivered.
    link.send(ip_frame(4, echo_request_packet(4, PEER_IP, OUR_IP)))
    link.send(ip_frame(4, udp_packet(4, PEER_IP, OUR_IP, b"genuine", dst_port=7)))
    assert [(src, dst) for _, src, dst, _ in echo_replies(link.pump())] == [(OUR_IP, PEER_IP)]
    delivered = [e for e in link.iface.events if isinstance(e, UdpDatagram)]
    assert [(e.endpoint, e.data) for e in delivered] == [(endpoint, b"genuine")]


BOGUS_V6_SOURCES = [
    pytest.param(ALL_NODES, id="multicast-all-nodes"),
    pytest.param(IPv6Address("ff05::2"), id="multicast-site"),
    pytest.param(IPv6Address("::"), id="unspecified"),
    pytest.param(IPv6Address("::1"), id="loopback"),
]


@pytest.mark.parametrize("source", BOGUS_V6_SOURCES)
def test_ipv6_bogus_source_is_dropped_and_counted(source: IPv6Address) -> None:
    """RFC 4291 §2.7 (a multicast address is never a source), §2.5.2 (:: only before an
    address is learnt, i.e. DAD), §2.5.3 (::1 never leaves a node): discarded with
    "drop_ipv6_bogus_source"; no echo reply, no delivery."""
    link = Link()
    endpoint = link.iface.udp.bind(IPv6Address(0), 7, family=6)
    link.send(ip_frame(6, echo_request_packet(6, source, OUR_IP6)))
    link.send(ip_frame(6, udp_packet(6, source, OUR_IP6, b"spoofed", dst_port=7)))
    assert not_resolution(link.pump()) == []
    assert link.iface.stats["drop_ipv6_bogus_source"] == 2
    assert not any(isinstance(e, UdpDatagram) for e in link.iface.events)
    link.send(ip_frame(6, echo_request_packet(6, PEER_IP6, OUR_IP6)))
    link.send(ip_frame(6, udp_packet(6, PEER_IP6, OUR_IP6, b"genuine", dst_port=7)))
    assert [(src, dst) for _, src, dst, _ in echo_replies(link.pump())] == [
        (OUR_IP6, PEER_IP6)]
    delivered = [e for e in link.iface.events if isinstance(e, UdpDatagram)]
    assert [(e.endpoint, e.data) for e in delivered] == [(endpoint, b"genuine")]


@pytest.mark.parametrize("family", [4, 6])
def test_bogus_source_fragments_never_get_time_exceeded(family: int) -> None:
    """RFC 1122 §3.2.1.3 / RFC 4291 §2.7: a first fragment from a broadcast or multicast
    source is dropped on arrival; its datagram never times out into an error."""
    link = Link()
    source = SUBNET_BROADCAST if family == 4 else ALL_NODES
    link.send(ip_frame(family, udp_first_fragment(family, source, OURS[family])))
    out = link.advance(TIMEOUT[family] + 1.0)
    assert icmp_errors(out) == [] and not_resolution(out) == []
    key = "drop_ipv4_bogus_source" if family == 4 else "drop_ipv6_bogus_source"
    assert link.iface.stats[key] == 1


# --- 6. ARP and NDP answers ----------------------------------------------------------------


def test_arp_request_for_our_address_is_answered() -> None:
    """RFC 826: a request for our protocol address is answered, to the requester, with
    our hardware address."""
    link = Link(seed=False)
    link.pump()  # our gratuitous ARP at start
    link.send(arp_frame(ArpOperation.REQUEST, PEER_MAC, PEER_IP, EthernetAddress(bytes(6)),
                        OUR_IP))
    replies = [(eth, arp) for eth, arp in arp_out(link.pump())
               if arp.operation == ArpOperation.REPLY]
    assert len(replies) == 1
    eth, arp = replies[0]
    assert (eth.dst, eth.src) == (PEER_MAC, OUR_MAC)
    assert (arp.source_hardware_addr, arp.source_protocol_addr) == (OUR_MAC, OUR_IP)
    assert (arp.target_hardware_addr, arp.target_protocol_addr) == (PEER_MAC, PEER_IP)


@pytest.mark.parametrize("operation", [ArpOperation.REQUEST, ArpOperation.REPLY])
def test_arp_claiming_our_address_is_not_answered(operation: ArpOperation) -> None:
    """RFC 826 / RFC 5227 §2.4 (address conflict): a peer whose sender protocol address
    is ours must neither enter the cache nor be answered; it is counted as bogus."""
    link = Link(seed=False)
    link.pump()
    before = stats_matching(link.iface.stats, "bogus")
    target_mac = OUR_MAC if operation == ArpOperation.REPLY else EthernetAddress(bytes(6))
    link.send(arp_frame(operation, OTHER_MAC, OUR_IP, target_mac, OUR_IP))
    assert arp_out(link.pump()) == []
    assert stats_matching(link.iface.stats, "bogus") == before + 1


def test_dad_probe_for_our_address_is_defended_with_an_advertisement_to_all_nodes() -> None:
    """RFC 4861 §7.2.4 / RFC 4862 §5.4.3: an NS from :: (duplicate address detection) for
    our address is answered to all-nodes ff02::1 (33:33:00:00:00:01), Solicited flag
    clear, Override set, with our link-layer address as target option."""
    link = Link(seed=False)
    link.pump()
    link.send(ndp_frame(IPv6Address("::"), OUR_SOLICITED_NODE, NeighborSolicit(OUR_IP6),
                        dst_mac=ipv6_multicast_mac(OUR_SOLICITED_NODE), src_mac=OTHER_MAC))
    adverts = [(eth, ip, m) for eth, ip, m in icmpv6_out(link.pump())
               if isinstance(m, NeighborAdvert)]
    assert len(adverts) == 1
    eth, ip, advert = adverts[0]
    assert (eth.dst, eth.src) == (ALL_NODES_MAC, OUR_MAC)
    assert ip.dst == ALL_NODES and ip.src in OUR_UNICAST and ip.hop_limit == 255
    assert advert.target_addr == OUR_IP6 and advert.target_lladdr == OUR_MAC
    assert not advert.solicited and advert.override


def test_neighbor_solicitation_gets_a_solicited_advertisement_to_the_solicitor() -> None:
    """RFC 4861 §7.2.4: an NS from a unicast address is answered with a solicited NA (S
    and O set, target link-layer address ours) sent to the soliciting address."""
    link = Link(seed=False)
    link.pump()
    link.send(ndp_frame(PEER_IP6, OUR_SOLICITED_NODE, NeighborSolicit(OUR_IP6, PEER_MAC),
                        dst_mac=ipv6_multicast_mac(OUR_SOLICITED_NODE)))
    adverts = [(eth, ip, m) for eth, ip, m in icmpv6_out(link.pump())
               if isinstance(m, NeighborAdvert)]
    assert len(adverts) == 1
    eth, ip, advert = adverts[0]
    assert (eth.dst, eth.src) == (PEER_MAC, OUR_MAC)
    assert (ip.src, ip.dst, ip.hop_limit) == (OUR_IP6, PEER_IP6, 255)
    assert advert.target_addr == OUR_IP6 and advert.target_lladdr == OUR_MAC
    assert advert.solicited and advert.override


# --- 7. echo and the remaining error rules -------------------------------------------------


@pytest.mark.parametrize("group", [SUBNET_BROADCAST, LIMITED_BROADCAST])
def test_broadcast_echo_request_is_ignored(group: IPv4Address) -> None:
    """RFC 1122 §3.2.2.6: an echo request to an IP broadcast address MAY be silently
    discarded; we do, like Linux (icmp_echo_ignore_broadcasts=1). Unicast is answered."""
    link = Link()
    link.send(ip_frame(4, echo_request_packet(4, PEER_IP, group), dst_mac=BROADCAST))
    assert not_resolution(link.pump()) == []
    link.send(ip_frame(4, echo_request_packet(4, PEER_IP, OUR_IP)))
    replies = echo_replies(link.pump())
    assert [(src, dst) for _, src, dst, _ in replies] == [(OUR_IP, PEER_IP)]
    assert (replies[0][3].ident, replies[0][3].seq_no, replies[0][3].data) == (0x1234, 1, b"ping")


def _quoting_our_datagram(family: int) -> bytes:
    return udp_packet(family, OURS[family], PEER[family], b"gone", dst_port=53)


ICMP_ERRORS_RECEIVED: list[Any] = [
    pytest.param(4, lambda q: Icmpv4DestUnreachable(
        Icmpv4DestUnreachableCode.PORT_UNREACHABLE, q), id="v4-port-unreachable"),
    pytest.param(4, lambda q: Icmpv4DestUnreachable(
        Icmpv4DestUnreachableCode.HOST_UNREACHABLE, q), id="v4-host-unreachable"),
    pytest.param(4, lambda q: Icmpv4TimeExceeded(Icmpv4TimeExceededCode.TTL_EXCEEDED, q),
                 id="v4-time-exceeded"),
    pytest.param(4, lambda q: Icmpv4ParamProblem(0, q), id="v4-parameter-problem"),
    pytest.param(6, lambda q: Icmpv6DestUnreachable(
        Icmpv6DestUnreachableCode.PORT_UNREACHABLE, q), id="v6-port-unreachable"),
    pytest.param(6, lambda q: Icmpv6PacketTooBig(1280, q), id="v6-packet-too-big"),
    pytest.param(6, lambda q: Icmpv6TimeExceeded(Icmpv6TimeExceededCode.HOP_LIMIT_EXCEEDED, q),
                 id="v6-time-exceeded"),
    pytest.param(6, lambda q: Icmpv6ParamProblem(
        Icmpv6ParamProblemCode.UNRECOGNIZED_NEXT_HEADER, 6, q), id="v6-parameter-problem"),
]


@pytest.mark.parametrize(("family", "build"), ICMP_ERRORS_RECEIVED)
def test_no_icmp_error_in_response_to_an_icmp_error(family: int,
                                                    build: Callable[[bytes], Any]) -> None:
    """RFC 1122 §3.2.2 / RFC 4443 §2.4 (e.1): an ICMP error message (here about a
    datagram no endpoint of ours sent) is never answered with an ICMP error."""
    link = Link()
    message = build(_quoting_our_datagram(family))
    if family == 4:
        body = icmpv4_bytes(message)
        assert parse_icmpv4(body) == message  # well formed: dropped for its type, not as junk
        packet = ipv4_packet(PEER_IP, OUR_IP, IpProtocol.ICMP, body)
    else:
        body = icmpv6_bytes(message, PEER_IP6, OUR_IP6)
        assert parse_icmpv6(body, PEER_IP6, OUR_IP6) == message
        packet = ipv6_packet(PEER_IP6, OUR_IP6, IpProtocol.ICMPV6, body)
    link.send(ip_frame(family, packet))
    assert not_resolution(link.pump()) == []
    # Control: errors are being sent on this link (the budget is not what held it back).
    link.send(ip_frame(family, udp_packet(family, PEER[family], OURS[family], b"closed")))
    assert len(port_unreachables(link.pump())) == 1


@pytest.mark.parametrize("family", [4, 6])
def test_no_error_for_a_lone_non_initial_fragment(family: int) -> None:
    """RFC 1122 §3.2.2 (no error about a non-initial fragment), RFC 792 / RFC 8200 §4.5
    (Time Exceeded only when fragment 0 arrived): a lone later fragment of a datagram
    to a closed port expires silently; a first fragment expiring alongside is the
    control."""
    link = Link()
    segment = udp_bytes(PEER[family], OURS[family], b"L" * 300)
    link.send(ip_frame(family, fragment(family, PEER[family], OURS[family], IpProtocol.UDP,
                                        segment[64:], ident=71, offset=64)))
    link.send(ip_frame(family, fragment(family, PEER[family], OURS[family], IpProtocol.UDP,
                                        segment[64:128], ident=72, more=True, offset=64)))
    link.send(ip_frame(family, udp_first_fragment(family, PEER[family], OURS[family],
                                                  ident=73)))
    errors = icmp_errors(link.advance(TIMEOUT[family] + 1.0))
    assert len(errors) == 1
    header, offset, _ = quoted_upper_layer(family, errors[0][3].quoted)
    assert offset == 0
    ident = header.ident if family == 4 else Ipv6FragmentRepr.parse(
        errors[0][3].quoted[40:]).ident
    assert ident == 73


def test_no_protocol_unreachable_to_a_bogus_source() -> None:
    """RFC 1122 §3.2.1.3 / §3.2.2: a datagram of an unknown protocol from a broadcast
    source is discarded without Protocol Unreachable; from the peer it gets one."""
    link = Link()
    link.send(ip_frame(4, ipv4_packet(SUBNET_BROADCAST, OUR_IP, 253, b"experimental")))
    assert not_resolution(link.pump()) == []
    link.send(ip_frame(4, ipv4_packet(PEER_IP, OUR_IP, 253, b"experimental")))
    errors = icmp_errors(link.pump())
    assert [(src, dst, m.code) for _, src, dst, m in errors] == [
        (OUR_IP, PEER_IP, Icmpv4DestUnreachableCode.PROTOCOL_UNREACHABLE)]


# --- beyond the audit list: found while writing these tests ------------------------------


@pytest.mark.parametrize("family", [4, 6])
def test_echo_reply_checksum_is_correct_when_the_request_checksum_was_only_vouched_for(
        family: int) -> None:
    """RFC 792 / RFC 4443 §4.2: the echo reply carries a correct checksum. A request the
    device vouched for (checksum_verified, virtio NEEDS_CSUM) may hold only the partial
    sum (0 for ICMPv4, which has no pseudo-header); patching that incrementally
    (RFC 1624) yields a reply every receiver drops. IPv6 rebuilds the reply, IPv4 must
    too."""
    link = Link()
    src, dst = PEER[family], OURS[family]
    request_message = (Icmpv4EchoRequest(7, 9, b"vouched") if family == 4
                       else Icmpv6EchoRequest(7, 9, b"vouched"))
    buf = bytearray(request_message.buffer_len)
    if family == 4:
        assert isinstance(request_message, Icmpv4EchoRequest)
        request_message.emit(buf, VERIFIED_PARTIAL)
        packet = ipv4_packet(PEER_IP, OUR_IP, IpProtocol.ICMP, bytes(buf))
    else:
        assert isinstance(request_message, Icmpv6EchoRequest)
        request_message.emit(buf, PEER_IP6, OUR_IP6, VERIFIED_PARTIAL)
        packet = ipv6_packet(PEER_IP6, OUR_IP6, IpProtocol.ICMPV6, bytes(buf))
    link.send(ip_frame(family, packet), verified=True)
    replies = echo_replies(link.pump())  # parsing the reply verifies its checksum
    assert [(r_src, r_dst, m.ident, m.seq_no, m.data) for _, r_src, r_dst, m in replies] == [
        (dst, src, 7, 9, b"vouched")]


def test_neighbor_solicitation_claiming_our_address_as_source_is_not_answered() -> None:
    """The NDP form of "never let a peer claim our address" (RFC 826 merge rule as
    applied to ARP above; RFC 4861 §7.2.3 would otherwise create a cache entry for our
    own address at the claimant's MAC): an NS whose source is our address fd00::2,
    carrying a foreign source link-layer option, gets no advertisement (which would
    be addressed to ourselves, at the claimant's MAC)."""
    link = Link(seed=False)
    link.pump()
    link.send(ndp_frame(OUR_IP6, OUR_SOLICITED_NODE, NeighborSolicit(OUR_IP6, OTHER_MAC),
                        dst_mac=ipv6_multicast_mac(OUR_SOLICITED_NODE), src_mac=OTHER_MAC))
    out = link.pump()
    assert [ip.dst for _, ip in ipv6_out(out)] == []
    # Control: the same solicitation from the peer is answered.
    link.send(ndp_frame(PEER_IP6, OUR_SOLICITED_NODE, NeighborSolicit(OUR_IP6, PEER_MAC),
                        dst_mac=ipv6_multicast_mac(OUR_SOLICITED_NODE)))
    assert [ip.dst for _, ip in ipv6_out(link.pump())] == [PEER_IP6]


def test_struct_sanity_of_the_helpers() -> None:
    """The frame builders produce what the codecs parse back (guards the other tests)."""
    packet = udp_packet(4, PEER_IP, OUR_IP, b"abc")
    ip = Ipv4Packet.checked(packet)
    assert (ip.src, ip.dst, ip.protocol, ip.frag_offset) == (PEER_IP, OUR_IP, IpProtocol.UDP, 0)
    assert struct.unpack("!HH", packet[20:24]) == (PEER_PORT, CLOSED_PORT)
    six = Ipv6Packet.checked(udp_first_fragment(6, PEER_IP6, OUR_IP6, ident=5))
    chain = walk_extension_headers(six.next_header, six.payload)
    assert chain.fragment is not None and chain.fragment.ident == 5 and chain.fragment.more_frags


# --- beyond the audit list: more senders that are no single host ---------------------------


@pytest.mark.parametrize("source", [IPv6Address("fd00::"), OUR_IP6], ids=["anycast", "ours"])
def test_ipv6_subnet_router_anycast_or_own_source_is_dropped(source: IPv6Address) -> None:
    """RFC 4291 §2.6.1: the subnet-router anycast address (the prefix with zero host
    bits) is never a source; our own address arriving from the wire is a peer claiming
    it (Linux drops both). No echo reply; "drop_ipv6_bogus_source"."""
    link = Link()
    link.send(ip_frame(6, echo_request_packet(6, source, OUR_IP6)))
    assert not_resolution(link.pump()) == []
    assert link.iface.stats["drop_ipv6_bogus_source"] == 1


@pytest.mark.parametrize("sender", [SUBNET_BROADCAST, LIMITED_BROADCAST,
                                    IPv4Address("224.0.0.1"), IPv4Address("127.0.0.1"),
                                    IPv4Address("198.18.0.0")], ids=str)
def test_arp_sender_that_is_no_single_host_is_neither_answered_nor_cached(
        sender: IPv4Address) -> None:
    """RFC 826 merge + RFC 1122 §3.2.1.3: an ARP request whose sender protocol address
    is a broadcast, multicast, loopback or network address is dropped: no reply, no
    cache entry (Linux arp_process refuses these senders too)."""
    link = Link(seed=False)
    link.pump()
    link.send(arp_frame(ArpOperation.REQUEST, OTHER_MAC, sender, EthernetAddress(bytes(6)),
                        OUR_IP))
    assert arp_out(link.pump()) == []
    assert link.iface.ipv4.neighbors.state(sender) is None
    assert link.iface.stats["drop_arp_bogus_sender"] == 1


def test_arp_probe_from_the_unspecified_address_is_answered_but_not_cached() -> None:
    """RFC 5227 §2.1.1: a probe (sender 0.0.0.0) for our address is answered, so the
    prober sees the conflict; 0.0.0.0 never enters the cache."""
    link = Link(seed=False)
    link.pump()
    link.send(arp_frame(ArpOperation.REQUEST, OTHER_MAC, IPv4Address(0),
                        EthernetAddress(bytes(6)), OUR_IP))
    replies = [arp for _, arp in arp_out(link.pump()) if arp.operation == ArpOperation.REPLY]
    assert [(r.source_protocol_addr, r.target_hardware_addr) for r in replies] == [
        (OUR_IP, OTHER_MAC)]
    assert link.iface.ipv4.neighbors.state(IPv4Address(0)) is None


@pytest.mark.parametrize("extension", [False, True], ids=["plain", "after-dstopts"])
def test_unknown_next_header_gets_parameter_problem_pointing_at_the_field(
        extension: bool) -> None:
    """RFC 8200 §4 / RFC 4443 §3.4: an unrecognised Next Header value gets a Parameter
    Problem code 1 whose pointer is the offset of that Next Header field; rate limited
    and subject to the §2.4 (e) rules like every error."""
    link = Link()
    unknown = 253  # RFC 3692 experimental
    if extension:  # destination options header (8 bytes: next header, len 0, PadN)
        payload = bytes([unknown, 0, 1, 4, 0, 0, 0, 0]) + b"data"
        packet = ipv6_packet(PEER_IP6, OUR_IP6, IpProtocol.IPV6_OPTS, payload)
        pointer = 40
    else:
        packet = ipv6_packet(PEER_IP6, OUR_IP6, unknown, b"data")
        pointer = 6
    link.send(ip_frame(6, packet))
    errors = icmp_errors(link.pump())
    assert [(src, dst, type(m)) for _, src, dst, m in errors] == [
        (OUR_IP6, PEER_IP6, Icmpv6ParamProblem)]
    message = errors[0][3]
    assert (message.code, message.pointer, message.quoted) == (1, pointer, packet)
    # Not to a multicast destination (RFC 4443 §2.4 (e.3)).
    link.send(ip_frame(6, ipv6_packet(PEER_IP6, IPv6Address("ff02::1"), unknown, b"x"),
                       dst_mac=ipv6_multicast_mac(IPv6Address("ff02::1"))))
    assert icmp_errors(link.pump()) == []


# --- exact accounting of what the answer path refuses -------------------------------------


@pytest.mark.parametrize("family", [4, 6])
def test_closed_port_reached_by_a_link_layer_broadcast_gets_no_error(family: int) -> None:
    """RFC 1122 §3.2.2 / RFC 4443 §2.4 (e.4): a datagram to our unicast address that
    arrived in a link-layer broadcast (or multicast) frame gets no error; exactly one
    "answer_dropped_rule" and one "udp_no_port"."""
    link = Link()
    ours, theirs = OURS[family], PEER[family]
    group_mac = BROADCAST if family == 4 else ipv6_multicast_mac(IPv6Address("ff02::1"))
    link.send(ip_frame(family, udp_packet(family, theirs, ours, b"x"), dst_mac=group_mac))
    assert icmp_errors(link.pump()) == []
    assert (link.iface.stats["udp_no_port"], link.iface.stats["answer_dropped_rule"]) == (1, 1)
    # Control: the same datagram in a unicast frame is answered, and counted as sent.
    link.send(ip_frame(family, udp_packet(family, theirs, ours, b"x")))
    assert len(port_unreachables(link.pump())) == 1
    assert (link.iface.stats["icmp_error_sent"], link.iface.stats["answer_dropped_rule"]) == (
        1, 1)


@pytest.mark.parametrize("family", [4, 6])
def test_rate_limited_errors_are_counted_one_by_one(family: int) -> None:
    """Every error the bucket refuses is one "answer_dropped_rate_limited"; every error
    sent one "icmp_error_sent" (burst 2, five closed-port datagrams at one instant)."""
    link = Link(icmp_error_burst=2)
    for _ in range(5):
        link.send(ip_frame(family, udp_packet(family, PEER[family], OURS[family], b"x")))
    assert len(port_unreachables(link.pump())) == 2
    stats = link.iface.stats
    assert (stats["icmp_error_sent"], stats["answer_dropped_rate_limited"],
            stats["answer_dropped_rule"]) == (2, 3, 0)


def test_error_to_a_broadcast_destination_counts_one_rule_drop() -> None:
    """RFC 1122 §3.2.2: a datagram to the subnet broadcast address gets no error; the
    refusal is counted exactly once and spends no token."""
    link = Link(icmp_error_burst=1)
    link.send(ip_frame(4, udp_packet(4, PEER_IP, SUBNET_BROADCAST, b"x"), dst_mac=BROADCAST))
    link.send(ip_frame(4, udp_packet(4, PEER_IP, OUR_IP, b"x")))
    assert len(port_unreachables(link.pump())) == 1  # the token was still there
    assert (link.iface.stats["answer_dropped_rule"], link.iface.stats["icmp_error_sent"]) == (
        1, 1)
