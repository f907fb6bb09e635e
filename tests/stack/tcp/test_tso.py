"""TSO: super-segments for a device that segments (sender.py, host.py, the loop's header).

A super-segment is what the sender would have sent as consecutive MSS-sized segments,
in one: the device (virtio-net GSO, the kernel) cuts it at ``gso_size`` bytes, copies
the header, advances the sequence numbers and keeps PSH/FIN for the last piece. So the
rules here are about *how much* goes into one: whole MSS within cwnd and the peer's
window, a runt only when it empties the queue and Nagle allows it, retransmissions
single. Frames on the wire are checked by cutting them as the kernel does.
"""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address, IPv6Address

import pytest

from ethox_asyncio.device.base import frame_bytes
from ethox_asyncio.device.vnet import FLAG_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, VnetHeader
from ethox_asyncio.loop import _with_vnet_header
from ethox_asyncio.stack.interface import Interface, InterfaceConfig
from ethox_asyncio.stack.tcp.connection import TcpConnection
from ethox_asyncio.stack.tcp.host import (
    TSO_MAX_PAYLOAD,
    _split,
    complete_checksum,
    partial_checksum_span,
)
from ethox_asyncio.stack.tcp.rtt import RttEstimator
from ethox_asyncio.stack.tcp.segment import Segment
from ethox_asyncio.stack.tcp.state import TcpState
from tests.stack.tcp.harness import MSS, config, established, l, r, seg, send
from tests.stack.tcp.test_host import established_wire, take_data

ADDRESSES = {4: (IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")),
             6: (IPv6Address("fd00::1"), IPv6Address("fd00::2"))}


def tso_connection(*, window: int = 1 << 20, **changes: object) -> TcpConnection:
    """Established, TSO on, cwnd 100 MSS and the peer's window ``window`` (as if a
    scaled window had been announced after the handshake)."""
    conn = established(config(**changes), wscale=7)
    conn.tso_max = TSO_MAX_PAYLOAD
    conn.cc.cwnd = 100 * MSS
    conn.snd_wnd = conn.max_snd_wnd = window
    return conn


def data_segments(conn: TcpConnection, now: float = 0.0) -> list[Segment]:
    return [s for s in conn.output(now, 1000) if len(s.payload)]


def test_whole_mss_within_cwnd_go_as_one_super_segment() -> None:
    conn = tso_connection()
    conn.cc.cwnd = 10 * MSS
    conn.send(bytes(30 * MSS))
    (first,) = data_segments(conn)
    assert len(first.payload) == 10 * MSS and first.gso_size == MSS
    assert first.seq == l(1) and not first.flags & 0x08  # no PSH: more follows
    assert conn.snd_nxt == l(1 + 10 * MSS)
    assert conn.stats["tcp_tso_segments"] == 1


@pytest.mark.parametrize(("ssthresh", "segments"), [(1 << 30, 20), (10 * MSS, 12)])
def test_a_super_segment_carries_a_millisecond_at_the_pacing_rate(ssthresh: int,
                                                                  segments: int) -> None:
    # Linux tcp_tso_autosize: cwnd 100 MSS over an SRTT of 10 ms is 14.6 MB/s; the
    # pacing rate is twice that early in slow start (cwnd < ssthresh / 2), 1.2 times
    # after; one super-segment carries 1 ms of it: 20 and 12 segments.
    conn = tso_connection()
    conn.rtt = RttEstimator()
    conn.rtt.sample(0.010)
    conn.cc.ssthresh = ssthresh
    conn.send(bytes(60 * MSS))
    first = data_segments(conn)[0]
    assert len(first.payload) == segments * MSS and first.gso_size == MSS


def test_a_slow_path_still_gets_two_segment_super_segments() -> None:
    conn = tso_connection()
    conn.cc.cwnd = 4 * MSS
    conn.rtt = RttEstimator()
    conn.rtt.sample(1.0)  # 5.8 kB/s: a millisecond is less than one segment
    conn.send(bytes(10 * MSS))
    assert [len(s.payload) for s in data_segments(conn)] == [2 * MSS, 2 * MSS]


def test_a_super_segment_carries_at_most_tso_max() -> None:
    conn = tso_connection()
    conn.send(bytes(100 * MSS))
    segments = data_segments(conn)
    per_segment = (TSO_MAX_PAYLOAD // MSS) * MSS
    assert [len(s.payload) for s in segments[:2]] == [per_segment, per_segment]
    assert all(len(s.payload) <= TSO_MAX_PAYLOAD for s in segments)


def test_the_peer_window_cuts_a_super_segment_on_an_mss_boundary() -> None:
    conn = tso_connection(window=int(4.5 * MSS))
    conn.send(bytes(10 * MSS))
    (first,) = data_segments(conn)
    # 4.5 MSS of window: 4 whole MSS now, not a half-segment runt behind them (sender
    # SWS avoidance, RFC 9293 §3.8.6.2.1, applies to the pieces the device cuts).
    assert len(first.payload) == 4 * MSS and first.gso_size == MSS


def test_the_last_super_segment_ends_the_queue_with_push_and_fin() -> None:
    conn = tso_connection(nagle=False)
    conn.send(bytes(int(3.5 * MSS)))
    conn.shutdown(0.0)
    (only,) = data_segments(conn)
    assert len(only.payload) == int(3.5 * MSS) and only.gso_size == MSS
    assert only.flags & 0x08 and only.flags & 0x01  # PSH and FIN: the device keeps them last
    pieces = _split(only)
    assert [len(p.payload) for p in pieces] == [MSS, MSS, MSS, MSS // 2]
    assert [p.seq for p in pieces] == [l(1 + k * MSS) for k in range(4)]
    assert [p.flags & 0x09 for p in pieces] == [0, 0, 0, 0x09]


def test_nagle_holds_the_runt_behind_a_super_segment_while_data_is_in_flight() -> None:
    conn = tso_connection(nagle=True)
    conn.send(bytes(MSS))
    data_segments(conn)  # one full segment in flight
    conn.send(bytes(int(2.5 * MSS)))
    (second,) = data_segments(conn)
    assert len(second.payload) == 2 * MSS  # RFC 9293 §3.7.4: the half segment waits
    send(conn, seg(r(1), l(1 + 3 * MSS), ".", window=1000), 0.01)
    (runt,) = data_segments(conn, 0.01)  # everything acknowledged: the runt may go
    assert len(runt.payload) == MSS // 2 and runt.gso_size == 0


def test_a_one_mss_cwnd_sends_single_segments() -> None:
    conn = tso_connection()
    conn.cc.cwnd = MSS
    conn.send(bytes(5 * MSS))
    segments = data_segments(conn)
    assert [len(s.payload) for s in segments] == [MSS] and segments[0].gso_size == 0


def test_retransmissions_are_single_segments() -> None:
    conn = tso_connection()
    conn.send(bytes(20 * MSS))
    data_segments(conn)
    at = conn.rto_at
    assert at is not None
    conn.on_timer(at)
    (again,) = data_segments(conn, at)
    assert again.seq == l(1) and len(again.payload) == MSS and again.gso_size == 0


def test_without_tso_nothing_changes() -> None:
    conn = established(config(), wscale=7)
    conn.cc.cwnd = 10 * MSS
    conn.snd_wnd = conn.max_snd_wnd = 1 << 20
    conn.send(bytes(30 * MSS))
    segments = data_segments(conn)
    assert len(segments) == 10 and all(len(s.payload) == MSS and not s.gso_size
                                       for s in segments)


# --- through the host and the IP layer -----------------------------------------------


def gso_cut(frame: bytes, gso_size: int) -> list[bytes]:
    """What the kernel makes of a GSO_TCPV4/V6 super-frame (tcp_gso_segment): one frame
    per ``gso_size`` bytes, headers copied, IP lengths and TCP sequence numbers fixed,
    PSH/FIN only on the last, every checksum recomputed."""
    from ethox_asyncio.stack.wire.checksum import checksum, pseudo_header

    ipv6 = frame[12:14] == b"\x86\xdd"
    l4 = 14 + (40 if ipv6 else (frame[14] & 0x0F) * 4)
    tcp_len = (frame[l4 + 12] >> 4) * 4
    header, payload = frame[:l4 + tcp_len], frame[l4 + tcp_len:]
    seq = int.from_bytes(frame[l4 + 4:l4 + 8], "big")
    ident = int.from_bytes(frame[18:20], "big")
    out = []
    for index, start in enumerate(range(0, len(payload), gso_size)):
        piece = payload[start:start + gso_size]
        last = start + gso_size >= len(payload)
        buf = bytearray(header + piece)
        if ipv6:
            buf[18:20] = (tcp_len + len(piece)).to_bytes(2, "big")
            src, dst = int.from_bytes(buf[22:38], "big"), int.from_bytes(buf[38:54], "big")
        else:
            buf[16:18] = (l4 - 14 + tcp_len + len(piece)).to_bytes(2, "big")
            buf[18:20] = ((ident + index) & 0xFFFF).to_bytes(2, "big")
            buf[24:26] = b"\0\0"
            buf[24:26] = checksum(buf[14:l4]).to_bytes(2, "big")
            src, dst = int.from_bytes(buf[26:30], "big"), int.from_bytes(buf[30:34], "big")
        buf[l4 + 4:l4 + 8] = ((seq + start) & 0xFFFFFFFF).to_bytes(4, "big")
        if not last:
            buf[l4 + 13] &= ~0x09  # FIN, PSH
        buf[l4 + 16:l4 + 18] = b"\0\0"
        length = len(buf) - l4
        buf[l4 + 16:l4 + 18] = checksum(buf[l4:], pseudo_header(src, dst, 6, length)).to_bytes(
            2, "big")
        out.append(bytes(buf))
    return out


def tso_interface(base: Interface) -> Interface:
    return Interface(InterfaceConfig(mac=base.config.mac, addresses=base.config.addresses,
                                     tcp_checksum_offload=True, tcp_tso=True))


@pytest.mark.parametrize("family", [4, 6])
def test_a_transfer_in_super_frames_arrives_intact(family: int) -> None:
    """A stack with TSO sends to one without, through a wire that cuts super-frames as
    the kernel does and completes partial checksums (as the device would): every byte
    arrives, in order, and the frames carried the virtio-net GSO header they need."""
    from tests.stack.test_interface import Wire

    wire = Wire()
    wire.a = tso_interface(wire.a)
    headers: list[VnetHeader] = []
    a_ip, b_ip = ADDRESSES[family]
    listener = wire.b.tcp.listen(family, 0, 8080, backlog=8)
    client = wire.a.tcp.connect(family, int(a_ip), 0, int(b_ip), 8080, wire.now)
    assert client.tso_max == TSO_MAX_PAYLOAD

    def carry(until: float) -> None:
        end = wire.now + until
        while wire.now <= end:
            for frame in wire.a.egress(wire.now, 64):
                device_frame = _with_vnet_header(frame, True)
                header = VnetHeader.parse(bytes(device_frame[0]))
                if isinstance(frame, tuple) and len(frame) == 3:
                    headers.append(header)
                    pieces = gso_cut(b"".join(frame[:2]), frame[2])
                else:
                    joined = frame_bytes(frame)
                    span = partial_checksum_span(joined)
                    pieces = [joined if span is None else complete_checksum(joined, span)]
                for piece in pieces:
                    wire.b.ingress(piece, wire.now)
            for frame in wire.b.egress(wire.now, 64):
                wire.a.ingress(frame_bytes(frame), wire.now)
            wire.now += 0.001

    carry(0.05)
    server = listener.accept()
    assert server is not None and client.state is TcpState.ESTABLISHED
    server.set_reading(True)
    data = bytes(range(256)) * 4000  # 1 MB
    client.send(data)
    client.shutdown(wire.now)
    wire.a.tcp.touch(client)
    got = bytearray()
    for _ in range(400):
        carry(0.01)
        got += take_data(wire.b, server)
        if len(got) == len(data):
            break
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert headers, "no super-segment was sent"
    gso_type = GSO_TCPV4 if family == 4 else GSO_TCPV6
    l4 = 14 + (20 if family == 4 else 40)
    for header in headers:
        assert header.gso_type == gso_type and header.flags == FLAG_NEEDS_CSUM
        assert header.csum_start == l4 and header.csum_offset == 16
        assert header.hdr_len == l4 + 32  # through the timestamps option
        assert header.gso_size == client.smss
    assert wire.a.stats["tcp_tso_segments"] >= len(headers)


def test_super_segments_wait_for_the_neighbour_as_segments_within_the_mtu() -> None:
    """While the next hop is being resolved the IP layer queues whole packets, which
    must fit the MTU: a super-segment is cut in software first."""
    wire, client, _ = established_wire(4, tso=True)
    wire.a.ipv4.neighbors.flush()
    client.send(bytes(5 * client.smss))  # within the neighbour queue's bound
    wire.a.tcp.touch(client)
    out = wire.a.egress(wire.now, 64)
    assert all(type(frame) is bytes for frame in out)  # the ARP request only
    assert wire.a.ipv4.neighbors.pending_total == 5
    assert not wire.a.stats["tcp_send_failed_EMSGSIZE"]
