"""What the IPv4 and IPv6 halves of an :class:`~.interface.Interface` share.

The interface configuration, the events handed to the loop and the Ethernet framing
of an IP packet. Sans-IO like the rest of the stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

from .neighbor import NeighborConfig
from .tcp.config import TcpConfig
from .udp import UdpEndpoint
from .wire.checksum import CHECKSUM_SOFTWARE, ChecksumCaps
from .wire.ethernet import EthernetAddress, EthernetRepr

__all__ = ["ETH_HEADER_LEN", "TRUSTED", "UDP_HEADER_LEN", "EchoReply", "InterfaceConfig",
           "UdpDatagram", "UdpError", "ethernet_frame"]

ETH_HEADER_LEN = 14
UDP_HEADER_LEN = 8
TRUSTED = ChecksumCaps(verify=False)  # the device vouched for the L4 checksums


@dataclass(frozen=True, slots=True)
class InterfaceConfig:
    mac: EthernetAddress
    addresses: tuple[IPv4Interface | IPv6Interface, ...]
    gateways: tuple[IPv4Address | IPv6Address, ...] = ()
    mtu: int = 1500
    checksum: ChecksumCaps = CHECKSUM_SOFTWARE
    neighbor: NeighborConfig = field(default_factory=NeighborConfig)
    icmp_error_rate: float = 1000.0  # per second (Linux net.ipv4.icmp_ratelimit ~1/ms)
    icmp_error_burst: int = 50
    tcp: TcpConfig = field(default_factory=TcpConfig)
    # The device completes TCP checksums (virtio-net NEEDS_CSUM): TCP segments carry
    # only the pseudo-header sum. UDP and ICMP keep full checksums (a UDP datagram may
    # be fragmented, which no device completes).
    tcp_checksum_offload: bool = False
    # The device also segments TCP (TSO: virtio-net GSO_TCPV4/V6, with checksum
    # offload): TCP sends super-segments of up to ~64 KB in whole MSS.
    tcp_tso: bool = False
    # Keys the TCP ISNs (RFC 6528) and ephemeral ports (RFC 6056): 32 bytes. The loop
    # passes os.urandom(32); the all-zero default keeps sans-IO tests reproducible.
    secret: bytes = bytes(32)


@dataclass(slots=True)
class UdpDatagram:
    endpoint: UdpEndpoint
    data: bytes
    src: tuple[str, int]


@dataclass(slots=True)
class UdpError:
    """An ICMP error about a datagram ``endpoint`` sent (``error_received``)."""

    endpoint: UdpEndpoint
    error: OSError


@dataclass(slots=True)
class EchoReply:
    src: IPv4Address | IPv6Address
    ident: int
    seq_no: int
    data: bytes
    received_at: float


Event = UdpDatagram | UdpError | EchoReply


def ethernet_frame(src_mac: EthernetAddress, dst_mac: EthernetAddress, ethertype: int,
                   packet: bytes) -> bytes:
    header = bytearray(ETH_HEADER_LEN)
    EthernetRepr(src_mac, dst_mac, ethertype).emit(header)
    return bytes(header) + packet
