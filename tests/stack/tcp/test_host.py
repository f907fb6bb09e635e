"""TCP through two whole interfaces (Ethernet, ARP/NDP, IP) with a virtual clock."""

from __future__ import annotations

import errno
import hashlib
from ipaddress import IPv4Address, IPv6Address

import pytest

from ethox_asyncio.device.base import frame_bytes
from ethox_asyncio.stack.interface import Interface, InterfaceConfig
from ethox_asyncio.stack.path import start_frame
from ethox_asyncio.stack.tcp.connection import EV_ACCEPT, EV_CLOSED, EV_DATA, EV_EOF, TcpConnection
from ethox_asyncio.stack.tcp.host import complete_checksum, partial_checksum_span
from ethox_asyncio.stack.tcp.state import TcpState
from ethox_asyncio.stack.wire.icmpv4 import Icmpv4DestUnreachable
from ethox_asyncio.stack.wire.icmpv6 import Icmpv6DestUnreachable
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr
from ethox_asyncio.stack.wire.ipv6 import Ipv6Repr
from ethox_asyncio.stack.wire.tcp import TcpSegment
from tests.stack.test_answers import icmpv4_bytes, icmpv6_bytes, ip_frame, ipv4_packet, ipv6_packet
from tests.stack.test_interface import Wire

ADDRESSES = {4: (IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")),
             6: (IPv6Address("fd00::1"), IPv6Address("fd00::2"))}


def events(iface, kind):  # type: ignore[no-untyped-def]
    return [e for e in iface.events if isinstance(e, tuple) and e[0] == kind]


def received(iface, conn) -> bytes:  # type: ignore[no-untyped-def]
    data = b"".join(bytes(e[2]) for e in events(iface, EV_DATA) if e[1] is conn)
    return data


@pytest.mark.parametrize("family", [4, 6])
def test_connect_transfer_and_close_between_two_stacks(family: int) -> None:
    """Active open from A to a listener on B, 200 kB each way, FIN both ways."""
    wire = Wire()
    a_ip, b_ip = ADDRESSES[family]
    listener = wire.b.tcp.listen(family, 0, 8080, backlog=8)
    client = wire.a.tcp.connect(family, int(a_ip), 0, int(b_ip), 8080, wire.now)
    wire.run(until=0.2)
    accepted = events(wire.b, EV_ACCEPT)
    assert len(accepted) == 1 and accepted[0][1] is listener
    server = listener.accept()
    assert server is accepted[0][2] and server.state is TcpState.ESTABLISHED
    assert client.state is TcpState.ESTABLISHED
    server.set_reading(True)  # as the transport does after connection_made
    up = bytes(range(256)) * 800
    down = bytes(reversed(range(256))) * 800
    client.send(up)
    server.send(down)
    wire.a.tcp.touch(client)
    wire.b.tcp.touch(server)
    consumed = {client: 0, server: 0}
    for _ in range(200):
        wire.run(until=0.05)
        for iface, conn in ((wire.a, client), (wire.b, server)):
            total = sum(len(e[2]) for e in events(iface, EV_DATA) if e[1] is conn)
            conn.consumed(total - consumed[conn])  # the application read it all
            consumed[conn] = total
            iface.tcp.touch(conn)
        if len(received(wire.b, server)) == len(up) and len(received(wire.a, client)) == len(down):
            break
    assert hashlib.sha256(received(wire.b, server)).digest() == hashlib.sha256(up).digest()
    assert received(wire.a, client) == down
    client.shutdown(wire.now)
    wire.a.tcp.touch(client)
    wire.run(until=0.5)
    assert events(wire.b, EV_EOF)
    server.close(wire.now)
    wire.b.tcp.touch(server)
    wire.run(until=0.5)
    assert client.state is TcpState.TIME_WAIT
    assert [e[2] for e in events(wire.b, EV_CLOSED) if e[1] is server] == [None]


def test_segment_to_a_closed_port_gets_a_reset_and_connect_is_refused() -> None:
    wire = Wire()
    a_ip, b_ip = ADDRESSES[4]
    client = wire.a.tcp.connect(4, int(a_ip), 0, int(b_ip), 9, wire.now)
    wire.run(until=0.2)
    closed = [e for e in events(wire.a, EV_CLOSED) if e[1] is client]
    assert len(closed) == 1 and isinstance(closed[0][2], ConnectionRefusedError)
    assert wire.b.stats["tcp_rst_sent"] == 1
    assert client.finished and not wire.a.tcp.connections


def test_listen_conflicts_raise_eaddrinuse() -> None:
    wire = Wire()
    wire.b.tcp.listen(4, 0, 80, backlog=1)
    with pytest.raises(OSError, match="in use"):
        wire.b.tcp.listen(4, int(ADDRESSES[4][1]), 80, backlog=1)
    wire.b.tcp.listen(6, 0, 80, backlog=1)  # the other family is a separate namespace
    assert wire.b.tcp.listen(4, 0, 0, backlog=1).local_port >= 32768


@pytest.mark.parametrize("family", [4, 6])
def test_port_unreachable_for_our_syn_fails_the_connect(family: int) -> None:
    """RFC 1122 §4.2.3.9 / RFC 5927: an ICMP port unreachable quoting our SYN (its
    sequence number in SND.UNA..SND.MAX) fails the connection in SYN-SENT with
    ConnectionRefusedError; one quoting another sequence number is ignored."""
    wire = Wire()
    a_ip, b_ip = ADDRESSES[family]

    def is_tcp(frame: bytes) -> bool:
        return frame[12:14] == (b"\x08\x00" if family == 4 else b"\x86\xdd") \
            and frame[23 if family == 4 else 20] == IpProtocol.TCP

    wire.tamper = lambda frame: None if is_tcp(frame) else frame  # B never sees the SYN
    client = wire.a.tcp.connect(family, int(a_ip), 0, int(b_ip), 9, wire.now)
    wire.run(until=0.1)
    syn = next(frame for frame in wire.sent_by_a if is_tcp(frame))
    packet = bytearray(syn[14:])
    header = 20 if family == 4 else 40

    def error_for(quoted: bytes) -> bytes:
        if family == 4:
            message = icmpv4_bytes(Icmpv4DestUnreachable(3, quoted[:header + 8]))
            return ip_frame(4, ipv4_packet(b_ip, a_ip, IpProtocol.ICMP, message),
                            dst_mac=wire.a.mac, src_mac=wire.b.mac)
        message = icmpv6_bytes(Icmpv6DestUnreachable(4, quoted), b_ip, a_ip)
        return ip_frame(6, ipv6_packet(b_ip, a_ip, IpProtocol.ICMPV6, message),
                        dst_mac=wire.a.mac, src_mac=wire.b.mac)

    wrong = bytearray(packet)
    wrong[header + 4:header + 8] = (int.from_bytes(packet[header + 4:header + 8], "big")
                                    + 1000).to_bytes(4, "big")
    wire.a.ingress(error_for(bytes(wrong)), wire.now)
    assert client.state is TcpState.SYN_SENT  # RFC 5927 §4.1: not our sequence number
    wire.a.ingress(error_for(bytes(packet)), wire.now)
    closed = [e for e in events(wire.a, EV_CLOSED) if e[1] is client]
    assert len(closed) == 1 and isinstance(closed[0][2], ConnectionRefusedError)


@pytest.mark.parametrize("family", [4, 6])
def test_partial_checksums_complete_to_the_software_checksum(family: int) -> None:
    """With checksum offload a segment carries only the pseudo-header sum; completing it
    the way a virtio-net device does (ones' sum from csum_start, with that sum as the
    start value, stored at csum_start + csum_offset) gives exactly the frame the
    software path emits — so the NEEDS_CSUM span the loop derives is right."""
    def first_tcp_frame(offload: bool) -> bytes:
        wire = Wire()
        if offload:
            config = InterfaceConfig(mac=wire.a.config.mac, addresses=wire.a.config.addresses,
                                     tcp_checksum_offload=True)
            wire.a = Interface(config)
        a_ip, b_ip = ADDRESSES[family]
        wire.a.tcp.connect(family, int(a_ip), 40000, int(b_ip), 9, 0.0)
        wire.tamper = lambda frame: None if partial_checksum_span(frame) else frame
        wire.run(until=0.1)
        return next(f for f in wire.sent_by_a if partial_checksum_span(f) is not None)

    partial, full = first_tcp_frame(True), first_tcp_frame(False)
    span = partial_checksum_span(partial)
    assert span == ((34 if family == 4 else 54), 16)
    assert partial != full  # only the checksum field differs...
    assert complete_checksum(partial, span) == full  # ...and completes to the same frame


# --- frames assembled by gathering (stack/path.py) ------------------------------------

def established_wire(family: int, *, offload: bool = False,
                     tso: bool = False) -> tuple[Wire, TcpConnection, TcpConnection]:
    """A Wire with A's connection to B's listener established, reading on. ``offload``:
    A emits partial checksums, completed on the wire as a device would; ``tso``: A may
    also send super-segments (callers carry those themselves)."""
    wire = Wire()
    if offload or tso:
        wire.a = Interface(InterfaceConfig(mac=wire.a.config.mac,
                                           addresses=wire.a.config.addresses,
                                           tcp_checksum_offload=True, tcp_tso=tso))

        def device_completes(frame: bytes) -> bytes:
            span = partial_checksum_span(frame)
            return frame if span is None else complete_checksum(frame, span)
        wire.tamper = device_completes
    a_ip, b_ip = ADDRESSES[family]
    listener = wire.b.tcp.listen(family, 0, 8080, backlog=8)
    client = wire.a.tcp.connect(family, int(a_ip), 0, int(b_ip), 8080, wire.now)
    wire.run(until=0.1)
    server = listener.accept()
    assert server is not None and client.state is TcpState.ESTABLISHED
    server.set_reading(True)
    return wire, client, server


def take_data(iface: Interface, conn: TcpConnection) -> bytes:
    """What ``conn`` received since the last call, consumed as an application reading
    it would (its window reopens); ``iface``'s events are cleared."""
    data = bytearray()
    for event in iface.events:
        if isinstance(event, tuple) and event[0] == EV_DATA and event[1] is conn:
            data += bytes(event[2])
    iface.events.clear()
    if data:
        conn.consumed(len(data))
        iface.tcp.touch(conn)
    return bytes(data)


def _expected_ip_header(family: int, frame: bytes, payload_len: int) -> bytes:
    """What the general IP output path writes for this packet (ident taken from it)."""
    src, dst = ADDRESSES[family]
    if family == 4:
        buf = bytearray(20)
        Ipv4Repr(src, dst, IpProtocol.TCP, payload_len,
                 ident=int.from_bytes(frame[18:20], "big")).emit(buf)
    else:
        buf = bytearray(40)
        Ipv6Repr(src, dst, IpProtocol.TCP, payload_len).emit(buf)
    return bytes(buf)


@pytest.mark.parametrize("offload", [False, True], ids=["software-checksum", "offload"])
@pytest.mark.parametrize("family", [4, 6])
def test_data_segments_leave_gathered_with_the_payload_by_reference(family: int,
                                                                     offload: bool) -> None:
    """A data segment is (headers, payload): one new buffer with Ethernet, IP and TCP
    headers, and the payload as a view of the very bytes the application wrote. Joined,
    it is the frame the general path would build: same IP header (RFC 791 §3.1 /
    RFC 8200 §3, IPv4 header checksum included), a valid TCP checksum (RFC 9293 §3.1)
    or, offloaded, the one the device completes."""
    wire, client, _ = established_wire(family, offload=offload)
    data = bytes(range(256)) * 20  # 5120 bytes: four segments at MSS 1460 / 1440
    client.send(data)
    wire.a.tcp.touch(client)
    frames = wire.a.egress(wire.now, 64)
    gathered = [f for f in frames if type(f) is tuple]
    assert len(gathered) == len(frames) == -(-len(data) // client.smss)
    sent = b""
    for head, payload in gathered:
        assert isinstance(head, bytearray)
        assert isinstance(payload, memoryview) and payload.obj is data  # not a copy
        sent += bytes(payload)
        joined = bytes(head) + bytes(payload)
        l4 = 34 if family == 4 else 54
        assert len(head) == l4 + 32  # + TCP header with timestamps: no payload byte
        assert joined[:6] == bytes(wire.b.mac) and joined[6:12] == bytes(wire.a.mac)
        assert joined[14:l4] == _expected_ip_header(family, joined, len(joined) - l4)
        if family == 4:
            assert Ipv4Packet.checked(joined[14:]).verify_checksum()
        src, dst = (int(a) for a in ADDRESSES[family])
        span = partial_checksum_span(joined)
        assert span == (l4, 16)
        complete = complete_checksum(joined, span) if offload else joined
        assert offload is (complete != joined)
        assert TcpSegment.checked(complete[l4:]).verify_checksum(src, dst)
    assert sent == data


@pytest.mark.parametrize("family", [4, 6])
def test_segments_wait_whole_while_the_next_hop_is_resolved(family: int) -> None:
    """With the neighbour entry gone (RFC 4861 §7.2.2 / RFC 826), data segments queue
    as whole packets behind the solicitation and leave, intact, once it is answered."""
    wire, client, server = established_wire(family)
    host = wire.a.ipv4 if family == 4 else wire.a.ipv6
    host.neighbors.flush()
    data = bytes(range(251)) * 12
    client.send(data)
    wire.a.tcp.touch(client)
    frames = wire.a.egress(wire.now, 64)
    assert frames and all(type(f) is bytes for f in frames)  # the solicitation only
    assert not tcp_frames(frames)
    assert host.neighbors.pending_total == -(-len(data) // client.smss)
    wire.b.events.clear()
    for frame in frames:
        wire.b.ingress(frame, wire.now)
    wire.run(until=0.1)
    assert received(wire.b, server) == data


def test_segments_with_no_route_are_counted_per_segment() -> None:
    wire, client, _ = established_wire(4)
    wire.a.routes.remove("198.18.0.0/24")
    client.send(bytes(3000))  # three segments
    wire.a.tcp.touch(client)
    assert wire.a.egress(wire.now, 64) == []
    assert wire.a.stats["tcp_send_failed_ENETUNREACH"] == 3


@pytest.mark.parametrize("family", [4, 6])
def test_send_on_refuses_a_packet_larger_than_the_mtu(family: int) -> None:
    """A frame path never sends what the MTU cannot carry (no fragmenting TCP: DF)."""
    wire, _, _ = established_wire(family)
    host = wire.a.ipv4 if family == 4 else wire.a.ipv6
    a_ip, b_ip = ADDRESSES[family]
    path = host.path(int(a_ip), int(b_ip), IpProtocol.TCP, wire.now)
    assert path is not None
    frame = start_frame(path, 20)
    header = 20 if family == 4 else 40
    host.send_on(path, frame, bytes(1500 - header - 20))  # exactly the MTU: fine
    with pytest.raises(OSError) as caught:
        host.send_on(path, start_frame(path, 20), bytes(1500 - header - 19))
    assert caught.value.errno == errno.EMSGSIZE


def tcp_frames(frames):  # type: ignore[no-untyped-def]
    return [f for f in frames if frame_bytes(f)[23 if frame_bytes(f)[12:14] == b"\x08\x00"
                                                 else 20] == IpProtocol.TCP]
