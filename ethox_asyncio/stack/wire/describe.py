"""One readable line per Ethernet frame, decoded by our own codecs (like tcpdump -e).

Contract: :func:`describe_frame` never raises for any input bytes: a layer that
does not parse is shown as ``[<layer>: <ErrorClass>: <reason>]`` after the layers
that did. Checksums are verified, so a bad one shows as ``BadChecksum``. It is
for logs, the CLI's ``decode`` command and the demo, not for the hot path.

IPv6 extension headers get one part each. Hop-by-hop and destination options
list every option TLV, padding included (``HBH RouterAlert: MLD, PadN len 0``);
a Router Alert option whose length is not 2 is ``Malformed`` (RFC 2711 §2.1, and
Linux drops the packet). MLDv2 reports (ICMPv6 type 143) are decoded by ``mld``.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

from .arp import ArpRepr
from .errors import Malformed, WireError
from .ethernet import EthernetFrame, EthernetRepr, EtherType
from .icmpv4 import parse_icmpv4
from .icmpv6 import Icmpv6Type, parse_icmpv6
from .ip import IpProtocol, protocol_name
from .ipv4 import Ipv4Packet, Ipv4Repr
from .ipv6 import Ipv6FragmentRepr, Ipv6OptionsRepr, Ipv6Packet, Ipv6Repr, Ipv6RoutingRepr
from .mld import Mldv2Report
from .tcp import TcpRepr
from .udp import UdpRepr

__all__ = ["describe_frame"]

# RFC 8200 §4.2 option types, and RFC 2711 §2.1 Router Alert: 2 octets of value.
_OPTION_PAD1 = 0
_OPTION_PADN = 1
_OPTION_ROUTER_ALERT = 5
_ROUTER_ALERT_VALUE = struct.Struct("!H")
_ROUTER_ALERT_NAMES: dict[int, str] = {0: "MLD", 1: "RSVP", 2: "Active Networks"}  # RFC 2711 §2.1
# tcpdump's names for the two options headers.
_OPTIONS_HEADER_NAMES: dict[int, str] = {IpProtocol.HOPOPT: "HBH", IpProtocol.IPV6_OPTS: "DSTOPT"}
_EXTENSION_UNIT = 8  # RFC 8200 §4.3-§4.4: Hdr Ext Len counts 8 octets after the first 8


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
    payload = packet.payload
    offset = 0  # of the header in the IPv6 payload; the walk above checked every length
    for header in chain.headers:
        if isinstance(header, Ipv6FragmentRepr):
            parts.append(str(header))
            offset += header.header_len
            continue
        length = (payload[offset + 1] + 1) * _EXTENSION_UNIT
        if isinstance(header, Ipv6OptionsRepr):
            parts.append(_describe_options(header, payload[offset : offset + length]))
        else:
            parts.append(_describe_routing(header))
        offset += length
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
        if data[:1] == bytes((Icmpv6Type.MLDV2_REPORT,)):
            parts.append(str(Mldv2Report.parse(data, src, dst)))
        else:
            parts.append(str(parse_icmpv6(data, src, dst)))


def _describe_options(header: Ipv6OptionsRepr, raw: memoryview) -> str:
    """``HBH RouterAlert: MLD, PadN len 0, next-header icmpv6 (58)``.

    ``raw`` is the whole header. ``header.options`` leaves padding out, so the
    TLVs are read again from ``raw`` (RFC 8200 §4.2: type, data length, data;
    Pad1 is a lone zero octet).
    """
    options: list[str] = []
    position = 2  # after next header and Hdr Ext Len
    while position < len(raw):
        option_type = raw[position]
        if option_type == _OPTION_PAD1:
            options.append("Pad1")
            position += 1
            continue
        if position + 2 > len(raw) or position + 2 + raw[position + 1] > len(raw):
            raise Malformed(f"IPv6 option at header offset {position} overruns its header")
        length = raw[position + 1]
        if option_type == _OPTION_PADN:
            options.append(f"PadN len {length}")
        elif option_type == _OPTION_ROUTER_ALERT:
            if length != _ROUTER_ALERT_VALUE.size:
                raise Malformed(f"IPv6 Router Alert option of {length} octets, not 2")
            value: int = _ROUTER_ALERT_VALUE.unpack_from(raw, position + 2)[0]
            options.append(f"RouterAlert: {_ROUTER_ALERT_NAMES.get(value, f'value {value}')}")
        else:
            options.append(f"unknown type 0x{option_type:02x} len {length}")
        position += 2 + length
    name = _OPTIONS_HEADER_NAMES.get(header.header_type, f"options {header.header_type}")
    return f"{name} {', '.join(options)}, {_next_header(header.next_header)}"


def _describe_routing(header: Ipv6RoutingRepr) -> str:
    return (f"RT type {header.routing_type}, segments left {header.segments_left}, "
            f"{_next_header(header.next_header)}")


def _next_header(number: int) -> str:
    return f"next-header {protocol_name(number)} ({number})"
