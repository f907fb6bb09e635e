"""One readable line per Ethernet frame, decoded by our own codecs (like tcpdump -e).

Contract: :func:`describe_frame` never raises for any input bytes: a layer that
does not parse is shown as ``[<layer>: <ErrorClass>: <reason>]`` after the layers
that did. Checksums are verified, so a bad one shows as ``BadChecksum``. It is
for logs, the CLI's ``decode`` command and the demo, not for the hot path.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from .arp import ArpRepr
from .errors import WireError
from .ethernet import EthernetFrame, EthernetRepr, EtherType
from .icmpv4 import parse_icmpv4
from .icmpv6 import parse_icmpv6
from .ip import IpProtocol
from .ipv4 import Ipv4Packet, Ipv4Repr
from .ipv6 import Ipv6Packet, Ipv6Repr
from .tcp import TcpRepr
from .udp import UdpRepr

__all__ = ["describe_frame"]


def describe_frame(frame: bytes | bytearray | memoryview) -> str:
    """``"<ethernet> | <network> | <transport>"`` for one frame."""
    parts: list[str] = []
    layer = "ethernet"
    try:
        ethernet = EthernetFrame.checked(frame)
        parts.append(str(EthernetRepr.parse(ethernet)))
        payload = ethernet.payload
        ethertype = ethernet.ethertype
        if ethertype == EtherType.ARP:
            layer = "arp"
            parts.append(str(ArpRepr.parse(payload)))
        elif ethertype == EtherType.IPV4:
            layer = "ipv4"
            _describe_ipv4(payload, parts)
        elif ethertype == EtherType.IPV6:
            layer = "ipv6"
            _describe_ipv6(payload, parts)
    except WireError as exc:
        parts.append(f"[{layer}: {type(exc).__name__}: {exc}]")
    return " | ".join(parts)


def _describe_ipv4(data: memoryview, parts: list[str]) -> None:
    packet = Ipv4Packet.checked(data)
    ip = Ipv4Repr.parse(packet)
    parts.append(str(ip))
    if ip.frag_offset or ip.more_frags:
        parts.append("fragment")  # the transport header is only in the reassembled datagram
        return
    _describe_transport(ip.protocol, packet.payload, ip.src, ip.dst, parts)


def _describe_ipv6(data: memoryview, parts: list[str]) -> None:
    packet = Ipv6Packet.checked(data)
    ip = Ipv6Repr.parse(packet)
    parts.append(str(ip))
    chain = packet.header_chain()
    for header in chain.headers:
        parts.append(str(header))
    fragment = chain.fragment
    if fragment is not None and not fragment.is_atomic:
        return
    _describe_transport(chain.protocol, packet.payload[chain.offset:], ip.src, ip.dst, parts)


def _describe_transport(protocol: int, data: memoryview, src: IPv4Address | IPv6Address,
                        dst: IPv4Address | IPv6Address, parts: list[str]) -> None:
    if protocol == IpProtocol.TCP:
        parts.append(str(TcpRepr.parse(data, src, dst)))
    elif protocol == IpProtocol.UDP:
        parts.append(str(UdpRepr.parse(data, src, dst)))
    elif protocol == IpProtocol.ICMP and isinstance(src, IPv4Address):
        parts.append(str(parse_icmpv4(data)))
    elif (protocol == IpProtocol.ICMPV6 and isinstance(src, IPv6Address)
          and isinstance(dst, IPv6Address)):
        parts.append(str(parse_icmpv6(data, src, dst)))
