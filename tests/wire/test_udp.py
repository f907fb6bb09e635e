"""UDP codec: RFC 768 over IPv4, RFC 8200 §8.1 over IPv6."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.wire.checksum import (
    CHECKSUM_SOFTWARE,
    ChecksumCaps,
    TxChecksum,
    checksum,
    ones_sum,
)
from ethox_asyncio.stack.wire.errors import BadChecksum, Malformed, Truncated, WireError
from ethox_asyncio.stack.wire.udp import UdpPacket, UdpRepr

V4_SRC, V4_DST = IPv4Address("192.0.2.1"), IPv4Address("198.51.100.2")
V6_SRC, V6_DST = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")
NO_VERIFY = ChecksumCaps(verify=False)
Address = IPv4Address | IPv6Address

# 53 > 9999, length 12, payload "abcd"; checksums confirmed "good" by tshark.
DATAGRAM_V4 = bytes.fromhex("0035 270f 000c 2794 61626364")
DATAGRAM_V6 = bytes.fromhex("0035 270f 000c b856 61626364")

addresses = st.one_of(
    st.tuples(st.ip_addresses(v=4), st.ip_addresses(v=4)),
    st.tuples(st.ip_addresses(v=6), st.ip_addresses(v=6)),
)
ports = st.integers(0, 0xFFFF)


def emitted(repr_: UdpRepr, src: Address, dst: Address, payload: bytes,
            caps: ChecksumCaps = CHECKSUM_SOFTWARE) -> bytearray:
    buf = bytearray(b"\xa5" * repr_.buffer_len)
    repr_.emit(buf, src, dst, payload, caps)
    return buf


@pytest.mark.parametrize(("data", "src", "dst"), [
    (DATAGRAM_V4, V4_SRC, V4_DST), (DATAGRAM_V6, V6_SRC, V6_DST),
])
def test_parse_known_bytes(data: bytes, src: Address, dst: Address) -> None:
    assert UdpRepr.parse(data, src, dst) == UdpRepr(53, 9999, 4)
    packet = UdpPacket.checked(data)
    assert (packet.src_port, packet.dst_port, packet.length) == (53, 9999, 12)
    assert bytes(packet.payload) == b"abcd"
    assert packet.verify_checksum(int(src), int(dst))


@pytest.mark.parametrize(("expected", "src", "dst"), [
    (DATAGRAM_V4, V4_SRC, V4_DST), (DATAGRAM_V6, V6_SRC, V6_DST),
])
def test_emit_known_bytes(expected: bytes, src: Address, dst: Address) -> None:
    assert emitted(UdpRepr(53, 9999, 4), src, dst, b"abcd") == expected


def test_emit_header_in_front_of_payload_in_place() -> None:
    buf = bytearray(b"\xa5" * 8 + b"abcd")
    UdpRepr(53, 9999, 4).emit_header(buf, V4_SRC, V4_DST)
    assert buf == DATAGRAM_V4


def test_emit_rejects_wrong_payload_length_and_oversize() -> None:
    with pytest.raises(ValueError, match="payload"):
        emitted(UdpRepr(1, 2, 3), V4_SRC, V4_DST, b"ab")
    with pytest.raises(ValueError, match="16-bit length"):
        UdpRepr(1, 2, 0xFFFF).emit_header(bytearray(0x10007), V4_SRC, V4_DST)


def test_str() -> None:
    assert str(UdpRepr(53, 9999, 12)) == "UDP 53 > 9999, length 12"


def test_payload_sliced_by_length_field() -> None:
    padded = DATAGRAM_V4 + b"\x00" * 6  # Ethernet minimum-frame padding
    assert UdpRepr.parse(padded, V4_SRC, V4_DST) == UdpRepr(53, 9999, 4)
    assert bytes(UdpPacket.checked(padded).payload) == b"abcd"


def test_view_setters_and_fill_checksum() -> None:
    packet = UdpPacket(bytearray(DATAGRAM_V4))
    packet.src_port, packet.dst_port = 1000, 2000
    packet.fill_checksum(int(V4_SRC), int(V4_DST))
    assert UdpRepr.parse(packet, V4_SRC, V4_DST) == UdpRepr(1000, 2000, 4)
    packet.length = 10
    assert bytes(packet.payload) == b"ab"
    packet.checksum = 0x1234
    assert packet.checksum == 0x1234
    assert not packet.verify_checksum(int(V4_SRC), int(V4_DST))


@pytest.mark.parametrize("cut", range(len(DATAGRAM_V4)))
def test_truncated_at_every_offset(cut: int) -> None:
    with pytest.raises(Truncated):
        UdpRepr.parse(DATAGRAM_V4[:cut], V4_SRC, V4_DST)
    with pytest.raises(Truncated):
        UdpPacket.checked(DATAGRAM_V4[:cut])


@pytest.mark.parametrize("length", range(8))
def test_length_field_below_header_is_malformed(length: int) -> None:
    data = bytearray(DATAGRAM_V4)
    UdpPacket(data).length = length
    with pytest.raises(Malformed):
        UdpRepr.parse(data, V4_SRC, V4_DST, NO_VERIFY)
    with pytest.raises(Malformed):
        UdpPacket.checked(data)


@pytest.mark.parametrize(("data", "src", "dst"), [
    (DATAGRAM_V4, V4_SRC, V4_DST), (DATAGRAM_V6, V6_SRC, V6_DST),
])
def test_bad_checksum(data: bytes, src: Address, dst: Address) -> None:
    corrupted = bytearray(data)
    corrupted[-1] ^= 0x01
    with pytest.raises(BadChecksum):
        UdpRepr.parse(corrupted, src, dst)
    assert UdpRepr.parse(corrupted, src, dst, NO_VERIFY) == UdpRepr(53, 9999, 4)
    # Right bytes, wrong pseudo-header (another destination address).
    with pytest.raises(BadChecksum):
        UdpRepr.parse(data, src, src)


def test_zero_checksum_accepted_on_ipv4_only() -> None:
    data = bytearray(DATAGRAM_V4)
    UdpPacket(data).checksum = 0
    assert UdpRepr.parse(data, V4_SRC, V4_DST) == UdpRepr(53, 9999, 4)
    data = bytearray(DATAGRAM_V6)
    UdpPacket(data).checksum = 0
    with pytest.raises(Malformed, match="IPv6"):
        UdpRepr.parse(data, V6_SRC, V6_DST)
    with pytest.raises(Malformed):
        UdpRepr.parse(data, V6_SRC, V6_DST, NO_VERIFY)


@pytest.mark.parametrize(("src", "dst"), [(V4_SRC, V4_DST), (V6_SRC, V6_DST)])
def test_computed_zero_is_sent_as_all_ones(src: Address, dst: Address) -> None:
    # Choose the last payload word so that the ones' sum of everything is 0xFFFF,
    # i.e. the computed checksum is 0.
    repr_ = UdpRepr(53, 9999, 4)
    buf = emitted(repr_, src, dst, b"ab\x00\x00", ChecksumCaps(tx=TxChecksum.NONE))
    total = ones_sum(buf, int(src) + int(dst) + 17 + 12)
    payload = b"ab" + (~total & 0xFFFF).to_bytes(2, "big")
    buf = emitted(repr_, src, dst, payload)
    assert UdpPacket(buf).checksum == 0xFFFF
    assert UdpRepr.parse(buf, src, dst) == repr_
    view = UdpPacket(bytearray(buf))
    view.fill_checksum(int(src), int(dst))
    assert view.checksum == 0xFFFF


@settings(max_examples=200)
@given(ports, ports, st.binary(max_size=64), addresses)
def test_round_trip(src_port: int, dst_port: int, payload: bytes,
                    pair: tuple[Address, Address]) -> None:
    src, dst = pair
    repr_ = UdpRepr(src_port, dst_port, len(payload))
    buf = emitted(repr_, src, dst, payload)
    assert UdpRepr.parse(buf, src, dst) == repr_
    assert bytes(UdpPacket.checked(buf).payload) == payload
    assert UdpPacket(buf).checksum != 0


@settings(max_examples=200)
@given(ports, ports, st.binary(max_size=64), addresses)
def test_partial_stores_pseudo_header_sum(src_port: int, dst_port: int, payload: bytes,
                                          pair: tuple[Address, Address]) -> None:
    src, dst = pair
    repr_ = UdpRepr(src_port, dst_port, len(payload))
    full = emitted(repr_, src, dst, payload)
    partial = emitted(repr_, src, dst, payload, ChecksumCaps(tx=TxChecksum.PARTIAL))
    assert partial[:6] == full[:6] and partial[8:] == full[8:]
    pseudo = ones_sum(b"", int(src) + int(dst) + 17 + len(partial))
    assert UdpPacket(partial).checksum == pseudo
    # What the device does for NEEDS_CSUM: checksum from csum_start, no pseudo-header.
    finished = checksum(partial) or 0xFFFF
    assert finished == UdpPacket(full).checksum


def test_tx_none_writes_zero() -> None:
    buf = emitted(UdpRepr(53, 9999, 4), V4_SRC, V4_DST, b"abcd",
                  ChecksumCaps(tx=TxChecksum.NONE))
    assert buf == DATAGRAM_V4[:6] + b"\x00\x00" + b"abcd"


@settings(max_examples=200)
@given(st.binary(max_size=40), addresses, st.booleans(), st.booleans())
def test_fuzz_raises_only_wire_errors(data: bytes, pair: tuple[Address, Address],
                                      verify: bool, consistent_length: bool) -> None:
    src, dst = pair
    if consistent_length and len(data) >= 8:
        data = data[:4] + len(data).to_bytes(2, "big") + data[6:]
    try:
        UdpRepr.parse(data, src, dst, ChecksumCaps(verify=verify))
    except WireError:
        pass
