"""Proportional Rate Reduction (RFC 6937 §3) with the Slow-Start Reduction Bound.

RFC 6937 §3, on every ACK in recovery:
  pipe >  ssthresh: sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out
  pipe <= ssthresh: sndcnt = MIN(ssthresh - pipe,
                                 MAX(prr_delivered - prr_out, DeliveredData) + MSS)
and :meth:`Prr.on_ack` returns cwnd = pipe + max(sndcnt, 0). Sizes are bytes; the
connection sends a full segment while pipe < cwnd, which the episodes below model.
"""

from __future__ import annotations

import random

import pytest

from ethox_asyncio.stack.tcp.prr import Prr

MSS = 1000


def prr(ssthresh_segs: int, recover_fs_segs: int) -> Prr:
    p = Prr()
    p.start(ssthresh_segs * MSS, recover_fs_segs * MSS)
    return p


def test_start_begins_an_episode_with_nothing_delivered_or_sent() -> None:
    p = Prr()
    p.start(5 * MSS, 8 * MSS)
    p.on_ack(MSS, 6 * MSS, MSS)
    p.on_sent(MSS)
    p.start(10 * MSS, 20 * MSS)  # RFC 6937 §3 "at the beginning of recovery"
    assert (p.ssthresh, p.recover_fs, p.delivered, p.out) == (10 * MSS, 20 * MSS, 0, 0)


def test_a_recover_fs_of_zero_does_not_divide_by_zero() -> None:
    p = Prr()
    p.start(10 * MSS, 0)
    assert p.recover_fs == 1
    assert p.on_ack(0, 11 * MSS, MSS) == 11 * MSS


def test_the_proportional_part_allows_ssthresh_over_recover_fs_of_what_was_delivered() -> None:
    p = prr(10, 20)  # Reno: ssthresh = RecoverFS / 2
    assert p.on_ack(MSS, 18 * MSS, MSS) == 18 * MSS + 500  # ceil(1000 * 10/20) - 0
    p.on_sent(MSS)
    assert p.on_ack(MSS, 18 * MSS, MSS) == 18 * MSS  # ceil(2000 * 10/20) - 1000 = 0
    assert p.on_ack(MSS, 17 * MSS, MSS) == 17 * MSS + 500  # ceil(3000/2) - 1000
    assert p.delivered == 3 * MSS and p.out == MSS


def test_the_proportional_part_rounds_up() -> None:
    p = prr(14, 20)  # CUBIC-like: beta 0.7
    assert p.on_ack(1, 18 * MSS, MSS) == 18 * MSS + 1  # CEIL(1 * 0.7)
    assert p.on_ack(2, 18 * MSS, MSS) == 18 * MSS + 3  # CEIL(3 * 0.7) = CEIL(2.1)


def test_sndcnt_is_never_negative() -> None:
    p = prr(10, 20)
    p.on_sent(3 * MSS)  # more than the proportional share already went out
    assert p.on_ack(MSS, 18 * MSS, MSS) == 18 * MSS  # ceil(500) - 3000 < 0: cwnd = pipe
    assert p.on_ack(0, 18 * MSS, MSS) == 18 * MSS


def test_pipe_at_ssthresh_takes_the_reduction_bound() -> None:
    # "if (pipe > ssthresh)": at ssthresh the bound applies, and it sends nothing more.
    p = prr(10, 20)
    assert p.on_ack(MSS, 10 * MSS, MSS) == 10 * MSS  # the proportional part: 10.5 MSS


def test_the_reduction_bound_grows_by_at_most_what_was_delivered_plus_one_mss() -> None:
    # PRR-SSRB: limit = MAX(prr_delivered - prr_out, DeliveredData) + MSS.
    p = prr(10, 20)
    assert p.on_ack(MSS, 4 * MSS, MSS) == 6 * MSS  # 4 + (1 + 1), not 10
    p.on_sent(2 * MSS)
    # prr_delivered - prr_out = -1000 < DeliveredData: this ACK's delivery is the base.
    assert p.on_ack(MSS, 5 * MSS, MSS) == 7 * MSS


def test_the_reduction_bound_spends_what_was_banked() -> None:
    p = prr(10, 20)
    assert p.on_ack(3 * MSS, 15 * MSS, MSS) == 15 * MSS + 1500
    # Nothing sent (application-limited): 3000 banked, then 1000 more delivered.
    assert p.on_ack(MSS, 4 * MSS, MSS) == 4 * MSS + 4000 + MSS


def test_the_reduction_bound_never_goes_past_ssthresh() -> None:
    p = prr(10, 20)
    assert p.on_ack(8 * MSS, 9 * MSS, MSS) == 10 * MSS  # limit 9000, ssthresh - pipe 1000


def test_on_sent_counts_every_byte_sent_in_recovery() -> None:
    p = prr(10, 20)
    p.on_sent(MSS)
    p.on_sent(1)  # a FIN
    assert p.out == MSS + 1
    assert p.on_ack(4 * MSS, 18 * MSS, MSS) == 18 * MSS + 2000 - (MSS + 1)


def episode(p: Prr, pipe: int, acks: int) -> tuple[list[float], list[int], int]:
    """One loss among ``pipe`` + 1 segments: each ACK delivers (SACKs) one segment and
    the sender sends whole segments while pipe < cwnd. The cwnd (in MSS) and segments
    sent on each ACK, and pipe at the end (in segments)."""
    cwnds, sent = [], []
    for _ in range(acks):
        pipe -= 1
        cwnd = p.on_ack(MSS, pipe * MSS, MSS)
        n = 0
        while pipe * MSS < cwnd:
            pipe += 1
            n += 1
            p.on_sent(MSS)
        cwnds.append(cwnd / MSS)
        sent.append(n)
    return cwnds, sent, pipe


def test_one_loss_with_reno_sends_on_every_other_ack_and_ends_at_ssthresh() -> None:
    # RFC 6937 §3.1's first example: 20 segments in flight, the first lost, ssthresh
    # 10. Each of the 19 later segments is SACKed by one ACK; the first of these
    # enters recovery with the first segment lost, so pipe = 20 - 1 - 1 = 18.
    # PRR spreads the reduction over the round: one segment on every other ACK
    # (the first is the retransmission), cwnd falling by half a segment per ACK.
    p = prr(10, 20)
    cwnds, sent, pipe = episode(p, 19, 19)
    assert cwnds[:16] == [19 - k / 2 for k in range(1, 17)]
    assert sent[:16] == [1, 0] * 8
    # pipe reaches ssthresh at the 17th ACK: the bound keeps it there.
    assert cwnds[16:] == [10.0, 10.0, 10.0]
    assert sent[16:] == [0, 1, 1]
    # RFC 6937 §4: prr_delivered near RecoverFS, prr_out near ssthresh, pipe at it.
    assert sum(sent) == 10 == p.out // MSS
    assert pipe == 10


def test_one_loss_with_cubic_sends_seven_tenths_of_what_is_delivered() -> None:
    p = prr(14, 20)
    cwnds, sent, pipe = episode(p, 19, 19)
    assert cwnds == pytest.approx([18.7, 18.4, 18.1, 18.0, 17.5, 17.2, 17.0, 16.6, 16.3,
                                   16.0, 15.7, 15.4, 15.1, 15.0, 14.0, 14.0, 14.0, 14.0,
                                   14.0])
    # Proportional part (ACKs 1-14): after k ACKs, ceil(0.7 k) segments have gone out.
    total = 0
    for k, n in enumerate(sent[:14], 1):
        total += n
        assert total == -(-7 * k // 10)
    assert sum(sent) == 14 == p.out // MSS
    assert pipe == 14


def test_burst_loss_grows_by_one_segment_per_ack_under_the_reduction_bound() -> None:
    # RFC 6937 §3.1's second example (PRR-SSRB): 20 in flight, the first 15 lost,
    # ssthresh 10; in recovery the ACKs find pipe 4, 5, 6 and each lets 2 segments
    # go: DeliveredData + MSS (the "bd", "d", "d" of the RB row).
    p = prr(10, 22)
    pipe = 4
    sent = []
    for _ in range(3):
        cwnd = p.on_ack(MSS, pipe * MSS, MSS)
        n = (cwnd - pipe * MSS) // MSS
        p.on_sent(n * MSS)
        sent.append(n)
        pipe = pipe + n - 1  # the next ACK delivers one
    assert sent == [2, 2, 2]
    assert pipe == 7


@pytest.mark.parametrize("seed", range(8))
def test_random_acks_respect_both_bounds(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(30):
        ssthresh = rng.randint(2, 40) * MSS
        recover_fs = ssthresh + rng.randint(0, 40) * MSS
        p = Prr()
        p.start(ssthresh, recover_fs)
        pipe = recover_fs
        for _ in range(60):
            delivered = rng.choice((0, 1, MSS // 2, MSS, 2 * MSS, 5 * MSS))
            pipe = max(0, pipe - delivered - rng.choice((0, 0, MSS)))
            before_delivered, before_out = p.delivered, p.out
            cwnd = p.on_ack(delivered, pipe, MSS)
            sndcnt = cwnd - pipe
            assert sndcnt >= 0
            assert p.delivered == before_delivered + delivered
            if pipe > ssthresh:
                # Never past the proportional share of what was delivered.
                assert (before_out + sndcnt) * recover_fs < p.delivered * ssthresh + recover_fs
            else:
                assert cwnd <= ssthresh
                assert sndcnt <= max(p.delivered - before_out, delivered) + MSS
            n = rng.choice((0, sndcnt, min(sndcnt, MSS)))
            p.on_sent(n)
            pipe += n
