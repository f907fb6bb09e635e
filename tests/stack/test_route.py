"""RouteTable: longest prefix match, metrics, default routes, broadcast/network addresses."""

from __future__ import annotations

from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)

import pytest

from ethox_asyncio.stack.route import Route, RouteTable

A4 = IPv4Address
A6 = IPv6Address


@pytest.fixture
def table() -> RouteTable:
    t = RouteTable()
    t.add_connected(IPv4Interface("198.18.0.1/24"))
    t.add_connected(IPv6Interface("fd00::1/64"))
    return t


def test_connected_on_link(table: RouteTable) -> None:
    assert table.lookup(A4("198.18.0.7")) == Route(IPv4Network("198.18.0.0/24"), None, 0)
    assert table.next_hop(A4("198.18.0.7")) == A4("198.18.0.7")
    assert table.next_hop(A6("fd00::9")) == A6("fd00::9")
    assert table.next_hop(A4("198.19.0.1")) is None
    assert table.lookup(A6("fd01::1")) is None


def test_longest_prefix_wins_regardless_of_insertion_order(table: RouteTable) -> None:
    gw1, gw2, gw3 = A4("198.18.0.254"), A4("198.18.0.253"), A4("198.18.0.252")
    table.add_route(IPv4Network("198.18.128.0/24"), gw3)
    table.add_route(IPv4Network("198.18.0.0/15"), gw1)
    table.add_route(IPv4Network("198.18.128.0/17"), gw2)
    table.add_default_gateway(A4("198.18.0.200"))
    assert table.next_hop(A4("198.18.128.5")) == gw3
    assert table.next_hop(A4("198.18.129.5")) == gw2
    assert table.next_hop(A4("198.19.1.1")) == gw1
    assert table.next_hop(A4("198.18.0.9")) == A4("198.18.0.9")  # /24 beats /15
    assert table.next_hop(A4("8.8.8.8")) == A4("198.18.0.200")
    assert table.next_hop(A4("255.255.255.255")) == A4("198.18.0.200")


def test_metric_tie_break_and_metric_change(table: RouteTable) -> None:
    net = IPv4Network("203.0.113.0/24")
    table.add_route(net, A4("198.18.0.10"), metric=20)
    table.add_route(net, A4("198.18.0.11"), metric=10)
    table.add_route(net, A4("198.18.0.12"), metric=10)  # equal metric: first added wins
    assert table.next_hop(A4("203.0.113.1")) == A4("198.18.0.11")
    table.add_route(net, A4("198.18.0.10"), metric=5)  # same gateway: metric changed
    assert table.next_hop(A4("203.0.113.1")) == A4("198.18.0.10")
    assert sum(r.network == net for r in table.routes()) == 3
    # A longer prefix beats a lower metric.
    table.add_route(IPv4Network("203.0.113.128/25"), A4("198.18.0.99"), metric=1000)
    assert table.next_hop(A4("203.0.113.200")) == A4("198.18.0.99")


def test_default_route_v4_and_v6(table: RouteTable) -> None:
    r4 = table.add_default_gateway(A4("198.18.0.254"))
    r6 = table.add_default_gateway(A6("fd00::fe"))
    assert r4.network == IPv4Network("0.0.0.0/0")
    assert r6.network == IPv6Network("::/0")
    assert table.next_hop(A4("1.2.3.4")) == A4("198.18.0.254")
    assert table.next_hop(A6("2001:db8::1")) == A6("fd00::fe")
    assert table.next_hop(A6("fd00::5")) == A6("fd00::5")


def test_gateway_must_be_reachable(table: RouteTable) -> None:
    with pytest.raises(ValueError, match=r"198\.19\.0\.1"):
        table.add_default_gateway(A4("198.19.0.1"))
    with pytest.raises(ValueError, match="fd01::1"):
        table.add_default_gateway(A6("fd01::1"))
    with pytest.raises(ValueError, match=r"10\.0\.0\.1"):
        table.add_route(IPv4Network("203.0.113.0/24"), A4("10.0.0.1"))
    with pytest.raises(ValueError, match="family"):
        table.add_route(IPv6Network("2001:db8::/32"), A4("198.18.0.1"))
    # Link-local IPv6 routers are on-link by definition (RFC 4861).
    table.add_default_gateway(A6("fe80::1"))
    assert table.next_hop(A6("2001:db8::1")) == A6("fe80::1")
    assert RouteTable().lookup(A4("1.1.1.1")) is None


def test_slash31_and_slash32() -> None:
    t = RouteTable()
    t.add_connected(IPv4Interface("198.18.5.0/31"))
    t.add_connected(IPv4Interface("198.18.6.1/32"))
    # RFC 3021: both addresses of a /31 are hosts.
    assert not t.is_broadcast(A4("198.18.5.1"))
    assert not t.is_network_address(A4("198.18.5.0"))
    assert t.next_hop(A4("198.18.5.1")) == A4("198.18.5.1")
    assert t.next_hop(A4("198.18.5.2")) is None
    assert not t.is_broadcast(A4("198.18.6.1"))
    assert not t.is_network_address(A4("198.18.6.1"))
    assert t.next_hop(A4("198.18.6.1")) == A4("198.18.6.1")
    assert t.next_hop(A4("198.18.6.2")) is None
    assert t.is_broadcast(A4("255.255.255.255"))
    # /31 gateway is reachable.
    t.add_default_gateway(A4("198.18.5.1"))
    assert t.next_hop(A4("9.9.9.9")) == A4("198.18.5.1")


def test_broadcast_and_network_addresses(table: RouteTable) -> None:
    table.add_connected(IPv4Interface("198.18.64.9/18"))
    assert table.is_broadcast(A4("255.255.255.255"))
    assert table.is_broadcast(A4("198.18.0.255"))
    assert table.is_broadcast(A4("198.18.127.255"))
    assert not table.is_broadcast(A4("198.18.0.254"))
    assert not table.is_broadcast(A4("198.18.1.255"))  # not connected as a /24
    assert table.is_network_address(A4("198.18.0.0"))
    assert table.is_network_address(A4("198.18.64.0"))
    assert not table.is_network_address(A4("198.18.0.1"))
    # A routed (not connected) network has no broadcast we know of.
    table.add_route(IPv4Network("203.0.113.0/24"), A4("198.18.0.1"))
    assert not table.is_broadcast(A4("203.0.113.255"))
    # IPv6: no broadcast; subnet-router anycast is the network address.
    assert not table.is_broadcast(A6("fd00::ffff:ffff:ffff:ffff"))
    assert table.is_network_address(A6("fd00::"))
    assert not table.is_network_address(A6("fd00::1"))
    t = RouteTable()
    t.add_connected(IPv6Interface("fd00::1/127"))
    assert not t.is_network_address(A6("fd00::"))


def test_families_never_match() -> None:
    t = RouteTable()
    t.add_connected(IPv4Interface("0.0.0.1/0"))  # all of IPv4 on-link
    assert t.lookup(A6("::1")) is None
    assert t.lookup(A6("::ffff:1.2.3.4")) is None
    t2 = RouteTable()
    t2.add_connected(IPv6Interface("::1/0"))
    assert t2.lookup(A4("1.2.3.4")) is None
    # The integer 0 in both families: the v4 network address is not a v6 one.
    t.add_connected(IPv4Interface("0.0.0.1/8"))
    assert t.is_network_address(A4("0.0.0.0"))
    assert not t.is_network_address(A6("::"))


def test_remove(table: RouteTable) -> None:
    net = IPv4Network("203.0.113.0/24")
    table.add_route(net, A4("198.18.0.10"), metric=1)
    table.add_route(net, A4("198.18.0.11"), metric=2)
    removed = table.remove(net, A4("198.18.0.10"))
    assert removed.gateway == A4("198.18.0.10")
    assert table.next_hop(A4("203.0.113.1")) == A4("198.18.0.11")
    table.remove("203.0.113.0/24", A4("198.18.0.11"))
    assert table.lookup(A4("203.0.113.1")) is None
    with pytest.raises(KeyError):
        table.remove(net, A4("198.18.0.11"))
    with pytest.raises(KeyError):
        table.remove(net)  # no on-link route to it
    # Removing a connected network removes its broadcast/network addresses too.
    table.remove(IPv4Network("198.18.0.0/24"))
    assert table.lookup(A4("198.18.0.1")) is None
    assert not table.is_broadcast(A4("198.18.0.255"))
    assert not table.is_network_address(A4("198.18.0.0"))
    with pytest.raises(ValueError):
        table.add_default_gateway(A4("198.18.0.254"))
    assert [r.network for r in table.routes()] == [IPv6Network("fd00::/64")]


def test_connected_twice_needs_two_removals() -> None:
    t = RouteTable()
    t.add_connected(IPv4Interface("198.18.0.1/24"))
    t.add_connected(IPv4Interface("198.18.0.2/24"))
    assert len(t) == 1
    t.remove(IPv4Network("198.18.0.0/24"))
    assert t.is_broadcast(A4("198.18.0.255"))
    assert t.next_hop(A4("198.18.0.9")) == A4("198.18.0.9")
    t.remove(IPv4Network("198.18.0.0/24"))
    assert t.lookup(A4("198.18.0.9")) is None
    assert t.connected_networks() == []


def test_routes_listing_order(table: RouteTable) -> None:
    table.add_default_gateway(A4("198.18.0.1"))
    table.add_route(IPv4Network("203.0.113.0/24"), A4("198.18.0.2"))
    table.add_route("198.51.100.0/22")
    listed = [str(r.network) for r in table.routes()]
    assert listed == ["198.18.0.0/24", "203.0.113.0/24", "198.51.100.0/22", "0.0.0.0/0",
                      "fd00::/64"]
    assert "via 198.18.0.1" in repr(table)


def test_every_change_bumps_the_generation(table: RouteTable) -> None:
    # The IP layer's cached frame paths stay valid while the generation is the same.
    seen = [table.generation]
    table.add_connected(IPv4Interface("198.18.4.1/24"))
    seen.append(table.generation)
    table.add_route("198.18.8.0/24", IPv4Address("198.18.4.254"))
    seen.append(table.generation)
    table.remove("198.18.8.0/24", IPv4Address("198.18.4.254"))
    seen.append(table.generation)
    table.lookup(IPv4Address("198.18.4.7"))
    assert seen == sorted(set(seen)) and table.generation == seen[-1]


def test_a_route_change_renews_the_cached_frame_path() -> None:
    from tests.stack.test_interface import Wire

    wire = Wire()
    sender = wire.a.udp.bind(IPv4Address("198.18.0.1"), 40000, family=4)
    wire.a.send_udp(sender, b"x", IPv4Address("198.18.0.2"), 7, wire.now)
    wire.run(until=0.05)  # ARP resolved
    ip = wire.a.ipv4
    src, dst = int(IPv4Address("198.18.0.1")), int(IPv4Address("198.18.0.2"))
    first = ip.path(src, dst, 6, wire.now)
    assert first is not None and ip.path(src, dst, 6, wire.now) is first
    wire.a.routes.add_route("198.18.9.0/24", IPv4Address("198.18.0.2"))
    renewed = ip.path(src, dst, 6, wire.now)
    assert renewed is not None and renewed is not first
