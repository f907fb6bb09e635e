"""Retransmission (RFC 6298, Karn), congestion control (RFC 5681, RFC 6582 NewReno), zero
window and persist timer (RFC 9293 §3.8.6.1), keep-alive (§3.8.4), ICMP soft errors."""

from __future__ import annotations

import dataclasses
import errno
import itertools

import pytest

from ethox_asyncio.stack.tcp.state import TcpState

from .harness import (
    EV_CLOSED,
    check,
    config,
    established,
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

NO_TS = config(timestamps=False)


def test_rto_after_the_handshake_sample_and_exact_backoff() -> None:
    # SYN-ACK after 0.1 s: SRTT 0.1, RTTVAR 0.05, RTO = 0.1 + 4 * 0.05 = 0.3 (RFC 6298 §2.2).
    conn = established(NO_TS, rtt=0.1)
    assert conn.rtt.rto == pytest.approx(0.3)
    conn.send(b"d" * 100)
    start = 1.0
    check(recv_one(conn, start), seq=l(1), length=100)
    expected = start
    for backoff in range(6):
        expected += 0.3 * 2 ** backoff  # RFC 6298 §5.5: double, §5.6: restart
        at = conn.poll_at()
        assert at == pytest.approx(expected)
        recv_nothing(conn, at - 0.01)
        tick(conn, at)
        check(recv_one(conn, at), seq=l(1), length=100)


def test_rto_backoff_is_capped_at_rto_max() -> None:
    conn = established(config(timestamps=False, rto_max=2.0), rtt=0.1)
    conn.send(b"d")
    recv(conn, 0.0)
    times = []
    for _ in range(5):
        at = conn.poll_at()
        assert at is not None
        times.append(at)
        tick(conn, at)
        recv_one(conn, at)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [0.6, 1.2, 2.0, 2.0]


def test_new_ack_restarts_the_timer() -> None:
    conn = established(NO_TS, rtt=0.1)
    conn.send(b"e" * 2920)
    recv(conn, 1.0)
    assert conn.poll_at() == pytest.approx(1.3)
    send(conn, seg(r(1), l(1461)), 1.2)
    assert conn.poll_at() == pytest.approx(1.2 + conn.rtt.rto)  # RFC 6298 §5.3
    send(conn, seg(r(1), l(2921)), 1.25)
    assert conn.poll_at() is None  # RFC 6298 §5.2: all acknowledged


def test_retries2_exhausted_times_out() -> None:
    conn = established(config(timestamps=False, retries2=3), rtt=0.1)
    conn.send(b"t")
    recv(conn, 0.0)
    for _ in range(3):
        at = conn.poll_at()
        assert at is not None
        tick(conn, at)
        recv_one(conn, at)
    at = conn.poll_at()
    assert at is not None
    tick(conn, at)
    assert conn.state is TcpState.CLOSED
    [(kind, error)] = events_of(conn)
    assert kind == EV_CLOSED and isinstance(error, TimeoutError)
    recv_nothing(conn, at)  # Linux tcp_write_err sends nothing


def test_timeout_reports_the_soft_icmp_error() -> None:
    conn = established(config(timestamps=False, retries2=1), rtt=0.1)
    conn.send(b"t")
    recv(conn, 0.0)
    conn.on_icmp_error(OSError(errno.ENETUNREACH, "Network is unreachable"), l(1), False, 0.1)
    assert conn.state is TcpState.ESTABLISHED  # soft in synchronized states (RFC 5927)
    conn.on_icmp_error(ConnectionRefusedError(), l(1), True, 0.1)  # hard, but synchronized
    assert conn.state is TcpState.ESTABLISHED
    for _ in range(2):
        at = conn.poll_at()
        assert at is not None
        tick(conn, at)
        recv(conn, at)
    [(kind, error)] = events_of(conn)
    assert kind == EV_CLOSED and isinstance(error, ConnectionRefusedError)
    assert isinstance(error.__cause__, TimeoutError)


def test_karn_no_rtt_sample_from_a_retransmitted_segment() -> None:
    conn = established(NO_TS, rtt=0.1)
    srtt = conn.rtt.srtt
    conn.send(b"k")
    recv(conn, 1.0)
    tick(conn, 1.3)
    recv_one(conn, 1.3)
    send(conn, seg(r(1), l(2)), 1.35)
    assert conn.rtt.srtt == srtt  # ambiguous ACK: no sample
    assert conn.rtt.backoffs == 1  # the backed-off RTO stays until a valid sample
    conn.send(b"k")
    recv(conn, 2.0)
    send(conn, seg(r(1), l(3)), 2.05)
    assert conn.rtt.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.05)
    assert conn.rtt.backoffs == 0


def test_timestamps_measure_rtt_of_every_ack() -> None:
    conn = established(rtt=0.1, ts=True)
    conn.send(b"m")
    s = recv_one(conn, 1.0)
    assert s.ts_val == 1000
    tick(conn, 1.3)
    recv_one(conn, 1.3)
    send(conn, seg(r(1), l(2), ts=(1001, 1000)), 1.32)  # echoes the first transmission
    assert conn.rtt.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.32)


def test_go_back_n_after_a_timeout() -> None:
    conn = established(NO_TS, rtt=0.1)
    conn.send(b"g" * 4380)
    assert len(recv(conn, 1.0)) == 3
    tick(conn, 1.3)
    [first] = recv(conn, 1.3)  # cwnd = 1 segment (RFC 5681 §3.1 loss window)
    check(first, seq=l(1), length=1460)
    send(conn, seg(r(1), l(1461)), 1.4)
    out = recv(conn, 1.4)  # slow start again: two segments
    assert [(s.seq, len(s.payload)) for s in out] == [(l(1461), 1460), (l(2921), 1460)]


def test_ack_of_original_transmission_after_timeout_moves_on() -> None:
    conn = established(NO_TS, rtt=0.1)
    conn.send(b"h" * 4380)
    recv(conn, 1.0)
    tick(conn, 1.3)
    recv_one(conn, 1.3)
    send(conn, seg(r(1), l(4381)), 1.31)  # the originals got through after all
    assert conn.send_buffered == 0 and conn.poll_at() is None
    recv_nothing(conn, 1.31)


def ten_in_flight(prr: bool = False):  # type: ignore[no-untyped-def]
    # NewReno: these tests pin RFC 5681 / RFC 6582's numbers (CUBIC's are in
    # test_congestion.py), so the classic windows (prr=False); PRR without SACK, the
    # default, is in test_prr_without_sack.py.
    conn = established(dataclasses.replace(NO_TS, congestion_control="newreno", prr=prr),
                       rtt=0.1)
    conn.send(b"f" * 30000)
    out = recv(conn, 1.0)
    assert len(out) == 10
    return conn


def test_fast_retransmit_on_the_third_duplicate_ack() -> None:
    conn = ten_in_flight()
    for i in range(2):
        send(conn, seg(r(1), l(1)), 1.1 + i * 0.001)
        recv_nothing(conn, 1.1)
    send(conn, seg(r(1), l(1)), 1.11)
    check(recv_one(conn, 1.11), seq=l(1), length=1460)  # RFC 5681 §3.2 step 2
    # Ten segments in flight: ssthresh = FlightSize / 2 (eq. 4), cwnd = ssthresh + 3 MSS.
    assert conn.cc.ssthresh == 7300
    assert conn.cc.cwnd == 7300 + 3 * 1460
    assert conn.recovery.in_recovery


def test_dupacks_inflate_the_window_in_recovery() -> None:
    conn = ten_in_flight()
    for i in range(3):
        send(conn, seg(r(1), l(1)), 1.1 + i * 0.001)
    check(recv_one(conn, 1.1), seq=l(1))
    # cwnd = 7300 + 4380 = 11680 < 14600 in flight: new data only after more dupacks.
    sent = []
    for i in range(4):
        send(conn, seg(r(1), l(1)), 1.2 + i * 0.001)
        sent.append(len(recv(conn, 1.2)))
    assert sent == [0, 0, 1, 1]  # RFC 5681 §3.2 step 4: cwnd += SMSS per dupack


def test_newreno_partial_ack_retransmits_the_next_hole() -> None:
    conn = ten_in_flight()
    for i in range(3):
        send(conn, seg(r(1), l(1)), 1.1 + i * 0.001)
    check(recv_one(conn, 1.1), seq=l(1))
    cwnd = conn.cc.cwnd
    send(conn, seg(r(1), l(2921)), 1.2)  # partial: recover is l(14601)
    out = recv(conn, 1.2)
    check(out[0], seq=l(2921), length=1460)  # RFC 6582 §3.2 step 5
    assert conn.recovery.in_recovery
    assert conn.cc.cwnd == cwnd - 2920 + 1460
    assert conn.poll_at() == pytest.approx(1.2 + conn.rtt.rto)  # first partial ACK: restart
    send(conn, seg(r(1), l(14601)), 1.3)  # full ACK
    assert not conn.recovery.in_recovery
    assert conn.cc.cwnd <= conn.cc.ssthresh


def test_acks_with_data_or_a_window_change_are_not_duplicates() -> None:
    conn = ten_in_flight()
    send(conn, seg(r(1), l(1), "", b"x"), 1.1)
    send(conn, seg(r(2), l(1), window=60000), 1.1)
    send(conn, seg(r(2), l(1), window=50000), 1.1)
    assert conn.recovery.dupacks == 0
    assert not conn.recovery.in_recovery


def test_no_fast_retransmit_for_dupacks_of_data_before_recover() -> None:
    # RFC 6582 §3.2 step 2: after a timeout, dupacks below `recover` do not trigger.
    conn = ten_in_flight()
    tick(conn, 1.3)
    recv_one(conn, 1.3)
    for i in range(3):
        send(conn, seg(r(1), l(1)), 1.35 + i * 0.001)
    recv_nothing(conn, 1.36)
    assert not conn.recovery.in_recovery


def zero_window():  # type: ignore[no-untyped-def]
    conn = established(NO_TS, rtt=0.1)
    conn.send(b"p" * 100)
    recv(conn, 1.0)
    send(conn, seg(r(1), l(101), window=0), 1.05)
    conn.send(b"q" * 100)
    recv_nothing(conn, 1.1)
    return conn


def test_zero_window_probes_back_off() -> None:
    conn = zero_window()
    rto = conn.rtt.base_rto
    expected = 1.1
    for k in range(5):
        expected += rto * 2 ** k  # one RTO, then doubling (Linux tcp_probe0_when)
        at = conn.poll_at()
        assert at == pytest.approx(expected)
        tick(conn, at)
        # Linux's probe: SEQ = SND.UNA - 1, no data; it forces an ACK with the window.
        check(recv_one(conn, at), seq=l(100), ack=r(1), flags=".", length=0)


def test_zero_window_for_many_minutes_keeps_the_connection() -> None:
    conn = zero_window()
    probes = 0
    while True:
        at = conn.poll_at()
        assert at is not None
        if at > 1800.0:
            break
        tick(conn, at)
        out = recv(conn, at)
        probes += len(out)
        send(conn, seg(r(1), l(101), window=0), at + 0.05)  # "still closed"
    assert conn.state is TcpState.ESTABLISHED
    assert probes > 15  # more than retries2: answered probes never kill
    gaps = conn.persist_at - at  # type: ignore[operator]
    assert gaps <= 120.0 + 1e-9  # persist_max
    send(conn, seg(r(1), l(101), window=1000), 1801.0)
    check(recv_one(conn, 1801.0), seq=l(101), length=100)


def test_unanswered_zero_window_probes_time_out() -> None:
    conn = established(config(timestamps=False, retries2=3), rtt=0.1)
    conn.send(b"p")
    recv(conn, 1.0)
    send(conn, seg(r(1), l(2), window=0), 1.05)
    conn.send(b"q")
    recv(conn, 1.1)
    for _ in range(3):
        at = conn.poll_at()
        assert at is not None
        tick(conn, at)
        recv_one(conn, at)
    at = conn.poll_at()
    assert at is not None
    tick(conn, at)
    assert events_of(conn)[-1:] == [(EV_CLOSED, conn.error)]
    assert isinstance(conn.error, TimeoutError)


def test_small_window_is_probed_with_data() -> None:
    conn = established(NO_TS, rtt=0.1)
    conn.send(b"p" * 100)
    recv(conn, 1.0)
    send(conn, seg(r(1), l(101), window=300), 1.05)  # max window seen 65535
    conn.send(b"s" * 2000)
    recv_nothing(conn, 1.1)  # a 300-byte runt is silly window syndrome
    tick(conn, 1.4)
    check(recv_one(conn, 1.4), seq=l(101), length=300)  # the probe is real data
    assert conn.rto_at is not None and conn.persist_at is None


def test_window_opening_cancels_the_persist_timer() -> None:
    conn = zero_window()
    assert conn.persist_at is not None
    send(conn, seg(r(1), l(101), window=5000), 1.2)
    assert conn.persist_at is None
    check(recv_one(conn, 1.2), seq=l(101), length=100)


def test_keepalive_probes_and_timeout() -> None:
    cfg = config(timestamps=False, keepalive=True, keepalive_idle=10.0,
                 keepalive_interval=2.0, keepalive_probes=3)
    conn = established(cfg)
    assert conn.poll_at() == 10.0
    tick(conn, 10.0)
    check(recv_one(conn, 10.0), seq=l(0), ack=r(1), flags=".", length=0)  # SND.UNA - 1
    send(conn, seg(r(1), l(1)), 10.1)  # answered
    tick(conn, 12.0)
    recv_nothing(conn, 12.0)
    assert conn.poll_at() == pytest.approx(20.1)  # idle again from the last segment
    for at in (20.1, 22.1, 24.1):
        tick(conn, at)
        recv_one(conn, at)
    tick(conn, 26.1)
    check(recv_one(conn, 26.1), flags="R.")  # Linux resets a dead peer
    [(kind, error)] = events_of(conn)
    assert kind == EV_CLOSED and isinstance(error, TimeoutError)


def test_keepalive_off_by_default() -> None:
    conn = established()
    assert conn.poll_at() is None
