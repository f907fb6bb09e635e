"""TCP transport semantics, one set of test bodies against four implementations.

- ``asyncio-kernel``: stock ``asyncio.new_event_loop()`` on kernel sockets over
  127.0.0.1 / ::1 — the reference (CPython's ``_SelectorSocketTransport``);
- ``uvloop-kernel``: ``uvloop.new_event_loop()`` on kernel sockets;
- ``ethox-uvloop`` / ``ethox-asyncio``: the ethox loop on either base, on one end of
  a link (198.18.0.2, fd00::2); the peer is a second ethox loop of the same base on
  the other end (198.18.0.1, fd00::1), so both ends are our transports.

"Ours" runs in the test's thread; the peer loop runs in a thread of its own (of the
same kind), and the bodies reach it through ``Setup.on_peer`` / ``Setup.peer_call``.
The link between the two ethox loops is :class:`ThreadLink`: the in-memory link of
``device/memory.py`` belongs to one thread, this one is safe across two (a deque and
an eventfd per end). Each body is bounded by ``asyncio.wait_for``; where a reference
differs from what we do on purpose the case is an ``xfail`` that says how.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

import ethox_asyncio
from ethox_asyncio.config import StackConfig
from ethox_asyncio.device.base import DeviceCapabilities, DeviceClosed, Frame, frame_bytes
from ethox_asyncio.stack.wire.ethernet import EthernetAddress

KINDS = ["asyncio-kernel", "uvloop-kernel", "ethox-uvloop", "ethox-asyncio"]
ETHOX_KINDS = ["ethox-uvloop", "ethox-asyncio"]
BODY_TIMEOUT = 30.0
STALL = 0.3  # seconds: long enough for many round trips on either path
CLOSED_SEND_WARNING = "socket.send() raised exception."
_T = TypeVar("_T")


# --- a link two threads can share ----------------------------------------------------


class ThreadLinkEnd:
    """One end of :class:`ThreadLink`; implements the ``Device`` protocol.

    Receiving clears the eventfd *before* draining the queue, so a frame queued by
    the other thread meanwhile always leaves it signalled (no lost wake-up).
    """

    QUEUE_LIMIT = 20000  # frames; beyond it the link drops (a NIC ring's tail drop)

    def __init__(self, link: ThreadLink, index: int) -> None:
        self._link = link
        self.index = index
        self._queue: deque[bytes] = deque()
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._buffers = [memoryview(bytearray(1518)) for _ in range(64)]
        self.capabilities = DeviceCapabilities(mtu=1500, max_batch=64)
        self.dropped = 0
        self.closed = False

    def fileno(self) -> int:
        if self.closed:
            raise DeviceClosed("thread link end")
        return self._fd

    def receive(self, max_frames: int) -> Sequence[memoryview]:
        if self.closed:
            raise DeviceClosed("thread link end")
        try:
            os.eventfd_read(self._fd)
        except BlockingIOError:
            pass
        views = []
        queue = self._queue
        for slot in range(min(max_frames, len(self._buffers))):
            try:
                frame = queue.popleft()
            except IndexError:
                break
            buffer = self._buffers[slot]
            buffer[:len(frame)] = frame
            views.append(buffer[:len(frame)])
        if queue:
            os.eventfd_write(self._fd, 1)
        return views

    def transmit(self, frames: Sequence[Frame]) -> int:
        if self.closed:
            raise DeviceClosed("thread link end")
        other = self._link.ends[1 - self.index]
        if other.closed:
            return len(frames)
        for frame in frames:
            if len(other._queue) >= self.QUEUE_LIMIT:
                self.dropped += 1
                continue
            other._queue.append(frame_bytes(frame))
        try:
            os.eventfd_write(other._fd, 1)
        except OSError:  # closed meanwhile
            pass
        return len(frames)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._fd)


class ThreadLink:
    def __init__(self) -> None:
        self.ends = (ThreadLinkEnd(self, 0), ThreadLinkEnd(self, 1))


# --- the setups ----------------------------------------------------------------------


def _ethox_loop(link: ThreadLink, index: int, base: str) -> asyncio.AbstractEventLoop:
    host = 2 - index  # end 0: .2 (ours), end 1: .1 (the peer)
    config = StackConfig(addresses=(IPv4Interface(f"198.18.0.{host}/24"),
                                    IPv6Interface(f"fd00::{host}/64")),
                         mac=EthernetAddress(f"02:00:00:00:00:0{host}"))
    return ethox_asyncio.new_event_loop(config, device=link.ends[index], base=base)


def _new_loops(kind: str) -> tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop,
                                   ThreadLink | None]:
    if kind == "asyncio-kernel":
        return asyncio.new_event_loop(), asyncio.new_event_loop(), None
    if kind == "uvloop-kernel":
        return uvloop.new_event_loop(), uvloop.new_event_loop(), None
    link = ThreadLink()
    base = kind.removeprefix("ethox-")
    return _ethox_loop(link, 0, base), _ethox_loop(link, 1, base), link


@dataclass
class Setup:
    kind: str
    loop: asyncio.AbstractEventLoop  # ours, in the test's thread
    peer_loop: asyncio.AbstractEventLoop  # in its own thread
    link: ThreadLink | None
    thread: threading.Thread | None = None
    handled: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ethox(self) -> bool:
        return self.kind.startswith("ethox")

    def host(self, family: int = 4) -> str:
        """Our address."""
        if self.ethox:
            return "198.18.0.2" if family == 4 else "fd00::2"
        return "127.0.0.1" if family == 4 else "::1"

    def peer_host(self, family: int = 4) -> str:
        if self.ethox:
            return "198.18.0.1" if family == 4 else "fd00::1"
        return "127.0.0.1" if family == 4 else "::1"

    def start(self) -> None:
        self.loop.set_exception_handler(lambda _loop, context: self.handled.append(context))
        self.thread = threading.Thread(target=self.peer_loop.run_forever, daemon=True,
                                       name=f"peer-{self.kind}")
        self.thread.start()

    def run(self, body: Callable[[Setup], Coroutine[Any, Any, None]]) -> None:
        self.loop.run_until_complete(asyncio.wait_for(body(self), BODY_TIMEOUT))

    async def on_peer(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the peer's loop and wait for it from ours."""
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(coro, self.peer_loop))

    async def peer_call(self, fn: Callable[[], _T]) -> _T:
        """Call ``fn`` in the peer's thread (transports are single-threaded)."""
        async def call() -> _T:
            return fn()
        return await self.on_peer(call())

    async def peer_server(self, factory: Callable[[], asyncio.BaseProtocol],
                          family: int = 4, **kwargs: Any) -> tuple[asyncio.AbstractServer,
                                                                   int]:
        server = await self.on_peer(self.peer_loop.create_server(
            factory, self.peer_host(family), 0, **kwargs))
        return server, server.sockets[0].getsockname()[1]

    async def close_peer_server(self, server: asyncio.AbstractServer) -> None:
        async def close() -> None:
            server.close()
            await server.wait_closed()
        await self.on_peer(close())

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.thread is not None and self.thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(cancel_all(), self.peer_loop).result(5)
            finally:
                self.peer_loop.call_soon_threadsafe(self.peer_loop.stop)
                self.thread.join(5)
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.peer_loop.close()
        self.loop.close()
        if self.link is not None:
            for end in self.link.ends:
                end.close()


@pytest.fixture(params=KINDS)
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    loop, peer_loop, link = _new_loops(request.param)
    made = Setup(request.param, loop, peer_loop, link)
    made.start()
    try:
        yield made
    finally:
        made.stop()


def xfail_on(setup: Setup, kinds: Sequence[str], reason: str) -> None:
    if setup.kind in kinds:
        pytest.xfail(reason)


async def done(future: concurrent.futures.Future[_T], timeout: float = 10.0) -> _T:
    """Await a future set from either thread."""
    return await asyncio.wait_for(asyncio.wrap_future(future), timeout)


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


def payload(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


# --- protocols -----------------------------------------------------------------------


class Recorder(asyncio.Protocol):
    """Records callbacks; thread-safe futures so either loop can wait for them."""

    def __init__(self, *, keep_open: bool = False, greeting: bytes = b"",
                 echo: bool = False) -> None:
        self.keep_open = keep_open
        self.greeting = greeting
        self.echo = echo
        self.transport: Any = None
        self.events: list[Any] = []
        self.data = bytearray()
        self.made: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.eof: concurrent.futures.Future[int] = concurrent.futures.Future()
        self.lost: concurrent.futures.Future[BaseException | None] = \
            concurrent.futures.Future()
        self.lost_count = 0
        self.writing: list[tuple[str, int]] = []
        self.resumed: concurrent.futures.Future[int] = concurrent.futures.Future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.events.append("made")
        if self.greeting:
            self.transport.write(self.greeting)
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        if self.echo:
            self.transport.write(data)

    def eof_received(self) -> bool:
        self.events.append("eof")
        if not self.eof.done():
            self.eof.set_result(len(self.data))
        return self.keep_open

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append(("lost", exc))
        self.lost_count += 1
        if not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self) -> None:
        self.writing.append(("pause", self.transport.get_write_buffer_size()))

    def resume_writing(self) -> None:
        size = self.transport.get_write_buffer_size()
        self.writing.append(("resume", size))
        if not self.resumed.done():
            self.resumed.set_result(size)


class BufferedRecorder(asyncio.BufferedProtocol):
    """A BufferedProtocol with a deliberately small buffer (many get_buffer rounds)."""

    def __init__(self, buffer_size: int = 1000) -> None:
        self.buffer = bytearray(buffer_size)
        self.data = bytearray()
        self.hints: list[int] = []
        self.transport: Any = None
        self.made: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.eof: concurrent.futures.Future[int] = concurrent.futures.Future()
        self.lost: concurrent.futures.Future[BaseException | None] = \
            concurrent.futures.Future()
        self.lost_count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.made.set_result(None)

    def get_buffer(self, sizehint: int) -> bytearray:
        self.hints.append(sizehint)
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data += self.buffer[:nbytes]

    def eof_received(self) -> bool:
        self.eof.set_result(len(self.data))
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost_count += 1
        if not self.lost.done():
            self.lost.set_result(exc)


class Factory:
    """A protocol factory that keeps what it made (for the peer's servers)."""

    def __init__(self, make: Callable[[], asyncio.BaseProtocol] = Recorder) -> None:
        self.make = make
        self.made: list[Any] = []
        self.first: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def __call__(self) -> asyncio.BaseProtocol:
        protocol = self.make()
        self.made.append(protocol)
        if not self.first.done():
            self.first.set_result(protocol)
        return protocol


# --- echo ----------------------------------------------------------------------------


@pytest.mark.parametrize("family", [4, 6])
def test_echo_through_a_protocol(setup: Setup, family: int) -> None:
    data = payload(300_000)

    async def body(s: Setup) -> None:
        server, port = await s.peer_server(lambda: Recorder(echo=True), family)
        transport, client = await s.loop.create_connection(Recorder, s.peer_host(family), port)
        assert client.events == ["made"]  # connection_made has run when it returns
        transport.write(data)
        await until(lambda: len(client.data) >= len(data))
        assert bytes(client.data) == data
        transport.close()
        assert await done(client.lost) is None
        assert client.lost_count == 1 and client.events[-1] == ("lost", None)
        await s.close_peer_server(server)

    setup.run(body)


def test_echo_into_a_buffered_protocol(setup: Setup) -> None:
    data = payload(200_000)

    async def body(s: Setup) -> None:
        server, port = await s.peer_server(lambda: Recorder(echo=True))
        transport, client = await s.loop.create_connection(
            lambda: BufferedRecorder(1000), s.peer_host(), port)
        await done(client.made)
        transport.write(data)
        await until(lambda: len(client.data) >= len(data))
        assert bytes(client.data) == data
        assert client.hints  # (CPython passes -1, uvloop and we the bytes at hand)
        transport.close()
        assert await done(client.lost) is None
        assert client.lost_count == 1
        await s.close_peer_server(server)

    setup.run(body)


@pytest.mark.parametrize("family", [4, 6])
def test_streams_echo(setup: Setup, family: int) -> None:
    data = payload(500_000)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def body(s: Setup) -> None:
        server = await s.on_peer(asyncio.start_server(handle, s.peer_host(family), 0))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(s.peer_host(family), port)
        peername = writer.get_extra_info("peername")
        assert peername[:2] == (s.peer_host(family), port)
        assert len(peername) == (2 if family == 4 else 4)
        assert writer.can_write_eof()

        async def send() -> None:
            for offset in range(0, len(data), 100_000):
                writer.write(data[offset:offset + 100_000])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.ensure_future(send())
        received = await reader.read()  # until EOF: the server closes after echoing all
        await sender
        assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
        writer.close()
        await writer.wait_closed()
        await s.close_peer_server(server)

    setup.run(body)


# --- opening -------------------------------------------------------------------------


def test_nothing_arrives_before_connection_made(setup: Setup) -> None:
    """The server greets at once: the greeting may arrive before the client's
    connection_made has run; it is held until then."""

    async def body(s: Setup) -> None:
        server, port = await s.peer_server(lambda: Recorder(greeting=b"220 hello\r\n"))
        for _ in range(5):
            transport, client = await s.loop.create_connection(Recorder, s.peer_host(), port)
            await until(lambda c=client: bytes(c.data) == b"220 hello\r\n")  # type: ignore[misc]
            assert client.events[:2] == ["made", "data"]
            transport.close()
        await s.close_peer_server(server)

    setup.run(body)


def test_connection_refused(setup: Setup) -> None:
    async def body(s: Setup) -> None:
        server, port = await s.peer_server(Recorder)
        await s.close_peer_server(server)  # nothing listens on the port now
        with pytest.raises(ConnectionRefusedError):
            await s.loop.create_connection(Recorder, s.peer_host(), port)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(s.peer_host(6), port)

    setup.run(body)


def test_extra_info(setup: Setup) -> None:
    async def body(s: Setup) -> None:
        for family in (4, 6):
            factory = Factory()
            server, port = await s.peer_server(factory, family)
            transport, _ = await s.loop.create_connection(Recorder, s.peer_host(family), port)
            peer_protocol = await done(factory.first)
            await done(peer_protocol.made)
            peername = transport.get_extra_info("peername")
            sockname = transport.get_extra_info("sockname")
            if family == 4:
                assert peername == (s.peer_host(), port)
                assert sockname[0] == s.host() and len(sockname) == 2
            else:
                assert peername == (s.peer_host(6), port, 0, 0)
                assert sockname[0] == s.host(6) and sockname[2:] == (0, 0)
            assert await s.peer_call(
                lambda p=peer_protocol: p.transport.get_extra_info("peername")) == sockname
            assert transport.get_extra_info("nonexistent", "dflt") == "dflt"
            if s.ethox:
                assert transport.get_extra_info("socket") is None
                assert not hasattr(transport, "__dict__")  # slots: no dict per connection
            assert weakref.ref(transport)() is transport  # as CPython's and uvloop's
            assert transport.get_extra_info("sslcontext") is None
            # (uvloop's default low-water mark is 16 bytes, not 16 KiB: a uvloop quirk)
            low = 16 if s.kind == "uvloop-kernel" else 16384
            assert transport.get_write_buffer_limits() == (low, 65536)
            transport.set_write_buffer_limits(high=1000)
            assert transport.get_write_buffer_limits() == (250, 1000)
            transport.set_write_buffer_limits(low=100)
            assert transport.get_write_buffer_limits() == (100, 400)
            with pytest.raises(ValueError):
                transport.set_write_buffer_limits(high=10, low=20)
            assert transport.is_reading() and not transport.is_closing()
            other = Recorder()
            transport.set_protocol(other)
            assert transport.get_protocol() is other
            transport.close()
            assert transport.is_closing() and not transport.is_reading()
            await s.close_peer_server(server)

    setup.run(body)


# --- closing -------------------------------------------------------------------------


def test_write_eof_and_eof_received_half_close_both_ways(setup: Setup) -> None:
    class HalfCloser(Recorder):
        def eof_received(self) -> bool:
            super().eof_received()
            self.transport.write(b"got %d" % len(self.data))
            self.transport.write_eof()
            return True  # keep the transport: we still write

    async def body(s: Setup) -> None:
        factory = Factory(HalfCloser)
        server, port = await s.peer_server(factory)
        transport, client = await s.loop.create_connection(
            lambda: Recorder(keep_open=True), s.peer_host(), port)
        assert transport.can_write_eof()
        transport.write(payload(100_000))
        transport.write_eof()
        transport.write_eof()  # a no-op
        with pytest.raises(RuntimeError):
            transport.write(b"more")
        assert not transport.is_closing()
        await done(client.eof)  # the peer's FIN, after its reply
        assert bytes(client.data) == b"got 100000"
        assert not transport.is_closing()  # eof_received returned True
        peer = await done(factory.first)
        assert peer.events[-1] == "eof" and not peer.lost.done()
        transport.close()
        assert await done(client.lost) is None
        await s.peer_call(lambda: peer.transport.close())
        assert await done(peer.lost) is None
        assert client.lost_count == 1 and peer.lost_count == 1
        await s.close_peer_server(server)

    setup.run(body)


def test_eof_received_false_closes_the_transport(setup: Setup) -> None:
    async def body(s: Setup) -> None:
        factory = Factory()
        server, port = await s.peer_server(factory)
        transport, client = await s.loop.create_connection(Recorder, s.peer_host(), port)
        peer = await done(factory.first)
        await done(peer.made)
        await s.peer_call(lambda: (peer.transport.write(b"bye"), peer.transport.write_eof()))
        assert await done(client.lost) is None  # eof_received() returned False: closed
        assert client.events == ["made", "data", "eof", ("lost", None)]
        assert transport.is_closing()
        assert await done(peer.eof) == 0  # our close() sent our FIN
        assert await done(peer.lost) is None
        await s.close_peer_server(server)

    setup.run(body)


def test_extra_info_first_asked_after_the_connection_is_gone(setup: Setup) -> None:
    # Ours makes it when first asked (from the four-tuple the transport keeps), so it
    # must not depend on the stack still knowing the connection.
    async def body(s: Setup) -> None:
        factory = Factory()
        server, port = await s.peer_server(factory)
        transport, client = await s.loop.create_connection(Recorder, s.peer_host(), port)
        peer = await done(factory.first)
        await done(peer.made)
        await s.peer_call(lambda: peer.transport.close())  # the peer closes first
        assert await done(client.lost) is None
        assert await done(peer.lost) is None
        if s.ethox:  # passive closer: LAST-ACK, then out of the stack's table
            def gone() -> bool:
                try:
                    s.loop._stack.tcp.four_tuple(transport._conn)  # type: ignore[attr-defined]
                except KeyError:
                    return True
                return False

            await until(gone)
        assert transport.get_extra_info("peername") == (s.peer_host(), port)
        sockname = transport.get_extra_info("sockname")
        assert sockname[0] == s.host()
        assert await s.peer_call(lambda: peer.transport.get_extra_info("peername")) == sockname
        assert repr(transport)  # (names the peer: the same extra info)
        await s.close_peer_server(server)

    setup.run(body)


def test_close_with_pending_data_delivers_everything(setup: Setup) -> None:
    # The kernel's loopback socket may take several MB at once: give it enough that some
    # is still pending at close() (our stack never takes more than the window at once).
    data = payload(32_000_000 if not setup.ethox else 2_000_000)

    class Closer(Recorder):
        def connection_lost(self, exc: BaseException | None) -> None:
            self.events.append(("size at lost", self.transport.get_write_buffer_size()))
            super().connection_lost(exc)

    async def body(s: Setup) -> None:
        factory = Factory()
        server, port = await s.peer_server(factory)
        transport, client = await s.loop.create_connection(Closer, s.peer_host(), port)
        transport.write(data)
        pending = transport.get_write_buffer_size()
        transport.close()
        transport.close()  # a no-op
        assert transport.is_closing()
        assert pending > 0 or not s.ethox  # a kernel may still have taken it all: rare
        peer = await done(factory.first)
        assert await done(peer.eof, 20) == len(data)
        assert hashlib.sha256(peer.data).digest() == hashlib.sha256(data).digest()
        assert await done(client.lost) is None
        assert client.events[-2:] == [("size at lost", 0), ("lost", None)]
        assert client.lost_count == 1
        await s.close_peer_server(server)

    setup.run(body)


def test_close_without_pending_data_calls_connection_lost_soon(setup: Setup) -> None:
    async def body(s: Setup) -> None:
        factory = Factory()
        server, port = await s.peer_server(factory)
        transport, client = await s.loop.create_connection(Recorder, s.peer_host(), port)
        transport.close()
        assert not client.lost.done()  # via call_soon, not synchronously
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert client.lost.done() and client.lost.result() is None
        peer = await done(factory.first)
        assert await done(peer.lost) is None  # eof_received() -> False -> closed
        await s.close_peer_server(server)

    setup.run(body)


def test_abort_resets_the_peer(setup: Setup) -> None:
    xfail_on(setup, ["asyncio-kernel", "uvloop-kernel"],
             "CPython's and uvloop's abort() just close the socket: the kernel sends a "
             "FIN (a RST only with unread data); ours sends a RST (RFC 9293 ABORT)")

    async def body(s: Setup) -> None:
        factory = Factory()
        server, port = await s.peer_server(factory)
        transport, client = await s.loop.create_connection(Recorder, s.peer_host(), port)
        peer = await done(factory.first)
        await done(peer.made)
        transport.write(payload(1_000_000))
        transport.abort()
        assert not client.lost.done()
        assert transport.is_closing()
        assert await done(client.lost) is None
        assert isinstance(await done(peer.lost), ConnectionResetError)
        assert "eof" not in peer.events
        transport.abort()  # no-ops
        transport.close()
        await asyncio.sleep(0.05)
        assert client.lost_count == 1 and peer.lost_count == 1
        await s.close_peer_server(server)

    setup.run(body)


def test_abort_drops_the_buffer_and_calls_connection_lost_once(setup: Setup) -> None:
    async def body(s: Setup) -> None:
        server, port = await s.peer_server(Recorder)
        transport, client = await s.loop.create_connection(Recorder, s.peer_host(), port)
        transport.write(payload(100_000))
        transport.close()
        transport.abort()  # after close() with data pending: still aborts
        assert await done(client.lost) is None
        await asyncio.sleep(0.05)
        assert client.lost_count == 1
        await s.close_peer_server(server)

    setup.run(body)


def test_writes_after_close_are_ignored_with_a_warning(setup: Setup,
                                                      caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    xfail_on(setup, ["uvloop-kernel"], "uvloop raises RuntimeError ('the handler is "
                                       "closed') once connection_lost has run")
    async def body(s: Setup) -> None:
        server, port = await s.peer_server(Recorder)
        transport, client = await s.loop.create_connection(Recorder, s.peer_host(), port)
        transport.close()
        await done(client.lost)
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(6):
                transport.write(b"x")
        warnings = [r for r in caplog.records if r.getMessage() == CLOSED_SEND_WARNING]
        assert len(warnings) == 2  # the 5th and the 6th
        with pytest.raises(TypeError):
            transport.write("text")  # type: ignore[arg-type]
        await s.close_peer_server(server)

    setup.run(body)


def test_write_takes_only_bytes_like_and_copies_mutable_data(setup: Setup) -> None:
    async def body(s: Setup) -> None:
        factory = Factory()
        server, port = await s.peer_server(factory)
        transport, _ = await s.loop.create_connection(Recorder, s.peer_host(), port)
        with pytest.raises(TypeError):
            transport.write("text")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            transport.writelines([b"ok", "text"])  # nothing written (uvloop writes b"ok")
        if s.kind == "uvloop-kernel":
            transport.write(b"abc")
            transport.close()
            await s.close_peer_server(server)
            return
        buffer = bytearray(b"abc")
        transport.write(buffer)
        buffer[:] = b"XYZ"  # changed after write(): what was written stays written
        transport.write(memoryview(b"def"))
        transport.writelines([b"gh", bytearray(b"ij"), memoryview(b"kl")])
        transport.write(b"")
        transport.close()
        peer = await done(factory.first)
        await done(peer.eof)
        assert bytes(peer.data) == b"abcdefghijkl"
        await s.close_peer_server(server)

    setup.run(body)


# --- flow control --------------------------------------------------------------------


def test_pause_reading_stalls_the_peer_and_resume_reading_drains(setup: Setup) -> None:
    # The kernel buffers several MB on loopback (autotuned): send well beyond that.
    # Ours advertises 4 MiB (TcpConfig.recv_buffer): send three times that.
    size = 40_000_000 if not setup.ethox else 12_000_000
    data = payload(size)

    async def body(s: Setup) -> None:
        factory = Factory()
        server, port = await s.peer_server(factory)
        transport, client = await s.loop.create_connection(Recorder, s.peer_host(), port)
        transport.pause_reading()
        assert not transport.is_reading()
        transport.pause_reading()  # no-op
        peer = await done(factory.first)
        await done(peer.made)
        await s.peer_call(lambda: peer.transport.write(data))
        await asyncio.sleep(STALL)
        first = len(client.data)
        await asyncio.sleep(STALL)
        assert len(client.data) == first < size  # nothing is delivered while paused
        backlog = await s.peer_call(lambda: peer.transport.get_write_buffer_size())
        assert backlog > size // 2  # the peer's writes are stalled, kept in its buffer
        transport.resume_reading()
        assert transport.is_reading()
        await until(lambda: len(client.data) >= size, 20)
        assert hashlib.sha256(client.data).digest() == hashlib.sha256(data).digest()
        # The ACK of the last segment may be a delayed one (RFC 5681 §4.2, <= 200 ms).
        deadline = s.loop.time() + 1.0
        while await s.peer_call(lambda: peer.transport.get_write_buffer_size()) \
                and s.loop.time() < deadline:
            await asyncio.sleep(0.01)
        assert await s.peer_call(lambda: peer.transport.get_write_buffer_size()) == 0
        transport.close()
        await s.close_peer_server(server)

    setup.run(body)


def test_resume_reading_after_the_connection_finished(setup: Setup) -> None:
    """Paused while the peer's data and FIN arrive after our own FIN: the connection is
    in TIME-WAIT, and resuming still delivers the data, then the EOF."""
    data = payload(100_000)  # below the receive window: it all arrives while paused

    class Answer(Recorder):
        def eof_received(self) -> bool:
            super().eof_received()
            self.transport.write(data)
            self.transport.write_eof()
            return True

    async def body(s: Setup) -> None:
        factory = Factory(Answer)
        server, port = await s.peer_server(factory)
        transport, client = await s.loop.create_connection(
            lambda: Recorder(keep_open=True), s.peer_host(), port)
        transport.pause_reading()
        transport.write_eof()
        peer = await done(factory.first)
        await done(peer.eof)
        await asyncio.sleep(STALL)  # the data and the FIN are here, held
        assert not client.data and not client.eof.done()
        transport.resume_reading()
        assert await done(client.eof) == len(data)
        assert bytes(client.data) == data
        transport.close()
        assert await done(client.lost) is None
        await s.peer_call(lambda: peer.transport.close())
        await s.close_peer_server(server)

    setup.run(body)


def test_pause_reading_inside_data_received(setup: Setup) -> None:
    """A protocol that pauses in every data_received and resumes a moment later still
    gets everything, in order."""
    data = payload(1_000_000)

    class Stutter(Recorder):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(0.001, self.transport.resume_reading)

    async def body(s: Setup) -> None:
        factory = Factory()
        server, port = await s.peer_server(factory)
        _, client = await s.loop.create_connection(Stutter, s.peer_host(), port)
        peer = await done(factory.first)
        await done(peer.made)
        await s.peer_call(lambda: (peer.transport.write(data), peer.transport.write_eof()))
        await done(client.eof, 20)
        assert hashlib.sha256(client.data).digest() == hashlib.sha256(data).digest()
        await done(client.lost)
        await s.close_peer_server(server)

    setup.run(body)


def test_pause_writing_above_64k_and_resume_writing_below_16k(setup: Setup) -> None:
    xfail_on(setup, ["uvloop-kernel"], "in this setup uvloop's write buffer never fills: "
                                       "the uvloop sink's pause_reading() from "
                                       "connection_made does not stop it reading")
    chunk = payload(16384)

    class Sink(Recorder):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            transport.pause_reading()  # type: ignore[attr-defined]

    async def body(s: Setup) -> None:
        factory = Factory(Sink)
        server, port = await s.peer_server(factory)
        transport, client = await s.loop.create_connection(Recorder, s.peer_host(), port)
        written = 0
        for _ in range(5000):  # at most 80 MB: the kernel's buffers absorb several MB first
            transport.write(chunk)
            written += len(chunk)
            if client.writing:
                break
            if written % (1 << 20) == 0:
                await asyncio.sleep(0.01)  # let the kernel's buffers fill
        assert client.writing and client.writing[0][0] == "pause"
        assert 65536 < client.writing[0][1] <= 65536 + len(chunk)
        peer = await done(factory.first)
        await s.peer_call(lambda: peer.transport.resume_reading())
        resumed_at = await done(client.resumed, 20)
        assert resumed_at <= 16384
        assert [kind for kind, _ in client.writing] == ["pause", "resume"]
        transport.close()
        assert await done(peer.eof, 20) == written
        await s.close_peer_server(server)

    setup.run(body)


# --- callback errors -----------------------------------------------------------------


def test_an_exception_in_data_received_is_a_fatal_error(setup: Setup) -> None:
    class Broken(Recorder):
        def data_received(self, data: bytes) -> None:
            raise ZeroDivisionError("boom")

    async def body(s: Setup) -> None:
        factory = Factory()
        server, port = await s.peer_server(factory)
        transport, client = await s.loop.create_connection(Broken, s.peer_host(), port)
        peer = await done(factory.first)
        await done(peer.made)
        await s.peer_call(lambda: peer.transport.write(b"x"))
        assert isinstance(await done(client.lost), ZeroDivisionError)
        assert any(isinstance(c.get("exception"), ZeroDivisionError) for c in s.handled)
        assert transport.is_closing()
        await done(peer.lost)  # our side closed it
        await s.close_peer_server(server)

    setup.run(body)


# --- servers on our side -------------------------------------------------------------


class EchoServer(Recorder):
    def __init__(self) -> None:
        super().__init__(echo=True)


async def peer_echo_client(s: Setup, port: int, message: bytes, family: int = 4) -> bytes:
    """From the peer: connect to our server, send, half-close, read until EOF."""
    async def client() -> bytes:
        reader, writer = await asyncio.open_connection(s.host(family), port)
        writer.write(message)
        writer.write_eof()
        reply = await reader.read()
        writer.close()
        await writer.wait_closed()
        return reply
    return await s.on_peer(client())


def test_server_accepts_serves_and_closes(setup: Setup) -> None:
    async def body(s: Setup) -> None:
        server = await s.loop.create_server(EchoServer, s.host(), 0)
        assert server.is_serving() and server.get_loop() is s.loop
        (listening,) = server.sockets
        assert listening.family == socket.AF_INET and listening.type == socket.SOCK_STREAM
        host, port = listening.getsockname()
        assert host == s.host()
        assert await peer_echo_client(s, port, b"hello") == b"hello"
        server.close()
        assert not server.is_serving() and not server.sockets  # (uvloop: [])
        await asyncio.wait_for(server.wait_closed(), 5)

        async def refused() -> None:
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(s.host(), port)
        await s.on_peer(refused())

    setup.run(body)


def test_wait_closed_waits_for_the_connections(setup: Setup) -> None:
    if sys.version_info < (3, 12) and setup.kind == "asyncio-kernel":
        pytest.xfail("CPython 3.11's wait_closed() returns at once after close() "
                     "(gh-79033, fixed in 3.12); we follow 3.12")
    xfail_on(setup, ["uvloop-kernel"], "uvloop's wait_closed() returns at once after "
                                       "close(), as CPython 3.11's")

    async def body(s: Setup) -> None:
        made: list[Recorder] = []

        def factory() -> Recorder:
            made.append(Recorder())
            return made[-1]

        server = await s.loop.create_server(factory, s.host(), 0)
        port = server.sockets[0].getsockname()[1]

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection(s.host(), port)
        _, writer = await s.on_peer(connect())
        await until(lambda: bool(made))
        server.close()
        waiter = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(STALL)
        assert not waiter.done()  # one connection is still open
        made[0].transport.close()
        await asyncio.wait_for(waiter, 5)
        await s.peer_call(writer.close)

    setup.run(body)


def test_serve_forever_cancelled_closes_the_server(setup: Setup) -> None:
    async def body(s: Setup) -> None:
        server = await s.loop.create_server(EchoServer, s.host(), 0, start_serving=False)
        assert not server.is_serving()
        port = server.sockets[0].getsockname()[1]

        async def refused() -> None:
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(s.host(), port)
        await s.on_peer(refused())  # bound, not listening yet
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0.01)
        assert server.is_serving()
        with pytest.raises(RuntimeError):
            await server.serve_forever()  # already being awaited
        assert await peer_echo_client(s, port, b"x" * 10000) == b"x" * 10000
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving() and not server.sockets  # (uvloop: [])
        await s.on_peer(refused())
        with pytest.raises(RuntimeError):
            await server.serve_forever()  # closed

    setup.run(body)


def test_server_as_an_async_context_manager(setup: Setup) -> None:
    async def body(s: Setup) -> None:
        async with await s.loop.create_server(EchoServer, s.host(), 0) as server:
            port = server.sockets[0].getsockname()[1]
            await server.start_serving()  # already serving: a no-op
            assert await peer_echo_client(s, port, b"ctx") == b"ctx"
        assert not server.is_serving()

    setup.run(body)


def test_a_hundred_concurrent_connections(setup: Setup) -> None:
    async def body(s: Setup) -> None:
        server = await s.loop.create_server(EchoServer, s.host(), 0)  # backlog=100
        port = server.sockets[0].getsockname()[1]

        async def clients() -> list[bytes]:
            return await asyncio.gather(*(
                _echo_once(s.host(), port, b"client %d" % i) for i in range(100)))
        replies = await s.on_peer(clients())
        assert replies == [b"client %d" % i for i in range(100)]
        server.close()
        await server.wait_closed()

    setup.run(body)


async def _echo_once(host: str, port: int, message: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(message)
    writer.write_eof()
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    return reply


def test_a_server_on_both_families(setup: Setup) -> None:
    """``host=None`` binds every family's wildcard (CPython); the kernel setups bind
    the loopback addresses instead (the tests bind nothing beyond loopback)."""

    async def body(s: Setup) -> None:
        hosts: Any = None if s.ethox else ["127.0.0.1", "::1"]
        server = await s.loop.create_server(EchoServer, hosts, 0)
        families = sorted(sock.family for sock in server.sockets)
        assert families == [socket.AF_INET, socket.AF_INET6]
        if s.ethox:
            assert sorted(sock.getsockname()[0] for sock in server.sockets) == ["0.0.0.0",
                                                                                 "::"]
        for sock in server.sockets:
            family = 6 if sock.family == socket.AF_INET6 else 4
            port = sock.getsockname()[1]
            assert await peer_echo_client(s, port, b"v%d" % family, family) == \
                b"v%d" % family
        server.close()
        await server.wait_closed()

    setup.run(body)


def test_server_close_clients_and_abort_clients(setup: Setup) -> None:
    if sys.version_info < (3, 13) and not setup.ethox:
        pytest.skip("Server.close_clients()/abort_clients() are new in Python 3.13")

    async def body(s: Setup) -> None:
        made: list[Recorder] = []

        def factory() -> Recorder:
            made.append(Recorder())
            return made[-1]

        server = await s.loop.create_server(factory, s.host(), 0)
        port = server.sockets[0].getsockname()[1]

        async def connect() -> Any:
            return await asyncio.open_connection(s.host(), port)
        for _ in range(2):
            await s.on_peer(connect())
        await until(lambda: len(made) == 2 and all(p.made.done() for p in made))
        server.close()
        server.close_clients()  # type: ignore[attr-defined]
        await asyncio.wait_for(server.wait_closed(), 5)
        assert [p.lost_count for p in made] == [1, 1]

    setup.run(body)


# --- TLS -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=ethox-test", "-addext",
                    "subjectAltName=IP:198.18.0.2,IP:127.0.0.1,DNS:ethox-test",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def test_tls_echo(setup: Setup, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    data = payload(300_000)

    async def body(s: Setup) -> None:
        # Our TLS server, the peer's TLS client; then our TLS client to the peer's server.
        server = await asyncio.start_server(_tls_echo, s.host(), 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]

        async def client(host: str, port: int) -> bytes:
            reader, writer = await asyncio.open_connection(host, port, ssl=client_context)
            assert writer.get_extra_info("peercert")["subject"]
            writer.write(data)
            reply = await reader.readexactly(len(data))
            writer.close()
            await writer.wait_closed()
            return reply

        assert await s.on_peer(client(s.host(), port)) == data
        server.close()
        await server.wait_closed()
        peer_server = await s.on_peer(asyncio.start_server(_tls_echo, s.peer_host(), 0,
                                                           ssl=server_context))
        peer_port = peer_server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            s.peer_host(), peer_port, ssl=client_context, server_hostname="ethox-test")
        writer.write(b"over tls")
        assert await reader.readexactly(8) == b"over tls"
        writer.close()
        await writer.wait_closed()
        await s.close_peer_server(peer_server)

    setup.run(body)


def test_start_tls_upgrades_a_connection(setup: Setup, certificate: tuple[Path, Path]
                                         ) -> None:
    cert, key = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))

    async def body(s: Setup) -> None:
        server = await s.on_peer(asyncio.start_server(_tls_echo, s.peer_host(), 0,
                                                      ssl=server_context))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(s.peer_host(), port)
        await writer.start_tls(client_context, server_hostname="ethox-test")
        assert writer.get_extra_info("sslcontext") is client_context
        writer.write(b"upgraded")
        assert await reader.readexactly(8) == b"upgraded"
        writer.close()
        await writer.wait_closed()
        await s.close_peer_server(server)

    setup.run(body)


async def _tls_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    writer.close()


# --- ethox only ----------------------------------------------------------------------


@pytest.fixture(params=ETHOX_KINDS)
def ethox_setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    loop, peer_loop, link = _new_loops(request.param)
    made = Setup(request.param, loop, peer_loop, link)
    made.start()
    try:
        yield made
    finally:
        made.stop()


def test_loopback_and_sock_stay_on_the_kernel(ethox_setup: Setup) -> None:
    async def body(s: Setup) -> None:
        server = await s.loop.create_server(EchoServer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        assert isinstance(server, asyncio.base_events.Server) or "uvloop" in repr(server)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert writer.get_extra_info("socket") is not None  # a kernel socket
        writer.write(b"kernel")
        writer.write_eof()
        assert await reader.read() == b"kernel"
        writer.close()
        server.close()
        await server.wait_closed()
        with pytest.raises(ValueError, match="numeric"):
            await s.loop.create_connection(Recorder, "example.invalid", 80)
        with pytest.raises(OSError) as unreachable:
            await s.loop.create_connection(Recorder, "203.0.113.1", 80)
        assert unreachable.value.errno == 101  # ENETUNREACH: no route on the stack
        with pytest.raises(OSError) as not_ours:
            await s.loop.create_server(EchoServer, "198.18.0.9", 0)
        assert not_ours.value.errno == 99  # EADDRNOTAVAIL
        taken = await s.loop.create_server(EchoServer, s.host(), 0)
        with pytest.raises(OSError) as in_use:
            await s.loop.create_server(EchoServer, s.host(),
                                       taken.sockets[0].getsockname()[1])
        assert in_use.value.errno == 98  # EADDRINUSE
        taken.close()

    ethox_setup.run(body)


def test_the_backlog_bounds_half_open_connections(ethox_setup: Setup) -> None:
    """backlog=1: of two simultaneous SYNs one is dropped (Linux without SYN cookies,
    ``ListenDrops``); the client's SYN retransmission 1 s later gets through."""

    async def body(s: Setup) -> None:
        server = await s.loop.create_server(EchoServer, s.host(), 0, backlog=1)
        port = server.sockets[0].getsockname()[1]

        async def clients() -> tuple[float, list[bytes]]:
            started = time.monotonic()
            replies = await asyncio.gather(_echo_once(s.host(), port, b"one"),
                                           _echo_once(s.host(), port, b"two"))
            return time.monotonic() - started, replies
        elapsed, replies = await s.on_peer(clients())
        assert replies == [b"one", b"two"]
        assert 0.9 < elapsed < 5
        listener = server._specs[0].listener  # type: ignore[attr-defined]
        assert listener.stats["ListenDrops"] >= 1, listener.stats
        server.close()

    ethox_setup.run(body)


def test_cancelled_connect_sends_nothing_more(ethox_setup: Setup) -> None:
    async def body(s: Setup) -> None:
        # 198.18.0.77 is on the link but nobody answers ARP for it: the SYN never leaves.
        task = asyncio.ensure_future(s.loop.create_connection(Recorder, "198.18.0.77", 80))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.01)
        stack = s.loop._stack  # type: ignore[attr-defined]
        assert not stack.tcp.connections

    ethox_setup.run(body)


def test_run_closes_main_when_the_loop_cannot_be_made(
        recwarn: pytest.WarningsRecorder) -> None:
    async def main() -> None:
        pass

    with pytest.raises(ValueError, match="needs a device"):
        ethox_asyncio.run(main(), config=StackConfig(device=None))
    import gc
    gc.collect()
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_a_frame_that_breaks_ingress_does_not_cost_the_rest_of_the_batch(
        ethox_setup: Setup) -> None:
    async def body(s: Setup) -> None:
        factory = Factory(lambda: Recorder(echo=True))
        server, port = await s.peer_server(factory)
        transport, client = await s.loop.create_connection(Recorder, s.peer_host(), port)
        stack = s.loop._stack  # type: ignore[attr-defined]
        real = stack.ingress
        broken = {"count": 0}

        def ingress(frame: Any, now: float, **kwargs: Any) -> None:
            if broken["count"] == 0:
                broken["count"] += 1
                raise RuntimeError("injected")
            real(frame, now, **kwargs)

        stack.ingress = ingress
        transport.write(b"a" * 50_000)  # many frames come back in one batch
        await until(lambda: len(client.data) == 50_000)  # the lost one is retransmitted
        assert [c["message"] for c in s.handled] == ["ethox_asyncio: error in the pump"]
        transport.close()
        await s.close_peer_server(server)

    ethox_setup.run(body)


class CountingRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def data_received(self, data: bytes) -> None:
        self.calls += 1
        super().data_received(data)


def test_segments_of_one_batch_reach_the_protocol_as_one_call(ethox_setup: Setup) -> None:
    # GRO without the device's help (loop._coalesce): consecutive in-order segments of
    # one connection in a receive batch become one data_received. The peer's first
    # flight alone is ten segments in one burst.
    size = 200_000
    data = payload(size)

    async def body(s: Setup) -> None:
        factory = Factory()
        server, port = await s.peer_server(factory)
        transport, client = await s.loop.create_connection(CountingRecorder, s.peer_host(),
                                                           port)
        peer = await done(factory.first)
        await done(peer.made)
        await s.peer_call(lambda: peer.transport.write(data))
        await until(lambda: len(client.data) >= size, 20)
        assert bytes(client.data) == data
        segments = -(-size // 1448)
        assert client.calls < segments, (client.calls, segments)
        transport.close()
        await s.close_peer_server(server)

    ethox_setup.run(body)
