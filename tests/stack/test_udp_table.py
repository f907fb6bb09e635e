"""UdpTable: the kernel's bind/connect/lookup semantics, without sockets."""

from __future__ import annotations

import errno
import random
from collections import Counter
from ipaddress import IPv4Address, IPv6Address

import pytest

from ethox_asyncio.stack.udp import UdpEndpoint, UdpTable, flow_hash

A = IPv4Address("198.18.0.1")
B = IPv4Address("198.18.0.2")
PEER = IPv4Address("198.18.1.9")
ANY4 = IPv4Address("0.0.0.0")
A6 = IPv6Address("fd00::1")
PEER6 = IPv6Address("fd00::99")


def table(**kwargs: object) -> UdpTable:
    return UdpTable(rng=random.Random(1), **kwargs)  # type: ignore[arg-type]


def in_use(excinfo: pytest.ExceptionInfo[OSError]) -> str:
    assert excinfo.value.errno == errno.EADDRINUSE
    return str(excinfo.value)


# --- bind conflicts ---------------------------------------------------------------------

def test_bind_records_endpoint() -> None:
    t = table()
    owner = object()
    ep = t.bind("198.18.0.1", 53, family=4, owner=owner)
    assert ep.local == (A, 53) and ep.remote is None and ep.family == 4
    assert ep.owner is owner and not ep.reuse_port and ep.bound
    assert len(t) == 1 and list(t.endpoints()) == [ep]


def test_same_address_same_port_conflicts_and_names_it() -> None:
    t = table()
    t.bind(A, 53, family=4)
    with pytest.raises(OSError) as excinfo:
        t.bind(A, 53, family=4)
    assert "198.18.0.1:53" in in_use(excinfo)


@pytest.mark.parametrize(("first", "second"), [(ANY4, A), (A, ANY4), (ANY4, ANY4)])
def test_wildcard_overlaps_everything(first: IPv4Address, second: IPv4Address) -> None:
    t = table()
    t.bind(first, 53, family=4)
    with pytest.raises(OSError) as excinfo:
        t.bind(second, 53, family=4)
    in_use(excinfo)


def test_different_specific_addresses_share_a_port() -> None:
    t = table()
    t.bind(A, 53, family=4)
    t.bind(B, 53, family=4)
    t.bind(A, 54, family=4)
    assert len(t) == 3


def test_reuse_port_needs_both() -> None:
    t = table()
    t.bind(A, 53, family=4, reuse_port=True)
    with pytest.raises(OSError):
        t.bind(A, 53, family=4)  # new one without
    t2 = table()
    t2.bind(A, 53, family=4)
    with pytest.raises(OSError):
        t2.bind(A, 53, family=4, reuse_port=True)  # old one without
    t.bind(A, 53, family=4, reuse_port=True)
    t.bind(ANY4, 53, family=4, reuse_port=True)
    assert len(t) == 3


def test_ipv4_and_ipv6_are_separate() -> None:
    t = table()
    t.bind("::", 53, family=6)
    t.bind(ANY4, 53, family=4)  # no dual-stack: :: does not take IPv4 ports
    with pytest.raises(OSError) as excinfo:
        t.bind(A6, 53, family=6)
    assert "[fd00::1]:53" in in_use(excinfo)
    assert t.lookup(4, A, 53, PEER, 1000) is not None
    assert t.lookup(4, A, 53, PEER, 1000).family == 4  # type: ignore[union-attr]
    assert t.lookup(6, A6, 53, PEER6, 1000).family == 6  # type: ignore[union-attr]


# --- validation -------------------------------------------------------------------------

@pytest.mark.parametrize("port", [-1, 65536, 70000])
def test_port_out_of_range(port: int) -> None:
    with pytest.raises(ValueError, match=str(port)):
        table().bind(A, port, family=4)


def test_port_must_be_int() -> None:
    with pytest.raises(ValueError):
        table().bind(A, True, family=4)


def test_family_mismatch() -> None:
    t = table()
    with pytest.raises(ValueError, match="IPv6"):
        t.bind("::1", 53, family=4)
    with pytest.raises(ValueError, match="family"):
        t.bind(A, 53, family=5)
    ep = t.bind(A, 53, family=4)
    with pytest.raises(ValueError):
        t.connect(ep, PEER6, 53)
    with pytest.raises(ValueError, match="70000"):
        t.connect(ep, PEER, 70000)
    with pytest.raises(ValueError):
        t.connect(ep, ANY4, 53)


def test_bad_ephemeral_range() -> None:
    with pytest.raises(ValueError):
        UdpTable(ephemeral_range=(0, 10))
    with pytest.raises(ValueError):
        UdpTable(ephemeral_range=(20, 10))


# --- ephemeral ports --------------------------------------------------------------------

def test_ephemeral_ports_unique_and_in_range() -> None:
    t = table()
    ports = [t.bind(ANY4, 0, family=4).local[1] for _ in range(500)]
    assert len(set(ports)) == 500
    assert all(32768 <= p <= 60999 for p in ports)


def test_ephemeral_start_is_random() -> None:
    firsts = {UdpTable(rng=random.Random(seed)).bind(A, 0, family=4).local[1]
              for seed in range(10)}
    assert len(firsts) > 5


def test_ephemeral_skips_taken_and_never_joins_reuse_group() -> None:
    t = UdpTable(ephemeral_range=(5000, 5002), rng=random.Random(3))
    t.bind(ANY4, 5000, family=4, reuse_port=True)
    t.bind(A, 5001, family=4)
    ep = t.bind(A, 0, family=4, reuse_port=True)
    assert ep.local[1] == 5002
    # another specific address may share 5001/5002 (no overlap with A), never 5000
    assert t.bind(B, 0, family=4).local[1] in (5001, 5002)
    assert t.bind(B, 0, family=4).local[1] in (5001, 5002)
    with pytest.raises(OSError):
        t.bind(B, 0, family=4)


def test_ephemeral_exhaustion_names_range() -> None:
    t = UdpTable(ephemeral_range=(40000, 40003), rng=random.Random(0))
    ports = {t.bind(ANY4, 0, family=4).local[1] for _ in range(4)}
    assert ports == {40000, 40001, 40002, 40003}
    with pytest.raises(OSError) as excinfo:
        t.bind(ANY4, 0, family=4)
    assert "40000..40003" in in_use(excinfo)
    t.bind("::", 0, family=6)  # the IPv6 namespace is separate


def test_unbind_frees_port() -> None:
    t = UdpTable(ephemeral_range=(40000, 40000))
    ep = t.bind(ANY4, 0, family=4)
    with pytest.raises(OSError):
        t.bind(A, 40000, family=4)
    t.unbind(ep)
    assert not ep.bound and len(t) == 0
    assert t.lookup(4, A, 40000, PEER, 1) is None
    t.unbind(ep)  # idempotent
    again = t.bind(A, 0, family=4)
    assert again.local == (A, 40000)
    with pytest.raises(ValueError):
        t.connect(ep, PEER, 1)


def test_unbind_connected_endpoint() -> None:
    t = table()
    ep = t.bind(A, 53, family=4)
    t.connect(ep, PEER, 9)
    t.unbind(ep)
    assert t.lookup(4, A, 53, PEER, 9) is None
    t.bind(A, 53, family=4)


def test_endpoint_of_another_table_rejected() -> None:
    ep = table().bind(A, 53, family=4)
    with pytest.raises(ValueError, match="another"):
        table().connect(ep, PEER, 9)


# --- lookup preference ------------------------------------------------------------------

def test_lookup_nothing() -> None:
    t = table()
    t.bind(A, 53, family=4)
    assert t.lookup(4, A, 54, PEER, 9) is None
    assert t.lookup(4, B, 53, PEER, 9) is None


def test_specific_preferred_over_wildcard() -> None:
    t = table()
    wild = t.bind(ANY4, 53, family=4, reuse_port=True)
    spec = t.bind(A, 53, family=4, reuse_port=True)
    assert t.lookup(4, A, 53, PEER, 9) is spec
    assert t.lookup(4, B, 53, PEER, 9) is wild


def test_connected_preferred_and_filters_peers() -> None:
    t = table()
    wild = t.bind(ANY4, 53, family=4, reuse_port=True)
    conn = t.bind(ANY4, 53, family=4, reuse_port=True)
    conn.set_local_address(A)
    t.connect(conn, PEER, 9)
    assert conn.local == (A, 53) and conn.remote == (PEER, 9)
    assert t.lookup(4, A, 53, PEER, 9) is conn
    assert t.lookup(4, A, 53, PEER, 10) is wild  # other peer port
    assert t.lookup(4, B, 53, PEER, 9) is wild  # other local address
    t.disconnect(conn)
    assert conn.remote is None and conn.local == (A, 53)
    assert t.lookup(4, A, 53, PEER, 9) is conn  # now a specific bound socket


def test_connected_only_socket_ignores_other_peers() -> None:
    t = table()
    ep = t.bind(A, 53, family=4)
    t.connect(ep, PEER, 9)
    assert t.lookup(4, A, 53, PEER, 9) is ep
    assert t.lookup(4, A, 53, B, 9) is None
    t.connect(ep, B, 9)  # reconnect moves the index
    assert t.lookup(4, A, 53, PEER, 9) is None
    assert t.lookup(4, A, 53, B, 9) is ep


def test_connected_with_wildcard_local_ranks_above_specific_bound() -> None:
    t = table()
    conn = t.bind(ANY4, 53, family=4, reuse_port=True)
    t.connect(conn, PEER, 9)  # caller did not pin the source
    spec = t.bind(A, 53, family=4, reuse_port=True)
    assert t.lookup(4, A, 53, PEER, 9) is conn
    assert t.lookup(4, A, 53, PEER, 8) is spec


def test_set_local_address_checks() -> None:
    t = table()
    ep = t.bind(A, 53, family=4)
    ep.set_local_address(A)  # same address: fine
    with pytest.raises(ValueError):
        ep.set_local_address(B)
    wild = t.bind(ANY4, 54, family=4)
    with pytest.raises(ValueError):
        wild.set_local_address(ANY4)
    with pytest.raises(ValueError):
        wild.set_local_address(A6)
    wild.set_local_address(A)
    # once pinned, another address may take the port, as in Linux after connect()
    t.bind(B, 54, family=4)


def test_ipv6_lookup() -> None:
    t = table()
    wild = t.bind("::", 5353, family=6)
    assert t.lookup(6, A6, 5353, PEER6, 1) is wild
    wild.set_local_address(A6)
    t.connect(wild, PEER6, 1)
    assert t.lookup(6, A6, 5353, PEER6, 1) is wild
    assert t.lookup(6, A6, 5353, PEER6, 2) is None


# --- SO_REUSEPORT groups ----------------------------------------------------------------

def test_reuse_port_hash_stable_and_spread() -> None:
    t = table()
    group = [t.bind(A, 53, family=4, reuse_port=True) for _ in range(4)]
    flows = [(IPv4Address(0xC6120100 + i % 200), 1024 + i) for i in range(2000)]
    chosen = [t.lookup(4, A, 53, src, port) for src, port in flows]
    assert chosen == [t.lookup(4, A, 53, src, port) for src, port in flows]  # stable
    counts = Counter(id(ep) for ep in chosen)
    assert set(counts) == {id(ep) for ep in group}
    assert min(counts.values()) > 2000 / 4 * 0.8


def test_reuse_port_hash_deterministic_across_tables() -> None:
    def pick(t: UdpTable) -> list[int]:
        group: list[UdpEndpoint] = [t.bind(A, 53, family=4, reuse_port=True) for _ in range(3)]
        return [group.index(t.lookup(4, A, 53, PEER, p)) for p in range(1000, 1100)]  # type: ignore[arg-type]

    assert pick(UdpTable()) == pick(UdpTable())
    assert flow_hash(A, 53, PEER, 1000) == flow_hash(A, 53, PEER, 1000)
    assert flow_hash(A, 53, PEER, 1000) != flow_hash(A, 53, PEER, 1001)
    assert 0 <= flow_hash(A6, 53, PEER6, 1) < 2**64


def test_reuse_port_member_leaves() -> None:
    t = table()
    first = t.bind(A, 53, family=4, reuse_port=True)
    second = t.bind(A, 53, family=4, reuse_port=True)
    t.unbind(first)
    assert all(t.lookup(4, A, 53, PEER, p) is second for p in range(50))


def test_repr() -> None:
    t = table()
    ep = t.bind(A6, 53, family=6, reuse_port=True)
    t.connect(ep, PEER6, 9)
    assert repr(ep) == "<UdpEndpoint [fd00::1]:53 -> [fd00::99]:9 reuse_port>"
    t.unbind(ep)
    assert "unbound" in repr(ep)
    assert "0 endpoints" in repr(t)
