"""Fast recovery with a peer that does not SACK, as Linux runs it (``TcpConfig.prr``, on by
default): RFC 6937 PRR sets cwnd on every ACK, with DeliveredData and pipe estimated from
duplicate ACKs (each one a segment that left the network, Linux ``tcp_add_reno_sack``;
a cumulative ACK takes back what they already counted, ``tcp_remove_reno_sacks``).

Every script: NewReno (ssthresh = FlightSize / 2, RFC 5681 eq. 4), no timestamps, no
SACK, MSS 1460, a 100 ms handshake RTT, ten segments sent at t = 1.0 (the initial
window, cwnd = 14600) with more data queued, then the peer's duplicate ACKs for a lost
first segment. Segment numbers are 1-based. The classic windows (prr=False: RFC 6582
inflation) are pinned in test_conn_retransmit.py.
"""

from __future__ import annotations

import dataclasses
import math

from ethox_asyncio.stack.tcp.config import TcpConfig

from .harness import check, established, l, r, recv, recv_nothing, seg, send, tick

MSS = 1460


def number(segment) -> int:  # type: ignore[no-untyped-def]
    """Which of our segments this is (1-based)."""
    return ((segment.seq - l(1)) & 0xFFFFFFFF) // MSS + 1


def ten_in_flight(**changes: object):  # type: ignore[no-untyped-def]
    cfg = dataclasses.replace(TcpConfig(), timestamps=False, congestion_control="newreno",
                              **changes)
    conn = established(cfg, rtt=0.1)
    conn.send(b"f" * 40 * MSS)
    assert [number(s) for s in recv(conn, 1.0)] == list(range(1, 11))
    return conn


def dupack(conn, now: float) -> list[int]:  # type: ignore[no-untyped-def]
    """One duplicate ACK (SND.UNA unchanged); the segment numbers that go out."""
    send(conn, seg(r(1), l(1)), now)
    out = [number(s) for s in recv(conn, now)]
    conn.sb.check(conn.snd_una, conn.snd_max)
    return out


def pipe(conn) -> int:  # type: ignore[no-untyped-def]
    return conn.sb.pipe((conn.snd_max - conn.snd_una) & 0xFFFFFFFF)


def in_recovery():  # type: ignore[no-untyped-def]
    """Three duplicate ACKs: segments 11 and 12 went on the first two, segment 1 on the
    third (the fast retransmit)."""
    conn = ten_in_flight()
    assert dupack(conn, 1.1) == [11]
    assert dupack(conn, 1.101) == [12]
    assert dupack(conn, 1.102) == [1]
    return conn


def test_duplicate_acks_before_recovery_let_new_data_go() -> None:
    # Each duplicate ACK says a segment left the network: pipe falls below cwnd by one
    # segment and one new segment goes (what RFC 3042 limited transmit sends, as Linux's
    # SACK emulation for non-SACK peers does).
    conn = ten_in_flight()
    assert dupack(conn, 1.1) == [11]
    assert conn.sb.dupack_out == MSS and pipe(conn) == 10 * MSS
    assert dupack(conn, 1.101) == [12]
    assert conn.sb.dupack_out == 2 * MSS and not conn.recovery.in_recovery


def test_third_duplicate_ack_enters_recovery_with_prr() -> None:
    conn = in_recovery()
    prr = conn.prr
    assert conn.recovery.in_recovery
    # RecoverFS = the twelve segments in flight; NewReno's ssthresh is half of it.
    assert prr.recover_fs == 12 * MSS
    assert conn.cc.ssthresh == 6 * MSS
    # RFC 6937 §3 on the entering ACK: pipe = 12 in flight - 3 duplicates - 1 lost = 8
    # segments > ssthresh, so sndcnt = ceil(prr_delivered · ssthresh / RecoverFS) -
    # prr_out = ceil(1460 · 8760 / 17520) - 0 = 730: cwnd = pipe + 730 (not NewReno's
    # ssthresh + 3·SMSS). The retransmission went regardless of it (RFC 5681 §3.2).
    assert conn.cc.cwnd == 8 * MSS + math.ceil(MSS * 6 * MSS / (12 * MSS))
    assert prr.delivered == MSS and prr.out == MSS


def test_prr_sends_about_one_segment_per_two_acks_then_one_per_ack() -> None:
    conn = in_recovery()
    sent = [dupack(conn, 1.2 + i * 0.001) for i in range(7)]
    # Proportional part (pipe > ssthresh): prr_out follows ceil(prr_delivered / 2):
    # delivered 2, 3, 4 segments allow 1, 2 (one new segment), 2 out. Then pipe reaches
    # ssthresh = 6 segments (slow-start reduction bound: cwnd = ssthresh): nothing on the
    # 4th dupack (pipe = 6), then one segment per duplicate ACK (pipe 5 + 1).
    assert sent == [[], [13], [], [], [14], [15], [16]]
    assert conn.cc.cwnd == conn.cc.ssthresh == 6 * MSS
    assert pipe(conn) == 6 * MSS


def test_partial_ack_counts_only_what_the_duplicates_did_not() -> None:
    conn = in_recovery()
    for i in range(7):
        dupack(conn, 1.2 + i * 0.001)
    delivered_before = conn.prr.delivered
    credit = conn.sb.dupack_out
    assert credit == 10 * MSS
    # The retransmitted segment 1 arrived and filled the first hole: the peer ACKs
    # segments 1 and 2 (segment 3 was lost too). Segment 2 was already counted by a
    # duplicate: DeliveredData is one segment (Linux tcp_remove_reno_sacks).
    send(conn, seg(r(1), l(1 + 2 * MSS)), 1.3)
    out = recv(conn, 1.3)
    conn.sb.check(conn.snd_una, conn.snd_max)
    assert conn.prr.delivered == delivered_before + MSS
    assert conn.sb.dupack_out == credit - MSS
    # RFC 6582 §3.2 step 5: the next hole (segment 3) at once; pipe = 14 in flight - 9
    # counted - 1 lost = 4 segments < ssthresh: the bound lets ssthresh - pipe = 2 go.
    assert [number(s) for s in out] == [3, 17]
    check(out[0], seq=l(1 + 2 * MSS), length=MSS)
    assert conn.cc.cwnd == 6 * MSS
    assert conn.recovery.in_recovery


def test_full_ack_sets_cwnd_to_ssthresh_and_forgets_the_duplicates() -> None:
    conn = in_recovery()
    dupack(conn, 1.2)
    send(conn, seg(r(1), conn.snd_max), 1.3)
    assert not conn.recovery.in_recovery
    assert conn.cc.cwnd == conn.cc.ssthresh == 6 * MSS  # RFC 6937 §3, on exit
    assert conn.sb.dupack_out == 0
    conn.sb.check(conn.snd_una, conn.snd_max)


def test_a_new_ack_outside_recovery_forgets_the_duplicates() -> None:
    # Reordering: two duplicates, then the late segment arrives and everything is ACKed.
    conn = ten_in_flight()
    dupack(conn, 1.1)
    dupack(conn, 1.101)
    send(conn, seg(r(1), l(1 + 5 * MSS)), 1.11)
    assert conn.sb.dupack_out == 0
    assert not conn.recovery.in_recovery
    conn.sb.check(conn.snd_una, conn.snd_max)


def test_duplicate_acks_never_count_the_hole_itself() -> None:
    # Two segments in flight; a peer (or a middlebox) repeating its duplicate ACK cannot
    # make both look delivered: one segment stays the hole (Linux tcp_limit_reno_sacked).
    cfg = dataclasses.replace(TcpConfig(), timestamps=False, congestion_control="newreno")
    conn = established(cfg, rtt=0.1)
    conn.send(b"x" * 2 * MSS)
    assert len(recv(conn, 1.0)) == 2
    for i in range(6):
        send(conn, seg(r(1), l(1)), 1.1 + i * 0.001)
        recv(conn, 1.1 + i * 0.001)
        conn.sb.check(conn.snd_una, conn.snd_max)
    assert conn.sb.dupack_out == MSS
    assert pipe(conn) >= 0


def test_a_timeout_forgets_the_duplicates() -> None:
    conn = in_recovery()
    dupack(conn, 1.2)
    tick(conn, 2.5)  # past the RTO
    assert conn.stats["tcp_timeouts"] == 1
    assert conn.sb.dupack_out == 0
    conn.sb.check(conn.snd_una, conn.snd_max)


def test_prr_off_keeps_newreno_window_inflation() -> None:
    conn = ten_in_flight(prr=False)
    for i in range(2):
        send(conn, seg(r(1), l(1)), 1.1 + i * 0.001)
        recv_nothing(conn, 1.1 + i * 0.001)  # no limited transmit in the classic model
    send(conn, seg(r(1), l(1)), 1.102)
    assert [number(s) for s in recv(conn, 1.102)] == [1]
    assert conn.cc.cwnd == 5 * MSS + 3 * MSS  # RFC 5681 §3.2 step 3: ssthresh + 3·SMSS
    assert conn.sb.dupack_out == 0


def test_prr_off_with_sack_sets_cwnd_to_ssthresh() -> None:
    # RFC 6675 §5 step (4.2): cwnd = ssthresh on entering recovery, pipe-gated after.
    cfg = dataclasses.replace(TcpConfig(), timestamps=False, prr=False)
    conn = established(cfg, sack=True, rtt=0.1)
    conn.send(b"s" * 30 * MSS)
    assert len(recv(conn, 1.0)) == 10
    for last in (2, 3, 4):
        send(conn, seg(r(1), l(1), sack=((l(1 + MSS) & 0xFFFFFFFF,
                                          l(1 + last * MSS) & 0xFFFFFFFF),)), 1.1)
        out = recv(conn, 1.1)
    assert conn.recovery.in_recovery
    assert conn.cc.cwnd == conn.cc.ssthresh == int(10 * MSS * 0.7)  # CUBIC's beta
    assert number(out[0]) == 1
    conn.sb.check(conn.snd_una, conn.snd_max)
