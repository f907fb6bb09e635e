"""Every drop and every ignored message is counted once, under its documented name.

DESIGN.md: "Counters (stats) for every drop reason, like netstat -s". Each case sends
the same frame twice and checks that its counter moved by exactly two: a counter that
is renamed, overwritten or counted twice fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import pytest

from ethox_asyncio.stack.wire.arp import ArpOperation
from ethox_asyncio.stack.wire.ethernet import BROADCAST, EthernetAddress, EtherType
from ethox_asyncio.stack.wire.icmpv4 import Icmpv4EchoRequest, Icmpv4ParamProblem
from ethox_asyncio.stack.wire.icmpv6 import Icmpv6ParamProblem
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ndisc import (
    NeighborAdvert,
    NeighborSolicit,
    RouterAdvert,
)
from tests.stack.test_answers import (
    OTHER_MAC,
    OUR_IP,
    OUR_IP6,
    OUR_MAC,
    OUR_SOLICITED_NODE,
    PEER_IP,
    PEER_IP6,
    PEER_MAC,
    Link,
    arp_frame,
    ethernet,
    icmpv4_bytes,
    icmpv6_bytes,
    ip_frame,
    ipv4_packet,
    ipv6_packet,
    ndp_frame,
    udp_packet,
)

ALL_NODES = IPv6Address("ff02::1")
ALL_NODES_MAC = EthernetAddress("33:33:00:00:00:01")


CASES: dict[str, Callable[[], bytes]] = {
    "drop_not_our_mac": lambda: ethernet(b"\x00" * 46, EtherType.IPV4, dst_mac=OTHER_MAC),
    "drop_ethertype": lambda: ethernet(b"\x00" * 46, 0x88B5),
    "drop_multicast_not_joined": lambda: ethernet(
        b"\x00" * 46, EtherType.IPV6, dst_mac=EthernetAddress("33:33:00:00:12:34")),
    "drop_ipv4_not_for_us": lambda: ip_frame(4, udp_packet(
        4, PEER_IP, IPv4Address("198.18.0.77"), b"x")),
    "drop_ipv4_protocol": lambda: ip_frame(4, ipv4_packet(PEER_IP, OUR_IP, 253, b"data")),
    "icmp_ignored": lambda: ip_frame(4, ipv4_packet(PEER_IP, OUR_IP, IpProtocol.ICMP,
                                                    icmpv4_bytes(Icmpv4ParamProblem(20)))),
    "icmp_echo_broadcast_ignored": lambda: ip_frame(4, ipv4_packet(
        PEER_IP, IPv4Address("198.18.0.255"), IpProtocol.ICMP,
        icmpv4_bytes(Icmpv4EchoRequest(1, 1, b"x"))), dst_mac=BROADCAST),
    "udp_no_port": lambda: ip_frame(4, udp_packet(4, PEER_IP, OUR_IP, b"x")),
    "arp_not_for_us": lambda: arp_frame(ArpOperation.REQUEST, OTHER_MAC,
                                        IPv4Address("198.18.0.66"), EthernetAddress(bytes(6)),
                                        IPv4Address("198.18.0.77")),
    "arp_reply_unsolicited": lambda: arp_frame(ArpOperation.REPLY, OTHER_MAC,
                                               IPv4Address("198.18.0.66"), OUR_MAC, OUR_IP,
                                               dst_mac=OUR_MAC),
    "drop_arp_bogus_sender": lambda: arp_frame(ArpOperation.REQUEST, OTHER_MAC, OUR_IP,
                                               EthernetAddress(bytes(6)), OUR_IP),
    "drop_ipv4_bogus_source": lambda: ip_frame(4, udp_packet(
        4, IPv4Address("224.0.0.9"), OUR_IP, b"x")),
    "drop_ipv6_not_for_us": lambda: ip_frame(6, udp_packet(
        6, PEER_IP6, IPv6Address("fd00::77"), b"x")),
    "drop_ipv6_bogus_source": lambda: ip_frame(6, udp_packet(
        6, IPv6Address("ff02::9"), OUR_IP6, b"x")),
    "ipv6_no_next_header": lambda: ip_frame(6, ipv6_packet(
        PEER_IP6, OUR_IP6, IpProtocol.IPV6_NONXT, b"")),
    "drop_ipv6_protocol": lambda: ip_frame(6, ipv6_packet(PEER_IP6, OUR_IP6, 253, b"data")),
    "drop_ndp_hop_limit": lambda: ethernet(ipv6_packet(
        PEER_IP6, OUR_IP6, IpProtocol.ICMPV6,
        icmpv6_bytes(NeighborSolicit(OUR_IP6, PEER_MAC), PEER_IP6, OUR_IP6), hop_limit=64),
        EtherType.IPV6),
    "ndp_router_ignored": lambda: ndp_frame(IPv6Address("fe80::1"), ALL_NODES,
                                            RouterAdvert(), dst_mac=ALL_NODES_MAC),
    "ndp_solicit_not_ours": lambda: ndp_frame(
        PEER_IP6, OUR_SOLICITED_NODE, NeighborSolicit(IPv6Address("fd00::77"), PEER_MAC),
        dst_mac=EthernetAddress("33:33:ff:00:00:02")),
    # A solicitation whose source link-layer address is a group address.
    "drop_ndp_bogus_source": lambda: ndp_frame(
        PEER_IP6, OUR_SOLICITED_NODE, NeighborSolicit(OUR_IP6, ALL_NODES_MAC),
        dst_mac=EthernetAddress("33:33:ff:00:00:02")),
    "ndp_advert_unsolicited": lambda: ndp_frame(
        IPv6Address("fd00::66"), OUR_IP6,
        NeighborAdvert(IPv6Address("fd00::66"), OTHER_MAC, solicited=True, override=True),
        dst_mac=OUR_MAC),
    "ndp_advert_for_our_address": lambda: ndp_frame(
        PEER_IP6, ALL_NODES, NeighborAdvert(OUR_IP6, OTHER_MAC, solicited=False,
                                            override=True), dst_mac=ALL_NODES_MAC),
    "icmpv6_ignored": lambda: ip_frame(6, ipv6_packet(PEER_IP6, OUR_IP6, IpProtocol.ICMPV6,
                                                      icmpv6_bytes(Icmpv6ParamProblem(0, 40),
                                                                   PEER_IP6, OUR_IP6))),
    "tcp_drop_not_unicast": lambda: ip_frame(4, ipv4_packet(
        PEER_IP, IPv4Address("198.18.0.255"), IpProtocol.TCP, bytes(20)), dst_mac=BROADCAST),
}


@pytest.mark.parametrize("counter", sorted(CASES))
def test_each_drop_is_counted_once_under_its_name(counter: str) -> None:
    link = Link()
    before = link.iface.stats[counter]
    for _ in range(2):
        link.send(CASES[counter]())
        link.pump()
    assert link.iface.stats[counter] - before == 2, dict(link.iface.stats)
