"""The TCP server side of the loop: ``create_server``'s ``Server`` and its sockets.

Contract:
- :class:`EthoxServer` is an ``asyncio.AbstractServer`` over one :class:`TcpListener`
  per listening address (``host=None``: one per family). It accepts on
  ``EV_ACCEPT`` (a :class:`~._transports.TcpTransport` per connection, the
  protocol's ``connection_made`` via ``call_soon``), supports ``close``,
  ``wait_closed`` (waits for the connections as Python 3.12 does),
  ``serve_forever``, ``start_serving``, ``is_serving``, ``async with`` and 3.13's
  ``close_clients``/``abort_clients``.
- ``sockets`` holds :class:`ListenerSocket` objects: no kernel socket exists, so
  they offer ``family``, ``type``, ``proto``, ``fileno()`` (-1) and
  ``getsockname()`` only.
- :class:`_Connector` turns a connection's first event into the result of
  ``create_connection``'s wait.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import errno
import ipaddress
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._transports import TcpTransport
from .stack.tcp.connection import TcpConnection
from .stack.tcp.listener import TcpListener

if TYPE_CHECKING:
    from .loop import _EthoxLoopMixin

__all__ = ["EthoxServer", "ListenerSocket"]



class _Connector:
    """The owner of a connection while ``create_connection`` waits for the handshake."""

    __slots__ = ("closed_with", "future")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.closed_with: tuple[BaseException | None] | None = None

    def established(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def closed(self, exc: BaseException | None) -> None:
        if not self.future.done():
            self.future.set_exception(exc if exc is not None else ConnectionAbortedError(
                errno.ECONNABORTED, "connection aborted while connecting"))
        else:
            self.closed_with = (exc,)  # for the transport about to be made


class _ListenSpec:
    __slots__ = ("address", "listener", "port", "version")

    def __init__(self, version: int, address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                 port: int, listener: TcpListener | None) -> None:
        self.version = version
        self.address = address
        self.port = port
        self.listener = listener


class ListenerSocket:
    """What ``Server.sockets`` holds for a stack server: no kernel socket, but the
    read-only part of ``asyncio.TransportSocket`` that applications use."""

    __slots__ = ("_spec",)

    def __init__(self, spec: _ListenSpec) -> None:
        self._spec = spec

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if self._spec.version == 6 else socket.AF_INET

    @property
    def type(self) -> socket.SocketKind:
        return socket.SOCK_STREAM

    @property
    def proto(self) -> int:
        return socket.IPPROTO_TCP

    def fileno(self) -> int:
        return -1

    def getsockname(self) -> tuple[Any, ...]:
        host = str(self._spec.address)
        return (host, self._spec.port, 0, 0) if self._spec.version == 6 else \
            (host, self._spec.port)

    def __repr__(self) -> str:
        return f"<ethox ListenerSocket family={self.family.name} laddr={self.getsockname()}>"


class EthoxServer(asyncio.AbstractServer):
    """``asyncio.Server`` for stack listeners (3.12+ semantics: ``wait_closed`` waits
    for the connections too; 3.13's ``close_clients``/``abort_clients``)."""

    def __init__(self, loop: _EthoxLoopMixin, specs: list[_ListenSpec],
                 protocol_factory: Callable[[], asyncio.BaseProtocol], ssl_context: Any,
                 backlog: int, ssl_handshake_timeout: float | None,
                 ssl_shutdown_timeout: float | None) -> None:
        self._loop = loop
        self._specs: list[_ListenSpec] | None = specs
        self._protocol_factory = protocol_factory
        self._ssl_context = ssl_context
        self._backlog = backlog
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._active_count = 0
        self._clients: set[TcpTransport] = set()
        self._waiters: list[asyncio.Future[None]] | None = []
        self._serving = False
        self._serving_forever_fut: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} sockets={self.sockets!r}>"

    def _attach(self, transport: TcpTransport) -> None:
        self._active_count += 1
        self._clients.add(transport)

    def _detach(self, transport: TcpTransport) -> None:
        self._active_count -= 1
        self._clients.discard(transport)
        if self._active_count == 0 and self._specs is None:
            self._wakeup()

    def _wakeup(self) -> None:
        waiters = self._waiters
        self._waiters = None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def _start_serving(self) -> None:
        if self._serving or self._specs is None:
            return
        self._serving = True
        tcp = self._loop._stack.tcp
        for spec in self._specs:
            if spec.listener is None:
                spec.listener = tcp.listen(spec.version, int(spec.address), spec.port,
                                           self._backlog)
            spec.listener.owner = self

    def _accept(self, listener: TcpListener, conn: TcpConnection) -> None:
        """EV_ACCEPT: take ``conn`` from the accept queue and give it a protocol."""
        loop = self._loop
        queue = listener._accept_queue
        if queue and queue[0] is conn:
            listener.accept()
        elif conn in queue:  # (events come in queue order; stay safe anyway)
            queue.remove(conn)
            conn._listener = None
        if not self._serving:
            conn.abort(loop.time())
            loop._tcp_touch(conn)
            return
        protocol: asyncio.BaseProtocol | None = None
        transport: asyncio.Transport | None = None
        try:
            key = loop._tcp_key(conn)
            protocol = self._protocol_factory()
            if self._ssl_context:
                waiter: asyncio.Future[None] = loop.create_future()
                ssl_protocol = asyncio.sslproto.SSLProtocol(
                    loop, protocol, self._ssl_context, waiter, server_side=True,
                    ssl_handshake_timeout=self._ssl_handshake_timeout,  # type: ignore[arg-type]
                    ssl_shutdown_timeout=self._ssl_shutdown_timeout)
                TcpTransport(loop, ssl_protocol, conn, key, server=self)
                transport = ssl_protocol._app_transport
                loop.create_task(_close_on_failure(waiter, transport))
            else:
                transport = TcpTransport(loop, protocol, conn, key, server=self)
        except Exception as exc:
            if transport is None:
                conn.abort(loop.time())
                loop._tcp_touch(conn)
            if loop.get_debug():  # as CPython's _accept_connection2
                context: dict[str, Any] = {
                    "message": "Error on transport creation for incoming connection",
                    "exception": exc}
                if protocol is not None:
                    context["protocol"] = protocol
                loop.call_exception_handler(context)

    # --- AbstractServer ---------------------------------------------------------------

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[ListenerSocket, ...]:
        if self._specs is None:
            return ()
        return tuple(ListenerSocket(spec) for spec in self._specs)

    def close(self) -> None:
        specs = self._specs
        if specs is None:
            return
        self._specs = None
        tcp = self._loop._stack.tcp
        for spec in specs:
            if spec.listener is not None:
                tcp.close_listener(spec.listener, self._loop.time())  # RST what is queued
                spec.listener = None
        self._loop._schedule_pump()
        self._serving = False
        if self._serving_forever_fut is not None and not self._serving_forever_fut.done():
            self._serving_forever_fut.cancel()
            self._serving_forever_fut = None
        if self._active_count == 0:
            self._wakeup()

    def close_clients(self) -> None:
        for transport in self._clients.copy():
            transport.close()

    def abort_clients(self) -> None:
        for transport in self._clients.copy():
            transport.abort()

    async def start_serving(self) -> None:
        self._start_serving()
        await asyncio.sleep(0)

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._specs is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        if self._waiters is None:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter


async def _close_on_failure(waiter: asyncio.Future[None], transport: asyncio.Transport) -> None:
    """A TLS server connection whose handshake fails is closed (CPython's
    ``_accept_connection2``)."""
    try:
        await waiter
    except BaseException:
        transport.close()


