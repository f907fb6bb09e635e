"""The asyncio event loop that drives the user-space stack.

Contract:
- ``EthoxEventLoop`` subclasses uvloop's ``Loop`` when uvloop is importable, else
  ``asyncio.SelectorEventLoop`` (``base="asyncio"`` selects it). Everything it
  inherits (timers, ``call_soon``, executors, signals, kernel sockets, debug mode,
  the exception handler) is the base loop's, unchanged.
- It owns one device and one :class:`~.stack.interface.Interface`. One pump runs
  after every stimulus (device readable, the stack's deadline, a user send):
  receive a bounded batch → ``ingress`` each frame → dispatch events to
  protocols → ``egress`` a bounded batch → one ``transmit`` → re-arm the single
  deadline timer for ``poll_at()`` (asked once per pump; lazily: a timer armed
  earlier than the deadline stays and its pump re-arms, so a deadline that moves
  later — the RTO on every ACK — costs no timer handle). A user send schedules at
  most one pump per loop iteration.
- Routing rule for ``create_datagram_endpoint`` (predictable on purpose): a call
  goes over the user-space stack unless it passes ``sock=``, or its remote
  address — or, without one, its local address — is a loopback address
  (127.0.0.0/8, ::1), or ``family`` is ``AF_UNIX``; those stay on the kernel.
  Only numeric addresses (and ``localhost``) are accepted for the stack: the
  kernel resolver is never asked about them.
- Routing rule for TCP: ``create_connection`` goes over the stack unless it passes
  ``sock=``, ``AF_UNIX``, no host or a loopback host; ``create_server`` unless it
  passes ``sock=``, ``AF_UNIX`` or loopback hosts (``host=None``: the wildcard of
  both families, as CPython binds every family). Numeric hosts only, as above.
  Transports are :class:`~._transports.TcpTransport`; servers are
  :class:`~._server.EthoxServer` (``asyncio.AbstractServer``; ``sockets`` holds
  :class:`~._server.ListenerSocket` objects).
  ``ssl=`` and ``start_tls`` wrap our transport in ``asyncio.sslproto``.
- TCP data events point into the received frames: they are dispatched after every
  ``receive()`` batch, before the device reuses its buffers. Consecutive data events
  of one connection in a batch reach a ``Protocol`` as one ``data_received`` (GRO
  where the device gives none; a ``BufferedProtocol`` gets each segment straight into
  its buffer). A received frame whose handling raises is reported to the exception
  handler; the rest of the batch goes on.
- A device that disappears (``DeviceGone``) is reported once through the loop's
  exception handler, every endpoint's ``error_received`` and every TCP transport's
  ``connection_lost``; the loop keeps running (later pumps do nothing).
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import asyncio.unix_events
import errno
import functools
import inspect
import ipaddress
import itertools
import os
import socket
import ssl as ssl_module
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._server import EthoxServer, _Connector, _ListenSpec
from ._transports import DatagramTransport, TcpTransport
from .config import StackConfig
from .device.base import Device, DeviceError, Frame
from .device.pcap import PcapWriter
from .device.spec import open_device
from .device.vnet import (
    FLAG_DATA_VALID,
    FLAG_NEEDS_CSUM,
    GSO_TCPV4,
    GSO_TCPV6,
    NO_OFFLOAD,
    VNET_HDR_LEN,
    VnetHeader,
)
from .stack.interface import EchoReply, Interface, InterfaceConfig, UdpDatagram, UdpError
from .stack.path import OutFrame
from .stack.tcp.connection import (
    EV_ACCEPT,
    EV_CLOSED,
    EV_DATA,
    EV_EOF,
    EV_ESTABLISHED,
    EV_SENT,
    TcpConnection,
)
from .stack.tcp.host import complete_checksum, partial_checksum_span
from .stack.udp import UdpEndpoint

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency, but stay usable
    uvloop = None  # type: ignore[assignment]

if TYPE_CHECKING:
    _LoopBase = asyncio.AbstractEventLoop
else:
    _LoopBase = object

__all__ = ["EthoxEventLoop", "EthoxSelectorEventLoop", "EventLoopPolicy", "new_event_loop",
           "run"]

RX_BATCH = 64  # frames per receive() call
RX_BUDGET = 256  # frames per pump, so a flood cannot starve other callbacks
TX_BUDGET = 256
_T = TypeVar("_T")


# The text of the addresses connections use (DESIGN.md: cache what the asyncio edge
# needs per endpoint, never rebuild it): an accepted connection's peername and
# sockname cost a dict lookup, not two ipaddress objects. Bounded; rebuilt on demand.
_ADDRESS_TEXT: dict[tuple[int, int], str] = {}
_ADDRESS_TEXT_LIMIT = 4096


def _address_text(family: int, value: int) -> str:
    """``str(IPv4Address(value))`` or ``str(IPv6Address(value))``, cached."""
    key = (family, value)
    text = _ADDRESS_TEXT.get(key)
    if text is None:
        if len(_ADDRESS_TEXT) >= _ADDRESS_TEXT_LIMIT:
            _ADDRESS_TEXT.clear()
        text = _ADDRESS_TEXT[key] = str(ipaddress.IPv6Address(value) if family == 6
                                        else ipaddress.IPv4Address(value))
    return text


def _is_loopback(host: Any) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _EthoxLoopMixin(_LoopBase):
    """The stack-driving part, shared by both base loops (see the module contract)."""

    _stack: Interface
    _device: Device

    def __init__(self, config: StackConfig | None = None, *, device: Device | None = None
                 ) -> None:
        super().__init__()  # the base loop (uvloop.Loop or SelectorEventLoop)
        try:
            self._ethox_init(config, device)
        except BaseException:
            super().close()
            raise

    def _ethox_init(self, config: StackConfig | None, device: Device | None) -> None:
        config = config or StackConfig.from_env()
        if device is None:
            if config.device is None:
                raise ValueError("ethox_asyncio needs a device: pass device=/config= or set "
                                 "ETHOX_DEVICE (e.g. tap:tap0)")
            device = open_device(config.device)
        # Captured here rather than with PcapDevice: frames are written without the
        # device's virtio-net header, so the capture is plain Ethernet.
        self._pcap = PcapWriter(config.pcap) if config.pcap else None
        self._device = device
        self._vnet = device.capabilities.vnet_header
        self._stack = Interface(InterfaceConfig(
            mac=config.mac, addresses=config.addresses,
            gateways=config.gateways,
            mtu=min(config.mtu, device.capabilities.mtu),
            tcp_checksum_offload=self._vnet and device.capabilities.checksum_offload,
            tcp_tso=self._vnet and device.capabilities.tso,
            secret=os.urandom(32)))  # keys TCP ISNs and ephemeral ports (RFC 6528, 6056)
        self._pump_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._device_poll_at: Callable[[], float | None] | None = getattr(
            device, "poll_at", None)  # a device that holds frames back (FaultInjector)
        self._pings: dict[tuple[int, int], asyncio.Future[float]] = {}
        self._ping_ident = itertools.count(0x4500)
        self._device_gone = False
        self._collecting = False  # inside a pump, before its egress
        self.add_reader(device.fileno(), self._pump)
        self._schedule_pump()  # gratuitous ARP is queued at start

    # --- the pump ---------------------------------------------------------------------

    def _schedule_pump(self) -> None:
        if self._pump_handle is None:
            self._pump_handle = self.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_handle = None
        if self._device_gone:
            return  # reported once by _device_failed; every pump would fail the same way
        now: float = self.time()
        try:
            self._collecting = True  # user calls from the protocols: this egress sends
            try:
                self._receive_batch(now)
                if self._stack.events:
                    self._dispatch_events()
            finally:
                self._collecting = False
            self._transmit_batch(now)
            if self._stack.events:  # timers that ran in egress (a TCP timeout...)
                self._dispatch_events()
        except DeviceError as exc:
            self._device_failed(exc)
            return
        except Exception as exc:  # a bug in the stack must not stop the pump for good
            self.call_exception_handler({"message": "ethox_asyncio: error in the pump",
                                         "exception": exc})
        # Asked once per pump (after the events: a protocol callback may have written).
        deadline = self._stack.poll_at()
        if deadline == 0.0:  # more queued than the budget allowed, or written just now
            self._schedule_pump()
        else:
            self._rearm_timer(deadline)

    def _receive_batch(self, now: float) -> None:
        stack, device, vnet, pcap = self._stack, self._device, self._vnet, self._pcap
        ingress, events = stack.ingress, stack.events
        received = 0
        while received < RX_BUDGET:
            frames = device.receive(RX_BATCH)
            if not frames:
                break
            received += len(frames)
            for frame in frames:
                try:
                    if vnet:
                        flags = frame[0]
                        # The kernel validated or will not have computed the checksum
                        # (NEEDS_CSUM: it trusted its own sender); either way do not
                        # verify.
                        frame = frame[VNET_HDR_LEN:]
                        if pcap is not None:
                            pcap.write(frame, time.time())
                        ingress(frame, now, checksum_verified=bool(
                            flags & (FLAG_NEEDS_CSUM | FLAG_DATA_VALID)))
                        continue
                    if pcap is not None:
                        pcap.write(frame, time.time())
                    ingress(frame, now)
                except Exception as exc:  # one bad frame must not cost the rest of the batch
                    self.call_exception_handler({
                        "message": "ethox_asyncio: error in the pump",  # (one frame)
                        "exception": exc})
            # TCP data events point into these frames' buffers, which the next
            # receive() reuses: hand them to the protocols now.
            if events:
                self._dispatch_events()

    def _transmit_batch(self, now: float) -> None:
        frames = self._stack.egress(now, TX_BUDGET)
        if frames:
            offload = self._stack.tcp.checksum_offload
            if self._pcap is not None:
                stamp = time.time()
                for frame in frames:
                    self._pcap.write(_as_sent(frame, offload), stamp)
            if self._vnet:
                sent = self._device.transmit([_with_vnet_header(frame, offload)
                                              for frame in frames])
            else:  # no virtio-net header, no TSO: no super-segment among them
                sent = self._device.transmit(cast("list[Frame]", frames))
            if sent < len(frames):
                # The device queue is full (EAGAIN): the rest is dropped as a full
                # interface queue drops it, and counted; TCP sends it again.
                self._stack.stats["tx_device_full"] += len(frames) - sent

    def _dispatch_events(self) -> None:
        events = self._stack.events
        while events:
            event = events.popleft()
            if type(event) is tuple:  # type: ignore[comparison-overlap]
                kind, obj, arg = event
                owner = obj.owner
                try:
                    # The two events of every exchange, to a plain transport, inline.
                    if type(owner) is TcpTransport and kind == EV_DATA:
                        if events and not owner._buffered:
                            arg = _coalesce(events, obj, arg)
                        owner._on_data(arg)
                    elif type(owner) is TcpTransport and kind == EV_SENT:
                        # Only a paused protocol (resume_writing) or a closing transport
                        # (connection_lost once all is acknowledged) wants to know.
                        if owner._protocol_paused or owner._closing:
                            owner._on_sent()
                    else:
                        self._dispatch_tcp(kind, obj, arg)
                except Exception as exc:  # a bug here must not lose the other events
                    self.call_exception_handler({
                        "message": f"ethox_asyncio: error dispatching {event[0]}",
                        "exception": exc})
            elif isinstance(event, UdpDatagram):
                transport = event.endpoint.owner
                if isinstance(transport, DatagramTransport):
                    transport._deliver(event.data, event.src)
            elif isinstance(event, UdpError):
                transport = event.endpoint.owner
                if isinstance(transport, DatagramTransport):
                    transport._report(event.error)
            elif isinstance(event, EchoReply):
                future = self._pings.pop((event.ident, event.seq_no), None)
                if future is not None and not future.done():
                    # perf_counter, not loop.time(): uvloop's clock has 1 ms resolution.
                    future.set_result(time.perf_counter())

    def _dispatch_tcp(self, kind: str, obj: Any, arg: Any) -> None:
        owner = obj.owner
        if isinstance(owner, TcpTransport):
            if kind == EV_DATA:
                owner._on_data(arg)
            elif kind == EV_SENT:
                owner._on_sent()
            elif kind == EV_EOF:
                owner._on_eof()
            elif kind == EV_CLOSED:
                owner._on_closed(arg)
        elif isinstance(owner, _Connector):
            if kind == EV_ESTABLISHED:
                owner.established()
            elif kind == EV_CLOSED:
                owner.closed(arg)
        elif isinstance(owner, EthoxServer) and kind == EV_ACCEPT:
            owner._accept(obj, arg)

    def _rearm_timer(self, deadline: float | None) -> None:
        """Arm the one timer for ``deadline`` (the stack's) or the device's, if earlier.

        Lazily: a timer already armed at or before the deadline stays, fires early,
        and its pump re-arms for what is then due; so the RTO that every exchange
        pushes back (RFC 6298 §5.3) costs no cancel and no new timer handle per
        request (measured: ~20 µs per request under cProfile), only a spurious pump
        per RTO. Only an earlier deadline re-arms; a deadline gone leaves the timer to
        fire for nothing once."""
        device_poll_at = self._device_poll_at
        if device_poll_at is not None:
            at = device_poll_at()
            if at is not None and (deadline is None or at < deadline):
                deadline = at
        if deadline is None:
            return
        armed = self._timer_at
        if armed is not None and armed <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._pump()

    def _device_failed(self, exc: DeviceError) -> None:
        self._device_gone = True
        self.remove_reader(self._device.fileno())
        self.call_exception_handler({
            "message": f"ethox_asyncio: device failed: {exc}", "exception": exc})
        for endpoint in list(self._stack.udp.endpoints()):
            if isinstance(endpoint.owner, DatagramTransport):
                endpoint.owner.abort_with(exc)
        for conn in list(self._stack.tcp.connections.values()):
            owner = conn.owner
            if isinstance(owner, TcpTransport):
                owner._on_closed(exc)
            elif isinstance(owner, _Connector):
                owner.closed(exc)

    # --- UDP ----------------------------------------------------------------------------

    def _udp_send(self, endpoint: UdpEndpoint, data: bytes,
                  dst: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> None:
        self._stack.send_udp(endpoint, data, dst, port, self.time())
        self._schedule_pump()

    def _udp_closed(self, transport: DatagramTransport) -> None:
        self._stack.udp.unbind(transport._endpoint)

    async def create_datagram_endpoint(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | str | None = None,
        remote_addr: tuple[str, int] | str | None = None, *, family: int = 0, proto: int = 0,
        flags: int = 0, reuse_address: bool | None = None, reuse_port: bool | None = None,
        allow_broadcast: bool | None = None, sock: socket.socket | None = None,
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        target = remote_addr if remote_addr is not None else local_addr
        host = target[0] if isinstance(target, tuple) else None
        if sock is not None or family == socket.AF_UNIX or _is_loopback(host) \
                or (local_addr is None and remote_addr is None):
            kwargs: dict[str, Any] = dict(family=family, proto=proto, flags=flags,
                                          reuse_port=reuse_port,
                                          allow_broadcast=allow_broadcast, sock=sock)
            if reuse_address is not None:
                kwargs["reuse_address"] = reuse_address
            result: tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol] = (
                await super().create_datagram_endpoint(
                    protocol_factory, local_addr, remote_addr, **kwargs))
            return result
        if reuse_address:
            raise ValueError("Passing `reuse_address=True` is no longer supported, as the "
                             "usage of SO_REUSEPORT in UDP poses a significant security "
                             "concern.")
        if family not in (0, socket.AF_INET, socket.AF_INET6):
            raise OSError(errno.EAFNOSUPPORT, "ethox_asyncio: only IPv4 and IPv6 datagram "
                                              "endpoints go over the stack")
        endpoint = self._udp_bind(local_addr, remote_addr, bool(reuse_port), family)
        try:
            protocol = protocol_factory()
        except BaseException:
            self._stack.udp.unbind(endpoint)  # no transport owns the port yet
            raise
        # As CPython's: return once connection_made has run (the transport holds what
        # arrives before it); cancelled meanwhile, the transport is closed.
        waiter: asyncio.Future[None] = self.create_future()
        transport = DatagramTransport(self, protocol, endpoint,
                                      allow_broadcast=bool(allow_broadcast), waiter=waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    def _udp_bind(self, local_addr: Any, remote_addr: Any, reuse_port: bool,
                  family: int) -> UdpEndpoint:
        """Bind (and connect); the family is ``family`` or inferred from the addresses."""
        table = self._stack.udp
        local = ipaddress.ip_address(_numeric(local_addr[0])) if local_addr is not None \
            else None
        remote = ipaddress.ip_address(_numeric(remote_addr[0])) if remote_addr is not None \
            else None
        version = 6 if family == socket.AF_INET6 else 4 if family == socket.AF_INET \
            else (local or remote).version  # type: ignore[union-attr]
        for given in (local, remote):
            if given is not None and given.version != version:
                raise OSError(errno.EAFNOSUPPORT, f"{given} is not an IPv{version} address")
        port = int(local_addr[1]) if local_addr is not None else 0
        address = local if local is not None else \
            ipaddress.ip_address("::" if version == 6 else "0.0.0.0")
        if not address.is_unspecified and address not in self._stack.local_addresses:
            raise OSError(errno.EADDRNOTAVAIL,
                          f"[Errno {errno.EADDRNOTAVAIL}] {address} is not an address of "
                          "the ethox interface")
        endpoint = table.bind(address, port, family=version, reuse_port=reuse_port)
        if remote is not None:
            if address.is_unspecified:
                endpoint.set_local_address(self._stack.source_address(remote))
            table.connect(endpoint, remote, int(remote_addr[1]))
        return endpoint

    # --- TCP ----------------------------------------------------------------------------

    def _tcp_touch(self, conn: TcpConnection) -> None:
        """After a user call on ``conn``: its output is due, and so may be events."""
        self._stack.tcp.touch(conn)
        if not self._collecting:
            self._schedule_pump()

    def _tcp_key(self, conn: TcpConnection) -> tuple[int, int, int, int, int]:
        # The host's four-tuple table (a read of its private index: the connection does
        # not carry its addresses); valid while the connection is in the table. The
        # transport keeps it and makes its extra info (_tcp_extra_of) when asked.
        return self._stack.tcp.four_tuple(conn)

    @staticmethod
    def _tcp_extra_of(family: int, local: int, local_port: int, remote: int,
                      remote_port: int) -> dict[str, Any]:
        if family == 6:
            return {"socket": None,
                    "sockname": (_address_text(6, local), local_port, 0, 0),
                    "peername": (_address_text(6, remote), remote_port, 0, 0)}
        return {"socket": None,
                "sockname": (_address_text(4, local), local_port),
                "peername": (_address_text(4, remote), remote_port)}

    async def create_connection(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str | None = None,
        port: int | str | None = None, *, ssl: Any = None, family: int = 0, proto: int = 0,
        flags: int = 0, sock: socket.socket | None = None, local_addr: Any = None,
        server_hostname: str | None = None, ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None, happy_eyeballs_delay: float | None = None,
        interleave: int | None = None, all_errors: bool = False,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """Over the stack unless ``sock=``, ``AF_UNIX``, no host or a loopback host (then
        the base loop's, unchanged). Numeric hosts only; one address, so
        ``happy_eyeballs_delay``, ``interleave`` and ``all_errors`` change nothing."""
        if sock is not None or family == socket.AF_UNIX or host is None \
                or _is_loopback(host):
            kwargs: dict[str, Any] = dict(ssl=ssl, family=family, proto=proto, flags=flags,
                                          sock=sock, local_addr=local_addr,
                                          server_hostname=server_hostname,
                                          ssl_handshake_timeout=ssl_handshake_timeout,
                                          ssl_shutdown_timeout=ssl_shutdown_timeout)
            for name, value in (("happy_eyeballs_delay", happy_eyeballs_delay),
                                ("interleave", interleave), ("all_errors", all_errors)):
                if value:  # not every base loop takes them (uvloop does not)
                    kwargs[name] = value
            result: tuple[asyncio.Transport, asyncio.BaseProtocol] = (
                await super().create_connection(
                    protocol_factory, host, port, **kwargs))  # type: ignore[arg-type]
            return result
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if server_hostname is None and ssl:
            server_hostname = host
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        conn, connector = self._tcp_connect(host, port, family, local_addr)
        key = self._tcp_key(conn)  # now: the connection may be gone when it fails
        try:
            await connector.future
        except BaseException:
            if conn.owner is connector:  # cancelled while connecting
                conn.abort(self.time())
                self._tcp_touch(conn)
            raise
        try:
            protocol = protocol_factory()
        except BaseException:
            conn.abort(self.time())
            self._tcp_touch(conn)
            raise
        waiter: asyncio.Future[None] = self.create_future()
        transport: asyncio.Transport
        if ssl:
            ssl_protocol = asyncio.sslproto.SSLProtocol(
                self, protocol, None if isinstance(ssl, bool) else ssl,  # type: ignore[arg-type]
                waiter, server_side=False, server_hostname=server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout,  # type: ignore[arg-type]
                ssl_shutdown_timeout=ssl_shutdown_timeout)
            raw = TcpTransport(self, ssl_protocol, conn, key)
            transport = ssl_protocol._app_transport
        else:
            raw = transport = TcpTransport(self, protocol, conn, key, waiter=waiter)
        if connector.closed_with:  # failed between the handshake and now
            raw._on_closed(connector.closed_with[0])
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    async def start_tls(
        self, transport: asyncio.BaseTransport, protocol: asyncio.BaseProtocol,
        sslcontext: Any, *, server_side: bool = False, server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None, ssl_shutdown_timeout: float | None = None,
    ) -> asyncio.Transport | None:
        """CPython's ``start_tls`` for our transports (uvloop's accepts only its own);
        anything else goes to the base loop."""
        if not isinstance(transport, TcpTransport):
            result: asyncio.Transport | None = await super().start_tls(
                transport, protocol, sslcontext, server_side=server_side,  # type: ignore[arg-type]
                server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout)
            return result
        if not isinstance(sslcontext, ssl_module.SSLContext):
            raise TypeError(f"sslcontext is expected to be an instance of ssl.SSLContext, "
                            f"got {sslcontext!r}")
        waiter: asyncio.Future[None] = self.create_future()
        ssl_protocol = asyncio.sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,  # type: ignore[arg-type]
            ssl_shutdown_timeout=ssl_shutdown_timeout, call_connection_made=False)
        # Pause early so that "ssl_protocol" has data to read only after connection_made.
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        made = self.call_soon(ssl_protocol.connection_made, transport)
        resume = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            made.cancel()
            resume.cancel()
            raise
        return ssl_protocol._app_transport

    def _tcp_connect(self, host: str, port: Any, family: int, local_addr: Any
                     ) -> tuple[TcpConnection, _Connector]:
        if family not in (0, socket.AF_INET, socket.AF_INET6):
            raise OSError(errno.EAFNOSUPPORT, "ethox_asyncio: only IPv4 and IPv6 connections "
                                              "go over the stack")
        remote = ipaddress.ip_address(_numeric(host))
        version = remote.version
        if family not in (0, socket.AF_INET if version == 4 else socket.AF_INET6):
            raise socket.gaierror(socket.EAI_ADDRFAMILY,
                                  "Address family for hostname not supported")
        remote_port = int(port or 0)
        local_port = 0
        source: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
        if local_addr is not None:
            source = ipaddress.ip_address(_numeric(local_addr[0]))
            local_port = int(local_addr[1] or 0)
            if source.version != version:
                raise OSError(errno.EAFNOSUPPORT, f"{source} is not an IPv{version} address")
            if source.is_unspecified:
                source = None
            elif source not in self._stack.local_addresses:
                raise OSError(errno.EADDRNOTAVAIL,
                              f"error while attempting to bind on address {local_addr!r}: "
                              "cannot assign requested address")
        if self._stack.routes.lookup(remote) is None:
            raise OSError(errno.ENETUNREACH, "Network is unreachable")
        if source is None:
            source = self._stack.source_address(remote)
        connector = _Connector(self.create_future())
        conn = self._stack.tcp.connect(version, int(source), local_port, int(remote),
                                       remote_port, self.time(), owner=connector)
        conn.set_reading(False)  # until the transport's connection_made has run
        self._tcp_touch(conn)
        return conn, connector

    async def create_server(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | list[str] | None = None, port: int | str | None = None, *,
        family: int = socket.AF_UNSPEC, flags: int = socket.AI_PASSIVE,
        sock: socket.socket | None = None, backlog: int = 100, ssl: Any = None,
        reuse_address: bool | None = None, reuse_port: bool | None = None,
        keep_alive: bool | None = None, ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None, start_serving: bool = True,
    ) -> asyncio.AbstractServer:
        """Over the stack unless ``sock=``, ``AF_UNIX`` or loopback hosts (then the base
        loop's). ``host=None`` or ``""``: the wildcard of every family (``0.0.0.0`` and
        ``::``, each with its own port when ``port`` is 0, as CPython binds them)."""
        hosts: list[str | None] = [host] if host is None or isinstance(host, str) \
            else list(host)
        loopback = [h for h in hosts if h and _is_loopback(h)]
        if sock is not None or family == socket.AF_UNIX or loopback:
            if len(loopback) != len(hosts) and sock is None and family != socket.AF_UNIX:
                raise ValueError("ethox_asyncio: a server cannot mix loopback hosts (kernel) "
                                 "and stack hosts")
            kwargs: dict[str, Any] = dict(
                family=family, flags=flags, sock=sock, backlog=backlog, ssl=ssl,
                reuse_address=reuse_address, reuse_port=reuse_port,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout, start_serving=start_serving)
            if keep_alive is not None:
                kwargs["keep_alive"] = keep_alive
            server: asyncio.AbstractServer = await super().create_server(
                protocol_factory, host, port, **kwargs)  # type: ignore[arg-type]
            return server
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        if ssl_handshake_timeout is not None and ssl is None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and ssl is None:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if family not in (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6):
            raise OSError(errno.EAFNOSUPPORT, "ethox_asyncio: only IPv4 and IPv6 servers go "
                                              "over the stack")
        versions = [v for v, af in ((4, socket.AF_INET), (6, socket.AF_INET6))
                    if family in (socket.AF_UNSPEC, af)]
        binds: list[tuple[int, ipaddress.IPv4Address | ipaddress.IPv6Address]] = []
        for name in hosts:
            if not name:
                binds.extend((v, ipaddress.ip_address("::" if v == 6 else "0.0.0.0"))
                             for v in versions)
                continue
            address = ipaddress.ip_address(_numeric(name))
            if address.version not in versions:
                raise socket.gaierror(socket.EAI_ADDRFAMILY,
                                      "Address family for hostname not supported")
            if not address.is_unspecified and address not in self._stack.local_addresses:
                raise OSError(errno.EADDRNOTAVAIL,
                              f"error while attempting to bind on address "
                              f"{(str(address), int(port or 0))!r}: cannot assign requested "
                              "address")
            binds.append((address.version, address))
        tcp = self._stack.tcp
        specs: list[_ListenSpec] = []
        try:
            for version, address in dict.fromkeys(binds):
                try:
                    listener = tcp.listen(version, int(address), int(port or 0), backlog)
                except OSError as err:
                    raise OSError(err.errno, f"error while attempting to bind on address "
                                             f"{(str(address), int(port or 0))!r}: "
                                             f"address already in use") from None
                specs.append(_ListenSpec(version, address, listener.local_port, listener))
        except BaseException:
            for spec in specs:
                tcp.close_listener(spec.listener, self.time())  # type: ignore[arg-type]
            raise
        stack_server = EthoxServer(self, specs, protocol_factory, ssl, backlog,
                               ssl_handshake_timeout, ssl_shutdown_timeout)
        if start_serving:
            stack_server._start_serving()
            await asyncio.sleep(0)  # as CPython's create_server
        else:
            for spec in specs:  # bound, not listening: a SYN is refused until start_serving
                tcp.close_listener(spec.listener, self.time())  # type: ignore[arg-type]
                spec.listener = None
        return stack_server

    # --- name resolution --------------------------------------------------------------

    async def getaddrinfo(
        self, host: bytes | str | None, port: bytes | str | int | None, *, family: int = 0,
        type: int = 0, proto: int = 0, flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        """Numeric hosts are answered here, without the kernel resolver or an executor
        thread (as ``socket.getaddrinfo`` with ``AI_NUMERICHOST`` would answer them);
        names go to the base loop's resolver unchanged."""
        numeric = _numeric_addrinfo(host, port, family, type, proto)
        if numeric is not None:
            return numeric
        result: list[tuple[Any, ...]] = await super().getaddrinfo(
            host, port, family=family, type=type, proto=proto, flags=flags)
        return result

    # --- ping -----------------------------------------------------------------------------

    async def ping(self, host: str, *, seq_no: int = 0, data: bytes = b"ethox-asyncio ping",
                   timeout: float = 1.0, ident: int | None = None) -> float:
        """Send one ICMP (or ICMPv6) echo request; return the round-trip time in seconds.

        Raises TimeoutError when no reply arrives within ``timeout``.
        """
        destination = ipaddress.ip_address(_numeric(host))
        ident = next(self._ping_ident) & 0xFFFF if ident is None else ident
        future: asyncio.Future[float] = self.create_future()
        self._pings[(ident, seq_no)] = future
        sent_at = time.perf_counter()
        try:
            self._stack.send_ping(destination, ident, seq_no, data, self.time())
            self._schedule_pump()
            received_at = await asyncio.wait_for(future, timeout)
        finally:
            self._pings.pop((ident, seq_no), None)
        return received_at - sent_at

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        if not self.is_closed():
            device = getattr(self, "_device", None)
            if device is not None:
                try:
                    self.remove_reader(device.fileno())
                except (OSError, ValueError):
                    pass
                device.close()
            if self._pcap is not None:
                self._pcap.close()
        super().close()


def _numeric(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"ethox_asyncio: {host!r} is not a numeric IP address; resolve it "
                         "first (the stack does not consult the kernel resolver)") from None


def _numeric_addrinfo(host: bytes | str | None, port: bytes | str | int | None, family: int,
                      type_: int, proto: int) -> list[tuple[Any, ...]] | None:
    """getaddrinfo results for a numeric IPv4/IPv6 host and port, else None."""
    if isinstance(host, bytes):
        host = host.decode("idna")
    if host is None or isinstance(port, bytes):
        return None
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
        port_number = int(port or 0)
    except ValueError:
        return None
    af = socket.AF_INET if address.version == 4 else socket.AF_INET6
    if family not in (0, af):
        raise socket.gaierror(socket.EAI_ADDRFAMILY, "Address family for hostname not supported")
    sockaddr: tuple[Any, ...] = ((str(address), port_number) if af == socket.AF_INET
                                 else (str(address), port_number, 0, 0))
    types = [type_] if type_ else [socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW]
    protos: dict[int, int] = {socket.SOCK_STREAM: socket.IPPROTO_TCP,
                              socket.SOCK_DGRAM: socket.IPPROTO_UDP}
    return [(af, kind, proto or protos.get(kind, 0), "", sockaddr) for kind in types]


def _with_vnet_header(frame: OutFrame, offload: bool) -> Frame:
    """The frame gathered behind its virtio-net header: NEEDS_CSUM for a TCP segment
    that carries only its pseudo-header sum (the kernel completes it), plus GSO for a
    TCP super-segment (the kernel cuts it into ``gso_size`` pieces), else none. The
    usual segment, TCP in IPv4 without options (what partial_checksum_span answers
    (34, 16) for), takes its header without the span being worked out again."""
    if type(frame) is tuple:
        if len(frame) == 3:
            head, payload, gso_size = frame
            return (_gso_header(head, gso_size), head, payload)
        head, payload = frame
        if not offload:
            return (NO_OFFLOAD, head, payload)
        if len(head) >= 54 and head[23] == 6 and head[14] == 0x45 and head[12] == 0x08 \
                and head[13] == 0:
            return (_NEEDS_CSUM_TCPV4, head, payload)
        span = partial_checksum_span(head)
        return (NO_OFFLOAD if span is None else _needs_csum(span), head, payload)
    assert not isinstance(frame, tuple)  # for mypy: type() does not narrow
    if not offload:
        return (NO_OFFLOAD, frame)
    if len(frame) >= 54 and frame[23] == 6 and frame[14] == 0x45 and frame[12] == 0x08 \
            and frame[13] == 0:
        return (_NEEDS_CSUM_TCPV4, frame)
    span = partial_checksum_span(frame)
    return (NO_OFFLOAD if span is None else _needs_csum(span), frame)


@functools.cache
def _needs_csum(span: tuple[int, int]) -> bytes:
    """One header per checksum position (a couple in practice: IPv4 and IPv6)."""
    return VnetHeader(flags=FLAG_NEEDS_CSUM, csum_start=span[0], csum_offset=span[1]).pack()


_NEEDS_CSUM_TCPV4 = _needs_csum((34, 16))  # Ethernet + IPv4 without options; TCP's field


def _coalesce(events: Any, conn: Any, data: bytes | memoryview) -> bytes | memoryview:
    """GRO for a device that gives none: the in-order data events of one connection
    that follow each other in a batch become one ``data_received`` (a Protocol gets a
    copy anyway: one join instead of a copy per segment). A BufferedProtocol is not
    coalesced: its bytes go straight from the frame into its buffer."""
    first = events[0]
    if type(first) is not tuple or first[0] != EV_DATA or first[1] is not conn:
        return data
    pieces = [data]
    while events:
        event = events[0]
        if type(event) is not tuple or event[0] != EV_DATA or event[1] is not conn:
            break
        pieces.append(events.popleft()[2])
    return b"".join(pieces)


def _gso_header(head: bytearray, gso_size: int) -> bytes:
    """virtio-net GSO_TCPV4/GSO_TCPV6 + NEEDS_CSUM for a super-segment we built (the
    TCP checksum field holds the pseudo-header sum over the whole super-segment; the
    kernel adjusts it per piece, PLATFORM.md)."""
    span = partial_checksum_span(head)
    assert span is not None, "a super-segment is TCP over IPv4 or IPv6"
    hdr_len = span[0] + (head[span[0] + 12] >> 4) * 4  # through the TCP options
    ipv6 = head[12] == 0x86
    return _gso_header_bytes(span, hdr_len, gso_size, ipv6)


@functools.lru_cache(maxsize=64)
def _gso_header_bytes(span: tuple[int, int], hdr_len: int, gso_size: int, ipv6: bool) -> bytes:
    return VnetHeader(flags=FLAG_NEEDS_CSUM, gso_type=GSO_TCPV6 if ipv6 else GSO_TCPV4,
                      hdr_len=hdr_len, gso_size=gso_size, csum_start=span[0],
                      csum_offset=span[1]).pack()


def _as_sent(frame: OutFrame, offload: bool) -> bytes:
    """The frame as the device sends it, for captures: joined, checksum completed (a
    super-segment is captured as one frame, as tcpdump shows TSO output)."""
    data = b"".join(frame[:2]) if isinstance(frame, tuple) else frame
    span = partial_checksum_span(data) if offload else None
    return data if span is None else complete_checksum(data, span)


class EthoxSelectorEventLoop(_EthoxLoopMixin, asyncio.SelectorEventLoop):  # type: ignore[misc]
    """The stack on top of asyncio's stock selector loop."""


if uvloop is not None:
    class EthoxUvloopEventLoop(_EthoxLoopMixin, uvloop.Loop):  # type: ignore[misc]
        """The stack on top of uvloop."""

    EthoxEventLoop: type[_EthoxLoopMixin] = EthoxUvloopEventLoop
else:  # pragma: no cover
    EthoxEventLoop = EthoxSelectorEventLoop


def new_event_loop(config: StackConfig | None = None, *, device: Device | None = None,
                   base: str = "uvloop") -> asyncio.AbstractEventLoop:
    """A new loop driving the stack; ``config`` defaults to ``StackConfig.from_env()``."""
    if base == "asyncio" or uvloop is None:
        return EthoxSelectorEventLoop(config, device=device)
    if base != "uvloop":
        raise ValueError(f"base must be 'uvloop' or 'asyncio', not {base!r}")
    return EthoxUvloopEventLoop(config, device=device)


def run(main: Coroutine[Any, Any, _T], *, config: StackConfig | None = None,
        device: Device | None = None, base: str = "uvloop", debug: bool | None = None) -> _T:
    """``asyncio.run(main)`` on a new ethox loop."""
    try:
        with asyncio.Runner(debug=debug,
                            loop_factory=lambda: new_event_loop(config, device=device,
                                                                base=base)) as runner:
            return runner.run(main)
    finally:
        # The loop could not be made (no device...): main never ran; close it so that
        # no "coroutine was never awaited" warning follows the real error.
        if inspect.iscoroutine(main) and \
                inspect.getcoroutinestate(main) == inspect.CORO_CREATED:
            main.close()


# Policies are deprecated in 3.14 and go away in 3.16; the private base class is used so
# that importing this module never triggers asyncio's deprecation warning.
_PolicyBase: Any = getattr(asyncio.unix_events, "_UnixDefaultEventLoopPolicy", None)

if _PolicyBase is not None:
    class EventLoopPolicy(_PolicyBase):  # type: ignore[misc]
        """A policy whose loops are ethox loops (for apps that only set a policy)."""

        def __init__(self, config: StackConfig | None = None, *, base: str = "uvloop") -> None:
            super().__init__()
            self._config = config
            self._base = base

        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return new_event_loop(self._config, base=self._base)
else:  # pragma: no cover - Python >= 3.16
    __all__.remove("EventLoopPolicy")
