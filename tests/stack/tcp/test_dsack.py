"""D-SACK (RFC 2883): duplicates reported by the receiver and recognised by the sender.

The receiver reports data that arrived again as the first SACK block of the ACK it
sends at once (§4): a segment wholly before RCV.NXT, or the old part of one that
overlaps it, or data held out of order (then the block that holds it comes second);
once, and only when SACK was negotiated. The sender recognises a
D-SACK (a first block below the cumulative ACK, or inside the second block, §4) and
counts it: the evidence of a needless retransmission that undo schemes use.
"""

from __future__ import annotations

from tests.stack.tcp.harness import (
    check,
    config,
    established,
    l,
    r,
    recv,
    recv_nothing,
    recv_one,
    seg,
    send,
    tick,
)

# The receiver scripts turn quick-ACK mode off (test_quickack.py), so only the ACKs of
# the rule at hand are sent: the first segments are not ACKed at once.
NO_QUICK = config(quickack=0)


def test_a_wholly_old_segment_is_reported_as_the_first_sack_block() -> None:
    conn = established(NO_QUICK, sack=True)
    send(conn, seg(r(1), l(1), payload=b"a" * 100), 1.0)
    send(conn, seg(r(101), l(1), payload=b"b" * 100), 1.0)
    send(conn, seg(r(1), l(1), payload=b"a" * 100), 1.0)  # the first one again
    check(recv_one(conn, 1.0), ack=r(201), sack_blocks=((r(1), r(101)),))  # at once
    assert conn.stats["tcp_dsack_sent"] == 1
    send(conn, seg(r(201), l(1), payload=b"c" * 100), 1.2)
    tick(conn, 1.3)  # the delayed ACK
    check(recv_one(conn, 1.3), ack=r(301), sack_blocks=())  # reported once


def test_the_old_part_of_an_overlapping_segment_is_reported() -> None:
    conn = established(NO_QUICK, sack=True)
    send(conn, seg(r(1), l(1), payload=b"a" * 100), 1.0)
    # 50 old bytes then 50 new: the new part is taken, the old one reported at once.
    send(conn, seg(r(51), l(1), payload=b"x" * 100), 1.0)
    check(recv_one(conn, 1.0), ack=r(151), sack_blocks=((r(51), r(101)),))


def test_a_duplicate_comes_first_and_the_holes_after_it() -> None:
    conn = established(NO_QUICK, sack=True)
    send(conn, seg(r(1), l(1), payload=b"a" * 100), 1.0)
    send(conn, seg(r(201), l(1), payload=b"c" * 100), 1.0)  # a hole at r(101)
    recv_one(conn, 1.0)
    send(conn, seg(r(1), l(1), payload=b"a" * 100), 1.1)
    check(recv_one(conn, 1.1), ack=r(101), sack_blocks=((r(1), r(101)), (r(201), r(301))))


def test_a_duplicate_of_data_held_out_of_order_is_reported_before_its_block() -> None:
    # RFC 2883 §4: data above RCV.NXT that arrives again: the D-SACK block first (only
    # the duplicated part), then the SACK block that holds it.
    conn = established(sack=True)
    send(conn, seg(r(101), l(1), payload=b"b" * 100), 1.0)  # a hole at r(1)
    check(recv_one(conn, 1.0), ack=r(1), sack_blocks=((r(101), r(201)),))
    send(conn, seg(r(151), l(1), payload=b"x" * 100), 1.1)  # 50 held again, 50 new
    check(recv_one(conn, 1.1), ack=r(1), sack_blocks=((r(151), r(201)), (r(101), r(251))))
    assert conn.stats["tcp_dsack_sent"] == 1
    send(conn, seg(r(301), l(1), payload=b"z" * 10), 1.2)  # new data only: no D-SACK
    check(recv_one(conn, 1.2), ack=r(1), sack_blocks=((r(301), r(311)), (r(101), r(251))))


def test_no_dsack_without_sack_permitted() -> None:
    conn = established(NO_QUICK, sack=False)
    send(conn, seg(r(1), l(1), payload=b"a" * 100), 1.0)
    recv_nothing(conn, 1.0)  # delayed ACK
    send(conn, seg(r(1), l(1), payload=b"a" * 100), 1.1)
    check(recv_one(conn, 1.1), ack=r(101), sack_blocks=())
    assert not conn.stats["tcp_dsack_sent"]


def test_the_sender_recognises_a_dsack() -> None:
    conn = established(sack=True)
    conn.send(b"z" * 300)
    recv_one(conn, 1.0)
    send(conn, seg(r(1), l(301), "."), 1.01)
    assert not conn.stats["tcp_dsack_received"]
    # The peer got bytes [l(1), l(101)) twice: first block below the ACK.
    send(conn, seg(r(1), l(301), ".", sack=((l(1), l(101)),)), 1.02)
    assert conn.stats["tcp_dsack_received"] == 1
    # A first block inside the second one is a D-SACK too (a duplicate beyond a hole).
    conn.send(b"y" * 3000)
    recv(conn, 1.03)
    send(conn, seg(r(1), l(301), ".", sack=((l(1301), l(1401)), (l(1001), l(2001)))), 1.04)
    assert conn.stats["tcp_dsack_received"] == 2
    # An ordinary SACK block is not.
    send(conn, seg(r(1), l(301), ".", sack=((l(1001), l(2001)),)), 1.05)
    assert conn.stats["tcp_dsack_received"] == 2
