"""One Ethernet interface of the sans-IO stack: frames in, events and frames out.

Contract:
- ``ingress(frame, now)`` handles one received Ethernet frame. Anything that does
  not parse, is not for us, or is refused by a rule is dropped and counted in
  ``stats`` under a reason; remote bytes never raise out of here.
- ``egress(now, budget)`` returns at most ``budget`` frames to transmit (bytes,
  plain Ethernet: the loop adds a device's virtio-net header). It also runs the
  timers that are due (neighbour solicitations, reassembly timeouts).
- ``poll_at()`` is the earliest deadline of any timer, or None.
- ``events`` is a deque of :class:`UdpDatagram`, :class:`UdpError` and
  :class:`EchoReply` for the loop to dispatch. Datagram payloads are copies
  (``bytes``): the loop may hand them to protocols that keep them.
- Ethernet filtering (our MAC, broadcast, the IPv6 multicast groups we joined),
  ARP (answering, resolving with a bounded queue, gratuitous ARP on start), IPv4
  with reassembly and fragmentation on send, ICMPv4 echo (answered), echo requests
  for ``ping``, port unreachable (rate limited) and ICMP errors delivered to the UDP
  endpoint they concern. IPv6 with NDP is the :class:`~.ipv6.Ipv6Host` this
  interface owns; the public calls take either family.

The interface never reads a clock and never does I/O.
"""

from __future__ import annotations

from collections import Counter, deque
from errno import ECONNREFUSED, EHOSTUNREACH, EMSGSIZE, ENETUNREACH
from ipaddress import IPv4Address, IPv4Interface, IPv6Address

from .common import (
    ETH_HEADER_LEN,
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
from .icmp import TokenBucket, may_send_icmpv4_error, quote_ipv4
from .ipv6 import Ipv6Host
from .neighbor import NeighborCache
from .route import RouteTable
from .udp import UdpEndpoint, UdpTable
from .wire.arp import ArpOperation, ArpRepr
from .wire.errors import WireError
from .wire.ethernet import BROADCAST, EthernetAddress, EthernetFrame, EthernetRepr, EtherType
from .wire.icmpv4 import (
    Icmpv4DestUnreachable,
    Icmpv4DestUnreachableCode,
    Icmpv4EchoReply,
    Icmpv4EchoRequest,
    Icmpv4Packet,
    Icmpv4Repr,
    Icmpv4TimeExceeded,
    Icmpv4TimeExceededCode,
    Icmpv4Type,
    parse_icmpv4,
)
from .wire.ip import IpProtocol
from .wire.ipv4 import Ipv4Packet, Ipv4Repr
from .wire.udp import UdpPacket, UdpRepr

__all__ = ["EchoReply", "Interface", "InterfaceConfig", "UdpDatagram", "UdpError"]

IPV4_HEADER_LEN = 20
REASSEMBLY_TIMEOUT = 30.0  # Linux net.ipv4.ipfrag_time
DEFAULT_TTL = 64  # RFC 1700 / Linux net.ipv4.ip_default_ttl
_TRUSTED = TRUSTED
IpAddress = IPv4Address | IPv6Address


class Interface:
    """See the module contract."""

    def __init__(self, config: InterfaceConfig) -> None:
        self.config = config
        self.mac = config.mac
        self.ipv4 = tuple(a for a in config.addresses if isinstance(a, IPv4Interface))
        self._local_v4 = frozenset(a.ip for a in self.ipv4)
        self.routes = RouteTable()
        for address in self.ipv4:
            self.routes.add_connected(address)
        self.arp: NeighborCache[bytes] = NeighborCache(config.neighbor)
        self.reassembly = Reassembler(timeout=REASSEMBLY_TIMEOUT)
        self.udp = UdpTable()
        self.icmp_errors = TokenBucket(config.icmp_error_rate, config.icmp_error_burst)
        self.events: deque[Event] = deque()
        self.stats: Counter[str] = Counter()
        self._tx: deque[bytes] = deque()
        self.ipv6 = Ipv6Host(config, routes=self.routes, udp=self.udp,
                             icmp_errors=self.icmp_errors, events=self.events,
                             stats=self.stats, tx=self._tx)
        # After both families' connected routes: a gateway must be on one of them.
        for gateway in config.gateways:
            self.routes.add_default_gateway(gateway)
        self._local = self._local_v4 | self.ipv6.local
        self._ident = 0
        self._l4_caps = config.checksum
        for address in self.ipv4:
            self._send_arp(ArpOperation.REQUEST, address.ip, BROADCAST, address.ip)

    # --- loop interface -------------------------------------------------------------

    @property
    def local_addresses(self) -> frozenset[IPv4Address | IPv6Address]:
        """Our unicast addresses, both families (IPv6 includes the link-local one)."""
        return self._local

    def source_address(self, dst: IpAddress) -> IpAddress:
        """The address a packet to ``dst`` is sent from (the one on ``dst``'s network)."""
        if isinstance(dst, IPv6Address):
            return self.ipv6.source_for(None, dst)
        return self._source_for(None, dst)

    def ingress(self, frame: bytes | bytearray | memoryview, now: float, *,
                checksum_verified: bool = False) -> None:
        """Handle one frame; ``checksum_verified``: the device vouches for L4 checksums."""
        self._l4_caps = _TRUSTED if checksum_verified else self.config.checksum
        try:
            eth = EthernetFrame.checked(frame)
            dst = eth.dst
            if dst != self.mac and not dst.is_broadcast:
                if not dst.is_multicast:
                    self.stats["drop_not_our_mac"] += 1
                    return
                if dst not in self.ipv6.link_groups:
                    self.stats["drop_multicast_not_joined"] += 1
                    return
            ethertype = eth.ethertype
            if ethertype == EtherType.ARP:
                self._on_arp(eth, now)
            elif ethertype == EtherType.IPV4:
                self._on_ipv4(eth.payload, dst.is_broadcast, now)
            elif ethertype == EtherType.IPV6:
                self.ipv6.ingress(eth.payload, dst.is_multicast, self._l4_caps, now)
            else:
                self.stats["drop_ethertype"] += 1
        except WireError as error:
            self.stats[f"drop_{type(error).__name__}"] += 1
        except OSError as error:  # an answer we cannot send (no route, ARP queue full...)
            self.stats[f"drop_unanswerable_{error.errno}"] += 1

    def egress(self, now: float, budget: int) -> list[bytes]:
        self._run_timers(now)
        self.ipv6.run_timers(now)
        out: list[bytes] = []
        while self._tx and len(out) < budget:
            out.append(self._tx.popleft())
        return out

    def poll_at(self) -> float | None:
        if self._tx:
            return 0.0
        deadlines = [d for d in (self.arp.poll_at(), self.reassembly.poll_at(),
                                 self.ipv6.poll_at()) if d is not None]
        return min(deadlines) if deadlines else None

    # --- user calls -----------------------------------------------------------------

    def send_udp(self, endpoint: UdpEndpoint, payload: bytes, dst: IpAddress, port: int,
                 now: float) -> None:
        """Queue one datagram; fragmented when larger than the MTU (RFC 791 §2.3,
        RFC 8200 §4.5)."""
        if isinstance(dst, IPv6Address):
            self.ipv6.send_udp(endpoint, payload, dst, port, now)
            return
        bound = endpoint.local[0]
        src = self._source_for(bound if isinstance(bound, IPv4Address) else None, dst)
        udp = UdpRepr(endpoint.local[1], port, len(payload))
        segment = bytearray(udp.buffer_len)
        udp.emit(memoryview(segment), src, dst, payload, self.config.checksum)
        self._send_ipv4(src, dst, IpProtocol.UDP, bytes(segment), now, dont_frag=False)

    def send_ping(self, dst: IpAddress, ident: int, seq_no: int, data: bytes,
                  now: float) -> None:
        if isinstance(dst, IPv6Address):
            self.ipv6.send_ping(dst, ident, seq_no, data, now)
            return
        request = Icmpv4EchoRequest(ident, seq_no, data)
        buf = bytearray(request.buffer_len)
        request.emit(buf)
        self._send_ipv4(self._source_for(None, dst), dst, IpProtocol.ICMP, bytes(buf), now)

    # --- ARP (RFC 826) --------------------------------------------------------------

    def _on_arp(self, eth: EthernetFrame, now: float) -> None:
        arp = ArpRepr.parse(eth.payload)
        sender, target = arp.source_protocol_addr, arp.target_protocol_addr
        mac = EthernetAddress(arp.source_hardware_addr)
        if not mac.is_unicast or sender in self._local_v4:
            self.stats["drop_arp_bogus_sender"] += 1  # never let a peer claim our address
            return
        for_us = target in self._local_v4
        # RFC 826 "merge": update an existing entry; create one only if it targets us.
        if arp.operation == ArpOperation.REPLY and for_us:
            ready = self.arp.update(sender, mac, now, solicited=True)
        elif for_us or self.arp.state(sender) is not None:
            ready = self.arp.learn(sender, mac, now)
        else:
            ready = []
        self._flush_pending(sender, mac, ready)
        if arp.operation == ArpOperation.REQUEST and for_us and sender != target:
            self._send_arp(ArpOperation.REPLY, target, mac, sender)

    def _send_arp(self, operation: ArpOperation, sender: IPv4Address,
                  dst_mac: EthernetAddress, target: IPv4Address) -> None:
        target_mac = dst_mac if operation == ArpOperation.REPLY else EthernetAddress(bytes(6))
        arp = ArpRepr(operation, self.mac, sender, target_mac, target)
        buf = bytearray(ETH_HEADER_LEN + arp.buffer_len)
        EthernetRepr(self.mac, dst_mac, EtherType.ARP).emit(buf)
        arp.emit(memoryview(buf)[ETH_HEADER_LEN:])
        self._tx.append(bytes(buf))

    def _flush_pending(self, ip: IPv4Address, mac: EthernetAddress,
                       ready: list[bytes]) -> None:
        for packet in ready:
            self._tx.append(self._ethernet(mac, packet))

    def _ethernet(self, dst_mac: EthernetAddress, packet: bytes) -> bytes:
        return ethernet_frame(self.mac, dst_mac, EtherType.IPV4, packet)

    # --- IPv4 receive (RFC 791, RFC 1122 §3.2.1) ------------------------------------

    def _on_ipv4(self, data: memoryview, link_broadcast: bool, now: float) -> None:
        packet = Ipv4Packet.checked(data)
        dst = packet.dst
        broadcast = self.routes.is_broadcast(dst)
        if dst not in self._local_v4 and not broadcast:
            self.stats["drop_ipv4_not_for_us"] += 1  # we are a host, not a router
            return
        payload: bytes | memoryview = packet.payload
        if packet.more_frags or packet.frag_offset:
            key = (packet.src_int, packet.dst_int, packet.protocol, packet.ident)
            first = bytes(packet.buf[:packet.total_len]) if packet.frag_offset == 0 else None
            whole = self.reassembly.add(key, packet.frag_offset, packet.more_frags, payload,
                                        now, first_header=first)
            if whole is None:
                return
            payload = whole
        protocol = packet.protocol
        if protocol == IpProtocol.UDP:
            self._on_udp(packet, payload, broadcast or link_broadcast, now)
        elif protocol == IpProtocol.ICMP:
            self._on_icmp(packet, payload, broadcast, now)
        else:
            self.stats["drop_ipv4_protocol"] += 1
            self._send_unreachable(packet, Icmpv4DestUnreachableCode.PROTOCOL_UNREACHABLE,
                                   broadcast or link_broadcast, now)

    def _on_udp(self, packet: Ipv4Packet, data: bytes | memoryview, broadcast: bool,
                now: float) -> None:
        src, dst = packet.src, packet.dst
        udp = UdpRepr.parse(data, src, dst, self._l4_caps)
        endpoint = self.udp.lookup(4, dst, udp.dst_port, src, udp.src_port)
        if endpoint is None:
            self.stats["udp_no_port"] += 1
            self._send_unreachable(packet, Icmpv4DestUnreachableCode.PORT_UNREACHABLE,
                                   broadcast, now)
            return
        body = bytes(data[UDP_HEADER_LEN:UDP_HEADER_LEN + udp.payload_len])
        self.events.append(UdpDatagram(endpoint, body, (str(src), udp.src_port)))
        self.stats["udp_delivered"] += 1

    def _on_icmp(self, packet: Ipv4Packet, data: bytes | memoryview, broadcast: bool,
                 now: float) -> None:
        message = parse_icmpv4(data, self._l4_caps)
        if isinstance(message, Icmpv4EchoRequest):
            if broadcast:
                self.stats["icmp_echo_broadcast_ignored"] += 1  # RFC 1122 §3.2.2.6 MAY
                return
            self._answer_echo(packet, data, now)
        elif isinstance(message, Icmpv4EchoReply):
            self.events.append(EchoReply(packet.src, message.ident, message.seq_no,
                                         message.data, now))
        elif isinstance(message, (Icmpv4DestUnreachable, Icmpv4TimeExceeded)):
            self._deliver_icmp_error(message)

    def _answer_echo(self, packet: Ipv4Packet, data: bytes | memoryview, now: float) -> None:
        """RFC 792 echo reply, RFC 1122 §3.2.2.6: same identifier, sequence and data."""
        reply = bytearray(data)
        Icmpv4Packet(reply).echo_request_to_reply()
        # A large ping is answered in fragments, as it arrived (RFC 1122 §3.2.2.6).
        self._send_ipv4(packet.dst, packet.src, IpProtocol.ICMP, bytes(reply), now,
                        dont_frag=False)
        self.stats["icmp_echo_answered"] += 1

    def _deliver_icmp_error(self, message: Icmpv4DestUnreachable | Icmpv4TimeExceeded) -> None:
        quoted = message.quoted_ipv4_header()
        if quoted is None or quoted.protocol != IpProtocol.UDP or quoted.src_port is None:
            self.stats["icmp_error_unmatched"] += 1
            return
        endpoint = self.udp.lookup(4, quoted.src_addr, quoted.src_port,
                                   quoted.dst_addr, quoted.dst_port or 0)
        if endpoint is None:
            self.stats["icmp_error_unmatched"] += 1
            return
        self.events.append(UdpError(endpoint, _icmp_to_oserror(message)))

    def _send_unreachable(self, packet: Ipv4Packet, code: Icmpv4DestUnreachableCode,
                          link_or_ip_broadcast: bool, now: float) -> None:
        allowed = may_send_icmpv4_error(
            dst_is_broadcast_or_multicast=link_or_ip_broadcast or packet.dst.is_multicast,
            src=packet.src, is_icmp_error=_is_icmp_error(packet),
            frag_offset=packet.frag_offset, link_broadcast=link_or_ip_broadcast)
        if not allowed:
            return
        if not self.icmp_errors.allow(now):
            self.stats["icmp_error_rate_limited"] += 1
            return
        quote = quote_ipv4(packet.buf[:packet.total_len])
        if self._l4_caps is _TRUSTED:
            quote = _complete_udp_checksum(quote)
        error = Icmpv4DestUnreachable(code, quote)
        self._send_icmp(packet.dst, packet.src, error, now)

    def _send_icmp(self, src: IPv4Address, dst: IPv4Address, message: Icmpv4Repr,
                   now: float) -> None:
        buf = bytearray(message.buffer_len)
        message.emit(buf)
        self._send_ipv4(src, dst, IpProtocol.ICMP, bytes(buf), now)

    # --- IPv4 send ------------------------------------------------------------------

    def _source_for(self, bound: IPv4Address | None, dst: IPv4Address) -> IPv4Address:
        if bound is not None and not bound.is_unspecified:
            return bound
        best = None
        for address in self.ipv4:
            if dst in address.network:
                return address.ip
            best = best or address.ip
        if best is None:
            raise OSError(ENETUNREACH, "no IPv4 address configured on the interface")
        return best

    def _send_ipv4(self, src: IPv4Address, dst: IPv4Address, protocol: int, payload: bytes,
                   now: float, *, dont_frag: bool = True) -> None:
        broadcast = self.routes.is_broadcast(dst)
        next_hop = dst if broadcast else self.routes.next_hop(dst)
        if not isinstance(next_hop, IPv4Address):
            raise OSError(ENETUNREACH, f"no route to {dst}")
        self._ident = (self._ident + 1) & 0xFFFF
        max_payload = self.config.mtu - IPV4_HEADER_LEN
        if len(payload) > max_payload and dont_frag:
            raise OSError(EMSGSIZE, f"{len(payload)} bytes exceed the MTU payload of "
                                    f"{max_payload} with DF set")
        for offset, length, more in fragment_sizes(len(payload), max_payload):
            header = Ipv4Repr(src, dst, protocol, length, ttl=DEFAULT_TTL, ident=self._ident,
                              dont_frag=dont_frag and not more and offset == 0,
                              more_frags=more, frag_offset=offset)
            packet = bytearray(header.buffer_len)
            header.emit(packet)
            packet[IPV4_HEADER_LEN:] = payload[offset:offset + length]
            self._route_out(bytes(packet), next_hop, broadcast or dst.is_multicast, now)

    def _route_out(self, packet: bytes, next_hop: IPv4Address, broadcast: bool,
                   now: float) -> None:
        if broadcast:
            self._tx.append(self._ethernet(BROADCAST, packet))
            return
        mac = self.arp.lookup(next_hop, now)
        if mac is not None:
            self._tx.append(self._ethernet(mac, packet))
        elif not self.arp.resolve(next_hop, packet, now):
            self.stats["arp_queue_full"] += 1

    # --- timers ---------------------------------------------------------------------

    def _run_timers(self, now: float) -> None:
        result = self.arp.poll(now)
        for solicitation in result.solicitations:
            source = self._source_for(None, IPv4Address(solicitation.ip))
            self._send_arp(ArpOperation.REQUEST, source, solicitation.unicast_mac or BROADCAST,
                           IPv4Address(solicitation.ip))
        for failure in result.failures:
            for packet in failure.packets:
                self._host_unreachable(packet, now)
        for expired in self.reassembly.expire(now):
            if expired.first_header is not None:  # RFC 792: only if fragment 0 arrived
                first = Ipv4Packet(expired.first_header)
                message = Icmpv4TimeExceeded(Icmpv4TimeExceededCode.REASSEMBLY_TIME_EXCEEDED,
                                             quote_ipv4(expired.first_header))
                self._send_icmp(first.dst, first.src, message, now)

    def _host_unreachable(self, packet: bytes, now: float) -> None:
        """A queued packet whose next hop never answered ARP (RFC 1122 §2.3.2.2)."""
        view = Ipv4Packet(packet)
        if view.src in self._local_v4 and view.protocol == IpProtocol.UDP \
                and not view.frag_offset:
            udp = UdpPacket(view.payload)
            error = host_unreachable(self.udp, 4, view.src, udp.src_port, view.dst,
                                     udp.dst_port, "no ARP answer from the next hop")
            if error is not None:
                self.events.append(error)
        self.stats["arp_failed_packets"] += 1


def _complete_udp_checksum(quote: bytes) -> bytes:
    """The quote with its UDP checksum computed, when the whole datagram is quoted.

    A frame whose checksum the device vouched for may carry only the pseudo-header
    sum (virtio-net NEEDS_CSUM: the kernel trusted its own sender); quoting it as is
    would show the peer a datagram with a wrong checksum.
    """
    packet = Ipv4Packet(bytearray(quote))
    if packet.protocol != IpProtocol.UDP or packet.total_len > len(quote) or packet.frag_offset:
        return quote
    payload = packet.payload
    if len(payload) < UDP_HEADER_LEN or UdpPacket(payload).length != len(payload):
        return quote
    UdpPacket(payload).fill_checksum(packet.src_int, packet.dst_int)
    return bytes(packet.buf)


def _is_icmp_error(packet: Ipv4Packet) -> bool:
    if packet.protocol != IpProtocol.ICMP or packet.frag_offset:
        return False
    payload = packet.payload
    return len(payload) > 0 and payload[0] not in (Icmpv4Type.ECHO_REQUEST,
                                                   Icmpv4Type.ECHO_REPLY)


def _icmp_to_oserror(message: Icmpv4DestUnreachable | Icmpv4TimeExceeded) -> OSError:
    """The errno Linux reports for an ICMP error on a UDP socket (net/ipv4/icmp.c table)."""
    if isinstance(message, Icmpv4TimeExceeded):
        return OSError(EHOSTUNREACH, "time to live exceeded in transit")
    if message.code == Icmpv4DestUnreachableCode.PORT_UNREACHABLE:
        return ConnectionRefusedError(ECONNREFUSED, "port unreachable")
    if message.code == Icmpv4DestUnreachableCode.FRAG_NEEDED:
        return OSError(EMSGSIZE, f"fragmentation needed, next-hop MTU {message.next_hop_mtu}")
    if message.code == Icmpv4DestUnreachableCode.NET_UNREACHABLE:
        return OSError(ENETUNREACH, "network unreachable")
    return OSError(EHOSTUNREACH, f"destination unreachable (code {int(message.code)})")
