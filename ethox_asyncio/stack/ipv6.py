"""The IPv6 half of an :class:`~.interface.Interface`: NDP, IPv6, ICMPv6, UDP over IPv6.

Contract:
- Addresses: the configured IPv6 ones plus the link-local address derived from the
  MAC (RFC 4291 §2.5.1). The link accepts frames to all-nodes (ff02::1) and the
  solicited-node group of each address (``link_groups``).
- NDP (RFC 4861): solicitations for our addresses are answered (solicited NA with
  S, O and the target link-layer address); next hops are resolved through a
  :class:`NeighborCache` (multicast NS, unicast probes from PROBE); NS source
  link-layer options create STALE entries, NAs update entries. Every received NDP
  message must carry hop limit 255 (§7.1), else it is dropped and counted.
- Receive: extension headers walked, fragments reassembled (60 s, RFC 8200 §4.5,
  key (src, dst, ident)), UDP delivered, echo answered, echo replies reported,
  errors (destination unreachable, packet too big, time exceeded) delivered to the
  UDP endpoint quoted; closed ports answered with a rate-limited port unreachable.
- Send: source address selection, routing through the shared route table,
  fragmentation with a Fragment header when larger than the MTU.

Frames go to the interface's shared transmit queue, events to its shared queue.
Never reads a clock and never does I/O.
"""

from __future__ import annotations

from collections import Counter, deque
from errno import ECONNREFUSED, EHOSTUNREACH, EMSGSIZE, ENETUNREACH
from ipaddress import IPv6Address, IPv6Interface

from .common import (
    TRUSTED,
    UDP_HEADER_LEN,
    EchoReply,
    Event,
    InterfaceConfig,
    UdpDatagram,
    UdpError,
    ethernet_frame,
    host_unreachable,
)
from .fragment import Reassembler, fragment_sizes
from .icmp import TokenBucket, may_send_icmpv6_error, quote_ipv6
from .neighbor import NeighborCache
from .route import RouteTable
from .udp import UdpEndpoint, UdpTable
from .wire.checksum import ChecksumCaps
from .wire.ethernet import EthernetAddress, EtherType, ipv6_multicast_mac
from .wire.icmpv6 import (
    Icmpv6DestUnreachable,
    Icmpv6DestUnreachableCode,
    Icmpv6EchoReply,
    Icmpv6EchoRequest,
    Icmpv6Packet,
    Icmpv6PacketTooBig,
    Icmpv6TimeExceeded,
    Icmpv6TimeExceededCode,
    Icmpv6Type,
    parse_icmpv6,
)
from .wire.ip import IpProtocol
from .wire.ipv6 import Ipv6FragmentRepr, Ipv6Packet, Ipv6Repr, walk_extension_headers
from .wire.ndisc import (
    ALL_NODES,
    NeighborAdvert,
    NeighborSolicit,
    RouterAdvert,
    RouterSolicit,
    link_local_from_mac,
    solicited_node_multicast,
)
from .wire.udp import UdpPacket, UdpRepr

__all__ = ["Ipv6Host"]

IPV6_HEADER_LEN = 40
FRAGMENT_HEADER_LEN = 8
REASSEMBLY_TIMEOUT = 60.0  # RFC 8200 §4.5
DEFAULT_HOP_LIMIT = 64  # Linux net.ipv6.conf.*.hop_limit
NDP_HOP_LIMIT = 255  # RFC 4861 §7.1: proves the message was not forwarded

_NDP = (NeighborSolicit, NeighborAdvert, RouterSolicit, RouterAdvert)


class Ipv6Host:
    """See the module contract. Owned by an :class:`~.interface.Interface`."""

    def __init__(self, config: InterfaceConfig, *, routes: RouteTable, udp: UdpTable,
                 icmp_errors: TokenBucket, events: deque[Event], stats: Counter[str],
                 tx: deque[bytes]) -> None:
        self.config = config
        self.mac = config.mac
        self.link_local = link_local_from_mac(config.mac)
        configured = tuple(a for a in config.addresses if isinstance(a, IPv6Interface))
        link_local = IPv6Interface(f"{self.link_local}/64")
        self.addresses = configured + (() if link_local in configured else (link_local,))
        self.local = frozenset(a.ip for a in self.addresses)
        self.groups = frozenset({ALL_NODES} | {solicited_node_multicast(a) for a in self.local})
        self.link_groups = frozenset(ipv6_multicast_mac(group) for group in self.groups)
        self.routes = routes
        for address in self.addresses:
            routes.add_connected(address)
        self.udp = udp
        self.icmp_errors = icmp_errors
        self.events = events
        self.stats = stats
        self.ndp: NeighborCache[bytes] = NeighborCache(config.neighbor)
        self.reassembly = Reassembler(timeout=REASSEMBLY_TIMEOUT)
        self._tx = tx
        self._ident = 0

    # --- called by the interface ----------------------------------------------------

    def poll_at(self) -> float | None:
        deadlines = [d for d in (self.ndp.poll_at(), self.reassembly.poll_at()) if d is not None]
        return min(deadlines) if deadlines else None

    def source_for(self, bound: IPv6Address | None, dst: IPv6Address) -> IPv6Address:
        """RFC 6724 in short: the bound address, the link-local one for a link-local
        destination, an address on the destination's prefix, else the first global."""
        if bound is not None and not bound.is_unspecified:
            return bound
        if dst.is_link_local or (dst.is_multicast and (int(dst) >> 112) & 0xF == 2):
            return self.link_local
        first = None
        for address in self.addresses:
            if address.ip.is_link_local:
                continue
            if dst in address.network:
                return address.ip
            first = first or address.ip
        if first is None:
            raise OSError(ENETUNREACH, "no global IPv6 address configured on the interface")
        return first

    def send_udp(self, endpoint: UdpEndpoint, payload: bytes, dst: IPv6Address, port: int,
                 now: float) -> None:
        """Queue one datagram; fragmented when larger than the MTU (RFC 8200 §4.5)."""
        bound = endpoint.local[0]
        src = self.source_for(bound if isinstance(bound, IPv6Address) else None, dst)
        udp = UdpRepr(endpoint.local[1], port, len(payload))
        segment = bytearray(udp.buffer_len)
        udp.emit(memoryview(segment), src, dst, payload, self.config.checksum)
        self._send(src, dst, IpProtocol.UDP, bytes(segment), now)

    def send_ping(self, dst: IPv6Address, ident: int, seq_no: int, data: bytes,
                  now: float) -> None:
        src = self.source_for(None, dst)
        request = Icmpv6EchoRequest(ident, seq_no, data)
        buf = bytearray(request.buffer_len)
        request.emit(buf, src, dst)
        self._send(src, dst, IpProtocol.ICMPV6, bytes(buf), now)

    def ingress(self, data: memoryview, link_multicast: bool, caps: ChecksumCaps,
                now: float) -> None:
        """One IPv6 packet (RFC 8200 §4: extension headers, fragments, upper layer)."""
        packet = Ipv6Packet.checked(data)
        dst = packet.dst
        if dst not in self.local and dst not in self.groups:
            self.stats["drop_ipv6_not_for_us"] += 1  # a host, not a router
            return
        chain = walk_extension_headers(packet.next_header, packet.payload)
        protocol = chain.protocol
        payload: bytes | memoryview = packet.payload[chain.offset:]
        fragment = chain.fragment
        if fragment is not None and not fragment.is_atomic:
            key = (packet.src_int, packet.dst_int, fragment.ident)
            first = bytes(packet.buf[:IPV6_HEADER_LEN + packet.payload_len]) \
                if fragment.frag_offset == 0 else None
            whole = self.reassembly.add(key, fragment.frag_offset, fragment.more_frags,
                                        payload, now, first_header=first)
            if whole is None:
                return
            inner = walk_extension_headers(fragment.next_header, whole)
            protocol, payload = inner.protocol, memoryview(whole)[inner.offset:]
        if protocol == IpProtocol.UDP:
            self._on_udp(packet, payload, link_multicast, caps, now)
        elif protocol == IpProtocol.ICMPV6:
            self._on_icmpv6(packet, payload, caps, now)
        else:
            self.stats["drop_ipv6_protocol"] += 1

    def run_timers(self, now: float) -> None:
        result = self.ndp.poll(now)
        for solicitation in result.solicitations:
            target = IPv6Address(solicitation.ip)
            self._send_solicitation(target, solicitation.unicast_mac)
        for failure in result.failures:
            for packet in failure.packets:
                self._host_unreachable(packet)
        for expired in self.reassembly.expire(now):
            if expired.first_header is not None:  # RFC 8200 §4.5: only if fragment 0 came
                first = Ipv6Packet(expired.first_header)
                message = Icmpv6TimeExceeded(Icmpv6TimeExceededCode.REASSEMBLY_TIME_EXCEEDED,
                                             quote_ipv6(expired.first_header))
                self._send_icmp(first.dst, first.src, message, now)

    # --- receive --------------------------------------------------------------------

    def _on_udp(self, packet: Ipv6Packet, data: bytes | memoryview, link_multicast: bool,
                caps: ChecksumCaps, now: float) -> None:
        src, dst = packet.src, packet.dst
        udp = UdpRepr.parse(data, src, dst, caps)
        endpoint = self.udp.lookup(6, dst, udp.dst_port, src, udp.src_port)
        if endpoint is None:
            self.stats["udp_no_port"] += 1
            self._port_unreachable(packet, link_multicast, caps, now)
            return
        body = bytes(data[UDP_HEADER_LEN:UDP_HEADER_LEN + udp.payload_len])
        self.events.append(UdpDatagram(endpoint, body, (str(src), udp.src_port)))
        self.stats["udp_delivered"] += 1

    def _on_icmpv6(self, packet: Ipv6Packet, data: bytes | memoryview, caps: ChecksumCaps,
                   now: float) -> None:
        src, dst = packet.src, packet.dst
        message = parse_icmpv6(data, src, dst, caps)
        if isinstance(message, _NDP):
            if packet.hop_limit != NDP_HOP_LIMIT:
                self.stats["drop_ndp_hop_limit"] += 1  # RFC 4861 §7.1.1, §7.1.2
                return
            if isinstance(message, NeighborSolicit):
                self._on_solicit(message, src, now)
            elif isinstance(message, NeighborAdvert):
                self._on_advert(message, now)
            else:
                self.stats["ndp_router_ignored"] += 1  # a host without autoconfiguration
        elif isinstance(message, Icmpv6EchoRequest):
            self._answer_echo(packet, data, message, caps, now)
        elif isinstance(message, Icmpv6EchoReply):
            self.events.append(EchoReply(src, message.ident, message.seq_no, message.data,
                                         now))
        elif isinstance(message, (Icmpv6DestUnreachable, Icmpv6PacketTooBig,
                                  Icmpv6TimeExceeded)):
            self._deliver_error(message)
        else:
            self.stats["icmpv6_ignored"] += 1

    def _on_solicit(self, message: NeighborSolicit, src: IPv6Address, now: float) -> None:
        target = message.target_addr
        if target not in self.local:
            self.stats["ndp_solicit_not_ours"] += 1
            return
        if src.is_multicast or (message.source_lladdr is not None
                                and not message.source_lladdr.is_unicast):
            self.stats["drop_ndp_bogus_source"] += 1
            return
        if src.is_unspecified:  # duplicate address detection: answer all-nodes (§7.2.4)
            advert = NeighborAdvert(target, self.mac, solicited=False, override=True)
            self._send_ndp(target, ALL_NODES, advert, ipv6_multicast_mac(ALL_NODES))
            return
        if message.source_lladdr is not None:
            self._flush(message.source_lladdr, self.ndp.learn(src, message.source_lladdr, now))
        advert = NeighborAdvert(target, self.mac, solicited=True, override=True)
        buf = bytearray(advert.buffer_len)
        advert.emit(buf, target, src)
        self._send(target, src, IpProtocol.ICMPV6, bytes(buf), now, hop_limit=NDP_HOP_LIMIT)
        self.stats["ndp_solicit_answered"] += 1

    def _on_advert(self, message: NeighborAdvert, now: float) -> None:
        target = message.target_addr
        if target in self.local:
            self.stats["ndp_advert_for_our_address"] += 1  # a duplicate: keep ours
            return
        mac = message.target_lladdr
        ready = self.ndp.update(target, mac, now, solicited=message.solicited,
                                override=message.override, is_router=message.router)
        if ready and mac is not None:
            self._flush(mac, ready)

    def _answer_echo(self, packet: Ipv6Packet, data: bytes | memoryview,
                     request: Icmpv6EchoRequest, caps: ChecksumCaps, now: float) -> None:
        """RFC 4443 §4.2: same identifier, sequence number and data, from a unicast address."""
        dst = packet.dst
        if dst.is_multicast or not caps.verify:
            # New source, or a checksum nobody checked: build the reply afresh.
            src = self.source_for(None, packet.src) if dst.is_multicast else dst
            reply = Icmpv6EchoReply(request.ident, request.seq_no, request.data)
            buf = bytearray(reply.buffer_len)
            reply.emit(buf, src, packet.src)
        else:
            src = dst
            buf = bytearray(data)
            Icmpv6Packet(buf).echo_request_to_reply()
        self._send(src, packet.src, IpProtocol.ICMPV6, bytes(buf), now)
        self.stats["icmpv6_echo_answered"] += 1

    def _deliver_error(self, message: Icmpv6DestUnreachable | Icmpv6PacketTooBig
                       | Icmpv6TimeExceeded) -> None:
        quoted = message.quoted_ipv6_header()
        if quoted is None or quoted.next_header != IpProtocol.UDP or quoted.src_port is None:
            self.stats["icmp_error_unmatched"] += 1
            return
        endpoint = self.udp.lookup(6, quoted.src_addr, quoted.src_port, quoted.dst_addr,
                                   quoted.dst_port or 0)
        if endpoint is None:
            self.stats["icmp_error_unmatched"] += 1
            return
        self.events.append(UdpError(endpoint, _icmpv6_to_oserror(message)))

    def _port_unreachable(self, packet: Ipv6Packet, link_multicast: bool, caps: ChecksumCaps,
                          now: float) -> None:
        code = Icmpv6DestUnreachableCode.PORT_UNREACHABLE
        if not may_send_icmpv6_error(error_type=Icmpv6Type.DEST_UNREACHABLE, error_code=code,
                                     dst=packet.dst, src=packet.src, is_icmp_error=False,
                                     link_multicast=link_multicast):
            return
        if not self.icmp_errors.allow(now):
            self.stats["icmp_error_rate_limited"] += 1
            return
        quote = quote_ipv6(packet.buf[:IPV6_HEADER_LEN + packet.payload_len])
        if caps is TRUSTED:
            quote = _complete_udp_checksum(quote)
        self._send_icmp(packet.dst, packet.src, Icmpv6DestUnreachable(code, quote), now)

    # --- send -----------------------------------------------------------------------

    def _send_icmp(self, src: IPv6Address, dst: IPv6Address,
                   message: Icmpv6DestUnreachable | Icmpv6TimeExceeded, now: float) -> None:
        buf = bytearray(message.buffer_len)
        message.emit(buf, src, dst)
        self._send(src, dst, IpProtocol.ICMPV6, bytes(buf), now)

    def _send_ndp(self, src: IPv6Address, dst: IPv6Address,
                  message: NeighborSolicit | NeighborAdvert, dst_mac: EthernetAddress) -> None:
        """An NDP message straight to a link-layer address (no resolution needed)."""
        buf = bytearray(IPV6_HEADER_LEN + message.buffer_len)
        Ipv6Repr(src, dst, IpProtocol.ICMPV6, message.buffer_len,
                 hop_limit=NDP_HOP_LIMIT).emit(buf)
        message.emit(memoryview(buf)[IPV6_HEADER_LEN:], src, dst)
        self._tx.append(ethernet_frame(self.mac, dst_mac, EtherType.IPV6, bytes(buf)))

    def _send_solicitation(self, target: IPv6Address, unicast_mac: EthernetAddress | None
                           ) -> None:
        """RFC 4861 §7.2.2: to the solicited-node group, or a unicast probe (§7.3.3)."""
        if unicast_mac is None:
            dst = solicited_node_multicast(target)
            dst_mac = ipv6_multicast_mac(dst)
        else:
            dst, dst_mac = target, unicast_mac
        try:
            src = self.source_for(None, target)
        except OSError:
            src = self.link_local
        self._send_ndp(src, dst, NeighborSolicit(target, self.mac), dst_mac)
        self.stats["ndp_solicit_sent"] += 1

    def _send(self, src: IPv6Address, dst: IPv6Address, protocol: int, payload: bytes,
              now: float, *, hop_limit: int = DEFAULT_HOP_LIMIT) -> None:
        if dst.is_multicast:
            next_hop = None
        else:
            hop = self.routes.next_hop(dst)
            if not isinstance(hop, IPv6Address):
                raise OSError(ENETUNREACH, f"no route to {dst}")
            next_hop = hop
        max_payload = self.config.mtu - IPV6_HEADER_LEN
        if len(payload) <= max_payload:
            header = Ipv6Repr(src, dst, protocol, len(payload), hop_limit=hop_limit)
            packet = bytearray(IPV6_HEADER_LEN)
            header.emit(packet)
            self._route_out(bytes(packet) + payload, dst, next_hop, now)
            return
        # RFC 8200 §4.5: the unfragmentable part is just the fixed header here.
        self._ident = (self._ident + 1) & 0xFFFFFFFF
        for offset, length, more in fragment_sizes(len(payload),
                                                   max_payload - FRAGMENT_HEADER_LEN):
            header = Ipv6Repr(src, dst, IpProtocol.IPV6_FRAG, FRAGMENT_HEADER_LEN + length,
                              hop_limit=hop_limit)
            packet = bytearray(IPV6_HEADER_LEN + FRAGMENT_HEADER_LEN)
            header.emit(packet)
            Ipv6FragmentRepr(protocol, offset, more, self._ident).emit(
                memoryview(packet)[IPV6_HEADER_LEN:])
            self._route_out(bytes(packet) + payload[offset:offset + length], dst, next_hop,
                            now)

    def _route_out(self, packet: bytes, dst: IPv6Address, next_hop: IPv6Address | None,
                   now: float) -> None:
        if next_hop is None:
            self._tx.append(ethernet_frame(self.mac, ipv6_multicast_mac(dst), EtherType.IPV6,
                                           packet))
            return
        mac = self.ndp.lookup(next_hop, now)
        if mac is not None:
            self._tx.append(ethernet_frame(self.mac, mac, EtherType.IPV6, packet))
        elif not self.ndp.resolve(next_hop, packet, now):
            self.stats["ndp_queue_full"] += 1

    def _flush(self, mac: EthernetAddress, ready: list[bytes]) -> None:
        for packet in ready:
            self._tx.append(ethernet_frame(self.mac, mac, EtherType.IPV6, packet))

    def _host_unreachable(self, packet: bytes) -> None:
        """A queued packet whose next hop never answered NDP (RFC 4861 §7.3.3)."""
        self.stats["ndp_failed_packets"] += 1
        view = Ipv6Packet(packet)
        payload, protocol = view.payload, view.next_header
        if protocol == IpProtocol.IPV6_FRAG:  # only the first fragment quotes the ports
            fragment = Ipv6FragmentRepr.parse(payload)
            if fragment.frag_offset:
                return
            payload, protocol = payload[FRAGMENT_HEADER_LEN:], fragment.next_header
        if view.src not in self.local or protocol != IpProtocol.UDP:
            return
        udp = UdpPacket(payload)
        error = host_unreachable(self.udp, 6, view.src, udp.src_port, view.dst, udp.dst_port,
                                 "no neighbour advertisement from the next hop")
        if error is not None:
            self.events.append(error)


def _complete_udp_checksum(quote: bytes) -> bytes:
    """The quote with its UDP checksum computed, when the whole datagram is quoted
    (see :func:`.interface._complete_udp_checksum`)."""
    packet = Ipv6Packet(bytearray(quote))
    if packet.next_header != IpProtocol.UDP or IPV6_HEADER_LEN + packet.payload_len > len(quote):
        return quote
    payload = packet.payload
    if len(payload) < UDP_HEADER_LEN or UdpPacket(payload).length != len(payload):
        return quote
    UdpPacket(payload).fill_checksum(packet.src_int, packet.dst_int)
    return bytes(packet.buf)


def _icmpv6_to_oserror(message: Icmpv6DestUnreachable | Icmpv6PacketTooBig
                       | Icmpv6TimeExceeded) -> OSError:
    """The errno Linux reports for an ICMPv6 error on a UDP socket (net/ipv6/icmp.c)."""
    if isinstance(message, Icmpv6PacketTooBig):
        return OSError(EMSGSIZE, f"packet too big, next-hop MTU {message.mtu}")
    if isinstance(message, Icmpv6TimeExceeded):
        return OSError(EHOSTUNREACH, "time exceeded in transit")
    if message.code == Icmpv6DestUnreachableCode.PORT_UNREACHABLE:
        return ConnectionRefusedError(ECONNREFUSED, "port unreachable")
    return OSError(EHOSTUNREACH, f"destination unreachable (code {int(message.code)})")

