"""The sender's SACK scoreboard (RFC 6675 §3-§5) and RACK loss detection (RFC 8985 §6).

Every scenario starts at ``BASE`` = 2**32 - 4096, so the records from offset 4096 on
wrap round zero: all arithmetic is checked across the wrap. ``layout`` shows the
records as (start, end, flags) in offsets from ``BASE``, flags from S(ACKED), L(OST),
R(ETRANS), E(VER_RETRANS) and F(IN); ``ok`` runs :meth:`Scoreboard.check` (contiguous
records, exact counters) against the SND.UNA and SND.MAX the test itself tracks.
"""

from __future__ import annotations

import random

import pytest

from ethox_asyncio.stack.tcp.scoreboard import (
    EVER_RETRANS,
    LOST,
    RETRANS,
    SACKED,
    Scoreboard,
    SentSegment,
)

MASK32 = 0xFFFFFFFF
BASE = 0xFFFFF000  # 4096 below 2**32
MSS = 1000


def seq(off: int) -> int:
    return (BASE + off) & MASK32


def off(s: int) -> int:
    return (s - BASE) & MASK32


def flags(rec: SentSegment) -> str:
    bits = "".join(name for bit, name in ((SACKED, "S"), (LOST, "L"), (RETRANS, "R"),
                                         (EVER_RETRANS, "E")) if rec.state & bit)
    bits += "F" if rec.fin else ""
    return bits or "-"


def layout(sb: Scoreboard) -> list[tuple[int, int, str]]:
    return [(off(r.start), off(r.end), flags(r)) for r in sb.segments]


def counts(sb: Scoreboard) -> tuple[int, int, int, int]:
    """(sacked_out, lost_out, retrans_out, lost_pending)."""
    return sb.sacked_out, sb.lost_out, sb.retrans_out, sb.lost_pending


def ok(sb: Scoreboard, una: int, snd_max: int) -> None:
    assert sb.una == seq(una)
    sb.check(seq(una), seq(snd_max))


def board(n: int, *, size: int = MSS, start: int = 0, t0: float = 1.0, dt: float = 0.001,
          fin: bool = False) -> Scoreboard:
    """``n`` records of ``size`` bytes from offset ``start``, the i-th sent at t0 + i*dt;
    ``fin``: the last one carries a FIN (one more unit of sequence space)."""
    sb = Scoreboard(seq(start))
    for i in range(n):
        last_fin = fin and i == n - 1
        lo = start + i * size
        sb.on_sent(seq(lo), seq(lo + size + last_fin), t0 + i * dt, last_fin)
    return sb


def sack(sb: Scoreboard, blocks: list[tuple[int, int]], snd_max: int, now: float) -> int:
    return sb.sack(tuple((seq(lo), seq(hi)) for lo, hi in blocks), seq(snd_max), now)


# -- on_sent / cumulative_ack --------------------------------------------------------


def test_on_sent_keeps_one_record_per_transmission_in_order_across_the_wrap() -> None:
    sb = board(6)
    assert layout(sb) == [(i * MSS, (i + 1) * MSS, "-") for i in range(6)]
    wrapped = sb.segments[4]  # 4000..5000: 2**32 lies inside it
    assert (wrapped.start, wrapped.end, wrapped.length) == (0xFFFFFFA0, 0x388, 1000)
    assert [r.sent_at for r in sb.segments] == pytest.approx([1.0 + i * 0.001 for i in range(6)])
    assert counts(sb) == (0, 0, 0, 0)
    assert sb.pipe(6000) == 6000  # RFC 6675 §4: nothing SACKed or lost, all in the pipe
    assert len(sb) == 6
    ok(sb, 0, 6000)


def test_a_fin_is_counted_in_the_record_it_ends() -> None:
    sb = board(1, start=3500, size=1000, fin=True)  # 3500..4501 FIN, across the wrap
    assert layout(sb) == [(3500, 4501, "F")]
    assert sb.segments[0].length == 1001
    ok(sb, 3500, 4501)
    # All the data but not the FIN: the FIN's unit stays, a record of its own.
    assert sb.cumulative_ack(seq(4500), 1.1) == 1000
    assert layout(sb) == [(4500, 4501, "F")]
    ok(sb, 4500, 4501)
    assert sb.cumulative_ack(seq(4501), 1.2) == 1
    assert layout(sb) == []
    assert sb.una == seq(4501)


def test_cumulative_ack_drops_the_whole_records_it_covers_and_returns_their_bytes() -> None:
    sb = board(6)
    assert sb.cumulative_ack(seq(3000), 1.1) == 3000
    assert layout(sb) == [(3000, 4000, "-"), (4000, 5000, "-"), (5000, 6000, "-")]
    ok(sb, 3000, 6000)
    assert sb.cumulative_ack(seq(6000), 1.2) == 3000  # across the wrap
    assert layout(sb) == []
    assert sb.una == seq(6000) == 0x770


def test_cumulative_ack_inside_a_record_trims_it_to_the_unacknowledged_part() -> None:
    sb = board(6)
    assert sb.cumulative_ack(seq(4500), 1.1) == 4500  # past the wrap, inside record 4
    assert layout(sb) == [(4500, 5000, "-"), (5000, 6000, "-")]
    assert sb.segments[0].sent_at == pytest.approx(1.004)  # the remainder keeps its time
    ok(sb, 4500, 6000)


def test_an_ack_at_snd_una_delivers_nothing() -> None:
    sb = board(2)
    assert sb.cumulative_ack(seq(0), 1.1) == 0
    assert layout(sb) == [(0, 1000, "-"), (1000, 2000, "-")]
    ok(sb, 0, 2000)


def test_delivered_data_does_not_count_bytes_sacked_before() -> None:
    # RFC 6937 §2: DeliveredData = change_in(snd.una) + change_in(SACKd).
    sb = board(6)
    assert sack(sb, [(1000, 2000), (3500, 4500)], 6000, 1.1) == 2000
    ok(sb, 0, 6000)
    delivered = sb.cumulative_ack(seq(5000), 1.2)
    assert delivered == 5000 - 2000  # snd.una moved 5000, SACKd fell by 2000
    assert layout(sb) == [(5000, 6000, "-")]
    assert counts(sb) == (0, 0, 0, 0)
    ok(sb, 5000, 6000)


def test_cumulative_ack_partly_into_a_sacked_record_delivers_nothing_new() -> None:
    sb = board(3)
    assert sack(sb, [(1000, 2000)], 3000, 1.1) == 1000
    assert sb.cumulative_ack(seq(1500), 1.2) == 1000  # only 0..1000 is new
    assert layout(sb) == [(1500, 2000, "S"), (2000, 3000, "-")]
    assert counts(sb) == (500, 0, 0, 0)
    ok(sb, 1500, 3000)


def test_cumulative_ack_of_lost_and_retransmitted_bytes_takes_them_off_the_counters() -> None:
    sb = board(4)
    sb.mark_all_lost(forget_sacks=False)
    rec = sb.next_lost(MSS)
    assert rec is sb.segments[0]
    sb.on_retransmit(rec, 1.5)
    assert counts(sb) == (0, 4000, 1000, 3000)
    ok(sb, 0, 4000)
    # Half of the retransmitted record: its other half stays lost and retransmitted.
    assert sb.cumulative_ack(seq(500), 1.6) == 500
    assert layout(sb)[0] == (500, 1000, "LRE")
    assert counts(sb) == (0, 3500, 500, 3000)
    ok(sb, 500, 4000)
    assert sb.cumulative_ack(seq(1500), 1.7) == 1000
    assert layout(sb) == [(1500, 2000, "L"), (2000, 3000, "L"), (3000, 4000, "L")]
    assert counts(sb) == (0, 2500, 0, 2500)
    ok(sb, 1500, 4000)


# -- sack() ----------------------------------------------------------------------------


def test_a_sack_block_inside_a_record_splits_it_at_both_edges() -> None:
    sb = board(3)
    assert sack(sb, [(1200, 1700)], 3000, 1.1) == 500
    assert layout(sb) == [(0, 1000, "-"), (1000, 1200, "-"), (1200, 1700, "S"),
                          (1700, 2000, "-"), (2000, 3000, "-")]
    # The pieces keep the time of the transmission they were cut from.
    assert [r.sent_at for r in sb.segments[1:4]] == [pytest.approx(1.001)] * 3
    assert counts(sb) == (500, 0, 0, 0)
    assert sb.pipe(3000) == 2500
    ok(sb, 0, 3000)


def test_a_sack_block_over_several_records_splits_only_the_records_at_its_edges() -> None:
    sb = board(6)
    assert sack(sb, [(1500, 4500)], 6000, 1.1) == 3000  # across the wrap
    assert layout(sb) == [(0, 1000, "-"), (1000, 1500, "-"), (1500, 2000, "S"),
                          (2000, 3000, "S"), (3000, 4000, "S"), (4000, 4500, "S"),
                          (4500, 5000, "-"), (5000, 6000, "-")]
    assert sb.sacked_out == 3000
    assert sb.pipe(6000) == 3000
    ok(sb, 0, 6000)


def test_several_blocks_in_one_ack_are_all_marked() -> None:
    sb = board(6)
    assert sack(sb, [(4000, 5000), (1000, 2000), (5500, 6000)], 6000, 1.1) == 2500
    assert layout(sb) == [(0, 1000, "-"), (1000, 2000, "S"), (2000, 3000, "-"),
                          (3000, 4000, "-"), (4000, 5000, "S"), (5000, 5500, "-"),
                          (5500, 6000, "S")]
    ok(sb, 0, 6000)


def test_sacked_bytes_are_counted_only_once() -> None:
    sb = board(4)
    assert sack(sb, [(1000, 2000)], 4000, 1.1) == 1000
    assert sack(sb, [(500, 2500)], 4000, 1.2) == 1000  # 500..1000 and 2000..2500 are new
    assert sack(sb, [(500, 2500)], 4000, 1.3) == 0  # the same again
    assert sack(sb, [(3000, 4000), (3000, 4000)], 4000, 1.4) == 1000  # twice in one ACK
    assert layout(sb) == [(0, 500, "-"), (500, 1000, "S"), (1000, 2000, "S"),
                          (2000, 2500, "S"), (2500, 3000, "-"), (3000, 4000, "S")]
    assert sb.sacked_out == 3000
    ok(sb, 0, 4000)


def test_a_block_below_snd_una_is_ignored() -> None:
    # RFC 2883 §4: a D-SACK block below the cumulative ACK reports a duplicate; it
    # says nothing about what is outstanding.
    sb = board(4)
    sb.cumulative_ack(seq(2000), 1.1)
    assert sack(sb, [(500, 1500)], 4000, 1.2) == 0
    assert sack(sb, [(1000, 2000)], 4000, 1.2) == 0  # right edge at SND.UNA
    assert layout(sb) == [(2000, 3000, "-"), (3000, 4000, "-")]
    assert sb.sacked_out == 0
    ok(sb, 2000, 4000)


def test_a_block_straddling_snd_una_counts_only_the_part_above_it() -> None:
    sb = board(6)
    sb.cumulative_ack(seq(4500), 1.1)  # SND.UNA past the wrap
    assert sack(sb, [(4000, 5500)], 6000, 1.2) == 1000  # left edge before the wrap
    assert layout(sb) == [(4500, 5000, "S"), (5000, 5500, "S"), (5500, 6000, "-")]
    assert sb.sacked_out == 1000
    ok(sb, 4500, 6000)


def test_a_block_beyond_snd_max_is_ignored() -> None:
    # A block reaching past SND.MAX is not for data we sent: the whole block is
    # rejected (Linux tcp_is_sackblock_valid), unlike one straddling SND.UNA.
    sb = board(3)
    assert sack(sb, [(3000, 4000)], 3000, 1.1) == 0
    assert sack(sb, [(2500, 3500)], 3000, 1.1) == 0
    assert sack(sb, [(2500, 3000)], 3000, 1.1) == 500  # right edge at SND.MAX is fine
    assert layout(sb) == [(0, 1000, "-"), (1000, 2000, "-"), (2000, 2500, "-"),
                          (2500, 3000, "S")]
    ok(sb, 0, 3000)


def test_empty_and_inverted_blocks_are_ignored() -> None:
    sb = board(3)
    blocks = [(1000, 1000), (2000, 1000), (2500, 500), (1500, -100)]
    assert sack(sb, blocks, 3000, 1.1) == 0
    assert layout(sb) == [(0, 1000, "-"), (1000, 2000, "-"), (2000, 3000, "-")]
    ok(sb, 0, 3000)


def test_sack_on_an_empty_scoreboard_returns_zero() -> None:
    sb = Scoreboard(seq(0))
    assert sack(sb, [(0, 1000)], 1000, 1.0) == 0
    assert counts(sb) == (0, 0, 0, 0)


def test_a_block_before_the_fin_leaves_the_fin_unit_unsacked() -> None:
    sb = board(1, fin=True)  # 0..1001 FIN
    assert sack(sb, [(500, 1000)], 1001, 1.1) == 500
    assert layout(sb) == [(0, 500, "-"), (500, 1000, "S"), (1000, 1001, "F")]
    ok(sb, 0, 1001)


def test_sacking_lost_and_retransmitted_bytes_takes_them_off_lost_and_retrans() -> None:
    sb = board(4)
    sb.mark_all_lost(forget_sacks=False)
    rec = sb.next_lost(MSS)
    assert rec is not None
    sb.on_retransmit(rec, 1.5)
    assert counts(sb) == (0, 4000, 1000, 3000)
    assert sb.pipe(4000) == 1000  # only the retransmission is in the network
    assert sack(sb, [(500, 2500)], 4000, 1.6) == 2000
    # 500..1000 was retransmitted: SACKed now, with the history bit kept.
    assert layout(sb) == [(0, 500, "LRE"), (500, 1000, "SE"), (1000, 2000, "S"),
                          (2000, 2500, "S"), (2500, 3000, "L"), (3000, 4000, "L")]
    assert counts(sb) == (2000, 2000, 500, 1500)
    assert sb.pipe(4000) == 500
    ok(sb, 0, 4000)


def test_pipe_is_flight_less_sacked_less_lost_plus_retransmitted_at_each_step() -> None:
    # RFC 6675 §4 SetPipe: an octet not SACKed counts once if not lost and once more
    # if retransmitted.
    sb = board(10)
    assert sb.pipe(10000) == 10000
    assert sack(sb, [(3000, 6000)], 10000, 1.1) == 3000
    assert sb.pipe(10000) == 7000
    assert sb.mark_lost_dupthresh(MSS) == 3000  # 0..3000: three SACKed records above
    assert sb.pipe(10000) == 4000
    for expected in (5000, 6000):
        rec = sb.next_lost(MSS)
        assert rec is not None
        sb.on_retransmit(rec, 1.2)
        assert sb.pipe(10000) == expected
    ok(sb, 0, 10000)
    assert sack(sb, [(1000, 2000)], 10000, 1.3) == 1000  # the second retransmission
    assert counts(sb) == (4000, 2000, 1000, 1000)
    assert sb.pipe(10000) == 10000 - 4000 - 2000 + 1000
    assert sb.cumulative_ack(seq(1000), 1.4) == 1000  # the first one
    assert sb.pipe(9000) == 9000 - 4000 - 1000
    assert sb.cumulative_ack(seq(6000), 1.5) == 1000  # only 2000..3000 was not SACKed
    assert counts(sb) == (0, 0, 0, 0)
    assert sb.pipe(4000) == 4000
    ok(sb, 6000, 10000)


def test_a_retransmission_of_a_segment_not_lost_counts_twice_in_pipe() -> None:
    # RFC 6675 §4 SetPipe (a) and (b); e.g. a tail loss probe (RFC 8985 §7.3).
    sb = board(3)
    sb.on_retransmit(sb.segments[2], 1.5)
    assert layout(sb)[2] == (2000, 3000, "RE")
    assert sb.segments[2].sent_at == 1.5
    assert counts(sb) == (0, 0, 1000, 0)
    assert sb.pipe(3000) == 4000
    ok(sb, 0, 3000)


# -- RACK bookkeeping (RFC 8985 §6.2 steps 2-3) ------------------------------------------


def test_rack_follows_the_most_recently_sent_segment_delivered() -> None:
    sb = board(4, dt=0.01)  # sent at 1.00, 1.01, 1.02, 1.03
    assert sb.rack_xmit == -1.0 and sb.rack_end == seq(0)
    sack(sb, [(2000, 3000)], 4000, 1.12)
    assert sb.rack_xmit == pytest.approx(1.02)
    assert sb.rack_end == seq(3000)
    assert sb.rack_rtt == pytest.approx(0.10)
    # Delivered later but sent earlier: RACK.xmit_ts, end_seq and rtt stay.
    sack(sb, [(1000, 2000)], 4000, 1.13)
    assert sb.rack_xmit == pytest.approx(1.02)
    assert sb.rack_end == seq(3000)
    assert sb.rack_rtt == pytest.approx(0.10)
    sb.cumulative_ack(seq(4000), 1.15)
    assert sb.rack_xmit == pytest.approx(1.03)
    assert sb.rack_end == seq(4000)
    assert sb.rack_rtt == pytest.approx(0.12)


def test_rack_ties_on_send_time_are_broken_by_the_end_sequence() -> None:
    # RFC 8985 §6.2 RACK_sent_after: same xmit_ts, the higher end_seq is later.
    # Records 2000..4000 and 4000..6000 (ending after the wrap) went out together.
    sb = board(3, size=2000, dt=0.0)
    sack(sb, [(4000, 6000)], 6000, 2.1)
    assert sb.rack_end == seq(6000) == 0x770
    sack(sb, [(2000, 4000)], 6000, 2.2)
    assert sb.rack_end == seq(6000)  # numerically bigger, but earlier in sequence
    assert sb.rack_rtt == pytest.approx(1.1)

    sb = board(3, size=2000, dt=0.0)
    sack(sb, [(2000, 4000)], 6000, 2.1)
    assert sb.rack_end == seq(4000)
    sack(sb, [(4000, 6000)], 6000, 2.2)
    assert sb.rack_end == seq(6000)
    assert sb.rack_xmit == 1.0
    assert sb.rack_rtt == pytest.approx(1.2)


def test_a_retransmission_delivered_sooner_than_min_rtt_is_ambiguous_and_ignored() -> None:
    # RFC 8985 §6.2 step 2 / Linux tcp_rack_advance: the original may be what arrived.
    sb = board(2)
    sb.min_rtt = 0.05
    sb.mark_head_lost()
    sb.on_retransmit(sb.segments[0], 1.2)
    assert sb.cumulative_ack(seq(1000), 1.22) == 1000  # still delivered data
    assert sb.rack_xmit == -1.0
    assert sb.rack_end == seq(0)


def test_a_retransmission_delivered_after_min_rtt_advances_rack() -> None:
    sb = board(2)
    sb.min_rtt = 0.05
    sb.mark_head_lost()
    sb.on_retransmit(sb.segments[0], 1.2)
    sb.cumulative_ack(seq(1000), 1.26)
    assert sb.rack_xmit == 1.2
    assert sb.rack_end == seq(1000)
    assert sb.rack_rtt == pytest.approx(0.06)


def test_without_a_min_rtt_sample_every_retransmission_is_ambiguous() -> None:
    sb = board(1)  # min_rtt starts at infinity: the connection sets it from samples
    sb.on_retransmit(sb.segments[0], 1.5)
    sb.cumulative_ack(seq(1000), 9.0)
    assert sb.rack_xmit == -1.0


def test_reordering_is_seen_when_an_original_is_acked_below_the_highest_sack() -> None:
    # RFC 8985 §6.2 step 3: a segment never retransmitted delivered below RACK.fack.
    sb = board(3)
    sack(sb, [(2000, 3000)], 3000, 1.1)
    assert sb.fack == seq(3000)
    assert not sb.reordering_seen
    sb.cumulative_ack(seq(2000), 1.2)
    assert sb.reordering_seen


def test_reordering_is_seen_when_a_sack_lands_below_an_earlier_sack() -> None:
    sb = board(6)
    sack(sb, [(4000, 5000)], 6000, 1.1)
    assert sb.fack == seq(5000)
    assert not sb.reordering_seen
    sack(sb, [(1000, 2000)], 6000, 1.2)
    assert sb.reordering_seen
    assert sb.fack == seq(5000)


def test_no_reordering_while_deliveries_rise_in_sequence() -> None:
    sb = board(6)
    # A partly acknowledged record counts up to its end (Linux: the skb's end_seq).
    for ack, now, fack in ((1500, 1.1, 2000), (3000, 1.2, 3000), (4500, 1.3, 5000)):
        sb.cumulative_ack(seq(ack), now)
        assert sb.fack == seq(fack)
    assert not sb.reordering_seen
    sb = board(6)
    sb.cumulative_ack(seq(1000), 1.1)
    sack(sb, [(2000, 3000)], 6000, 1.2)
    sack(sb, [(2000, 4500)], 6000, 1.3)  # the block grows: later segments arrive
    sack(sb, [(5000, 6000), (2000, 4500)], 6000, 1.4)  # newest first, the old one again
    assert sb.fack == seq(6000)
    assert not sb.reordering_seen


def test_a_partial_ack_of_a_hole_below_fack_is_reordering() -> None:
    sb = board(4)
    sack(sb, [(2000, 4000)], 4000, 1.2)
    sb.cumulative_ack(seq(500), 1.3)  # the original of 0..1000, in part, after 2000..4000
    assert sb.reordering_seen


def test_a_retransmission_delivered_below_fack_is_not_reordering() -> None:
    sb = board(4)
    sb.min_rtt = 0.05
    sack(sb, [(1000, 4000)], 4000, 1.1)
    sb.mark_head_lost()
    sb.on_retransmit(sb.segments[0], 1.1)
    sb.cumulative_ack(seq(4000), 1.2)  # the retransmission, 0.1 >= min_rtt
    assert not sb.reordering_seen
    assert sb.fack == seq(4000)
    assert sb.rack_xmit == 1.1 and sb.rack_end == seq(1000)


def test_sack_blocks_in_receiver_order_are_not_taken_for_reordering() -> None:
    # Records 1000..2000 and 4000..5000 were lost. The receiver got 2000..4000, then
    # 5000..6000; the ACK reporting only the first was lost, so this one carries
    # both, newest first (RFC 2018 §4). Nothing arrived out of order.
    sb = board(6)
    sb.cumulative_ack(seq(1000), 1.1)
    assert sack(sb, [(5000, 6000), (2000, 4000)], 6000, 1.1) == 3000
    assert sb.fack == seq(6000)
    assert not sb.reordering_seen


def test_an_ambiguous_retransmission_still_raises_fack() -> None:
    # 0..1000 and 1000..2000 sent at 0.0; a tail loss probe re-sends 1000..2000 at
    # 0.05, and a SACK for it comes at 0.06: too soon for the probe (min_rtt 0.1),
    # the original 1000..2000 arrived, ahead of 0..1000, which is acked at 0.12.
    sb = board(2, t0=0.0, dt=0.0)
    sb.min_rtt = 0.1
    sb.on_retransmit(sb.segments[1], 0.05)
    sack(sb, [(1000, 2000)], 2000, 0.06)
    assert sb.rack_xmit == -1.0  # step 2 rightly skips it
    assert sb.fack == seq(2000)
    sb.cumulative_ack(seq(1000), 0.12)
    assert sb.reordering_seen


# -- rack_detect_loss (RFC 8985 §6.2 step 5) ---------------------------------------------


def test_rack_marks_earlier_segments_lost_once_rtt_plus_reo_wnd_has_passed() -> None:
    sb = board(4)  # sent at 1.000 .. 1.003
    sack(sb, [(3000, 4000)], 4000, 1.103)  # RACK.rtt = 0.100
    assert sb.rack_rtt == pytest.approx(0.1)
    # Deadlines: sent_at + 0.100 + 0.010 = 1.110, 1.111, 1.112.
    marked, timeout = sb.rack_detect_loss(1.103, 0.01)
    assert marked == 0
    assert timeout == pytest.approx(0.009)  # the latest deadline (RFC: max of remaining)
    assert layout(sb) == [(0, 1000, "-"), (1000, 2000, "-"), (2000, 3000, "-"),
                          (3000, 4000, "S")]
    marked, timeout = sb.rack_detect_loss(1.1105, 0.01)
    assert marked == 1000
    assert timeout == pytest.approx(0.0015)
    assert [f for _, _, f in layout(sb)] == ["L", "-", "-", "S"]
    assert counts(sb) == (1000, 1000, 0, 1000)
    ok(sb, 0, 4000)
    marked, timeout = sb.rack_detect_loss(1.1125, 0.01)
    assert (marked, timeout) == (2000, 0.0)  # 0..1000 was already lost: not counted again
    assert [f for _, _, f in layout(sb)] == ["L", "L", "L", "S"]
    assert counts(sb) == (1000, 3000, 0, 3000)
    assert sb.pipe(4000) == 0
    ok(sb, 0, 4000)


def test_rack_leaves_segments_sent_after_its_segment_alone() -> None:
    sb = board(4)
    sack(sb, [(1000, 2000)], 4000, 1.101)  # RACK.segment: sent at 1.001
    assert sb.rack_detect_loss(50.0, 0.0) == (1000, 0.0)  # only 0..1000, however late
    assert [f for _, _, f in layout(sb)] == ["L", "S", "-", "-"]
    ok(sb, 0, 4000)


def test_rack_skips_sacked_and_already_lost_segments() -> None:
    sb = board(5)
    sack(sb, [(1000, 2000), (4000, 5000)], 5000, 1.2)
    assert sb.mark_head_lost()
    marked, timeout = sb.rack_detect_loss(2.0, 0.0)
    assert (marked, timeout) == (2000, 0.0)  # 2000..4000
    assert [f for _, _, f in layout(sb)] == ["L", "S", "L", "L", "S"]
    assert counts(sb) == (2000, 3000, 0, 3000)
    ok(sb, 0, 5000)


def test_rack_does_nothing_before_any_delivery() -> None:
    sb = board(3)
    assert sb.rack_detect_loss(100.0, 0.0) == (0, 0.0)
    assert counts(sb) == (0, 0, 0, 0)


def test_rack_marks_a_segment_whose_deadline_is_now_despite_float_rounding() -> None:
    # 0.1 + 0.2 + 0.1 is 0.4000000000000001: the deadline computed on the ACK at 0.4
    # that makes it due must not be missed by a rounding error.
    sb = Scoreboard(seq(0))
    sb.on_sent(seq(0), seq(1000), 0.1, False)
    sb.on_sent(seq(1000), seq(2000), 0.2, False)
    sack(sb, [(1000, 2000)], 2000, 0.4)
    assert sb.rack_rtt == 0.2
    assert sb.rack_detect_loss(0.4, 0.1) == (1000, 0.0)


def test_rack_detects_a_lost_retransmission() -> None:
    # RFC 8985 §6.2 step 5 applies to retransmissions too: one sent before a segment
    # since delivered, and not delivered within RACK.rtt + reo_wnd, is lost again.
    sb = board(3)
    sb.min_rtt = 0.05
    sack(sb, [(1000, 3000)], 3000, 1.1)
    assert sb.rack_detect_loss(1.1, 0.0) == (1000, 0.0)
    rec = sb.next_lost(MSS)
    assert rec is sb.segments[0]
    sb.on_retransmit(rec, 1.1)
    assert counts(sb) == (2000, 1000, 1000, 0)
    assert sb.pipe(3000) == 1000
    sb.on_sent(seq(3000), seq(4000), 1.15, False)
    assert sb.rack_detect_loss(1.16, 0.0) == (0, 0.0)  # sent after RACK's segment
    sack(sb, [(3000, 4000)], 4000, 1.25)  # sent after the retransmission, delivered
    assert sb.rack_xmit == 1.15
    assert sb.rack_detect_loss(1.25, 0.0) == (1000, 0.0)
    assert layout(sb)[0] == (0, 1000, "LE")  # lost again; no retransmission in flight
    assert counts(sb) == (3000, 1000, 0, 1000)
    assert sb.pipe(4000) == 0
    ok(sb, 0, 4000)
    assert sb.next_lost(MSS) is sb.segments[0]  # to be sent once more


def test_rack_waits_for_a_retransmission_sent_after_its_segment() -> None:
    sb = board(3)
    sb.min_rtt = 0.05
    sack(sb, [(1000, 3000)], 3000, 1.1)
    sb.rack_detect_loss(1.1, 0.0)
    rec = sb.next_lost(MSS)
    assert rec is not None
    sb.on_retransmit(rec, 1.2)
    assert sb.rack_detect_loss(5.0, 0.0) == (0, 0.0)
    assert layout(sb)[0] == (0, 1000, "LRE")


# -- mark_lost_dupthresh (RFC 6675 §4 IsLost) --------------------------------------------


def test_dupthresh_sacked_records_above_make_a_hole_lost() -> None:
    sb = board(5, size=100)  # 300 SACKed bytes: well under 2*SMSS
    sack(sb, [(100, 400)], 500, 1.1)
    assert sb.mark_lost_dupthresh(MSS) == 100
    assert layout(sb) == [(0, 100, "L"), (100, 200, "S"), (200, 300, "S"),
                          (300, 400, "S"), (400, 500, "-")]
    assert counts(sb) == (300, 100, 0, 100)
    ok(sb, 0, 500)


def test_two_sacked_records_and_at_most_two_smss_above_do_not_make_a_hole_lost() -> None:
    sb = board(3, size=100)
    sack(sb, [(100, 300)], 300, 1.1)
    assert sb.mark_lost_dupthresh(MSS) == 0
    sb = board(3)  # exactly 2*SMSS above: "more than" is required
    sack(sb, [(1000, 3000)], 3000, 1.1)
    assert sb.mark_lost_dupthresh(MSS) == 0
    assert counts(sb) == (2000, 0, 0, 0)


def test_more_than_two_smss_sacked_bytes_above_make_a_hole_lost() -> None:
    sb = Scoreboard(seq(0))
    sb.on_sent(seq(0), seq(1000), 1.0, False)
    sb.on_sent(seq(1000), seq(3001), 1.0, False)  # one TSO record of 2001 bytes
    sack(sb, [(1000, 3001)], 3001, 1.1)
    assert sb.mark_lost_dupthresh(MSS) == 1000
    assert layout(sb) == [(0, 1000, "L"), (1000, 3001, "S")]
    sb = Scoreboard(seq(0))
    for lo, hi in ((0, 1000), (1000, 2000), (2000, 3001)):
        sb.on_sent(seq(lo), seq(hi), 1.0, False)
    sack(sb, [(1000, 3001)], 3001, 1.1)  # two records, 2001 bytes
    assert sb.mark_lost_dupthresh(MSS) == 1000
    ok(sb, 0, 3001)


def test_dupthresh_counts_only_the_sacks_above_each_hole() -> None:
    sb = board(6)  # holes at 0, 2000 and 5000
    sack(sb, [(1000, 2000), (3000, 4000), (4000, 5000)], 6000, 1.1)
    # 0..1000: three SACKed records above; 2000..3000: two (2000 bytes); 5000..: none.
    assert sb.mark_lost_dupthresh(MSS) == 1000
    assert [f for _, _, f in layout(sb)] == ["L", "S", "-", "S", "S", "-"]
    sack(sb, [(5000, 6000)], 6000, 1.2)
    assert sb.mark_lost_dupthresh(MSS) == 1000  # 2000..3000 now; 0..1000 not again
    assert [f for _, _, f in layout(sb)] == ["L", "S", "L", "S", "S", "S"]
    assert counts(sb) == (4000, 2000, 0, 2000)
    ok(sb, 0, 6000)


def test_dupthresh_does_not_mark_a_retransmission_lost_again() -> None:
    sb = board(4)
    sack(sb, [(1000, 4000)], 4000, 1.1)
    assert sb.mark_lost_dupthresh(MSS) == 1000
    rec = sb.next_lost(MSS)
    assert rec is not None
    sb.on_retransmit(rec, 1.2)
    assert sb.mark_lost_dupthresh(MSS) == 0
    assert layout(sb)[0] == (0, 1000, "LRE")
    assert counts(sb) == (3000, 1000, 1000, 0)


# -- mark_head_lost / mark_all_lost ------------------------------------------------------


def test_mark_head_lost_marks_the_first_unsacked_record_once() -> None:
    # RFC 5681 §3.2 / RFC 6582 §3.2: three duplicate ACKs or a partial ACK.
    sb = board(3)
    assert sb.mark_head_lost()
    assert [f for _, _, f in layout(sb)] == ["L", "-", "-"]
    assert not sb.mark_head_lost()  # lost already, retransmission pending
    assert counts(sb) == (0, 1000, 0, 1000)
    sb.on_retransmit(sb.segments[0], 1.5)
    assert sb.mark_head_lost()  # the retransmission is lost too
    assert layout(sb)[0] == (0, 1000, "LE")
    assert counts(sb) == (0, 1000, 0, 1000)
    ok(sb, 0, 3000)


def test_mark_head_lost_skips_sacked_records() -> None:
    sb = board(3)
    sack(sb, [(0, 1000)], 3000, 1.1)
    assert sb.mark_head_lost()
    assert [f for _, _, f in layout(sb)] == ["S", "L", "-"]
    sack(sb, [(1000, 3000)], 3000, 1.2)
    assert not sb.mark_head_lost()  # everything SACKed
    assert not Scoreboard(seq(0)).mark_head_lost()


def test_a_timeout_marks_everything_not_sacked_lost_retransmissions_included() -> None:
    # RFC 6675 §5.1 / RFC 8985 §6.3: after an RTO nothing un-SACKed is in the pipe.
    sb = board(5)
    sack(sb, [(1000, 2000), (3000, 4000)], 5000, 1.1)
    sb.mark_head_lost()
    sb.on_retransmit(sb.segments[0], 1.2)
    sb.mark_all_lost(forget_sacks=False)
    assert [f for _, _, f in layout(sb)] == ["LE", "S", "L", "S", "L"]
    assert counts(sb) == (2000, 3000, 0, 3000)
    assert sb.pipe(5000) == 0
    ok(sb, 0, 5000)


def test_a_timeout_forgetting_sacks_marks_everything_lost() -> None:
    # RFC 2018 §8: the receiver may have discarded what it SACKed.
    sb = board(5)
    sack(sb, [(1000, 2000), (3000, 4000)], 5000, 1.1)
    sb.mark_all_lost(forget_sacks=True)
    assert [f for _, _, f in layout(sb)] == ["L"] * 5
    assert counts(sb) == (0, 5000, 0, 5000)
    assert sb.pipe(5000) == 0
    ok(sb, 0, 5000)
    assert sb.cumulative_ack(seq(5000), 2.0) == 5000  # no longer SACKed: delivered now


# -- next_lost / on_retransmit (RFC 6675 §4 NextSeg rule 1) -------------------------------


def test_next_lost_is_none_without_a_pending_loss() -> None:
    sb = board(3)
    assert sb.next_lost(MSS) is None
    sack(sb, [(1000, 2000)], 3000, 1.1)
    assert sb.next_lost(MSS) is None
    assert Scoreboard(seq(0)).next_lost(MSS) is None


def test_next_lost_is_the_first_lost_unsacked_record_not_yet_retransmitted() -> None:
    sb = board(4)
    sb.mark_all_lost(forget_sacks=False)
    sack(sb, [(1000, 2000)], 4000, 1.1)
    rec = sb.next_lost(MSS)
    assert rec is sb.segments[0]
    sb.on_retransmit(rec, 2.0)
    rec = sb.next_lost(MSS)
    assert rec is sb.segments[2]  # past the SACKed one and the retransmitted one
    assert (off(rec.start), off(rec.end)) == (2000, 3000)


def test_next_lost_cuts_a_large_record_to_the_limit() -> None:
    sb = Scoreboard(seq(3500))
    sb.on_sent(seq(3500), seq(6500), 1.0, False)  # one TSO record across the wrap
    sb.mark_head_lost()
    rec = sb.next_lost(MSS)
    assert rec is sb.segments[0]
    assert layout(sb) == [(3500, 4500, "L"), (4500, 6500, "L")]
    assert counts(sb) == (0, 3000, 0, 3000)  # a cut changes no counter
    ok(sb, 3500, 6500)


def test_next_lost_does_not_count_the_fin_in_the_limit() -> None:
    sb = board(1, fin=True)  # 1000 bytes and the FIN
    sb.mark_head_lost()
    rec = sb.next_lost(MSS)
    assert rec is sb.segments[0]
    assert layout(sb) == [(0, 1001, "LF")]


def test_next_lost_cuts_before_the_fin_when_the_data_exceeds_the_limit() -> None:
    sb = board(1, size=1500, fin=True)
    sb.mark_head_lost()
    rec = sb.next_lost(MSS)
    assert rec is sb.segments[0]
    assert layout(sb) == [(0, 1000, "L"), (1000, 1501, "LF")]
    ok(sb, 0, 1501)


def test_next_lost_merges_the_lost_records_behind_it_up_to_the_limit() -> None:
    # Linux tcp_retrans_try_collapse: small lost segments go again as full ones.
    sb = board(5, size=300, start=3500)  # 3500..5000, across the wrap
    sb.mark_all_lost(forget_sacks=False)
    rec = sb.next_lost(MSS)
    assert rec is sb.segments[0]
    assert layout(sb) == [(3500, 4500, "L"), (4500, 4700, "L"), (4700, 5000, "L")]
    assert rec.sent_at == 1.0
    assert counts(sb) == (0, 1500, 0, 1500)
    ok(sb, 3500, 5000)


def test_next_lost_merges_a_lost_fin_record_behind_it() -> None:
    sb = Scoreboard(seq(0))
    sb.on_sent(seq(0), seq(300), 1.0, False)
    sb.on_sent(seq(300), seq(601), 1.1, True)
    sb.mark_all_lost(forget_sacks=False)
    rec = sb.next_lost(MSS)
    assert rec is sb.segments[0]
    assert layout(sb) == [(0, 601, "LF")]
    ok(sb, 0, 601)


def test_a_fin_alone_behind_a_full_segment_waits_for_the_next_retransmission() -> None:
    # As Linux: a record is only filled from the next while it is shorter than the MSS.
    sb = Scoreboard(seq(0))
    sb.on_sent(seq(0), seq(1000), 1.0, False)
    sb.on_sent(seq(1000), seq(1001), 1.0, True)
    sb.mark_all_lost(forget_sacks=False)
    rec = sb.next_lost(MSS)
    assert rec is sb.segments[0]
    assert layout(sb) == [(0, 1000, "L"), (1000, 1001, "LF")]
    sb.on_retransmit(rec, 2.0)
    assert sb.next_lost(MSS) is sb.segments[1]


def test_next_lost_does_not_merge_across_a_sacked_retransmitted_or_unlost_record() -> None:
    sb = board(4, size=300)
    sb.mark_all_lost(forget_sacks=False)
    sack(sb, [(300, 600)], 1200, 1.1)
    rec = sb.next_lost(MSS)
    assert rec is not None
    assert (off(rec.start), off(rec.end)) == (0, 300)  # not past the SACKed record
    sb.on_retransmit(rec, 1.2)
    rec = sb.next_lost(MSS)
    assert rec is not None
    assert (off(rec.start), off(rec.end)) == (600, 1200)  # these two do merge
    ok(sb, 0, 1200)

    sb = board(3, size=300)
    sb.mark_all_lost(forget_sacks=False)
    sb.on_retransmit(sb.segments[1], 1.2)
    rec = sb.next_lost(MSS)
    assert rec is not None
    assert (off(rec.start), off(rec.end)) == (0, 300)  # not past the retransmitted one

    sb = board(3, size=300)
    sack(sb, [(600, 900)], 900, 1.1)
    sb.mark_head_lost()  # 0..300 lost, 300..600 not
    rec = sb.next_lost(MSS)
    assert rec is not None
    assert (off(rec.start), off(rec.end)) == (0, 300)
    ok(sb, 0, 900)


def test_on_retransmit_marks_the_record_and_moves_it_from_pending_to_retransmitted() -> None:
    sb = board(2)
    sb.mark_all_lost(forget_sacks=False)
    assert counts(sb) == (0, 2000, 0, 2000)
    assert sb.pipe(2000) == 0
    rec = sb.next_lost(MSS)
    assert rec is not None
    sb.on_retransmit(rec, 3.25)
    assert layout(sb) == [(0, 1000, "LRE"), (1000, 2000, "L")]
    assert rec.sent_at == 3.25  # RACK's xmit_ts is the last transmission's
    assert counts(sb) == (0, 2000, 1000, 1000)
    assert sb.pipe(2000) == 1000
    ok(sb, 0, 2000)


def test_retransmitting_until_nothing_is_pending_visits_every_hole_once() -> None:
    sb = board(6)
    sack(sb, [(1000, 2000), (3000, 4000), (5000, 6000)], 6000, 1.1)
    sb.mark_all_lost(forget_sacks=False)
    seen = []
    while (rec := sb.next_lost(MSS)) is not None:
        seen.append((off(rec.start), off(rec.end)))
        sb.on_retransmit(rec, 1.2)
        ok(sb, 0, 6000)
        assert len(seen) <= 3
    assert seen == [(0, 1000), (2000, 3000), (4000, 5000)]
    assert counts(sb) == (3000, 3000, 3000, 0)
    assert sb.pipe(6000) == 3000


# -- a seeded random walk against a per-unit reference model ------------------------------


class Model:
    """The scoreboard's state one sequence unit at a time (offsets from BASE)."""

    def __init__(self) -> None:
        self.una = 0
        self.max = 0
        self.fin_at: int | None = None
        self.state: list[int] = []
        self.sent_at: list[float] = []

    def flight(self) -> int:
        return self.max - self.una

    def counters(self) -> tuple[int, int, int, int]:
        c = [0, 0, 0, 0]
        for u in range(self.una, self.max):
            st = self.state[u]
            c[0] += bool(st & SACKED)
            c[1] += bool(st & LOST)
            c[2] += bool(st & RETRANS)
            c[3] += st & (LOST | RETRANS) == LOST
        return c[0], c[1], c[2], c[3]

    def pipe(self) -> int:
        return sum(0 if st & SACKED else 1 - bool(st & LOST) + bool(st & RETRANS)
                   for st in self.state[self.una:self.max])


def records(sb: Scoreboard) -> list[tuple[int, int, SentSegment]]:
    """(start offset, end offset, record): offsets unwrapped (the walk stays < 2**31)."""
    return [(off(r.start), off(r.start) + r.length, r) for r in sb.segments]


def compare(sb: Scoreboard, m: Model) -> None:
    sb.check(seq(m.una), seq(m.max))
    assert sb.una == seq(m.una)
    at = m.una
    for lo, hi, rec in records(sb):
        assert lo == at
        for u in range(lo, hi):
            assert m.state[u] == rec.state, (u, rec, m.state[u])
            assert m.sent_at[u] == rec.sent_at, (u, rec)
        assert rec.fin == (m.fin_at is not None and hi == m.fin_at + 1)
        at = hi
    assert at == m.max
    assert counts(sb) == m.counters()
    assert sb.pipe(m.flight()) == m.pipe()


def mark(m: Model, lo: int, hi: int, state: int) -> None:
    for u in range(lo, hi):
        m.state[u] = state | (m.state[u] & EVER_RETRANS)


def random_walk(seed: int, steps: int) -> int:
    """``steps`` random operations, each checked against the model; the end offset.

    Byte-level rules (SACK, cumulative ACK, counters, pipe, timeouts, next_lost's
    range) come from the model alone; the rules stated per record (IsLost's count
    of SACKed records, the head record, RACK's per-record deadline) read the
    scoreboard's record boundaries before the operation, whose states the model
    has already checked unit by unit."""
    rng = random.Random(seed)
    smss = 100
    start = 3600  # the wrap (offset 4096) comes after a few sends
    sb = Scoreboard(seq(start))
    sb.min_rtt = 0.03
    m = Model()
    m.una = m.max = start
    m.state = [0] * start
    m.sent_at = [0.0] * start
    now = 1.0
    last_rack = -1.0
    for _ in range(steps):
        now += rng.choice((0.0, 0.0, 0.001, 0.004, 0.01, 0.03))
        op = rng.random()
        if op < 0.30:
            if m.fin_at is None and m.flight() < 2500:
                n = rng.randint(1, 250)
                fin = m.max > 4096 + 1000 and rng.random() < 0.02  # once across
                sb.on_sent(seq(m.max), seq(m.max + n + fin), now, fin)
                m.state += [0] * (n + fin)
                m.sent_at += [now] * (n + fin)
                m.max += n + fin
                if fin:
                    m.fin_at = m.max - 1
        elif op < 0.55:
            blocks = []
            expected = 0
            for _ in range(rng.randint(1, 3)):
                lo = rng.randint(m.una - 300, m.max + 50)
                hi = lo + rng.randint(-50, 600)
                if rng.random() < 0.8:
                    hi = min(hi, m.max)  # mostly blocks for data we sent
                blocks.append((lo, hi))
                if lo >= hi or hi > m.max:
                    continue  # empty, inverted or beyond SND.MAX
                for u in range(max(lo, m.una), hi):
                    if not m.state[u] & SACKED:
                        expected += 1
                        m.state[u] = SACKED | (m.state[u] & EVER_RETRANS)
            assert sack(sb, blocks, m.max, now) == expected
        elif op < 0.62:
            ack = rng.choice((m.una, m.max, rng.randint(m.una, m.max),
                              min(m.max, m.una + rng.randint(1, 300))))
            expected = sum(1 for u in range(m.una, ack) if not m.state[u] & SACKED)
            assert sb.cumulative_ack(seq(ack), now) == expected
            m.una = ack
        elif op < 0.75:
            reo_wnd = rng.choice((0.0, 0.005, 0.02))
            expected, timeout = 0, 0.0
            if sb.rack_xmit >= 0.0:
                for lo, hi, _rec in records(sb):
                    st = m.state[lo]
                    if st & SACKED or st & (LOST | RETRANS) == LOST:
                        continue
                    t = m.sent_at[lo]
                    if t > sb.rack_xmit or (t == sb.rack_xmit and hi >= off(sb.rack_end)):
                        continue
                    remaining = t + (sb.rack_rtt + reo_wnd - now)
                    if remaining <= 1e-6:
                        expected += hi - lo
                        mark(m, lo, hi, LOST)
                    else:
                        timeout = max(timeout, remaining)
            got = sb.rack_detect_loss(now, reo_wnd)
            assert got[0] == expected
            assert got[1] == pytest.approx(timeout, abs=1e-9)
        elif op < 0.80:
            expected, count, sacked = 0, 0, 0
            for lo, hi, _rec in reversed(records(sb)):
                st = m.state[lo]
                if st & SACKED:
                    count += 1
                    sacked += hi - lo
                elif (count >= 3 or sacked > 2 * smss) and not st & (LOST | RETRANS):
                    expected += hi - lo
                    mark(m, lo, hi, LOST)
            assert sb.mark_lost_dupthresh(smss) == expected
        elif op < 0.84:
            head = next(((lo, hi) for lo, hi, r in records(sb) if not r.state & SACKED), None)
            expect_new = head is not None and m.state[head[0]] & (LOST | RETRANS) != LOST
            if head is not None and expect_new:
                mark(m, head[0], head[1], LOST)
            assert sb.mark_head_lost() == expect_new
        elif op < 0.86:
            forget = rng.random() < 0.5
            for u in range(m.una, m.max):
                if forget or not m.state[u] & SACKED:
                    mark(m, u, u + 1, LOST)
            sb.mark_all_lost(forget_sacks=forget)
        elif op < 0.97:
            limit = rng.randint(50, 300)
            first = next((u for u in range(m.una, m.max)
                          if m.state[u] & (LOST | RETRANS | SACKED) == LOST), None)
            got_rec = sb.next_lost(limit)
            if first is None:
                assert got_rec is None
            else:
                assert got_rec is not None and got_rec in sb.segments
                rec = got_rec
                run = first
                while run < m.max and m.state[run] & (LOST | RETRANS | SACKED) == LOST:
                    run += 1
                data_run = run - first - (m.fin_at is not None and run == m.fin_at + 1)
                lo = off(rec.start)
                assert lo == first
                data = rec.length - rec.fin
                assert data == min(limit, data_run)
                if rec.fin:
                    assert m.fin_at is not None and lo + rec.length == m.fin_at + 1
                elif data_run < limit:
                    # a shorter run takes all of it, the FIN too
                    assert m.fin_at is None or run != m.fin_at + 1
                sb.on_retransmit(rec, now)
                for u in range(lo, lo + rec.length):
                    m.state[u] |= RETRANS | EVER_RETRANS
                    m.sent_at[u] = now
        else:
            # A probe (RFC 8985 §7.3): the last record neither SACKed nor in flight again.
            cands = [(lo, hi, r) for lo, hi, r in records(sb)
                     if not r.state & (SACKED | RETRANS)]
            if cands:
                lo, hi, rec = cands[-1]
                sb.on_retransmit(rec, now)
                for u in range(lo, hi):
                    m.state[u] |= RETRANS | EVER_RETRANS
                    m.sent_at[u] = now
        compare(sb, m)
        assert sb.rack_xmit >= last_rack  # RACK.xmit_ts never goes back
        last_rack = sb.rack_xmit
    return m.max


@pytest.mark.parametrize("seed", range(16))
def test_random_operations_match_a_per_unit_reference_model(seed: int) -> None:
    assert random_walk(seed, 400) > 4096 + 1000  # well across the wrap

