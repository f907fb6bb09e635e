"""SACK-based loss recovery, segment by segment: RFC 6675 (the scoreboard, pipe, IsLost),
RFC 8985 (RACK's time-based loss detection and the tail loss probe), RFC 6937 (PRR)
and RFC 2883 §5 (undo on D-SACK).

Every script opens a connection with SACK permitted (no timestamps unless said, so
Karn's rule times one segment per round trip), a 100 ms handshake RTT (SRTT 0.1 s,
RTO 0.3 s, RACK.min_RTT 0.1 s) and an MSS of 1460, sends ten segments at t = 1.0
(the initial window) and then plays the peer's ACKs. ``blk(a, b)`` is the SACK block
of our segments a..b (1-based, inclusive).
"""

from __future__ import annotations

import dataclasses

import pytest

from ethox_asyncio.stack.tcp.config import TcpConfig
from ethox_asyncio.stack.tcp.scoreboard import DUPTHRESH
from ethox_asyncio.stack.tcp.tcb import TIMER_REORDER, TIMER_RTO, TIMER_TLP

from .harness import check, established, l, r, recv, recv_nothing, recv_one, seg, send, tick

MSS = 1460


def seq_of(n: int) -> int:
    """Our sequence number at the start of segment ``n`` (1-based)."""
    return l(1 + (n - 1) * MSS)


def blk(first: int, last: int) -> tuple[int, int]:
    return (seq_of(first) & 0xFFFFFFFF, seq_of(last + 1) & 0xFFFFFFFF)


def ten_in_flight(**changes: object):  # type: ignore[no-untyped-def]
    conn = established(dataclasses.replace(TcpConfig(), **changes), sack=True, rtt=0.1)
    conn.send(b"d" * 30 * MSS)
    out = recv(conn, 1.0)
    assert [s.seq for s in out] == [seq_of(n) & 0xFFFFFFFF for n in range(1, 11)]
    return conn


def no_retransmission(conn, now: float) -> None:  # type: ignore[no-untyped-def]
    """What goes now is new data only (SACKed segments left the network: RFC 6675 pipe
    falls, so new segments may go, as RFC 3042's limited transmit would send them)."""
    high = conn.snd_max
    for segment in recv(conn, now):
        assert ((segment.seq - high) & 0xFFFFFFFF) < 0x80000000, segment


def sack_ack(conn, now: float, *blocks: tuple[int, int], ack: int = 1) -> None:  # type: ignore[no-untyped-def]
    send(conn, seg(r(1), seq_of(ack), sack=blocks), now)
    conn.sb.check(conn.snd_una, conn.snd_max)


# -- RACK: time-based loss detection (RFC 8985 §6) -----------------------------------


def test_rack_three_sacked_segments_mark_the_hole_lost_at_once() -> None:
    conn = ten_in_flight()
    sack_ack(conn, 1.1, blk(2, 2))
    sack_ack(conn, 1.1, blk(2, 3))
    no_retransmission(conn, 1.1)  # 2 SACKed (2·SMSS): RACK still allows for reordering
    assert not conn.recovery.in_recovery
    sack_ack(conn, 1.1, blk(2, 4))  # > (DupThresh - 1)·SMSS SACKed: reo_wnd = 0
    rtx = recv(conn, 1.1)[0]
    check(rtx, seq=seq_of(1), length=MSS)
    assert conn.recovery.in_recovery
    assert conn.stats["tcp_fast_retransmits"] == 1
    assert conn.cc.ssthresh == int(10 * MSS * 0.7)  # CUBIC's beta on the flight


def test_rack_one_sacked_segment_waits_a_quarter_min_rtt_then_retransmits() -> None:
    # RFC 8985 §6.2 step 4: no reordering seen, < DupThresh SACKed, not recovering:
    # reo_wnd = min_RTT / 4 = 25 ms; the hole is lost RACK.rtt + reo_wnd after it left.
    conn = ten_in_flight()
    sack_ack(conn, 1.1, blk(2, 2))
    no_retransmission(conn, 1.1)
    assert conn._timer_kind == TIMER_REORDER
    assert conn.poll_at() == pytest.approx(1.1 + 0.1 / 4)
    tick(conn, 1.124)
    recv_nothing(conn, 1.124)
    tick(conn, 1.125)
    rtx = recv(conn, 1.125)[0]
    check(rtx, seq=seq_of(1), length=MSS)
    assert conn.recovery.in_recovery
    assert conn.stats["tcp_rack_reorder_timeouts"] == 1
    assert conn._timer_kind == TIMER_RTO


def test_rack_segments_sent_after_the_delivered_one_are_not_lost() -> None:
    conn = ten_in_flight()
    sack_ack(conn, 1.1, blk(2, 4))
    recv(conn, 1.1)
    # Only segment 1 was sent before (or with) segment 4 and left no later than it...
    lost = [rec for rec in conn.sb.segments if rec.state & 2]
    assert [(rec.start, rec.end) for rec in lost] == [blk(1, 1)]
    # ...segments 5-10 were sent at the same time but after segment 4 in sequence.


def test_rack_detects_a_lost_retransmission() -> None:
    # The retransmission of segment 1 is lost too: once something sent after it is
    # SACKed (new data sent in recovery) and RACK.rtt has passed, it is lost again.
    conn = ten_in_flight()
    sack_ack(conn, 1.1, blk(2, 4))
    [rtx] = recv(conn, 1.1)
    assert rtx.seq == seq_of(1) & 0xFFFFFFFF
    for last in range(5, 11):  # the rest arrives; PRR sends new data behind it
        sack_ack(conn, 1.1 + last * 0.001, blk(2, last))
        recv(conn, 1.1 + last * 0.001)
    # A SACK for new data sent after the retransmission proves it lost.
    first_new = conn.sb.segments[10]
    assert first_new.start == seq_of(11) & 0xFFFFFFFF and first_new.sent_at > 1.1
    sack_ack(conn, 1.3, blk(2, 11))
    [again] = [s for s in recv(conn, 1.3) if s.seq == seq_of(1) & 0xFFFFFFFF]
    check(again, length=MSS)
    assert conn.stats["tcp_retransmitted_segments"] == 2


def test_reordering_seen_keeps_a_reordering_window_despite_three_sacks() -> None:
    # RFC 8985 §6.2 step 3: segment 2, never retransmitted, is SACKed after segment 3:
    # it arrived out of order. From then on three SACKed segments above a hole are no
    # longer enough: RACK waits min_RTT / 4 before calling the hole lost.
    conn = ten_in_flight()
    sack_ack(conn, 1.1, blk(3, 3))
    assert not conn.sb.reordering_seen
    sack_ack(conn, 1.101, blk(2, 3))
    assert conn.sb.reordering_seen
    sack_ack(conn, 1.102, blk(2, 5))
    no_retransmission(conn, 1.102)
    assert not conn.recovery.in_recovery
    assert conn._reo_wnd() == pytest.approx(0.1 / 4)
    assert conn._timer_kind == TIMER_REORDER


# -- RFC 6675 without RACK: the DupThresh rule -------------------------------------


def test_without_rack_islost_needs_dupthresh_sacked_segments() -> None:
    conn = ten_in_flight(rack=False, tlp=False)
    sack_ack(conn, 1.1, blk(2, 2))
    sack_ack(conn, 1.1, blk(2, 3))
    no_retransmission(conn, 1.1)
    assert conn._timer_kind == TIMER_RTO  # no reorder timer without RACK
    sack_ack(conn, 1.1, blk(2, 4))
    check(recv(conn, 1.1)[0], seq=seq_of(1), length=MSS)
    assert conn.recovery.in_recovery and DUPTHRESH == 3


def test_two_holes_are_repaired_in_one_recovery_without_a_timeout() -> None:
    # Segments 1 and 5 are lost. NewReno without SACK would need a partial ACK (one
    # round trip) per hole; with the scoreboard both go in the first round.
    conn = ten_in_flight(rack=False, tlp=False)
    sack_ack(conn, 1.1, blk(2, 2))
    sack_ack(conn, 1.1, blk(2, 3))
    sack_ack(conn, 1.1, blk(2, 4))
    sent = recv(conn, 1.1)
    assert sent[0].seq == seq_of(1) & 0xFFFFFFFF
    retransmitted = {s.seq for s in sent}
    for last in (6, 7, 8, 9, 10):
        sack_ack(conn, 1.1 + last * 0.001, blk(6, last), blk(2, 4))
        retransmitted |= {s.seq for s in recv(conn, 1.1 + last * 0.001)}
    assert seq_of(5) & 0xFFFFFFFF in retransmitted
    assert conn.stats["tcp_timeouts"] == 0 and conn.stats["tcp_fast_retransmits"] == 1
    # The full ACK (everything up to the recovery point) ends recovery at ssthresh.
    send(conn, seg(r(1), conn.recovery.recover), 1.2)
    assert not conn.recovery.in_recovery
    assert conn.cc.cwnd == conn.cc.ssthresh
    conn.sb.check(conn.snd_una, conn.snd_max)


def test_timeout_retransmits_only_what_was_not_sacked() -> None:
    # RFC 6675 §5.1: after an RTO the SACKed segments 3-4 are kept and skipped (the
    # go-back-N itself: F-RTO, which would send new data first, is off).
    conn = ten_in_flight(rack=False, tlp=False, frto=False)
    sack_ack(conn, 1.1, blk(3, 4))
    no_retransmission(conn, 1.1)  # two new segments (11, 12) for the two SACKed
    now = conn.poll_at() or 0.0
    tick(conn, now)
    [first] = recv(conn, now)  # one segment: the loss window
    check(first, seq=seq_of(1))
    sack_ack(conn, now + 0.1, blk(3, 4), ack=2)  # cwnd 2: segment 2, then 5 (3-4 skipped)
    assert [s.seq for s in recv(conn, now + 0.1)] == [seq_of(2) & 0xFFFFFFFF,
                                                       seq_of(5) & 0xFFFFFFFF]


def test_timeout_forgets_sacks_when_the_peer_reneged() -> None:
    # The cumulative ACK stops at a SACKed segment: the receiver dropped what it SACKed
    # (RFC 2018 §8), so the timeout retransmits it as well.
    conn = ten_in_flight(rack=False, tlp=False)
    sack_ack(conn, 1.1, blk(2, 3))
    send(conn, seg(r(1), seq_of(2)), 1.15)  # segment 1 acknowledged, SACK of 2-3 gone
    tick(conn, conn.poll_at() or 0.0)
    [first] = recv(conn, conn.poll_at() or 0.0)
    check(first, seq=seq_of(2))
    assert not conn.sb.sacked_out


# -- PRR (RFC 6937) -----------------------------------------------------------------


def test_prr_spreads_the_reduction_over_the_acks_of_the_round() -> None:
    # NewReno: ssthresh = 5 segments from a flight of 10 (RecoverFS). With pipe above
    # ssthresh PRR sends ssthresh/RecoverFS = one segment per two delivered.
    conn = ten_in_flight(congestion_control="newreno", rack=False, tlp=False)
    sack_ack(conn, 1.1, blk(2, 2))
    sack_ack(conn, 1.1, blk(2, 3))
    sack_ack(conn, 1.1, blk(2, 4))
    assert conn.cc.ssthresh == 5 * MSS
    [rtx] = recv(conn, 1.1)  # the fast retransmit (forced)
    check(rtx, seq=seq_of(1))
    sent = []
    for last in range(5, 11):
        sack_ack(conn, 1.2 + last * 0.001, blk(2, last))
        sent.append(len(recv(conn, 1.2 + last * 0.001)))
    # pipe falls from 7 to 2 segments while one each is delivered: sndcnt follows
    # ceil(delivered · 5/10) - out (proportional), then the slow-start bound.
    assert sum(sent) <= 5 and sum(sent) >= 3
    assert conn.prr.out == sum(sent) * MSS + MSS


def test_prr_exit_sets_cwnd_to_ssthresh() -> None:
    conn = ten_in_flight()
    sack_ack(conn, 1.1, blk(2, 4))
    recv(conn, 1.1)
    send(conn, seg(r(1), conn.recovery.recover), 1.2)
    assert not conn.recovery.in_recovery
    assert conn.cc.cwnd == conn.cc.ssthresh


# -- TLP (RFC 8985 §7) --------------------------------------------------------------


def test_tlp_probe_timeout_is_two_srtt_and_probes_the_last_segment() -> None:
    conn = established(sack=True, rtt=0.1)
    conn.send(b"t" * 2 * MSS)
    assert len(recv(conn, 1.0)) == 2
    assert conn._timer_kind == TIMER_TLP
    assert conn.poll_at() == pytest.approx(1.0 + 2 * 0.1)
    tick(conn, 1.2)
    [probe] = recv(conn, 1.2)
    check(probe, seq=l(1 + MSS), length=MSS)  # no new data: the last segment again
    assert conn.stats["tcp_tlp_probes"] == 1
    assert conn._timer_kind == TIMER_RTO and conn.poll_at() == pytest.approx(1.2 + 0.3)


def test_tlp_with_one_segment_in_flight_allows_for_a_delayed_ack() -> None:
    conn = established(sack=True, rtt=0.1)
    conn.send(b"t" * 100)
    recv(conn, 1.0)
    # 2·SRTT + the worst-case delayed ACK (200 ms), but never later than the RTO.
    assert conn.poll_at() == pytest.approx(1.0 + min(0.2 + 0.2, 0.3))


def test_tlp_sends_new_data_when_there_is_some() -> None:
    conn = ten_in_flight()  # cwnd full, 20 more segments queued
    tick(conn, conn.poll_at() or 0.0)
    [probe] = recv(conn, 1.2)
    check(probe, seq=seq_of(11), length=MSS)  # RFC 8985 §7.3: new data, beyond cwnd
    assert not conn._tlp_retrans


def test_tlp_repairing_a_loss_reduces_cwnd() -> None:
    conn = established(sack=True, rtt=0.1)
    conn.send(b"t" * 2 * MSS)
    recv(conn, 1.0)
    tick(conn, 1.2)
    recv_one(conn, 1.2)  # the probe: segment 2 again
    cwnd = conn.cc.cwnd
    send(conn, seg(r(1), l(1 + 2 * MSS)), 1.3)  # both acknowledged, no D-SACK
    conn.send(b"u" * 100)  # the episode ends with an ACK beyond the probe
    recv(conn, 1.3)
    send(conn, seg(r(1), l(1 + 2 * MSS + 100)), 1.4)
    assert conn.stats["tcp_tlp_recoveries"] == 1
    assert conn.cc.cwnd < cwnd


def test_tlp_dsack_of_the_probe_means_no_loss() -> None:
    conn = established(sack=True, rtt=0.1)
    conn.send(b"t" * 2 * MSS)
    recv(conn, 1.0)
    tick(conn, 1.2)
    recv_one(conn, 1.2)
    cwnd = conn.cc.cwnd
    # The original arrived as well: the ACK reports the probe as a duplicate.
    send(conn, seg(r(1), l(1 + 2 * MSS), sack=((l(1 + MSS), l(1 + 2 * MSS)),)), 1.3)
    assert conn._tlp_high is None
    assert conn.stats["tcp_tlp_recoveries"] == 0 and conn.cc.cwnd >= cwnd


def test_no_tlp_without_sack() -> None:
    conn = established(rtt=0.1)  # the peer did not permit SACK
    conn.send(b"t" * 2 * MSS)
    recv(conn, 1.0)
    assert conn._timer_kind == TIMER_RTO and conn.poll_at() == pytest.approx(1.3)


def test_tail_loss_is_repaired_by_the_probe_and_rack_without_a_timeout() -> None:
    # The last three of ten segments are lost. The probe (segment 10 again) is SACKed;
    # RACK then finds 8 and 9 lost (sent before it, RACK.rtt ago) and recovery repairs
    # them: no RTO.
    conn = established(sack=True, rtt=0.1)
    conn.send(b"t" * 10 * MSS)
    recv(conn, 1.0)
    send(conn, seg(r(1), seq_of(8)), 1.1)  # 1-7 arrive
    pto = conn.poll_at()
    assert pto == pytest.approx(1.1 + 2 * 0.1)  # re-armed by the ACK
    tick(conn, pto)
    [probe] = recv(conn, pto)
    check(probe, seq=seq_of(10))
    now = pto + 0.1
    sack_ack(conn, now, blk(10, 10), ack=8)
    out = recv(conn, now)
    assert [s.seq for s in out] == [seq_of(8) & 0xFFFFFFFF, seq_of(9) & 0xFFFFFFFF]
    assert conn.recovery.in_recovery
    send(conn, seg(r(1), seq_of(11)), now + 0.1)
    assert conn.send_buffered == 0 and conn.stats["tcp_timeouts"] == 0


# -- D-SACK undo (RFC 2883 §5) ------------------------------------------------------


def test_dsack_of_every_retransmission_undoes_the_reduction() -> None:
    conn = ten_in_flight()
    cwnd = conn.cc.cwnd
    sack_ack(conn, 1.1, blk(2, 4))
    recv(conn, 1.1)  # segment 1 retransmitted: it was only reordered
    assert conn.cc.cwnd < cwnd
    # The original and then the retransmission arrive: the full ACK, then a D-SACK.
    send(conn, seg(r(1), conn.recovery.recover), 1.2)
    send(conn, seg(r(1), conn.recovery.recover, sack=(blk(1, 1),)), 1.21)
    assert conn.stats["tcp_dsack_undo"] == 1
    assert conn.cc.cwnd >= cwnd


# -- the receiver's SACK blocks and a FIN held out of order -------------------------


def test_a_fin_held_out_of_order_is_sacked() -> None:
    # The peer's last data segment is lost and its bare FIN arrives: the duplicate ACK
    # SACKs the FIN, so the peer's RACK can tell the data before it is missing.
    conn = established(sack=True, rtt=0.1)
    send(conn, seg(r(101), l(1), "F"), 1.0)
    [dupack] = recv(conn, 1.0)
    check(dupack, ack=r(1), sack_blocks=((r(101) & 0xFFFFFFFF, r(102) & 0xFFFFFFFF),))


def test_a_fin_held_out_of_order_extends_the_block_of_its_data() -> None:
    conn = established(sack=True, rtt=0.1)
    send(conn, seg(r(101), l(1), "F", b"z" * 50), 1.0)
    [dupack] = recv(conn, 1.0)
    check(dupack, ack=r(1), sack_blocks=((r(101) & 0xFFFFFFFF, r(152) & 0xFFFFFFFF),))


# -- bad input ------------------------------------------------------------------------


def test_sack_blocks_cutting_the_flight_into_bytes_cannot_grow_the_scoreboard() -> None:
    # CVE-2019-11477/-11478 style: every ACK SACKs other one-byte ranges. The records
    # stay within two per MSS in flight (+16), nothing raises, and the counters hold.
    conn = ten_in_flight(tlp=False)
    now = 1.1
    most = 0
    for k in range(300):
        base = seq_of(2) + 7 * k
        blocks = tuple(((base + 3 * j) & 0xFFFFFFFF, (base + 3 * j + 1) & 0xFFFFFFFF)
                       for j in range(4))
        sack_ack(conn, now, *blocks)  # checks the scoreboard's invariants each time
        recv(conn, now)
        flight = (conn.snd_max - conn.snd_una) & 0xFFFFFFFF
        assert len(conn.sb.segments) <= 2 * (flight // MSS) + 16
        most = max(most, len(conn.sb.segments))
        now += 0.0001
    assert most > 20  # the blocks did cut records, up to the cap
    send(conn, seg(r(1), conn.snd_max), now)  # everything sent is acknowledged at last
    assert not conn.sb.segments and conn.send_buffered == 30 * MSS - (
        (conn.snd_max - seq_of(1)) & 0xFFFFFFFF)
