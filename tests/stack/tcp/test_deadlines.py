"""The TCP host's deadlines, kept incrementally (host.py contract): a heap with lazy
invalidation, exact ``poll_at()``, no scan of the connections — checked with 10 000.

Deadlines are driven through the connections' own timer slots: a connection in
SYN-SENT whose SYN is out sends nothing more, so clearing ``rto_at`` and setting
``fin_wait2_at`` (which, outside FIN-WAIT-2, only clears itself when due) gives each
connection a deadline the test controls, changed the way the host sees every change:
through a touch (a user call) and the next egress.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from typing import Any

import pytest

from ethox_asyncio.stack.path import FramePath
from ethox_asyncio.stack.tcp.connection import TcpConnection
from ethox_asyncio.stack.tcp.host import TcpHost

from .harness import config

US, PEER = 0xC6120001, 0xC6120002


class SilentIp:
    """An IP layer that takes every segment and sends it nowhere."""

    def __init__(self) -> None:
        self.sent = 0

    def send_tcp(self, src: int, dst: int, segment: bytes, now: float) -> None:
        self.sent += 1

    def path(self, src: int, dst: int, protocol: int, now: float) -> FramePath | None:
        return None  # whole packets: send_tcp

    def send_on(self, path: FramePath, frame: bytearray, payload: Any,
                gso_size: int = 0) -> None:
        raise AssertionError("no path was given")

    def answer_tcp(self, src: int, dst: int, segment: bytes, now: float) -> bool:
        return True


def host_with(count: int) -> tuple[TcpHost, SilentIp, list[TcpConnection]]:
    host = TcpHost(config(), secret=bytes(32), mtu=1500, events=deque(), stats=Counter())
    ip = SilentIp()
    host.ip[4] = ip  # type: ignore[assignment]
    conns = [host.connect(4, US, 0, PEER, 80, 0.0) for _ in range(count)]
    host.egress(0.0)  # the SYNs
    assert ip.sent == count
    return host, ip, conns


def set_deadline(host: TcpHost, conn: TcpConnection, at: float | None) -> None:
    conn.rto_at = None
    conn.fin_wait2_at = at
    host.touch(conn)


def reference(conns: list[TcpConnection]) -> float | None:
    deadlines = [at for at in (c.poll_at() for c in conns) if at is not None]
    return min(deadlines) if deadlines else None


@pytest.fixture
def poll_at_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the host asks a connection for its deadline."""
    calls: Counter[str] = Counter()
    original = TcpConnection.poll_at

    def counting(self: TcpConnection) -> float | None:
        calls["poll_at"] += 1
        return original(self)

    monkeypatch.setattr(TcpConnection, "poll_at", counting)
    return calls


def test_ten_thousand_connections_exact_deadline_without_a_scan(
        poll_at_calls: Counter[str]) -> None:
    host, _, conns = host_with(10_000)
    rng = random.Random(1)
    deadlines = {c: 10.0 + rng.randrange(100_000) / 1000 for c in conns}
    for conn, at in deadlines.items():
        set_deadline(host, conn, at)
    host.egress(1.0)
    poll_at_calls.clear()
    assert host.poll_at() == min(deadlines.values())
    assert poll_at_calls["poll_at"] <= 1  # the top entry's check, not 10 000
    assert host.poll_at() == min(deadlines.values())
    # Time passes deadline by deadline: exactly the due connections run their timers.
    for now in (10.0, 10.5, 37.25, 70.0, 109.999, 110.0):
        poll_at_calls.clear()
        host.egress(now)
        due = [c for c, at in deadlines.items() if at <= now]
        assert all(c.fin_wait2_at is None for c in due)
        assert all(c.fin_wait2_at == at for c, at in deadlines.items() if at > now)
        assert poll_at_calls["poll_at"] <= 2 * len(due) + 2, now  # nothing per idle one
        for c in due:
            deadlines.pop(c)
        expected = min(deadlines.values()) if deadlines else None
        assert host.poll_at() == expected == reference(conns)
    assert host._live_timers == 0 and host.poll_at() is None


def test_deadlines_moving_later_earlier_and_away_stay_exact() -> None:
    host, _, conns = host_with(2000)
    rng = random.Random(7)
    now = 0.0
    for conn in conns:
        set_deadline(host, conn, 5.0 + rng.random())
    host.egress(now)
    for round_ in range(200):
        now += rng.random() * 0.01
        for conn in rng.sample(conns, 50):
            if conn.finished or conn not in host._keys:
                continue
            roll = rng.random()
            if roll < 0.5:  # later, as every ACK restarts the RTO (RFC 6298 §5.3)
                set_deadline(host, conn, (conn.poll_at() or now) + rng.random())
            elif roll < 0.8:  # earlier, as a delayed ACK armed after it
                set_deadline(host, conn, now + rng.random() * 0.05)
            elif roll < 0.95:
                set_deadline(host, conn, None)
            else:
                conn.abort(now)  # leaves the table after its RST
                host.touch(conn)
        host.egress(now)
        live = [c for c in conns if c in host._keys]
        expected = reference(live)
        assert host.poll_at() == expected, round_
        assert expected is None or expected > now
        # Each live connection has at most one live entry; stale ones are bounded.
        assert len(host._timers) <= 2 * host._live_timers + 64 + 50
    assert host._live_timers == sum(1 for c in conns if c in host._keys
                                    and c._timer_seq >= 0)


def test_a_connection_waiting_for_its_flush_is_due_now() -> None:
    host, _, conns = host_with(3)
    for conn in conns:
        set_deadline(host, conn, 50.0)
    host.egress(0.0)
    assert host.poll_at() == 50.0
    host.touch(conns[1])  # a user call: its output is due at once
    assert host.poll_at() == 0.0
    host.egress(1.0)
    assert host.poll_at() == 50.0
