"""ARP codec: RFC 826, Ethernet hardware and IPv4 protocol addresses only."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.wire.arp import ArpOperation, ArpPacket, ArpRepr
from ethox_asyncio.stack.wire.errors import Malformed, Truncated, Unsupported, WireError
from ethox_asyncio.stack.wire.ethernet import EthernetAddress

MAC_1 = EthernetAddress("aa:bb:cc:dd:ee:01")
MAC_2 = EthernetAddress("aa:bb:cc:dd:ee:02")
IP_1, IP_2 = IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")
ZERO_MAC = EthernetAddress(bytes(6))

# hrd 1 (Ethernet), pro 0x0800, hln 6, pln 4, op, sha, spa, tha, tpa.
REQUEST = bytes.fromhex("0001 0800 06 04 0001 aabbccddee01 c6120001 000000000000 c6120002")
REPLY = bytes.fromhex("0001 0800 06 04 0002 aabbccddee02 c6120002 aabbccddee01 c6120001")
REQUEST_REPR = ArpRepr(ArpOperation.REQUEST, MAC_1, IP_1, ZERO_MAC, IP_2)
REPLY_REPR = ArpRepr(ArpOperation.REPLY, MAC_2, IP_2, MAC_1, IP_1)
KNOWN = [(REQUEST, REQUEST_REPR), (REPLY, REPLY_REPR)]

arp_reprs = st.builds(
    ArpRepr,
    operation=st.sampled_from(ArpOperation),
    source_hardware_addr=st.binary(min_size=6, max_size=6).map(EthernetAddress),
    source_protocol_addr=st.ip_addresses(v=4),
    target_hardware_addr=st.binary(min_size=6, max_size=6).map(EthernetAddress),
    target_protocol_addr=st.ip_addresses(v=4),
)


@pytest.mark.parametrize(("data", "expected"), KNOWN, ids=["request", "reply"])
def test_parse_known_bytes(data: bytes, expected: ArpRepr) -> None:
    assert ArpRepr.parse(data) == expected
    packet = ArpPacket.checked(data)
    assert (packet.hardware_type, packet.protocol_type) == (1, 0x0800)
    assert (packet.hardware_len, packet.protocol_len) == (6, 4)
    assert packet.operation == expected.operation
    assert packet.source_hardware_addr == expected.source_hardware_addr
    assert packet.source_protocol_addr == expected.source_protocol_addr
    assert packet.target_hardware_addr == expected.target_hardware_addr
    assert packet.target_protocol_addr == expected.target_protocol_addr


@pytest.mark.parametrize(("expected", "repr_"), KNOWN, ids=["request", "reply"])
def test_emit_known_bytes(expected: bytes, repr_: ArpRepr) -> None:
    buf = bytearray(b"\xa5" * repr_.buffer_len)
    repr_.emit(buf)
    assert buf == expected


def test_ethernet_padding_is_ignored() -> None:
    assert ArpRepr.parse(REQUEST + bytes(18)) == REQUEST_REPR


def test_truncated_at_every_offset() -> None:
    for end in range(len(REQUEST)):
        with pytest.raises(Truncated):
            ArpRepr.parse(REQUEST[:end])


@pytest.mark.parametrize(
    "fixed",
    ["0006 0800 06 04", "0001 86dd 06 04", "0001 0806 06 04"],
    ids=["ieee802-hardware", "ipv6-protocol", "arp-protocol"],
)
def test_other_address_types_are_unsupported(fixed: str) -> None:
    with pytest.raises(Unsupported):
        ArpRepr.parse(bytes.fromhex(fixed) + REQUEST[6:])


@pytest.mark.parametrize("lengths", ["0704", "0610", "0000", "0608"])
def test_wrong_address_lengths_are_malformed(lengths: str) -> None:
    with pytest.raises(Malformed):
        ArpRepr.parse(REQUEST[:4] + bytes.fromhex(lengths) + REQUEST[6:])


@pytest.mark.parametrize("operation", [0, 3, 4, 8, 9, 0xFFFF])
def test_other_operations_are_unsupported(operation: int) -> None:
    with pytest.raises(Unsupported):
        ArpRepr.parse(REQUEST[:6] + operation.to_bytes(2, "big") + REQUEST[8:])


def test_request_turned_into_reply_in_place() -> None:
    buf = bytearray(REQUEST)
    packet = ArpPacket.checked(buf)
    packet.operation = ArpOperation.REPLY
    packet.target_hardware_addr = packet.source_hardware_addr
    packet.target_protocol_addr = packet.source_protocol_addr
    packet.source_hardware_addr = MAC_2
    packet.source_protocol_addr = IP_2
    assert buf == REPLY


def test_str() -> None:
    assert str(REQUEST_REPR) == "ARP, Request who-has 198.18.0.2 tell 198.18.0.1"
    assert str(REPLY_REPR) == "ARP, Reply 198.18.0.2 is-at aa:bb:cc:dd:ee:02"


def test_parse_accepts_a_view() -> None:
    assert ArpRepr.parse(ArpPacket(REPLY)) == REPLY_REPR


@settings(max_examples=200)
@given(arp_reprs)
def test_round_trip(repr_: ArpRepr) -> None:
    buf = bytearray(b"\xa5" * repr_.buffer_len)
    repr_.emit(buf)
    assert ArpRepr.parse(buf) == repr_


# Arbitrary bytes, plus bytes behind a valid Ethernet/IPv4 prefix to reach the later checks.
fuzz_packets = st.binary(max_size=40) | st.binary(max_size=30).map(
    lambda tail: bytes.fromhex("0001 0800 0604") + tail
)


@settings(max_examples=200)
@given(fuzz_packets)
def test_arbitrary_bytes_raise_only_wire_errors(data: bytes) -> None:
    try:
        repr_ = ArpRepr.parse(data)
    except WireError:
        return
    str(repr_)
