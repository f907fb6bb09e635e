"""The TCP host's setup path (host.py contract): a bare SYN for a listener that the
interface's hot branch hands to ``TcpHost.ingress_known`` goes straight to the
listener, once the IP layer's own predicate (``IpHost.accepts_unicast``) accepts
its addresses — and the outcome is the general path's, step by step.

- Twins: one server interface takes every frame as ``Interface.ingress`` does (the
  setup path and the established hot path), its twin has ``ingress_known`` turned
  off, so every frame goes through Ethernet, IP and ``TcpHost.ingress``. The same
  client frames reach both; after each one the frames they send, their counters and
  every slot of the server connection (sub-objects included) must be equal.
- Sources that cannot be a single host (RFC 1122 §3.2.1.3; RFC 4291 for IPv6) and
  destinations that are not our unicast address (RFC 1122 §4.2.3.10) are still
  refused, with the general path's counters and no SYN-ACK.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any

import pytest

from ethox_asyncio.device.base import frame_bytes
from ethox_asyncio.stack.interface import Interface, InterfaceConfig
from ethox_asyncio.stack.iphost import _VERDICT_LIMIT
from ethox_asyncio.stack.tcp.config import TcpConfig
from ethox_asyncio.stack.tcp.connection import EV_ACCEPT, EV_DATA, EV_EOF, TcpConnection
from ethox_asyncio.stack.tcp.host import TcpHost
from ethox_asyncio.stack.tcp.segment import ACK, FIN, RST, SYN, Segment
from ethox_asyncio.stack.wire.checksum import checksum, pseudo_header
from ethox_asyncio.stack.wire.ethernet import EthernetAddress
from ethox_asyncio.stack.wire.ip import IpProtocol
from tests.stack.test_answers import ip_frame, ipv4_packet, ipv6_packet
from tests.stack.test_interface import make

A_IP, B_IP = IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")
A_IP6, B_IP6 = IPv6Address("fd00::1"), IPv6Address("fd00::2")
ADDRESSES = {4: (A_IP, B_IP), 6: (A_IP6, B_IP6)}
PORT = 8080
# Slots that hold shared objects (compared by kind, not by value).
_SHARED = {"config", "events", "stats", "owner", "_listener"}


def snapshot(obj: Any, depth: int = 0) -> Any:
    """Every slot of ``obj`` (its class chain), sub-objects with slots expanded."""
    if depth > 3 or not hasattr(type(obj), "__slots__"):
        if isinstance(obj, list | tuple):
            return [snapshot(item, depth + 1) for item in obj]
        if isinstance(obj, memoryview):
            return bytes(obj)
        return obj
    out: dict[str, Any] = {"type": type(obj).__name__}
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if not hasattr(obj, name):
                out[name] = "<unset>"
                continue
            value = getattr(obj, name)
            out[name] = type(value).__name__ if name in _SHARED else snapshot(value, depth + 1)
    return out


class Twins:
    """Client A; server B (the setup path) and its twin C (general path only)."""

    def __init__(self, family: int, client: TcpConfig | None = None) -> None:
        self.family = family
        self.a = Interface(InterfaceConfig(
            mac=EthernetAddress("02:00:00:00:00:01"),
            addresses=(IPv4Interface("198.18.0.1/24"), IPv6Interface("fd00::1/64")),
            tcp=client or TcpConfig()))
        self.b = make("02:00:00:00:00:02", "198.18.0.2/24", "fd00::2/64")
        self.c = make("02:00:00:00:00:02", "198.18.0.2/24", "fd00::2/64")
        self.c.tcp.ingress_known = lambda *args: False  # type: ignore[method-assign]
        self.now = 1.0
        self.listeners = [iface.tcp.listen(family, 0, PORT, backlog=8)
                          for iface in (self.b, self.c)]
        self.taken: list[bool] = []  # what B's ingress_known answered
        original = self.b.tcp.ingress_known

        def recording(*args: Any) -> bool:
            taken = original(*args)
            self.taken.append(taken)
            return taken
        self.b.tcp.ingress_known = recording  # type: ignore[method-assign]

    def server(self, iface: Interface) -> TcpConnection | None:
        conns = list(iface.tcp.connections.values())
        return conns[0] if conns else None

    def step(self) -> list[bytes]:
        """A's frames to both servers; B's to A; B and C must stay twins."""
        self.now += 0.01
        for frame in map(frame_bytes, self.a.egress(self.now, 64)):
            self.b.ingress(frame, self.now)
            self.c.ingress(frame, self.now)
        out_b = [frame_bytes(f) for f in self.b.egress(self.now, 64)]
        out_c = [frame_bytes(f) for f in self.c.egress(self.now, 64)]
        assert out_b == out_c
        assert self.b.stats == self.c.stats
        assert self.b.poll_at() == self.c.poll_at()
        assert snapshot(self.server(self.b)) == snapshot(self.server(self.c))
        b, c = self.listeners
        assert (len(b._syn_queue), len(b._accept_queue)) == \
            (len(c._syn_queue), len(c._accept_queue))
        for frame in out_b:
            self.a.ingress(frame, self.now)
        self.events()
        return out_b

    def events(self) -> None:
        """An echo application on both servers, the same calls on each."""
        for iface, listener in zip((self.b, self.c), self.listeners, strict=True):
            for event in list(iface.events):
                if not isinstance(event, tuple):
                    continue
                kind, obj, arg = event
                if kind == EV_ACCEPT:
                    assert obj is listener and listener.accept() is arg
                    arg.set_reading(True)
                elif kind == EV_DATA:
                    obj.consumed(len(arg))
                    obj.send(bytes(arg))
                elif kind == EV_EOF:
                    obj.close(self.now)
                else:
                    continue
                iface.tcp.touch(arg if kind == EV_ACCEPT else obj)
            iface.events.clear()


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("options", ["all", "mss-only"])
def test_a_connection_set_up_by_the_fast_path_is_the_general_paths_twin(
        family: int, options: str) -> None:
    twins = Twins(family, None if options == "all" else TcpConfig(
        timestamps=False, sack=False, window_scaling=False))
    a_ip, b_ip = ADDRESSES[family]
    client = twins.a.tcp.connect(family, int(a_ip), 0, int(b_ip), PORT, twins.now)
    for _ in range(4):  # resolution, SYN, SYN-ACK, ACK
        twins.step()
    assert twins.taken.count(True) >= 2  # the SYN and the handshake's ACK
    server_b, server_c = twins.server(twins.b), twins.server(twins.c)
    assert server_b is not None and server_c is not None
    assert server_b.state.name == server_c.state.name == "ESTABLISHED"
    assert twins.b.stats["passive_opens"] == 1
    client.send(b"ping")
    twins.a.tcp.touch(client)
    twins.step()
    twins.step()
    client.close(twins.now)
    twins.a.tcp.touch(client)
    for _ in range(4):
        twins.step()
    assert not twins.b.tcp.connections and not twins.c.tcp.connections  # LAST-ACK done


def test_the_setup_path_takes_the_syn_and_the_general_path_is_not_used(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The SYN reaches the listener without TcpHost.ingress (the general TCP entry)."""
    twins = Twins(4)
    general: list[int] = []
    original = TcpHost.ingress

    def counting(self: TcpHost, *args: Any) -> None:
        general.append(1 if self is twins.b.tcp else 0)
        original(self, *args)
    monkeypatch.setattr(TcpHost, "ingress", counting)
    client = twins.a.tcp.connect(4, int(A_IP), 0, int(B_IP), PORT, twins.now)
    twins.step()  # ARP
    twins.b.stats.clear()
    twins.c.stats.clear()
    general.clear()
    twins.step()  # the SYN, to both
    assert 1 not in general  # C's and A's (the SYN-ACK in SYN-SENT) only
    assert twins.b.stats["passive_opens"] == 1 and client.state.name == "ESTABLISHED"


# --- frames with chosen addresses ---------------------------------------------------


def syn_frame(family: int, src: Any, dst: Any, *, flags: int = SYN,
              corrupt: bool = False, mss: int | None = 1460) -> bytes:
    seg = Segment(40000, PORT, 1000, 0, flags, 65535, b"", mss)
    buf = bytearray(seg.header_len)
    seg.emit_header(buf, 0)
    value = checksum(buf, pseudo_header(int(src), int(dst), IpProtocol.TCP, len(buf)))
    buf[16:18] = (value ^ (1 if corrupt else 0)).to_bytes(2, "big")
    packet = ipv4_packet(src, dst, IpProtocol.TCP, bytes(buf)) if family == 4 else \
        ipv6_packet(src, dst, IpProtocol.TCP, bytes(buf))
    return ip_frame(family, packet)


def fresh(family: int) -> tuple[Interface, list[bool]]:
    iface = make("02:00:00:00:00:02", "198.18.0.2/24", "fd00::2/64")
    iface.tcp.listen(family, 0, PORT, backlog=8)
    taken: list[bool] = []
    original = iface.tcp.ingress_known

    def recording(*args: Any) -> bool:
        result = original(*args)
        taken.append(result)
        return result
    iface.tcp.ingress_known = recording  # type: ignore[method-assign]
    iface.egress(0.0, 64)  # the gratuitous ARP
    iface.stats.clear()
    return iface, taken


REFUSED_V4 = [
    pytest.param(IPv4Address("255.255.255.255"), B_IP, "drop_ipv4_bogus_source",
                 id="limited-broadcast-source"),
    pytest.param(IPv4Address("198.18.0.255"), B_IP, "drop_ipv4_bogus_source",
                 id="subnet-broadcast-source"),
    pytest.param(IPv4Address("198.18.0.0"), B_IP, "drop_ipv4_bogus_source",
                 id="network-address-source"),
    pytest.param(IPv4Address("224.0.0.1"), B_IP, "drop_ipv4_bogus_source",
                 id="multicast-source"),
    pytest.param(IPv4Address("0.0.0.0"), B_IP, "drop_ipv4_bogus_source", id="this-host"),
    pytest.param(IPv4Address("127.0.0.1"), B_IP, "drop_ipv4_bogus_source", id="loopback"),
    pytest.param(IPv4Address("240.0.0.1"), B_IP, "drop_ipv4_bogus_source", id="class-e"),
    pytest.param(B_IP, B_IP, "drop_ipv4_bogus_source", id="our-own-address"),
    pytest.param(A_IP, IPv4Address("198.18.0.255"), "tcp_drop_not_unicast",
                 id="to-the-subnet-broadcast"),
    pytest.param(A_IP, IPv4Address("198.18.0.9"), "drop_ipv4_not_for_us",
                 id="to-another-host"),
]
REFUSED_V6 = [
    pytest.param(IPv6Address("ff02::1"), B_IP6, "drop_ipv6_bogus_source", id="multicast"),
    pytest.param(IPv6Address("::"), B_IP6, "drop_ipv6_bogus_source", id="unspecified"),
    pytest.param(IPv6Address("::1"), B_IP6, "drop_ipv6_bogus_source", id="loopback"),
    pytest.param(B_IP6, B_IP6, "drop_ipv6_bogus_source", id="our-own-address"),
    pytest.param(IPv6Address("fd00::"), B_IP6, "drop_ipv6_bogus_source",
                 id="subnet-router-anycast"),
    pytest.param(A_IP6, IPv6Address("ff02::1"), "tcp_drop_not_unicast",
                 id="to-all-nodes"),
    pytest.param(A_IP6, IPv6Address("fd00::9"), "drop_ipv6_not_for_us",
                 id="to-another-host"),
]


@pytest.mark.parametrize(("family", "src", "dst", "counter"),
                         [pytest.param(4, *p.values, id=f"v4-{p.id}") for p in REFUSED_V4]
                         + [pytest.param(6, *p.values, id=f"v6-{p.id}") for p in REFUSED_V6])
def test_a_syn_the_ip_layer_refuses_is_still_refused(family: int, src: Any, dst: Any,
                                                     counter: str) -> None:
    iface, taken = fresh(family)
    iface.ingress(syn_frame(family, src, dst), 1.0)
    assert taken in ([False], [])  # declined (or not offered: a multicast address)
    assert dict(iface.stats) == {counter: 1}
    assert not iface.tcp.connections and iface.egress(1.0, 64) == []
    # Control: the same SYN from the peer to us is taken at once.
    iface.ingress(syn_frame(family, *ADDRESSES[family]), 1.0)
    assert taken[-1] is True and iface.stats["passive_opens"] == 1
    assert len(iface.tcp.connections) == 1


@pytest.mark.parametrize("family", [4, 6])
def test_a_syn_with_a_bad_checksum_is_dropped_on_the_setup_path(family: int) -> None:
    iface, taken = fresh(family)
    iface.ingress(syn_frame(family, *ADDRESSES[family], corrupt=True), 1.0)
    assert taken == [True] and dict(iface.stats) == {"tcp_drop_bad_checksum": 1}
    assert not iface.tcp.connections
    iface.ingress(syn_frame(family, *ADDRESSES[family], corrupt=True), 1.0,
                  checksum_verified=True)  # the device vouched for it
    assert len(iface.tcp.connections) == 1


@pytest.mark.parametrize("flags", [SYN | ACK, SYN | RST, SYN | FIN, ACK, RST])
def test_only_a_bare_syn_takes_the_setup_path(flags: int) -> None:
    """Everything else for a listener is the general path's: SYN+ACK and ACK get a
    RST, the rest is dropped by the listener with its counter."""
    iface, taken = fresh(4)
    twin, _ = fresh(4)
    twin.tcp.ingress_known = lambda *args: False  # type: ignore[method-assign]
    for each in (iface, twin):
        each.ingress(syn_frame(4, A_IP, B_IP, flags=flags), 1.0)
    assert taken == [False]
    assert iface.stats == twin.stats and not iface.tcp.connections
    assert [frame_bytes(f) for f in iface.egress(1.0, 64)] == \
        [frame_bytes(f) for f in twin.egress(1.0, 64)]


@pytest.mark.parametrize("family", [4, 6])
def test_a_syn_without_options_is_taken_as_the_general_path_takes_it(family: int) -> None:
    """A 20-byte header (the hot branch's plain decode): the same SYN-ACK, the
    default MSS of RFC 9293 §3.7.1 on the new connection."""
    iface, taken = fresh(family)
    twin, _ = fresh(family)
    twin.tcp.ingress_known = lambda *args: False  # type: ignore[method-assign]
    for each in (iface, twin):
        each.ingress(syn_frame(family, *ADDRESSES[family], mss=None), 1.0)
    assert taken == [True] and iface.stats == twin.stats
    [conn] = iface.tcp.connections.values()
    [other] = twin.tcp.connections.values()
    assert conn.peer_mss == 536 and snapshot(conn) == snapshot(other)
    assert [frame_bytes(f) for f in iface.egress(1.0, 64)] == \
        [frame_bytes(f) for f in twin.egress(1.0, 64)]


def test_no_listener_leaves_the_syn_to_the_general_path() -> None:
    iface, taken = fresh(4)
    frame = bytearray(syn_frame(4, A_IP, B_IP))
    iface.ingress(bytes(frame[:36]) + (9999).to_bytes(2, "big") + bytes(frame[38:]), 1.0,
                  checksum_verified=True)  # port 9999: no listener, RST
    assert taken == [False]
    assert iface.stats["tcp_no_socket"] == 1 and iface.stats["tcp_rst_sent"] == 1


def test_source_verdicts_follow_the_route_table() -> None:
    """A source the IP layer accepted becomes a directed broadcast when a connected
    network is added: the kept verdict must not outlive the route change."""
    iface, _ = fresh(4)
    source = IPv4Address("198.19.0.255")
    ipv4 = iface.ipv4
    assert ipv4.accepts_unicast(int(source), int(B_IP))
    iface.routes.add_connected(IPv4Interface("198.19.0.7/24"))
    assert not ipv4.accepts_unicast(int(source), int(B_IP))
    assert ipv4._is_bogus_source(int(source))  # the predicate it asked


def test_source_verdicts_are_bounded() -> None:
    iface, _ = fresh(4)
    ipv4 = iface.ipv4
    base = int(IPv4Address("198.51.0.0"))
    for i in range(_VERDICT_LIMIT + 100):
        assert ipv4.accepts_unicast(base + i, int(B_IP))
    assert len(ipv4._source_refused) <= _VERDICT_LIMIT
    assert not ipv4.accepts_unicast(int(B_IP), int(B_IP))  # still asked, still refused


