"""Neighbor Discovery codec (RFC 4861): messages, options, validity checks, address helpers."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.wire.checksum import CHECKSUM_SOFTWARE, ChecksumCaps
from ethox_asyncio.stack.wire.errors import (
    BadChecksum,
    Malformed,
    Truncated,
    Unsupported,
    WireError,
)
from ethox_asyncio.stack.wire.ethernet import EthernetAddress
from ethox_asyncio.stack.wire.icmpv6 import Icmpv6Packet, parse_icmpv6
from ethox_asyncio.stack.wire.ndisc import (
    ALL_NODES,
    ALL_ROUTERS,
    INFINITE_LIFETIME,
    NdiscRepr,
    NeighborAdvert,
    NeighborSolicit,
    PrefixInformation,
    RouterAdvert,
    RouterSolicit,
    link_local_from_mac,
    parse_ndisc,
    solicited_node_multicast,
)

NO_VERIFY = ChecksumCaps(verify=False)
MAC = EthernetAddress("52:54:00:12:34:56")
PEER_MAC = EthernetAddress("52:54:00:ab:cd:ef")
HOST = IPv6Address("fe80::5054:ff:fe12:3456")
TARGET = IPv6Address("fd00::2")
UNSPECIFIED = IPv6Address("::")


def rfc1071(data: bytes) -> int:
    """Reference checksum, written from RFC 1071 §4.1 independently of checksum.py."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def with_checksum(message: bytes, src: IPv6Address, dst: IPv6Address) -> bytes:
    """Fill the ICMPv6 checksum over the RFC 8200 §8.1 pseudo-header and ``message``."""
    pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(message), 58)
    return message[:2] + struct.pack("!H", rfc1071(pseudo + message)) + message[4:]


def emitted(repr_: NdiscRepr, src: IPv6Address, dst: IPv6Address) -> bytes:
    buf = bytearray(b"\xa5" * repr_.buffer_len)
    repr_.emit(buf, src, dst, CHECKSUM_SOFTWARE)
    return bytes(buf)


def lladdr_option(option_type: int, mac: bytes) -> bytes:
    return bytes([option_type, 1]) + mac  # RFC 4861 §4.6.1, RFC 2464 §6


def ns_bytes(target: IPv6Address = TARGET, options: bytes = b"") -> bytes:
    # RFC 4861 §4.3: type 135, code 0, checksum, reserved(32), target address.
    return bytes.fromhex("8700000000000000") + target.packed + options


# --- address helpers -------------------------------------------------------------------


def test_link_local_from_mac_known_values() -> None:
    assert link_local_from_mac(MAC) == IPv6Address("fe80::5054:ff:fe12:3456")
    # RFC 4291 appendix A: the universal/local bit is inverted, both ways.
    assert link_local_from_mac(EthernetAddress("00:00:5e:00:53:01")) == IPv6Address(
        "fe80::200:5eff:fe00:5301"
    )
    assert link_local_from_mac(EthernetAddress("02:00:00:00:00:01")) == IPv6Address(
        "fe80::ff:fe00:1"
    )


def test_solicited_node_multicast_known_values() -> None:
    assert solicited_node_multicast(TARGET) == IPv6Address("ff02::1:ff00:2")
    assert solicited_node_multicast(HOST) == IPv6Address("ff02::1:ff12:3456")
    # RFC 4291 §2.7.1 example: 4037::01:800:200E:8C6C -> FF02::1:FF0E:8C6C.
    assert solicited_node_multicast(IPv6Address("4037::1:800:200e:8c6c")) == IPv6Address(
        "ff02::1:ff0e:8c6c"
    )


# --- known bytes -----------------------------------------------------------------------


def test_neighbor_solicit_known_bytes() -> None:
    dst = solicited_node_multicast(TARGET)
    message = with_checksum(ns_bytes(options=lladdr_option(1, MAC)), HOST, dst)
    parsed = parse_icmpv6(message, HOST, dst)
    assert parsed == NeighborSolicit(TARGET, MAC)
    assert str(parsed) == "ICMP6, neighbor solicitation, who has fd00::2, length 32"
    assert emitted(NeighborSolicit(TARGET, MAC), HOST, dst) == message


def test_neighbor_advert_known_bytes() -> None:
    # RFC 4861 §4.4: R S O flags in the top bits of the word after the checksum.
    message = with_checksum(
        bytes.fromhex("8800000060000000") + TARGET.packed + lladdr_option(2, MAC), TARGET, HOST
    )
    parsed = parse_icmpv6(message, TARGET, HOST)
    expected = NeighborAdvert(TARGET, MAC, router=False, solicited=True, override=True)
    assert parsed == expected
    assert str(parsed) == "ICMP6, neighbor advertisement, tgt is fd00::2, length 32"
    assert emitted(expected, TARGET, HOST) == message


def test_router_solicit_known_bytes() -> None:
    message = with_checksum(bytes.fromhex("8500000000000000") + lladdr_option(1, MAC), HOST,
                            ALL_ROUTERS)
    parsed = parse_icmpv6(message, HOST, ALL_ROUTERS)
    assert parsed == RouterSolicit(MAC)
    assert str(parsed) == "ICMP6, router solicitation, length 16"
    assert emitted(RouterSolicit(MAC), HOST, ALL_ROUTERS) == message


def prefix_option(prefix: str, prefix_len: int, flags: int, valid: int, preferred: int) -> bytes:
    # RFC 4861 §4.6.2: type 3, length 4, prefix length, L/A flags, lifetimes, reserved, prefix.
    return struct.pack(
        "!BBBBIII16s", 3, 4, prefix_len, flags, valid, preferred, 0, IPv6Address(prefix).packed
    )


def test_router_advert_with_several_options_and_unknown_ones() -> None:
    rdnss = bytes([25, 3, 0, 0]) + struct.pack("!I", 600) + IPv6Address("fd00::53").packed
    nonce = bytes([14, 1]) + b"\x01\x02\x03\x04\x05\x06"
    options = (
        lladdr_option(1, MAC)
        + rdnss  # RFC 8106 RDNSS: unknown here, skipped
        + bytes.fromhex("0501000000000500")  # MTU 1280 (RFC 4861 §4.6.4)
        + prefix_option("fd00::", 64, 0xC0, INFINITE_LIFETIME, 3600)
        + nonce  # RFC 3971 nonce: unknown here, skipped
        + prefix_option("fd01:0:0:1::", 64, 0x80, 7200, 0)
    )
    # RFC 4861 §4.2: hop limit 64, M flag, lifetime 1800 s, reachable 30000 ms, retrans 1000 ms.
    fixed = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0x80, 1800, 30000, 1000)
    message = with_checksum(fixed + options, HOST, ALL_NODES)
    parsed = parse_icmpv6(message, HOST, ALL_NODES)
    assert parsed == RouterAdvert(
        hop_limit=64,
        managed=True,
        other_config=False,
        router_lifetime=1800,
        reachable_time=30000,
        retrans_time=1000,
        source_lladdr=MAC,
        mtu=1280,
        prefixes=(
            PrefixInformation(IPv6Network("fd00::/64"), True, True, INFINITE_LIFETIME, 3600),
            PrefixInformation(IPv6Network("fd01:0:0:1::/64"), True, False, 7200, 0),
        ),
    )
    # The length is the Repr's buffer_len: the 24 octets of skipped options are gone.
    assert str(parsed) == (
        "ICMP6, router advertisement, hop limit 64, lifetime 1800s, flags [managed], "
        "prefix fd00::/64, prefix fd01:0:0:1::/64, mtu 1280, length 96"
    )


def test_router_advert_emit_known_bytes() -> None:
    advert = RouterAdvert(
        hop_limit=64,
        other_config=True,
        router_lifetime=1800,
        source_lladdr=MAC,
        mtu=1500,
        prefixes=(PrefixInformation(IPv6Network("fd00::/64"), valid_lifetime=86400,
                                    preferred_lifetime=14400),),
    )
    fixed = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0x40, 1800, 0, 0)
    options = (
        lladdr_option(1, MAC)
        + bytes.fromhex("05010000000005dc")
        + prefix_option("fd00::", 64, 0xC0, 86400, 14400)
    )
    assert emitted(advert, HOST, ALL_NODES) == with_checksum(fixed + options, HOST, ALL_NODES)


# --- options ---------------------------------------------------------------------------


def test_zero_length_option_is_malformed() -> None:
    message = with_checksum(ns_bytes(options=bytes([1, 0]) + bytes(6)), HOST, TARGET)
    with pytest.raises(Malformed):
        parse_icmpv6(message, HOST, TARGET)
    # Even an unknown option of length 0 (RFC 4861 §4.6).
    message = with_checksum(ns_bytes(options=bytes([99, 0]) + bytes(6)), HOST, TARGET)
    with pytest.raises(Malformed):
        parse_icmpv6(message, HOST, TARGET)


def test_option_running_past_the_message_is_truncated() -> None:
    for options in (bytes([1, 2]) + bytes(6), bytes([3]), bytes([99, 1, 0, 0])):
        message = with_checksum(ns_bytes(options=options), HOST, TARGET)
        with pytest.raises(Truncated):
            parse_icmpv6(message, HOST, TARGET)


def test_prefix_option_checks() -> None:
    def advert(option: bytes) -> bytes:
        fixed = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0)
        return with_checksum(fixed + option, HOST, ALL_NODES)

    wrong_length = bytes([3, 3]) + bytes(22)
    with pytest.raises(Malformed):
        parse_icmpv6(advert(wrong_length), HOST, ALL_NODES)
    with pytest.raises(Malformed):
        parse_icmpv6(advert(prefix_option("fd00::", 129, 0, 0, 0)), HOST, ALL_NODES)
    # Bits past the prefix length are ignored (RFC 4861 §4.6.2).
    parsed = parse_icmpv6(advert(prefix_option("fd00::1:2:3:4", 64, 0, 0, 0)), HOST, ALL_NODES)
    assert isinstance(parsed, RouterAdvert)
    assert parsed.prefixes == (PrefixInformation(IPv6Network("fd00::/64"), False, False, 0, 0),)


def test_mtu_option_of_wrong_length_is_malformed() -> None:
    fixed = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0)
    message = with_checksum(fixed + bytes([5, 2]) + bytes(14), HOST, ALL_NODES)
    with pytest.raises(Malformed):
        parse_icmpv6(message, HOST, ALL_NODES)


def test_non_ethernet_lladdr_skipped_and_first_repeat_wins() -> None:
    options = bytes([1, 2]) + bytes(14) + lladdr_option(1, MAC) + lladdr_option(1, PEER_MAC)
    message = with_checksum(ns_bytes(options=options), HOST, TARGET)
    assert parse_icmpv6(message, HOST, TARGET) == NeighborSolicit(TARGET, MAC)


def test_options_irrelevant_to_the_message_are_ignored() -> None:
    # A target link-layer address in a solicitation is meaningless there.
    message = with_checksum(ns_bytes(options=lladdr_option(2, MAC)), HOST, TARGET)
    assert parse_icmpv6(message, HOST, TARGET) == NeighborSolicit(TARGET)


# --- RFC 4861 §6.1 / §7.1 validity -----------------------------------------------------


def test_nonzero_code_is_malformed() -> None:
    message = bytearray(ns_bytes())
    message[1] = 1
    with pytest.raises(Malformed):
        parse_icmpv6(with_checksum(bytes(message), HOST, TARGET), HOST, TARGET)


def test_multicast_target_is_malformed() -> None:
    for msg_type in (135, 136):
        message = bytes([msg_type]) + bytes(7) + ALL_NODES.packed
        with pytest.raises(Malformed):
            parse_icmpv6(with_checksum(message, HOST, TARGET), HOST, TARGET)


def test_solicited_advert_to_multicast_is_malformed() -> None:
    message = bytes.fromhex("8800000040000000") + TARGET.packed
    with pytest.raises(Malformed):
        parse_icmpv6(with_checksum(message, TARGET, ALL_NODES), TARGET, ALL_NODES)
    unsolicited = bytes.fromhex("8800000020000000") + TARGET.packed
    parsed = parse_icmpv6(with_checksum(unsolicited, TARGET, ALL_NODES), TARGET, ALL_NODES)
    assert parsed == NeighborAdvert(TARGET, override=True)


def test_duplicate_address_detection_solicit() -> None:
    group = solicited_node_multicast(TARGET)
    dad = with_checksum(ns_bytes(), UNSPECIFIED, group)
    assert parse_icmpv6(dad, UNSPECIFIED, group) == NeighborSolicit(TARGET)
    with_lladdr = with_checksum(ns_bytes(options=lladdr_option(1, MAC)), UNSPECIFIED, group)
    with pytest.raises(Malformed):
        parse_icmpv6(with_lladdr, UNSPECIFIED, group)
    to_unicast = with_checksum(ns_bytes(), UNSPECIFIED, TARGET)
    with pytest.raises(Malformed):
        parse_icmpv6(to_unicast, UNSPECIFIED, TARGET)


def test_router_solicit_from_unspecified_without_lladdr_only() -> None:
    bare = with_checksum(bytes.fromhex("8500000000000000"), UNSPECIFIED, ALL_ROUTERS)
    assert parse_icmpv6(bare, UNSPECIFIED, ALL_ROUTERS) == RouterSolicit()
    message = bytes.fromhex("8500000000000000") + lladdr_option(1, MAC)
    with pytest.raises(Malformed):
        parse_icmpv6(with_checksum(message, UNSPECIFIED, ALL_ROUTERS), UNSPECIFIED, ALL_ROUTERS)


def test_router_advert_must_come_from_link_local() -> None:
    message = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
    with pytest.raises(Malformed):
        parse_icmpv6(with_checksum(message, TARGET, ALL_NODES), TARGET, ALL_NODES)


def test_redirect_unsupported() -> None:
    message = bytes([137]) + bytes(7) + TARGET.packed + TARGET.packed
    with pytest.raises(Unsupported):
        parse_icmpv6(with_checksum(message, HOST, TARGET), HOST, TARGET)
    with pytest.raises(Unsupported):
        parse_ndisc(Icmpv6Packet(message), HOST, TARGET)


# --- truncation, checksums -------------------------------------------------------------


def test_truncated_at_every_offset() -> None:
    message = emitted(NeighborSolicit(TARGET, MAC), HOST, TARGET)
    for length in range(len(message)):
        prefix = message[:length]
        with pytest.raises(WireError):
            parse_icmpv6(prefix, HOST, TARGET)
        if length == 24:  # a whole solicitation without options
            assert parse_icmpv6(prefix, HOST, TARGET, NO_VERIFY) == NeighborSolicit(TARGET)
        else:
            with pytest.raises(Truncated):
                parse_icmpv6(prefix, HOST, TARGET, NO_VERIFY)


def test_router_advert_truncated_fixed_part() -> None:
    message = emitted(RouterAdvert(hop_limit=64), HOST, ALL_NODES)
    for length in range(8, 16):
        with pytest.raises(Truncated):
            parse_icmpv6(message[:length], HOST, ALL_NODES, NO_VERIFY)


def test_bad_checksum() -> None:
    message = bytearray(emitted(NeighborAdvert(TARGET, MAC, solicited=True), TARGET, HOST))
    message[-1] ^= 0x01
    with pytest.raises(BadChecksum):
        parse_icmpv6(message, TARGET, HOST)
    assert parse_icmpv6(message, TARGET, HOST, NO_VERIFY) == NeighborAdvert(
        TARGET, EthernetAddress("52:54:00:12:34:57"), solicited=True
    )


# --- round trips and fuzz --------------------------------------------------------------

macs = st.binary(min_size=6, max_size=6).map(EthernetAddress)
optional_macs = st.none() | macs
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
unicast_targets = st.ip_addresses(v=6).filter(lambda addr: not addr.is_multicast)
prefixes = st.builds(
    PrefixInformation,
    st.builds(
        lambda addr, length: IPv6Network((addr, length), strict=False),
        st.ip_addresses(v=6),
        st.integers(0, 128),
    ),
    st.booleans(),
    st.booleans(),
    u32,
    u32,
)

# (message, source, destination) triples valid under RFC 4861 §6.1 and §7.1.
valid_messages = st.one_of(
    st.tuples(st.builds(RouterSolicit, optional_macs), st.just(HOST), st.just(ALL_ROUTERS)),
    st.tuples(
        st.builds(
            RouterAdvert, u8, st.booleans(), st.booleans(), u16, u32, u32, optional_macs,
            st.none() | u32, st.lists(prefixes, max_size=3).map(tuple),
        ),
        st.just(HOST),
        st.just(ALL_NODES),
    ),
    st.tuples(st.builds(NeighborSolicit, unicast_targets, optional_macs), st.just(HOST),
              st.just(TARGET)),
    st.tuples(
        st.builds(
            NeighborAdvert, unicast_targets, optional_macs, st.booleans(), st.booleans(),
            st.booleans(),
        ),
        st.just(TARGET),
        st.just(HOST),
    ),
)


@settings(max_examples=200)
@given(case=valid_messages)
def test_round_trip(case: tuple[NdiscRepr, IPv6Address, IPv6Address]) -> None:
    repr_, src, dst = case
    message = emitted(repr_, src, dst)
    assert len(message) == repr_.buffer_len
    assert repr_.buffer_len >= repr_.header_len
    assert parse_icmpv6(message, src, dst) == repr_
    assert isinstance(str(repr_), str)


@settings(max_examples=200)
@given(msg_type=st.sampled_from([133, 134, 135, 136]), body=st.binary(max_size=80),
       src=st.sampled_from([HOST, UNSPECIFIED, TARGET]),
       dst=st.sampled_from([ALL_NODES, TARGET, solicited_node_multicast(TARGET)]))
def test_fuzz_raises_only_wire_errors(
    msg_type: int, body: bytes, src: IPv6Address, dst: IPv6Address
) -> None:
    try:
        parsed = parse_icmpv6(bytes([msg_type, 0]) + body, src, dst, NO_VERIFY)
    except WireError:
        return
    str(parsed)


@settings(max_examples=200)
@given(options=st.lists(st.tuples(u8, st.integers(0, 4), st.binary(max_size=40)), max_size=5))
def test_fuzz_option_lists(options: list[tuple[int, int, bytes]]) -> None:
    encoded = b"".join(bytes([option_type, length]) + data for option_type, length, data in options)
    try:
        parse_icmpv6(ns_bytes(options=encoded), HOST, TARGET, NO_VERIFY)
    except WireError:
        pass
