"""UDP endpoint table: bind/connect semantics of the Linux kernel, demultiplexing only.

Contract:
- :meth:`UdpTable.bind` reserves ``(address, port)`` for one :class:`UdpEndpoint`.
  A binding conflicts with an existing one of the same family on the same port
  when the addresses overlap (equal, or either is the unspecified address
  0.0.0.0 / ::), unless *both* set ``reuse_port`` (SO_REUSEPORT). Conflicts raise
  ``OSError(errno.EADDRINUSE, "... address:port ...")``.
- Port 0 allocates an ephemeral port as Linux does: a random start inside
  ``ephemeral_range`` (net.ipv4.ip_local_port_range, default 32768..60999), then
  a linear probe with wrap-around. An ephemeral port is never shared with an
  existing SO_REUSEPORT group (it must be free of any overlapping binding), so two
  port-0 binds never end up on the same port by chance. When no port is free,
  EADDRINUSE names the range.
- IPv4 and IPv6 are separate namespaces: we have no dual-stack sockets
  (every IPv6 endpoint behaves as IPV6_V6ONLY=1), so ``[::]:53`` does not take
  ``0.0.0.0:53`` and never receives IPv4 datagrams.
- :meth:`UdpTable.connect` sets the remote; an endpoint bound to the unspecified
  address should first get its source via :meth:`UdpEndpoint.set_local_address`
  (the kernel does the same on connect()). An endpoint connected with a wildcard
  local address still works, ranked below an exact local match.
- :meth:`UdpTable.lookup` does at most four dict lookups, in the order of the
  kernel's socket score (net/ipv4/udp.c ``compute_score``): connected with the
  exact local address, connected on the wildcard, bound to the specific local
  address, bound to the wildcard. Among SO_REUSEPORT sockets in one slot, the
  socket is chosen by a deterministic hash of the 4-tuple, so a flow always lands
  on the same socket while the group is unchanged (adding or removing a member
  may move flows, as in Linux).
- Broadcast/multicast fan-out to every matching socket is not done here.
- Bad arguments raise ``ValueError`` naming the value: a port outside
  0..65535, an address of the other family, a family other than 4 or 6.
"""

from __future__ import annotations

import errno
import random
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address

__all__ = ["DEFAULT_EPHEMERAL_RANGE", "IpAddress", "UdpEndpoint", "UdpTable", "flow_hash"]

IpAddress = IPv4Address | IPv6Address

# Linux net.ipv4.ip_local_port_range default (also used for IPv6).
DEFAULT_EPHEMERAL_RANGE = (32768, 60999)

_UNSPECIFIED: dict[int, IpAddress] = {4: IPv4Address(0), 6: IPv6Address(0)}
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / phi, the splitmix64 increment

_BoundKey = tuple[IpAddress, int]
_ConnectedKey = tuple[IpAddress, int, IpAddress, int]


class UdpEndpoint:
    """One bound UDP socket as the stack sees it; hashed and compared by identity.

    ``local`` is ``(address, port)`` (the address may be unspecified), ``remote``
    is ``(address, port)`` once connected, else ``None``. ``owner`` is opaque to
    the stack: the transport stores itself there.
    """

    __slots__ = ("_key", "_table", "family", "local", "owner", "remote", "reuse_port")

    def __init__(self, table: UdpTable, family: int, local: tuple[IpAddress, int],
                 reuse_port: bool, owner: object) -> None:
        self._table: UdpTable | None = table
        self._key: _BoundKey | _ConnectedKey | None = None
        self.family = family
        self.local = local
        self.remote: tuple[IpAddress, int] | None = None
        self.reuse_port = reuse_port
        self.owner = owner

    @property
    def bound(self) -> bool:
        """False once :meth:`UdpTable.unbind` removed the endpoint."""
        return self._table is not None

    def set_local_address(self, address: IpAddress | str) -> None:
        """Pin the source address of an endpoint bound to the unspecified address.

        Called before :meth:`UdpTable.connect` with the source the route chose.
        Like the kernel's rehash on connect(), this does not re-check conflicts:
        the port is already ours on every address of the family.
        """
        table = self._require_table()
        new = _address(address, self.family)
        if new.is_unspecified:
            raise ValueError(f"set_local_address needs a specific address, not {new}")
        current = self.local[0]
        if not current.is_unspecified and current != new:
            raise ValueError(f"endpoint is already bound to {_fmt(current, self.local[1])}")
        table._reindex(self, local=(new, self.local[1]), remote=self.remote)

    def _require_table(self) -> UdpTable:
        if self._table is None:
            raise ValueError(f"UDP endpoint {_fmt(*self.local)} is not bound")
        return self._table

    def __repr__(self) -> str:
        remote = f" -> {_fmt(*self.remote)}" if self.remote is not None else ""
        flags = " reuse_port" if self.reuse_port else ""
        state = "" if self.bound else " unbound"
        return f"<UdpEndpoint {_fmt(*self.local)}{remote}{flags}{state}>"


class UdpTable:
    """All UDP endpoints of one stack, indexed for O(1) demultiplexing."""

    def __init__(self, *, ephemeral_range: tuple[int, int] = DEFAULT_EPHEMERAL_RANGE,
                 rng: random.Random | None = None) -> None:
        low, high = ephemeral_range
        if not 1 <= low <= high <= 0xFFFF:
            raise ValueError(f"ephemeral_range {low}..{high} must lie within 1..65535")
        self.ephemeral_range = (low, high)
        self._rng = rng if rng is not None else random.Random()
        # (family, port) -> every endpoint on that port: conflict checks and allocation.
        self._by_port: dict[tuple[int, int], list[UdpEndpoint]] = {}
        # Demultiplexing slots; a list holds one socket, or a SO_REUSEPORT group.
        self._bound: dict[_BoundKey, list[UdpEndpoint]] = {}
        self._connected: dict[_ConnectedKey, list[UdpEndpoint]] = {}
        self._count = 0

    # --- user calls ---------------------------------------------------------------

    def bind(self, address: IpAddress | str, port: int, *, family: int,
             reuse_port: bool = False, owner: object = None) -> UdpEndpoint:
        """Reserve ``(address, port)``; port 0 picks a free ephemeral port."""
        _check_family(family)
        local = _address(address, family)
        _check_port(port)
        if port == 0:
            port = self._allocate(family, local)
        else:
            self._check_conflict(family, local, port, reuse_port)
        endpoint = UdpEndpoint(self, family, (local, port), reuse_port, owner)
        self._by_port.setdefault((family, port), []).append(endpoint)
        self._insert(endpoint)
        self._count += 1
        return endpoint

    def connect(self, endpoint: UdpEndpoint, address: IpAddress | str, port: int) -> None:
        """Set the remote of ``endpoint``; it then only receives from that peer."""
        self._own(endpoint)
        remote = _address(address, endpoint.family)
        _check_port(port)
        if remote.is_unspecified:
            raise ValueError(f"cannot connect to the unspecified address {remote}")
        self._reindex(endpoint, local=endpoint.local, remote=(remote, port))

    def disconnect(self, endpoint: UdpEndpoint) -> None:
        """Forget the remote (connect(AF_UNSPEC)); the local address stays as pinned."""
        self._own(endpoint)
        self._reindex(endpoint, local=endpoint.local, remote=None)

    def unbind(self, endpoint: UdpEndpoint) -> None:
        """Release the endpoint's port; unbinding twice is a no-op."""
        if endpoint._table is None:
            return
        self._own(endpoint)
        self._remove(endpoint)
        peers = self._by_port[(endpoint.family, endpoint.local[1])]
        peers.remove(endpoint)
        if not peers:
            del self._by_port[(endpoint.family, endpoint.local[1])]
        endpoint._table = None
        self._count -= 1

    # --- demultiplexing -----------------------------------------------------------

    def lookup(self, family: int, dst: IpAddress, dst_port: int, src: IpAddress,
               src_port: int) -> UdpEndpoint | None:
        """The endpoint that receives a datagram ``src:src_port -> dst:dst_port``."""
        connected = self._connected
        if connected:
            group = connected.get((dst, dst_port, src, src_port))
            if group is None:
                group = connected.get((_UNSPECIFIED[family], dst_port, src, src_port))
            if group is not None:
                return _pick(group, dst, dst_port, src, src_port)
        bound = self._bound
        group = bound.get((dst, dst_port))
        if group is None:
            group = bound.get((_UNSPECIFIED[family], dst_port))
            if group is None:
                return None
        return _pick(group, dst, dst_port, src, src_port)

    def endpoints(self) -> Iterator[UdpEndpoint]:
        """Every bound endpoint (in no particular order)."""
        for group in self._by_port.values():
            yield from group

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"<UdpTable {self._count} endpoints>"

    # --- internals ----------------------------------------------------------------

    def _own(self, endpoint: UdpEndpoint) -> None:
        if endpoint._require_table() is not self:
            raise ValueError(f"{endpoint!r} belongs to another UdpTable")

    def _conflicts(self, family: int, address: IpAddress, port: int,
                   reuse_port: bool) -> UdpEndpoint | None:
        for other in self._by_port.get((family, port), ()):
            other_address = other.local[0]
            overlap = (other_address == address or other_address.is_unspecified
                       or address.is_unspecified)
            if overlap and not (reuse_port and other.reuse_port):
                return other
        return None

    def _check_conflict(self, family: int, address: IpAddress, port: int,
                        reuse_port: bool) -> None:
        other = self._conflicts(family, address, port, reuse_port)
        if other is not None:
            raise OSError(errno.EADDRINUSE,
                          f"address already in use: {_fmt(address, port)} "
                          f"(held by {_fmt(*other.local)})")

    def _allocate(self, family: int, address: IpAddress) -> int:
        low, high = self.ephemeral_range
        count = high - low + 1
        start = self._rng.randrange(count)
        for step in range(count):
            port = low + (start + step) % count
            # reuse_port=False: an ephemeral port never joins an existing group.
            if self._conflicts(family, address, port, False) is None:
                return port
        raise OSError(errno.EADDRINUSE,
                      f"no free UDP port in the ephemeral range {low}..{high} "
                      f"for address {address}")

    def _reindex(self, endpoint: UdpEndpoint, *, local: tuple[IpAddress, int],
                 remote: tuple[IpAddress, int] | None) -> None:
        self._remove(endpoint)
        endpoint.local = local
        endpoint.remote = remote
        self._insert(endpoint)

    def _insert(self, endpoint: UdpEndpoint) -> None:
        address, port = endpoint.local
        if endpoint.remote is None:
            bound_key: _BoundKey = (address, port)
            self._bound.setdefault(bound_key, []).append(endpoint)
            endpoint._key = bound_key
        else:
            connected_key: _ConnectedKey = (address, port, *endpoint.remote)
            self._connected.setdefault(connected_key, []).append(endpoint)
            endpoint._key = connected_key

    def _remove(self, endpoint: UdpEndpoint) -> None:
        key = endpoint._key
        endpoint._key = None
        if key is None:
            return
        if len(key) == 2:
            bound_group = self._bound[key]
            bound_group.remove(endpoint)
            if not bound_group:
                del self._bound[key]
        else:
            connected_group = self._connected[key]
            connected_group.remove(endpoint)
            if not connected_group:
                del self._connected[key]


def _pick(group: list[UdpEndpoint], dst: IpAddress, dst_port: int, src: IpAddress,
          src_port: int) -> UdpEndpoint:
    if len(group) == 1:
        return group[0]
    # Scale a 64-bit flow hash onto the group (Linux reciprocal_scale).
    return group[(flow_hash(dst, dst_port, src, src_port) * len(group)) >> 64]


def flow_hash(dst: IpAddress, dst_port: int, src: IpAddress, src_port: int) -> int:
    """A deterministic 64-bit hash of a 4-tuple (splitmix64 finaliser over the fields).

    Python's ``hash()`` of addresses is salted per process; this one is stable across
    runs, so tests and traces reproduce.
    """
    a = int(src)
    b = int(dst)
    x = ((a ^ (a >> 64)) * _GOLDEN + (b ^ (b >> 64)) + ((src_port << 16) | dst_port)) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _check_family(family: int) -> None:
    if family not in (4, 6):
        raise ValueError(f"family must be 4 or 6, not {family!r}")


def _check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port!r} out of range 0..65535")


def _address(address: IpAddress | str, family: int) -> IpAddress:
    parsed = address if isinstance(address, IPv4Address | IPv6Address) else ip_address(address)
    if parsed.version != family:
        raise ValueError(f"address {parsed} is IPv{parsed.version}, the endpoint is IPv{family}")
    return parsed


def _fmt(address: IpAddress, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
