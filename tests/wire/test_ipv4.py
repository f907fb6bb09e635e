"""IPv4 codec: RFC 791 header, options skipped, padding ignored, header checksum."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.wire.checksum import checksum
from ethox_asyncio.stack.wire.errors import BadChecksum, Malformed, Truncated, WireError
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr

# The classic RFC 1071 worked example header (checksum 0xb861), UDP, DF, 95 payload bytes.
CLASSIC_HEADER = bytes.fromhex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7")
CLASSIC = CLASSIC_HEADER + bytes(range(95))
CLASSIC_REPR = Ipv4Repr(
    IPv4Address("192.168.0.1"), IPv4Address("192.168.0.199"), IpProtocol.UDP, 95
)
# A non-first, non-last fragment: id 123, MF, offset 1480; checksum confirmed by tshark.
FRAGMENT_HEADER = bytes.fromhex("4500 0030 007b 20b9 4011 cd61 c612 0001 c612 0002")
FRAGMENT = FRAGMENT_HEADER + b"f" * 28
FRAGMENT_REPR = Ipv4Repr(
    IPv4Address("198.18.0.1"),
    IPv4Address("198.18.0.2"),
    IpProtocol.UDP,
    28,
    ident=123,
    dont_frag=False,
    more_frags=True,
    frag_offset=1480,
)
KNOWN = [(CLASSIC, CLASSIC_REPR), (FRAGMENT, FRAGMENT_REPR)]

ipv4_reprs = st.builds(
    Ipv4Repr,
    src=st.ip_addresses(v=4),
    dst=st.ip_addresses(v=4),
    protocol=st.integers(0, 255),
    payload_len=st.integers(0, 64),
    ttl=st.integers(0, 255),
    dscp=st.integers(0, 63),
    ecn=st.integers(0, 3),
    ident=st.integers(0, 0xFFFF),
    dont_frag=st.booleans(),
    more_frags=st.booleans(),
    frag_offset=st.integers(0, 0x1FFF).map(lambda units: units * 8),
)


def with_checksum(header: bytearray) -> bytearray:
    """Fill the checksum of ``header`` (all of it is the IPv4 header) and return it."""
    header[10:12] = b"\x00\x00"
    header[10:12] = checksum(header).to_bytes(2, "big")
    return header


@pytest.mark.parametrize(("data", "expected"), KNOWN, ids=["classic", "fragment"])
def test_parse_known_bytes(data: bytes, expected: Ipv4Repr) -> None:
    assert Ipv4Repr.parse(data) == expected
    packet = Ipv4Packet.checked(data)
    assert (packet.version, packet.ihl, packet.header_len) == (4, 5, 20)
    assert packet.total_len == len(data)
    assert (packet.src, packet.dst) == (expected.src, expected.dst)
    assert (packet.src_int, packet.dst_int) == (int(expected.src), int(expected.dst))
    assert (packet.ident, packet.dont_frag, packet.more_frags, packet.frag_offset) == (
        expected.ident, expected.dont_frag, expected.more_frags, expected.frag_offset
    )
    assert (packet.ttl, packet.protocol, packet.dscp, packet.ecn) == (64, 17, 0, 0)
    assert packet.checksum == int.from_bytes(data[10:12], "big")
    assert bytes(packet.options) == b""
    assert bytes(packet.payload) == data[20:]


@pytest.mark.parametrize(("expected", "repr_"), KNOWN, ids=["classic", "fragment"])
def test_emit_known_bytes(expected: bytes, repr_: Ipv4Repr) -> None:
    buf = bytearray(b"\xa5" * repr_.buffer_len)
    repr_.emit(buf)
    assert buf[:20] == expected[:20]
    assert buf[20:] == b"\xa5" * repr_.payload_len  # the payload is not the header's business


@pytest.mark.parametrize("ihl", range(6, 16))
def test_options_are_skipped(ihl: int) -> None:
    options = bytes([0x94, 0x04, 0x00, 0x00]) + b"\x01" * ((ihl - 5) * 4 - 4)  # router alert, NOPs
    header = bytearray(CLASSIC_HEADER[:20] + options)
    header[0] = 0x40 | ihl
    header[2:4] = (len(header) + 95).to_bytes(2, "big")
    data = bytes(with_checksum(header)) + bytes(range(95))
    assert Ipv4Repr.parse(data) == CLASSIC_REPR
    packet = Ipv4Packet.checked(data)
    assert packet.header_len == ihl * 4
    assert bytes(packet.options) == options
    assert bytes(packet.payload) == bytes(range(95))


def test_ethernet_padding_after_total_len_is_ignored() -> None:
    data = FRAGMENT + b"\x00" * 18
    assert Ipv4Repr.parse(data) == FRAGMENT_REPR
    assert bytes(Ipv4Packet.checked(data).payload) == b"f" * 28


def test_total_len_beyond_buffer_is_truncated() -> None:
    with pytest.raises(Truncated):
        Ipv4Packet.checked(FRAGMENT[:-1])


def test_total_len_below_header_len_is_malformed() -> None:
    header = bytearray(FRAGMENT_HEADER)
    header[2:4] = (19).to_bytes(2, "big")
    with pytest.raises(Malformed):
        Ipv4Packet.checked(with_checksum(header))


@pytest.mark.parametrize("first_byte", [0x65, 0x05, 0x44, 0x40], ids=["v6", "v0", "ihl4", "ihl0"])
def test_bad_version_or_ihl_is_malformed(first_byte: int) -> None:
    header = bytearray(FRAGMENT_HEADER)
    header[0] = first_byte
    with pytest.raises(Malformed):
        Ipv4Repr.parse(bytes(header) + b"f" * 28)


@pytest.mark.parametrize("offset", [1, 8, 10, 11, 19])
def test_bad_checksum(offset: int) -> None:
    data = bytearray(CLASSIC)
    data[offset] ^= 0x10
    with pytest.raises(BadChecksum):
        Ipv4Repr.parse(data)
    assert not Ipv4Packet(data).verify_checksum()


def test_truncated_at_every_offset() -> None:
    for end in range(len(FRAGMENT)):
        with pytest.raises(Truncated):
            Ipv4Repr.parse(FRAGMENT[:end])


def test_in_place_edits_then_fill_checksum() -> None:
    buf = bytearray(FRAGMENT)
    packet = Ipv4Packet.checked(buf)
    packet.ttl -= 1
    packet.src, packet.dst = packet.dst, packet.src
    assert not packet.verify_checksum()
    packet.fill_checksum()
    assert packet.verify_checksum()
    old = packet.checksum
    packet.checksum = 0
    packet.checksum = old
    swapped = Ipv4Repr.parse(buf)
    assert (swapped.src, swapped.dst, swapped.ttl) == (FRAGMENT_REPR.dst, FRAGMENT_REPR.src, 63)


def test_str() -> None:
    assert str(FRAGMENT_REPR) == (
        "IP 198.18.0.1 > 198.18.0.2: proto udp (17), length 48, ttl 64, id 123, offset 1480,"
        " flags [+]"
    )
    assert str(CLASSIC_REPR) == (
        "IP 192.168.0.1 > 192.168.0.199: proto udp (17), length 115, ttl 64, flags [DF]"
    )


def test_unknown_protocol_stays_int() -> None:
    header = bytearray(FRAGMENT_HEADER)
    header[9] = 253
    parsed = Ipv4Repr.parse(bytes(with_checksum(header)) + b"f" * 28)
    assert parsed.protocol == 253 and not isinstance(parsed.protocol, IpProtocol)
    assert "proto proto-253 (253)" in str(parsed)


@pytest.mark.parametrize(
    "bad",
    [{"frag_offset": 12}, {"frag_offset": 0x10000}, {"payload_len": 0xFFFF - 19}],
    ids=["unaligned-offset", "offset-too-big", "too-long"],
)
def test_emit_rejects_unrepresentable_headers(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(FRAGMENT_REPR, **bad).emit(bytearray(20))


@settings(max_examples=200)
@given(ipv4_reprs)
def test_round_trip(repr_: Ipv4Repr) -> None:
    buf = bytearray(b"\xa5" * repr_.buffer_len)
    repr_.emit(buf)
    assert Ipv4Repr.parse(buf) == repr_
    str(repr_)


@st.composite
def fuzz_packets(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, often with version 4 and a valid checksum to reach the deeper checks."""
    data = bytearray(draw(st.binary(max_size=80)))
    if data and draw(st.booleans()):
        data[0] = 0x40 | (data[0] & 0x0F)
        header_len = (data[0] & 0x0F) * 4
        if 20 <= header_len <= len(data):
            data[:header_len] = with_checksum(data[:header_len])
    return bytes(data)


@settings(max_examples=300)
@given(fuzz_packets())
def test_arbitrary_bytes_raise_only_wire_errors(data: bytes) -> None:
    try:
        repr_ = Ipv4Repr.parse(data)
    except WireError:
        return
    str(repr_)
