"""One Ethernet interface of the sans-IO stack: frames in, events and frames out.

Contract:
- ``ingress(frame, now)`` handles one received Ethernet frame. Anything that does
  not parse, is not for us, or is refused by a rule is dropped and counted in
  ``stats`` under a reason; remote bytes never raise out of here.
- ``egress(now, budget)`` returns at most ``budget`` frames to transmit, plain
  Ethernet (the loop adds a device's virtio-net header): each contiguous
  (``bytes``) or gathered as ``(headers, payload)`` with the payload
  still the application's buffer (:data:`~.path.OutFrame`; TCP segments with data). It also runs the
  timers that are due (neighbour solicitations, reassembly timeouts); answers
  those timers generate that cannot be sent are dropped and counted, so egress
  never raises because of what a peer sent.
- ``poll_at()`` is the earliest deadline of any timer, or None.
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
from .udp import UdpEndpoint, UdpTable
from .wire.errors import WireError
from .wire.ethernet import EthernetFrame, EtherType

__all__ = ["EchoReply", "Interface", "InterfaceConfig", "UdpDatagram", "UdpError"]

IpAddress = IPv4Address | IPv6Address


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
        self.ipv4.run_timers(now)
        self.ipv6.run_timers(now)
        self.tcp.egress(now)
        # What the timers and TCP just queued may wait for a solicitation due now
        # (RFC 1122 §2.3.2.1): send it in this call, not a pump later.
        for host in (self.ipv4, self.ipv6):
            at = host.poll_at()
            if at is not None and at <= now:
                host.run_timers(now)
        out: list[OutFrame] = []
        tx = self._tx
        while tx and len(out) < budget:
            out.append(tx.popleft())
        return out

    def poll_at(self) -> float | None:
        if self._tx:
            return 0.0
        deadlines = [d for d in (self.ipv4.poll_at(), self.ipv6.poll_at(),
                                 self.tcp.poll_at()) if d is not None]
        return min(deadlines) if deadlines else None

    # --- user calls -----------------------------------------------------------------

    def send_udp(self, endpoint: UdpEndpoint, payload: bytes, dst: IpAddress, port: int,
                 now: float) -> None:
        """Queue one datagram; fragmented when larger than the MTU (RFC 791 §2.3,
        RFC 8200 §4.5). Raises OSError as a kernel socket's sendto would."""
        self._hosts[dst.version].send_udp(endpoint, payload, dst, port, now)

    def send_ping(self, dst: IpAddress, ident: int, seq_no: int, data: bytes,
                  now: float) -> None:
        if isinstance(dst, IPv6Address):
            self.ipv6.send_ping(dst, ident, seq_no, data, now)
        else:
            self.ipv4.send_ping(dst, ident, seq_no, data, now)
