"""One Ethernet interface of the sans-IO stack: frames in, events and frames out.

Contract:
- ``ingress(frame, now)`` handles one received Ethernet frame. Anything that does
  not parse, is not for us, or is refused by a rule is dropped and counted in
  ``stats`` under a reason; remote bytes never raise out of here.
- The hot path: a frame to our MAC carrying TCP in one unfragmented IPv4 packet
  without options (header checksum verified here) or in IPv6 without extension
  headers is handed straight to :meth:`~.tcp.host.TcpHost.ingress_known` with the
  addresses as ints; the TCP host takes it when it belongs to a connection that has
  heard from its peer (whose first segment passed every check below), else it comes
  back for the general path. No header objects, no ``ipaddress`` objects.
- ``egress(now, budget)`` returns at most ``budget`` frames to transmit, plain
  Ethernet (the loop adds a device's virtio-net header): each contiguous
  (``bytes``) or gathered as ``(headers, payload)`` with the payload
  still the application's buffer (:data:`~.path.OutFrame`; TCP segments with data). It also runs the
  timers that are due (neighbour solicitations, reassembly timeouts); answers
  those timers generate that cannot be sent are dropped and counted, so egress
  never raises because of what a peer sent.
- ``poll_at()`` is the earliest deadline of any timer, or None. The IP families'
  deadline (neighbour and reassembly timers) is kept from the last ``egress`` (or
  ``poll_at``) until something that may change it: the general ingress path, a
  UDP or ICMP send, the next ``egress``. The TCP hot path and TCP's deadlines
  (kept by the TCP host) do not touch it, so a pump asks each family once. Code
  that edits a family's neighbour cache or reassembler directly must not rely on
  ``poll_at()`` before the next ``egress``.
- ``events`` is a deque of :class:`UdpDatagram`, :class:`UdpError` and
  :class:`EchoReply` for the loop to dispatch. Datagram payloads are copies
  (``bytes``): the loop may hand them to protocols that keep them.
- This module is the Ethernet dispatch (our MAC, broadcast, the IPv6 multicast
  groups we joined); the network layer is one host per family with the same
  shape, :class:`~.ipv4.Ipv4Host` (ARP, IPv4, ICMPv4) and :class:`~.ipv6.Ipv6Host`
  (NDP, IPv6, ICMPv6), both built on :class:`~.iphost.IpHost`, sharing the route
  table, the UDP table, the ICMP error rate limit, the events and the transmit
  queue. The public calls take either family.

The interface never reads a clock and never does I/O.
"""

from __future__ import annotations

import struct
from collections import Counter, deque
from ipaddress import IPv4Address, IPv6Address

from .common import (
    TRUSTED,
    EchoReply,
    Event,
    InterfaceConfig,
    UdpDatagram,
    UdpError,
)
from .icmp import TokenBucket
from .iphost import IpHost, SharedTables
from .ipv4 import Ipv4Host
from .ipv6 import Ipv6Host
from .path import OutFrame
from .route import RouteTable
from .tcp.host import TcpHost
from .tcp.segment import ALIGNED_TS_WORD, HEADER, HEADER_LEN, HEADER_TS, HEADER_TS_LEN
from .udp import UdpEndpoint, UdpTable
from .wire.checksum import pseudo_header, verify
from .wire.errors import WireError
from .wire.ethernet import EthernetFrame, EtherType
from .wire.speedups import TcpFrame, compiled

__all__ = ["EchoReply", "Interface", "InterfaceConfig", "UdpDatagram", "UdpError"]

IpAddress = IPv4Address | IPv6Address

# The hot path: destination MAC (source MAC skipped), EtherType, then the IPv4 header
# without options (RFC 791 §3.1): version/IHL, TOS, total length, identification,
# flags/fragment offset, TTL, protocol, checksum, source, destination.
_ETH_IPV4 = struct.Struct("!6s6xHBBHHHBBHII")


def _py_parse_tcp_frame(frame: bytes | bytearray | memoryview, mac: bytes,
                        verify_checksum: bool) -> TcpFrame | None:
    """The hot path's parse (module contract), pure-Python reference of the compiled
    ``_speedups.parse_tcp_frame`` (wire/speedups.py): None unless ``frame`` is TCP to
    ``mac`` in one unfragmented IPv4 packet without options whose header checksum
    verifies, or in IPv6 without extension headers; else ``(key, seq, ack, flags,
    window, ts_val, ts_ecr, header_len, data, payload, checksum_ok)`` as
    :func:`_py_parse_tcp_segment` decodes the TCP segment."""
    size = len(frame)
    if size >= 54 and frame[12] == 0x08 and frame[13] == 0 and frame[14] == 0x45:
        (dst_mac, _, _, _, total, _, frag, _, protocol, _, src,
         dst) = _ETH_IPV4.unpack_from(frame)
        # RFC 791 §3.1: TCP, no MF and offset 0, a length within the frame, and a
        # header checksum that verifies (the 20 bytes as one integer are a multiple
        # of 0xFFFF exactly when their ones' complement sum is 0xFFFF, RFC 1071).
        if protocol != 6 or frag & 0x3FFF or dst_mac != mac \
                or not 40 <= total <= size - 14 \
                or int.from_bytes(frame[14:34], "big") % 0xFFFF:
            return None
        family = 4
        data = memoryview(frame)[34:14 + total]
    elif size >= 74 and frame[12] == 0x86 and frame[13] == 0xDD \
            and frame[14] >> 4 == 6 and frame[20] == 6:
        length = (frame[18] << 8) | frame[19]  # RFC 8200 §3: payload length
        if not 20 <= length <= size - 54 or frame[:6] != mac:
            return None
        family = 6
        src = int.from_bytes(frame[22:38], "big")
        dst = int.from_bytes(frame[38:54], "big")
        data = memoryview(frame)[54:54 + length]
    else:
        return None
    return _py_parse_tcp_segment(family, src, dst, data, verify_checksum)


def _py_parse_tcp_segment(family: int, src: int, dst: int, data: memoryview,
                          verify_checksum: bool) -> TcpFrame | None:
    """The header decode of the hot path, pure-Python reference of the compiled
    ``_speedups.parse_tcp_segment``: None for fewer than 20 bytes, else ``(key, seq,
    ack, flags, window, ts_val, ts_ecr, header_len, data, payload, checksum_ok)`` with
    ``key`` the connection table's ``(family, dst, dst_port, src, src_port)``, ``data``
    the TCP segment and ``payload`` what follows its header when the header is the
    usual one (``header_len`` 20: no options, or 32: ``NOP NOP TS``; else 0 and
    ``payload`` is ``data``: the caller parses it in full). ``checksum_ok``: the TCP
    checksum over the pseudo-header verifies (RFC 9293 §3.1), or ``verify_checksum``
    is false."""
    # RFC 9293 §3.1 and RFC 7323 Appendix A: the fixed header, and with a data offset
    # of 8 the first option word and the two timestamps (the usual header when that
    # word is NOP NOP TS).
    size = len(data)
    if size >= HEADER_TS_LEN and data[12] == 0x80:
        (src_port, dst_port, seq, ack, _, flags, window, _, _, word, ts_val,
         ts_ecr) = HEADER_TS.unpack_from(data)
        header_len = HEADER_TS_LEN if word == ALIGNED_TS_WORD else 0
    elif size >= HEADER_LEN:
        src_port, dst_port, seq, ack, _, flags, window, _, _ = HEADER.unpack_from(data)
        header_len = HEADER_LEN if data[12] == 0x50 else 0
        ts_val = ts_ecr = None
    else:
        return None
    checksum_ok = not verify_checksum or verify(data, pseudo_header(src, dst, 6, size))
    return ((family, dst, dst_port, src, src_port), seq, ack, flags, window, ts_val, ts_ecr,
            header_len, data, data[header_len:] if header_len else data, checksum_ok)


# The implementation is chosen once, at import (wire/speedups.py).
if compiled is not None:
    parse_tcp_frame = compiled.parse_tcp_frame
    parse_tcp_segment = compiled.parse_tcp_segment
else:
    parse_tcp_frame = _py_parse_tcp_frame
    parse_tcp_segment = _py_parse_tcp_segment


class Interface:
    """See the module contract."""

    def __init__(self, config: InterfaceConfig) -> None:
        self.config = config
        self.mac = config.mac
        self.routes = RouteTable()
        self.udp = UdpTable()
        self.icmp_errors = TokenBucket(config.icmp_error_rate, config.icmp_error_burst)
        self.events: deque[Event] = deque()
        self.stats: Counter[str] = Counter()
        self._tx: deque[OutFrame] = deque()
        self.tcp = TcpHost(config.tcp, secret=config.secret, mtu=config.mtu,
                           events=self.events, stats=self.stats,
                           checksum_offload=config.tcp_checksum_offload,
                           tso=config.tcp_tso and config.tcp_checksum_offload)
        shared = SharedTables(self.routes, self.udp, self.tcp, self.icmp_errors, self.events,
                              self.stats, self._tx)
        self.ipv4 = Ipv4Host(config, shared)
        self.ipv6 = Ipv6Host(config, shared)
        self._hosts: dict[int, IpHost] = {4: self.ipv4, 6: self.ipv6}
        # After both families' connected routes: a gateway must be on one of them.
        for gateway in config.gateways:
            self.routes.add_default_gateway(gateway)
        self._local = self.ipv4.local | self.ipv6.local
        self._mac_bytes = bytes(config.mac)
        # Both IP families' earliest deadline as the last egress or poll_at left it,
        # valid until something may touch their timers (module contract).
        self._ip_at: float | None = None
        self._ip_at_known = False
        self._verify = config.checksum.verify
        self.ipv4.announce()

    # --- loop interface -------------------------------------------------------------

    @property
    def local_addresses(self) -> frozenset[IPv4Address | IPv6Address]:
        """Our unicast addresses, both families (IPv6 includes the link-local one)."""
        return self._local

    def source_address(self, dst: IpAddress) -> IpAddress:
        """The address a packet to ``dst`` is sent from (the one on ``dst``'s network)."""
        return self._hosts[dst.version].source_for(None, dst)

    def ingress(self, frame: bytes | bytearray | memoryview, now: float, *,
                checksum_verified: bool = False) -> None:
        """Handle one frame; ``checksum_verified``: the device vouches for L4 checksums."""
        # The hot path (module contract): TCP to our MAC in one unfragmented IPv4
        # packet without options, or IPv6 without extension headers, goes straight to
        # the connection it belongs to (parsed in one call: parse_tcp_frame).
        parsed = parse_tcp_frame(frame, self._mac_bytes, not checksum_verified and self._verify)
        if parsed is not None and self.tcp.ingress_known(parsed, now):
            return
        self._ip_at_known = False  # the general path may touch IP timers (ARP, NDP...)
        caps = TRUSTED if checksum_verified else self.config.checksum
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
            if ethertype == EtherType.IPV4:
                self.ipv4.ingress(eth.payload, dst.is_broadcast, caps, now)
            elif ethertype == EtherType.IPV6:
                self.ipv6.ingress(eth.payload, dst.is_multicast, caps, now)
            elif ethertype == EtherType.ARP:
                self.ipv4.on_arp(eth, now)
            else:
                self.stats["drop_ethertype"] += 1
        except WireError as error:
            self.stats[f"drop_{type(error).__name__}"] += 1

    def egress(self, now: float, budget: int) -> list[OutFrame]:
        ipv4, ipv6 = self.ipv4, self.ipv6
        # Each family's timers run only when one is due; the deadline kept from the last
        # egress says when none can be (module contract).
        ip_at = self._ip_at
        if not self._ip_at_known or (ip_at is not None and ip_at <= now):
            at = ipv4.poll_at()
            if at is not None and at <= now:
                ipv4.run_timers(now)
            at = ipv6.poll_at()
            if at is not None and at <= now:
                ipv6.run_timers(now)
        self.tcp.egress(now)
        # What the timers and TCP just queued may wait for a solicitation due now
        # (RFC 1122 §2.3.2.1): send it in this call, not a pump later.
        at = ipv4.poll_at()
        if at is not None and at <= now:
            ipv4.run_timers(now)
            at = ipv4.poll_at()
        at6 = ipv6.poll_at()
        if at6 is not None and at6 <= now:
            ipv6.run_timers(now)
            at6 = ipv6.poll_at()
        self._ip_at = at if at6 is None or (at is not None and at < at6) else at6
        self._ip_at_known = True
        out: list[OutFrame] = []
        tx = self._tx
        while tx and len(out) < budget:
            out.append(tx.popleft())
        return out

    def poll_at(self) -> float | None:
        if self._tx:
            return 0.0
        at = self.tcp.poll_at()
        if at == 0.0:
            return at
        if not self._ip_at_known:
            a, b = self.ipv4.poll_at(), self.ipv6.poll_at()
            self._ip_at = a if b is None or (a is not None and a < b) else b
            self._ip_at_known = True
        other = self._ip_at
        if other is not None and (at is None or other < at):
            return other
        return at

    # --- user calls -----------------------------------------------------------------

    def send_udp(self, endpoint: UdpEndpoint, payload: bytes, dst: IpAddress, port: int,
                 now: float) -> None:
        """Queue one datagram; fragmented when larger than the MTU (RFC 791 §2.3,
        RFC 8200 §4.5). Raises OSError as a kernel socket's sendto would."""
        self._ip_at_known = False  # it may create a neighbour entry (RFC 4861 §7.2.2)
        self._hosts[dst.version].send_udp(endpoint, payload, dst, port, now)

    def send_ping(self, dst: IpAddress, ident: int, seq_no: int, data: bytes,
                  now: float) -> None:
        self._ip_at_known = False
        if isinstance(dst, IPv6Address):
            self.ipv6.send_ping(dst, ident, seq_no, data, now)
        else:
            self.ipv4.send_ping(dst, ident, seq_no, data, now)
