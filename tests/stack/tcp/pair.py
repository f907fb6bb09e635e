"""Two TCP connections back to back through a seeded faulty channel, on a virtual clock.

``Pair`` wires an active connection (A) to a passive one created by a
:class:`TcpListener` (B). Segments cross the wire format and a ``Channel`` that
may drop, duplicate, delay and reorder them (seeded). Each side runs a small
application: it writes its ``to_send`` bytes as the send buffer allows, reads
(and consumes) everything, and shuts down once everything is written.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ethox_asyncio.stack.tcp.config import TcpConfig
from ethox_asyncio.stack.tcp.connection import (
    EV_CLOSED,
    EV_DATA,
    EV_EOF,
    EV_ESTABLISHED,
    EV_SENT,
    TcpConnection,
)
from ethox_asyncio.stack.tcp.listener import TcpListener
from ethox_asyncio.stack.tcp.segment import ACK, Segment, reset_for
from ethox_asyncio.stack.tcp.state import TcpState

A_ADDR = 0xC6120001  # 198.18.0.1
B_ADDR = 0xC6120002
A_PORT = 40000
B_PORT = 8080


def _isn(local_addr: int, local_port: int, remote_addr: int, remote_port: int,
         now: float) -> int:
    return (0xFFFFF000 + local_port * 7 + remote_port) & 0xFFFFFFFF


@dataclass
class Channel:
    rng: random.Random
    loss: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.005
    jitter: float = 0.0  # uniform extra delay: reorders when larger than the gaps
    queue: list[tuple[float, int, int, bytes]] = field(default_factory=list)
    counter: int = 0
    sent: int = 0
    dropped: int = 0

    def push(self, dst: int, segment: Segment, now: float) -> None:
        self.sent += 1
        frame = segment.header_bytes() + bytes(segment.payload)
        copies = 1
        if self.rng.random() < self.loss:
            self.dropped += 1
            copies = 0
        elif self.rng.random() < self.duplicate:
            copies = 2
        for _ in range(copies):
            at = now + self.delay + self.rng.random() * self.jitter
            self.counter += 1
            heapq.heappush(self.queue, (at, self.counter, dst, frame))

    def next_at(self) -> float | None:
        return self.queue[0][0] if self.queue else None


@dataclass
class App:
    """One side's application."""

    to_send: bytes
    chunk: int = 16384
    write_limit: int = 65536
    offset: int = 0
    received: bytearray = field(default_factory=bytearray)
    eof: bool = False
    closed: bool = False
    error: BaseException | None = None
    shut: bool = False
    established: bool = False


class Pair:
    def __init__(self, config_a: TcpConfig, config_b: TcpConfig, channel: Channel,
                 a_data: bytes, b_data: bytes, *, now: float = 10.0,
                 mss_limit: int = 1460) -> None:
        self.now = now
        self.channel = channel
        self.events: deque[tuple[str, Any, Any]] = deque()
        self.listener = TcpListener(config_b, local_port=B_PORT, backlog=8, events=self.events,
                                    isn=_isn)
        self.mss_limit = mss_limit
        self.a = TcpConnection(config_a, local_port=A_PORT, remote_port=B_PORT,
                               iss=0xFFFFFFF0, mss_limit=mss_limit, now=now,
                               events=self.events, ts_offset=0x7FFFFFF0)
        self.b: TcpConnection | None = None
        self.apps: dict[int, App] = {id(self.a): App(a_data)}
        self.b_data = b_data
        self.resets = 0
        self.a.open(now)

    def conns(self) -> list[TcpConnection]:
        return [self.a] if self.b is None else [self.a, self.b]

    def app(self, conn: TcpConnection) -> App:
        return self.apps[id(conn)]

    def _deliver(self, dst: int, frame: bytes) -> None:
        """What the IP glue does: demultiplex, or answer with a RST (RFC 9293 §3.10.7.1)."""
        segment = Segment.parse(memoryview(frame))
        if dst == A_ADDR:
            if not self.a.finished:
                self.a.on_segment(segment, self.now)
            else:
                self._reset(B_ADDR, segment)
            return
        b = self.b
        if b is not None and not b.finished:
            if b.state is TcpState.TIME_WAIT and b.tw_accepts_syn(segment):
                self.b = None  # RFC 6191: the SYN reopens the four-tuple
            else:
                b.on_segment(segment, self.now)
                return
        conn = self.listener.on_syn(segment, B_ADDR, A_ADDR, A_PORT, self.mss_limit, self.now)
        if conn is not None:
            self.b = conn
            self.apps[id(conn)] = App(self.b_data)
        elif segment.flags & ACK:
            self._reset(A_ADDR, segment)

    def _reset(self, dst: int, segment: Segment) -> None:
        answer = reset_for(segment)
        if answer is not None:
            self.resets += 1
            self.channel.push(dst, answer, self.now)

    def _events(self) -> None:
        while self.events:
            kind, source, arg = self.events.popleft()
            if kind == "accept":
                conn = self.listener.accept()
                assert conn is arg
                self.app(conn).established = True
                conn.set_reading(True)
                continue
            app = self.app(source)
            if kind == EV_ESTABLISHED:
                app.established = True
            elif kind == EV_DATA:
                app.received += arg
                source.consumed(len(arg))
            elif kind == EV_EOF:
                assert not app.eof, "EOF twice"
                app.eof = True
            elif kind == EV_CLOSED:
                assert not app.closed, "EV_CLOSED twice"
                app.closed = True
                app.error = arg
            elif kind == EV_SENT:
                pass

    def _write(self) -> None:
        for conn in self.conns():
            app = self.app(conn)
            if not app.established or app.closed or app.shut:
                continue
            while app.offset < len(app.to_send) and conn.send_buffered < app.write_limit:
                piece = app.to_send[app.offset:app.offset + app.chunk]
                conn.send(piece)
                app.offset += len(piece)
            if app.offset == len(app.to_send) and conn.state in (
                    TcpState.ESTABLISHED, TcpState.CLOSE_WAIT):
                conn.shutdown(self.now)
                app.shut = True

    def _output(self) -> None:
        for conn in self.conns():
            dst = B_ADDR if conn is self.a else A_ADDR
            for segment in conn.output(self.now, 64):
                self.channel.push(dst, segment, self.now)

    def step(self) -> bool:
        """One round; False when nothing is left to happen."""
        self._events()
        self._write()
        self._output()
        deadlines = [t for t in (c.poll_at() for c in self.conns()) if t is not None]
        at = self.channel.next_at()
        if at is not None:
            deadlines.append(at)
        if not deadlines:
            return False
        self.now = max(self.now, min(deadlines))
        while self.channel.queue and self.channel.queue[0][0] <= self.now:
            _, _, dst, frame = heapq.heappop(self.channel.queue)
            self._deliver(dst, frame)
        for conn in self.conns():
            at = conn.poll_at()
            if at is not None and at <= self.now:
                conn.on_timer(self.now)
        return True

    def run(self, *, until: float = 3600.0, max_steps: int = 1_000_000) -> None:
        for _ in range(max_steps):
            if self.now > until or not self.step():
                break
        self._events()

    def done(self) -> bool:
        return all(c.finished or c.state is TcpState.TIME_WAIT for c in self.conns())
