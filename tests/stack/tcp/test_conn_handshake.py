"""Opening a connection: RFC 9293 §3.5 / §3.10.7.2-3, options (RFC 9293 §3.7.1, RFC 7323,
RFC 2018), SYN / SYN-ACK retransmission (RFC 6298, Linux tcp_syn_retries), ICMP (RFC 5927)."""

from __future__ import annotations

import errno
from collections import deque

import pytest

from ethox_asyncio.stack.tcp.connection import EV_ACCEPT, TcpConnection
from ethox_asyncio.stack.tcp.listener import TcpListener
from ethox_asyncio.stack.tcp.state import TcpState

from .harness import (
    EV_CLOSED,
    EV_DATA,
    EV_ESTABLISHED,
    LOCAL_PORT,
    REMOTE_PORT,
    check,
    config,
    connection,
    events_of,
    l,
    r,
    recv,
    recv_nothing,
    recv_one,
    seg,
    send,
    tick,
)


def syn_sent(cfg=None, now: float = 5.0) -> TcpConnection:  # type: ignore[no-untyped-def]
    conn = connection(cfg, now=now)
    conn.open(now)
    return conn


# -- active open --------------------------------------------------------------------------

def test_syn_carries_all_our_options() -> None:
    conn = syn_sent()
    syn = recv_one(conn, 5.0)
    # Linux's SYN: mss, sackOK, TS, wscale; the SYN window is never scaled (RFC 7323 §2.2).
    check(syn, seq=l(0), flags="S", window=65535, mss=1460, wscale=7, sack_permitted=True,
          ts_val=5000, ts_ecr=0, length=0)
    assert conn.state is TcpState.SYN_SENT
    assert conn.poll_at() == 6.0  # RFC 6298 §2.1: initial RTO 1 s
    recv_nothing(conn, 5.0)


def test_syn_without_optional_options_when_disabled() -> None:
    conn = syn_sent(config(window_scaling=False, sack=False, timestamps=False, mss=1200))
    check(recv_one(conn, 5.0), flags="S", mss=1200, wscale=None, sack_permitted=False,
          ts_val=None)


def test_syn_ack_with_every_option() -> None:
    conn = syn_sent()
    recv_one(conn, 5.0)
    send(conn, seg(r(0), l(1), "S", window=65535, mss=1000, wscale=7, sack_permitted=True,
                   ts=(777, 5000)), 5.1)
    assert conn.state is TcpState.ESTABLISHED
    assert events_of(conn) == [(EV_ESTABLISHED, None)]
    # RFC 7323: now scaled by our shift 3 (262144 >> 3), TS echoes the peer's TSval.
    check(recv_one(conn, 5.1), seq=l(1), ack=r(1), flags=".", window=32768, ts_val=5100,
          ts_ecr=777)
    assert conn.rtt.srtt == pytest.approx(0.1)  # RTT from the TS echo (RFC 7323 §4)
    # Effective MSS: the peer's 1000 minus the 12 bytes of timestamps (RFC 9293 §3.7.1).
    conn.send(b"x" * 3000)
    out = recv(conn, 5.2)
    assert [len(s.payload) for s in out] == [988, 988, 988, 36]


def test_syn_ack_without_mss_means_536() -> None:
    conn = syn_sent(config(timestamps=False))
    recv_one(conn, 5.0)
    send(conn, seg(r(0), l(1), "S"), 5.1)
    recv_one(conn, 5.1)
    conn.send(b"y" * 1000)
    assert [len(s.payload) for s in recv(conn, 5.1)] == [536, 464]  # RFC 9293 §3.7.1


def test_peer_mss_above_our_mtu_is_capped() -> None:
    conn = syn_sent(config(timestamps=False))
    recv_one(conn, 5.0)
    send(conn, seg(r(0), l(1), "S", mss=9000), 5.1)
    recv_one(conn, 5.1)
    conn.send(b"z" * 2000)
    assert [len(s.payload) for s in recv(conn, 5.1)] == [1460, 540]


def test_window_scale_only_when_both_sent_it() -> None:
    conn = syn_sent()
    recv_one(conn, 5.0)
    send(conn, seg(r(0), l(1), "S", window=1000, mss=1460), 5.1)  # no wscale from the peer
    ack = recv_one(conn, 5.1)
    check(ack, window=65535)  # our window unscaled, so capped at 65535
    send(conn, seg(r(1), l(1), window=2920), 5.2)  # the peer's window is not scaled either
    conn.send(b"a" * 5000)
    assert sum(len(s.payload) for s in recv(conn, 5.2)) == 2920


def test_peer_window_scaled_after_handshake() -> None:
    conn = syn_sent(config(timestamps=False))
    recv_one(conn, 5.0)
    send(conn, seg(r(0), l(1), "S", window=65535, mss=1460, wscale=7), 5.1)
    recv_one(conn, 5.1)
    send(conn, seg(r(1), l(1), window=10), 5.2)  # 10 << 7 = 1280 bytes
    conn.send(b"b" * 20000)
    out = recv(conn, 5.2)
    # 1280 bytes of window: no full segment fits, and a runt must be at least half the
    # largest window seen (RFC 9293 §3.8.6.2.1), so nothing goes out but a probe later.
    assert out == []
    send(conn, seg(r(1), l(1), window=100), 5.3)  # 12800 bytes
    assert [len(s.payload) for s in recv(conn, 5.3)] == [1460] * 8


def test_wscale_above_14_is_clamped() -> None:
    conn = syn_sent(config(timestamps=False))
    recv_one(conn, 5.0)
    send(conn, seg(r(0), l(1), "S", window=65535, mss=1460, wscale=20), 5.1)
    assert conn.snd_wscale == 14  # RFC 7323 §2.3


@pytest.mark.parametrize("bad_ack", [l(0), l(2), l(-100)])
def test_syn_ack_with_bad_ack_is_answered_with_rst(bad_ack: int) -> None:
    conn = syn_sent()
    recv_one(conn, 5.0)
    send(conn, seg(r(0), bad_ack, "S", mss=1460), 5.1)
    # RFC 9293 §3.10.7.3 first: <SEQ=SEG.ACK><CTL=RST>; the connection stays in SYN-SENT.
    check(recv_one(conn, 5.1), seq=bad_ack, flags="R")
    assert conn.state is TcpState.SYN_SENT
    assert events_of(conn) == []


def test_rst_with_bad_ack_in_syn_sent_is_dropped() -> None:
    conn = syn_sent()
    recv_one(conn, 5.0)
    send(conn, seg(0, l(5), "R"), 5.1)
    recv_nothing(conn, 5.1)
    assert conn.state is TcpState.SYN_SENT


def test_rst_acknowledging_syn_refuses_connection() -> None:
    conn = syn_sent()
    recv_one(conn, 5.0)
    send(conn, seg(0, l(1), "R"), 5.1)
    assert conn.state is TcpState.CLOSED and conn.finished
    [(kind, error)] = events_of(conn)
    assert kind == EV_CLOSED and isinstance(error, ConnectionRefusedError)
    assert conn.error is error and error.errno == errno.ECONNREFUSED
    recv_nothing(conn, 5.1)


def test_rst_without_ack_in_syn_sent_is_ignored() -> None:
    # RFC 5961 §3 / RFC 9293 §3.10.7.3: only a RST acknowledging the SYN is acceptable.
    conn = syn_sent()
    recv_one(conn, 5.0)
    send(conn, seg(r(0), None, "R"), 5.1)
    assert conn.state is TcpState.SYN_SENT


def test_plain_ack_in_syn_sent_is_dropped() -> None:
    conn = syn_sent()
    recv_one(conn, 5.0)
    send(conn, seg(r(0), l(1), "", b"data"), 5.1)
    recv_nothing(conn, 5.1)
    assert conn.state is TcpState.SYN_SENT and events_of(conn) == []


def test_syn_retransmission_timing_and_timeout() -> None:
    # RFC 6298 §5.5 backoff from 1 s; Linux tcp_syn_retries=6: SYNs at 0,1,3,7,15,31,63 s,
    # connect() fails at 127 s.
    conn = syn_sent(now=0.0)
    recv_one(conn, 0.0)
    sent_at = []
    for expected in (1.0, 3.0, 7.0, 15.0, 31.0, 63.0):
        assert conn.poll_at() == expected
        recv_nothing(conn, expected - 0.001)
        tick(conn, expected)
        check(recv_one(conn, expected), seq=l(0), flags="S", mss=1460)
        sent_at.append(expected)
    assert conn.poll_at() == 127.0
    tick(conn, 127.0)
    assert conn.state is TcpState.CLOSED
    [(kind, error)] = events_of(conn)
    assert kind == EV_CLOSED and isinstance(error, TimeoutError)
    assert error.errno == errno.ETIMEDOUT
    recv_nothing(conn, 127.0)


def test_syn_timeout_reports_soft_icmp_error() -> None:
    conn = syn_sent(config(syn_retries=1), now=0.0)
    recv_one(conn, 0.0)
    unreachable = OSError(errno.EHOSTUNREACH, "No route to host")
    conn.on_icmp_error(unreachable, l(0), False, 0.5)  # soft (RFC 1122 §4.2.3.9)
    assert conn.state is TcpState.SYN_SENT
    tick(conn, 1.0)
    recv_one(conn, 1.0)
    tick(conn, 3.0)
    [(kind, error)] = events_of(conn)
    # Linux tcp_write_err: the soft error is what connect() reports.
    assert kind == EV_CLOSED and isinstance(error, OSError)
    assert error.errno == errno.EHOSTUNREACH
    assert isinstance(error.__cause__, TimeoutError)


def test_hard_icmp_error_in_syn_sent_fails_at_once() -> None:
    conn = syn_sent()
    recv_one(conn, 5.0)
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "port unreachable")
    conn.on_icmp_error(refused, l(0), True, 5.1)
    assert conn.state is TcpState.CLOSED
    assert events_of(conn) == [(EV_CLOSED, refused)]


def test_icmp_error_for_a_sequence_number_we_did_not_send_is_ignored() -> None:
    conn = syn_sent()
    recv_one(conn, 5.0)
    conn.on_icmp_error(ConnectionRefusedError(), l(100), True, 5.1)  # RFC 5927 §4.1
    assert conn.state is TcpState.SYN_SENT


def test_data_on_syn_ack_is_delivered() -> None:
    conn = syn_sent(config(timestamps=False))
    recv_one(conn, 5.0)
    send(conn, seg(r(0), l(1), "S", b"early", mss=1460), 5.1)
    assert events_of(conn) == [(EV_ESTABLISHED, None), (EV_DATA, b"early")]
    check(recv_one(conn, 5.1), ack=r(6), flags=".")


def test_data_queued_in_syn_sent_goes_with_the_handshake_ack() -> None:
    conn = syn_sent(config(timestamps=False))
    conn.send(b"queued")
    recv_one(conn, 5.0)
    send(conn, seg(r(0), l(1), "S", mss=1460), 5.1)
    check(recv_one(conn, 5.1), seq=l(1), ack=r(1), flags="P.", payload=b"queued")


def test_shutdown_in_syn_sent_deletes_the_connection() -> None:
    conn = syn_sent()
    recv_one(conn, 5.0)
    conn.shutdown(5.1)  # RFC 9293 §3.10.4 CLOSE in SYN-SENT
    assert conn.state is TcpState.CLOSED and conn.finished
    assert events_of(conn) == [(EV_CLOSED, None)]
    recv_nothing(conn, 5.1)


def test_simultaneous_open() -> None:
    # RFC 9293 Figure 8.
    conn = syn_sent(config(timestamps=False))
    recv_one(conn, 5.0)
    send(conn, seg(r(0), None, "S", mss=1460), 5.1)
    assert conn.state is TcpState.SYN_RECEIVED
    check(recv_one(conn, 5.1), seq=l(0), ack=r(1), flags="S.", mss=1460)
    send(conn, seg(r(0), l(1), "S", mss=1460), 5.2)  # the peer's SYN-ACK
    assert conn.state is TcpState.ESTABLISHED
    assert events_of(conn) == [(EV_ESTABLISHED, None)]
    conn.send(b"hi")
    check(recv_one(conn, 5.2), seq=l(1), ack=r(1), payload=b"hi")


def test_simultaneous_open_completed_by_plain_ack() -> None:
    conn = syn_sent(config(timestamps=False))
    recv_one(conn, 5.0)
    send(conn, seg(r(0), None, "S", mss=1460), 5.1)
    recv_one(conn, 5.1)
    send(conn, seg(r(1), l(1), "", b"data"), 5.2)
    assert conn.state is TcpState.ESTABLISHED
    assert events_of(conn) == [(EV_ESTABLISHED, None), (EV_DATA, b"data")]


def test_rst_in_simultaneous_syn_received_refuses() -> None:
    conn = syn_sent(config(timestamps=False))
    recv_one(conn, 5.0)
    send(conn, seg(r(0), None, "S", mss=1460), 5.1)
    recv_one(conn, 5.1)
    send(conn, seg(r(1), None, "R"), 5.2)
    [(kind, error)] = events_of(conn)
    assert kind == EV_CLOSED and isinstance(error, ConnectionRefusedError)


# -- passive open ------------------------------------------------------------------------

def listen(cfg=None, backlog: int = 8):  # type: ignore[no-untyped-def]
    events: deque = deque()
    listener = TcpListener(cfg or config(), local_port=LOCAL_PORT, backlog=backlog,
                           events=events, isn=lambda *args: l(0))
    return listener, events


def passive(cfg=None, now: float = 5.0, **syn_options):  # type: ignore[no-untyped-def]
    listener, _ = listen(cfg)
    options = {"mss": 1460, **syn_options}
    conn = listener.on_syn(seg(r(0), None, "S", **options), 1, 2, REMOTE_PORT, 1460, now)
    assert conn is not None
    return listener, conn


def test_syn_ack_mirrors_the_peer_options() -> None:
    _, conn = passive(mss=1400, wscale=2, sack_permitted=True, ts=(4242, 0))
    assert conn.state is TcpState.SYN_RECEIVED
    check(recv_one(conn, 5.0), seq=l(0), ack=r(1), flags="S.", window=65535, mss=1460,
          wscale=7, sack_permitted=True, ts_ecr=4242)


def test_syn_ack_omits_what_the_peer_did_not_offer() -> None:
    _, conn = passive()
    check(recv_one(conn, 5.0), flags="S.", mss=1460, wscale=None, sack_permitted=False,
          ts_val=None)


def test_final_ack_establishes_and_is_announced_by_the_listener() -> None:
    listener, conn = passive(cfg=config(timestamps=False))
    recv_one(conn, 5.0)
    send(conn, seg(r(1), l(1), "", b"hello"), 5.1)
    assert conn.state is TcpState.ESTABLISHED
    assert list(listener.events) == [(EV_ACCEPT, listener, conn)]
    listener.events.clear()
    assert listener.accept() is conn
    # Data that came before the application took the connection was held.
    assert conn.receive_held == 5
    conn.set_reading(True)
    assert events_of(conn) == [(EV_DATA, b"hello")]
    assert conn.rtt.srtt == pytest.approx(0.1)  # the SYN-ACK was timed (Karn: sent once)


def test_bad_ack_in_syn_received_is_answered_with_rst() -> None:
    _, conn = passive()
    recv_one(conn, 5.0)
    send(conn, seg(r(1), l(7)), 5.1)
    check(recv_one(conn, 5.1), seq=l(7), flags="R")  # RFC 9293: <SEQ=SEG.ACK><CTL=RST>
    assert conn.state is TcpState.SYN_RECEIVED


def test_rst_in_syn_received_forgets_the_connection_silently() -> None:
    listener, conn = passive()
    recv_one(conn, 5.0)
    assert listener.syn_queue_len == 1
    send(conn, seg(r(1), None, "R"), 5.1)
    assert conn.state is TcpState.CLOSED and conn.finished
    assert listener.syn_queue_len == 0
    assert list(listener.events) == []  # never announced, so no EV_CLOSED either


def test_rst_in_window_but_not_exact_in_syn_received_gets_challenge_ack() -> None:
    _, conn = passive()
    recv_one(conn, 5.0)
    send(conn, seg(r(100), None, "R"), 5.1)
    assert conn.state is TcpState.SYN_RECEIVED
    check(recv_one(conn, 5.1), flags="S.")


def test_retransmitted_syn_gets_the_syn_ack_again() -> None:
    _, conn = passive()
    recv_one(conn, 5.0)
    send(conn, seg(r(0), None, "S", mss=1460), 5.5)
    check(recv_one(conn, 5.5), seq=l(0), ack=r(1), flags="S.")
    send(conn, seg(r(0), None, "S", mss=1460), 5.6)  # rate limited: 500 ms
    recv_nothing(conn, 5.6)


def test_new_syn_in_syn_received_drops_the_embryonic_connection() -> None:
    listener, conn = passive()
    recv_one(conn, 5.0)
    send(conn, seg(r(5000), None, "S", mss=1460), 5.1)
    assert conn.finished and listener.syn_queue_len == 0
    recv_nothing(conn, 5.1)


def test_syn_ack_retransmission_timing() -> None:
    # Linux tcp_synack_retries=5: SYN-ACKs at 0,1,3,7,15,31 s; dropped at 63 s.
    listener, conn = passive(now=0.0)
    recv_one(conn, 0.0)
    for at in (1.0, 3.0, 7.0, 15.0, 31.0):
        assert conn.poll_at() == at
        tick(conn, at)
        check(recv_one(conn, at), seq=l(0), flags="S.")
    assert conn.poll_at() == 63.0
    tick(conn, 63.0)
    assert conn.finished and listener.syn_queue_len == 0
    assert list(listener.events) == []


def test_hard_icmp_error_drops_embryonic_connection() -> None:
    listener, conn = passive()
    recv_one(conn, 5.0)
    conn.on_icmp_error(ConnectionRefusedError(), l(0), True, 5.1)
    assert conn.finished and listener.syn_queue_len == 0


def test_syn_data_is_not_accepted() -> None:
    listener, _ = listen(config(timestamps=False))
    conn = listener.on_syn(seg(r(0), None, "S", b"tfo?", mss=1460), 1, 2, REMOTE_PORT, 1460,
                           5.0)
    assert conn is not None
    check(recv_one(conn, 5.0), ack=r(1))  # the SYN's text is not acknowledged


# -- the initial window after a lost SYN or SYN-ACK -------------------------------------


def test_two_lost_syns_leave_an_initial_window_of_one_segment() -> None:
    # RFC 5681 §3.1 (as Linux: after more than one retransmission of the SYN).
    conn = syn_sent(config(timestamps=False), now=0.0)
    recv_one(conn, 0.0)
    for at in (1.0, 3.0):
        tick(conn, at)
        recv_one(conn, at)
    send(conn, seg(r(0), l(1), "S", mss=1460), 3.1)
    recv_one(conn, 3.1)  # the ACK
    assert conn.state is TcpState.ESTABLISHED
    assert conn.cc.cwnd == conn.smss and conn.stats["tcp_syn_loss_window"] == 1
    conn.send(b"w" * 10 * conn.smss)
    assert len(recv(conn, 3.2)) == 1


def test_one_lost_syn_keeps_the_initial_window() -> None:
    conn = syn_sent(config(timestamps=False), now=0.0)
    recv_one(conn, 0.0)
    tick(conn, 1.0)
    recv_one(conn, 1.0)
    send(conn, seg(r(0), l(1), "S", mss=1460), 1.1)
    recv_one(conn, 1.1)
    assert conn.cc.cwnd == 10 * conn.smss and not conn.stats["tcp_syn_loss_window"]


def test_two_lost_syn_acks_leave_an_initial_window_of_one_segment() -> None:
    _, conn = passive(config(timestamps=False), now=0.0)
    recv_one(conn, 0.0)
    for at in (1.0, 3.0):
        tick(conn, at)
        recv_one(conn, at)
    send(conn, seg(r(1), l(1), ""), 3.1)
    assert conn.state is TcpState.ESTABLISHED
    assert conn.cc.cwnd == conn.smss
