"""Frames we emit pass tshark with checksum validation on.

A representative set of frames is built with our emitters only (every layer written
into a buffer pre-filled with 0xa5), written to one pcap with ``PcapWriter`` and read
back by a single tshark run (this module's fixture) that prints, per frame, whether
it is malformed, its expert infos, the checksum status of IPv4, TCP, UDP, ICMP and
ICMPv6, and the fields the cases below compare with our Reprs.

tshark 4.0 facts relied on (check with ``tshark -G defaultprefs | grep check_checksum``
and ``tshark -G values``):

- IPv4, TCP and UDP checksums are verified only with the ``*.check_checksum``
  preferences; ICMP and ICMPv6 have no such preference and are always verified.
- ``*.checksum.status``: 0 Bad, 1 Good, 2 Unverified, 3 Not present, 4 Illegal.
- ``_ws.expert.severity``: Comment 0x100000, Chat 0x200000, Note 0x400000,
  Warning 0x600000 (6291456), Error 0x800000 (8388608).
- ``ip.frag_offset`` and ``ipv6.fraghdr.offset`` print the raw 13-bit field, in
  8-octet units (the capture listing shows "off=1480" for 185).
- IPv4 and IPv6 fragments are reassembled (the defaults), so the UDP checksum of a
  fragmented datagram is checked on its last fragment.

A negative control, a copy of one frame with its TCP checksum corrupted, is appended
to the pcap and must be flagged by the same check, so the check cannot pass vacuously.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from ethox_asyncio.device.pcap import PcapWriter
from ethox_asyncio.stack.wire.arp import ArpOperation, ArpRepr
from ethox_asyncio.stack.wire.checksum import CHECKSUM_SOFTWARE, ChecksumCaps, TxChecksum
from ethox_asyncio.stack.wire.ethernet import (
    BROADCAST,
    EthernetAddress,
    EthernetRepr,
    EtherType,
    VlanTag,
    ipv6_multicast_mac,
)
from ethox_asyncio.stack.wire.icmpv4 import (
    Icmpv4DestUnreachable,
    Icmpv4DestUnreachableCode,
    Icmpv4EchoReply,
    Icmpv4EchoRequest,
    Icmpv4Repr,
    Icmpv4TimeExceeded,
    Icmpv4TimeExceededCode,
)
from ethox_asyncio.stack.wire.icmpv6 import (
    Icmpv6EchoReply,
    Icmpv6EchoRequest,
    Icmpv6PacketTooBig,
    Icmpv6Repr,
)
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ipv4 import Ipv4Repr
from ethox_asyncio.stack.wire.ipv6 import Ipv6FragmentRepr, Ipv6Repr
from ethox_asyncio.stack.wire.ndisc import (
    ALL_NODES,
    ALL_ROUTERS,
    NdiscRepr,
    NeighborAdvert,
    NeighborSolicit,
    PrefixInformation,
    RouterAdvert,
    RouterSolicit,
    link_local_from_mac,
    solicited_node_multicast,
)
from ethox_asyncio.stack.wire.tcp import TcpFlags, TcpRepr
from ethox_asyncio.stack.wire.udp import UdpRepr

pytestmark = pytest.mark.tshark

MAC_A = EthernetAddress("02:00:00:00:00:01")
MAC_B = EthernetAddress("02:00:00:00:00:02")
IP4_A = IPv4Address("192.0.2.1")
IP4_B = IPv4Address("198.51.100.2")
IP6_A = IPv6Address("2001:db8::1")
IP6_B = IPv6Address("2001:db8::2")
ROUTER_LL = link_local_from_mac(MAC_B)  # fe80::ff:fe00:2, an RA must come from link-local
Address = IPv4Address | IPv6Address

FILL = b"\xa5"  # every emitter must overwrite all of its header bytes


# --- building frames with our emitters -----------------------------------------------------


def tcp_segment(tcp: TcpRepr, src: Address, dst: Address, payload: bytes = b"") -> bytes:
    assert tcp.payload_len == len(payload)
    buf = bytearray(FILL * tcp.header_len + payload)
    tcp.emit(buf, src, dst)
    return bytes(buf)


def udp_datagram(src: Address, dst: Address, src_port: int, dst_port: int, payload: bytes,
                 caps: ChecksumCaps = CHECKSUM_SOFTWARE) -> bytes:
    udp = UdpRepr(src_port, dst_port, len(payload))
    buf = bytearray(FILL * udp.buffer_len)
    udp.emit(buf, src, dst, payload, caps)
    return bytes(buf)


def icmpv4_message(message: Icmpv4Repr) -> bytes:
    buf = bytearray(FILL * message.buffer_len)
    message.emit(buf)
    return bytes(buf)


def icmpv6_message(message: Icmpv6Repr | NdiscRepr, src: IPv6Address, dst: IPv6Address) -> bytes:
    buf = bytearray(FILL * message.buffer_len)
    message.emit(buf, src, dst)
    return bytes(buf)


def ipv4_packet(src: IPv4Address, dst: IPv4Address, protocol: int, body: bytes, *,
                ident: int = 0x4242, dont_frag: bool = True, more_frags: bool = False,
                frag_offset: int = 0) -> bytes:
    ip = Ipv4Repr(src, dst, protocol, len(body), ident=ident, dont_frag=dont_frag,
                  more_frags=more_frags, frag_offset=frag_offset)
    buf = bytearray(FILL * ip.header_len + body)
    ip.emit(buf)
    return bytes(buf)


def ipv6_packet(src: IPv6Address, dst: IPv6Address, next_header: int, body: bytes,
                hop_limit: int = 64) -> bytes:
    ip = Ipv6Repr(src, dst, next_header, len(body), hop_limit=hop_limit)
    buf = bytearray(FILL * ip.header_len + body)
    ip.emit(buf)
    return bytes(buf)


def ip_packet(src: Address, dst: Address, protocol: int, body: bytes) -> bytes:
    if isinstance(src, IPv4Address):
        assert isinstance(dst, IPv4Address)
        return ipv4_packet(src, dst, protocol, body)
    assert isinstance(dst, IPv6Address)
    return ipv6_packet(src, dst, protocol, body)


def ethernet_frame(ethertype: int, body: bytes, src: EthernetAddress = MAC_A,
                   dst: EthernetAddress = MAC_B, vlan: tuple[VlanTag, ...] | None = None) -> bytes:
    eth = EthernetRepr(src, dst, ethertype, vlan)
    buf = bytearray(FILL * eth.header_len + body)
    eth.emit(buf)
    return bytes(buf)


def ip_frame(packet: bytes) -> bytes:
    ethertype = EtherType.IPV4 if packet[0] >> 4 == 4 else EtherType.IPV6
    return ethernet_frame(ethertype, packet)


def tcp_frame(src: Address, dst: Address, tcp: TcpRepr, payload: bytes = b"") -> bytes:
    return ip_frame(ip_packet(src, dst, IpProtocol.TCP, tcp_segment(tcp, src, dst, payload)))


def udp_frame(src: Address, dst: Address, src_port: int, dst_port: int, payload: bytes) -> bytes:
    datagram = udp_datagram(src, dst, src_port, dst_port, payload)
    return ip_frame(ip_packet(src, dst, IpProtocol.UDP, datagram))


def icmpv6_frame(src: IPv6Address, dst: IPv6Address, message: Icmpv6Repr | NdiscRepr,
                 hop_limit: int = 64, eth_dst: EthernetAddress = MAC_B) -> bytes:
    packet = ipv6_packet(src, dst, IpProtocol.ICMPV6, icmpv6_message(message, src, dst), hop_limit)
    return ethernet_frame(EtherType.IPV6, packet, dst=eth_dst)


# --- the cases -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One frame; ``checksums`` are the protocols whose checksum tshark must find Good
    (each occurrence, e.g. also the IPv4 header quoted in an ICMP error); ``expect`` maps
    tshark fields to the value it must print (occurrences joined by "|"); ``tolerated``
    lists expert warnings about what the frame says rather than how it is encoded."""

    name: str
    frame: bytes
    checksums: tuple[str, ...]
    expect: dict[str, str] = field(default_factory=dict)
    tolerated: tuple[str, ...] = ()


def tcp_expect(tcp: TcpRepr, payload: bytes = b"") -> dict[str, str]:
    """What tshark must decode from a segment emitted from ``tcp``."""
    expect = {
        "tcp.srcport": str(tcp.src_port),
        "tcp.dstport": str(tcp.dst_port),
        "tcp.seq_raw": str(tcp.seq),
        "tcp.ack_raw": str(tcp.ack or 0),
        "tcp.flags": f"0x{int(tcp.flags):04x}",
        "tcp.window_size_value": str(tcp.window),
        "tcp.len": str(len(payload)),
    }
    if tcp.mss is not None:
        expect["tcp.options.mss_val"] = str(tcp.mss)
    if tcp.window_scale is not None:
        expect["tcp.options.wscale.shift"] = str(tcp.window_scale)
    if tcp.timestamp is not None:
        expect["tcp.options.timestamp.tsval"] = str(tcp.timestamp[0])
        expect["tcp.options.timestamp.tsecr"] = str(tcp.timestamp[1])
    if tcp.sack_blocks:
        expect["tcp.options.sack.count"] = str(len(tcp.sack_blocks))
        expect["tcp.options.sack_le"] = "|".join(str(left) for left, _ in tcp.sack_blocks)
        expect["tcp.options.sack_re"] = "|".join(str(right) for _, right in tcp.sack_blocks)
    return expect


def tcp_cases(version: int, src: Address, dst: Address) -> list[Case]:
    checksums = ("ip", "tcp") if version == 4 else ("tcp",)
    syn = TcpRepr(40000, 443, 0xFFFFFF00, None, TcpFlags.SYN, 64240, mss=1460, window_scale=7,
                  sack_permitted=True, timestamp=(1000, 0))
    syn_ack = TcpRepr(443, 40000, 7, 0xFFFFFF01, TcpFlags.SYN | TcpFlags.ACK, 65160, mss=1440,
                      window_scale=10, sack_permitted=True, timestamp=(5000, 1000))
    payload = b"data after a hole"
    sack = TcpRepr(40000, 443, 0xFFFFFF01, 8, TcpFlags.PSH | TcpFlags.ACK, 502,
                   sack_blocks=((1008, 2008), (3008, 4008)), timestamp=(1001, 5000),
                   payload_len=len(payload))
    fin = TcpRepr(443, 40000, 8, 0xFFFFFF12, TcpFlags.FIN | TcpFlags.ACK, 509,
                  timestamp=(5001, 1001))
    rst = TcpRepr(40000, 443, 0xFFFFFF12, None, TcpFlags.RST, 0)
    return [
        Case(f"tcp{version}_syn", tcp_frame(src, dst, syn), checksums, {
            **tcp_expect(syn),
            # Linux's layout: MSS, SACK-permitted, timestamps, NOP, window scale.
            "tcp.option_kind": "2|4|8|1|3",
        }),
        Case(f"tcp{version}_syn_ack", tcp_frame(dst, src, syn_ack), checksums, {
            **tcp_expect(syn_ack), "tcp.option_kind": "2|4|8|1|3",
        }),
        Case(f"tcp{version}_data_with_sack", tcp_frame(src, dst, sack, payload), checksums, {
            **tcp_expect(sack, payload), "tcp.option_kind": "1|1|8|1|1|5",
        }),
        Case(f"tcp{version}_fin", tcp_frame(dst, src, fin), checksums, tcp_expect(fin)),
        # tshark warns about every RST ("Connection reset"): the event, not its encoding.
        Case(f"tcp{version}_rst", tcp_frame(src, dst, rst), checksums, tcp_expect(rst),
             tolerated=("Connection reset (RST)",)),
    ]


def arp_cases() -> list[Case]:
    request = ArpRepr(ArpOperation.REQUEST, MAC_A, IP4_A, EthernetAddress(bytes(6)), IP4_B)
    reply = ArpRepr(ArpOperation.REPLY, MAC_B, IP4_B, MAC_A, IP4_A)
    cases = []
    for name, arp, eth_src, eth_dst in [("arp_request", request, MAC_A, BROADCAST),
                                        ("arp_reply", reply, MAC_B, MAC_A)]:
        buf = bytearray(FILL * arp.buffer_len)
        arp.emit(buf)
        cases.append(Case(name, ethernet_frame(EtherType.ARP, bytes(buf), eth_src, eth_dst), (), {
            "arp.opcode": str(int(arp.operation)),
            "arp.src.hw_mac": str(arp.source_hardware_addr),
            "arp.src.proto_ipv4": str(arp.source_protocol_addr),
            "arp.dst.hw_mac": str(arp.target_hardware_addr),
            "arp.dst.proto_ipv4": str(arp.target_protocol_addr),
        }))
    return cases


def icmpv4_cases() -> list[Case]:
    data = bytes(range(48))
    request = Icmpv4EchoRequest(0x1234, 7, data)
    reply = Icmpv4EchoReply(0x1234, 7, data)
    # A UDP datagram A -> B, and the two ways of quoting it in an ICMP error from B.
    probe = ip_packet(IP4_A, IP4_B, IpProtocol.UDP,
                      udp_datagram(IP4_A, IP4_B, 40001, 9, b"is anybody there?"))
    port_unreachable = Icmpv4DestUnreachable(Icmpv4DestUnreachableCode.PORT_UNREACHABLE, probe)
    # RFC 792 minimum quote: the IPv4 header and 8 octets (here a TCP segment's start).
    segment = ip_packet(IP4_A, IP4_B, IpProtocol.TCP, tcp_segment(
        TcpRepr(40002, 443, 1, 1, TcpFlags.ACK, 100, payload_len=1400), IP4_A, IP4_B,
        bytes(1400)))
    frag_needed = Icmpv4DestUnreachable(Icmpv4DestUnreachableCode.FRAG_NEEDED, segment[:28],
                                        next_hop_mtu=1400)
    time_exceeded = Icmpv4TimeExceeded(Icmpv4TimeExceededCode.TTL_EXCEEDED, probe[:28])

    def frame(src: IPv4Address, dst: IPv4Address, message: Icmpv4Repr) -> bytes:
        return ip_frame(ipv4_packet(src, dst, IpProtocol.ICMP, icmpv4_message(message)))

    return [
        Case("icmp4_echo_request", frame(IP4_A, IP4_B, request), ("ip", "icmp"), {
            "icmp.type": "8", "icmp.ident": str(request.ident), "icmp.seq": str(request.seq_no),
        }),
        Case("icmp4_echo_reply", frame(IP4_B, IP4_A, reply), ("ip", "icmp"), {
            "icmp.type": "0", "icmp.ident": str(reply.ident), "icmp.seq": str(reply.seq_no),
        }),
        Case("icmp4_port_unreachable", frame(IP4_B, IP4_A, port_unreachable),
             ("ip", "icmp", "udp"), {
                 "icmp.type": "3", "icmp.code": "3",
                 # the quoted datagram, dissected: its addresses and ports point back to it
                 "ip.src": f"{IP4_B}|{IP4_A}", "udp.srcport": "40001", "udp.dstport": "9",
             }),
        Case("icmp4_frag_needed", frame(IP4_B, IP4_A, frag_needed), ("ip", "icmp"), {
            "icmp.type": "3", "icmp.code": "4", "icmp.mtu": "1400",
            # 8 octets of TCP: ports and sequence number, no checksum to check
            "tcp.srcport": "40002", "tcp.dstport": "443",
        }),
        Case("icmp4_time_exceeded", frame(IP4_B, IP4_A, time_exceeded), ("ip", "icmp"), {
            "icmp.type": "11", "icmp.code": "0", "udp.srcport": "40001",
            "udp.checksum.status": "2",  # the quote ends after the UDP header
        }),
    ]


def udp_cases() -> list[Case]:
    # Ports 40000 and up have no tshark dissector (a payload on port 53 would be
    # "malformed DNS").
    zero_checksum = udp_datagram(IP4_A, IP4_B, 40009, 40100, b"no checksum",
                                 ChecksumCaps(tx=TxChecksum.NONE))
    return [
        Case("udp4", udp_frame(IP4_A, IP4_B, 40003, 40100, b"a UDP payload"), ("ip", "udp"), {
            "udp.srcport": "40003", "udp.dstport": "40100", "udp.length": str(8 + 13),
        }),
        Case("udp4_zero_checksum",
             ip_frame(ipv4_packet(IP4_A, IP4_B, IpProtocol.UDP, zero_checksum)), ("ip",), {
                 "udp.checksum": "0x0000",
                 "udp.checksum.status": "3",  # Not present: legal over IPv4 (RFC 768)
             }),
        Case("udp6", udp_frame(IP6_A, IP6_B, 40004, 40100, b"a UDP payload"), ("udp",), {
            "udp.srcport": "40004", "udp.dstport": "40100", "udp.length": str(8 + 13),
        }),
    ]


# One UDP datagram, fragmented by hand: 8 + 1200 octets in pieces of 504, 504 and 200.
FRAGMENTED_PAYLOAD = (bytes(range(256)) * 5)[:1200]
FRAGMENT_BOUNDS = [(0, 504), (504, 1008), (1008, 1208)]


def fragment_cases() -> list[Case]:
    cases = []
    datagram4 = udp_datagram(IP4_A, IP4_B, 40005, 9000, FRAGMENTED_PAYLOAD)
    for index, (start, end) in enumerate(FRAGMENT_BOUNDS):
        more = end < len(datagram4)
        packet = ipv4_packet(IP4_A, IP4_B, IpProtocol.UDP, datagram4[start:end], ident=0xBEEF,
                             dont_frag=False, more_frags=more, frag_offset=start)
        expect = {"ip.id": "0xbeef", "ip.flags.mf": str(int(more)),
                  "ip.frag_offset": str(start // 8)}
        if not more:  # tshark reassembles, then checks the UDP checksum of the whole datagram
            expect |= {"udp.length": str(len(datagram4)), "udp.checksum.status": "1"}
        cases.append(Case(f"ipv4_fragment{index + 1}", ip_frame(packet), ("ip",), expect))

    datagram6 = udp_datagram(IP6_A, IP6_B, 40006, 9000, FRAGMENTED_PAYLOAD)
    for index, (start, end) in enumerate(FRAGMENT_BOUNDS):
        more = end < len(datagram6)
        header = Ipv6FragmentRepr(IpProtocol.UDP, start, more, 0xC0FFEE01)
        buf = bytearray(FILL * header.header_len)
        header.emit(buf)
        packet = ipv6_packet(IP6_A, IP6_B, IpProtocol.IPV6_FRAG, bytes(buf) + datagram6[start:end])
        expect = {"ipv6.nxt": "44", "ipv6.fraghdr.nxt": "17", "ipv6.fraghdr.ident": "0xc0ffee01",
                  "ipv6.fraghdr.more": str(int(more)), "ipv6.fraghdr.offset": str(start // 8)}
        if not more:
            expect |= {"udp.length": str(len(datagram6)), "udp.checksum.status": "1"}
        cases.append(Case(f"ipv6_fragment{index + 1}", ip_frame(packet), (), expect))
    return cases


def icmpv6_cases() -> list[Case]:
    data = bytes(range(48))
    request = Icmpv6EchoRequest(0x1234, 7, data)
    reply = Icmpv6EchoReply(0x1234, 7, data)
    big = ipv6_packet(IP6_A, IP6_B, IpProtocol.UDP,
                      udp_datagram(IP6_A, IP6_B, 40007, 9000, bytes(1400)))
    too_big = Icmpv6PacketTooBig(1280, big[:1232])  # RFC 4443 §2.4 (c): fit in 1280 octets
    group = solicited_node_multicast(IP6_B)
    solicit = NeighborSolicit(IP6_B, source_lladdr=MAC_A)
    advert = NeighborAdvert(IP6_B, target_lladdr=MAC_B, solicited=True, override=True)
    router_solicit = RouterSolicit(source_lladdr=MAC_A)
    prefix = PrefixInformation(IPv6Network("2001:db8::/64"), valid_lifetime=86400,
                               preferred_lifetime=14400)
    router_advert = RouterAdvert(hop_limit=64, router_lifetime=1800, source_lladdr=MAC_B,
                                 mtu=1500, prefixes=(prefix,))
    return [
        Case("icmp6_echo_request", icmpv6_frame(IP6_A, IP6_B, request), ("icmpv6",), {
            "icmpv6.type": "128", "icmpv6.echo.identifier": "0x1234",
            "icmpv6.echo.sequence_number": "7",
        }),
        Case("icmp6_echo_reply", icmpv6_frame(IP6_B, IP6_A, reply), ("icmpv6",), {
            "icmpv6.type": "129", "icmpv6.echo.identifier": "0x1234",
            "icmpv6.echo.sequence_number": "7",
        }),
        Case("icmp6_packet_too_big", icmpv6_frame(IP6_B, IP6_A, too_big), ("icmpv6",), {
            "icmpv6.type": "2", "icmpv6.mtu": "1280", "udp.srcport": "40007",
            "udp.checksum.status": "2",  # the quote is cut: the UDP checksum cannot be checked
        }),
        Case("ndp_neighbor_solicit",
             icmpv6_frame(IP6_A, group, solicit, 255, ipv6_multicast_mac(group)), ("icmpv6",), {
                 "ipv6.hlim": "255", "icmpv6.type": "135",
                 "icmpv6.nd.ns.target_address": str(IP6_B), "icmpv6.opt.type": "1",
                 "icmpv6.opt.linkaddr": str(MAC_A),
             }),
        Case("ndp_neighbor_advert", icmpv6_frame(IP6_B, IP6_A, advert, 255), ("icmpv6",), {
            "ipv6.hlim": "255", "icmpv6.type": "136",
            "icmpv6.nd.na.target_address": str(IP6_B),
            "icmpv6.nd.na.flag": "0x60000000",  # solicited, override
            "icmpv6.opt.type": "2", "icmpv6.opt.linkaddr": str(MAC_B),
        }),
        Case("ndp_router_solicit",
             icmpv6_frame(link_local_from_mac(MAC_A), ALL_ROUTERS, router_solicit, 255,
                          ipv6_multicast_mac(ALL_ROUTERS)), ("icmpv6",), {
                 "icmpv6.type": "133", "icmpv6.opt.linkaddr": str(MAC_A),
             }),
        Case("ndp_router_advert",
             icmpv6_frame(ROUTER_LL, ALL_NODES, router_advert, 255, ipv6_multicast_mac(ALL_NODES)),
             ("icmpv6",), {
                 "icmpv6.type": "134", "icmpv6.nd.ra.cur_hop_limit": "64",
                 "icmpv6.nd.ra.router_lifetime": "1800",
                 "icmpv6.opt.type": "1|5|3",  # source link-layer address, MTU, prefix
                 "icmpv6.opt.linkaddr": str(MAC_B), "icmpv6.opt.mtu": "1500",
                 "icmpv6.opt.prefix": "2001:db8::", "icmpv6.opt.prefix.length": "64",
                 "icmpv6.opt.prefix.flag.l": "1", "icmpv6.opt.prefix.flag.a": "1",
                 "icmpv6.opt.prefix.valid_lifetime": "86400",
                 "icmpv6.opt.prefix.preferred_lifetime": "14400",
             }),
    ]


def vlan_cases() -> list[Case]:
    packet = ip_packet(IP4_A, IP4_B, IpProtocol.UDP,
                       udp_datagram(IP4_A, IP4_B, 40008, 40100, b"tagged"))
    tagged = ethernet_frame(EtherType.IPV4, packet, vlan=(VlanTag(100, pcp=3),))
    qinq = ethernet_frame(EtherType.IPV4, packet, vlan=(
        VlanTag(200, tpid=EtherType.QINQ), VlanTag(100, pcp=3, dei=True)))
    return [
        Case("vlan_8021q_udp4", tagged, ("ip", "udp"), {
            "eth.type": "0x8100", "vlan.id": "100", "vlan.priority": "3", "vlan.etype": "0x0800",
            "udp.srcport": "40008",
        }),
        Case("vlan_qinq_udp4", qinq, ("ip", "udp"), {
            "eth.type": "0x88a8", "ieee8021ad.id": "200", "vlan.id": "100",
            "vlan.priority": "3", "vlan.dei": "1", "vlan.etype": "0x0800",
            "udp.srcport": "40008",
        }),
    ]


CASES = [
    *arp_cases(),
    *icmpv4_cases(),
    *udp_cases(),
    *fragment_cases(),
    *tcp_cases(4, IP4_A, IP4_B),
    *tcp_cases(6, IP6_A, IP6_B),
    *icmpv6_cases(),
    *vlan_cases(),
]


def corrupt_tcp_checksum(case: Case) -> Case:
    frame = bytearray(case.frame)
    frame[14 + 20 + 16] ^= 0x01  # IPv4 frame: Ethernet, IPv4 header, TCP checksum high octet
    return Case(f"{case.name}_bad_checksum", bytes(frame), case.checksums, case.expect)


NEGATIVE_CONTROL = corrupt_tcp_checksum(next(c for c in CASES if c.name == "tcp4_data_with_sack"))


# --- running tshark once --------------------------------------------------------------------

STATUS_FIELDS = {
    "ip": "ip.checksum.status",
    "tcp": "tcp.checksum.status",
    "udp": "udp.checksum.status",
    "icmp": "icmp.checksum.status",
    "icmpv6": "icmpv6.checksum.status",
}
GOOD = "1"
WARNING = 0x600000  # _ws.expert.severity of a Warning; Error is 0x800000
PREFERENCES = [
    "ip.check_checksum:TRUE",
    "tcp.check_checksum:TRUE",
    "udp.check_checksum:TRUE",
    # The TCP frames are not one connection: no "previous segment not captured" warnings.
    "tcp.analyze_sequence_numbers:FALSE",
    "tcp.relative_sequence_numbers:FALSE",  # SACK edges and seq/ack as sent
]
FIELDS = sorted(
    {"frame.number", "_ws.malformed", "_ws.expert.severity", "_ws.expert.message",
     *STATUS_FIELDS.values()}
    | {name for case in CASES for name in case.expect}
)
AGGREGATOR = "|"

Row = dict[str, str]


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[Row]:
    """tshark's fields for every case, in order, then the negative control."""
    path: Path = tmp_path_factory.mktemp("tshark") / "emitted.pcap"
    with PcapWriter(path) as writer:
        for number, case in enumerate([*CASES, NEGATIVE_CONTROL]):
            writer.write(case.frame, 1_700_000_000 + number)
    command = ["tshark", "-n", "-r", str(path)]
    for preference in PREFERENCES:
        command += ["-o", preference]
    command += ["-T", "fields", "-E", "occurrence=a", "-E", f"aggregator={AGGREGATOR}"]
    for name in FIELDS:
        command += ["-e", name]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"tshark failed: {result.stderr}"
    return [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in result.stdout.splitlines()]


def problems(row: Row, case: Case) -> list[str]:
    """Everything tshark holds against the frame: malformed, an expert warning or error,
    a checksum not found Good (unless the case expects another status)."""
    found = []
    if row["_ws.malformed"]:
        found.append(f"malformed: {row['_ws.malformed']}")
    severities = row["_ws.expert.severity"].split(AGGREGATOR) if row["_ws.expert.severity"] else []
    messages = row["_ws.expert.message"].split(AGGREGATOR)
    for severity, message in zip(severities, messages, strict=False):
        if int(severity) >= WARNING and message not in case.tolerated:
            found.append(f"expert 0x{int(severity):x}: {message}")
    for protocol, status_field in STATUS_FIELDS.items():
        if status_field in case.expect:
            continue  # the case pins this status itself (checked in the field test)
        statuses = row[status_field]
        if protocol in case.checksums:
            if not statuses or any(s != GOOD for s in statuses.split(AGGREGATOR)):
                found.append(f"{status_field} is {statuses!r}, expected all Good (1)")
        elif statuses:
            found.append(f"unexpected {status_field} {statuses!r}")
    return found


def test_tshark_sees_every_frame(rows: list[Row]) -> None:
    assert [row["frame.number"] for row in rows] == [
        str(number) for number in range(1, len(CASES) + 2)
    ]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case.name for case in CASES])
def test_frame_passes_checksum_validation(rows: list[Row], index: int) -> None:
    assert problems(rows[index], CASES[index]) == []


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case.name for case in CASES])
def test_tshark_decodes_fields_like_our_reprs(rows: list[Row], index: int) -> None:
    case = CASES[index]
    decoded = {name: rows[index][name] for name in case.expect}
    assert decoded == case.expect


def test_negative_control_is_flagged(rows: list[Row]) -> None:
    """The same check flags a frame whose TCP checksum we corrupted: tshark verifies."""
    found = problems(rows[-1], NEGATIVE_CONTROL)
    assert "tcp.checksum.status is '0', expected all Good (1)" in found  # 0: Bad
    assert any(entry.startswith("expert 0x800000: Bad checksum") for entry in found), found
