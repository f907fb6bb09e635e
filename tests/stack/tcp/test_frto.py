"""Spurious retransmission timeouts, segment by segment: Eifel detection (RFC 3522, the
timestamps echoed) and F-RTO (RFC 5682 §2.1, and §3's SACK-enhanced variant as Linux's
``tcp_process_loss`` runs it), with Linux's undo (``tcp_try_undo_loss``).

Every script: CUBIC, SACK permitted unless said, no tail loss probe (so the first timer
is the RTO: 100 ms handshake RTT, RTO 0.3 s), ten segments sent at t = 1.0 with more
data queued; at t = 1.3 the timeout retransmits segment 1 with cwnd = 1 segment
(RFC 5681 §3.1) and ssthresh = 0.7 · 10 segments. Segment numbers are 1-based.
"""

from __future__ import annotations

import dataclasses

from ethox_asyncio.stack.tcp.config import TcpConfig

from .harness import check, established, l, r, recv, seg, send, tick

RTO_AT = 1.3


def timed_out(*, ts: bool = False, sack: bool = True, **changes: object):  # type: ignore[no-untyped-def]
    cfg = dataclasses.replace(TcpConfig(), timestamps=ts, tlp=False, **changes)
    conn = established(cfg, rtt=0.1, ts=ts, sack=sack)
    conn.send(b"d" * 40 * conn.smss)
    assert [number(conn, s) for s in recv(conn, 1.0)] == list(range(1, 11))
    assert conn.poll_at() == RTO_AT
    tick(conn, RTO_AT)
    [first] = recv(conn, RTO_AT)
    check(first, seq=l(1), length=conn.smss)
    assert conn.cc.cwnd == conn.smss
    assert conn.cc.ssthresh == int(10 * conn.smss * 0.7)
    return conn


def number(conn, segment) -> int:  # type: ignore[no-untyped-def]
    return ((segment.seq - l(1)) & 0xFFFFFFFF) // conn.smss + 1


def start_of(conn, n: int) -> int:  # type: ignore[no-untyped-def]
    return l(1 + (n - 1) * conn.smss) & 0xFFFFFFFF


def ack(conn, n: int, now: float, *sacked: tuple[int, int],  # type: ignore[no-untyped-def]
        ecr: int | None = None) -> list[int]:
    """The peer ACKs up to segment ``n`` (exclusive) and SACKs ``sacked`` (first..last)."""
    blocks = tuple((start_of(conn, a), start_of(conn, b + 1)) for a, b in sacked)
    send(conn, seg(r(1), start_of(conn, n), sack=blocks,
                   ts=(2000, ecr) if ecr is not None else None), now)
    conn.sb.check(conn.snd_una, conn.snd_max)
    return [number(conn, s) for s in recv(conn, now)]


def test_eifel_an_ack_echoing_the_original_undoes_the_timeout() -> None:
    # RFC 3522 §3.2: the first ACK after the retransmission echoes TSval 1000, the
    # originals' (the retransmission carried 1300): the originals got through.
    conn = timed_out(ts=True)
    out = ack(conn, 11, 1.35, ecr=1000)
    assert conn.stats["tcp_spurious_rto_eifel"] == 1
    # cwnd and ssthresh are back (and slow start goes on from there).
    assert conn.cc.ssthresh == 2**31 - 1
    assert conn.cc.cwnd >= 10 * conn.smss
    assert conn.sb.lost_out == 0
    assert out[0] == 11  # new data: nothing is sent again


def test_eifel_needs_an_older_echo_than_the_retransmission() -> None:
    conn = timed_out(ts=True)
    ack(conn, 2, 1.35, ecr=1300)  # the retransmission's own echo: no conclusion yet
    assert not conn.stats["tcp_spurious_rto_eifel"]
    assert conn._frto == 2


def test_frto_sends_new_data_after_the_first_ack_then_undoes_on_originals() -> None:
    # RFC 5682 §2.1 step 2b: the retransmission is ACKed; two new segments go (the
    # slow-start window of 2), not segments 2 and 3. Step 3b: the next ACK covers
    # segments 2-4, never retransmitted: they arrived, the timeout was spurious.
    conn = timed_out()
    assert ack(conn, 2, 1.4) == [11, 12]
    assert conn._frto == 2
    out = ack(conn, 5, 1.5)
    assert conn.stats["tcp_spurious_rto_frto"] == 1
    assert conn.cc.ssthresh == 2**31 - 1 and conn.cc.cwnd >= 10 * conn.smss
    assert conn.sb.lost_out == 0
    assert all(n > 12 for n in out)  # still nothing sent again


def test_frto_a_sack_of_the_new_data_means_the_loss_was_real() -> None:
    # Step 3a (SACK-enhanced): the second ACK is a duplicate SACKing new segment 11.
    conn = timed_out()
    assert ack(conn, 2, 1.4) == [11, 12]
    assert ack(conn, 2, 1.5, (11, 11)) == [2]  # go-back-N in slow start resumes
    assert conn._frto == 0
    assert not conn.stats["tcp_spurious_rto_frto"]
    assert conn.cc.ssthresh == int(10 * conn.smss * 0.7)  # the reduction stays


def test_frto_without_sack_a_duplicate_ack_means_the_loss_was_real() -> None:
    conn = timed_out(sack=False)
    assert ack(conn, 2, 1.4) == [11, 12]
    assert ack(conn, 2, 1.5) == [2]  # RFC 5682 §2.1 step 3a
    assert conn._frto == 0 and not conn.stats["tcp_spurious_rto_frto"]


def test_frto_without_sack_an_ack_of_originals_undoes() -> None:
    conn = timed_out(sack=False)
    assert ack(conn, 2, 1.4) == [11, 12]
    ack(conn, 4, 1.5)  # step 3b: segments 2-3 were never retransmitted
    assert conn.stats["tcp_spurious_rto_frto"] == 1
    assert conn.sb.lost_out == 0


def test_frto_a_sack_of_originals_undoes_and_fast_recovery_takes_over() -> None:
    # Linux FLAG_ORIG_SACK_ACKED: segments 3-4, sent before the timeout and never again,
    # are SACKed: the network delivered them, so the timeout is undone; segment 1-2 is
    # a real hole left to fast recovery (RACK marks 2 lost once 1 is ACKed).
    conn = timed_out()
    ack(conn, 1, 1.35, (3, 4))
    assert conn.stats["tcp_spurious_rto_frto"] == 1
    assert conn.cc.cwnd == 10 * conn.smss
    out = ack(conn, 2, 1.4, (3, 4))
    assert out[0] == 2 and conn.recovery.in_recovery


def test_frto_a_duplicate_ack_first_reverts_to_go_back_n() -> None:
    # RFC 5682 §2.1 step 2a: the first ACK after the retransmission is a duplicate.
    conn = timed_out(sack=False)
    assert ack(conn, 1, 1.35) == []
    assert conn._frto == 0
    assert ack(conn, 2, 1.4) == [2, 3]  # slow start: cwnd 2 segments


def test_frto_with_nothing_new_to_send_reverts_to_go_back_n() -> None:
    cfg = dataclasses.replace(TcpConfig(), timestamps=False, tlp=False)
    conn = established(cfg, rtt=0.1, sack=True)
    conn.send(b"d" * 10 * conn.smss)  # exactly the ten segments: nothing queued after
    recv(conn, 1.0)
    tick(conn, RTO_AT)
    recv(conn, RTO_AT)
    assert ack(conn, 2, 1.4) == [2, 3]
    assert conn._frto == 0


def test_frto_off_is_go_back_n() -> None:
    conn = timed_out(frto=False)
    assert conn._frto == 0
    assert ack(conn, 2, 1.4) == [2, 3]
    assert ack(conn, 5, 1.5)[:3] == [5, 6, 7]  # no undo: the lost segments, in order
    assert not conn.stats["tcp_spurious_rto_frto"]
    assert conn.cc.ssthresh == int(10 * conn.smss * 0.7)


def test_a_repeated_timeout_ends_frto() -> None:
    conn = timed_out()
    assert conn._frto == 1
    at = conn.poll_at()
    assert at is not None
    tick(conn, at)  # the retransmission timed out too (RTO backed off)
    recv(conn, at)
    assert conn._frto == 0
    ack(conn, 5, at + 0.1)  # originals ACKed now: no undo after a repeated timeout
    assert not conn.stats["tcp_spurious_rto_frto"]


def test_no_frto_for_a_timeout_in_fast_recovery() -> None:
    # Linux tcp_enter_loss: F-RTO only for a timeout outside recovery.
    conn = established(dataclasses.replace(TcpConfig(), timestamps=False, tlp=False),
                       rtt=0.1, sack=True)
    conn.send(b"d" * 40 * conn.smss)
    recv(conn, 1.0)
    for last in (3, 4, 5):
        ack(conn, 1, 1.1, (2, last))
    assert conn.recovery.in_recovery
    at = conn.poll_at()
    assert at is not None
    tick(conn, at)
    recv(conn, at)
    assert conn.stats["tcp_timeouts"] == 1 and conn._frto == 0
