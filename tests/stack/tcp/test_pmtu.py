"""Path MTU discovery (RFC 1191, RFC 8201) and the black-hole fallback (RFC 4821 §7.7).

An ICMP "fragmentation needed" (IPv4, with the next hop's MTU) or "packet too big"
(IPv6) that quotes a segment in flight (RFC 5927 §4.1) lowers the MSS of every
connection to that destination, floored at 552 / 1280 bytes of MTU; what is in
flight goes again at once in the new size, cwnd and the timer untouched. A path that
drops big segments without saying so is caught after three timeouts in a row: the
MSS falls to 1024.
"""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address, IPv6Address

import pytest

from ethox_asyncio.stack.tcp.connection import TcpConnection
from ethox_asyncio.stack.tcp.host import PMTU_CACHE_MAX
from ethox_asyncio.stack.tcp.state import TcpState
from ethox_asyncio.stack.wire.icmpv4 import Icmpv4DestUnreachable
from ethox_asyncio.stack.wire.icmpv6 import Icmpv6PacketTooBig
from ethox_asyncio.stack.wire.ip import IpProtocol
from tests.stack.tcp.harness import MSS, config, established, l, r, seg, send
from tests.stack.tcp.test_host import established_wire, take_data
from tests.stack.test_answers import icmpv4_bytes, icmpv6_bytes, ip_frame, ipv4_packet, ipv6_packet
from tests.stack.test_interface import Wire

ADDRESSES = {4: (IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")),
             6: (IPv6Address("fd00::1"), IPv6Address("fd00::2"))}
FRAG_NEEDED = 4


def data_lengths(conn: TcpConnection, now: float) -> list[int]:
    return [len(s.payload) for s in conn.output(now, 1000) if len(s.payload)]


# --- the connection ------------------------------------------------------------------


def test_a_lower_path_mtu_resends_the_flight_in_the_new_size() -> None:
    conn = established(config())
    conn.send(bytes(3 * MSS))
    assert data_lengths(conn, 0.0) == [MSS] * 3
    cwnd_segments, rto_at = conn.cc.cwnd // conn.smss, conn.rto_at
    assert conn.on_path_mtu(1200 - 40, 0.01)
    assert conn.smss == 1160 and conn.stats["tcp_pmtu_lowered"] == 1
    # RFC 1191 §6.1 / Linux tcp_simple_retransmit: resent at once, not after a timeout,
    # and not taken for congestion (cwnd keeps its size in segments, no backoff).
    assert data_lengths(conn, 0.01) == [1160, 1160, 1160, 3 * MSS - 3 * 1160]
    assert conn.cc.cwnd // conn.smss == cwnd_segments and conn.rto_at == rto_at
    assert conn.rtt.backoffs == 0
    send(conn, seg(r(1), l(1 + 3 * MSS), "."), 0.02)
    assert conn.snd_una == l(1 + 3 * MSS)


def test_a_path_mtu_at_or_above_the_current_limit_changes_nothing() -> None:
    conn = established(config())
    assert not conn.on_path_mtu(MSS, 0.0)
    assert not conn.on_path_mtu(MSS + 500, 0.0)
    assert conn.smss == MSS and not conn.stats["tcp_pmtu_lowered"]


def test_three_timeouts_in_a_row_cut_segments_to_the_black_hole_mss() -> None:
    conn = established(config())
    conn.send(bytes(4 * MSS))
    data_lengths(conn, 0.0)
    now = 0.0
    for timeout in range(1, 4):
        assert conn.rto_at is not None
        now = conn.rto_at
        conn.on_timer(now)
        sizes = data_lengths(conn, now)
        if timeout < 3:
            assert sizes[0] == MSS, timeout
    # The third timeout (Linux tcp_retries1) assumes a black hole: 1024-byte segments.
    assert sizes[0] == 1024 and conn.smss == 1024
    assert conn.stats["tcp_pmtu_blackhole"] == 1


def test_full_sized_segments_are_tried_again_after_blackhole_retry() -> None:
    # RFC 4821 §7.7 / Linux tcp_probe_interval: the clamp is not for good.
    conn = established(config(blackhole_retry=600.0))
    conn.send(bytes(4 * MSS))
    data_lengths(conn, 0.0)
    now = 0.0
    for _ in range(3):
        assert conn.rto_at is not None
        now = conn.rto_at
        conn.on_timer(now)
        data_lengths(conn, now)
    clamped_at = now
    assert conn.smss == 1024
    conn.on_segment(seg(r(1), conn.snd_max), now + 0.1)  # everything arrives
    conn.send(bytes(2 * MSS))
    assert data_lengths(conn, clamped_at + 599.0)[0] == 1024
    conn.on_segment(seg(r(1), conn.snd_max), clamped_at + 599.1)
    conn.send(bytes(2 * MSS))
    assert data_lengths(conn, clamped_at + 600.0)[0] == MSS and conn.smss == MSS
    assert conn.stats["tcp_pmtu_blackhole_retried"] == 1


def test_the_black_hole_fallback_can_be_turned_off() -> None:
    conn = established(config(blackhole_mss=0))
    conn.send(bytes(4 * MSS))
    data_lengths(conn, 0.0)
    for _ in range(4):
        assert conn.rto_at is not None
        now = conn.rto_at
        conn.on_timer(now)
        assert data_lengths(conn, now)[0] == MSS


# --- ICMP through the interface -----------------------------------------------------


def too_big(wire: Wire, family: int, quoted_frame: bytes, mtu: int) -> bytes:
    """The ICMP error a router between A and B would send A about ``quoted_frame``."""
    a_ip, b_ip = ADDRESSES[family]
    packet = quoted_frame[14:]
    if family == 4:
        message = icmpv4_bytes(Icmpv4DestUnreachable(FRAG_NEEDED, packet[:28],
                                                     next_hop_mtu=mtu))
        return ip_frame(4, ipv4_packet(b_ip, a_ip, IpProtocol.ICMP, message),
                        dst_mac=wire.a.mac, src_mac=wire.b.mac)
    message = icmpv6_bytes(Icmpv6PacketTooBig(mtu, packet[:1232]), b_ip, a_ip)
    return ip_frame(6, ipv6_packet(b_ip, a_ip, IpProtocol.ICMPV6, message),
                    dst_mac=wire.a.mac, src_mac=wire.b.mac)


def is_data(frame: bytes, family: int) -> bool:
    if family == 4:
        return frame[12:14] == b"\x08\x00" and frame[23] == IpProtocol.TCP and len(frame) > 200
    return frame[12:14] == b"\x86\xdd" and frame[20] == IpProtocol.TCP and len(frame) > 200


def send_and_capture(wire: Wire, client: TcpConnection, family: int, *, drop: bool,
                     until: float) -> bytes:
    """The first data frame ``client`` sends of 3000 new bytes within ``until`` seconds;
    ``drop``: the path loses every frame meanwhile (a router that answers with ICMP)."""
    sent: list[bytes] = []

    def capture(frame: bytes) -> bytes | None:
        sent.append(frame)
        return None if drop else frame
    wire.tamper = capture
    client.send(bytes(3000))
    wire.a.tcp.touch(client)
    wire.run(until=until)
    return next(frame for frame in sent if is_data(frame, family))


@pytest.mark.parametrize(("family", "mtu", "expected_smss"), [
    (4, 1200, 1200 - 40 - 12),  # the timestamps option counts against the MSS
    (4, 300, 552 - 40 - 12),  # floored at Linux's min_pmtu
    (6, 1400, 1400 - 60 - 12),
    (6, 1000, 1280 - 60 - 12),  # RFC 8200 §5: never below 1280
])
def test_icmp_too_big_lowers_the_mss_and_the_transfer_completes(
        family: int, mtu: int, expected_smss: int) -> None:
    wire, client, server = established_wire(family)
    assert client.smss == (1448 if family == 4 else 1428)
    path_mtu = max(mtu, 552 if family == 4 else 1280)
    # The path between A and B carries at most path_mtu bytes: bigger data is dropped
    # and answered with the ICMP error, as a router would.
    errors: list[bytes] = []

    def router(frame: bytes) -> bytes | None:
        if is_data(frame, family) and len(frame) - 14 > path_mtu:
            errors.append(too_big(wire, family, frame, mtu))
            return None
        return frame
    wire.tamper = router
    data = bytes(range(256)) * 400  # 100 kB
    client.send(data)
    wire.a.tcp.touch(client)
    got = bytearray()
    for _ in range(100):
        wire.run(until=0.01)
        for error in errors:
            wire.a.ingress(error, wire.now)
        errors.clear()
        got += take_data(wire.b, server)
        if len(got) == len(data):
            break
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert client.smss == expected_smss
    assert wire.a.stats["tcp_pmtu_messages"] >= 1
    assert client.rtt.backoffs == 0, "no timeout was needed"


def test_a_forged_too_big_for_data_not_in_flight_is_ignored() -> None:
    """RFC 5927 §4.1: the quoted sequence number must be in flight."""
    wire, client, _ = established_wire(4)
    segment = send_and_capture(wire, client, 4, drop=False, until=0.05)  # all of it acknowledged
    wire.a.ingress(too_big(wire, 4, segment, 1000), wire.now)
    assert client.smss == 1448
    assert wire.a.stats["tcp_icmp_out_of_window"] == 1
    assert not wire.a.stats["tcp_pmtu_messages"]


def test_the_path_mtu_applies_to_every_connection_to_that_destination() -> None:
    wire, client, _ = established_wire(4)
    a_ip, b_ip = ADDRESSES[4]
    other = wire.a.tcp.connect(4, int(a_ip), 0, int(b_ip), 8080, wire.now)
    wire.run(until=0.05)
    assert other.state is TcpState.ESTABLISHED
    segment = send_and_capture(wire, client, 4, drop=True, until=0.005)
    wire.a.ingress(too_big(wire, 4, segment, 1000), wire.now)
    assert client.smss == other.smss == 1000 - 40 - 12


# --- the path MTU per destination: remembered, inherited, aged ----------------------


def learn_path_mtu(family: int = 4, mtu: int = 1300):  # type: ignore[no-untyped-def]
    """A's connection to B is told that the path carries ``mtu`` bytes."""
    wire, client, server = established_wire(family)
    segment = send_and_capture(wire, client, family, drop=True, until=0.005)
    wire.tamper = lambda frame: frame  # the path carries what fits again
    wire.a.ingress(too_big(wire, family, segment, mtu), wire.now)
    wire.run(until=0.05)  # the flight again in the new size
    return wire, client, server


def test_a_new_connection_to_that_destination_starts_at_the_learnt_path_mtu() -> None:
    # RFC 1191 §5 / RFC 8201 §5: the estimate belongs to the path, so a connection
    # opened to it later uses it (and advertises it, as Linux's route MTU does).
    wire, client, _ = learn_path_mtu(4, 1300)
    assert client.smss == 1300 - 40 - 12
    a_ip, b_ip = ADDRESSES[4]
    other = wire.a.tcp.connect(4, int(a_ip), 0, int(b_ip), 8080, wire.now)
    wire.run(until=0.05)
    assert other.state is TcpState.ESTABLISHED
    assert other.adv_mss == 1300 - 40 and other.smss == 1300 - 40 - 12


def test_a_connection_accepted_from_that_destination_starts_at_it() -> None:
    wire, _, _ = learn_path_mtu(4, 1300)
    a_ip, b_ip = ADDRESSES[4]
    listener = wire.a.tcp.listen(4, 0, 9090, backlog=8)
    wire.b.tcp.connect(4, int(b_ip), 0, int(a_ip), 9090, wire.now)
    wire.run(until=0.05)
    accepted = listener.accept()
    assert accepted is not None and accepted.state is TcpState.ESTABLISHED
    assert accepted.adv_mss == 1300 - 40 and accepted.smss == 1300 - 40 - 12


def test_other_destinations_keep_the_interfaces_mss() -> None:
    wire, _, _ = learn_path_mtu(4, 1300)
    a6, b6 = ADDRESSES[6]
    wire.b.tcp.listen(6, 0, 8080, backlog=8)
    other = wire.a.tcp.connect(6, int(a6), 0, int(b6), 8080, wire.now)
    wire.run(until=0.05)
    assert other.smss == 1500 - 60 - 12


def test_a_later_message_never_raises_the_estimate() -> None:
    # RFC 8201 §5.2: a too-big message cannot increase the path MTU.
    wire, client, _ = learn_path_mtu(4, 1300)
    segment = send_and_capture(wire, client, 4, drop=False, until=0.001)
    wire.a.ingress(too_big(wire, 4, segment, 1400), wire.now)
    assert client.smss == 1300 - 40 - 12
    assert wire.a.tcp._mss_limit(4, int(ADDRESSES[4][1]), wire.now) == 1300 - 40


def test_equal_messages_walk_the_connections_once() -> None:
    # Only a message that lowers the estimate looks at the connections: a flood of
    # equal ones (each accepted by the quoted connection) costs O(1) each.
    wire, client, _ = learn_path_mtu(4, 1300)

    class Counting(dict):  # type: ignore[type-arg]
        walks = 0

        def items(self):  # type: ignore[no-untyped-def, override]
            Counting.walks += 1
            return super().items()
    wire.a.tcp.connections = Counting(wire.a.tcp.connections)
    segment = send_and_capture(wire, client, 4, drop=True, until=0.001)
    for _ in range(50):
        wire.a.ingress(too_big(wire, 4, segment, 1300), wire.now)
    assert wire.a.stats["tcp_pmtu_messages"] == 51
    assert Counting.walks == 0
    wire.a.ingress(too_big(wire, 4, segment, 1200), wire.now)  # lower: one walk
    assert Counting.walks == 1 and client.smss == 1200 - 40 - 12


def test_the_estimate_expires_after_ten_minutes() -> None:
    # RFC 1191 §6.3 / RFC 8201 §4: after PMTU_EXPIRES (600 s, Linux mtu_expires) the
    # connection tries the interface's MSS again, and new connections start there.
    wire, client, server = learn_path_mtu(4, 1300)
    a_ip, b_ip = ADDRESSES[4]
    wire.now += 599.0
    wire.run(until=0.05)
    assert client.smss == 1300 - 40 - 12
    wire.now += 1.0
    client.send(bytes(5000))
    wire.a.tcp.touch(client)
    wire.run(until=0.05)
    assert client.smss == 1448 and client.stats["tcp_pmtu_raised"] == 1
    assert not wire.a.tcp._pmtu
    other = wire.a.tcp.connect(4, int(a_ip), 0, int(b_ip), 8080, wire.now)
    wire.run(until=0.05)
    assert other.smss == 1448
    take_data(wire.b, server)


def test_at_most_pmtu_cache_max_destinations_are_remembered() -> None:
    wire, _, _ = established_wire(4)
    host = wire.a.tcp
    for remote in range(PMTU_CACHE_MAX + 10):
        host._learn_path_mtu(4, 0xC6120000 + remote, 1000, 1.0)
    assert len(host._pmtu) == PMTU_CACHE_MAX
    assert (4, 0xC6120000) not in host._pmtu  # the oldest went first
    assert (4, 0xC6120000 + PMTU_CACHE_MAX + 9) in host._pmtu


def test_expiry_during_a_black_hole_clamp_waits_for_the_clamps_retry() -> None:
    conn = established(config())
    conn.send(bytes(4 * MSS))
    data_lengths(conn, 0.0)
    assert conn.on_path_mtu(1300 - 40, 0.0)
    now = 0.0
    for _ in range(3):  # three timeouts in a row: the black-hole clamp
        assert conn.rto_at is not None
        now = conn.rto_at
        conn.on_timer(now)
        data_lengths(conn, now)
    assert conn.mss_limit == 1024 and conn._blackhole_limit == 1300 - 40
    assert not conn.on_path_mtu_expired(1460, now)
    assert conn.mss_limit == 1024 and conn._blackhole_limit == 1460
