"""asyncio transports over the user-space stack, with CPython's semantics.

Contract (``DatagramTransport``, matching ``asyncio.selector_events
._SelectorDatagramTransport``):
- ``connection_made`` is called via ``call_soon`` after creation; datagrams are
  delivered only after it.
- ``sendto(data, addr)``: ``data`` must be bytes-like (TypeError otherwise); on a
  connected transport ``addr`` must be None or the peer (ValueError otherwise);
  empty datagrams are sent. Errors the stack reports immediately (no route,
  message too long, broadcast without ``allow_broadcast``) go to
  ``protocol.error_received`` like a kernel socket's; ICMP errors arrive there
  later. After ``close()``/``abort()``, ``sendto`` is ignored with a warning after
  a few attempts, as CPython does.
- ``close()`` and ``abort()`` unbind the port and call ``connection_lost(None)``
  via ``call_soon``. ``get_write_buffer_size()`` is 0: datagrams are handed to the
  stack at once (those waiting for ARP are bounded by the neighbour cache).
- ``get_extra_info``: ``sockname``, ``peername`` (connected only), ``socket``
  (None: there is no kernel socket). Addresses are ``(host, port)`` for IPv4 and
  ``(host, port, flowinfo, scope_id)`` for IPv6, as CPython's; so are the ``addr``
  given to ``datagram_received``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

from .stack.udp import UdpEndpoint

if TYPE_CHECKING:
    from .loop import _EthoxLoopMixin

log = logging.getLogger("ethox_asyncio")

_WARN_AFTER_CLOSED_SENDS = 5  # asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES


class DatagramTransport(asyncio.DatagramTransport):
    def __init__(self, loop: _EthoxLoopMixin, protocol: asyncio.DatagramProtocol,
                 endpoint: UdpEndpoint, *, allow_broadcast: bool) -> None:
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self._endpoint = endpoint
        self._allow_broadcast = allow_broadcast
        self._closing = False
        self._sends_after_close = 0
        endpoint.owner = self
        self._extra: dict[str, Any] = {"socket": None}

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
        self._loop._udp_closed(self)
        self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

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
                log.warning("socket.send() raised exception.")
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

    # --- called by the loop's pump -------------------------------------------------------

    def _deliver(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self._closing:
            self._call_protocol(self._protocol.datagram_received, data,
                                self._address(*addr))

    def _report(self, exc: OSError) -> None:
        if not self._closing:
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
