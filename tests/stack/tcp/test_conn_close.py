"""Closing: FIN in every state (RFC 9293 §3.6, §3.10.7.4 eighth), half-close, simultaneous
close, TIME-WAIT (2·MSL, RFC 1337, RFC 6191), abort (§3.10.5), orphans (Linux
tcp_fin_timeout, RFC 2525 §2.17), user calls per state."""

from __future__ import annotations

import errno

import pytest

from ethox_asyncio.stack.tcp.state import TcpState, TcpStateError

from .harness import (
    EV_CLOSED,
    EV_DATA,
    EV_EOF,
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

S = TcpState


def fin_wait_1(**kw):  # type: ignore[no-untyped-def]
    conn = established(**kw)
    conn.shutdown(1.0)
    assert conn.state is S.FIN_WAIT_1
    check(recv_one(conn, 1.0), seq=l(1), ack=r(1), flags="F.")
    return conn


def test_active_close_to_time_wait_and_closed() -> None:
    conn = fin_wait_1()
    send(conn, seg(r(1), l(2)), 1.1)
    assert conn.state is S.FIN_WAIT_2
    recv_nothing(conn, 1.1)
    send(conn, seg(r(1), l(2), "F"), 2.0)
    assert conn.state is S.TIME_WAIT
    check(recv_one(conn, 2.0), seq=l(2), ack=r(2), flags=".")  # the FIN is ACKed at once
    assert events_of(conn) == [(EV_EOF, None), (EV_CLOSED, None)]
    assert not conn.finished
    assert conn.poll_at() == 62.0  # 2·MSL = config.time_wait (RFC 9293 §3.6.1)
    tick(conn, 61.9)
    assert conn.state is S.TIME_WAIT
    tick(conn, 62.0)
    assert conn.state is S.CLOSED and conn.finished
    assert events_of(conn) == []


def test_fin_rides_on_the_last_data_segment() -> None:
    conn = established()
    conn.send(b"bye")
    conn.shutdown(1.0)
    check(recv_one(conn, 1.0), seq=l(1), flags="FP.", payload=b"bye")
    send(conn, seg(r(1), l(5)), 1.1)
    assert conn.state is S.FIN_WAIT_2
    assert events_of(conn) == [("sent", 3)]


def test_fin_waits_until_the_buffer_drains() -> None:
    conn = established(window=1460)
    conn.send(b"x" * 2920)
    conn.shutdown(1.0)
    check(recv_one(conn, 1.0), seq=l(1), flags=".", length=1460)
    send(conn, seg(r(1), l(1461), window=1460), 1.1)
    check(recv_one(conn, 1.1), seq=l(1461), flags="P.", length=1460)  # no room for the FIN
    send(conn, seg(r(1), l(2921), window=1460), 1.2)
    check(recv_one(conn, 1.2), seq=l(2921), flags="F.")


def test_lost_fin_is_retransmitted() -> None:
    conn = fin_wait_1(rtt=0.1)
    at = conn.poll_at()
    assert at == pytest.approx(1.3)
    tick(conn, at)
    check(recv_one(conn, at), seq=l(1), flags="F.")


def test_passive_close_through_close_wait_and_last_ack() -> None:
    conn = established()
    send(conn, seg(r(1), l(1), "F"), 1.0)
    assert conn.state is S.CLOSE_WAIT
    assert events_of(conn) == [(EV_EOF, None)]
    check(recv_one(conn, 1.0), ack=r(2), flags=".")
    conn.send(b"still talking")  # half-close: we may send in CLOSE-WAIT
    check(recv_one(conn, 1.1), seq=l(1), payload=b"still talking")
    conn.shutdown(1.2)
    assert conn.state is S.LAST_ACK
    check(recv_one(conn, 1.2), seq=l(14), flags="F.")
    send(conn, seg(r(2), l(15)), 1.3)
    assert conn.state is S.CLOSED and conn.finished
    assert events_of(conn) == [("sent", 13), (EV_CLOSED, None)]


def test_simultaneous_close_through_closing() -> None:
    conn = fin_wait_1()
    send(conn, seg(r(1), l(1), "F"), 1.1)  # their FIN crosses ours
    assert conn.state is S.CLOSING
    check(recv_one(conn, 1.1), seq=l(2), ack=r(2), flags=".")
    send(conn, seg(r(2), l(2)), 1.2)
    assert conn.state is S.TIME_WAIT
    assert events_of(conn) == [(EV_EOF, None), (EV_CLOSED, None)]


def test_fin_acking_our_fin_goes_straight_to_time_wait() -> None:
    conn = fin_wait_1()
    send(conn, seg(r(1), l(2), "F"), 1.1)
    assert conn.state is S.TIME_WAIT
    check(recv_one(conn, 1.1), ack=r(2))


def test_half_close_data_keeps_flowing_to_us() -> None:
    conn = fin_wait_1()
    send(conn, seg(r(1), l(2)), 1.1)
    send(conn, seg(r(1), l(2), "", b"more data"), 1.2)
    assert data_of(conn) == b"more data"
    tick(conn, 1.3)
    check(recv_one(conn, 1.3), seq=l(2), ack=r(10))
    send(conn, seg(r(10), l(2), "F"), 1.4)
    assert conn.state is S.TIME_WAIT


def test_out_of_order_fin_waits_for_the_data_before_it() -> None:
    conn = established()
    send(conn, seg(r(6), l(1), "F", b"world"), 1.0)
    assert conn.state is S.ESTABLISHED
    check(recv_one(conn, 1.0), ack=r(1))
    send(conn, seg(r(1), l(1), "", b"hello"), 1.1)
    assert conn.state is S.CLOSE_WAIT
    assert events_of(conn) == [(EV_DATA, b"hello"), (EV_DATA, b"world"), (EV_EOF, None)]
    check(recv_one(conn, 1.1), ack=r(12))


def test_fin_without_ack_is_dropped() -> None:
    conn = established()
    send(conn, seg(r(1), None, "F"), 1.0)
    assert conn.state is S.ESTABLISHED


def test_eof_waits_behind_held_data() -> None:
    conn = established()
    conn.set_reading(False)
    send(conn, seg(r(1), l(1), "F", b"tail"), 1.0)
    assert events_of(conn) == []
    assert conn.state is S.CLOSE_WAIT
    conn.set_reading(True)
    assert events_of(conn) == [(EV_DATA, b"tail"), (EV_EOF, None)]


def test_no_window_update_after_fin() -> None:
    conn = established(config(recv_buffer=3000, timestamps=False))
    send(conn, seg(r(1), l(1), "F", b"x" * 3000), 1.0)
    recv(conn, 1.0)
    data_of(conn)
    recv_nothing(conn, 1.1)


def test_user_calls_per_state() -> None:
    conn = established()
    conn.shutdown(1.0)
    conn.shutdown(1.0)  # repeated: no error, as Linux
    with pytest.raises(TcpStateError) as info:
        conn.send(b"late")
    assert info.value.errno == errno.EPIPE and "FIN_WAIT_1" in str(info.value)
    conn.abort(1.1)
    with pytest.raises(TcpStateError) as info:
        conn.send(b"later")
    assert info.value.errno == errno.EPIPE
    with pytest.raises(TcpStateError) as info:
        conn.shutdown(1.2)
    assert info.value.errno == errno.ENOTCONN
    conn.close(1.2)  # a no-op once closed
    conn.abort(1.2)


def test_time_wait_restarts_on_a_retransmitted_fin() -> None:
    conn = fin_wait_1()
    send(conn, seg(r(1), l(2), "F"), 2.0)
    recv_one(conn, 2.0)
    send(conn, seg(r(1), l(2), "F"), 30.0)  # our ACK was lost
    check(recv_one(conn, 30.0), seq=l(2), ack=r(2), flags=".")
    assert conn.poll_at() == 90.0


def test_time_wait_ignores_rst() -> None:
    conn = fin_wait_1()
    send(conn, seg(r(1), l(2), "F"), 2.0)
    recv_one(conn, 2.0)
    send(conn, seg(r(2), None, "R"), 3.0)  # RFC 1337: no TIME-WAIT assassination
    assert conn.state is S.TIME_WAIT
    recv_nothing(conn, 3.0)


def test_time_wait_answers_old_segments_and_syns_with_an_ack() -> None:
    conn = fin_wait_1()
    send(conn, seg(r(1), l(2), "F"), 2.0)
    recv_one(conn, 2.0)
    send(conn, seg(r(0), None, "S", mss=1460), 3.0)
    check(recv_one(conn, 3.0), seq=l(2), ack=r(2), flags=".")
    send(conn, seg(r(2), l(2)), 3.0)  # a bare in-window ACK: nothing to say
    recv_nothing(conn, 3.0)


def time_wait(ts: bool):  # type: ignore[no-untyped-def]
    conn = established(ts=ts)
    conn.shutdown(1.0)
    recv(conn, 1.0)
    send(conn, seg(r(1), l(2), "F", ts=(5000, 1000) if ts else None), 2.0)
    assert conn.state is S.TIME_WAIT
    return conn


def test_tw_accepts_syn_with_newer_timestamp() -> None:
    conn = time_wait(ts=True)  # RFC 6191 §2
    assert conn.tw_accepts_syn(seg(r(-10000), None, "S", ts=(5001, 0)))
    assert not conn.tw_accepts_syn(seg(r(50000), None, "S", ts=(4999, 0)))
    assert conn.tw_accepts_syn(seg(r(50000), None, "S", ts=(5000, 0)))  # equal TS, seq above
    assert not conn.tw_accepts_syn(seg(r(0), None, "S", ts=(5000, 0)))
    assert conn.tw_accepts_syn(seg(r(50000), None, "S"))  # no TS now: sequence rule
    assert not conn.tw_accepts_syn(seg(r(50000), l(2), "S", ts=(6000, 0)))  # SYN-ACK


def test_tw_accepts_syn_without_timestamps_by_sequence() -> None:
    conn = time_wait(ts=False)
    assert conn.tw_accepts_syn(seg(r(3), None, "S"))
    assert not conn.tw_accepts_syn(seg(r(2), None, "S"))
    assert not conn.tw_accepts_syn(seg(r(-100), None, "S"))
    assert not established().tw_accepts_syn(seg(r(100), None, "S"))


def test_abort_sends_rst_in_synchronized_states() -> None:
    conn = established()
    conn.send(b"unsent")
    conn.abort(1.0)
    assert conn.state is S.CLOSED and not conn.finished
    check(recv_one(conn, 1.0), seq=l(1), ack=r(1), flags="R.")
    assert conn.finished
    assert events_of(conn) == [(EV_CLOSED, None)]
    recv_nothing(conn, 1.0)


@pytest.mark.parametrize("setup, sends_rst", [
    ("close_wait", True), ("fin_wait_2", True), ("last_ack", False), ("time_wait", False),
])
def test_abort_by_state(setup: str, sends_rst: bool) -> None:
    conn = established()
    if setup in ("close_wait", "last_ack"):
        send(conn, seg(r(1), l(1), "F"), 1.0)
        if setup == "last_ack":
            conn.shutdown(1.0)
    else:
        conn.shutdown(1.0)
        recv(conn, 1.0)
        send(conn, seg(r(1), l(2), "F" if setup == "time_wait" else ""), 1.0)
    recv(conn, 1.0)
    events_of(conn)
    conn.abort(1.1)
    out = recv(conn, 1.1)
    assert [s.flags & 4 != 0 for s in out] == ([True] if sends_rst else [])
    assert conn.finished
    assert events_of(conn) == ([] if setup == "time_wait" else [(EV_CLOSED, None)])


def test_rst_in_close_wait_is_a_broken_pipe() -> None:
    conn = established()
    send(conn, seg(r(1), l(1), "F"), 1.0)
    events_of(conn)
    send(conn, seg(r(2), None, "R"), 1.1)
    [(kind, error)] = events_of(conn)
    assert kind == EV_CLOSED and isinstance(error, BrokenPipeError)  # Linux tcp_reset


def test_rst_one_below_rcv_nxt_after_fin_is_accepted() -> None:
    conn = established()
    send(conn, seg(r(1), l(1), "F"), 1.0)
    conn.shutdown(1.0)
    send(conn, seg(r(1), None, "R"), 1.1)  # Linux tcp_reset_check
    assert conn.state is S.CLOSED


def test_rst_in_last_ack_resets() -> None:
    conn = established()
    send(conn, seg(r(1), l(1), "F"), 1.0)
    conn.shutdown(1.0)
    events_of(conn)
    send(conn, seg(r(2), None, "R"), 1.1)
    [(kind, error)] = events_of(conn)
    assert kind == EV_CLOSED and isinstance(error, ConnectionResetError)


def test_rst_in_fin_wait_2_resets() -> None:
    conn = fin_wait_1()
    send(conn, seg(r(1), l(2)), 1.1)
    send(conn, seg(r(1), None, "R"), 1.2)
    assert conn.state is S.CLOSED
    assert isinstance(conn.error, ConnectionResetError)


def test_orphan_in_fin_wait_2_times_out() -> None:
    conn = established()
    conn.close(1.0)
    recv(conn, 1.0)
    send(conn, seg(r(1), l(2)), 1.1)
    assert conn.state is S.FIN_WAIT_2
    assert conn.poll_at() == pytest.approx(61.1)  # Linux tcp_fin_timeout
    tick(conn, 61.1)
    assert conn.state is S.CLOSED and conn.finished
    recv_nothing(conn, 61.1)
    assert events_of(conn) == [(EV_CLOSED, None)]


def test_half_closed_fin_wait_2_waits_forever() -> None:
    conn = fin_wait_1()
    send(conn, seg(r(1), l(2)), 1.1)
    assert conn.state is S.FIN_WAIT_2 and conn.poll_at() is None


def test_close_with_unread_data_resets() -> None:
    conn = established()
    conn.set_reading(False)
    send(conn, seg(r(1), l(1), "", b"unread"), 1.0)
    conn.close(1.1)  # RFC 2525 §2.17
    check(recv_one(conn, 1.1), flags="R.", seq=l(1), ack=r(7))
    assert conn.finished


def test_orphan_receiving_new_data_resets() -> None:
    conn = established()
    conn.close(1.0)
    recv(conn, 1.0)
    send(conn, seg(r(1), l(2), "", b"too late"), 1.1)
    check(recv_one(conn, 1.1), flags="R.")
    assert conn.state is S.CLOSED


def test_abort_in_last_ack_with_unsent_data_resets() -> None:
    conn = established(window=0)
    send(conn, seg(r(1), l(1), "F", window=0), 1.0)
    conn.send(b"never sent")
    conn.shutdown(1.0)
    recv(conn, 1.0)
    assert conn.state is S.LAST_ACK
    conn.abort(1.1)  # Linux tcp_disconnect: the peer would wait for this data forever
    check(recv_one(conn, 1.1), flags="R.")


def test_text_after_the_peers_fin_is_ignored() -> None:
    conn = established()
    send(conn, seg(r(1), l(1), "F"), 1.0)
    events_of(conn)
    recv(conn, 1.0)
    send(conn, seg(r(2), l(1), "", b"after fin"), 1.1)  # RFC 9293 seventh step
    assert events_of(conn) == [] and conn.state is S.CLOSE_WAIT


def test_zero_window_holds_the_fin_and_probes() -> None:
    conn = established(config(timestamps=False), rtt=0.1)
    send(conn, seg(r(1), l(1), window=0), 1.0)
    conn.shutdown(1.0)
    recv_nothing(conn, 1.0)  # the FIN needs a byte of window, as in Linux
    at = conn.poll_at()
    assert at == pytest.approx(1.3)
    tick(conn, at)
    check(recv_one(conn, at), seq=l(0), length=0, flags=".")  # a window probe
    send(conn, seg(r(1), l(1), window=100), 1.5)
    check(recv_one(conn, 1.5), seq=l(1), flags="F.")
