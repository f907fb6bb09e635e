"""Longest-prefix-match routing for IPv4 and IPv6 (sans-IO).

Contract:
- :meth:`RouteTable.lookup` returns the route with the longest prefix containing
  the destination (RFC 1812 §5.2.4.3, "longest match"), and among routes with that
  prefix the lowest ``metric`` (ties: the first added). It costs one dict probe per
  *distinct prefix length* in the family's table: routes live in per-length dicts
  keyed by the masked network integer, never in a list that is scanned.
- IPv4 and IPv6 live in separate tables: an address of one family never matches a
  route of the other (``lookup`` returns ``None``).
- :meth:`RouteTable.next_hop` is the address to resolve with ARP/NDP: the route's
  gateway, or ``dst`` itself for an on-link route (``gateway is None``), or
  ``None`` when nothing matches (the caller answers ICMP "network unreachable").
- A route with a gateway (including the default route added by
  :meth:`RouteTable.add_default_gateway`) is only accepted when the gateway lies in
  a connected network (added by :meth:`RouteTable.add_connected`), else
  ``ValueError`` naming the gateway: we have no recursive next-hop resolution, so
  an unreachable gateway could never be resolved. IPv6 link-local gateways
  (fe80::/10, how RFC 4861 routers advertise themselves) are on-link by definition
  and always accepted. Removing a connected route does not remove gateway routes
  that depended on it.
- :meth:`RouteTable.is_broadcast` (IPv4 only): 255.255.255.255 and the directed
  broadcast address of every connected network except /31 (RFC 3021: a /31 has no
  broadcast, both addresses are hosts) and /32 (a single host).
  :meth:`RouteTable.is_network_address`: the all-zeros host address of a connected
  network, likewise not for the two longest prefix lengths (/31 and /32, or /127
  per RFC 6164 and /128); for IPv6 that is the subnet-router anycast address
  (RFC 4291 §2.6.1), which must not be used as a source either.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_network,
)

__all__ = ["Address", "Network", "Route", "RouteTable"]

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

_LIMITED_BROADCAST = int(IPv4Address("255.255.255.255"))
_IPV6_LINK_LOCAL = IPv6Network("fe80::/10")


@dataclass(frozen=True, slots=True)
class Route:
    """One route: ``network`` via ``gateway`` (``None``: on-link, directly connected)."""

    network: Network
    gateway: Address | None
    metric: int = 0

    def __str__(self) -> str:
        via = f"via {self.gateway}" if self.gateway is not None else "on-link"
        return f"{self.network} {via} metric {self.metric}"


class _FamilyTable:
    """The routes of one address family, indexed by prefix length then masked network."""

    __slots__ = ("_by_len", "_lengths", "_masks", "_order", "connected", "max_len")

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        full = (1 << max_len) - 1
        self._masks = [full ^ ((1 << (max_len - n)) - 1) for n in range(max_len + 1)]
        # prefix length -> masked network int -> routes sorted by metric (stable).
        self._by_len: dict[int, dict[int, list[Route]]] = {}
        self._lengths: list[int] = []  # distinct prefix lengths, longest first
        self._order = 0
        # Connected networks (a network added twice is counted twice).
        self.connected: dict[Network, int] = {}

    def add(self, route: Route) -> None:
        net = route.network
        plen = net.prefixlen
        bucket = self._by_len.get(plen)
        if bucket is None:
            bucket = self._by_len[plen] = {}
            self._lengths.append(plen)
            self._lengths.sort(reverse=True)
        key = int(net.network_address)
        routes = bucket.setdefault(key, [])
        # The same (network, gateway) replaces the old entry: a metric change.
        routes[:] = [r for r in routes if r.gateway != route.gateway]
        routes.append(route)
        routes.sort(key=lambda r: r.metric)  # stable: equal metrics keep insertion order

    def remove(self, net: Network, gateway: Address | None) -> list[Route]:
        bucket = self._by_len.get(net.prefixlen)
        key = int(net.network_address)
        routes = bucket.get(key) if bucket is not None else None
        if bucket is None or routes is None:
            return []
        removed = [r for r in routes if r.gateway == gateway]
        if not removed:
            return []
        routes[:] = [r for r in routes if r.gateway != gateway]
        if not routes:
            del bucket[key]
            if not bucket:
                del self._by_len[net.prefixlen]
                self._lengths.remove(net.prefixlen)
        return removed

    def lookup(self, dst: int) -> Route | None:
        masks = self._masks
        by_len = self._by_len
        for plen in self._lengths:
            routes = by_len[plen].get(dst & masks[plen])
            if routes:
                return routes[0]
        return None

    def routes(self) -> list[Route]:
        return [r for plen in self._lengths for rs in self._by_len[plen].values() for r in rs]

    def on_link(self, addr: Address) -> bool:
        return any(addr in net for net in self.connected)


class RouteTable:
    """Routes of both families; see the module docstring for the contract."""

    __slots__ = ("_broadcasts", "_network_addresses", "_v4", "_v6", "generation")

    def __init__(self) -> None:
        # Bumped by every change: a cached lookup result is still good while it is the
        # same (the IP layer's frame paths check one int instead of a lookup).
        self.generation = 0
        self._v4 = _FamilyTable(32)
        self._v6 = _FamilyTable(128)
        # Integers (per family) derived from the connected networks, for O(1) checks.
        self._broadcasts: set[int] = {_LIMITED_BROADCAST}
        self._network_addresses: tuple[set[int], set[int]] = (set(), set())

    def _family(self, version: int) -> _FamilyTable:
        return self._v4 if version == 4 else self._v6

    # -- changes --------------------------------------------------------------

    def add_connected(self, interface: IPv4Interface | IPv6Interface) -> Route:
        """Add the on-link route for the network of ``interface`` (e.g. 198.18.0.1/24)."""
        net: Network = interface.network
        table = self._family(net.version)
        table.connected[net] = table.connected.get(net, 0) + 1
        self._rebuild_special()
        route = Route(net, None, 0)
        table.add(route)
        self.generation += 1
        return route

    def add_route(self, network: Network | str, gateway: Address | None = None,
                  metric: int = 0) -> Route:
        """Add (or change the metric of) ``network`` via ``gateway`` (``None``: on-link).

        ``network`` may be a string ("198.18.1.0/24"); host bits must be zero.
        Raises ``ValueError`` on a family mismatch or an unreachable gateway.
        """
        net = ip_network(network) if isinstance(network, str) else network
        table = self._family(net.version)
        if gateway is not None:
            if gateway.version != net.version:
                raise ValueError(f"gateway {gateway} is not of the family of {net}")
            if not (table.on_link(gateway) or gateway in _IPV6_LINK_LOCAL):
                raise ValueError(
                    f"gateway {gateway} is not reachable through a connected route")
        route = Route(net, gateway, metric)
        table.add(route)
        self.generation += 1
        return route

    def add_default_gateway(self, gateway: Address, metric: int = 0) -> Route:
        """Add the default route (0.0.0.0/0 or ::/0) via ``gateway``."""
        default: Network = IPv4Network((0, 0)) if gateway.version == 4 else IPv6Network((0, 0))
        return self.add_route(default, gateway, metric)

    def remove(self, network: Network | str, gateway: Address | None = None) -> Route:
        """Remove the route to ``network`` via ``gateway`` (``None``: the on-link route).

        Returns the removed route; raises ``KeyError`` when there is none.
        """
        net = ip_network(network) if isinstance(network, str) else network
        table = self._family(net.version)
        removed = table.remove(net, gateway)
        self.generation += 1
        if not removed:
            via = gateway if gateway is not None else "on-link"
            raise KeyError(f"no route {net} via {via}")
        if gateway is None and net in table.connected:
            count = table.connected[net] - 1
            if count:
                table.connected[net] = count
                table.add(removed[0])  # still connected through another interface address
            else:
                del table.connected[net]
            self._rebuild_special()
        return removed[0]

    def _rebuild_special(self) -> None:
        self._broadcasts = {_LIMITED_BROADCAST}
        v4_nets: set[int] = set()
        v6_nets: set[int] = set()
        for net in self._v4.connected:
            if net.prefixlen <= 30:
                self._broadcasts.add(int(net.broadcast_address))
                v4_nets.add(int(net.network_address))
        for net6 in self._v6.connected:
            if net6.prefixlen <= 126:
                v6_nets.add(int(net6.network_address))
        self._network_addresses = (v4_nets, v6_nets)

    # -- queries --------------------------------------------------------------

    def lookup(self, dst: Address) -> Route | None:
        """The best route to ``dst`` (longest prefix, then lowest metric), or ``None``."""
        return self._family(dst.version).lookup(int(dst))

    def next_hop(self, dst: Address) -> Address | None:
        """The address to resolve for ``dst``: the gateway, ``dst`` if on-link, or ``None``."""
        route = self._family(dst.version).lookup(int(dst))
        if route is None:
            return None
        return route.gateway if route.gateway is not None else dst

    def routes(self) -> list[Route]:
        """All routes, IPv4 first, longest prefixes first, then by metric."""
        return self._v4.routes() + self._v6.routes()

    def connected_networks(self) -> list[Network]:
        """The networks added with :meth:`add_connected` (IPv4 first)."""
        return [*self._v4.connected, *self._v6.connected]

    def is_broadcast(self, addr: Address) -> bool:
        """True for 255.255.255.255 and the directed broadcast of a connected IPv4
        network (not /31, RFC 3021, nor /32). Always False for IPv6 (no broadcast)."""
        return addr.version == 4 and int(addr) in self._broadcasts

    def is_network_address(self, addr: Address) -> bool:
        """True for the all-zeros host address of a connected network (not /31, /32,
        /127, /128: there every address is a host)."""
        return int(addr) in self._network_addresses[0 if addr.version == 4 else 1]

    def __len__(self) -> int:
        return len(self.routes())

    def __repr__(self) -> str:
        return f"RouteTable({', '.join(str(r) for r in self.routes())})"
