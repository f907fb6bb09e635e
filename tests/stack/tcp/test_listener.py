"""TcpListener: LISTEN (RFC 9293 §3.10.7.2), SYN queue and accept queue bounds as Linux
(no SYN cookies, tcp_abort_on_overflow = 0)."""

from __future__ import annotations

from collections import deque

from ethox_asyncio.stack.tcp.connection import EV_ACCEPT, TcpConnection
from ethox_asyncio.stack.tcp.isn import IsnGenerator
from ethox_asyncio.stack.tcp.listener import TcpListener
from ethox_asyncio.stack.tcp.state import TcpState

from .harness import (
    EV_CLOSED,
    EV_DATA,
    LOCAL_PORT,
    check,
    config,
    drain,
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


def make(backlog: int = 8, **cfg):  # type: ignore[no-untyped-def]
    events: deque = deque()
    listener = TcpListener(config(timestamps=False, **cfg), local_port=LOCAL_PORT,
                           backlog=backlog, events=events, isn=lambda *a: l(0))
    return listener


def syn(listener: TcpListener, port: int, now: float = 1.0) -> TcpConnection | None:
    return listener.on_syn(seg(r(0), None, "S", mss=1460), 1, 2, port, 1460, now)


def complete(conn: TcpConnection, now: float = 1.1) -> None:
    recv(conn, now)
    send(conn, seg(r(1), l(1)), now)


def test_syn_opens_a_half_open_connection() -> None:
    listener = make()
    conn = syn(listener, 1000)
    assert conn is not None and conn.state is S.SYN_RECEIVED
    assert conn.remote_port == 1000 and conn.local_port == LOCAL_PORT
    assert listener.syn_queue_len == 1 and listener.stats["passive_opens"] == 1
    check(recv_one(conn, 1.0), flags="S.", seq=l(0), ack=r(1))


def test_segments_that_do_not_open_a_connection() -> None:
    listener = make()
    for flags, ack, stat in (("R", None, "listen_rst_drop"), ("", l(5), "listen_ack_reset"),
                             ("SR", None, "listen_rst_drop"), ("SF", None, "listen_syn_fin_drop"),
                             ("", None, "listen_no_syn_drop"), ("S", l(1), "listen_ack_reset")):
        assert listener.on_syn(seg(r(0), ack, flags), 1, 2, 1000, 1460, 1.0) is None
        assert listener.stats[stat] >= 1
    assert listener.syn_queue_len == 0


def test_syn_queue_is_bounded_by_the_backlog() -> None:
    listener = make(backlog=2)
    assert syn(listener, 1001) is not None
    assert syn(listener, 1002) is not None
    assert syn(listener, 1003) is None  # Linux without SYN cookies
    assert listener.stats["ListenDrops"] == 1


def test_syn_queue_is_bounded_by_syn_backlog() -> None:
    listener = make(backlog=100, syn_backlog=3)
    assert all(syn(listener, 1000 + i) is not None for i in range(3))
    assert syn(listener, 2000) is None


def test_handshake_moves_the_connection_to_the_accept_queue() -> None:
    listener = make()
    conn = syn(listener, 1000)
    assert conn is not None
    complete(conn)
    assert conn.state is S.ESTABLISHED
    assert listener.syn_queue_len == 0 and listener.accept_queue_len == 1
    assert list(listener.events) == [(EV_ACCEPT, listener, conn)]
    assert listener.accept() is conn and listener.accept() is None


def test_accept_queue_full_drops_the_final_ack_and_syns() -> None:
    listener = make(backlog=2)
    a, b = syn(listener, 1001), syn(listener, 1002)
    assert a is not None and b is not None
    complete(a)
    complete(b)
    c, d = syn(listener, 1003), syn(listener, 1004)
    assert c is not None and d is not None
    complete(c)  # Linux's accept queue holds backlog + 1
    recv(d, 1.1)
    send(d, seg(r(1), l(1), "", b"hi"), 1.1)
    assert d.state is S.SYN_RECEIVED  # final ACK dropped (tcp_abort_on_overflow = 0)
    assert listener.stats["ListenOverflows"] == 1
    assert syn(listener, 1005) is None
    assert listener.stats["ListenOverflows"] == 2
    # The application accepts one; the client's retransmission now completes.
    listener.accept()
    tick(d, 2.1)
    check(recv_one(d, 2.1), flags="S.")  # the SYN-ACK timer kept running
    send(d, seg(r(1), l(1), "", b"hi"), 2.2)
    assert d.state is S.ESTABLISHED


def test_data_before_accept_is_held_until_reading() -> None:
    listener = make()
    conn = syn(listener, 1000)
    assert conn is not None
    recv(conn, 1.0)
    send(conn, seg(r(1), l(1), "P", b"early"), 1.1)
    send(conn, seg(r(6), l(1), "P", b" bird"), 1.2)
    events = listener.events
    assert drain(events) == [(EV_ACCEPT, conn)]
    assert listener.accept() is conn
    conn.set_reading(True)
    assert drain(events) == [(EV_DATA, b"early bird")]


def test_connection_reset_in_the_accept_queue_is_still_handed_over() -> None:
    listener = make()
    conn = syn(listener, 1000)
    assert conn is not None
    complete(conn)
    drain(listener.events)
    send(conn, seg(r(1), None, "R"), 1.2)
    [(kind, error)] = drain(listener.events)
    assert kind == EV_CLOSED and isinstance(error, ConnectionResetError)  # it was announced
    assert listener.accept() is conn and conn.finished  # as Linux: accept(), then ECONNRESET


def test_close_aborts_connections_not_yet_accepted() -> None:
    listener = make()
    half = syn(listener, 1001)
    full = syn(listener, 1002)
    assert half is not None and full is not None
    recv(half, 1.0)
    complete(full)
    drain(listener.events)
    listener.close(1.5)
    check(recv_one(half, 1.5), flags="R.")
    check(recv_one(full, 1.5), flags="R.")
    assert half.finished and full.finished
    assert drain(listener.events) == [(EV_CLOSED, None)]  # only the announced one
    assert syn(listener, 1003) is None


def test_accepted_connection_is_no_longer_the_listeners() -> None:
    listener = make()
    conn = syn(listener, 1000)
    assert conn is not None
    complete(conn)
    assert listener.accept() is conn
    listener.close(2.0)
    assert conn.state is S.ESTABLISHED
    recv_nothing(conn, 2.0)


def test_isn_generator_and_timestamp_offset() -> None:
    events: deque = deque()
    listener = TcpListener(config(), local_port=443, backlog=8, events=events,
                           isn=IsnGenerator(bytes(16)))
    a = listener.on_syn(seg(r(0), None, "S", mss=1460, ts=(1, 0)), 1, 2, 1000, 1460, 1.0)
    b = listener.on_syn(seg(r(0), None, "S", mss=1460, ts=(1, 0)), 1, 2, 1001, 1460, 1.0)
    assert a is not None and b is not None
    assert a.iss != b.iss  # RFC 6528 per four-tuple
    sa, sb = recv_one(a, 1.0), recv_one(b, 1.0)
    assert sa.ts_val != sb.ts_val  # per-connection offsets (RFC 7323 §7.1)
