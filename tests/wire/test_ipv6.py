"""IPv6 codec: RFC 8200 fixed header, extension-header chain walking, fragment header."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.wire.errors import Malformed, Truncated, WireError
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ipv6 import (
    MAX_EXTENSION_HEADERS,
    Ipv6FragmentRepr,
    Ipv6Option,
    Ipv6OptionAction,
    Ipv6OptionsRepr,
    Ipv6Packet,
    Ipv6Repr,
    Ipv6RoutingRepr,
    walk_extension_headers,
)

SRC, DST = IPv6Address("fd00::1"), IPv6Address("fd00::2")
ADDRESSES = SRC.packed + DST.packed

# Version 6, traffic class 0xa1, flow label 0x23456, payload 8, ICMPv6, hop limit 255.
HEADER = bytes.fromhex("6a123456 0008 3a ff") + ADDRESSES
PACKET = HEADER + bytes.fromhex("8000 0000 0001 0002")
PACKET_REPR = Ipv6Repr(SRC, DST, IpProtocol.ICMPV6, 8, 255, 0xA1, 0x23456)

# Hop-by-hop: router alert (type 5, value 0) then PadN(0); next header destination options.
HOP_BY_HOP = bytes.fromhex("3c 00 0502 0000 0100")
# Destination options: experimental option 0x1e carrying "ab", then two Pad1; next fragment.
DEST_OPTS = bytes.fromhex("2c 00 1e02 6162 0000")
# Fragment: next UDP, offset 1448, M set, identification 0x12345678.
FRAG = bytes.fromhex("11 00 05a9 12345678")
FRAG_REPR = Ipv6FragmentRepr(IpProtocol.UDP, 1448, True, 0x12345678)
HOP_BY_HOP_REPR = Ipv6OptionsRepr(
    IpProtocol.HOPOPT, IpProtocol.IPV6_OPTS, (Ipv6Option(5, b"\x00\x00", 2),)
)
DEST_OPTS_REPR = Ipv6OptionsRepr(
    IpProtocol.IPV6_OPTS, IpProtocol.IPV6_FRAG, (Ipv6Option(0x1E, b"ab", 10),)
)


def packet(next_header: int, payload: bytes) -> bytes:
    return bytes.fromhex("6000 0000") + len(payload).to_bytes(2, "big") + bytes(
        [next_header, 64]
    ) + ADDRESSES + payload


def fragment(next_header: int, frag_offset: int, more: bool) -> bytes:
    buf = bytearray(b"\xa5" * 8)
    Ipv6FragmentRepr(next_header, frag_offset, more, 7).emit(buf)
    return bytes(buf)


def options(next_header: int, body: bytes) -> bytes:
    """An options header (hop-by-hop or destination) around ``body`` (length 6 + 8k)."""
    assert (len(body) + 2) % 8 == 0
    return bytes([next_header, (len(body) + 2) // 8 - 1]) + body


ipv6_reprs = st.builds(
    Ipv6Repr,
    src=st.ip_addresses(v=6),
    dst=st.ip_addresses(v=6),
    next_header=st.integers(0, 255),
    payload_len=st.integers(0, 64),
    hop_limit=st.integers(0, 255),
    traffic_class=st.integers(0, 255),
    flow_label=st.integers(0, 0xFFFFF),
)
fragment_reprs = st.builds(
    Ipv6FragmentRepr,
    next_header=st.integers(0, 255),
    frag_offset=st.integers(0, 0x1FFF).map(lambda units: units * 8),
    more_frags=st.booleans(),
    ident=st.integers(0, 0xFFFFFFFF),
)


def test_parse_known_bytes() -> None:
    assert Ipv6Repr.parse(PACKET) == PACKET_REPR
    view = Ipv6Packet.checked(PACKET)
    assert (view.version, view.traffic_class, view.flow_label) == (6, 0xA1, 0x23456)
    assert (view.payload_len, view.next_header, view.hop_limit) == (8, 58, 255)
    assert (view.src, view.dst, view.header_len) == (SRC, DST, 40)
    assert (view.src_int, view.dst_int) == (int(SRC), int(DST))
    assert bytes(view.payload) == PACKET[40:]


def test_emit_known_bytes() -> None:
    buf = bytearray(b"\xa5" * PACKET_REPR.buffer_len)
    PACKET_REPR.emit(buf)
    assert buf[:40] == HEADER
    assert buf[40:] == b"\xa5" * 8


def test_ethernet_padding_after_payload_len_is_ignored() -> None:
    data = PACKET + bytes(10)
    assert Ipv6Repr.parse(data) == PACKET_REPR
    assert bytes(Ipv6Packet.checked(data).payload) == PACKET[40:]


def test_truncated_at_every_offset() -> None:
    for end in range(len(PACKET)):
        with pytest.raises(Truncated):
            Ipv6Repr.parse(PACKET[:end])


@pytest.mark.parametrize("first_byte", [0x40, 0x00, 0x70])
def test_other_versions_are_malformed(first_byte: int) -> None:
    with pytest.raises(Malformed):
        Ipv6Repr.parse(bytes([first_byte]) + PACKET[1:])


def test_in_place_edits() -> None:
    buf = bytearray(PACKET)
    view = Ipv6Packet.checked(buf)
    view.hop_limit -= 1
    view.src, view.dst = view.dst, view.src
    edited = Ipv6Repr.parse(buf)
    assert (edited.src, edited.dst, edited.hop_limit) == (DST, SRC, 254)


def test_str() -> None:
    assert str(Ipv6Repr(SRC, DST, IpProtocol.ICMPV6, 64, 255)) == (
        "IP6 fd00::1 > fd00::2: next-header icmpv6 (58), payload length 64, hlim 255"
    )
    assert str(PACKET_REPR).endswith(", class 0xa1, flowlabel 0x23456")
    assert str(FRAG_REPR) == "frag id 0x12345678, offset 1448, more, next-header udp (17)"


def test_no_extension_headers() -> None:
    chain = Ipv6Packet.checked(PACKET).header_chain()
    assert (chain.protocol, chain.offset, chain.headers, chain.fragment) == (58, 0, (), None)


def test_hop_by_hop_destination_options_fragment_chain() -> None:
    data = packet(IpProtocol.HOPOPT, HOP_BY_HOP + DEST_OPTS + FRAG + b"fragment data")
    chain = Ipv6Packet.checked(data).header_chain()
    assert chain.headers == (HOP_BY_HOP_REPR, DEST_OPTS_REPR, FRAG_REPR)
    assert (chain.protocol, chain.offset, chain.fragment) == (IpProtocol.UDP, 24, FRAG_REPR)
    router_alert, = HOP_BY_HOP_REPR.options
    assert router_alert.action_if_unrecognised is Ipv6OptionAction.SKIP
    assert not router_alert.may_change_en_route


def test_walk_stops_at_a_non_first_fragment() -> None:
    # After the fragment header comes fragment data, not a header: it must not be parsed.
    payload = fragment(IpProtocol.IPV6_OPTS, 1448, False) + b"\xff" * 16
    chain = walk_extension_headers(IpProtocol.IPV6_FRAG, payload)
    assert (chain.protocol, chain.offset) == (IpProtocol.IPV6_OPTS, 8)
    assert chain.fragment == Ipv6FragmentRepr(IpProtocol.IPV6_OPTS, 1448, False, 7)


def test_walk_continues_after_an_atomic_fragment() -> None:
    payload = fragment(IpProtocol.IPV6_OPTS, 0, False) + options(17, bytes(6)) + b"udp"
    chain = walk_extension_headers(IpProtocol.IPV6_FRAG, payload)
    assert (chain.protocol, chain.offset, len(chain.headers)) == (IpProtocol.UDP, 16, 2)
    assert chain.fragment is not None and chain.fragment.is_atomic


def test_routing_header() -> None:
    # Segment routing (type 4), segments left 0, 20 bytes of type-specific data.
    routing = bytes([IpProtocol.IPV6_NONXT, 2, 4, 0]) + bytes(range(20))
    chain = walk_extension_headers(IpProtocol.IPV6_ROUTE, routing + b"ignored")
    assert chain.headers == (Ipv6RoutingRepr(IpProtocol.IPV6_NONXT, 4, 0, bytes(range(20))),)
    assert (chain.protocol, chain.offset) == (IpProtocol.IPV6_NONXT, 24)


def test_no_next_header_ends_the_chain() -> None:
    chain = walk_extension_headers(IpProtocol.IPV6_OPTS, options(59, bytes(6)) + b"\x00" * 8)
    assert (chain.protocol, chain.offset) == (IpProtocol.IPV6_NONXT, 8)


def test_hop_by_hop_not_first_is_malformed() -> None:
    payload = options(IpProtocol.HOPOPT, bytes(6)) + HOP_BY_HOP.replace(b"\x3c", b"\x11", 1)
    with pytest.raises(Malformed, match="not first"):
        walk_extension_headers(IpProtocol.IPV6_OPTS, payload)


def test_chain_longer_than_the_limit_is_malformed() -> None:
    within = options(IpProtocol.IPV6_OPTS, bytes(6)) * (MAX_EXTENSION_HEADERS - 1)
    within += options(17, bytes(6))
    assert walk_extension_headers(IpProtocol.IPV6_OPTS, within).offset == 8 * MAX_EXTENSION_HEADERS
    too_long = options(IpProtocol.IPV6_OPTS, bytes(6)) * (MAX_EXTENSION_HEADERS + 1)
    with pytest.raises(Malformed, match="extension headers"):
        walk_extension_headers(IpProtocol.IPV6_OPTS, too_long + options(17, bytes(6)))


def test_self_referencing_fragments_are_bounded() -> None:
    atomic_fragment = fragment(IpProtocol.IPV6_FRAG, 0, False)
    with pytest.raises(Malformed, match="extension headers"):
        walk_extension_headers(IpProtocol.IPV6_FRAG, atomic_fragment * 100)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (bytes.fromhex("1e05 0000 0000"), "overruns"),  # option data past the header
        (bytes.fromhex("0000 0000 001e"), "overruns"),  # option length byte missing
        (bytes(14), "padding"),  # 14 bytes of Pad1
        (bytes.fromhex("0106") + bytes(12), "padding"),  # PadN of 8 bytes
        (bytes.fromhex("1e00") * 9 + bytes.fromhex("0102 0000"), "options"),  # 9 options
    ],
    ids=["overrun", "no-length", "pad1-run", "padn-run", "too-many-options"],
)
def test_bad_options_are_malformed(body: bytes, reason: str) -> None:
    with pytest.raises(Malformed, match=reason):
        walk_extension_headers(IpProtocol.IPV6_OPTS, options(17, body))


def test_seven_bytes_of_padding_between_options_are_accepted() -> None:
    body = bytes.fromhex("0105") + bytes(5) + bytes.fromhex("1e05") + b"hello"
    chain = walk_extension_headers(IpProtocol.IPV6_OPTS, options(17, body))
    assert chain.headers == (
        Ipv6OptionsRepr(IpProtocol.IPV6_OPTS, IpProtocol.UDP, (Ipv6Option(0x1E, b"hello", 9),)),
    )


def test_option_action_bits() -> None:
    actions = [Ipv6Option(t, b"", 0).action_if_unrecognised for t in (0x1E, 0x5E, 0x9E, 0xDE)]
    assert actions == list(Ipv6OptionAction)
    assert Ipv6Option(0x3E, b"", 0).may_change_en_route


def test_extension_header_past_the_payload_is_truncated() -> None:
    chain = HOP_BY_HOP + DEST_OPTS + FRAG
    for end in range(len(chain)):
        with pytest.raises(Truncated):
            walk_extension_headers(IpProtocol.HOPOPT, chain[:end])


def test_fragment_header_parse_ignores_reserved_bits_and_emit_zeroes_them() -> None:
    assert Ipv6FragmentRepr.parse(bytes.fromhex("11 ff 05af 12345678")) == FRAG_REPR
    buf = bytearray(b"\xa5" * FRAG_REPR.header_len)
    FRAG_REPR.emit(buf)
    assert buf == FRAG


def test_fragment_header_truncated() -> None:
    for end in range(len(FRAG)):
        with pytest.raises(Truncated):
            Ipv6FragmentRepr.parse(FRAG[:end])


def test_emit_rejects_unrepresentable_values() -> None:
    with pytest.raises(ValueError):
        Ipv6FragmentRepr(17, 12, False, 0).emit(bytearray(8))
    with pytest.raises(ValueError):
        Ipv6Repr(SRC, DST, 17, 0x10000).emit(bytearray(40))


@settings(max_examples=200)
@given(ipv6_reprs)
def test_round_trip(repr_: Ipv6Repr) -> None:
    buf = bytearray(b"\xa5" * repr_.buffer_len)
    repr_.emit(buf)
    assert Ipv6Repr.parse(buf) == repr_
    str(repr_)


@settings(max_examples=200)
@given(fragment_reprs)
def test_fragment_round_trip(repr_: Ipv6FragmentRepr) -> None:
    buf = bytearray(b"\xa5" * repr_.header_len)
    repr_.emit(buf)
    assert Ipv6FragmentRepr.parse(buf) == repr_
    str(repr_)


@settings(max_examples=200)
@given(st.binary(max_size=80))
def test_arbitrary_bytes_raise_only_wire_errors(data: bytes) -> None:
    try:
        repr_ = Ipv6Repr.parse(data)
    except WireError:
        return
    str(repr_)


EXTENSION_OR_UPPER = [0, 43, 44, 60, 17, 59]


@st.composite
def fuzz_chains(draw: st.DrawFn) -> bytes:
    """Extension-header-shaped chunks: plausible next-header and length bytes, random bodies."""
    chunks = []
    for _ in range(draw(st.integers(0, 10))):
        next_header = draw(st.sampled_from(EXTENSION_OR_UPPER))
        units = draw(st.integers(0, 2))
        body = draw(st.binary(min_size=units * 8 + 6, max_size=units * 8 + 6))
        chunks.append(bytes([next_header, units]) + body)
    data = b"".join(chunks)
    return data[: draw(st.integers(0, len(data)))]


@settings(max_examples=300)
@given(st.sampled_from(EXTENSION_OR_UPPER), fuzz_chains() | st.binary(max_size=64))
def test_arbitrary_chains_raise_only_wire_errors(first: int, payload: bytes) -> None:
    try:
        chain = walk_extension_headers(first, payload)
    except WireError:
        return
    assert 0 <= chain.offset <= len(payload)
    assert len(chain.headers) <= MAX_EXTENSION_HEADERS
