"""Two sans-IO interfaces wired back to back with a virtual clock (IPv4 slice)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

import pytest

from ethox_asyncio.stack.interface import (
    EchoReply,
    Interface,
    InterfaceConfig,
    UdpDatagram,
    UdpError,
)
from ethox_asyncio.stack.wire.ethernet import EthernetAddress

A_IP, B_IP = IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")


def make(mac: str, address: str) -> Interface:
    return Interface(InterfaceConfig(mac=EthernetAddress(mac),
                                     addresses=(IPv4Interface(address),)))


class Wire:
    """Carries frames between two interfaces; ``drop`` filters frames A sends."""

    def __init__(self) -> None:
        self.a = make("02:00:00:00:00:01", "198.18.0.1/24")
        self.b = make("02:00:00:00:00:02", "198.18.0.2/24")
        self.now = 0.0
        self.frames = 0

    def run(self, until: float = 0.5, step: float = 0.01) -> None:
        end = self.now + until
        while self.now <= end:
            for sender, receiver in ((self.a, self.b), (self.b, self.a)):
                for frame in sender.egress(self.now, 64):
                    self.frames += 1
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


def test_closed_port_gives_port_unreachable_to_the_sender() -> None:
    wire = Wire()
    sender = wire.a.udp.bind(A_IP, 40000, family=4)
    wire.a.send_udp(sender, b"anyone?", B_IP, 9, wire.now)
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


# --- fuzz: remote bytes never raise (DESIGN.md "Fuzz") ----------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests import golden  # noqa: E402

_FUZZ_TARGET = make("02:00:00:00:00:02", "198.18.0.2/24")
_SEEDS = [f for name in golden.names() for f in golden.load(name)]


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_frames_never_raise(data: bytes) -> None:
    _FUZZ_TARGET.ingress(data, 0.0)
    _FUZZ_TARGET.egress(0.0, 64)


@settings(max_examples=500)
@given(st.sampled_from(_SEEDS), st.lists(st.tuples(st.integers(0, 1600), st.integers(0, 255)),
                                         max_size=4), st.booleans())
def test_mutated_kernel_frames_never_raise(frame: bytes, edits: list[tuple[int, int]],
                                           verified: bool) -> None:
    mutated = bytearray(frame)
    mutated[0:6] = bytes.fromhex("020000000002")  # addressed to the target, so it is parsed
    for position, value in edits:
        mutated[position % len(mutated)] = value
    _FUZZ_TARGET.ingress(mutated, 1.0, checksum_verified=verified)
    _FUZZ_TARGET.egress(1.0, 64)
