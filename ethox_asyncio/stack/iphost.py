"""What IPv4 and IPv6 share: one shape for both families of the network layer.

Contract:
- :class:`IpHost` is the family-independent half of :class:`~.ipv4.Ipv4Host` and
  :class:`~.ipv6.Ipv6Host`: UDP receive and demultiplexing, ICMP errors delivered
  to the endpoint they quote, reassembly expiry, neighbour timers, the
  host-unreachable report for packets whose next hop never answered, UDP send,
  and the link-layer output through a :class:`NeighborCache`. A subclass supplies
  the family's header building (``_send``), its ICMP codec and send rules, its
  neighbour solicitation, and its notion of a bogus source address.
- **One path for every answer the stack generates on its own** (ICMP errors, echo
  replies, neighbour advertisements; TCP resets later): :meth:`IpHost._answer`.
  It never raises: an answer that cannot be sent (no route, no address, a
  neighbour queue that is full) is dropped and counted as ``answer_dropped_<why>``.
  ICMP errors additionally go through :meth:`IpHost._send_icmp_error`, which
  applies the family's RFC rules (RFC 1122 §3.2.2, RFC 4443 §2.4 (e)) and the
  interface's shared rate limit (RFC 1812 §4.3.2.8, RFC 4443 §2.4 (f)), always
  sources the error from one of our unicast addresses and, when the device
  vouched for the checksums, completes the quoted UDP checksum. So nothing a peer
  sends can make ``ingress`` or a timer raise.
- User calls (``send_udp``, ``send_ping``) raise ``OSError`` as a kernel socket
  would (ENETUNREACH, EMSGSIZE): the caller reports it to the application.
- The transport fast path (:mod:`.path`): :meth:`IpHost.path` resolves route and
  next hop once for a batch of segments to one destination and returns the
  headers they start with (None while the next hop is unresolved: then the
  transport sends whole packets, which queue for the neighbour);
  :meth:`IpHost.send_on` finishes one frame built on it and queues it gathered. Paths
  are cached and revalidated per call (route table generation, same neighbour MAC).
- The receive checks for the TCP host's setup path: :meth:`IpHost.accepts_unicast`
  answers, from ints, what ``ingress`` decides for a TCP packet's addresses (our
  unicast address; a source that is a single host and not ours: the family's
  ``_is_bogus_source``, RFC 1122 §3.2.1.3 / RFC 4291), with the same predicates;
  the answers are kept per route table generation and bounded.

Frames go to the interface's shared transmit queue, events to its shared queue.
Never reads a clock and never does I/O.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from errno import EHOSTUNREACH, EMSGSIZE, ENETUNREACH
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from .common import (
    TRUSTED,
    UDP_HEADER_LEN,
    EchoReply,
    Event,
    InterfaceConfig,
    UdpDatagram,
    UdpError,
    ethernet_frame,
)
from .fragment import Reassembler
from .icmp import TokenBucket
from .neighbor import NeighborCache, Solicitation
from .path import FramePath, OutFrame, Payload
from .route import RouteTable
from .tcp.host import TcpHost
from .udp import UdpEndpoint, UdpTable
from .wire.checksum import ChecksumCaps
from .wire.errors import WireError
from .wire.ethernet import EthernetAddress
from .wire.ip import IpProtocol
from .wire.udp import UdpPacket, UdpRepr

__all__ = ["IpAddress", "IpHost", "QuotedTransport", "SharedTables"]

IpAddress = IPv4Address | IPv6Address

_PATH_CACHE_LIMIT = 4096  # frame paths kept (one per destination in use)
_VERDICT_LIMIT = 4096  # sources whose verdict accepts_unicast() keeps

# Why an answer could not be sent, by errno: the ``answer_dropped_*`` counters.
_DROP_REASON = {ENETUNREACH: "answer_dropped_no_route",
                EHOSTUNREACH: "answer_dropped_no_route",
                EMSGSIZE: "answer_dropped_too_big"}


class QuotedTransport(Protocol):
    """The transport-layer fields an ICMP error's quote reveals (both families)."""

    @property
    def src_addr(self) -> IpAddress: ...
    @property
    def dst_addr(self) -> IpAddress: ...
    @property
    def src_port(self) -> int | None: ...
    @property
    def dst_port(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class SharedTables:
    """What both families of one interface share: routes, the UDP table, TCP, the ICMP
    error rate limit, the event queue, the counters and the transmit queue."""

    routes: RouteTable
    udp: UdpTable
    tcp: TcpHost
    icmp_errors: TokenBucket
    events: deque[Event]
    stats: Counter[str]
    tx: deque[OutFrame]


class IpHost:
    """See the module contract; ``family`` is 4 or 6."""

    family: int
    ethertype: int
    resolution_failure: str  # why a queued packet failed, for the application
    icmp_protocol: int
    local: frozenset[IpAddress]

    reassembly_timeout: float

    def __init__(self, config: InterfaceConfig, shared: SharedTables) -> None:
        self.config = config
        self.mac = config.mac
        self.routes = shared.routes
        self.udp = shared.udp
        self.tcp = shared.tcp
        shared.tcp.ip[self.family] = self
        self.icmp_errors = shared.icmp_errors
        self.events = shared.events
        self.stats = shared.stats
        self.neighbors: NeighborCache[bytes] = NeighborCache(config.neighbor)
        self.reassembly = Reassembler(timeout=self.reassembly_timeout)
        self._tx = shared.tx
        # path(): (route table generation, next hop, MAC, FramePath, destination) per
        # (src, dst, protocol).
        self._paths: dict[tuple[int, int, int], tuple[int, IpAddress,
                                                      EthernetAddress, FramePath,
                                                      IpAddress]] = {}
        # accepts_unicast(): our unicast addresses and the verdicts on sources seen,
        # as ints, for the route table generation they were computed under.
        self._verdicts_generation = -1
        self._unicast_ints: frozenset[int] = frozenset()
        self._source_refused: dict[int, bool] = {}

    # --- what a family supplies -----------------------------------------------------

    def source_for(self, bound: IpAddress | None, dst: IpAddress) -> IpAddress:
        raise NotImplementedError

    def _send(self, src: IpAddress, dst: IpAddress, protocol: int, payload: bytes,
              now: float, *, dont_frag: bool = True, hop_limit: int | None = None) -> None:
        """Build the IP packet(s) and route them out; raises OSError (no route...)."""
        raise NotImplementedError

    def _may_send_error(self, offending: bytes | memoryview, link_multicast: bool,
                        error_type: int) -> bool:
        """The family's RFC rule for an ICMP error about ``offending``."""
        raise NotImplementedError

    def _packet_addresses(self, packet: bytes | memoryview) -> tuple[IpAddress, IpAddress]:
        """(source, destination) of an IP packet we hold (received or queued)."""
        raise NotImplementedError

    def _udp_offset(self, packet: bytes | memoryview) -> int | None:
        """Where the UDP header of a whole (unfragmented) UDP packet starts, else None."""
        raise NotImplementedError

    def _solicit(self, solicitation: Solicitation) -> None:
        raise NotImplementedError

    def _link_destination(self, dst: IpAddress) -> EthernetAddress:
        """The MAC of a packet sent to a broadcast or multicast ``dst``."""
        raise NotImplementedError

    def _queued_udp_ports(self, packet: bytes) -> tuple[int, int] | None:
        """(src_port, dst_port) of a queued first-fragment or whole UDP packet of ours."""
        raise NotImplementedError

    def _is_bogus_source(self, src: int) -> bool:
        """The family's rule for a source that cannot be a single host (RFC 1122
        §3.2.1.3; RFC 4291 for IPv6), or is one of our own addresses."""
        raise NotImplementedError

    def _refuses_transport_source(self, src: int) -> bool:
        """What :meth:`ingress` refuses as the source of a TCP packet."""
        return self._is_bogus_source(src)

    def _unicast_addresses(self) -> frozenset[int]:
        """Our addresses a TCP packet may be sent to: ``local`` less any the route
        table calls a broadcast address, and multicast ones (ingress drops those:
        RFC 1122 §4.2.3.10, RFC 9293 §3.9.1)."""
        return frozenset(int(a) for a in self.local
                         if not a.is_multicast and not self.routes.is_broadcast(a))

    # --- receive --------------------------------------------------------------------

    def accepts_unicast(self, src: int, dst: int) -> bool:
        """True when a TCP packet from ``src`` to ``dst`` (ints) passes the checks
        :meth:`ingress` makes (module contract of the TCP host's setup path): ``dst``
        is one of our unicast addresses, ``src`` a single host that is not us. The
        same predicates, their answers kept per route table generation (any route
        change drops them; at most ``_VERDICT_LIMIT`` sources), so a known peer costs
        two set lookups and no ``ipaddress`` object."""
        if self._verdicts_generation != self.routes.generation:
            self._verdicts_generation = self.routes.generation
            self._unicast_ints = self._unicast_addresses()
            self._source_refused.clear()
        if dst not in self._unicast_ints:
            return False
        refused = self._source_refused.get(src)
        if refused is None:
            if len(self._source_refused) >= _VERDICT_LIMIT:
                self._source_refused.clear()  # bounded (DESIGN.md): asked again
            refused = self._source_refused[src] = self._refuses_transport_source(src)
        return not refused

    # --- timers ---------------------------------------------------------------------

    def poll_at(self) -> float | None:
        a, b = self.neighbors.poll_at(), self.reassembly.poll_at()
        if a is None:
            return b
        return a if b is None or a < b else b

    def run_timers(self, now: float) -> None:
        result = self.neighbors.poll(now)
        for solicitation in result.solicitations:
            self._solicit(solicitation)
        for failure in result.failures:
            for packet in failure.packets:
                self._host_unreachable(packet)
        for expired in self.reassembly.expire(now):
            # RFC 792 / RFC 8200 §4.5: only when the offset-0 fragment arrived.
            if expired.first_header is not None:
                self._time_exceeded(expired.first_header, now)

    def _time_exceeded(self, first_fragment: bytes, now: float) -> None:
        raise NotImplementedError

    # --- UDP ------------------------------------------------------------------------

    def send_udp(self, endpoint: UdpEndpoint, payload: bytes, dst: IpAddress, port: int,
                 now: float) -> None:
        """Queue one datagram; fragmented when larger than the MTU (RFC 791 §2.3,
        RFC 8200 §4.5)."""
        bound = endpoint.local[0]
        src = self.source_for(bound if bound.version == self.family else None, dst)
        udp = UdpRepr(endpoint.local[1], port, len(payload))
        segment = bytearray(udp.buffer_len)
        udp.emit(memoryview(segment), src, dst, payload, self.config.checksum)
        self._send(src, dst, IpProtocol.UDP, bytes(segment), now, dont_frag=False)

    def _on_udp(self, src: IpAddress, dst: IpAddress, data: bytes | memoryview,
                offending: bytes | memoryview | None, link_multicast: bool,
                caps: ChecksumCaps, now: float) -> None:
        """One UDP datagram for us. ``offending`` is the packet an ICMP error would
        quote (the first fragment of a reassembled datagram, as Linux quotes), or
        None when no error may be sent (its first fragment was a link-layer
        broadcast)."""
        udp = UdpRepr.parse(data, src, dst, caps)
        endpoint = self.udp.lookup(self.family, dst, udp.dst_port, src, udp.src_port)
        if endpoint is None:
            self.stats["udp_no_port"] += 1
            self._port_unreachable(offending, data, link_multicast, caps, now)
            return
        body = bytes(data[UDP_HEADER_LEN:UDP_HEADER_LEN + udp.payload_len])
        self.events.append(UdpDatagram(endpoint, body, (str(src), udp.src_port)))
        self.stats["udp_delivered"] += 1

    def _port_unreachable(self, offending: bytes | memoryview | None,
                          datagram: bytes | memoryview, link_multicast: bool,
                          caps: ChecksumCaps, now: float) -> None:
        raise NotImplementedError

    def _on_tcp(self, src: IpAddress, dst: IpAddress, data: bytes | memoryview,
                to_group: bool, caps: ChecksumCaps, now: float) -> None:
        """A TCP segment; never one sent to a broadcast or multicast address
        (RFC 9293 §3.9.1: TCP is unicast only; RFC 1122 §4.2.3.10)."""
        if to_group or dst not in self.local:
            self.stats["tcp_drop_not_unicast"] += 1
            return
        self.tcp.ingress(self.family, int(src), int(dst), data, caps, now)

    def send_tcp(self, src: int, dst: int, segment: bytes, now: float) -> None:
        """A segment of one of our connections (raises OSError: no route...)."""
        self._send(self._address(src), self._address(dst), IpProtocol.TCP, segment, now)

    def path(self, src: int, dst: int, protocol: int, now: float) -> FramePath | None:
        """The headers of frames from our ``src`` to unicast ``dst`` (module contract):
        None while the next hop is being resolved, or for a destination that is not
        unicast (the general path handles both). Raises ``OSError(ENETUNREACH)``.

        Paths are kept per (src, dst, protocol) and handed out again while the route
        table is unchanged (its ``generation``) and the neighbour lookup (done every
        time: it drives NUD, RFC 4861 §7.3.3) returns the same MAC object, so a
        connection's segments cost one lookup, not a new header template each call.
        Any route added or removed, a broadcast address included, drops them all."""
        key = (src, dst, protocol)
        cached = self._paths.get(key)
        routes = self.routes
        if cached is not None:
            generation, hop, mac, frame_path, dst_address = cached
            if generation == routes.generation \
                    and self.neighbors.lookup(hop, now) is mac:
                return frame_path
        else:
            dst_address = self._address(dst)
        if self._is_group(dst_address):
            return None
        route = self.routes.lookup(dst_address)
        next_hop = None if route is None else \
            route.gateway if route.gateway is not None else dst_address
        if next_hop is None or next_hop.version != self.family:
            raise OSError(ENETUNREACH, f"no route to {dst_address}")
        found = self.neighbors.lookup(next_hop, now)
        if found is None:
            return None
        frame_path = self._path(self._address(src), dst_address, protocol, found)
        if len(self._paths) >= _PATH_CACHE_LIMIT:
            self._paths.clear()  # bounded (DESIGN.md): rebuilt on demand
        self._paths[key] = (routes.generation, next_hop, found, frame_path, dst_address)
        return frame_path

    def send_on(self, path: FramePath, frame: bytearray, payload: Payload,
                gso_size: int = 0) -> None:
        """Fill the IP length fields of ``frame`` (made by :func:`.path.start_frame`,
        transport header written) and queue it with ``payload`` gathered behind it.
        Raises ``OSError(EMSGSIZE)`` for a packet larger than the MTU — or, a
        super-segment (``gso_size``: TSO), than the IP length field can say."""
        raise NotImplementedError

    def answer_tcp(self, src: int, dst: int, segment: bytes, now: float) -> bool:
        """A reset of ours: through the answer path, never raising."""
        return self._answer(self._address(src), self._address(dst), IpProtocol.TCP,
                            segment, now)

    def _address(self, value: int) -> IpAddress:
        raise NotImplementedError

    def _is_group(self, dst: IpAddress) -> bool:
        """True for a destination the link reaches by broadcast or multicast."""
        raise NotImplementedError

    def _path(self, src: IpAddress, dst: IpAddress, protocol: int,
              mac: EthernetAddress) -> FramePath:
        raise NotImplementedError

    def _deliver_error(self, protocol: int, quoted: QuotedTransport | None,
                       error: OSError, *, tcp_seq: int | None = None, hard: bool = False,
                       now: float = 0.0, mtu: int | None = None) -> None:
        """An ICMP error about a datagram we sent, to the endpoint that sent it;
        ``mtu``: the path MTU a "fragmentation needed" / "packet too big" reports."""
        if protocol == IpProtocol.TCP and quoted is not None and quoted.src_port is not None:
            if not self.tcp.icmp_error(self.family, int(quoted.src_addr), quoted.src_port,
                                       int(quoted.dst_addr), quoted.dst_port or 0, tcp_seq,
                                       error, hard, now, mtu=mtu):
                self.stats["icmp_error_unmatched"] += 1
            return
        if quoted is None or protocol != IpProtocol.UDP or quoted.src_port is None:
            self.stats["icmp_error_unmatched"] += 1
            return
        endpoint = self.udp.lookup(self.family, quoted.src_addr, quoted.src_port,
                                   quoted.dst_addr, quoted.dst_port or 0)
        if endpoint is None:
            self.stats["icmp_error_unmatched"] += 1
            return
        self.events.append(UdpError(endpoint, error))

    def _echo_reply(self, src: IpAddress, ident: int, seq_no: int, data: bytes,
                    now: float) -> None:
        self.events.append(EchoReply(src, ident, seq_no, data, now))

    # --- answers the stack generates ------------------------------------------------

    def _answer(self, src: IpAddress, dst: IpAddress, protocol: int, payload: bytes,
                now: float, *, dont_frag: bool = True, hop_limit: int | None = None) -> bool:
        """Send an answer of our own; when it cannot be sent, drop and count it."""
        try:
            self._send(src, dst, protocol, payload, now, dont_frag=dont_frag,
                       hop_limit=hop_limit)
        except OSError as error:
            self.stats[_DROP_REASON.get(error.errno or 0, "answer_dropped_unsendable")] += 1
            return False
        return True

    def _send_icmp_error(self, offending: bytes | memoryview | None,
                         build: Callable[[bytes, IpAddress, IpAddress], bytes], *,
                         error_type: int, link_multicast: bool,
                         caps: ChecksumCaps, now: float,
                         udp_datagram: bytes | memoryview | None = None) -> None:
        """An ICMP error about ``offending`` (an IP packet, first fragment if any;
        None: nothing may be quoted): the family's rules, then the shared rate
        limit, then :meth:`_answer`. ``build(quote, src, dst)`` returns the ICMP
        message's bytes; ``udp_datagram`` is the whole (reassembled) UDP datagram
        when known, for the quoted checksum (:meth:`_with_udp_checksum`)."""
        if offending is None or not self._may_send_error(offending, link_multicast,
                                                          error_type):
            self.stats["answer_dropped_rule"] += 1
            return
        if not self.icmp_errors.allow(now):
            self.stats["answer_dropped_rate_limited"] += 1
            return
        quote = self._quote(self._with_udp_checksum(offending, udp_datagram)
                            if caps is TRUSTED else offending)
        to, received_at = self._packet_addresses(offending)
        try:
            # Never from a broadcast or multicast address (RFC 1122 §3.2.2, RFC 4443 §2.2).
            src = received_at if received_at in self.local else self.source_for(None, to)
        except OSError:
            self.stats["answer_dropped_no_address"] += 1
            return
        if self._answer(src, to, self.icmp_protocol, build(quote, src, to), now):
            self.stats["icmp_error_sent"] += 1

    def _quote(self, packet: bytes | memoryview) -> bytes:
        raise NotImplementedError

    def _first_fragment(self, packet: bytes | memoryview, caps: ChecksumCaps) -> bytes:
        """A first fragment kept for a later error about its datagram, as it will be
        quoted: with its UDP checksum completed when the device vouched for it."""
        return self._with_udp_checksum(packet) if caps is TRUSTED else bytes(packet)

    def _with_udp_checksum(self, packet: bytes | memoryview,
                           datagram: bytes | memoryview | None = None) -> bytes:
        """``packet`` (an IP packet or a first fragment, as an error quotes it) with
        its UDP checksum computed over ``datagram``, the whole UDP datagram (by
        default the one in ``packet``, if its UDP length says it is all there).

        A frame whose checksum the device vouched for may carry only the
        pseudo-header sum (virtio-net NEEDS_CSUM: the kernel trusted its own
        sender); quoting it as is would show the peer a datagram with a wrong
        checksum. Anything that is not such a UDP packet is returned unchanged.
        """
        buf = bytearray(packet)
        try:
            offset = self._udp_offset(memoryview(buf))
        except WireError:
            offset = None
        if offset is None or len(buf) < offset + UDP_HEADER_LEN:
            return bytes(buf)
        if datagram is None:
            datagram = memoryview(buf)[offset:]
            if UdpPacket(datagram).length != len(datagram):
                return bytes(buf)
        whole = bytearray(datagram)
        src, dst = self._packet_addresses(memoryview(buf))
        UdpPacket(whole).fill_checksum(int(src), int(dst))
        buf[offset + 6:offset + 8] = whole[6:8]  # RFC 768: the checksum field
        return bytes(buf)

    # --- link-layer output ----------------------------------------------------------

    def _route_out(self, packet: bytes, dst: IpAddress, next_hop: IpAddress | None,
                   now: float) -> None:
        """To ``next_hop``'s MAC (resolving it first), or, with no next hop, to the
        broadcast/multicast MAC of ``dst``."""
        if next_hop is None:
            self._tx.append(ethernet_frame(self.mac, self._link_destination(dst),
                                           self.ethertype, packet))
            return
        mac = self.neighbors.lookup(next_hop, now)
        if mac is not None:
            self._tx.append(ethernet_frame(self.mac, mac, self.ethertype, packet))
        elif not self.neighbors.resolve(next_hop, packet, now):
            self.stats["neighbor_queue_full"] += 1

    def _flush(self, mac: EthernetAddress, ready: list[bytes]) -> None:
        for packet in ready:
            self._tx.append(ethernet_frame(self.mac, mac, self.ethertype, packet))

    def _host_unreachable(self, packet: bytes) -> None:
        """A queued packet whose next hop never answered (RFC 1122 §2.3.2.2,
        RFC 4861 §7.3.3): EHOSTUNREACH to the UDP endpoint that sent it, like Linux."""
        self.stats["neighbor_failed_packets"] += 1
        ports = self._queued_udp_ports(packet)
        if ports is None:
            return
        src, dst = self._packet_addresses(packet)
        if src not in self.local:
            return
        endpoint = self.udp.lookup(self.family, src, ports[0], dst, ports[1])
        if endpoint is not None:
            self.events.append(UdpError(endpoint, OSError(
                EHOSTUNREACH, f"{dst}: {self.resolution_failure}")))
