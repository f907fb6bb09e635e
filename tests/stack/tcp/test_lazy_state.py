"""State that most connections never need is made on first use (the contract of .tcb).

``prr`` (on entering the first fast recovery), ``_ooo`` (the first out-of-order text),
``_held`` (data held while not reading) and ``_ctl_out`` (queued control segments) are
``None`` until then. Two kinds of check:

- scripted: each is ``None`` on a fresh connection, made at the documented moment,
  with the values the eager constructor gave it, and dropped where the contract says;
- differential: a :class:`~.pair.Pair` transfer through loss and reordering, once as it
  runs and once with every one of them made eagerly at construction, as before the
  change; every segment on the wire (bytes and time), every event and the data must
  be the same.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from ethox_asyncio.stack.tcp.buffers import OutOfOrderQueue
from ethox_asyncio.stack.tcp.config import TcpConfig
from ethox_asyncio.stack.tcp.prr import Prr
from ethox_asyncio.stack.tcp.segment import Segment
from ethox_asyncio.stack.tcp.tcb import Tcb

from .harness import (
    EV_DATA,
    config,
    connection,
    data_of,
    established,
    events_of,
    l,
    r,
    recv,
    recv_one,
    seg,
    send,
)
from .pair import Channel, Pair

MSS = 1460
MASK = 0xFFFFFFFF


def test_a_new_connection_has_none_of_them() -> None:
    conn = established(config(), sack=True, ts=True)
    assert conn.prr is None
    assert conn._ooo is None
    assert conn._held is None
    assert conn._ctl_out is None  # the handshake's ACK was taken: the queue went too


def test_the_out_of_order_queue_is_made_for_the_first_hole_with_the_buffer_as_limit() -> None:
    cfg = config(recv_buffer=20000)
    conn = established(cfg, sack=True)
    send(conn, seg(r(1 + MSS), l(1), payload=b"b" * MSS), 1.0)  # a hole at r(1)
    ooo = conn._ooo
    assert isinstance(ooo, OutOfOrderQueue)
    assert ooo.limit == 20000 and ooo.max_ranges == OutOfOrderQueue(0).max_ranges
    assert ooo.bytes_held == MSS
    [ack] = recv(conn, 1.0)
    assert ack.sack_blocks == ((r(1 + MSS) & MASK, r(1 + 2 * MSS) & MASK),)
    send(conn, seg(r(1), l(1), payload=b"a" * MSS), 1.01)  # fills it
    assert data_of(conn) == b"a" * MSS + b"b" * MSS
    assert conn._ooo is ooo and not ooo  # kept, empty
    send(conn, seg(r(1 + 3 * MSS), l(1), payload=b"d" * 10), 1.02)
    assert conn._ooo is ooo and ooo.bytes_held == 10


def test_an_out_of_order_fin_alone_makes_no_queue() -> None:
    conn = established(config(), sack=True)
    send(conn, seg(r(11), l(1), "F"), 1.0)  # FIN beyond a hole of 10 bytes
    assert conn._ooo is None and conn._ooo_fin == r(11) & MASK
    [ack] = recv(conn, 1.0)
    assert ack.sack_blocks == ((r(11) & MASK, r(12) & MASK),)


def test_release_drops_the_out_of_order_queue() -> None:
    conn = established(config(), sack=True)
    send(conn, seg(r(1 + MSS), l(1), payload=b"b" * MSS), 1.0)
    assert conn._ooo is not None
    conn.abort(1.1)
    assert conn._ooo is None


def test_held_data_is_a_list_only_while_held() -> None:
    conn = established(config())
    conn.set_reading(False)
    send(conn, seg(r(1), l(1), payload=b"one"), 1.0)
    send(conn, seg(r(4), l(1), payload=b"two"), 1.01)
    assert conn._held == [b"one", b"two"] and conn.receive_held == 6
    assert data_of(conn) == b""
    conn.set_reading(True)
    assert conn._held is None and conn.receive_held == 0
    assert data_of(conn) == b"onetwo"


def test_control_segments_queue_in_order_and_a_smaller_budget_keeps_the_rest() -> None:
    conn = established(config())
    rst = Segment(conn.local_port, conn.remote_port, 7, 0, 0x04, 0)
    conn._queue_ctl(rst)
    conn._queue_ctl(rst)
    conn._queue_ctl(rst)
    queue = conn._ctl_out
    assert queue is not None and len(queue) == 3
    assert conn.output(1.0, 2) == [rst, rst]
    assert conn._ctl_out is queue and len(queue) == 1  # what the budget left
    assert conn.output(1.0, 2) == [rst]
    assert conn._ctl_out is None


def test_prr_is_made_on_entering_the_first_recovery_and_reused() -> None:
    conn = established(config(congestion_control="newreno", rack=False, tlp=False),
                       sack=True, rtt=0.1)
    conn.send(b"d" * 30 * MSS)
    assert len(recv(conn, 1.0)) == 10
    assert conn.prr is None
    una = l(1)
    for last in (2, 3, 4):  # SACK 2..last: the third duplicate ACK enters recovery
        send(conn, seg(r(1), una, sack=((l(1 + MSS), l(1 + last * MSS)),)), 1.1)
    assert conn.recovery.in_recovery
    prr = conn.prr
    assert isinstance(prr, Prr)
    # Started as the eager object was (RFC 6937 §3): ssthresh, RecoverFS = the flight.
    assert prr.ssthresh == conn.cc.ssthresh == 5 * MSS
    assert prr.recover_fs == 10 * MSS
    recv(conn, 1.1)
    assert prr.out >= MSS  # the fast retransmit counted
    # A full ACK ends the episode; the next one reuses the same object, restarted.
    send(conn, seg(r(1), conn.snd_max), 1.3)
    assert not conn.recovery.in_recovery
    recv(conn, 1.3)
    assert conn.prr is prr


def test_without_prr_the_object_still_counts_what_recovery_sends() -> None:
    # TcpConfig.prr = False: never started (as the eager one never was), but what is
    # sent in recovery is counted, as before.
    conn = established(config(prr=False, congestion_control="newreno", rack=False,
                              tlp=False), sack=True, rtt=0.1)
    conn.send(b"d" * 30 * MSS)
    recv(conn, 1.0)
    for last in (2, 3, 4):
        send(conn, seg(r(1), l(1), sack=((l(1 + MSS), l(1 + last * MSS)),)), 1.1)
    sent = recv(conn, 1.1)
    prr = conn.prr
    assert isinstance(prr, Prr)
    assert (prr.ssthresh, prr.recover_fs, prr.delivered) == (0, 1, 0)
    assert prr.out == sum(len(s.payload) for s in sent) > 0


# -- differential: lazy against eager ------------------------------------------------


def _eager(monkeypatch: pytest.MonkeyPatch) -> list[Tcb]:
    """Every connection made from now on makes them all at construction, as before;
    returns the list of those made."""
    original = Tcb.__init__
    made: list[Tcb] = []

    def init(self: Tcb, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.prr = Prr()
        self._ooo = OutOfOrderQueue(self._recv_buffer)
        self._held = []
        self._ctl_out = []
        made.append(self)

    monkeypatch.setattr(Tcb, "__init__", init)
    return made


def _run(cfg_a: TcpConfig, cfg_b: TcpConfig, seed: int, *, loss: float, jitter: float,
         paused: bool) -> tuple[list[Any], Pair]:
    rng = random.Random(seed)
    a_data, b_data = rng.randbytes(150_000), rng.randbytes(90_000)
    channel = Channel(random.Random(seed + 1), loss=loss, jitter=jitter)
    pair = Pair(cfg_a, cfg_b, channel, a_data, b_data)
    wire: list[Any] = []
    push = channel.push

    def record(dst: int, segment: Segment, now: float) -> None:
        wire.append((now, dst, segment.header_bytes(), bytes(segment.payload)))
        push(dst, segment, now)

    channel.push = record  # type: ignore[method-assign]
    seen: list[Any] = []
    held = False
    for _ in range(200_000):
        # The events of the last step, before the next consumes them.
        seen.extend((kind, source is pair.a, bytes(arg) if kind == EV_DATA else repr(arg))
                    for kind, source, arg in pair.events)
        if paused and pair.b is not None:
            # B stops reading for a while now and then: data is held (``_held``).
            pair.b.set_reading(not (10.05 <= pair.now < 10.3 or 10.5 <= pair.now < 10.6))
            held = held or pair.b.receive_held > 0
        if pair.now > 600.0 or not pair.step():
            break
    pair.run()
    assert pair.app(pair.a).received == b_data
    assert pair.b is not None and pair.app(pair.b).received == a_data
    assert held == paused  # (the pauses came while data was arriving)
    return wire + seen, pair


@pytest.mark.parametrize(("cfg_a", "cfg_b", "loss", "jitter", "paused"), [
    (TcpConfig(), TcpConfig(), 0.04, 0.004, False),
    (TcpConfig(), config(recv_buffer=16384), 0.02, 0.01, True),
    (config(sack=False, timestamps=False), config(sack=False), 0.03, 0.002, False),
    (config(prr=False, congestion_control="newreno"), TcpConfig(), 0.04, 0.003, True),
], ids=["default", "paused-reader", "no-sack", "no-prr"])
def test_lazy_state_changes_nothing_on_the_wire(
        monkeypatch: pytest.MonkeyPatch, cfg_a: TcpConfig, cfg_b: TcpConfig, loss: float,
        jitter: float, paused: bool) -> None:
    lazy, pair = _run(cfg_a, cfg_b, 21, loss=loss, jitter=jitter, paused=paused)
    # The paths under test ran: recovery, holes, and (paused) data held.
    stats = [pair.a.stats, pair.b.stats if pair.b is not None else None]
    assert any(s and s["tcp_retransmitted_segments"] for s in stats)
    assert any(s and s["tcp_ooo_segments"] for s in stats)
    with monkeypatch.context() as patch:
        made = _eager(patch)
        eager, eager_pair = _run(cfg_a, cfg_b, 21, loss=loss, jitter=jitter, paused=paused)
    assert made == [eager_pair.a, eager_pair.b]  # both ends were made eagerly
    assert len(lazy) == len(eager)
    for index, (mine, theirs) in enumerate(zip(lazy, eager, strict=True)):
        assert mine == theirs, index


def test_a_reset_for_a_bad_ack_in_syn_sent_goes_through_a_queue_made_for_it() -> None:
    # RFC 9293 §3.10.7.3: SEG.ACK > SND.NXT in SYN-SENT: <SEQ=SEG.ACK><CTL=RST>, queued.
    conn = connection(config())
    conn.open(0.0)
    recv_one(conn, 0.0)
    assert conn._ctl_out is None
    send(conn, seg(r(0), l(5), "S"), 0.1)  # acknowledges what was never sent
    assert conn._ctl_out is not None and len(conn._ctl_out) == 1
    [rst] = recv(conn, 0.1)
    assert rst.flags == 0x04 and rst.seq == l(5) & MASK
    assert conn._ctl_out is None
    assert events_of(conn) == []
