"""ESTABLISHED: data both ways, acceptability (RFC 9293 §3.10.7.4), RST/SYN/ACK rules
(RFC 5961), PAWS (RFC 7323 §5), ACK policy (RFC 5681 §4.2), SACK (RFC 2018), windows and
SWS avoidance (RFC 9293 §3.8.6), Nagle (§3.7.4), sequence wrap."""

from __future__ import annotations

import errno

from ethox_asyncio.stack.tcp.state import TcpState

from .harness import (
    EV_CLOSED,
    EV_DATA,
    check,
    config,
    data_of,
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


def test_data_is_cut_at_the_mss_with_psh_on_the_last_segment() -> None:
    conn = established()
    conn.send(b"a" * 3000)
    out = recv(conn, 0.1)
    check(out[0], seq=l(1), ack=r(1), flags=".", length=1460)
    check(out[1], seq=l(1461), flags=".", length=1460)
    check(out[2], seq=l(2921), flags="P.", length=80)
    assert conn.send_buffered == 3000
    send(conn, seg(r(1), l(3001)), 0.2)
    assert conn.send_buffered == 0
    assert events_of(conn) == [("sent", 3000)]


def test_in_order_data_is_delivered_without_copy() -> None:
    conn = established()
    send(conn, seg(r(1), l(1), "P", b"hello"), 0.1)
    [(kind, _, payload)] = list(conn.events)
    assert kind == EV_DATA and isinstance(payload, memoryview) and payload == b"hello"


# Scripts of the delayed-ACK rule itself (RFC 5681 §4.2) turn Linux's quick-ACK mode off
# (it ACKs the first segments at once: test_quickack.py).
NO_QUICK = config(quickack=0)


def test_delayed_ack_timing() -> None:
    conn = established(NO_QUICK)
    send(conn, seg(r(1), l(1), "P", b"x" * 100), 1.0)
    recv_nothing(conn, 1.0)
    assert conn.poll_at() == 1.04  # config.delayed_ack
    recv_nothing(conn, 1.039)
    tick(conn, 1.04)
    check(recv_one(conn, 1.04), seq=l(1), ack=r(101), flags=".")
    assert conn.poll_at() is None


def test_ack_at_least_every_second_full_segment() -> None:
    conn = established(NO_QUICK)
    send(conn, seg(r(1), l(1), "", b"x" * 1460), 1.0)
    recv_nothing(conn, 1.0)
    send(conn, seg(r(1461), l(1), "", b"x" * 1460), 1.001)
    check(recv_one(conn, 1.001), ack=r(2921))  # RFC 5681 §4.2
    assert conn.poll_at() is None


def test_reply_data_carries_the_delayed_ack() -> None:
    conn = established()
    send(conn, seg(r(1), l(1), "P", b"question"), 1.0)
    conn.send(b"answer")
    check(recv_one(conn, 1.0), seq=l(1), ack=r(9), payload=b"answer")
    assert conn.ack_at is None


def test_out_of_order_data_is_acked_at_once_with_sack_then_hole_filled() -> None:
    conn = established(sack=True)
    send(conn, seg(r(101), l(1), "", b"B" * 100), 1.0)
    assert events_of(conn) == []
    check(recv_one(conn, 1.0), ack=r(1), sack_blocks=((r(101), r(201)),))  # RFC 2018 §4
    send(conn, seg(r(1), l(1), "", b"A" * 100), 1.01)
    assert data_of(conn) == b"A" * 100 + b"B" * 100
    check(recv_one(conn, 1.01), ack=r(201), sack_blocks=())  # a filled hole: ACK now


def test_sack_blocks_newest_first() -> None:
    conn = established(sack=True)
    send(conn, seg(r(201), l(1), "", b"x" * 100), 1.0)
    recv_one(conn, 1.0)
    send(conn, seg(r(401), l(1), "", b"y" * 100), 1.0)
    check(recv_one(conn, 1.0), ack=r(1), sack_blocks=((r(401), r(501)), (r(201), r(301))))
    send(conn, seg(r(301), l(1), "", b"z" * 100), 1.0)  # joins both
    check(recv_one(conn, 1.0), ack=r(1), sack_blocks=((r(201), r(501)),))


def test_no_sack_blocks_without_sack_permitted() -> None:
    conn = established()
    send(conn, seg(r(201), l(1), "", b"x" * 100), 1.0)
    check(recv_one(conn, 1.0), ack=r(1), sack_blocks=())


def test_segment_beyond_the_window_gets_an_ack() -> None:
    conn = established()
    send(conn, seg(r(70000), l(1), "", b"far"), 1.0)
    check(recv_one(conn, 1.0), seq=l(1), ack=r(1), flags=".")
    assert events_of(conn) == []


def test_old_duplicate_gets_an_ack() -> None:
    conn = established(NO_QUICK)
    send(conn, seg(r(1), l(1), "", b"x" * 10), 1.0)
    data_of(conn)
    send(conn, seg(r(1), l(1), "", b"x" * 10), 1.1)  # retransmitted: all old
    check(recv_one(conn, 1.1), ack=r(11))
    assert events_of(conn) == []


def test_overlapping_segment_delivers_only_the_new_part() -> None:
    conn = established()
    send(conn, seg(r(1), l(1), "", b"abcdef"), 1.0)
    send(conn, seg(r(4), l(1), "", b"defghi"), 1.0)
    assert data_of(conn) == b"abcdefghi"


def test_segment_overflowing_the_window_is_trimmed() -> None:
    conn = established(config(recv_buffer=1000, timestamps=False))
    send(conn, seg(r(1), l(1), "F", b"x" * 1200), 1.0)
    assert data_of(conn, consume=False) == b"x" * 1000
    assert conn.state is TcpState.ESTABLISHED  # the FIN was beyond the window


def test_out_of_window_pure_acks_are_answered_at_most_every_500ms() -> None:
    conn = established()
    send(conn, seg(r(80000), l(1)), 1.0)
    recv_one(conn, 1.0)
    send(conn, seg(r(80000), l(1)), 1.2)
    recv_nothing(conn, 1.2)  # Linux tcp_invalid_ratelimit
    send(conn, seg(r(80000), l(1)), 1.6)
    recv_one(conn, 1.6)


def test_segment_without_ack_is_dropped() -> None:
    conn = established()
    send(conn, seg(r(1), None, "", b"noack"), 1.0)
    assert events_of(conn) == []
    recv_nothing(conn, 1.0)


def test_rst_exactly_at_rcv_nxt_resets() -> None:
    conn = established()
    conn.send(b"pending")
    send(conn, seg(r(1), None, "R"), 1.0)
    assert conn.state is TcpState.CLOSED and conn.finished
    [(kind, error)] = events_of(conn)
    assert kind == EV_CLOSED and isinstance(error, ConnectionResetError)
    assert error.errno == errno.ECONNRESET
    recv_nothing(conn, 1.0)  # never answer a RST
    assert conn.send_buffered == 0


def test_rst_in_window_gets_a_challenge_ack() -> None:
    conn = established()
    send(conn, seg(r(500), None, "R"), 1.0)  # RFC 5961 §3.2
    assert conn.state is TcpState.ESTABLISHED
    check(recv_one(conn, 1.0), seq=l(1), ack=r(1), flags=".")
    send(conn, seg(r(1), None, "R"), 1.1)  # the genuine peer answers at RCV.NXT
    assert conn.state is TcpState.CLOSED


def test_rst_outside_the_window_is_dropped_silently() -> None:
    conn = established()
    send(conn, seg(r(100000), None, "R"), 1.0)
    send(conn, seg(r(0), None, "R"), 1.0)
    assert conn.state is TcpState.ESTABLISHED
    recv_nothing(conn, 1.0)


def test_rst_with_ack_and_old_timestamp_still_resets() -> None:
    conn = established(ts=True)
    send(conn, seg(r(1), l(1), "", b"x", ts=(5000, 0)), 1.0)
    send(conn, seg(r(2), l(1), "R", ts=(10, 0)), 1.1)  # RFC 7323 §5.3: PAWS spares RSTs
    assert conn.state is TcpState.CLOSED


def test_syn_in_established_gets_a_challenge_ack() -> None:
    conn = established()
    for seq in (r(1), r(12345), r(-5000)):
        send(conn, seg(seq, None, "S", mss=1460), 1.0 + seq % 7)  # RFC 5961 §4.2
        assert conn.state is TcpState.ESTABLISHED
        check(recv_one(conn, 1.0 + seq % 7), seq=l(1), ack=r(1), flags=".")


def test_challenge_acks_are_rate_limited() -> None:
    conn = established(config(challenge_ack_limit=2, timestamps=False))
    answers = []
    for i in range(4):
        send(conn, seg(r(100 + i), None, "R"), 1.0 + i * 0.1)
        answers.append(len(recv(conn, 1.0 + i * 0.1)))
    assert answers == [1, 1, 0, 0]  # RFC 5961 §7
    send(conn, seg(r(200), None, "R"), 2.05)
    assert len(recv(conn, 2.05)) == 1  # a new second


def test_ack_of_unsent_data_is_answered_and_dropped() -> None:
    conn = established()
    send(conn, seg(r(1), l(5000), "", b"bogus"), 1.0)  # RFC 9293 / RFC 5961 §5.2
    check(recv_one(conn, 1.0), seq=l(1), ack=r(1))
    assert events_of(conn) == []


def test_ack_too_old_gets_a_challenge_ack() -> None:
    conn = established(window=1000)
    send(conn, seg(r(1), l(1 - 5000), "", b"blind"), 1.0)  # < SND.UNA - MAX.SND.WND
    check(recv_one(conn, 1.0), ack=r(1))
    assert events_of(conn) == []


def test_old_ack_inside_max_window_still_delivers_text() -> None:
    conn = established()
    conn.send(b"q" * 100)
    recv(conn, 1.0)
    send(conn, seg(r(1), l(101)), 1.1)
    send(conn, seg(r(1), l(51), "", b"late"), 1.2)  # old ACK: ignored, text kept
    assert data_of(conn) == b"late"


def test_paws_drops_segments_with_old_timestamps() -> None:
    conn = established(NO_QUICK, ts=True)
    send(conn, seg(r(1), l(1), "", b"new", ts=(2000, 0)), 1.0)
    assert data_of(conn) == b"new"
    tick(conn, 1.04)
    check(recv_one(conn, 1.04), ts_ecr=2000)  # R3: SEG.SEQ =< Last.ACK.sent, TSval newer
    send(conn, seg(r(4), l(1), "", b"more", ts=(2001, 0)), 1.1)
    send(conn, seg(r(8), l(1), "", b"more", ts=(2002, 0)), 1.1)  # beyond Last.ACK.sent
    data_of(conn)
    tick(conn, 1.15)
    check(recv_one(conn, 1.15), ack=r(12), ts_ecr=2001)  # so TS.Recent took 2001 only
    send(conn, seg(r(12), l(1), "", b"stale", ts=(1500, 0)), 1.2)  # RFC 7323 §5.3 R1
    assert events_of(conn) == []
    check(recv_one(conn, 1.2), ack=r(12), ts_ecr=2001)
    # Wrapped timestamps compare modulo 2**32.
    send(conn, seg(r(12), l(1), "", b"ok", ts=((2001 + 0x7FFFFFFF) & 0xFFFFFFFF, 0)), 1.3)
    assert data_of(conn) == b"ok"


def test_paws_gives_up_after_24_days_idle() -> None:
    conn = established(ts=True)
    later = 25 * 86400.0
    send(conn, seg(r(1), l(1), "", b"revived", ts=(5, 0)), later)  # RFC 7323 §5.5
    assert data_of(conn) == b"revived"


def test_sequence_numbers_wrap() -> None:
    conn = established()
    payload = bytes(range(256)) * 2
    send(conn, seg(r(1), l(1), "", payload), 1.0)  # crosses 2**32 after 255 bytes
    assert data_of(conn) == payload
    conn.send(b"w" * 40)  # ours crosses after 15
    check(recv_one(conn, 1.0), seq=l(1), ack=r(513), length=40)
    assert l(41) < l(1)
    send(conn, seg(r(513), l(41)), 1.1)
    assert conn.send_buffered == 0 and conn.snd_una == l(41)


def test_window_shrinks_while_not_reading_and_nothing_is_dropped() -> None:
    conn = established(config(recv_buffer=4000, timestamps=False, quickack=0))
    conn.set_reading(False)
    send(conn, seg(r(1), l(1), "", b"a" * 1460), 1.0)
    send(conn, seg(r(1461), l(1), "", b"b" * 1460), 1.0)
    check(recv_one(conn, 1.0), ack=r(2921), window=1080)
    send(conn, seg(r(2921), l(1), "", b"c" * 1080), 1.0)
    tick(conn, 1.04)
    check(recv_one(conn, 1.04), ack=r(4001), window=0)
    send(conn, seg(r(4001), l(1), "", b"d" * 10), 1.1)  # zero window: dropped, ACKed
    check(recv_one(conn, 1.1), ack=r(4001), window=0)
    assert events_of(conn) == [] and conn.receive_held == 4000
    conn.set_reading(True)
    assert data_of(conn, consume=False) == b"a" * 1460 + b"b" * 1460 + b"c" * 1080
    recv_nothing(conn, 1.2)  # delivered but not consumed: still no room
    conn.consumed(4000)
    check(recv_one(conn, 1.2), ack=r(4001), window=4000)  # window update


def test_zero_window_still_takes_acks_from_data_segments() -> None:
    conn = established(config(recv_buffer=1000, timestamps=False))
    conn.send(b"out")
    recv(conn, 1.0)
    send(conn, seg(r(1), l(1), "", b"x" * 1000), 1.1)
    send(conn, seg(r(1001), l(4), "", b"y"), 1.2)  # zero window, but the ACK counts
    assert conn.send_buffered == 0


def test_receiver_sws_avoidance() -> None:
    conn = established(config(recv_buffer=4000, timestamps=False))
    for i in range(3):
        send(conn, seg(r(1 + i * 1460), l(1), "", b"z" * min(1460, 4000 - i * 1460)), 1.0)
    recv(conn, 1.0)
    tick(conn, 1.1)
    recv(conn, 1.1)
    assert data_of(conn, consume=False) == b"z" * 4000
    conn.consumed(100)
    recv_nothing(conn, 1.2)  # less than min(RCV.BUFF/2, MSS): no update (RFC 9293 §3.8.6.2.2)
    conn.consumed(1400)
    check(recv_one(conn, 1.3), window=1500)


def test_initial_window_is_ten_segments() -> None:
    conn = established(window=65535)
    conn.send(b"i" * 30000)
    out = recv(conn, 1.0)
    assert len(out) == 10 and all(len(s.payload) == 1460 for s in out)  # RFC 6928
    send(conn, seg(r(1), l(1 + 2920)), 1.1)
    # Two segments left the network and slow start adds min(acked, SMSS) per ACK
    # (RFC 5681 eq. 2): three go out.
    assert len(recv(conn, 1.1)) == 3


def test_send_window_limits_and_reopens() -> None:
    conn = established(window=3000)
    conn.send(b"s" * 6000)
    assert [len(s.payload) for s in recv(conn, 1.0)] == [1460, 1460]
    send(conn, seg(r(1), l(2921), window=3000), 1.1)
    assert [len(s.payload) for s in recv(conn, 1.1)] == [1460, 1460]


def test_nagle_holds_small_segments_while_data_is_unacknowledged() -> None:
    conn = established(config(nagle=True, timestamps=False))
    conn.send(b"1")
    assert len(recv(conn, 1.0)) == 1
    conn.send(b"2")
    conn.send(b"3")
    recv_nothing(conn, 1.0)  # RFC 9293 §3.7.4
    send(conn, seg(r(1), l(2)), 1.1)
    check(recv_one(conn, 1.1), seq=l(2), payload=b"23")


def test_without_nagle_small_segments_go_at_once() -> None:
    conn = established()
    conn.send(b"1")
    recv_one(conn, 1.0)
    conn.send(b"2")
    check(recv_one(conn, 1.0), seq=l(2), payload=b"2")


def test_output_budget_is_respected_and_resumes() -> None:
    conn = established()
    conn.send(b"b" * 5000)
    assert len(conn.output(1.0, 2)) == 2
    assert [len(s.payload) for s in recv(conn, 1.0)] == [1460, 620]


def test_mutable_data_is_copied_immutable_kept() -> None:
    conn = established()
    buf = bytearray(b"mutable")
    conn.send(buf)
    buf[:] = b"changed"
    check(recv_one(conn, 1.0), payload=b"mutable")


def test_batched_segments_each_get_their_immediate_ack() -> None:
    # A caller that feeds several segments before output() still gets one duplicate ACK
    # per out-of-order segment and an ACK every second full-sized one (RFC 5681 §4.2).
    conn = established(NO_QUICK, sack=True)
    for i in range(3):
        send(conn, seg(r(1461 + i * 1460), l(1), "", b"o" * 1460), 1.0)
    acks = recv(conn, 1.0)
    assert [s.ack for s in acks] == [r(1)] * 3
    assert [len(s.sack_blocks[0]) for s in acks] == [2, 2, 2]
    assert acks[0].sack_blocks[0][1] == r(2921) and acks[2].sack_blocks[0][1] == r(5841)
    conn2 = established(NO_QUICK)
    for i in range(4):
        send(conn2, seg(r(1 + i * 1460), l(1), "", b"i" * 1460), 1.0)
    assert [s.ack for s in recv(conn2, 1.0)] == [r(2921), r(5841)]


def test_retransmission_with_sack_blocks_fits_the_mss() -> None:
    conn = established(sack=True, ts=True)
    conn.send(bytes(3 * 1448))
    assert [len(s.payload) for s in recv(conn, 1.0)] == [1448] * 3
    send(conn, seg(r(101), l(1), "", b"x" * 100, ts=(1001, 1000)), 1.0)
    recv(conn, 1.0)
    tick(conn, conn.poll_at() or 0.0)  # the tail loss probe: the last segment's tail
    [probe] = recv(conn, conn.poll_at() or 0.0)
    assert probe.sack_blocks and (probe.seq + len(probe.payload)) & 0xFFFFFFFF == l(4345)
    assert probe.header_len - 20 + len(probe.payload) <= 1460  # RFC 6691: options count
    tick(conn, conn.poll_at() or 0.0)  # then the retransmission timeout
    rtx = recv(conn, conn.poll_at() or 0.0)[0]
    assert rtx.seq == l(1) and rtx.sack_blocks
    assert rtx.header_len - 20 + len(rtx.payload) <= 1460
