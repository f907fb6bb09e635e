"""asyncio transports over the user-space stack, with CPython's semantics.

Contract (``DatagramTransport``, matching ``asyncio.selector_events
._SelectorDatagramTransport``):
- Creation schedules, via ``call_soon`` and in this order, ``connection_made``,
  the waking of ``create_datagram_endpoint`` (which awaits it, as CPython's does,
  so ``connection_made`` has run when it returns) and the start of reading.
  Nothing reaches the protocol before ``connection_made``: datagrams and ICMP
  errors that arrive for the port earlier (a pump can run between the bind and
  ``connection_made``) are held, in arrival order, like the datagrams a kernel
  socket buffers before its reader is registered, and delivered one loop
  iteration after reading starts, in order and before anything newer. At most
  ``EARLY_LIMIT`` are held; more are dropped and counted in the stack's
  ``stats["udp_drop_before_connection_made"]`` (the kernel's RcvbufErrors).
- ``sendto(data, addr)``: ``data`` must be bytes-like (TypeError otherwise); on a
  connected transport ``addr`` must be None or the peer (ValueError otherwise);
  empty datagrams are sent (as newer CPython does; 3.11/3.12 and uvloop drop
  them). Errors the stack reports immediately (no route, message too long,
  broadcast without ``allow_broadcast``) go to ``protocol.error_received``
  synchronously, like a kernel socket's; ICMP errors arrive there later.
- After ``close()``/``abort()``, ``sendto`` sends nothing: it is ignored, and from
  the 5th such call on each logs ``socket.send() raised exception.`` as a warning
  on the ``asyncio`` logger (CPython's ``LOG_THRESHOLD_FOR_CONNLOST_WRITES``).
  CPython does this only for connected transports (an unconnected one still sends
  until ``connection_lost`` runs, then raises); uvloop and we do it for both.
- ``close()`` and ``abort()`` unbind the port at once (CPython frees it when
  ``connection_lost`` runs), drop whatever is held or
  still queued for the protocol (no ``datagram_received``/``error_received`` after
  ``close()``, even from the pump that is running) and call
  ``connection_lost(None)`` once, via ``call_soon``; calling them again is a no-op.
  ``get_write_buffer_size()`` is 0: datagrams are handed to the stack at once
  (those waiting for ARP are bounded by the neighbour cache).
- An exception raised by ``datagram_received`` or ``error_received`` goes to the
  loop's exception handler (as from a CPython ``Handle``); the transport stays
  open and later datagrams are delivered (uvloop differs: it closes the
  transport, or for ``error_received`` only prints the exception).
- ``get_extra_info``: ``sockname``, ``peername`` (connected only), ``socket``
  (None: there is no kernel socket). Addresses are ``(host, port)`` for IPv4 and
  ``(host, port, flowinfo, scope_id)`` for IPv6, as CPython's; so are the ``addr``
  given to ``datagram_received``.
"""

from __future__ import annotations

import asyncio
import errno
from asyncio import constants
from asyncio.log import logger as asyncio_logger
from collections import deque
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

from .stack.tcp.connection import TcpConnection
from .stack.udp import UdpEndpoint

if TYPE_CHECKING:
    from ._server import EthoxServer
    from .loop import _EthoxLoopMixin

EARLY_LIMIT = 256  # datagrams/errors held before reading starts (about one pump's worth)
_WARN_AFTER_CLOSED_SENDS = constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES  # 5
# asyncio's default write-buffer limits (_FlowControlMixin._set_write_buffer_limits()),
# as shared objects: a computed 16384 is a new int per transport.
_HIGH_WATER = 64 * 1024
_LOW_WATER = _HIGH_WATER // 4


class DatagramTransport(asyncio.DatagramTransport):
    def __init__(self, loop: _EthoxLoopMixin, protocol: asyncio.DatagramProtocol,
                 endpoint: UdpEndpoint, *, allow_broadcast: bool,
                 waiter: asyncio.Future[None] | None = None) -> None:
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self._endpoint = endpoint
        self._allow_broadcast = allow_broadcast
        self._closing = False
        self._sends_after_close = 0
        # Until reading starts, what arrives is held here (the kernel socket's buffer).
        self._reading = False
        self._early: deque[tuple[bytes, tuple[Any, ...]] | OSError] = deque()
        endpoint.owner = self
        self._extra: dict[str, Any] = {"socket": None}
        # connection_made first; held items reach the protocol only after the creating
        # coroutine resumed, as CPython's first read follows its waiter in practice.
        loop.call_soon(protocol.connection_made, self)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter)
        loop.call_soon(self._start_reading)

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return f"<ethox DatagramTransport {self._endpoint.local} {state}>"

    # --- BaseTransport ----------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            address, port = self._endpoint.local
            return self._address(str(address), port)
        if name == "peername":
            remote = self._endpoint.remote
            return self._address(str(remote[0]), remote[1]) if remote is not None else default
        return self._extra.get(name, default)

    def _address(self, host: str, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
        return (host, port, 0, 0) if self._endpoint.family == 6 else (host, port)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._early.clear()  # a closed kernel socket discards its receive buffer too
        self._loop._udp_closed(self)
        self._loop.call_soon(self._call_connection_lost)

    def abort(self) -> None:
        self.close()

    def _call_connection_lost(self) -> None:
        self._protocol.connection_lost(None)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def get_write_buffer_size(self) -> int:
        return 0

    # --- DatagramTransport ------------------------------------------------------------

    def sendto(self, data: Any, addr: Any = None) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        remote = self._endpoint.remote
        if remote is not None:
            if addr is not None and (ip_address(addr[0]), addr[1]) != (remote[0], remote[1]):
                raise ValueError(f"Invalid address: must be None or {remote}")
            addr = remote
        if addr is None:
            raise ValueError("sendto() needs an address on an unconnected transport")
        if self._closing:
            self._sends_after_close += 1
            if self._sends_after_close >= _WARN_AFTER_CLOSED_SENDS:
                asyncio_logger.warning("socket.send() raised exception.")
            return
        try:
            destination = ip_address(addr[0])
            if destination.version != self._endpoint.family:
                raise OSError(errno.EAFNOSUPPORT,
                              f"{destination} is not an IPv{self._endpoint.family} address")
            if self._loop._stack.routes.is_broadcast(destination) and not self._allow_broadcast:
                raise PermissionError(errno.EACCES, "broadcast needs allow_broadcast=True")
            self._loop._udp_send(self._endpoint, bytes(data), destination, int(addr[1]))
        except OSError as exc:
            self._protocol.error_received(exc)

    # --- reading (the pump calls _deliver and _report) --------------------------------------

    def _start_reading(self) -> None:
        """Scheduled after connection_made and the waiter; the held items follow one
        iteration later, as a kernel socket's buffered datagrams follow its reader
        (until they are delivered, newer arrivals queue behind them)."""
        if self._early:
            self._loop.call_soon(self._flush_early)
        else:
            self._reading = True

    def _flush_early(self) -> None:
        early = self._early  # close() empties it, also from inside a callback here
        while early:
            item = early.popleft()
            if isinstance(item, OSError):
                self._call_protocol(self._protocol.error_received, item)
            else:
                self._call_protocol(self._protocol.datagram_received, *item)
        self._reading = True

    def _hold(self, item: tuple[bytes, tuple[Any, ...]] | OSError) -> None:
        if len(self._early) < EARLY_LIMIT:
            self._early.append(item)
        else:
            self._loop._stack.stats["udp_drop_before_connection_made"] += 1

    def _deliver(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._closing:
            return
        if not self._reading:
            self._hold((data, self._address(*addr)))
            return
        self._call_protocol(self._protocol.datagram_received, data, self._address(*addr))

    def _report(self, exc: OSError) -> None:
        if self._closing:
            return
        if not self._reading:
            self._hold(exc)
            return
        self._call_protocol(self._protocol.error_received, exc)

    def _call_protocol(self, callback: Any, *args: Any) -> None:
        """Run a protocol callback; an exception goes to the loop's exception handler,
        as it would from a ``Handle``, and never stops the pump's other events."""
        try:
            callback(*args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"Exception in callback {callback!r}", "exception": exc,
                "transport": self, "protocol": self._protocol})

    def abort_with(self, exc: OSError) -> None:
        """Report a fatal error (the device is gone) and close."""
        self._report(exc)
        self.close()


def _set_result_unless_cancelled(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.set_result(None)


class TcpTransport(asyncio.transports._FlowControlMixin):
    """A stream transport over one stack TCP connection (see the module contract).

    In ``__slots__`` (asyncio's transport bases have slots too), with ``__weakref__``
    as CPython's and uvloop's transports have: no ``__dict__`` per connection.
    """

    __slots__ = ("__weakref__", "_backlog", "_buffered", "_closing", "_conn", "_conn_lost",
                 "_dead", "_eof", "_eof_pending", "_key", "_paused", "_protocol",
                 "_protocol_connected", "_reading", "_server", "_writes_after_close")

    _start_tls_compatible = True  # loop.start_tls wraps any transport via SSLProtocol
    # Set or provided by asyncio's _FlowControlMixin (typeshed does not declare them).
    _extra: dict[str, Any] | None
    _high_water: int
    _protocol_paused: bool
    _maybe_pause_protocol: Any
    _maybe_resume_protocol: Any

    def __init__(self, loop: _EthoxLoopMixin, protocol: asyncio.BaseProtocol,
                 conn: TcpConnection, key: tuple[int, int, int, int, int], *,
                 waiter: asyncio.Future[None] | None = None,
                 server: EthoxServer | None = None) -> None:
        # What _FlowControlMixin.__init__(extra, loop) does (BaseTransport's _extra, the
        # loop, not paused, the default limits), without its three calls. The extra
        # info is made from ``key`` (the connection's four-tuple, as the loop's
        # _tcp_key gives it) when first asked for: an idle connection's memory, ~300
        # bytes, that an application which never asks does not pay.
        self._extra = None
        self._key = key
        self._loop: _EthoxLoopMixin = loop
        self._protocol_paused = False
        self._high_water = _HIGH_WATER
        self._low_water = _LOW_WATER
        self._conn = conn
        conn.owner = self
        conn.set_reading(False)  # until connection_made has run
        # set_protocol(protocol), inline.
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        self._protocol: Any = protocol
        self._protocol_connected = True
        self._server = server
        self._closing = False  # close()/abort()/a fatal error: no more reading or writing
        self._conn_lost = 0  # connection_lost is scheduled (CPython's _conn_lost)
        self._writes_after_close = 0
        self._eof = False  # write_eof() was called
        self._paused = False  # pause_reading()
        self._reading = False  # reading started (after connection_made)
        self._dead = False  # the connection reported EV_CLOSED
        # Received while paused (or queued behind such data): copies, in order. Made on
        # first use: an empty deque costs ~600 bytes, a third of an idle connection.
        self._backlog: deque[bytes] | None = None
        self._eof_pending = False
        if server is not None:
            server._attach(self)
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter)

    def __repr__(self) -> str:
        state = "closed" if self._conn_lost else "closing" if self._closing else "open"
        peer = self.get_extra_info("peername")
        return f"<ethox TcpTransport {state} peer={peer} {self._conn.state.name}>"

    # --- BaseTransport ----------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        extra = self._extra
        if extra is None:
            extra = self._extra = self._loop._tcp_extra_of(*self._key)
        return extra.get(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        self._protocol = protocol
        self._protocol_connected = True

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        conn = self._conn
        if self._backlog:  # unread data: a closed kernel socket resets (Linux tcp_close)
            self._backlog = None
            self._conn_call(conn.abort)
        else:
            self._conn_call(conn.close)
        if not conn.send_buffered or self._dead:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)
        # else: connection_lost once the buffer is acknowledged (_on_sent) or the
        # connection fails (_on_closed).

    def abort(self) -> None:
        if self._conn_lost:
            return
        self._conn_call(self._conn.abort)
        self._force_close(None)

    # --- WriteTransport ---------------------------------------------------------------

    def write(self, data: Any) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        if self._closing or self._dead:
            self._writes_after_close += 1
            if self._writes_after_close >= _WARN_AFTER_CLOSED_SENDS:
                asyncio_logger.warning("socket.send() raised exception.")
            return
        if type(data) is not bytes:
            if isinstance(data, memoryview) and data.readonly and type(data.obj) is bytes \
                    and data.c_contiguous:
                data = data.cast("B") if data.format != "B" or data.ndim != 1 else data
            else:
                data = bytes(data)  # the caller may change it after write() returns
        try:
            self._conn.send(data)
        except OSError as exc:
            self._fatal_error(exc, "Fatal write error on socket transport")
            return
        self._loop._tcp_touch(self._conn)
        if self._conn.send_buffered > self._high_water:
            self._maybe_pause_protocol()

    def writelines(self, list_of_data: Any) -> None:
        items = list(list_of_data)
        for item in items:
            if not isinstance(item, (bytes, bytearray, memoryview)):
                raise TypeError(f"data argument must be a bytes-like object, "
                                f"not {type(item).__name__!r}")
        for item in items:
            self.write(item)

    def write_eof(self) -> None:
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._dead:
            self._conn_call(self._conn.shutdown)

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return self._conn.send_buffered

    # --- ReadTransport ----------------------------------------------------------------

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        if self._closing or self._paused:
            return
        self._paused = True
        self._conn.set_reading(False)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        if not self._reading:
            return  # _start_reading will start it
        self._resume_connection()
        if self._backlog or self._eof_pending:
            self._loop.call_soon(self._drain_backlog)

    # --- internals --------------------------------------------------------------------

    def _conn_call(self, method: Any) -> None:
        """A user call on the connection (``method(now)``), then its output is due."""
        try:
            method(self._loop.time())
        except OSError:
            pass  # already closed or closing: nothing more to do on the wire
        self._loop._tcp_touch(self._conn)

    def _resume_connection(self) -> None:
        # Also after EV_CLOSED(None): a connection in TIME-WAIT may still hold data and
        # the EOF for the application.
        self._conn.set_reading(True)  # held data comes back as EV_DATA (in the pump)
        self._loop._tcp_touch(self._conn)

    def _start_reading(self) -> None:
        """Scheduled after connection_made (CPython adds the reader at this point)."""
        self._reading = True
        if self._closing or self._paused:
            return
        self._resume_connection()
        if self._backlog or self._eof_pending:
            self._drain_backlog()

    def _drain_backlog(self) -> None:
        backlog = self._backlog
        while backlog and self._reading and not self._paused and not self._closing:
            self._deliver(backlog.popleft())
        if self._eof_pending and not backlog and self._reading and not self._paused \
                and not self._closing:
            self._eof_pending = False
            self._deliver_eof()

    # --- from the pump ----------------------------------------------------------------

    def _on_data(self, data: bytes | memoryview) -> None:
        if self._closing:
            return  # a closed kernel socket's reader is gone too
        if self._paused or self._backlog or not self._reading:
            if self._backlog is None:
                self._backlog = deque()
            self._backlog.append(bytes(data))  # the frame's buffer is reused after the pump
            return
        self._deliver(data)

    def _deliver(self, data: bytes | memoryview) -> None:
        protocol = self._protocol
        conn = self._conn
        n = len(data)
        if not self._buffered:
            try:
                protocol.data_received(data if type(data) is bytes else bytes(data))
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
                return
            if conn.consumed(n):  # a window update is owed (else nothing to send)
                self._loop._tcp_touch(conn)
            return
        view = memoryview(data)
        offset = 0
        while offset < n:
            try:
                buf = protocol.get_buffer(n - offset)
                if not len(buf):
                    raise RuntimeError("get_buffer() returned an empty buffer")
                target = memoryview(buf)
                if target.format != "B" or target.ndim != 1:
                    target = target.cast("B")
                k = min(len(target), n - offset)
                target[:k] = view[offset:offset + k]
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
                return
            offset += k
            try:
                protocol.buffer_updated(k)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")
                return
            conn.consumed(k)
            if offset < n and (self._paused or self._closing):
                if not self._closing:  # paused inside buffer_updated: keep the rest
                    if self._backlog is None:
                        self._backlog = deque()
                    self._backlog.appendleft(bytes(view[offset:]))
                break
        self._loop._tcp_touch(conn)

    def _on_eof(self) -> None:
        if self._closing:
            return
        if self._paused or self._backlog or not self._reading:
            self._eof_pending = True
            return
        self._deliver_eof()

    def _deliver_eof(self) -> None:
        if self._loop.get_debug():
            asyncio_logger.debug("%r received EOF", self)
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if not keep_open:
            self.close()

    def _on_sent(self) -> None:
        if self._conn_lost:
            return
        self._maybe_resume_protocol()
        if self._closing and not self._conn.send_buffered:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)

    def _on_closed(self, exc: BaseException | None) -> None:
        self._dead = True
        if exc is not None:
            self._fatal_error(exc, "Fatal error on transport")
        elif self._closing and not self._conn_lost:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)
        # else an orderly end both ways while the application still holds the
        # transport (write_eof + a true eof_received): like a kernel socket in TIME-WAIT,
        # it stays open until close().

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on transport"
                     ) -> None:
        """CPython's ``_SelectorTransport._fatal_error``."""
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                asyncio_logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                "message": message, "exception": exc, "transport": self,
                "protocol": self._protocol})
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._conn_lost:
            return
        self._backlog = None
        self._eof_pending = False
        self._closing = True
        if not self._dead:
            self._conn_call(self._conn.close)  # a kernel socket's close()
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            if self._conn.owner is self:
                self._conn.owner = None  # what the orphan still reports goes nowhere
            server = self._server
            if server is not None:
                self._server = None
                server._detach(self)
