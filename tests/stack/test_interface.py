"""Two sans-IO interfaces wired back to back with a virtual clock (IPv4 and IPv6)."""

from __future__ import annotations

import errno
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_address

import pytest

from ethox_asyncio.device.base import frame_bytes
from ethox_asyncio.stack.interface import (
    EchoReply,
    Interface,
    InterfaceConfig,
    UdpDatagram,
    UdpError,
)
from ethox_asyncio.stack.neighbor import NeighborState
from ethox_asyncio.stack.wire.ethernet import EthernetAddress, EthernetFrame, EtherType
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ipv6 import Ipv6Packet

A_IP, B_IP = IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")
A_IP6, B_IP6 = IPv6Address("fd00::1"), IPv6Address("fd00::2")


def make(mac: str, address: str, address6: str | None = None) -> Interface:
    addresses: tuple[IPv4Interface | IPv6Interface, ...] = (IPv4Interface(address),)
    if address6 is not None:
        addresses += (IPv6Interface(address6),)
    return Interface(InterfaceConfig(mac=EthernetAddress(mac), addresses=addresses))


class Wire:
    """Carries frames between two interfaces; ``tamper`` may rewrite or drop A's frames."""

    def __init__(self) -> None:
        self.a = make("02:00:00:00:00:01", "198.18.0.1/24", "fd00::1/64")
        self.b = make("02:00:00:00:00:02", "198.18.0.2/24", "fd00::2/64")
        self.now = 0.0
        self.frames = 0
        self.sent_by_a: list[bytes] = []
        self.tamper: Callable[[bytes], bytes | None] = lambda frame: frame

    def run(self, until: float = 0.5, step: float = 0.01) -> None:
        end = self.now + until
        while self.now <= end:
            for sender, receiver in ((self.a, self.b), (self.b, self.a)):
                for frame in map(frame_bytes, sender.egress(self.now, 64)):
                    self.frames += 1
                    if sender is self.a:
                        self.sent_by_a.append(frame)
                        tampered = self.tamper(frame)
                        if tampered is None:
                            continue
                        frame = tampered
                    receiver.ingress(frame, self.now)
            self.now += step


def test_udp_datagram_resolves_arp_then_arrives() -> None:
    wire = Wire()
    receiver = wire.b.udp.bind(B_IP, 7, family=4)
    sender = wire.a.udp.bind(A_IP, 40000, family=4)
    wire.a.send_udp(sender, b"hello", B_IP, 7, wire.now)
    wire.run()
    events = [e for e in wire.b.events if isinstance(e, UdpDatagram)]
    assert len(events) == 1
    assert events[0].endpoint is receiver and events[0].data == b"hello"
    assert events[0].src == ("198.18.0.1", 40000)


def test_large_datagram_is_fragmented_and_reassembled() -> None:
    wire = Wire()
    wire.b.udp.bind(B_IP, 7, family=4)
    sender = wire.a.udp.bind(A_IP, 40000, family=4)
    payload = bytes(range(256)) * 20  # 5120 bytes: four fragments at MTU 1500
    wire.a.send_udp(sender, payload, B_IP, 7, wire.now)
    wire.run()
    datagrams = [e for e in wire.b.events if isinstance(e, UdpDatagram)]
    assert [d.data for d in datagrams] == [payload]


@pytest.mark.parametrize("family", [4, 6])
def test_closed_port_gives_port_unreachable_to_the_sender(family: int) -> None:
    ours, theirs = (A_IP, B_IP) if family == 4 else (A_IP6, B_IP6)
    wire = Wire()
    sender = wire.a.udp.bind(ours, 40000, family=family)
    wire.a.send_udp(sender, b"anyone?", theirs, 9, wire.now)
    wire.run()
    errors = [e for e in wire.a.events if isinstance(e, UdpError)]
    assert len(errors) == 1 and isinstance(errors[0].error, ConnectionRefusedError)
    assert wire.b.stats["udp_no_port"] == 1


def test_ping_is_answered() -> None:
    wire = Wire()
    wire.a.send_ping(B_IP, ident=7, seq_no=3, data=b"abc", now=wire.now)
    wire.run()
    replies = [e for e in wire.a.events if isinstance(e, EchoReply)]
    assert [(r.src, r.ident, r.seq_no, r.data) for r in replies] == [(B_IP, 7, 3, b"abc")]


def test_unanswered_arp_fails_with_host_unreachable() -> None:
    wire = Wire()
    sender = wire.a.udp.bind(A_IP, 40000, family=4)
    wire.a.send_udp(sender, b"x", IPv4Address("198.18.0.77"), 9, wire.now)
    wire.run(until=10.0, step=0.25)
    errors = [e for e in wire.a.events if isinstance(e, UdpError)]
    assert len(errors) == 1 and "no ARP answer" in str(errors[0].error)


def test_garbage_is_counted_never_raised() -> None:
    wire = Wire()
    for frame in (b"", b"\x00" * 13, bytes(14) + b"\x08\x00" + b"\x45" + bytes(10)):
        wire.b.ingress(frame, 0.0)
    assert sum(wire.b.stats.values()) >= 3


@pytest.mark.parametrize("frame_len", [60, 100])
def test_frames_for_other_macs_are_dropped(frame_len: int) -> None:
    wire = Wire()
    frame = bytes.fromhex("020000000099") + bytes(6) + b"\x08\x00" + bytes(frame_len - 14)
    wire.b.ingress(frame, 0.0)
    assert wire.b.stats["drop_not_our_mac"] == 1


# --- IPv6 with neighbour discovery ----------------------------------------------------


def _ipv6_packets(frames: list[bytes]) -> list[Ipv6Packet]:
    packets = []
    for frame in frames:
        eth = EthernetFrame(frame)
        if eth.ethertype == EtherType.IPV6:
            packets.append(Ipv6Packet(bytes(eth.payload)))
    return packets


def test_ipv6_udp_resolves_ndp_then_arrives() -> None:
    wire = Wire()
    receiver = wire.b.udp.bind(B_IP6, 7, family=6)
    sender = wire.a.udp.bind(A_IP6, 40000, family=6)
    wire.a.send_udp(sender, b"hello6", B_IP6, 7, wire.now)
    wire.run()
    events = [e for e in wire.b.events if isinstance(e, UdpDatagram)]
    assert len(events) == 1
    assert events[0].endpoint is receiver and events[0].data == b"hello6"
    assert events[0].src == ("fd00::1", 40000)
    assert wire.a.stats["ndp_solicit_sent"] == 1 and wire.b.stats["ndp_solicit_answered"] == 1
    assert wire.a.ipv6.ndp.state(B_IP6) is NeighborState.REACHABLE
    # B learnt A from the solicitation's source link-layer address option.
    assert wire.b.ipv6.ndp.state(A_IP6) is not None
    solicitation = _ipv6_packets(wire.sent_by_a)[0]
    assert solicitation.dst == IPv6Address("ff02::1:ff00:2") and solicitation.hop_limit == 255


def test_ipv6_large_datagram_is_fragmented_and_reassembled() -> None:
    wire = Wire()
    wire.b.udp.bind(B_IP6, 7, family=6)
    sender = wire.a.udp.bind(A_IP6, 40000, family=6)
    payload = bytes(range(256)) * 20
    wire.a.send_udp(sender, payload, B_IP6, 7, wire.now)
    wire.run()
    datagrams = [e for e in wire.b.events if isinstance(e, UdpDatagram)]
    assert [d.data for d in datagrams] == [payload]
    fragments = [p for p in _ipv6_packets(wire.sent_by_a)
                 if p.next_header == IpProtocol.IPV6_FRAG]
    assert len(fragments) == 4 and all(40 + p.payload_len <= 1500 for p in fragments)


def test_ipv6_ping_is_answered() -> None:
    wire = Wire()
    wire.a.send_ping(B_IP6, ident=7, seq_no=3, data=b"abc", now=wire.now)
    wire.run()
    replies = [e for e in wire.a.events if isinstance(e, EchoReply)]
    assert [(r.src, r.ident, r.seq_no, r.data) for r in replies] == [(B_IP6, 7, 3, b"abc")]


def test_ipv6_link_local_ping_uses_link_local_source() -> None:
    wire = Wire()
    target = wire.b.ipv6.link_local
    assert wire.a.source_address(target) == wire.a.ipv6.link_local
    wire.a.send_ping(target, ident=1, seq_no=1, data=b"ll", now=wire.now)
    wire.run()
    assert [e.src for e in wire.a.events if isinstance(e, EchoReply)] == [target]


def test_ipv6_solicitation_with_wrong_hop_limit_is_dropped() -> None:
    wire = Wire()
    sender = wire.a.udp.bind(A_IP6, 40000, family=6)

    def lower_hop_limit(frame: bytes) -> bytes:
        eth = EthernetFrame(frame)
        if eth.ethertype == EtherType.IPV6:
            changed = bytearray(frame)
            changed[14 + 7] = 64  # the IPv6 hop limit (not covered by any checksum)
            return bytes(changed)
        return frame

    wire.tamper = lower_hop_limit
    wire.a.send_udp(sender, b"x", B_IP6, 7, wire.now)
    wire.run()
    assert wire.b.stats["drop_ndp_hop_limit"] >= 1
    assert wire.b.stats["ndp_solicit_answered"] == 0
    assert wire.a.ipv6.ndp.state(B_IP6) is NeighborState.INCOMPLETE


def test_ipv6_unanswered_solicitation_fails_with_host_unreachable() -> None:
    wire = Wire()
    sender = wire.a.udp.bind(A_IP6, 40000, family=6)
    wire.a.send_udp(sender, b"x", IPv6Address("fd00::77"), 9, wire.now)
    wire.run(until=10.0, step=0.25)
    errors = [e for e in wire.a.events if isinstance(e, UdpError)]
    assert len(errors) == 1 and errors[0].endpoint is sender
    assert errors[0].error.errno == errno.EHOSTUNREACH


def test_multicast_for_groups_not_joined_is_dropped() -> None:
    wire = Wire()
    frame = bytes.fromhex("333300000099") + bytes.fromhex("020000000001") + b"\x86\xdd" \
        + bytes(60)
    wire.b.ingress(frame, 0.0)
    assert wire.b.stats["drop_multicast_not_joined"] == 1


@pytest.mark.parametrize(("gateway", "destination", "counter"), [
    ("198.18.0.2", "198.19.5.5", "drop_ipv4_not_for_us"),
    ("fd00::2", "fd01::5", None),
])
def test_off_link_destinations_go_to_the_default_gateway(gateway: str, destination: str,
                                                         counter: str | None) -> None:
    wire = Wire()
    wire.a = Interface(InterfaceConfig(
        mac=EthernetAddress("02:00:00:00:00:01"),
        addresses=(IPv4Interface("198.18.0.1/24"), IPv6Interface("fd00::1/64")),
        gateways=(ip_address(gateway),)))
    sender = wire.a.udp.bind(ip_address("::" if ":" in gateway else "0.0.0.0"), 0,
                             family=6 if ":" in gateway else 4)
    wire.a.send_udp(sender, b"via the router", ip_address(destination), 9, wire.now)
    wire.run()
    # B (the gateway) received the datagram at its MAC: it resolved B, then sent it there.
    assert any(frame[:6] == bytes.fromhex("020000000002") and b"via the router" in frame
               for frame in wire.sent_by_a)
    if counter is not None:
        assert wire.b.stats[counter] >= 1  # a host does not forward


def test_gateway_outside_every_network_is_refused() -> None:
    with pytest.raises(ValueError, match=r"198\.19\.0\.1"):
        Interface(InterfaceConfig(mac=EthernetAddress("02:00:00:00:00:01"),
                                  addresses=(IPv4Interface("198.18.0.1/24"),),
                                  gateways=(ip_address("198.19.0.1"),)))
