"""Header prediction (RFC 9293 §3.10.7.4, Van Jacobson's fast path) against the full path.

The fast path must change nothing but speed. So every test here runs *twins*: two
connections built the same way, one with header prediction (``TcpConnection``), one
without (``FullPath``, the class attribute off), fed the same bytes through the TCP
host — the fast twin by ``TcpHost.ingress_known`` (plain ints, a scratch record for
the sender's methods), the full twin by ``TcpHost.ingress`` (a parsed ``Segment`` and
the state machine) — and asked for output at the same times. After every step both
must hold the same TCB (every slot, sub-objects included: RTT estimator, congestion
control, scoreboard, buffers), have raised the same events and sent the same bytes.

The seeded random walks mix what header prediction takes (in-order data, ACKs of new
data, window updates with data) with everything it must decline: duplicate, old and
unsent ACKs, zero windows, out-of-order, old and duplicate data, PAWS-old timestamps,
FIN, RST, SYN, URG/ECE, SACK blocks, a paused reader, loss recovery, timers. Each walk
also checks that the fast path really ran (a walk where it never did proves nothing).
"""

from __future__ import annotations

import enum
import random
from collections import Counter, deque
from typing import Any

import pytest

from ethox_asyncio.stack.common import TRUSTED
from ethox_asyncio.stack.interface import parse_tcp_segment
from ethox_asyncio.stack.tcp import connection as connection_module
from ethox_asyncio.stack.tcp.connection import EV_DATA, TcpConnection
from ethox_asyncio.stack.tcp.host import TcpHost
from ethox_asyncio.stack.tcp.segment import ACK, FIN, PSH, RST, SYN, URG, Segment
from ethox_asyncio.stack.tcp.state import TcpState

from .harness import (
    LOCAL_PORT,
    MASK,
    MSS,
    REMOTE_PORT,
    config,
    established,
    l,
    r,
    recv,
    seg,
)

SRC, DST = 0xC6120002, 0xC6120001  # the peer (198.18.0.2) and us (198.18.0.1)
ECE = 0x40


class FullPath(TcpConnection):
    """The same connection with header prediction off (the reference)."""

    __slots__ = ()
    header_prediction = False


class Counted(TcpConnection):
    """Header prediction on, counting the segments it took."""

    __slots__ = ()
    taken = 0
    declined = 0

    def _predict(self, *args: Any) -> bool:
        done = super()._predict(*args)
        if done:
            type(self).taken += 1
        else:
            type(self).declined += 1
        return done


def _state(value: Any, depth: int = 0) -> Any:
    """A comparable picture of ``value``: plain data, objects by their attributes."""
    if value is None or isinstance(value, (bool, int, float, str, enum.Enum)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(value))
    if isinstance(value, BaseException):
        return (type(value).__name__, value.args, _state(value.__cause__, depth + 1))
    if isinstance(value, (list, tuple, deque)):
        return [_state(v, depth + 1) for v in value]
    if isinstance(value, (dict, Counter)):
        return {k: _state(v, depth + 1) for k, v in sorted(value.items(), key=repr)}
    if depth > 6:
        return type(value).__name__
    fields: dict[str, Any] = {}
    for klass in type(value).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if hasattr(value, name):
                fields[name] = getattr(value, name)
    fields.update(getattr(value, "__dict__", {}))
    return (type(value).__name__, {name: _state(v, depth + 1) for name, v in
                                   sorted(fields.items())})


_NOT_COMPARED = {"events", "owner", "config", "_listener", "_timer_seq", "_timer_at"}


def tcb_state(conn: TcpConnection) -> dict[str, Any]:
    fields = {}
    for klass in type(conn).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if name not in _NOT_COMPARED and hasattr(conn, name):
                fields[name] = _state(getattr(conn, name))
    return fields


def wire_bytes(segment: Segment) -> bytes:
    """The segment as it arrives (checksum field zero: the host is told it was verified)."""
    return segment.header_bytes() + bytes(segment.payload)


def out_bytes(segments: list[Segment]) -> list[tuple[bytes, bytes, int]]:
    return [(s.header_bytes(), bytes(s.payload), s.gso_size) for s in segments]


def drained(conn: TcpConnection) -> list[tuple[str, Any]]:
    out = []
    while conn.events:
        kind, who, arg = conn.events.popleft()
        assert who is conn
        out.append((kind, bytes(arg) if kind == EV_DATA else _state(arg)))
    return out


def _host() -> TcpHost:
    return TcpHost(config(), secret=bytes(32), mtu=1500, events=deque(), stats=Counter())


class Twins:
    """A fast and a full connection in step, each behind a TCP host of its own."""

    def __init__(self, **options: Any) -> None:
        self.fast = established(**options)
        self.full = established(**options)
        self.fast.__class__ = Counted
        self.full.__class__ = FullPath
        self.key = (4, DST, LOCAL_PORT, SRC, REMOTE_PORT)
        self.fast_host, self.full_host = _host(), _host()
        for host, conn in ((self.fast_host, self.fast), (self.full_host, self.full)):
            host.connections[self.key] = conn
            host._keys[conn] = self.key
        self.compare("start")

    def compare(self, step: str) -> None:
        fast, full = tcb_state(self.fast), tcb_state(self.full)
        if fast != full:
            differing = sorted(k for k in fast if fast[k] != full.get(k))
            raise AssertionError(f"{step}: TCBs differ in {differing}: "
                                 f"{[(k, fast[k], full[k]) for k in differing[:3]]}")
        assert drained(self.fast) == drained(self.full), step

    def deliver(self, segment: Segment, now: float, step: str = "") -> None:
        data = wire_bytes(segment)
        # The fast twin as the interface's hot path would hand it over; a segment the
        # host does not take there goes to the general path, as Interface.ingress does.
        parsed = parse_tcp_segment(4, SRC, DST, memoryview(data), False)
        if parsed is None or not self.fast_host.ingress_known(parsed, now):
            self.fast_host.ingress(4, SRC, DST, memoryview(data), TRUSTED, now)
        self.full_host.ingress(4, SRC, DST, memoryview(bytes(data)), TRUSTED, now)
        self.compare(step or repr(segment))

    def output(self, now: float, budget: int = 1000) -> list[Segment]:
        fast, full = recv(self.fast, now, budget), recv(self.full, now, budget)
        assert out_bytes(fast) == out_bytes(full), now
        self.compare(f"output at {now}")
        return fast

    def both(self, method: str, *args: Any) -> None:
        getattr(self.fast, method)(*args)
        getattr(self.full, method)(*args)
        self.compare(method)


@pytest.fixture(autouse=True)
def _counts() -> None:
    Counted.taken = Counted.declined = 0


# --- scripted cases -----------------------------------------------------------------


@pytest.mark.parametrize("ts", [False, True], ids=["no-timestamps", "timestamps"])
def test_in_order_data_takes_the_fast_path_with_the_full_paths_ack_policy(ts: bool) -> None:
    """RFC 5681 §4.2: the first segment is ACKed late, the second at once (quick-ACK
    mode off; with it, the next test)."""
    twins = Twins(cfg=config(quickack=0), ts=ts)
    peer_ts = (1001, twins.fast.ts_recent) if ts else None
    twins.deliver(seg(r(1), l(1), "P", b"a" * 100, ts=peer_ts), 0.1)
    assert twins.fast.ack_at == pytest.approx(0.14) and not twins.fast._ack_now
    assert twins.output(0.1) == []
    twins.deliver(seg(r(101), l(1), "", b"b" * MSS, ts=peer_ts), 0.11)
    assert twins.fast._ack_now
    [ack] = twins.output(0.11)
    assert ack.ack == r(101 + MSS) and not ack.payload
    assert Counted.taken == 2 and Counted.declined == 0


@pytest.mark.parametrize("ts", [False, True], ids=["no-timestamps", "timestamps"])
def test_quick_acks_take_the_fast_path_too(ts: bool) -> None:
    """Linux's quick-ACK mode on both paths: the first segments are ACKed at once, and
    a reply within the ACK timeout makes the connection interactive (delayed again)."""
    twins = Twins(ts=ts)
    peer_ts = (1001, twins.fast.ts_recent) if ts else None
    twins.deliver(seg(r(1), l(1), "P", b"a" * 100, ts=peer_ts), 0.1)
    assert twins.fast._ack_now and twins.fast._quick == 16
    [ack] = twins.output(0.1)
    assert ack.ack == r(101) and twins.fast._quick == 15
    twins.both("send", b"reply")
    twins.output(0.11)
    assert twins.fast._pingpong
    twins.deliver(seg(r(101), l(6), "P", b"b" * 100, ts=peer_ts), 0.2)
    assert not twins.fast._ack_now and twins.fast.ack_at == pytest.approx(0.24)
    assert Counted.taken == 2 and Counted.declined == 0


def test_data_is_delivered_as_a_view_of_the_frame_and_the_scratch_keeps_none() -> None:
    twins = Twins(ts=True)
    frame = wire_bytes(seg(r(1), l(1), "P", b"hello", ts=(1001, 0)))
    parsed = parse_tcp_segment(4, SRC, DST, memoryview(frame), False)
    assert parsed is not None and twins.fast_host.ingress_known(parsed, 0.1)
    [(kind, _, payload)] = list(twins.fast.events)
    assert kind == EV_DATA and isinstance(payload, memoryview) and payload.obj is frame
    assert connection_module._SCRATCH.payload == b""  # no view of the frame kept
    assert Counted.taken == 1


@pytest.mark.parametrize("ts", [False, True], ids=["no-timestamps", "timestamps"])
def test_a_pure_ack_of_new_data_takes_the_fast_path(ts: bool) -> None:
    twins = Twins(ts=ts)
    twins.both("send", b"x" * 3000)
    sent = twins.output(0.1)
    assert len(sent) == 3
    peer_ts = (1010, sent[-1].ts_val) if ts else None
    twins.deliver(seg(r(1), l(1 + MSS), "", ts=peer_ts), 0.15)
    assert twins.fast.snd_una == l(1 + MSS) and twins.fast.rto_at is not None
    twins.deliver(seg(r(1), l(3001), "", ts=peer_ts), 0.16)
    assert twins.fast.rto_at is None and twins.fast.send_buffered == 0
    assert Counted.taken == 2


def _declined(twins: Twins, segment: Segment, now: float) -> None:
    before = Counted.taken
    twins.deliver(segment, now)
    assert Counted.taken == before, f"predicted: {segment}"
    twins.output(now)


@pytest.mark.parametrize("case", [
    "fin", "rst", "syn", "urg", "ece", "duplicate-ack", "window-update", "old-ack",
    "unsent-ack", "zero-window", "out-of-order", "old-data", "paws", "missing-ts",
    "sack-blocks", "not-reading", "beyond-window",
])
def test_what_header_prediction_declines_gives_the_full_paths_outcome(case: str) -> None:
    """Each declined case once, on a connection with data in flight both ways."""
    twins = Twins(ts=True, sack=True)
    twins.both("send", b"y" * 2000)
    sent = twins.output(0.1)
    ecr = sent[-1].ts_val
    ts = (1010, ecr)
    segment = {
        "fin": seg(r(1), l(1), "F", b"z", ts=ts),
        "rst": seg(r(1), l(1), "R", ts=ts),
        "syn": seg(r(1), l(1), "S", ts=ts),
        "urg": seg(r(1), l(1), "U", b"z", ts=ts),
        "ece": Segment(REMOTE_PORT, LOCAL_PORT, r(1), l(1), ACK | ECE, 65535, b"z",
                       None, None, False, (), 1010, ecr),
        "duplicate-ack": seg(r(1), l(1), "", ts=ts),
        "window-update": seg(r(1), l(1), "", window=1000, ts=ts),
        "old-ack": seg(r(1), (l(1) - 5) & MASK, "", b"z", ts=ts),
        "unsent-ack": seg(r(1), l(5000), "", ts=ts),
        "zero-window": seg(r(1), l(1001), "", window=0, ts=ts),
        "out-of-order": seg(r(101), l(1), "", b"z" * 10, ts=ts),
        "old-data": seg((r(1) - 10) & MASK, l(1), "", b"z" * 10, ts=ts),
        "paws": seg(r(1), l(1001), "", b"z", ts=(999, ecr)),
        "missing-ts": seg(r(1), l(1001), "", b"z"),
        "sack-blocks": seg(r(1), l(1001), "", ts=ts, sack=((l(1400), l(1600)),)),
        "not-reading": seg(r(1), l(1001), "", b"z", ts=ts),
        "beyond-window": seg(r(1), l(1), "", b"z" * 2000, ts=ts),
    }[case]
    if case == "not-reading":
        twins.both("set_reading", False)
    if case == "beyond-window":
        twins.fast.rcv_adv = twins.full.rcv_adv = (r(1) + 1000) & MASK
    _declined(twins, segment, 0.2)


def test_in_recovery_acks_take_the_full_path() -> None:
    twins = Twins(ts=False)
    twins.both("send", b"w" * (8 * MSS))
    twins.output(0.1)
    for i in range(3):  # three duplicate ACKs: fast retransmit (RFC 5681 §3.2)
        twins.deliver(seg(r(1), l(1)), 0.11 + i * 0.001)
        twins.output(0.11 + i * 0.001)
    assert twins.fast.recovery.in_recovery
    _declined(twins, seg(r(1), l(1 + 2 * MSS)), 0.2)  # a partial ACK


# --- random walks -------------------------------------------------------------------


class Walk:
    """A scripted peer doing random things to the twins (see the module docstring)."""

    def __init__(self, rng: random.Random, twins: Twins, ts: bool) -> None:
        self.rng = rng
        self.twins = twins
        self.ts = ts
        self.now = 0.0
        self.peer_nxt = r(1)  # the peer's next sequence number
        self.peer_ts = 1000
        self.last_ecr = 0
        self.late = False  # FIN and RST only in the last steps

    def our(self) -> TcpConnection:
        return self.twins.fast

    def timestamps(self) -> tuple[int, int] | None:
        if not self.ts:
            return None if self.rng.random() > 0.01 else (self.peer_ts, self.last_ecr)
        roll = self.rng.random()
        if roll < 0.02:
            return None
        if roll < 0.05:
            return ((self.peer_ts - self.rng.randint(1, 100)) & MASK, self.last_ecr)
        self.peer_ts = (self.peer_ts + self.rng.choice((0, 0, 1, 3))) & MASK
        return self.peer_ts, self.last_ecr

    def ack(self) -> int:
        conn = self.our()
        una, top = conn.snd_una, conn.snd_max
        flight = (top - una) & MASK
        roll = self.rng.random()
        if roll < 0.45 or not flight:
            return top if roll < 0.4 else una
        if roll < 0.8:
            return (una + self.rng.randint(1, flight)) & MASK
        if roll < 0.9:
            return (una - self.rng.randint(1, 3000)) & MASK
        if roll < 0.95:
            return (top + self.rng.randint(1, 3000)) & MASK
        return una

    def window(self) -> int:
        roll = self.rng.random()
        if roll < 0.8:
            return 65535
        if roll < 0.9:
            return self.rng.randint(1, 65535)
        return 0 if roll < 0.95 else 512

    def flags(self) -> int:
        roll = self.rng.random()
        if roll < 0.97:
            return ACK | (PSH if roll < 0.3 else 0)
        if self.late:  # they end the walk (or its fast part): only near the end
            return ACK | self.rng.choice((FIN, RST, SYN, URG, ECE, PSH | FIN))
        return ACK | self.rng.choice((SYN, URG, ECE))

    def segment(self) -> Segment:
        rng = self.rng
        roll = rng.random()
        payload = b""
        # A peer resends from what we acknowledged (go-back-N), so in-order is RCV.NXT.
        seq = self.peer_nxt = self.our().rcv_nxt
        if roll < 0.6:
            payload = bytes([rng.randrange(256)]) * rng.choice((1, 64, 500, MSS))
        elif roll < 0.7:
            payload = b"o" * rng.randint(1, 800)
            seq = (seq + rng.randint(1, 3000)) & MASK  # out of order
        elif roll < 0.75:
            payload = b"d" * rng.randint(1, 800)
            seq = (seq - rng.randint(1, 1500)) & MASK  # old or overlapping
        ts = self.timestamps()
        sack: tuple[tuple[int, int], ...] = ()
        conn = self.our()
        if conn.sack_ok and rng.random() < 0.1 and conn.snd_max != conn.snd_una:
            left = (conn.snd_una + rng.randint(1, 2000)) & MASK
            sack = ((left, (left + rng.randint(1, 1000)) & MASK),)
        flags = self.flags()
        if flags & SYN:
            payload = b""
        segment = Segment(REMOTE_PORT, LOCAL_PORT, seq, self.ack(), flags, self.window(),
                          payload, None, None, False, sack, *(ts or (None, None)))
        return segment

    def step(self, i: int) -> None:
        rng = self.rng
        twins = self.twins
        self.now += rng.choice((0.0, 0.0001, 0.001, 0.01, 0.05))
        roll = rng.random()
        if roll < 0.55:
            twins.deliver(self.segment(), self.now, f"step {i}")
        elif roll < 0.7:
            for out in twins.output(self.now, rng.choice((1, 2, 1000))):
                if out.ts_val is not None:
                    self.last_ecr = out.ts_val
        elif roll < 0.8:
            if twins.fast._state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT):
                twins.both("send", bytes(rng.choice((1, 64, 1000, 5000))))
        elif roll < 0.87:
            n = rng.randint(0, 4000)
            twins.both("consumed", n)
        elif roll < 0.9:
            twins.both("set_reading", rng.random() < 0.7)
        else:
            at = twins.fast.poll_at()
            assert at == twins.full.poll_at()
            if at is not None and rng.random() < 0.5:
                self.now = max(self.now, at)
                twins.both("on_timer", self.now)


WALKS = [(seed, ts, sack) for seed in range(12) for ts, sack in
         ((True, True), (False, False), (True, False), (False, True))]


@pytest.mark.parametrize(("seed", "ts", "sack"), WALKS)
def test_random_walks_give_identical_tcbs_events_and_segments(seed: int, ts: bool,
                                                              sack: bool) -> None:
    rng = random.Random(seed)
    twins = Twins(ts=ts, sack=sack, wscale=rng.choice((None, 0, 7)))
    walk = Walk(rng, twins, ts)
    for i in range(400):
        walk.late = i >= 350
        walk.step(i)
        if twins.fast._state is TcpState.CLOSED:
            break
    assert Counted.taken > 10, "the walk hardly took the fast path"


def test_a_long_in_order_exchange_is_almost_all_fast_path() -> None:
    """Ping-pong and bulk both ways, the common case: nearly every segment predicted."""
    twins = Twins(ts=True, sack=True)
    walk = Walk(random.Random(99), twins, True)
    now = 0.0
    for i in range(300):
        now += 0.001
        twins.both("send", b"q" * 700)
        for out in twins.output(now):
            walk.last_ecr = out.ts_val or walk.last_ecr
        payload = b"p" * 64
        twins.deliver(Segment(REMOTE_PORT, LOCAL_PORT, walk.peer_nxt, twins.fast.snd_max,
                              ACK | PSH, 65535, payload, None, None, False, (),
                              1000 + i, walk.last_ecr), now, f"request {i}")
        walk.peer_nxt = (walk.peer_nxt + len(payload)) & MASK
        twins.both("consumed", len(payload))  # the echo application read it
    assert Counted.taken >= 299 and Counted.declined <= 1
