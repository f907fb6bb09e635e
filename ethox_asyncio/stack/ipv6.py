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
- Receive: a multicast, loopback, subnet-router anycast or our own source
  (RFC 4291 §2.7, §2.5.3, §2.6.1), or the unspecified source on anything but a
  Neighbor Solicitation (DAD, RFC 4861 §7.2.4), is dropped and counted as
  ``drop_ipv6_bogus_source``. An unknown upper layer gets a Parameter Problem
  code 1 (RFC 8200 §4). Extension
  headers walked, fragments reassembled (60 s, RFC 8200 §4.5, key (src, dst,
  ident)), UDP delivered, echo answered, echo replies reported, errors
  (destination unreachable, packet too big, time exceeded) delivered to the UDP
  endpoint quoted; closed ports and expired reassemblies answered through the
  shared answer path (:class:`~.iphost.IpHost`: RFC 4443 §2.4 rules, rate limit).
- Send: source address selection, routing through the shared route table,
  fragmentation with a Fragment header when larger than the MTU.

Never reads a clock and never does I/O.
"""

from __future__ import annotations

import struct
from errno import ECONNREFUSED, EHOSTUNREACH, EMSGSIZE, ENETUNREACH
from ipaddress import IPv6Address, IPv6Interface

from .common import ETH_HEADER_LEN, InterfaceConfig, ethernet_frame
from .fragment import fragment_sizes
from .icmp import is_icmpv6_error, may_send_icmpv6_error, quote_ipv6
from .iphost import IpAddress, IpHost, SharedTables
from .neighbor import NeighborCache, NeighborState, Solicitation
from .path import FramePath, Payload
from .wire.checksum import ChecksumCaps, pseudo_header
from .wire.ethernet import EthernetAddress, EtherType, ipv6_multicast_mac
from .wire.icmpv6 import (
    Icmpv6DestUnreachable,
    Icmpv6DestUnreachableCode,
    Icmpv6EchoReply,
    Icmpv6EchoRequest,
    Icmpv6Packet,
    Icmpv6PacketTooBig,
    Icmpv6ParamProblem,
    Icmpv6ParamProblemCode,
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

__all__ = ["Ipv6Host"]

IPV6_HEADER_LEN = 40
FRAGMENT_HEADER_LEN = 8
REASSEMBLY_TIMEOUT = 60.0  # RFC 8200 §4.5
DEFAULT_HOP_LIMIT = 64  # Linux net.ipv6.conf.*.hop_limit
NDP_HOP_LIMIT = 255  # RFC 4861 §7.1: proves the message was not forwarded

_NDP = (NeighborSolicit, NeighborAdvert, RouterSolicit, RouterAdvert)
_ADDRESSES = struct.Struct("!16s16s")  # source and destination, at offset 8
_SRC_DST_OFFSET = 8
_SEQ = struct.Struct("!I")
_LOOPBACK = 1  # ::1
_PATH_HEADER = struct.Struct("!IHBB16s16s")  # RFC 8200 §3: version/class/label, length...
_U16 = struct.Struct("!H")
_ETHERTYPE_IPV6 = b"\x86\xdd"
_L4_OFFSET = ETH_HEADER_LEN + IPV6_HEADER_LEN
_PAYLOAD_LENGTH_OFFSET = ETH_HEADER_LEN + 4


class Ipv6Host(IpHost):
    """See the module contract. Owned by an :class:`~.interface.Interface`."""

    family = 6
    ethertype = EtherType.IPV6
    icmp_protocol = IpProtocol.ICMPV6
    reassembly_timeout = REASSEMBLY_TIMEOUT
    resolution_failure = "no neighbour advertisement from the next hop"

    def __init__(self, config: InterfaceConfig, shared: SharedTables) -> None:
        super().__init__(config, shared)
        self.link_local = link_local_from_mac(config.mac)
        configured = tuple(a for a in config.addresses if isinstance(a, IPv6Interface))
        link_local = IPv6Interface(f"{self.link_local}/64")
        self.addresses = configured + (() if link_local in configured else (link_local,))
        local = frozenset(a.ip for a in self.addresses)
        self.local = local
        self._local_ints = frozenset(int(a) for a in local)
        self.groups = frozenset({ALL_NODES} | {solicited_node_multicast(a) for a in local})
        self.link_groups = frozenset(ipv6_multicast_mac(group) for group in self.groups)
        for address in self.addresses:
            self.routes.add_connected(address)
        self._ident = 0

    @property
    def ndp(self) -> NeighborCache[bytes]:
        """The neighbour cache (NDP's name for it)."""
        return self.neighbors

    def source_for(self, bound: IpAddress | None, dst: IpAddress) -> IPv6Address:
        """RFC 6724 in short: the bound address, the link-local one for a link-local
        destination, an address on the destination's prefix, else the first global."""
        if isinstance(bound, IPv6Address) and not bound.is_unspecified:
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

    def send_ping(self, dst: IPv6Address, ident: int, seq_no: int, data: bytes,
                  now: float) -> None:
        src = self.source_for(None, dst)
        request = Icmpv6EchoRequest(ident, seq_no, data)
        buf = bytearray(request.buffer_len)
        request.emit(buf, src, dst)
        self._send(src, dst, IpProtocol.ICMPV6, bytes(buf), now)

    # --- receive --------------------------------------------------------------------

    def _is_bogus_source(self, src: int) -> bool:
        """RFC 4291 §2.7 (multicast), §2.5.3 (loopback), §2.6.1 (the subnet-router
        anycast address is never a source), or one of ours (a peer claiming it, as
        Linux). The unspecified address is judged by :meth:`ingress` (DAD uses it)."""
        return src >> 120 == 0xFF or src == _LOOPBACK or src in self._local_ints \
            or self.routes.is_network_address(IPv6Address(src))

    def _refuses_transport_source(self, src: int) -> bool:
        # Only a DAD solicitation may come from :: (RFC 4861 §7.2.4), never TCP.
        return src == 0 or self._is_bogus_source(src)

    def ingress(self, data: memoryview, link_multicast: bool, caps: ChecksumCaps,
                now: float) -> None:
        """One IPv6 packet (RFC 8200 §4: extension headers, fragments, upper layer)."""
        packet = Ipv6Packet.checked(data)
        dst = packet.dst
        if dst not in self.local and dst not in self.groups:
            self.stats["drop_ipv6_not_for_us"] += 1  # a host, not a router
            return
        src_int = packet.src_int
        if self._is_bogus_source(src_int):
            self.stats["drop_ipv6_bogus_source"] += 1
            return
        chain = walk_extension_headers(packet.next_header, packet.payload)
        protocol = chain.protocol
        payload: bytes | memoryview = packet.payload[chain.offset:]
        if src_int == 0 and not _is_solicitation(protocol, payload):
            self.stats["drop_ipv6_bogus_source"] += 1  # only DAD uses :: (RFC 4861 §7.2.4)
            return
        received = packet.buf[:IPV6_HEADER_LEN + packet.payload_len]
        offending: bytes | memoryview | None = received
        fragment = chain.fragment
        if fragment is not None and not fragment.is_atomic:
            key = (src_int, packet.dst_int, fragment.ident)
            # RFC 4443 §2.4 (e.4): no error answers a link-layer multicast, so such a
            # datagram keeps no first fragment to quote.
            first = self._first_fragment(received, caps) \
                if fragment.frag_offset == 0 and not link_multicast else None
            done = self.reassembly.add_fragment(key, fragment.frag_offset,
                                                fragment.more_frags, payload, now,
                                                first_header=first)
            if done is None:
                return
            whole, offending = done
            inner = walk_extension_headers(fragment.next_header, whole)
            protocol, payload = inner.protocol, memoryview(whole)[inner.offset:]
        if protocol == IpProtocol.TCP:
            self._on_tcp(packet.src, dst, payload, link_multicast or dst.is_multicast, caps,
                         now)
        elif protocol == IpProtocol.UDP:
            self._on_udp(packet.src, dst, payload, offending, link_multicast, caps, now)
        elif protocol == IpProtocol.ICMPV6:
            self._on_icmpv6(packet, payload, caps, now)
        elif protocol == IpProtocol.IPV6_NONXT:
            self.stats["ipv6_no_next_header"] += 1  # RFC 8200 §4.7: nothing follows
        else:
            self.stats["drop_ipv6_protocol"] += 1
            if fragment is None or fragment.is_atomic:
                # RFC 8200 §4: unrecognised Next Header → Parameter Problem code 1,
                # pointing at the field (Linux does the same; reassembled datagrams
                # are only counted: the pointer would be into a packet never sent).
                self._parameter_problem(received, link_multicast, caps, now)

    def _on_icmpv6(self, packet: Ipv6Packet, data: bytes | memoryview, caps: ChecksumCaps,
                   now: float) -> None:
        src, dst = packet.src, packet.dst
        message = parse_icmpv6(data, src, dst, caps)
        if isinstance(message, _NDP):
            if packet.hop_limit != NDP_HOP_LIMIT:
                self.stats["drop_ndp_hop_limit"] += 1  # RFC 4861 §7.1.1, §7.1.2
                return
            if isinstance(message, NeighborSolicit):
                self._on_solicit(message, src, dst, now)
            elif isinstance(message, NeighborAdvert):
                self._on_advert(message, now)
            else:
                self.stats["ndp_router_ignored"] += 1  # a host without autoconfiguration
        elif isinstance(message, Icmpv6EchoRequest):
            self._answer_echo(packet, data, message, caps, now)
        elif isinstance(message, Icmpv6EchoReply):
            self._echo_reply(src, message.ident, message.seq_no, message.data, now)
        elif isinstance(message, Icmpv6DestUnreachable | Icmpv6PacketTooBig
                        | Icmpv6TimeExceeded):
            quoted = message.quoted_ipv6_header()
            # RFC 1122 §4.2.3.9 / RFC 4443 §3.1: port unreachable is a hard error.
            hard = isinstance(message, Icmpv6DestUnreachable) \
                and message.code == Icmpv6DestUnreachableCode.PORT_UNREACHABLE
            seq = None
            if quoted is not None and quoted.next_header == IpProtocol.TCP \
                    and len(message.quoted) >= IPV6_HEADER_LEN + 8:
                seq = _SEQ.unpack_from(message.quoted, IPV6_HEADER_LEN + 4)[0]
            self._deliver_error(quoted.next_header if quoted else -1, quoted,
                                _icmpv6_to_oserror(message), tcp_seq=seq, hard=hard,
                                now=now, mtu=message.mtu if isinstance(
                                    message, Icmpv6PacketTooBig) else None)
        else:
            self.stats["icmpv6_ignored"] += 1

    def _on_solicit(self, message: NeighborSolicit, src: IPv6Address, dst: IPv6Address,
                    now: float) -> None:
        target = message.target_addr
        if target not in self.local:
            self.stats["ndp_solicit_not_ours"] += 1
            return
        if message.source_lladdr is not None and not message.source_lladdr.is_unicast:
            self.stats["drop_ndp_bogus_source"] += 1
            return
        if src.is_unspecified:
            # Duplicate address detection (RFC 4861 §7.2.4; the codec already refused a
            # probe to a unicast address or with a source link-layer option, §7.1.1):
            # the answer goes to all-nodes, unsolicited.
            advert = NeighborAdvert(target, self.mac, solicited=False, override=True)
            self._send_ndp(target, ALL_NODES, advert, ipv6_multicast_mac(ALL_NODES))
            self.stats["ndp_dad_answered"] += 1
            return
        if message.source_lladdr is not None:
            self._flush(message.source_lladdr,
                        self.neighbors.learn(src, message.source_lladdr, now))
        advert = NeighborAdvert(target, self.mac, solicited=True, override=True)
        buf = bytearray(advert.buffer_len)
        advert.emit(buf, target, src)
        if self._answer(target, src, IpProtocol.ICMPV6, bytes(buf), now,
                        hop_limit=NDP_HOP_LIMIT):
            self.stats["ndp_solicit_answered"] += 1

    def _on_advert(self, message: NeighborAdvert, now: float) -> None:
        target = message.target_addr
        if target in self.local:
            self.stats["ndp_advert_for_our_address"] += 1  # a duplicate: keep ours
            return
        if self.neighbors.state(target) is None:
            self.stats["ndp_advert_unsolicited"] += 1  # RFC 4861 §7.2.5: no entry, discard
            return
        mac = message.target_lladdr
        if mac is None and self.neighbors.state(target) is NeighborState.INCOMPLETE:
            # RFC 4861 §7.2.5: without a target link-layer address it resolves nothing.
            self.stats["ndp_advert_no_target_lladdr"] += 1
            return
        ready = self.neighbors.update(target, mac, now, solicited=message.solicited,
                                      override=message.override, is_router=message.router)
        if ready and mac is not None:
            self._flush(mac, ready)

    def _answer_echo(self, packet: Ipv6Packet, data: bytes | memoryview,
                     request: Icmpv6EchoRequest, caps: ChecksumCaps, now: float) -> None:
        """RFC 4443 §4.2: same identifier, sequence number and data, from a unicast address."""
        dst = packet.dst
        if dst.is_multicast or not caps.verify:
            # New source, or a checksum nobody checked: build the reply afresh.
            try:
                src = self.source_for(None, packet.src) if dst.is_multicast else dst
            except OSError:
                self.stats["answer_dropped_no_address"] += 1
                return
            reply = Icmpv6EchoReply(request.ident, request.seq_no, request.data)
            buf = bytearray(reply.buffer_len)
            reply.emit(buf, src, packet.src)
        else:
            src = dst
            buf = bytearray(data)
            Icmpv6Packet(buf).echo_request_to_reply()
        if self._answer(src, packet.src, IpProtocol.ICMPV6, bytes(buf), now):
            self.stats["icmpv6_echo_answered"] += 1

    # --- errors we generate ---------------------------------------------------------

    def _port_unreachable(self, offending: bytes | memoryview | None,
                          datagram: bytes | memoryview, link_multicast: bool,
                          caps: ChecksumCaps, now: float) -> None:
        code = Icmpv6DestUnreachableCode.PORT_UNREACHABLE

        def build(quote: bytes, src: IpAddress, dst: IpAddress) -> bytes:
            return _emit(Icmpv6DestUnreachable(code, quote), src, dst)
        self._send_icmp_error(offending, build, error_type=Icmpv6Type.DEST_UNREACHABLE,
                              link_multicast=link_multicast, caps=caps,
                              now=now, udp_datagram=datagram)

    def _parameter_problem(self, offending: memoryview, link_multicast: bool,
                           caps: ChecksumCaps, now: float) -> None:
        code = Icmpv6ParamProblemCode.UNRECOGNIZED_NEXT_HEADER
        pointer = _next_header_pointer(offending)

        def build(quote: bytes, src: IpAddress, dst: IpAddress) -> bytes:
            return _emit(Icmpv6ParamProblem(code, pointer, quote), src, dst)
        self._send_icmp_error(offending, build, error_type=Icmpv6Type.PARAM_PROBLEM,
                              link_multicast=link_multicast, caps=caps,
                              now=now)

    def _time_exceeded(self, first_fragment: bytes, now: float) -> None:
        code = Icmpv6TimeExceededCode.REASSEMBLY_TIME_EXCEEDED

        def build(quote: bytes, src: IpAddress, dst: IpAddress) -> bytes:
            return _emit(Icmpv6TimeExceeded(code, quote), src, dst)
        self._send_icmp_error(first_fragment, build, error_type=Icmpv6Type.TIME_EXCEEDED,
                              link_multicast=False,
                              caps=self.config.checksum, now=now)

    def _may_send_error(self, offending: bytes | memoryview, link_multicast: bool,
                        error_type: int) -> bool:
        packet = Ipv6Packet(offending)
        return may_send_icmpv6_error(error_type=error_type,
                                     dst=packet.dst, src=packet.src,
                                     is_icmp_error=_is_icmpv6_error(packet),
                                     link_multicast=link_multicast)

    def _quote(self, packet: bytes | memoryview) -> bytes:
        return quote_ipv6(packet)

    def _packet_addresses(self, packet: bytes | memoryview) -> tuple[IpAddress, IpAddress]:
        src, dst = _ADDRESSES.unpack_from(packet, _SRC_DST_OFFSET)
        return IPv6Address(src), IPv6Address(dst)

    def _udp_offset(self, packet: bytes | memoryview) -> int | None:
        view = Ipv6Packet(packet)
        if IPV6_HEADER_LEN + view.payload_len > len(packet):
            return None
        offset, protocol = IPV6_HEADER_LEN, view.next_header
        if protocol == IpProtocol.IPV6_FRAG:  # a first fragment counts, as for IPv4
            fragment = Ipv6FragmentRepr.parse(view.payload)
            if fragment.frag_offset:
                return None
            offset, protocol = offset + FRAGMENT_HEADER_LEN, fragment.next_header
        return offset if protocol == IpProtocol.UDP else None

    def _queued_udp_ports(self, packet: bytes) -> tuple[int, int] | None:
        view = Ipv6Packet(packet)
        offset, protocol = IPV6_HEADER_LEN, view.next_header
        if protocol == IpProtocol.IPV6_FRAG:  # only the first fragment quotes the ports
            fragment = Ipv6FragmentRepr.parse(view.payload)
            if fragment.frag_offset:
                return None
            offset, protocol = offset + FRAGMENT_HEADER_LEN, fragment.next_header
        if protocol != IpProtocol.UDP:
            return None
        src_port, dst_port = struct.unpack_from("!HH", packet, offset)
        return src_port, dst_port

    # --- send -----------------------------------------------------------------------

    def _send_ndp(self, src: IPv6Address, dst: IPv6Address,
                  message: NeighborSolicit | NeighborAdvert, dst_mac: EthernetAddress) -> None:
        """An NDP message straight to a link-layer address (no resolution needed)."""
        buf = bytearray(IPV6_HEADER_LEN + message.buffer_len)
        Ipv6Repr(src, dst, IpProtocol.ICMPV6, message.buffer_len,
                 hop_limit=NDP_HOP_LIMIT).emit(buf)
        message.emit(memoryview(buf)[IPV6_HEADER_LEN:], src, dst)
        self._tx.append(ethernet_frame(self.mac, dst_mac, EtherType.IPV6, bytes(buf)))

    def _solicit(self, solicitation: Solicitation) -> None:
        """RFC 4861 §7.2.2: to the solicited-node group, or a unicast probe (§7.3.3)."""
        target = IPv6Address(solicitation.ip)
        if solicitation.unicast_mac is None:
            dst = solicited_node_multicast(target)
            dst_mac = ipv6_multicast_mac(dst)
        else:
            dst, dst_mac = target, solicitation.unicast_mac
        try:
            src = self.source_for(None, target)
        except OSError:
            src = self.link_local
        self._send_ndp(src, dst, NeighborSolicit(target, self.mac), dst_mac)
        self.stats["ndp_solicit_sent"] += 1

    def _send(self, src: IpAddress, dst: IpAddress, protocol: int, payload: bytes,
              now: float, *, dont_frag: bool = True, hop_limit: int | None = None) -> None:
        """Route and send; larger than the MTU is fragmented (RFC 8200 §4.5: a source
        always may, ``dont_frag`` is an IPv4 notion)."""
        assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
        hops = DEFAULT_HOP_LIMIT if hop_limit is None else hop_limit
        if dst.is_multicast:
            next_hop = None
        else:
            hop = self.routes.next_hop(dst)
            if not isinstance(hop, IPv6Address):
                raise OSError(ENETUNREACH, f"no route to {dst}")
            next_hop = hop
        max_payload = self.config.mtu - IPV6_HEADER_LEN
        if len(payload) <= max_payload:
            packet = bytearray(IPV6_HEADER_LEN)
            Ipv6Repr(src, dst, protocol, len(payload), hop_limit=hops).emit(packet)
            self._route_out(bytes(packet) + payload, dst, next_hop, now)
            return
        # RFC 8200 §4.5: the unfragmentable part is just the fixed header here.
        self._ident = (self._ident + 1) & 0xFFFFFFFF
        for offset, length, more in fragment_sizes(len(payload),
                                                   max_payload - FRAGMENT_HEADER_LEN):
            header = Ipv6Repr(src, dst, IpProtocol.IPV6_FRAG, FRAGMENT_HEADER_LEN + length,
                              hop_limit=hops)
            packet = bytearray(IPV6_HEADER_LEN + FRAGMENT_HEADER_LEN)
            header.emit(packet)
            Ipv6FragmentRepr(protocol, offset, more, self._ident).emit(
                memoryview(packet)[IPV6_HEADER_LEN:])
            self._route_out(bytes(packet) + payload[offset:offset + length], dst, next_hop,
                            now)

    def _address(self, value: int) -> IpAddress:
        return IPv6Address(value)

    def _is_group(self, dst: IpAddress) -> bool:
        return dst.is_multicast

    def _path(self, src: IpAddress, dst: IpAddress, protocol: int,
              mac: EthernetAddress) -> FramePath:
        # What _send writes for an unfragmented packet (RFC 8200 §3), payload length
        # left zero for send_on.
        header = _PATH_HEADER.pack(0x60000000, 0, protocol, DEFAULT_HOP_LIMIT,
                                   src.packed, dst.packed)
        return FramePath(mac + self.mac + _ETHERTYPE_IPV6 + header,
                         pseudo_header(int(src), int(dst), protocol, 0))

    def send_on(self, path: FramePath, frame: bytearray, payload: Payload,
                gso_size: int = 0) -> None:
        length = len(frame) - _L4_OFFSET + len(payload)
        limit = 0xFFFF if gso_size else self.config.mtu - IPV6_HEADER_LEN
        if length > limit:
            raise OSError(EMSGSIZE, f"a {length + IPV6_HEADER_LEN}-byte packet exceeds "
                                    f"{'the payload length field' if gso_size else 'the MTU'}"
                                    f" ({limit + (0 if gso_size else IPV6_HEADER_LEN)})")
        _U16.pack_into(frame, _PAYLOAD_LENGTH_OFFSET, length)
        if gso_size:
            self._tx.append((frame, payload, gso_size))
        else:
            self._tx.append((frame, payload) if payload else bytes(frame))

    def _link_destination(self, dst: IpAddress) -> EthernetAddress:
        assert isinstance(dst, IPv6Address)
        return ipv6_multicast_mac(dst)


def _emit(message: Icmpv6DestUnreachable | Icmpv6TimeExceeded | Icmpv6ParamProblem,
          src: IpAddress, dst: IpAddress) -> bytes:
    buf = bytearray(message.buffer_len)
    message.emit(buf, src, dst)  # type: ignore[arg-type]
    return bytes(buf)


_LENGTH_FIELD_HEADERS = (IpProtocol.HOPOPT, IpProtocol.IPV6_ROUTE, IpProtocol.IPV6_OPTS)


def _next_header_pointer(packet: memoryview) -> int:
    """Offset of the Next Header field naming the upper layer (RFC 4443 §3.4 pointer),
    in a packet whose extension headers already parsed."""
    pointer, offset, header = 6, IPV6_HEADER_LEN, packet[6]
    while header in _LENGTH_FIELD_HEADERS or header == IpProtocol.IPV6_FRAG:
        size = FRAGMENT_HEADER_LEN if header == IpProtocol.IPV6_FRAG \
            else (packet[offset + 1] + 1) * 8
        pointer, header = offset, packet[offset]
        offset += size
    return pointer


def _is_solicitation(protocol: int, payload: bytes | memoryview) -> bool:
    return protocol == IpProtocol.ICMPV6 and len(payload) > 0 \
        and payload[0] == Icmpv6Type.NEIGHBOR_SOLICIT


def _is_icmpv6_error(packet: Ipv6Packet) -> bool:
    """RFC 4443 §2.4 (e.1, e.2): whether the packet carries an ICMPv6 error message
    or a Redirect, which no error may answer."""
    chain = walk_extension_headers(packet.next_header, packet.payload)
    payload = packet.payload[chain.offset:]
    return chain.protocol == IpProtocol.ICMPV6 and len(payload) > 0 \
        and (is_icmpv6_error(payload[0]) or payload[0] == Icmpv6Type.REDIRECT)


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
