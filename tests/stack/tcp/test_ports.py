"""RFC 6056 Algorithm 4 ephemeral ports (double-hash, as Linux __inet_hash_connect)."""

from __future__ import annotations

import errno
import itertools
from ipaddress import IPv4Address, IPv6Address

import pytest

from ethox_asyncio.stack.tcp.ports import DEFAULT_EPHEMERAL_RANGE, EphemeralPorts

KEY = bytes(range(16))
LOCAL = int(IPv4Address("198.18.0.1"))
REMOTE = int(IPv4Address("198.18.1.9"))


def free(port: int) -> bool:
    return False


def test_defaults() -> None:
    ports = EphemeralPorts(KEY)
    assert ports.range == DEFAULT_EPHEMERAL_RANGE == (32768, 60999)
    for _ in range(100):
        assert 32768 <= ports.allocate(LOCAL, REMOTE, 80, free) <= 60999
        assert 32768 <= ports.allocate_listening(free) <= 60999


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        EphemeralPorts(b"short")
    with pytest.raises(ValueError):
        EphemeralPorts(KEY, low=5000, high=4000)
    with pytest.raises(ValueError):
        EphemeralPorts(KEY, low=0, high=10)
    with pytest.raises(ValueError):
        EphemeralPorts(KEY, high=70000)
    with pytest.raises(ValueError):
        EphemeralPorts(KEY, table_size=0)
    with pytest.raises(ValueError):
        EphemeralPorts(KEY).allocate(LOCAL, REMOTE, 70000, free)


def test_deterministic_per_secret() -> None:
    def run(key: bytes) -> list[int]:
        ports = EphemeralPorts(key)
        return [ports.allocate(LOCAL, REMOTE + i % 3, 80, free) for i in range(20)] + [
            ports.allocate_listening(free) for _ in range(5)
        ]

    assert run(KEY) == run(KEY)
    assert run(KEY) != run(bytes(16))


def test_successive_connects_to_one_destination_differ() -> None:
    ports = EphemeralPorts(KEY)
    seen = [ports.allocate(LOCAL, REMOTE, 443, free) for _ in range(200)]
    assert len(set(seen)) == 200
    # Algorithm 4: the per-destination sequence increases (modulo the range) by
    # 1..8 per connection (Linux's random nudge), so it does not count connections.
    steps = {(b - a) % (60999 - 32768 + 1) for a, b in itertools.pairwise(seen)}
    assert steps <= set(range(1, 9)) and len(steps) > 1


def test_destinations_spread() -> None:
    ports = EphemeralPorts(KEY)
    first = {ports.allocate(LOCAL, REMOTE, rport, free) for rport in range(1000, 1100)}
    assert len(first) > 95
    firsts = {EphemeralPorts(KEY).allocate(LOCAL, REMOTE + i, 80, free) for i in range(100)}
    assert len(firsts) > 95
    # IPv6 destinations work and spread too.
    base6 = int(IPv6Address("fd00::99"))
    six = {ports.allocate(int(IPv6Address("fd00::1")), base6 + i, 80, free) for i in range(50)}
    assert len(six) > 45


def test_skips_ports_in_use() -> None:
    ports = EphemeralPorts(KEY, low=40000, high=40009)
    taken: set[int] = set()
    for _ in range(10):
        port = ports.allocate(LOCAL, REMOTE, 80, taken.__contains__)
        assert port not in taken and 40000 <= port <= 40009
        taken.add(port)
    assert taken == set(range(40000, 40010))


def test_exhaustion_raises_eaddrnotavail() -> None:
    ports = EphemeralPorts(KEY, low=50000, high=50003)
    calls: list[int] = []

    def busy(port: int) -> bool:
        calls.append(port)
        return True

    with pytest.raises(OSError) as excinfo:
        ports.allocate(LOCAL, REMOTE, 8080, busy)
    assert excinfo.value.errno == errno.EADDRNOTAVAIL
    assert "50000..50003" in str(excinfo.value) and "198.18.1.9:8080" in str(excinfo.value)
    assert sorted(calls) == [50000, 50001, 50002, 50003]  # each port probed once
    with pytest.raises(OSError, match=r"\[fd00::99\]:80") as excinfo:
        ports.allocate(1, int(IPv6Address("fd00::99")), 80, busy)


def test_listening_allocation() -> None:
    ports = EphemeralPorts(KEY, low=40000, high=40099)
    taken: set[int] = set()
    for _ in range(100):
        port = ports.allocate_listening(taken.__contains__)
        assert port not in taken
        taken.add(port)
    with pytest.raises(OSError) as excinfo:
        ports.allocate_listening(taken.__contains__)
    assert excinfo.value.errno == errno.EADDRINUSE
    assert "40000..40099" in str(excinfo.value)


def test_listening_ports_are_spread() -> None:
    ports = EphemeralPorts(KEY)
    assert len({ports.allocate_listening(free) for _ in range(100)}) > 95


def test_single_port_range() -> None:
    ports = EphemeralPorts(KEY, low=5000, high=5000)
    assert ports.allocate(LOCAL, REMOTE, 80, free) == 5000
    assert ports.allocate_listening(free) == 5000
