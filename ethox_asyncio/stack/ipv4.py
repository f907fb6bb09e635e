"""The IPv4 half of an :class:`~.interface.Interface`: ARP, IPv4, ICMPv4, UDP over IPv4.

Contract:
- ARP (RFC 826, RFC 1122 §2.3.2): requests for our addresses are answered;
  next hops are resolved through a :class:`NeighborCache` (broadcast requests,
  unicast probes from PROBE); a gratuitous request announces each address at
  start. A sender that is not a unicast MAC, claims one of *our* addresses, or
  is no single host (below), is dropped and counted (``drop_arp_bogus_sender``)
  and never learnt. An entry is created only for a request or reply that targets us
  (RFC 826 "merge").
- Receive (RFC 791, RFC 1122 §3.2.1): packets not for one of our addresses or
  broadcast addresses are dropped (a host, not a router); a source that cannot be
  a single host — 0.0.0.0/8, 127/8, multicast, class E (incl. 255.255.255.255), a
  directed broadcast or network address of a connected network, or one of our own
  addresses — is dropped and counted as ``drop_ipv4_bogus_source`` (RFC 1122
  §3.2.1.3). ARP senders are held to the same rule (an RFC 5227 probe from
  0.0.0.0 is answered, never cached).
  Fragments are reassembled (30 s, Linux ``ipfrag_time``); UDP delivered, echo
  answered (not when sent to a broadcast address, RFC 1122 §3.2.2.6, like Linux's
  ``icmp_echo_ignore_broadcasts``), echo replies reported, errors delivered to the
  UDP endpoint they quote; closed ports and unknown protocols get a destination
  unreachable, an expired reassembly a time exceeded, through the shared answer
  path (:class:`~.iphost.IpHost`).
- Send: source address selection, routing through the shared route table,
  fragmentation when larger than the MTU (DF on unfragmented answers).

Never reads a clock and never does I/O.
"""

from __future__ import annotations

import struct
from errno import ECONNREFUSED, EHOSTUNREACH, EMSGSIZE, ENETUNREACH
from ipaddress import IPv4Address, IPv4Interface

from .common import ETH_HEADER_LEN, InterfaceConfig
from .fragment import fragment_sizes
from .icmp import may_send_icmpv4_error, quote_ipv4
from .iphost import IpAddress, IpHost, SharedTables
from .neighbor import Solicitation
from .path import FramePath, Payload
from .wire.arp import ArpOperation, ArpRepr
from .wire.checksum import ChecksumCaps, fold, ones_sum, pseudo_header
from .wire.ethernet import BROADCAST, EthernetAddress, EthernetFrame, EthernetRepr, EtherType
from .wire.icmpv4 import (
    Icmpv4DestUnreachable,
    Icmpv4DestUnreachableCode,
    Icmpv4EchoReply,
    Icmpv4EchoRequest,
    Icmpv4Packet,
    Icmpv4TimeExceeded,
    Icmpv4TimeExceededCode,
    Icmpv4Type,
    parse_icmpv4,
)
from .wire.ip import IpProtocol
from .wire.ipv4 import Ipv4Packet, Ipv4Repr
from .wire.speedups import compiled

__all__ = ["DEFAULT_TTL", "REASSEMBLY_TIMEOUT", "Ipv4Host"]

IPV4_HEADER_LEN = 20
REASSEMBLY_TIMEOUT = 30.0  # Linux net.ipv4.ipfrag_time
DEFAULT_TTL = 64  # RFC 1700 / Linux net.ipv4.ip_default_ttl

_ADDRESSES = struct.Struct("!4s4s")  # source and destination, at offset 12
_SRC_DST_OFFSET = 12
_PATH_HEADER = struct.Struct("!BBHHHBBH4s4s")  # RFC 791 §3.1, 20 bytes, no options
_LENGTH_IDENT = struct.Struct("!HH")  # total length, identification (offset 2)
_U16 = struct.Struct("!H")
_DONT_FRAGMENT = 0x4000
_ETHERTYPE_IPV4 = b"\x08\x00"
_SEQ = struct.Struct("!I")


class Ipv4Host(IpHost):
    """See the module contract. Owned by an :class:`~.interface.Interface`."""

    family = 4
    ethertype = EtherType.IPV4
    icmp_protocol = IpProtocol.ICMP
    reassembly_timeout = REASSEMBLY_TIMEOUT
    resolution_failure = "no ARP answer from the next hop"

    def __init__(self, config: InterfaceConfig, shared: SharedTables) -> None:
        super().__init__(config, shared)
        self.addresses = tuple(a for a in config.addresses if isinstance(a, IPv4Interface))
        self.local = frozenset(a.ip for a in self.addresses)
        self._local_ints = frozenset(int(a) for a in self.local)
        for address in self.addresses:
            self.routes.add_connected(address)
        self._ident = 0

    def _is_bogus_source(self, src: int) -> bool:
        """RFC 1122 §3.2.1.3: a source that cannot be a single host on the wire —
        0.0.0.0/8, 127/8, multicast, class E (incl. 255.255.255.255), a directed
        broadcast or network address of a connected network — or one of ours (a
        peer claiming it; Linux drops these too unless accept_local)."""
        top = src >> 24
        if top == 0 or top == 127 or top >= 224 or src in self._local_ints:
            return True
        address = IPv4Address(src)
        return self.routes.is_broadcast(address) or self.routes.is_network_address(address)

    def announce(self) -> None:
        """Gratuitous ARP for each address (RFC 5227 §3 announcement, as Linux)."""
        for address in self.addresses:
            self._send_arp(ArpOperation.REQUEST, address.ip, BROADCAST, address.ip)

    # --- ARP (RFC 826) --------------------------------------------------------------

    def on_arp(self, eth: EthernetFrame, now: float) -> None:
        arp = ArpRepr.parse(eth.payload)
        sender, target = arp.source_protocol_addr, arp.target_protocol_addr
        mac = EthernetAddress(arp.source_hardware_addr)
        probe = sender.is_unspecified and arp.operation == ArpOperation.REQUEST
        if not mac.is_unicast or (not probe and self._is_bogus_source(int(sender))):
            # Never let a peer claim our address, nor cache a non-host one.
            self.stats["drop_arp_bogus_sender"] += 1
            return
        for_us = target in self.local
        known = self.neighbors.state(sender) is not None
        if not for_us and (probe or not known):
            self.stats["arp_not_for_us"] += 1  # neither for us nor about a neighbour
            return
        if probe:  # an RFC 5227 probe for our address: answer it, learn nothing
            ready: list[bytes] = []
        elif arp.operation == ArpOperation.REPLY:
            if not known:  # unsolicited: Linux ignores it too (arp_accept=0)
                self.stats["arp_reply_unsolicited"] += 1
                return
            ready = self.neighbors.update(sender, mac, now, solicited=for_us)
        else:
            # RFC 826 "merge": update an existing entry; create one only if it targets us.
            ready = self.neighbors.learn(sender, mac, now)
        self._flush(mac, ready)
        if arp.operation == ArpOperation.REQUEST and for_us and sender != target:
            self._send_arp(ArpOperation.REPLY, target, mac, sender)
            self.stats["arp_request_answered"] += 1

    def _send_arp(self, operation: ArpOperation, sender: IPv4Address,
                  dst_mac: EthernetAddress, target: IPv4Address) -> None:
        target_mac = dst_mac if operation == ArpOperation.REPLY else EthernetAddress(bytes(6))
        arp = ArpRepr(operation, self.mac, sender, target_mac, target)
        buf = bytearray(ETH_HEADER_LEN + arp.buffer_len)
        EthernetRepr(self.mac, dst_mac, EtherType.ARP).emit(buf)
        arp.emit(memoryview(buf)[ETH_HEADER_LEN:])
        self._tx.append(bytes(buf))

    def _solicit(self, solicitation: Solicitation) -> None:
        target = IPv4Address(solicitation.ip)
        try:
            source = self.source_for(None, target)
        except OSError:
            self.stats["answer_dropped_no_address"] += 1
            return
        self._send_arp(ArpOperation.REQUEST, source, solicitation.unicast_mac or BROADCAST,
                       target)

    # --- receive (RFC 791, RFC 1122 §3.2.1) -----------------------------------------

    def ingress(self, data: memoryview, link_broadcast: bool, caps: ChecksumCaps,
                now: float) -> None:
        packet = Ipv4Packet.checked(data)
        dst = packet.dst
        broadcast = self.routes.is_broadcast(dst)
        if dst not in self.local and not broadcast:
            self.stats["drop_ipv4_not_for_us"] += 1  # we are a host, not a router
            return
        src_int = packet.src_int
        if self._is_bogus_source(src_int):
            self.stats["drop_ipv4_bogus_source"] += 1  # RFC 1122 §3.2.1.3
            return
        received = packet.buf[:packet.total_len]
        offending: bytes | memoryview | None = received
        payload: bytes | memoryview = packet.payload
        if packet.more_frags or packet.frag_offset:
            key = (src_int, packet.dst_int, packet.protocol, packet.ident)
            # RFC 1122 §3.2.2: no error answers a link-layer broadcast, so such a
            # datagram keeps no first fragment to quote.
            first = self._first_fragment(received, caps) \
                if packet.frag_offset == 0 and not link_broadcast else None
            done = self.reassembly.add_fragment(key, packet.frag_offset, packet.more_frags,
                                                payload, now, first_header=first)
            if done is None:
                return
            payload, offending = done
        protocol = packet.protocol
        if protocol == IpProtocol.TCP:
            self._on_tcp(packet.src, dst, payload, broadcast or link_broadcast
                         or dst.is_multicast, caps, now)
        elif protocol == IpProtocol.UDP:
            self._on_udp(packet.src, dst, payload, offending, link_broadcast, caps, now)
        elif protocol == IpProtocol.ICMP:
            self._on_icmp(packet, payload, broadcast or link_broadcast or dst.is_multicast,
                          caps, now)
        else:
            self.stats["drop_ipv4_protocol"] += 1
            self._destination_unreachable(offending, link_broadcast,
                                          Icmpv4DestUnreachableCode.PROTOCOL_UNREACHABLE,
                                          caps, now)

    def _on_icmp(self, packet: Ipv4Packet, data: bytes | memoryview, broadcast: bool,
                 caps: ChecksumCaps, now: float) -> None:
        message = parse_icmpv4(data, caps)
        if isinstance(message, Icmpv4EchoRequest):
            if broadcast:
                self.stats["icmp_echo_broadcast_ignored"] += 1  # RFC 1122 §3.2.2.6 MAY
                return
            self._answer_echo(packet, data, message, caps, now)
        elif isinstance(message, Icmpv4EchoReply):
            self._echo_reply(packet.src, message.ident, message.seq_no, message.data, now)
        elif isinstance(message, Icmpv4DestUnreachable | Icmpv4TimeExceeded):
            quoted = message.quoted_ipv4_header()
            # RFC 1122 §4.2.3.9: protocol and port unreachable are hard errors.
            hard = isinstance(message, Icmpv4DestUnreachable) and message.code in (
                Icmpv4DestUnreachableCode.PROTOCOL_UNREACHABLE,
                Icmpv4DestUnreachableCode.PORT_UNREACHABLE)
            # RFC 1191 §4: "fragmentation needed" carries the next hop's MTU (0 from a
            # router older than RFC 1191: no estimate, the black-hole fallback covers it).
            mtu = message.next_hop_mtu if isinstance(message, Icmpv4DestUnreachable) and \
                message.code == Icmpv4DestUnreachableCode.FRAG_NEEDED else None
            self._deliver_error(quoted.protocol if quoted else -1, quoted,
                                _icmp_to_oserror(message), tcp_seq=_quoted_tcp_seq(
                                    message.quoted), hard=hard, now=now, mtu=mtu or None)
        else:
            self.stats["icmp_ignored"] += 1

    def _answer_echo(self, packet: Ipv4Packet, data: bytes | memoryview,
                     request: Icmpv4EchoRequest, caps: ChecksumCaps, now: float) -> None:
        """RFC 792 echo reply, RFC 1122 §3.2.2.6: same identifier, sequence and data."""
        if caps.verify:  # a checksum we checked: patch it in place (RFC 1624)
            buf = bytearray(data)
            Icmpv4Packet(buf).echo_request_to_reply()
            reply = bytes(buf)
        else:  # only vouched for (it may hold a partial sum): build the reply afresh
            reply = _emit(Icmpv4EchoReply(request.ident, request.seq_no, request.data))
        # A large ping is answered in fragments, as it arrived (RFC 1122 §3.2.2.6).
        if self._answer(packet.dst, packet.src, IpProtocol.ICMP, reply, now, dont_frag=False):
            self.stats["icmp_echo_answered"] += 1

    # --- errors we generate ---------------------------------------------------------

    def _port_unreachable(self, offending: bytes | memoryview | None,
                          datagram: bytes | memoryview, link_multicast: bool,
                          caps: ChecksumCaps, now: float) -> None:
        self._destination_unreachable(offending, link_multicast,
                                      Icmpv4DestUnreachableCode.PORT_UNREACHABLE, caps, now,
                                      datagram)

    def _destination_unreachable(self, offending: bytes | memoryview | None,
                                 link_multicast: bool, code: Icmpv4DestUnreachableCode,
                                 caps: ChecksumCaps, now: float,
                                 datagram: bytes | memoryview | None = None) -> None:
        def build(quote: bytes, src: IpAddress, dst: IpAddress) -> bytes:
            return _emit(Icmpv4DestUnreachable(code, quote))
        self._send_icmp_error(offending, build, error_type=Icmpv4Type.DEST_UNREACHABLE,
                              link_multicast=link_multicast, caps=caps,
                              now=now, udp_datagram=datagram)

    def _time_exceeded(self, first_fragment: bytes, now: float) -> None:
        code = Icmpv4TimeExceededCode.REASSEMBLY_TIME_EXCEEDED

        def build(quote: bytes, src: IpAddress, dst: IpAddress) -> bytes:
            return _emit(Icmpv4TimeExceeded(code, quote))
        self._send_icmp_error(first_fragment, build, error_type=Icmpv4Type.TIME_EXCEEDED,
                              link_multicast=False,
                              caps=self.config.checksum, now=now)

    def _may_send_error(self, offending: bytes | memoryview, link_multicast: bool,
                        error_type: int) -> bool:
        packet = Ipv4Packet(offending)
        dst = packet.dst
        return may_send_icmpv4_error(
            dst_is_broadcast_or_multicast=self.routes.is_broadcast(dst) or dst.is_multicast,
            src=packet.src, is_icmp_error=_is_icmp_error(packet),
            frag_offset=packet.frag_offset, link_broadcast=link_multicast,
            src_is_broadcast=self.routes.is_broadcast(packet.src))

    def _quote(self, packet: bytes | memoryview) -> bytes:
        return quote_ipv4(packet)

    def _packet_addresses(self, packet: bytes | memoryview) -> tuple[IpAddress, IpAddress]:
        src, dst = _ADDRESSES.unpack_from(packet, _SRC_DST_OFFSET)
        return IPv4Address(src), IPv4Address(dst)

    def _udp_offset(self, packet: bytes | memoryview) -> int | None:
        view = Ipv4Packet(packet)
        # A first fragment counts: its UDP checksum can be completed when the UDP
        # length says the whole datagram is in it (see _complete_udp_checksum).
        if view.protocol != IpProtocol.UDP or view.frag_offset \
                or view.total_len > len(packet):
            return None
        return view.header_len

    def _queued_udp_ports(self, packet: bytes) -> tuple[int, int] | None:
        view = Ipv4Packet(packet)
        if view.protocol != IpProtocol.UDP or view.frag_offset:
            return None
        src_port, dst_port = struct.unpack_from("!HH", packet, view.header_len)
        return src_port, dst_port

    # --- send -----------------------------------------------------------------------

    def send_ping(self, dst: IPv4Address, ident: int, seq_no: int, data: bytes,
                  now: float) -> None:
        request = Icmpv4EchoRequest(ident, seq_no, data)
        self._send(self.source_for(None, dst), dst, IpProtocol.ICMP, _emit(request), now)

    def source_for(self, bound: IpAddress | None, dst: IpAddress) -> IPv4Address:
        if isinstance(bound, IPv4Address) and not bound.is_unspecified:
            return bound
        best = None
        for address in self.addresses:
            if dst in address.network:
                return address.ip
            best = best or address.ip
        if best is None:
            raise OSError(ENETUNREACH, "no IPv4 address configured on the interface")
        return best

    def _send(self, src: IpAddress, dst: IpAddress, protocol: int, payload: bytes,
              now: float, *, dont_frag: bool = True, hop_limit: int | None = None) -> None:
        assert isinstance(src, IPv4Address) and isinstance(dst, IPv4Address)
        broadcast = self.routes.is_broadcast(dst) or dst.is_multicast
        next_hop = None if broadcast else self.routes.next_hop(dst)
        if not broadcast and not isinstance(next_hop, IPv4Address):
            raise OSError(ENETUNREACH, f"no route to {dst}")
        self._ident = (self._ident + 1) & 0xFFFF
        max_payload = self.config.mtu - IPV4_HEADER_LEN
        if len(payload) > max_payload and dont_frag:
            raise OSError(EMSGSIZE, f"{len(payload)} bytes exceed the MTU payload of "
                                    f"{max_payload} with DF set")
        ttl = DEFAULT_TTL if hop_limit is None else hop_limit
        for offset, length, more in fragment_sizes(len(payload), max_payload):
            header = Ipv4Repr(src, dst, protocol, length, ttl=ttl, ident=self._ident,
                              dont_frag=dont_frag and not more and offset == 0,
                              more_frags=more, frag_offset=offset)
            packet = bytearray(header.buffer_len)
            header.emit(packet)
            packet[IPV4_HEADER_LEN:] = payload[offset:offset + length]
            self._route_out(bytes(packet), dst, next_hop, now)

    def _address(self, value: int) -> IpAddress:
        return IPv4Address(value)

    def _is_group(self, dst: IpAddress) -> bool:
        return self.routes.is_broadcast(dst) or dst.is_multicast

    def _path(self, src: IpAddress, dst: IpAddress, protocol: int,
              mac: EthernetAddress) -> FramePath:
        # What _send writes for an unfragmented packet with DF (RFC 791 §3.1), with
        # total length, identification and checksum left zero for send_on.
        header = _PATH_HEADER.pack(0x45, 0, 0, 0, _DONT_FRAGMENT, DEFAULT_TTL, protocol, 0,
                                   src.packed, dst.packed)
        return FramePath(mac + self.mac + _ETHERTYPE_IPV4 + header,
                         pseudo_header(int(src), int(dst), protocol, 0), ones_sum(header))

    def send_on(self, path: FramePath, frame: bytearray, payload: Payload,
                gso_size: int = 0) -> None:
        total = len(frame) - ETH_HEADER_LEN + len(payload)
        limit = 0xFFFF if gso_size else self.config.mtu
        if total > limit:
            raise OSError(EMSGSIZE, f"a {total}-byte packet exceeds the "
                                    f"{'IPv4 total length' if gso_size else 'MTU'} of "
                                    f"{limit} with DF set")
        ident = self._ident = (self._ident + 1) & 0xFFFF
        fill_ipv4(frame, path.header_sum, total, ident)
        if gso_size:
            self._tx.append((frame, payload, gso_size))
        else:
            self._tx.append((frame, payload) if payload else bytes(frame))

    def _link_destination(self, dst: IpAddress) -> EthernetAddress:
        # Multicast is sent as a link broadcast: we join no IPv4 group (no IGMP).
        return BROADCAST


def _py_fill_ipv4(frame: bytearray, header_sum: int, total: int, ident: int) -> None:
    """The total length, identification and header checksum (RFC 791 §3.1) of a frame
    on a :class:`FramePath` whose IPv4 header sums to ``header_sum`` with those fields
    zero. Pure-Python reference of the compiled ``_speedups.fill_ipv4``
    (wire/speedups.py)."""
    _LENGTH_IDENT.pack_into(frame, ETH_HEADER_LEN + 2, total, ident)
    # RFC 1071: the zeroed fields' sum plus the two just written, complemented.
    _U16.pack_into(frame, ETH_HEADER_LEN + 10, ~fold(header_sum + total + ident) & 0xFFFF)


# The implementation is chosen once, at import (wire/speedups.py).
fill_ipv4 = compiled.fill_ipv4 if compiled is not None else _py_fill_ipv4


def _emit(message: Icmpv4DestUnreachable | Icmpv4TimeExceeded | Icmpv4EchoRequest
          | Icmpv4EchoReply) -> bytes:
    buf = bytearray(message.buffer_len)
    message.emit(buf)
    return bytes(buf)


def _quoted_tcp_seq(quote: bytes) -> int | None:
    """The sequence number of the TCP segment an ICMP error quotes, if it reaches it."""
    if len(quote) < IPV4_HEADER_LEN:
        return None
    offset = (quote[0] & 0x0F) * 4 + 4
    if len(quote) < offset + 4:
        return None
    seq: int = _SEQ.unpack_from(quote, offset)[0]
    return seq


def _is_icmp_error(packet: Ipv4Packet) -> bool:
    """Whether the packet is an ICMP error (RFC 1122 §3.2.2: never answered by one).

    Conservatively anything but an echo request or reply counts, as only those two
    kinds of ICMP message could be answered here with an error at all.
    """
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
