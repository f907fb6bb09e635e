"""Golden frames from the Linux kernel (tests/golden/README.md).

Two claims, checked on every captured frame:

1. Our parser agrees with the kernel field by field: each frame is parsed down every
   layer with checksum verification on, and the Reprs are compared with the values
   the kernel sent (taken from the README listings and ``tshark`` on the captures).
2. Our emitters reproduce the kernel's frames byte for byte: each frame is rebuilt
   from its parsed Reprs plus the original payload bytes into a buffer pre-filled
   with 0xa5. IPv4 idents, flow labels, TCP sequence numbers and timestamps come from
   the parsed Reprs, so the rebuild is deterministic.

Nothing had to be left out of the byte-for-byte rebuild: no capture carries IPv4
options, an IPv6 extension header other than the fragment header, unknown NDP
options or a TCP option layout other than Linux's (which ``TcpRepr.emit`` follows);
IPv6 flow labels and the DSCP of the kernel's ICMP errors are carried by the Reprs.

Frames are numbered from 1, as in the README listings and tshark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from ipaddress import IPv4Address, IPv6Address

import pytest

from ethox_asyncio.stack.wire.arp import ArpOperation, ArpRepr
from ethox_asyncio.stack.wire.errors import BadChecksum
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
    QuotedIpv4Header,
    parse_icmpv4,
)
from ethox_asyncio.stack.wire.icmpv6 import (
    Icmpv6DestUnreachable,
    Icmpv6DestUnreachableCode,
    Icmpv6EchoReply,
    Icmpv6EchoRequest,
    Icmpv6Repr,
    QuotedIpv6Header,
    parse_icmpv6,
)
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr
from ethox_asyncio.stack.wire.ipv6 import (
    Ipv6ExtensionHeader,
    Ipv6FragmentRepr,
    Ipv6Packet,
    Ipv6Repr,
)
from ethox_asyncio.stack.wire.ndisc import (
    NdiscRepr,
    NeighborAdvert,
    NeighborSolicit,
    solicited_node_multicast,
)
from ethox_asyncio.stack.wire.tcp import TcpFlags, TcpRepr, TcpSegment
from ethox_asyncio.stack.wire.udp import UdpPacket, UdpRepr
from tests import golden

# The capture topology (README): namespace A on veth-a, namespace B on veth-b.
MAC_A = EthernetAddress("02:00:00:00:00:01")
MAC_B = EthernetAddress("02:00:00:00:00:02")
IP4_A = IPv4Address("198.18.0.1")
IP4_B = IPv4Address("198.18.0.2")
IP6_A = IPv6Address("fd00::1")
IP6_B = IPv6Address("fd00::2")
ETH_4_AB = EthernetRepr(src=MAC_A, dst=MAC_B, ethertype=EtherType.IPV4)
ETH_4_BA = EthernetRepr(src=MAC_B, dst=MAC_A, ethertype=EtherType.IPV4)
ETH_6_AB = EthernetRepr(src=MAC_A, dst=MAC_B, ethertype=EtherType.IPV6)
ETH_6_BA = EthernetRepr(src=MAC_B, dst=MAC_A, ethertype=EtherType.IPV6)

CAPTURES = [
    "arp_icmpv4_echo",
    "ndp_icmpv6_echo",
    "tcp4_session",
    "tcp6_session",
    "udp4_echo",
    "udp4_fragments",
    "udp4_port_unreachable",
    "udp6_echo",
    "udp6_fragments",
    "udp6_port_unreachable",
]

UpperRepr = TcpRepr | UdpRepr | Icmpv4Repr | Icmpv6Repr | NdiscRepr
ICMPV4_REPRS = (Icmpv4EchoRequest, Icmpv4EchoReply, Icmpv4DestUnreachable, Icmpv4TimeExceeded,
                Icmpv4ParamProblem)


@cache
def frames(name: str) -> tuple[bytes, ...]:
    return tuple(golden.load(name))


def frame(name: str, number: int) -> bytes:
    """Frame ``number`` (1-based, as tshark counts) of capture ``name``."""
    return frames(name)[number - 1]


def frame_ids(table: Sequence[tuple[object, ...]]) -> list[str]:
    """Test ids for a table whose rows start with the frame number."""
    return [f"frame{row[0]}" for row in table]


ALL_FRAMES = [
    pytest.param(name, number, id=f"{name}#{number}")
    for name in golden.names()
    for number in range(1, len(frames(name)) + 1)
]


# --- decoding and rebuilding ---------------------------------------------------------------


@dataclass(frozen=True)
class Decoded:
    """One frame parsed down every layer our codecs know.

    ``upper`` is the TCP/UDP/ICMP Repr, or ``None`` for an IP fragment (whose data cannot
    be parsed before reassembly). ``payload`` is what follows the last parsed header: the
    TCP or UDP payload, or the fragment data; empty for ARP and ICMP (whose Reprs hold
    their data).
    """

    eth: EthernetRepr
    arp: ArpRepr | None = None
    ip: Ipv4Repr | Ipv6Repr | None = None
    ext_headers: tuple[Ipv6ExtensionHeader, ...] = ()
    upper: UpperRepr | None = None
    payload: bytes = b""


def _decode_transport(
    protocol: int, body: memoryview, src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address
) -> tuple[UpperRepr, bytes]:
    """Parse the upper-layer message ``body`` with checksum verification on (the default)."""
    if protocol == IpProtocol.TCP:
        return TcpRepr.parse(body, src, dst), bytes(TcpSegment.checked(body).payload)
    if protocol == IpProtocol.UDP:
        return UdpRepr.parse(body, src, dst), bytes(UdpPacket.checked(body).payload)
    if protocol == IpProtocol.ICMP:
        return parse_icmpv4(body), b""
    if protocol == IpProtocol.ICMPV6:
        assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
        return parse_icmpv6(body, src, dst), b""
    raise AssertionError(f"no golden frame should carry protocol {protocol}")


def decode(data: bytes) -> Decoded:
    eth = EthernetRepr.parse(data)
    l3 = EthernetFrame.checked(data).payload
    if eth.ethertype == EtherType.ARP:
        return Decoded(eth, arp=ArpRepr.parse(l3))
    if eth.ethertype == EtherType.IPV4:
        packet4 = Ipv4Packet.checked(l3)
        ip4 = Ipv4Repr.parse(packet4)
        if ip4.more_frags or ip4.frag_offset:
            return Decoded(eth, ip=ip4, payload=bytes(packet4.payload))
        upper, payload = _decode_transport(ip4.protocol, packet4.payload, ip4.src, ip4.dst)
        return Decoded(eth, ip=ip4, upper=upper, payload=payload)
    assert eth.ethertype == EtherType.IPV6, f"unexpected EtherType 0x{eth.ethertype:04x}"
    packet6 = Ipv6Packet.checked(l3)
    ip6 = Ipv6Repr.parse(packet6)
    chain = packet6.header_chain()
    body = packet6.payload[chain.offset :]
    if chain.fragment is not None and not chain.fragment.is_atomic:
        return Decoded(eth, ip=ip6, ext_headers=chain.headers, payload=bytes(body))
    upper, payload = _decode_transport(chain.protocol, body, ip6.src, ip6.dst)
    return Decoded(eth, ip=ip6, ext_headers=chain.headers, upper=upper, payload=payload)


def rebuild(decoded: Decoded) -> bytes:
    """Emit ``decoded`` with our emitters into a buffer pre-filled with 0xa5."""
    eth = decoded.eth
    network = decoded.arp if decoded.arp is not None else decoded.ip
    assert network is not None
    buf = bytearray(b"\xa5" * (eth.header_len + network.buffer_len))
    view = memoryview(buf)
    eth.emit(view)
    offset = eth.header_len
    if decoded.arp is not None:
        decoded.arp.emit(view[offset:])
        return bytes(buf)
    ip = decoded.ip
    assert ip is not None
    ip.emit(view[offset:])
    offset += ip.header_len
    for header in decoded.ext_headers:
        # Only the fragment header has an emitter; no capture holds another one.
        assert isinstance(header, Ipv6FragmentRepr), f"cannot emit {header!r}"
        header.emit(view[offset:])
        offset += header.header_len
    upper, payload = decoded.upper, decoded.payload
    if upper is None:  # a fragment: its data is copied as captured
        view[offset : offset + len(payload)] = payload
    elif isinstance(upper, TcpRepr):
        start = offset + upper.header_len
        view[start : start + len(payload)] = payload
        upper.emit(view[offset:], ip.src, ip.dst)
    elif isinstance(upper, UdpRepr):
        upper.emit(view[offset:], ip.src, ip.dst, payload)
    elif isinstance(upper, ICMPV4_REPRS):
        upper.emit(view[offset:])
    else:  # ICMPv6, NDP included: the checksum covers the IPv6 pseudo-header
        assert isinstance(ip, Ipv6Repr)
        upper.emit(view[offset:], ip.src, ip.dst)
    return bytes(buf)


def test_every_capture_has_field_checks() -> None:
    """A new capture must get field checks below, not only the generic rebuild test."""
    assert golden.names() == CAPTURES


@pytest.mark.parametrize(("name", "number"), ALL_FRAMES)
def test_rebuild_is_byte_for_byte(name: str, number: int) -> None:
    captured = frame(name, number)
    rebuilt = rebuild(decode(captured))
    assert len(rebuilt) == len(captured)
    assert rebuilt.hex(" ", 4) == captured.hex(" ", 4)  # hex: a readable diff on failure


CHECKSUMMED_FRAMES = [
    param
    for param in ALL_FRAMES
    if param.values[0] not in ("udp4_fragments", "udp6_fragments")
    and param.values[0:2] not in (("arp_icmpv4_echo", 1), ("arp_icmpv4_echo", 2))
]


@pytest.mark.parametrize(("name", "number"), CHECKSUMMED_FRAMES)
def test_decode_verifies_checksums(name: str, number: int) -> None:
    """decode() really verifies: flipping a bit of the last octet (covered by the TCP, UDP
    or ICMP checksum) makes it raise BadChecksum. (Fragments are checked after reassembly.)"""
    corrupted = bytearray(frame(name, number))
    corrupted[-1] ^= 0x01
    with pytest.raises(BadChecksum):
        decode(bytes(corrupted))


@pytest.mark.parametrize("number", [1, 2, 3], ids=["frame1", "frame2", "frame3"])
def test_decode_verifies_ipv4_header_checksum_of_fragments(number: int) -> None:
    corrupted = bytearray(frame("udp4_fragments", number))
    corrupted[14 + 8] ^= 0x01  # the TTL, covered by the IPv4 header checksum only
    with pytest.raises(BadChecksum):
        decode(bytes(corrupted))


# --- arp_icmpv4_echo --------------------------------------------------------------------------


def test_arp_request_and_reply() -> None:
    request = decode(frame("arp_icmpv4_echo", 1))
    assert request.eth == EthernetRepr(src=MAC_A, dst=BROADCAST, ethertype=EtherType.ARP)
    # "Who has 198.18.0.2? Tell 198.18.0.1"; Linux leaves the target MAC zero.
    assert request.arp == ArpRepr(
        ArpOperation.REQUEST, MAC_A, IP4_A, EthernetAddress(bytes(6)), IP4_B
    )
    reply = decode(frame("arp_icmpv4_echo", 2))
    assert reply.eth == EthernetRepr(src=MAC_B, dst=MAC_A, ethertype=EtherType.ARP)
    # "198.18.0.2 is at 02:00:00:00:00:02", sent back to the asker.
    assert reply.arp == ArpRepr(ArpOperation.REPLY, MAC_B, IP4_B, MAC_A, IP4_A)


# frame, message class, ICMP seq, IPv4 ident. Requests go A -> B with DF set; the
# kernel's replies go B -> A without DF.
ICMP4_ECHOES = [
    (3, Icmpv4EchoRequest, 1, 0xA34D),
    (4, Icmpv4EchoReply, 1, 0xBCE9),
    (5, Icmpv4EchoRequest, 2, 0xA37E),
    (6, Icmpv4EchoReply, 2, 0xBD1C),
]


@pytest.mark.parametrize(
    ("number", "kind", "seq_no", "ident"), ICMP4_ECHOES, ids=frame_ids(ICMP4_ECHOES)
)
def test_icmpv4_echo_fields(number: int, kind: type, seq_no: int, ident: int) -> None:
    decoded = decode(frame("arp_icmpv4_echo", number))
    request = kind is Icmpv4EchoRequest
    assert decoded.eth == (ETH_4_AB if request else ETH_4_BA)
    src, dst = (IP4_A, IP4_B) if request else (IP4_B, IP4_A)
    # 64 = 8-octet ICMP header + ping's 56 data octets.
    assert decoded.ip == Ipv4Repr(
        src, dst, IpProtocol.ICMP, payload_len=64, ttl=64, ident=ident, dont_frag=request
    )
    message = decoded.upper
    assert type(message) is kind
    assert isinstance(message, Icmpv4EchoRequest | Icmpv4EchoReply)
    assert (message.ident, message.seq_no) == (0x2008, seq_no)
    # ping's 56 data octets: a 16-octet struct timeval, then octet i holds i (0x10 .. 0x37).
    assert len(message.data) == 56
    assert message.data[16:] == bytes(range(16, 56))


@pytest.mark.parametrize(
    ("request_number", "reply_number"), [(3, 4), (5, 6)], ids=["seq1", "seq2"]
)
def test_icmpv4_echo_reply_repeats_request_data(request_number: int, reply_number: int) -> None:
    request = decode(frame("arp_icmpv4_echo", request_number)).upper
    reply = decode(frame("arp_icmpv4_echo", reply_number)).upper
    assert isinstance(request, Icmpv4EchoRequest) and isinstance(reply, Icmpv4EchoReply)
    assert (reply.ident, reply.seq_no, reply.data) == (request.ident, request.seq_no, request.data)


# --- ndp_icmpv6_echo --------------------------------------------------------------------------


def test_neighbor_solicitation() -> None:
    decoded = decode(frame("ndp_icmpv6_echo", 1))
    group = solicited_node_multicast(IP6_B)
    assert group == IPv6Address("ff02::1:ff00:2")
    assert decoded.eth == EthernetRepr(
        src=MAC_A, dst=EthernetAddress("33:33:ff:00:00:02"), ethertype=EtherType.IPV6
    )
    assert decoded.eth.dst == ipv6_multicast_mac(group)
    # NDP is sent with hop limit 255 (RFC 4861 §7.1.1); 32 = 24-octet NS + 8-octet option.
    assert decoded.ip == Ipv6Repr(IP6_A, group, IpProtocol.ICMPV6, payload_len=32, hop_limit=255)
    assert decoded.ext_headers == ()
    assert decoded.upper == NeighborSolicit(target_addr=IP6_B, source_lladdr=MAC_A)


def test_neighbor_advertisement() -> None:
    decoded = decode(frame("ndp_icmpv6_echo", 2))
    assert decoded.eth == ETH_6_BA
    assert decoded.ip == Ipv6Repr(IP6_B, IP6_A, IpProtocol.ICMPV6, payload_len=32, hop_limit=255)
    # "fd00::2 (sol, ovr) is at 02:00:00:00:00:02"
    assert decoded.upper == NeighborAdvert(
        target_addr=IP6_B, target_lladdr=MAC_B, router=False, solicited=True, override=True
    )


# frame, message class, ICMPv6 seq. Each side uses its own flow label for the exchange.
ICMP6_ECHOES = [
    (3, Icmpv6EchoRequest, 1),
    (4, Icmpv6EchoReply, 1),
    (5, Icmpv6EchoRequest, 2),
    (6, Icmpv6EchoReply, 2),
]


@pytest.mark.parametrize(("number", "kind", "seq_no"), ICMP6_ECHOES, ids=frame_ids(ICMP6_ECHOES))
def test_icmpv6_echo_fields(number: int, kind: type, seq_no: int) -> None:
    decoded = decode(frame("ndp_icmpv6_echo", number))
    request = kind is Icmpv6EchoRequest
    assert decoded.eth == (ETH_6_AB if request else ETH_6_BA)
    src, dst, flow_label = (IP6_A, IP6_B, 0x0655DC) if request else (IP6_B, IP6_A, 0x07BDEE)
    assert decoded.ip == Ipv6Repr(
        src, dst, IpProtocol.ICMPV6, payload_len=64, hop_limit=64, flow_label=flow_label
    )
    message = decoded.upper
    assert type(message) is kind
    assert isinstance(message, Icmpv6EchoRequest | Icmpv6EchoReply)
    assert (message.ident, message.seq_no) == (0x2019, seq_no)
    assert len(message.data) == 56
    assert message.data[16:] == bytes(range(16, 56))  # after ping's 16-octet timeval


# --- tcp4_session / tcp6_session ------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    name: str
    client_port: int
    mss: int
    syn_window: int  # the window field of the SYN
    syn_ack_window: int  # the window field of the SYN-ACK
    isn_a: int  # initial sequence numbers (tshark's tcp.seq_raw)
    isn_b: int
    tsval_a: int  # each side's TSval: constant over this sub-millisecond session
    tsval_b: int


TCP4 = Session("tcp4_session", 59794, 1460, 64240, 65160,
               1297233209, 1195952417, 495109442, 1078299913)
TCP6 = Session("tcp6_session", 36654, 1440, 64800, 64260,
               1276496870, 2567078356, 2015975530, 2499736396)
SERVER_PORT = 8080
WINDOW_SCALE = 10  # the README's "WS=1024"

_SYN, _ACK, _PSH, _FIN = TcpFlags.SYN, TcpFlags.ACK, TcpFlags.PSH, TcpFlags.FIN

# The README listing: frame, sender, flags, relative seq, relative ack, payload. The window
# field after the handshake is raw (the README shows it scaled by 1024: 63 -> 64512).
SEGMENTS = [
    (1, "A", _SYN, 0, None, b""),
    (2, "B", _SYN | _ACK, 0, 1, b""),
    (3, "A", _ACK, 1, 1, b""),
    (4, "A", _PSH | _ACK, 1, 1, b"hello\n"),
    (5, "B", _ACK, 1, 7, b""),
    (6, "B", _PSH | _ACK, 1, 7, b"world\n"),
    (7, "A", _ACK, 7, 7, b""),
    (8, "B", _FIN | _ACK, 7, 7, b""),
    (9, "A", _FIN | _ACK, 7, 8, b""),
    (10, "B", _ACK, 8, 8, b""),
]
# Raw window fields after the handshake, by capture and sender.
ESTABLISHED_WINDOW = {("tcp4_session", "A"): 63, ("tcp4_session", "B"): 64,
                      ("tcp6_session", "A"): 64, ("tcp6_session", "B"): 63}
# IPv4 idents of tcp4_session by frame: A counts up from 0xffd7; B's SYN-ACK has 0.
TCP4_IDENTS = {1: 0xFFD7, 2: 0x0000, 3: 0xFFD8, 4: 0xFFD9, 5: 0x6417,
               6: 0x6418, 7: 0xFFDA, 8: 0x6419, 9: 0xFFDB, 10: 0x641A}
TCP6_FLOW_LABELS = {"A": 0x0D0566, "B": 0x09EB2E}


def expected_tcp(session: Session, sender: str, flags: TcpFlags, rel_seq: int,
                 rel_ack: int | None, payload: bytes) -> TcpRepr:
    from_a = sender == "A"
    ports = (session.client_port, SERVER_PORT) if from_a else (SERVER_PORT, session.client_port)
    own_isn, peer_isn = (session.isn_a, session.isn_b) if from_a else (session.isn_b, session.isn_a)
    own_ts, peer_ts = (session.tsval_a, session.tsval_b) if from_a else (session.tsval_b,
                                                                         session.tsval_a)
    ack = None if rel_ack is None else peer_isn + rel_ack
    if flags & _SYN:
        # Linux SYN options: MSS, SACK-permitted, timestamps (TSecr 0 in the SYN), wscale.
        window = session.syn_window if from_a else session.syn_ack_window
        return TcpRepr(*ports, own_isn + rel_seq, ack, flags, window, mss=session.mss,
                       window_scale=WINDOW_SCALE, sack_permitted=True,
                       timestamp=(own_ts, peer_ts if ack is not None else 0))
    window = ESTABLISHED_WINDOW[session.name, sender]
    return TcpRepr(*ports, own_isn + rel_seq, ack, flags, window,
                   timestamp=(own_ts, peer_ts), payload_len=len(payload))


@pytest.mark.parametrize(
    ("number", "sender", "flags", "rel_seq", "rel_ack", "payload"), SEGMENTS,
    ids=frame_ids(SEGMENTS),
)
def test_tcp4_session_fields(number: int, sender: str, flags: TcpFlags, rel_seq: int,
                             rel_ack: int | None, payload: bytes) -> None:
    decoded = decode(frame("tcp4_session", number))
    from_a = sender == "A"
    assert decoded.eth == (ETH_4_AB if from_a else ETH_4_BA)
    src, dst = (IP4_A, IP4_B) if from_a else (IP4_B, IP4_A)
    tcp = expected_tcp(TCP4, sender, flags, rel_seq, rel_ack, payload)
    assert decoded.ip == Ipv4Repr(src, dst, IpProtocol.TCP, payload_len=tcp.buffer_len, ttl=64,
                                  ident=TCP4_IDENTS[number], dont_frag=True)
    assert decoded.upper == tcp
    assert decoded.payload == payload


@pytest.mark.parametrize(
    ("number", "sender", "flags", "rel_seq", "rel_ack", "payload"), SEGMENTS,
    ids=frame_ids(SEGMENTS),
)
def test_tcp6_session_fields(number: int, sender: str, flags: TcpFlags, rel_seq: int,
                             rel_ack: int | None, payload: bytes) -> None:
    decoded = decode(frame("tcp6_session", number))
    from_a = sender == "A"
    assert decoded.eth == (ETH_6_AB if from_a else ETH_6_BA)
    src, dst = (IP6_A, IP6_B) if from_a else (IP6_B, IP6_A)
    tcp = expected_tcp(TCP6, sender, flags, rel_seq, rel_ack, payload)
    assert decoded.ip == Ipv6Repr(src, dst, IpProtocol.TCP, payload_len=tcp.buffer_len,
                                  hop_limit=64, flow_label=TCP6_FLOW_LABELS[sender])
    assert decoded.ext_headers == ()
    assert decoded.upper == tcp
    assert decoded.payload == payload


@pytest.mark.parametrize("session", [TCP4, TCP6], ids=["tcp4", "tcp6"])
def test_tcp_syn_options_spelled_out(session: Session) -> None:
    """The SYN of the README line by line: [SYN] MSS SACK_PERM TSval TSecr=0 WS=1024."""
    syn = decode(frame(session.name, 1)).upper
    assert isinstance(syn, TcpRepr)
    assert syn.flags == TcpFlags.SYN  # SYN only: no ACK, so no ack number
    assert syn.ack is None
    assert syn.mss == session.mss
    assert syn.sack_permitted
    assert syn.timestamp == (session.tsval_a, 0)
    assert syn.window_scale == 10 and 1 << syn.window_shift == 1024
    assert syn.sack_blocks == ()


# --- udp4_echo / udp6_echo ------------------------------------------------------------------

# frame, sender, payload, IPv4 ident
UDP4_ECHO = [
    (1, "A", b"ping 1", 0x2712),
    (2, "B", b"pong 1", 0x3C50),
    (3, "A", b"ping 2", 0x2713),
    (4, "B", b"pong 2", 0x3C51),
]


UDP6_ECHO = [(1, "A", b"ping 1"), (2, "B", b"pong 1"), (3, "A", b"ping 2"), (4, "B", b"pong 2")]


@pytest.mark.parametrize(
    ("number", "sender", "payload", "ident"), UDP4_ECHO, ids=frame_ids(UDP4_ECHO)
)
def test_udp4_echo_fields(number: int, sender: str, payload: bytes, ident: int) -> None:
    decoded = decode(frame("udp4_echo", number))
    from_a = sender == "A"
    assert decoded.eth == (ETH_4_AB if from_a else ETH_4_BA)
    src, dst = (IP4_A, IP4_B) if from_a else (IP4_B, IP4_A)
    assert decoded.ip == Ipv4Repr(src, dst, IpProtocol.UDP, payload_len=14, ttl=64, ident=ident,
                                  dont_frag=True)
    ports = (52106, 7007) if from_a else (7007, 52106)
    assert decoded.upper == UdpRepr(*ports, payload_len=6)
    assert decoded.payload == payload


@pytest.mark.parametrize(
    ("number", "sender", "payload"), UDP6_ECHO, ids=frame_ids(UDP6_ECHO)
)
def test_udp6_echo_fields(number: int, sender: str, payload: bytes) -> None:
    decoded = decode(frame("udp6_echo", number))
    from_a = sender == "A"
    assert decoded.eth == (ETH_6_AB if from_a else ETH_6_BA)
    src, dst, flow_label = (IP6_A, IP6_B, 0x00DAB6) if from_a else (IP6_B, IP6_A, 0x08D697)
    assert decoded.ip == Ipv6Repr(src, dst, IpProtocol.UDP, payload_len=14, hop_limit=64,
                                  flow_label=flow_label)
    assert decoded.ext_headers == ()
    ports = (50911, 7007) if from_a else (7007, 50911)
    assert decoded.upper == UdpRepr(*ports, payload_len=6)
    assert decoded.payload == payload


# --- udp4_port_unreachable / udp6_port_unreachable ------------------------------------------


def test_udp4_port_unreachable() -> None:
    probe = decode(frame("udp4_port_unreachable", 1))
    assert probe.eth == ETH_4_AB
    assert probe.ip == Ipv4Repr(IP4_A, IP4_B, IpProtocol.UDP, payload_len=19, ttl=64,
                                ident=0x1E63, dont_frag=True)
    assert probe.upper == UdpRepr(36619, 9, payload_len=11)
    assert probe.payload == b"knock knock"

    error = decode(frame("udp4_port_unreachable", 2))
    assert error.eth == ETH_4_BA
    # Linux sends ICMP errors with TOS 0xc0 (DSCP CS6, "internetwork control") and no DF;
    # 47 = 8-octet ICMP header + the whole 39-octet datagram.
    assert error.ip == Ipv4Repr(IP4_B, IP4_A, IpProtocol.ICMP, payload_len=47, ttl=64,
                                dscp=48, ecn=0, ident=0xC15A, dont_frag=False)
    message = error.upper
    assert message == Icmpv4DestUnreachable(
        Icmpv4DestUnreachableCode.PORT_UNREACHABLE,
        quoted=frame("udp4_port_unreachable", 1)[14:],  # the probe's IP datagram, all of it
        next_hop_mtu=0,
    )
    assert isinstance(message, Icmpv4DestUnreachable)
    assert message.quoted_ipv4_header() == QuotedIpv4Header(IP4_A, IP4_B, IpProtocol.UDP, 36619, 9)
    # The quote parses like the datagram it is, UDP checksum verified.
    quoted_ip = Ipv4Repr.parse(message.quoted)
    assert quoted_ip == probe.ip
    quoted_udp = UdpRepr.parse(Ipv4Packet(message.quoted).payload, quoted_ip.src, quoted_ip.dst)
    assert quoted_udp == UdpRepr(36619, 9, payload_len=11)


def test_udp6_port_unreachable() -> None:
    probe = decode(frame("udp6_port_unreachable", 1))
    assert probe.eth == ETH_6_AB
    assert probe.ip == Ipv6Repr(IP6_A, IP6_B, IpProtocol.UDP, payload_len=19, hop_limit=64,
                                flow_label=0x04CE2D)
    assert probe.ext_headers == ()
    assert probe.upper == UdpRepr(56796, 9, payload_len=11)
    assert probe.payload == b"knock knock"

    error = decode(frame("udp6_port_unreachable", 2))
    assert error.eth == ETH_6_BA
    # 67 = 8-octet ICMPv6 header + the whole 59-octet packet.
    assert error.ip == Ipv6Repr(IP6_B, IP6_A, IpProtocol.ICMPV6, payload_len=67, hop_limit=64,
                                flow_label=0x0D1194)
    assert error.ext_headers == ()
    message = error.upper
    assert message == Icmpv6DestUnreachable(
        Icmpv6DestUnreachableCode.PORT_UNREACHABLE,
        quoted=frame("udp6_port_unreachable", 1)[14:],  # the probe's IPv6 packet, all of it
    )
    assert isinstance(message, Icmpv6DestUnreachable)
    assert message.quoted_ipv6_header() == QuotedIpv6Header(IP6_A, IP6_B, IpProtocol.UDP, 56796, 9)
    quoted_ip = Ipv6Repr.parse(message.quoted)
    assert quoted_ip == probe.ip
    quoted_udp = UdpRepr.parse(Ipv6Packet(message.quoted).payload, quoted_ip.src, quoted_ip.dst)
    assert quoted_udp == UdpRepr(56796, 9, payload_len=11)


# --- udp4_fragments / udp6_fragments --------------------------------------------------------

DATAGRAM_PAYLOAD = (bytes(range(256)) * 12)[:3000]  # "payload bytes 0..255 repeated"


def reassemble(pieces: list[tuple[int, bool, bytes]]) -> bytes:
    """Join ``(offset, more_frags, data)`` fragments, checking they tile the datagram."""
    data = b""
    for index, (offset, more_frags, piece) in enumerate(sorted(pieces, key=lambda p: p[0])):
        assert offset == len(data), f"fragment {index} at offset {offset}, expected {len(data)}"
        assert more_frags == (index < len(pieces) - 1), f"MF of fragment {index}"
        data += piece
    return data


# frame, fragment offset (bytes), MF, fragment data length
UDP4_FRAGMENTS = [(1, 0, True, 1480), (2, 1480, True, 1480), (3, 2960, False, 48)]


@pytest.mark.parametrize(
    ("number", "offset", "more", "length"), UDP4_FRAGMENTS, ids=frame_ids(UDP4_FRAGMENTS)
)
def test_udp4_fragment_fields(number: int, offset: int, more: bool, length: int) -> None:
    decoded = decode(frame("udp4_fragments", number))
    assert decoded.eth == ETH_4_AB
    # "off=0/1480/2960, ID=a789"; a datagram the kernel fragments has DF clear.
    assert decoded.ip == Ipv4Repr(IP4_A, IP4_B, IpProtocol.UDP, payload_len=length, ttl=64,
                                  ident=0xA789, dont_frag=False, more_frags=more,
                                  frag_offset=offset)
    assert decoded.upper is None
    assert len(decoded.payload) == length


def test_udp4_fragments_reassemble_to_the_datagram() -> None:
    pieces = []
    for number in (1, 2, 3):
        decoded = decode(frame("udp4_fragments", number))
        assert isinstance(decoded.ip, Ipv4Repr)
        pieces.append((decoded.ip.frag_offset, decoded.ip.more_frags, decoded.payload))
    datagram = reassemble(pieces)
    assert len(datagram) == 8 + 3000  # UDP header + the README's 3000-byte payload
    # The UDP checksum (computed by the kernel over the whole datagram) verifies.
    assert UdpRepr.parse(datagram, IP4_A, IP4_B) == UdpRepr(42602, 9000, payload_len=3000)
    assert bytes(UdpPacket.checked(datagram).payload) == DATAGRAM_PAYLOAD
    corrupted = bytearray(datagram)
    corrupted[-1] ^= 0x01
    with pytest.raises(BadChecksum):
        UdpRepr.parse(corrupted, IP4_A, IP4_B)
    # The UDP header we emit over the reassembled payload is the one in the first fragment.
    buf = bytearray(b"\xa5" * len(datagram))
    UdpRepr(42602, 9000, payload_len=3000).emit(buf, IP4_A, IP4_B, DATAGRAM_PAYLOAD)
    assert bytes(buf) == datagram


# frame, fragment offset (bytes), M flag, fragment data length
UDP6_FRAGMENTS = [(1, 0, True, 1448), (2, 1448, True, 1448), (3, 2896, False, 112)]


@pytest.mark.parametrize(
    ("number", "offset", "more", "length"), UDP6_FRAGMENTS, ids=frame_ids(UDP6_FRAGMENTS)
)
def test_udp6_fragment_fields(number: int, offset: int, more: bool, length: int) -> None:
    decoded = decode(frame("udp6_fragments", number))
    assert decoded.eth == ETH_6_AB
    # "IPv6 fragment (off=... more=... ident=0xc0174adc nxt=17)"
    assert decoded.ip == Ipv6Repr(IP6_A, IP6_B, IpProtocol.IPV6_FRAG, payload_len=8 + length,
                                  hop_limit=64, flow_label=0x0A6E77)
    assert decoded.ext_headers == (
        Ipv6FragmentRepr(IpProtocol.UDP, frag_offset=offset, more_frags=more, ident=0xC0174ADC),
    )
    assert decoded.upper is None
    assert len(decoded.payload) == length


def test_udp6_fragments_reassemble_to_the_datagram() -> None:
    pieces = []
    for number in (1, 2, 3):
        decoded = decode(frame("udp6_fragments", number))
        (fragment,) = decoded.ext_headers
        assert isinstance(fragment, Ipv6FragmentRepr)
        pieces.append((fragment.frag_offset, fragment.more_frags, decoded.payload))
    datagram = reassemble(pieces)
    assert len(datagram) == 8 + 3000
    assert UdpRepr.parse(datagram, IP6_A, IP6_B) == UdpRepr(49204, 9000, payload_len=3000)
    assert bytes(UdpPacket.checked(datagram).payload) == DATAGRAM_PAYLOAD
    corrupted = bytearray(datagram)
    corrupted[-1] ^= 0x01
    with pytest.raises(BadChecksum):
        UdpRepr.parse(corrupted, IP6_A, IP6_B)
    buf = bytearray(b"\xa5" * len(datagram))
    UdpRepr(49204, 9000, payload_len=3000).emit(buf, IP6_A, IP6_B, DATAGRAM_PAYLOAD)
    assert bytes(buf) == datagram
