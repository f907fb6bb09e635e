"""Ethernet II codec: IEEE 802.3 framing, 802.1Q / 802.1ad tags, multicast MACs."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.wire.errors import Truncated, Unsupported, WireError
from ethox_asyncio.stack.wire.ethernet import (
    BROADCAST,
    EthernetAddress,
    EthernetFrame,
    EthernetRepr,
    EtherType,
    VlanTag,
    ipv4_multicast_mac,
    ipv6_multicast_mac,
)

SRC = EthernetAddress("aa:bb:cc:dd:ee:01")
PAYLOAD = b"payload!"

UNTAGGED = bytes.fromhex("ffffffffffff aabbccddee01 0806") + PAYLOAD
# TCI 0xa00a: PCP 5, DEI 0, VID 10.
SINGLE_TAG = bytes.fromhex("ffffffffffff aabbccddee01 8100 a00a 0800") + PAYLOAD
# 802.1ad S-TAG TCI 0x1064 (PCP 0, DEI 1, VID 100), then C-TAG TCI 0x200a (PCP 1, DEI 0, VID 10).
DOUBLE_TAG = bytes.fromhex("ffffffffffff aabbccddee01 88a8 1064 8100 200a 86dd") + PAYLOAD

UNTAGGED_REPR = EthernetRepr(SRC, BROADCAST, EtherType.ARP)
SINGLE_TAG_REPR = EthernetRepr(SRC, BROADCAST, EtherType.IPV4, (VlanTag(10, pcp=5),))
DOUBLE_TAG_REPR = EthernetRepr(
    SRC,
    BROADCAST,
    EtherType.IPV6,
    (VlanTag(100, dei=True, tpid=EtherType.QINQ), VlanTag(10, pcp=1)),
)
KNOWN = [(UNTAGGED, UNTAGGED_REPR), (SINGLE_TAG, SINGLE_TAG_REPR), (DOUBLE_TAG, DOUBLE_TAG_REPR)]

macs = st.binary(min_size=6, max_size=6).map(EthernetAddress)
vlan_tags = st.builds(
    VlanTag,
    vlan_id=st.integers(0, 0x0FFF),
    pcp=st.integers(0, 7),
    dei=st.booleans(),
    tpid=st.sampled_from([EtherType.VLAN, EtherType.QINQ]),
)
ethernet_reprs = st.builds(
    EthernetRepr,
    src=macs,
    dst=macs,
    ethertype=st.integers(0x0600, 0xFFFF).filter(lambda t: t not in (0x8100, 0x88A8)),
    vlan=st.none() | st.lists(vlan_tags, min_size=1, max_size=2).map(tuple),
)


@pytest.mark.parametrize(("data", "expected"), KNOWN, ids=["untagged", "802.1Q", "QinQ"])
def test_parse_known_bytes(data: bytes, expected: EthernetRepr) -> None:
    assert EthernetRepr.parse(data) == expected
    frame = EthernetFrame.checked(data)
    assert frame.header_len == expected.header_len == len(data) - len(PAYLOAD)
    assert frame.ethertype == expected.ethertype
    assert frame.vlan_tags == (expected.vlan or ())
    assert (frame.dst, frame.src) == (BROADCAST, SRC)
    assert bytes(frame.payload) == PAYLOAD


def test_parse_known_fields_are_enums() -> None:
    parsed = EthernetRepr.parse(DOUBLE_TAG)
    assert parsed.ethertype is EtherType.IPV6
    assert parsed.vlan is not None
    assert parsed.vlan[0].tpid is EtherType.QINQ
    assert (parsed.vlan[0].vlan_id, parsed.vlan[0].pcp, parsed.vlan[0].dei) == (100, 0, True)


@pytest.mark.parametrize(("expected", "repr_"), KNOWN, ids=["untagged", "802.1Q", "QinQ"])
def test_emit_known_bytes(expected: bytes, repr_: EthernetRepr) -> None:
    buf = bytearray(b"\xa5" * repr_.header_len)
    repr_.emit(buf)
    assert bytes(buf) + PAYLOAD == expected


def test_legacy_qinq_with_two_8100_tags_round_trips() -> None:
    data = bytes.fromhex("ffffffffffff aabbccddee01 8100 0064 8100 000a 0800")
    parsed = EthernetRepr.parse(data)
    assert parsed.vlan == (VlanTag(100), VlanTag(10))
    buf = bytearray(b"\xa5" * parsed.header_len)
    parsed.emit(buf)
    assert buf == data


def test_unknown_ethertype_stays_int() -> None:
    parsed = EthernetRepr.parse(bytes.fromhex("ffffffffffff aabbccddee01 88cc"))
    assert parsed.ethertype == 0x88CC
    assert not isinstance(parsed.ethertype, EtherType)


def test_three_stacked_tags_are_unsupported() -> None:
    data = bytes.fromhex("ffffffffffff aabbccddee01 88a8 0001 8100 0002 8100 0003 0800")
    with pytest.raises(Unsupported):
        EthernetFrame.checked(data)


def test_llc_length_field_is_unsupported() -> None:
    data = bytes.fromhex("ffffffffffff aabbccddee01 0026") + b"\x42\x42\x03" + bytes(35)
    EthernetFrame.checked(data)  # the view is only about lengths
    with pytest.raises(Unsupported):
        EthernetRepr.parse(data)


@pytest.mark.parametrize("data", [UNTAGGED, SINGLE_TAG, DOUBLE_TAG], ids=["0", "1", "2"])
def test_truncated_at_every_offset(data: bytes) -> None:
    header_len = len(data) - len(PAYLOAD)
    for end in range(header_len):
        with pytest.raises(Truncated):
            EthernetRepr.parse(data[:end])
    for end in range(header_len, len(data) + 1):
        EthernetRepr.parse(data[:end])


def test_setters_edit_in_place_behind_tags() -> None:
    buf = bytearray(DOUBLE_TAG)
    frame = EthernetFrame.checked(buf)
    frame.dst = SRC
    frame.src = BROADCAST
    frame.ethertype = EtherType.ARP
    assert EthernetRepr.parse(buf) == EthernetRepr(
        BROADCAST, SRC, EtherType.ARP, DOUBLE_TAG_REPR.vlan
    )
    assert bytes(frame.payload) == PAYLOAD


def test_str() -> None:
    assert str(UNTAGGED_REPR) == "aa:bb:cc:dd:ee:01 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806)"
    assert str(DOUBLE_TAG_REPR) == (
        "aa:bb:cc:dd:ee:01 > ff:ff:ff:ff:ff:ff, vlan 100, p 0, DEI, vlan 10, p 1,"
        " ethertype IPv6 (0x86dd)"
    )
    assert str(EthernetRepr(SRC, BROADCAST, 0x1234)).endswith("ethertype Unknown (0x1234)")


def test_vlan_must_be_none_or_one_or_two_tags() -> None:
    with pytest.raises(ValueError):
        EthernetRepr(SRC, BROADCAST, EtherType.IPV4, ())
    with pytest.raises(ValueError):
        EthernetRepr(SRC, BROADCAST, EtherType.IPV4, (VlanTag(1),) * 3)


@pytest.mark.parametrize(
    ("group", "mac"),
    [
        (IPv4Address("224.0.0.1"), "01:00:5e:00:00:01"),
        (IPv4Address("239.255.255.250"), "01:00:5e:7f:ff:fa"),
        (IPv4Address("239.128.1.2"), "01:00:5e:00:01:02"),  # high bit of the 24 dropped
    ],
)
def test_ipv4_multicast_mac(group: IPv4Address, mac: str) -> None:
    assert ipv4_multicast_mac(group) == EthernetAddress(mac)


@pytest.mark.parametrize(
    ("group", "mac"),
    [
        (IPv6Address("ff02::1"), "33:33:00:00:00:01"),
        (IPv6Address("ff02::1:ff00:2"), "33:33:ff:00:00:02"),
    ],
)
def test_ipv6_multicast_mac(group: IPv6Address, mac: str) -> None:
    assert ipv6_multicast_mac(group) == EthernetAddress(mac)


def test_multicast_mac_rejects_unicast() -> None:
    with pytest.raises(ValueError):
        ipv4_multicast_mac(IPv4Address("198.18.0.1"))
    with pytest.raises(ValueError):
        ipv6_multicast_mac(IPv6Address("fd00::1"))


@settings(max_examples=200)
@given(ethernet_reprs, st.binary(max_size=32))
def test_round_trip(repr_: EthernetRepr, payload: bytes) -> None:
    buf = bytearray(b"\xa5" * (repr_.header_len + len(payload)))
    repr_.emit(buf)
    buf[repr_.header_len :] = payload
    assert EthernetRepr.parse(buf) == repr_
    assert bytes(EthernetFrame.checked(buf).payload) == payload


# Arbitrary bytes, plus frames built from TPID-heavy 16-bit words so that tags are exercised.
fuzz_frames = st.binary(max_size=40) | st.builds(
    lambda addresses, words, end: (addresses + b"".join(words))[:end],
    st.binary(min_size=12, max_size=12),
    st.lists(st.sampled_from([b"\x81\x00", b"\x88\xa8", b"\x00\x05", b"\x08\x00"]), max_size=8),
    st.integers(0, 30),
)


@settings(max_examples=300)
@given(fuzz_frames)
def test_arbitrary_bytes_raise_only_wire_errors(data: bytes) -> None:
    try:
        repr_ = EthernetRepr.parse(data)
    except WireError:
        return
    str(repr_)
