"""Property: any interleaving of user calls and channel faults keeps TCP's promises.

Two whole :class:`Interface` objects (both families) are joined by a channel the test
controls frame by frame: Hypothesis draws a list of steps — user calls on either end
(``send`` of chunks of random sizes, ``shutdown``, ``set_reading(False/True)``,
``consumed(n)`` of part of what was delivered) and channel events (deliver the frame
at a given position of a direction's queue — any position but the head is a
reordering —, drop it, deliver a duplicate of it and keep it, deliver the whole
queue in order) and time passing (timers: RTO, persist, delayed ACK, TIME-WAIT).
After every step both interfaces egress, as the loop pumps after every stimulus, and
what they send joins the channel queues. The handshake is under the same faults.

Checked throughout: nothing raises; after egress ``poll_at()`` is None or in the
future (a deadline in the past would spin the loop); every ``EV_DATA`` is exactly the next bytes the
other application sent (what each application sees is a prefix of what the other
sent: no byte lost, duplicated or reordered); ``EV_CLOSED`` never comes early.
Then the faults stop: reading resumes, everything delivered is consumed, both
ends shut down, the channel delivers in order and time runs on: each application
has received *all* the other sent, ``EV_EOF`` and ``EV_CLOSED(None)`` came exactly
once each, the ends are in TIME-WAIT or CLOSED (at least one in TIME-WAIT: someone
closed first), and after 2·MSL both connection tables are empty.

The CI run is derandomised (the same examples every run, a few seconds); the long
randomised run is ``ETHOX_SOAK=1 .venv/bin/python -m pytest -m soak
tests/stack/tcp/test_tcp_properties.py`` (``ETHOX_SOAK_EXAMPLES``, 2000 by default).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ethox_asyncio.device.base import frame_bytes
from ethox_asyncio.stack.interface import Interface
from ethox_asyncio.stack.tcp.config import TcpConfig
from ethox_asyncio.stack.tcp.connection import (
    EV_ACCEPT,
    EV_CLOSED,
    EV_DATA,
    EV_EOF,
    EV_ESTABLISHED,
    TcpConnection,
)
from ethox_asyncio.stack.tcp.listener import TcpListener
from ethox_asyncio.stack.tcp.state import TcpState
from tests.stack.tcp.test_fault_matrix import (
    ADDRESSES,
    SERVER_PORT,
    SOAK,
    NearWrapIsn,
    make_interface,
    pattern,
)

MAX_SENT = 96 * 1024  # per application, over a whole example
MAX_FAULTY_TIME = 40.0  # virtual seconds of the faulty phase (below every give-up timer)
_S = TcpState
_CAN_SEND = frozenset({_S.SYN_SENT, _S.ESTABLISHED, _S.CLOSE_WAIT})
_CAN_SHUT = frozenset({_S.ESTABLISHED, _S.CLOSE_WAIT})
_AFTER_CLOSE = frozenset({_S.TIME_WAIT, _S.CLOSED})
CLIENT_STREAM = pattern(11, MAX_SENT)
SERVER_STREAM = pattern(12, MAX_SENT)


@dataclass
class App:
    name: str
    iface: Interface
    stream: bytes  # what this application will send, in order
    conn: TcpConnection | None = None
    sent: int = 0  # bytes of ``stream`` handed to send()
    received: bytearray = field(default_factory=bytearray)
    unconsumed: int = 0
    reading: bool = True
    shut: bool = False
    eofs: int = 0
    closed: list[BaseException | None] = field(default_factory=list)
    states: list[TcpState] = field(default_factory=list)


class Channel:
    """Two interfaces, two FIFO queues of frames between them, one virtual clock."""

    def __init__(self, family: int, tcp: TcpConfig | None = None) -> None:
        self.family = family
        self.now = 0.0
        a, b = make_interface(1, tcp), make_interface(2, tcp)
        a.tcp.isn = NearWrapIsn(2000)  # type: ignore[assignment]
        b.tcp.isn = NearWrapIsn(5000)  # type: ignore[assignment]
        self.client = App("client", a, CLIENT_STREAM)
        self.server = App("server", b, SERVER_STREAM)
        self.apps = (self.client, self.server)
        self.queues: tuple[list[bytes], list[bytes]] = ([], [])  # A→B, B→A
        self.zero_windows = 0  # pumps that found a sender facing a zero window (diagnostic)
        a_ip, b_ip = ADDRESSES[family]
        self.listener: TcpListener = b.tcp.listen(family, 0, SERVER_PORT, backlog=4)
        self.client.conn = a.tcp.connect(family, int(a_ip), 0, int(b_ip), SERVER_PORT,
                                         self.now)
        self.pump()

    def peer(self, app: App) -> App:
        return self.server if app is self.client else self.client

    # --- the loop ----------------------------------------------------------------------

    def pump(self) -> None:
        """Egress both ends into the channel (the loop pumps after every stimulus)."""
        for index, app in enumerate(self.apps):
            while True:
                out = [frame_bytes(f) for f in app.iface.egress(self.now, 64)]
                self.queues[index].extend(out)
                if len(out) < 64:
                    break
            self.events(app)
            conn = app.conn
            if conn is not None and conn.state in _CAN_SHUT and not conn.snd_wnd \
                    and conn.send_buffered:
                self.zero_windows += 1

    def ingress(self, direction: int, frame: bytes) -> None:
        app = self.apps[1 - direction]
        app.iface.ingress(frame, self.now)
        self.events(app)

    def events(self, app: App) -> None:
        events = app.iface.events
        while events:
            event = events.popleft()
            if not isinstance(event, tuple):
                continue
            kind, obj, arg = event
            if kind == EV_ACCEPT:
                assert app is self.server and obj is self.listener
                assert self.server.conn is None, "a second connection was accepted"
                conn = self.listener.accept()
                assert conn is arg
                app.conn = conn
                conn.set_reading(True)
                app.iface.tcp.touch(conn)
                continue
            assert obj is app.conn, f"{app.name}: {kind} for {obj!r}"
            if kind == EV_ESTABLISHED:
                assert app is self.client
            elif kind == EV_DATA:
                data = bytes(arg)
                peer = self.peer(app)
                at = len(app.received)
                assert at + len(data) <= peer.sent and \
                    peer.stream[at:at + len(data)] == data, (
                        f"{app.name} got {len(data)} bytes at {at} that are not what "
                        f"{peer.name} sent there ({peer.sent} sent)")
                app.received += data
                app.unconsumed += len(data)
            elif kind == EV_EOF:
                app.eofs += 1
                peer = self.peer(app)
                assert peer.shut and len(app.received) == peer.sent, (
                    f"{app.name}: EOF after {len(app.received)} of {peer.sent} bytes")
            elif kind == EV_CLOSED:
                app.closed.append(arg)
        for one in self.apps:
            if one.conn is not None and (not one.states or one.states[-1] is not one.conn.state):
                one.states.append(one.conn.state)

    # --- user calls ------------------------------------------------------------------------

    def send(self, app: App, size: int) -> None:
        conn = app.conn
        if conn is None or app.shut or conn.state not in _CAN_SEND:
            return
        size = min(size, MAX_SENT - app.sent)
        if size <= 0:
            return
        conn.send(app.stream[app.sent:app.sent + size])
        app.sent += size
        app.iface.tcp.touch(conn)

    def shutdown(self, app: App) -> None:
        conn = app.conn
        if conn is None or app.shut or conn.state not in _CAN_SHUT:
            return
        conn.shutdown(self.now)
        app.shut = True
        app.iface.tcp.touch(conn)

    def set_reading(self, app: App, reading: bool) -> None:
        if app.conn is None:
            return
        app.reading = reading
        app.conn.set_reading(reading)
        app.iface.tcp.touch(app.conn)
        self.events(app)

    def consume(self, app: App, share: float) -> None:
        n = int(app.unconsumed * share) if share < 1 else app.unconsumed
        if app.conn is None or n <= 0:
            return
        app.unconsumed -= n
        app.conn.consumed(n)
        app.iface.tcp.touch(app.conn)

    # --- the end: no more faults ----------------------------------------------------------

    def settle(self) -> None:
        """Deliver in order, read and consume everything, shut down, let time run."""
        for app in self.apps:
            if app.conn is not None and not app.reading:
                self.set_reading(app, True)
        deadline = self.now + 900.0
        for _ in range(200_000):  # an ACK war would spin here without time moving
            moved = False
            for direction in (0, 1):
                queue = self.queues[direction]
                while queue:
                    self.ingress(direction, queue.pop(0))
                    moved = True
            for app in self.apps:
                self.consume(app, 1.0)
                if app.conn is not None and not app.shut and app.conn.state in _CAN_SHUT:
                    self.shutdown(app)
            self.pump()
            if self.done():
                break
            if moved or any(self.queues):
                continue
            at = min((d for d in (self.client.iface.poll_at(), self.server.iface.poll_at())
                      if d is not None), default=None)
            assert at is not None and at <= deadline, (
                f"stalled at t={self.now:.3f}: {self.describe()}")
            self.now = max(self.now, at)
        else:
            raise AssertionError(f"no end in sight at t={self.now:.3f}: {self.describe()}")

    def done(self) -> bool:
        return all(app.conn is not None and app.closed and app.conn.state in _AFTER_CLOSE
                   for app in self.apps)

    def describe(self) -> str:
        return "; ".join(
            f"{app.name} {app.conn!r} sent {app.sent} shut {app.shut} got "
            f"{len(app.received)} reading {app.reading} states "
            f"{[s.name for s in app.states]} closed {app.closed}" for app in self.apps)

    def check_closed_cleanly(self) -> None:
        for app in self.apps:
            peer = self.peer(app)
            assert bytes(app.received) == peer.stream[:peer.sent], (
                f"{app.name} got {len(app.received)} of {peer.sent}")
            assert app.eofs == 1, f"{app.name}: EV_EOF {app.eofs} times"
            assert app.closed == [None], f"{app.name}: EV_CLOSED {app.closed}"
        assert any(_S.TIME_WAIT in app.states for app in self.apps), self.describe()
        # 2·MSL later both tables are empty (TIME-WAIT ended, nothing lingers).
        self.now += 61.0
        self.pump()
        for direction in (0, 1):  # (a last retransmitted FIN may still be answered)
            for frame in self.queues[direction]:
                self.ingress(direction, frame)
        self.pump()
        assert not self.client.iface.tcp.connections and not self.server.iface.tcp.connections
        assert self.listener.syn_queue_len == 0 and self.listener.accept_queue_len == 0
        assert [app.closed for app in self.apps] == [[None], [None]]


# --- the steps ---------------------------------------------------------------------------

SIDES = st.sampled_from(["client", "server"])
POSITIONS = st.integers(0, 12)
DIRECTIONS = st.integers(0, 1)
# Sizes around the MSS and the small buffer's window, and anything else.
SIZES = st.one_of(st.sampled_from([1, 1447, 1448, 1449, 2896, 6000, 12_000, 24_000]),
                  st.integers(1, 24_000))
STEP_KINDS = {
    "send": st.tuples(st.just("send"), SIDES, SIZES),
    "deliver": st.tuples(st.just("deliver"), DIRECTIONS, POSITIONS),
    "deliver_all": st.tuples(st.just("deliver_all"), DIRECTIONS),
    "wait": st.tuples(st.just("wait"),
                      st.sampled_from([0.001, 0.01, 0.05, 0.2, 0.5, 1.0, 3.0])),
    "consume": st.tuples(st.just("consume"), SIDES, st.sampled_from([0.25, 0.5, 1.0])),
    "shutdown": st.tuples(st.just("shutdown"), SIDES),
    "set_reading": st.tuples(st.just("set_reading"), SIDES, st.booleans()),
    "drop": st.tuples(st.just("drop"), DIRECTIONS, POSITIONS),
    "duplicate": st.tuples(st.just("duplicate"), DIRECTIONS, POSITIONS),
}
#: How often each kind comes (a plan should move data along more often than it spoils
#: it, and shut down rarely: after that, only the other direction has anything to do).
WEIGHTS = {"send": 3, "deliver": 3, "deliver_all": 3, "wait": 2, "consume": 2,
           "shutdown": 1, "set_reading": 1, "drop": 1, "duplicate": 1}
steps = st.sampled_from([kind for kind, weight in WEIGHTS.items() for _ in range(weight)]
                        ).flatmap(lambda kind: STEP_KINDS[kind])


#: Default options; a small receive buffer (the window closes while an application does
#: not read or consume: zero window, persist probes, window updates; with IPv6's smaller
#: MSS a sliver stays open, which sender SWS avoidance must not fill with runts); no
#: options at all.
CONFIGS = {
    "default": TcpConfig(),
    "small": TcpConfig(recv_buffer=2 * 1448, send_buffer=6000),  # two IPv4 segments
    "plain": TcpConfig(sack=False, timestamps=False, window_scaling=False),
}


def run_steps(family: int, plan: list[tuple[Any, ...]], *, faulty_handshake: bool = True,
              config: str = "default") -> Channel:
    channel = Channel(family, CONFIGS[config])
    if not faulty_handshake:
        while channel.server.conn is None or channel.client.conn is None \
                or channel.client.conn.state is _S.SYN_SENT:
            for direction in (0, 1):
                while channel.queues[direction]:
                    channel.ingress(direction, channel.queues[direction].pop(0))
            channel.pump()
    for step in plan:
        kind = step[0]
        if kind in ("send", "shutdown", "set_reading", "consume"):
            app = channel.client if step[1] == "client" else channel.server
            if kind == "send":
                channel.send(app, step[2])
            elif kind == "shutdown":
                channel.shutdown(app)
            elif kind == "set_reading":
                channel.set_reading(app, step[2])
            else:
                channel.consume(app, step[2])
        elif kind == "wait":
            if channel.now + step[1] <= MAX_FAULTY_TIME:
                channel.now += step[1]
        elif kind == "deliver_all":
            queue = channel.queues[step[1]]
            while queue:
                channel.ingress(step[1], queue.pop(0))
        else:
            queue = channel.queues[step[1]]
            if not queue:
                continue
            index = step[2] % len(queue)
            if kind == "deliver":
                channel.ingress(step[1], queue.pop(index))
            elif kind == "drop":
                del queue[index]
            else:
                channel.ingress(step[1], queue[index])
        channel.pump()
        for app in channel.apps:  # every due timer ran: no deadline in the past
            at = app.iface.poll_at()
            assert at is None or at > channel.now, (app.name, at, channel.now)
        for app in channel.apps:  # nothing closes while both ends still talk
            assert not app.closed or app.shut or channel.peer(app).shut, channel.describe()
    return channel


def check_plan(family: int, plan: list[tuple[Any, ...]], faulty_handshake: bool,
               config: str) -> None:
    note(f"IPv{family} config={config} faulty_handshake={faulty_handshake} plan: {plan}")
    channel = run_steps(family, plan, faulty_handshake=faulty_handshake, config=config)
    channel.settle()
    channel.check_closed_cleanly()


PLANS = st.lists(steps, min_size=20, max_size=80)
#: The handshake meets the plan's faults one example in four; otherwise it is done.
HANDSHAKES = st.sampled_from([False, False, False, True])


@settings(max_examples=50, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(plan=PLANS, faulty_handshake=HANDSHAKES)
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("family", [4, 6])
def test_any_interleaving_delivers_everything_once_and_closes(
        family: int, plan: list[Any], faulty_handshake: bool, config: str) -> None:
    check_plan(family, plan, faulty_handshake, config)


@pytest.mark.soak
@pytest.mark.skipif(not SOAK, reason="long property run: set ETHOX_SOAK=1")
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("family", [4, 6])
def test_any_interleaving_soak(family: int, config: str) -> None:
    examples = int(os.environ.get("ETHOX_SOAK_EXAMPLES", "2000"))

    @settings(max_examples=examples, deadline=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(plan=st.lists(steps, min_size=8, max_size=150), faulty_handshake=HANDSHAKES)
    def run(plan: list[Any], faulty_handshake: bool) -> None:
        check_plan(family, plan, faulty_handshake, config)

    run()


@pytest.mark.parametrize("family", [4, 6])
def test_a_plan_with_every_kind_of_step(family: int) -> None:
    """One hand-written plan through all the step kinds (and a zero window)."""
    plan: list[tuple[Any, ...]] = [
        ("deliver", 0, 0), ("deliver", 1, 0), ("deliver_all", 0),  # handshake
        ("send", "client", 20_000), ("send", "server", 5_000),
        ("set_reading", "server", False), ("deliver", 0, 3), ("drop", 0, 0),
        ("duplicate", 0, 1), ("deliver_all", 0), ("deliver_all", 1), ("wait", 0.5),
        ("deliver_all", 0), ("set_reading", "server", True), ("consume", "server", 0.5),
        ("send", "client", 24_000), ("send", "client", 24_000), ("send", "client", 24_000),
        ("deliver_all", 0), ("deliver_all", 1), ("deliver_all", 0), ("deliver_all", 1),
        ("shutdown", "client"), ("wait", 1.0), ("deliver_all", 0), ("drop", 1, 0),
        ("consume", "server", 1.0), ("deliver_all", 0), ("deliver_all", 1), ("wait", 3.0),
        ("deliver_all", 0), ("deliver_all", 1),
    ]
    channel = run_steps(family, plan)
    assert channel.server.conn is not None
    channel.settle()
    channel.check_closed_cleanly()
