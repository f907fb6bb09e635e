"""Quick-ACK mode (``TcpConfig.quickack``), as Linux runs it: the first in-order data of a
connection, and the first after an idle gap longer than the RTO, is ACKed at once
(``tcp_event_data_recv`` / ``tcp_incr_quickack``: min(16, RCV.WND / (2·RCV.MSS)) ACKs),
each ACK of new data using one (``tcp_dec_quickack_mode``), except while the
connection is interactive (pingpong: it sent data within the ACK timeout of data
received, until a delayed ACK times out). Otherwise RFC 5681 §4.2's delayed ACK
(``test_conn_established.py``).

Every script: an established connection (handshake RTT 100 ms: RTO 0.3 s), no
timestamps, the peer's 100-byte segments; ``config.delayed_ack`` is 40 ms.
"""

from __future__ import annotations

import pytest

from .harness import check, config, established, l, r, recv, recv_nothing, recv_one, seg, send, tick

NO_TS = config(timestamps=False)


def data(conn, n: int, now: float, size: int = 100) -> None:  # type: ignore[no-untyped-def]
    """The peer's ``n``-th segment of ``size`` bytes (1-based)."""
    send(conn, seg(r(1 + (n - 1) * size), l(1), "P", b"d" * size), now)


def test_the_first_segment_is_acked_at_once() -> None:
    conn = established(NO_TS, rtt=0.1)
    data(conn, 1, 1.0)
    check(recv_one(conn, 1.0), ack=r(101), length=0)
    assert conn._quick == 15  # 16 (Linux TCP_MAX_QUICKACKS), one used


def test_sixteen_quick_acks_then_the_delayed_ack() -> None:
    conn = established(NO_TS, rtt=0.1)
    for n in range(1, 17):
        data(conn, n, 1.0 + n * 0.001)
        check(recv_one(conn, 1.0 + n * 0.001), ack=r(1 + n * 100))
    data(conn, 17, 1.1)
    recv_nothing(conn, 1.1)  # less than a full segment unacknowledged: delayed
    assert conn.poll_at() == pytest.approx(1.14)
    tick(conn, 1.15)
    check(recv_one(conn, 1.15), ack=r(1701))


def test_a_small_window_earns_fewer_quick_acks() -> None:
    # RCV.WND / (2·RCV.MSS): a 4000-byte buffer and 1460-byte segments give one.
    conn = established(config(timestamps=False, recv_buffer=4000), rtt=0.1)
    send(conn, seg(r(1), l(1), "", b"a" * 1000), 1.0)
    assert conn._quick == 1
    check(recv_one(conn, 1.0), ack=r(1001))
    send(conn, seg(r(1001), l(1), "", b"b" * 100), 1.01)
    recv_nothing(conn, 1.01)


def test_a_reply_makes_the_connection_interactive() -> None:
    # Linux pingpong mode: data sent within the ACK timeout of data received; the next
    # request's ACK waits to ride on the reply.
    conn = established(NO_TS, rtt=0.1)
    data(conn, 1, 1.0)
    recv_one(conn, 1.0)  # quick ACK
    conn.send(b"reply")
    recv_one(conn, 1.01)
    assert conn._pingpong
    data(conn, 2, 1.1)
    recv_nothing(conn, 1.1)
    conn.send(b"reply")
    [answer] = recv(conn, 1.11)
    check(answer, ack=r(201), payload=b"reply")  # the ACK rides on the reply


def test_a_delayed_ack_that_times_out_ends_pingpong() -> None:
    conn = established(NO_TS, rtt=0.1)
    data(conn, 1, 1.0)
    recv_one(conn, 1.0)
    conn.send(b"reply")
    recv_one(conn, 1.01)
    data(conn, 2, 1.1)  # no reply this time
    tick(conn, 1.15)
    check(recv_one(conn, 1.15), ack=r(201))
    assert not conn._pingpong
    data(conn, 3, 1.2)
    check(recv_one(conn, 1.2), ack=r(301))  # quick ACKs again (14 left)


def test_a_late_reply_does_not_make_it_interactive() -> None:
    conn = established(NO_TS, rtt=0.1)
    data(conn, 1, 1.0)
    recv_one(conn, 1.0)
    conn.send(b"later")
    recv_one(conn, 1.05)  # 50 ms > the 40 ms ACK timeout after the data
    assert not conn._pingpong


def test_an_idle_gap_longer_than_the_rto_earns_quick_acks_again() -> None:
    conn = established(config(timestamps=False, quickack=2), rtt=0.1)
    for n in (1, 2):
        data(conn, n, 1.0 + n * 0.001)
        recv_one(conn, 1.0 + n * 0.001)
    assert conn._quick == 0
    data(conn, 3, 1.1)
    recv_nothing(conn, 1.1)  # delayed: none left
    tick(conn, 1.15)
    recv_one(conn, 1.15)
    data(conn, 4, 1.5)  # 0.4 s after the last data > RTO 0.3 s
    check(recv_one(conn, 1.5), ack=r(401))


def test_quickack_off_delays_the_first_segment() -> None:
    conn = established(config(timestamps=False, quickack=0), rtt=0.1)
    data(conn, 1, 1.0)
    recv_nothing(conn, 1.0)
    assert conn.poll_at() == pytest.approx(1.04)
