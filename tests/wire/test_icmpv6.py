"""ICMPv6 codec (RFC 4443): parse, emit, pseudo-header checksums, round trips, echo reply."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.wire.checksum import (
    CHECKSUM_SOFTWARE,
    ChecksumCaps,
    TxChecksum,
    checksum,
)
from ethox_asyncio.stack.wire.errors import (
    BadChecksum,
    Malformed,
    Truncated,
    Unsupported,
    WireError,
)
from ethox_asyncio.stack.wire.icmpv6 import (
    HEADER_LEN,
    Icmpv6DestUnreachable,
    Icmpv6DestUnreachableCode,
    Icmpv6EchoReply,
    Icmpv6EchoRequest,
    Icmpv6Packet,
    Icmpv6PacketTooBig,
    Icmpv6ParamProblem,
    Icmpv6ParamProblemCode,
    Icmpv6Repr,
    Icmpv6TimeExceeded,
    Icmpv6TimeExceededCode,
    QuotedIpv6Header,
    parse_icmpv6,
    parse_quoted_ipv6,
)

NO_VERIFY = ChecksumCaps(verify=False)
HOST = IPv6Address("fe80::5054:ff:fe12:3456")
PEER = IPv6Address("fd00::2")


def pseudo_header(src: IPv6Address, dst: IPv6Address, length: int) -> bytes:
    """RFC 8200 §8.1: source, destination, upper-layer length (32), zero(24), next header."""
    return src.packed + dst.packed + struct.pack("!I3xB", length, 58)


def rfc1071(data: bytes) -> int:
    """Reference checksum, written from RFC 1071 §4.1 independently of checksum.py."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def with_checksum(message: bytes, src: IPv6Address = HOST, dst: IPv6Address = PEER) -> bytes:
    value = rfc1071(pseudo_header(src, dst, len(message)) + message)
    return message[:2] + struct.pack("!H", value) + message[4:]


def emitted(
    repr_: Icmpv6Repr,
    src: IPv6Address = HOST,
    dst: IPv6Address = PEER,
    caps: ChecksumCaps = CHECKSUM_SOFTWARE,
) -> bytes:
    buf = bytearray(b"\xa5" * repr_.buffer_len)
    repr_.emit(buf, src, dst, caps)
    return bytes(buf)


# UDP [fd00::2]:1234 -> [fd00::99]:9 as an ICMPv6 error quotes it (RFC 8200 §3 header).
QUOTED_UDP = (
    struct.pack("!IHBB", 6 << 28, 8, 17, 64)
    + PEER.packed
    + IPv6Address("fd00::99").packed
    + struct.pack("!HHHH", 1234, 9, 8, 0)
)

# Echo request HOST -> PEER, id 1, seq 2, 56 octets of "a": checksum 0x599b, confirmed by tshark.
ECHO_REQUEST = bytes.fromhex("8000599b00010002") + b"a" * 56


def test_parse_echo_request_known_bytes() -> None:
    assert parse_icmpv6(ECHO_REQUEST, HOST, PEER) == Icmpv6EchoRequest(1, 2, b"a" * 56)
    packet = Icmpv6Packet.checked(ECHO_REQUEST)
    assert (packet.msg_type, packet.code, packet.checksum) == (128, 0, 0x599B)
    assert (packet.echo_ident, packet.echo_seq_no) == (1, 2)


def test_emit_echo_request_known_bytes() -> None:
    assert emitted(Icmpv6EchoRequest(1, 2, b"a" * 56)) == ECHO_REQUEST


def test_checksum_depends_on_addresses() -> None:
    with pytest.raises(BadChecksum):
        parse_icmpv6(ECHO_REQUEST, PEER, IPv6Address("fd00::3"))
    # Swapping source and destination leaves the pseudo-header sum unchanged.
    assert parse_icmpv6(ECHO_REQUEST, PEER, HOST) == Icmpv6EchoRequest(1, 2, b"a" * 56)


def test_parse_echo_reply_known_bytes() -> None:
    message = with_checksum(bytes.fromhex("81000000beef0007") + b"pong")
    assert parse_icmpv6(message, HOST, PEER) == Icmpv6EchoReply(0xBEEF, 7, b"pong")


def test_port_unreachable_known_bytes() -> None:
    message = with_checksum(bytes.fromhex("0104000000000000") + QUOTED_UDP)
    parsed = parse_icmpv6(message, HOST, PEER)
    assert parsed == Icmpv6DestUnreachable(Icmpv6DestUnreachableCode.PORT_UNREACHABLE, QUOTED_UDP)
    assert isinstance(parsed, Icmpv6DestUnreachable)
    assert parsed.quoted_ipv6_header() == QuotedIpv6Header(
        PEER, IPv6Address("fd00::99"), 17, 1234, 9
    )
    assert str(parsed) == (
        "ICMP6, destination unreachable, unreachable port, fd00::99 udp port 9, length 56"
    )
    assert emitted(parsed) == message


def test_packet_too_big_known_bytes() -> None:
    # RFC 4443 §3.2: the 32-bit MTU follows the checksum.
    message = with_checksum(bytes.fromhex("02000000000005dc") + QUOTED_UDP)
    parsed = parse_icmpv6(message, HOST, PEER)
    assert parsed == Icmpv6PacketTooBig(1500, QUOTED_UDP)
    assert Icmpv6Packet(message).mtu == 1500
    assert str(parsed) == "ICMP6, packet too big, mtu 1500, length 56"
    assert emitted(parsed) == message


def test_time_exceeded_known_bytes() -> None:
    message = with_checksum(bytes.fromhex("0300000000000000") + QUOTED_UDP)
    parsed = parse_icmpv6(message, HOST, PEER)
    assert parsed == Icmpv6TimeExceeded(Icmpv6TimeExceededCode.HOP_LIMIT_EXCEEDED, QUOTED_UDP)
    assert str(parsed) == "ICMP6, time exceeded in-transit for fd00::99, length 56"
    assert emitted(parsed) == message


def test_param_problem_known_bytes() -> None:
    # RFC 4443 §3.4: the 32-bit pointer follows the checksum.
    message = with_checksum(bytes.fromhex("0401000000000006") + QUOTED_UDP)
    parsed = parse_icmpv6(message, HOST, PEER)
    assert parsed == Icmpv6ParamProblem(
        Icmpv6ParamProblemCode.UNRECOGNIZED_NEXT_HEADER, 6, QUOTED_UDP
    )
    assert str(parsed) == (
        "ICMP6, parameter problem, unrecognized next header - octet 6, length 56"
    )
    assert emitted(parsed) == message


def test_unknown_codes_stay_int() -> None:
    parsed = parse_icmpv6(with_checksum(bytes.fromhex("0163000000000000")), HOST, PEER)
    assert parsed == Icmpv6DestUnreachable(99)
    assert isinstance(parsed, Icmpv6DestUnreachable)
    assert type(parsed.code) is int
    assert str(parsed) == "ICMP6, destination unreachable, unreachable code 99, length 8"


@pytest.mark.parametrize("msg_type", [0, 127, 130, 137, 143, 255])  # incl. MLD and redirect
def test_unsupported_types(msg_type: int) -> None:
    with pytest.raises(Unsupported):
        parse_icmpv6(with_checksum(bytes([msg_type]) + bytes(23)), HOST, PEER)


def test_str_echo() -> None:
    assert str(Icmpv6EchoRequest(1, 2, bytes(56))) == "ICMP6, echo request, id 1, seq 2, length 64"
    assert str(Icmpv6EchoReply(1, 2, bytes(56))) == "ICMP6, echo reply, id 1, seq 2, length 64"


# --- quoted header ---------------------------------------------------------------------


def test_quoted_header_cases() -> None:
    assert parse_quoted_ipv6(QUOTED_UDP[:39]) is None
    assert parse_quoted_ipv6(b"\x40" + QUOTED_UDP[1:]) is None  # version 4
    header = parse_quoted_ipv6(QUOTED_UDP[:42])
    assert header is not None and (header.src_port, header.dst_port) == (None, None)
    fragment = QUOTED_UDP[:6] + b"\x2c" + QUOTED_UDP[7:]  # extension headers are not walked
    header = parse_quoted_ipv6(fragment)
    assert header is not None and (header.next_header, header.dst_port) == (44, None)


# --- checksums -------------------------------------------------------------------------


def test_bad_checksum() -> None:
    for index in range(len(ECHO_REQUEST)):
        corrupted = bytearray(ECHO_REQUEST)
        corrupted[index] ^= 0x80
        with pytest.raises(BadChecksum):
            parse_icmpv6(corrupted, HOST, PEER)


def test_emit_partial_stores_folded_pseudo_header_sum() -> None:
    message = emitted(Icmpv6EchoRequest(1, 2, b"a" * 56), caps=ChecksumCaps(tx=TxChecksum.PARTIAL))
    pseudo = pseudo_header(HOST, PEER, len(message))
    assert struct.unpack_from("!H", message, 2)[0] == ~rfc1071(pseudo) & 0xFFFF
    # The device then sums the message (field included) and stores the complement.
    finished = message[:2] + struct.pack("!H", checksum(message)) + message[4:]
    assert finished == ECHO_REQUEST


def test_emit_none_leaves_zero() -> None:
    message = emitted(Icmpv6EchoRequest(1, 2, b"a" * 56), caps=ChecksumCaps(tx=TxChecksum.NONE))
    assert message == ECHO_REQUEST[:2] + b"\0\0" + ECHO_REQUEST[4:]
    assert parse_icmpv6(message, HOST, PEER, NO_VERIFY) == Icmpv6EchoRequest(1, 2, b"a" * 56)


def test_truncated_at_every_offset() -> None:
    message = emitted(Icmpv6EchoRequest(0x1234, 0x5678, bytes(range(1, 57))))
    for length in range(len(message)):
        with pytest.raises(Truncated if length < HEADER_LEN else BadChecksum):
            parse_icmpv6(message[:length], HOST, PEER)


# --- echo request -> reply in place ----------------------------------------------------


@settings(max_examples=200)
@given(
    ident=st.integers(0, 0xFFFF),
    seq_no=st.integers(0, 0xFFFF),
    data=st.binary(max_size=80),
    src=st.ip_addresses(v=6),
    dst=st.ip_addresses(v=6),
)
def test_echo_reply_in_place_matches_fresh_reply(
    ident: int, seq_no: int, data: bytes, src: IPv6Address, dst: IPv6Address
) -> None:
    buf = bytearray(emitted(Icmpv6EchoRequest(ident, seq_no, data), src, dst))
    Icmpv6Packet(buf).echo_request_to_reply()
    # The reply goes back with the addresses swapped.
    assert bytes(buf) == emitted(Icmpv6EchoReply(ident, seq_no, data), dst, src)
    assert parse_icmpv6(buf, dst, src) == Icmpv6EchoReply(ident, seq_no, data)


def test_echo_reply_to_multicast_request_needs_fill_checksum() -> None:
    all_nodes = IPv6Address("ff02::1")
    buf = bytearray(emitted(Icmpv6EchoRequest(1, 2, b"a"), PEER, all_nodes))
    packet = Icmpv6Packet(buf)
    packet.echo_request_to_reply()
    packet.fill_checksum(HOST, PEER)  # answered from our unicast address
    assert parse_icmpv6(buf, HOST, PEER) == Icmpv6EchoReply(1, 2, b"a")


def test_echo_reply_in_place_refuses_other_types() -> None:
    buf = bytearray(emitted(Icmpv6EchoReply(1, 1)))
    with pytest.raises(Malformed):
        Icmpv6Packet(buf).echo_request_to_reply()


# --- round trips and fuzz --------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
quotes = st.binary(max_size=64)

messages = st.one_of(
    st.builds(Icmpv6EchoRequest, u16, u16, st.binary(max_size=64)),
    st.builds(Icmpv6EchoReply, u16, u16, st.binary(max_size=64)),
    st.builds(
        Icmpv6DestUnreachable,
        st.sampled_from(list(Icmpv6DestUnreachableCode)) | st.integers(7, 0xFF),
        quotes,
    ),
    st.builds(Icmpv6PacketTooBig, u32, quotes),
    st.builds(
        Icmpv6TimeExceeded,
        st.sampled_from(list(Icmpv6TimeExceededCode)) | st.integers(2, 0xFF),
        quotes,
    ),
    st.builds(
        Icmpv6ParamProblem,
        st.sampled_from(list(Icmpv6ParamProblemCode)) | st.integers(3, 0xFF),
        u32,
        quotes,
    ),
)


@settings(max_examples=200)
@given(repr_=messages, src=st.ip_addresses(v=6), dst=st.ip_addresses(v=6))
def test_round_trip(repr_: Icmpv6Repr, src: IPv6Address, dst: IPv6Address) -> None:
    message = emitted(repr_, src, dst)
    assert len(message) == repr_.buffer_len
    assert repr_.header_len == HEADER_LEN
    assert rfc1071(pseudo_header(src, dst, len(message)) + message) == 0
    assert parse_icmpv6(message, src, dst) == repr_
    assert parse_icmpv6(Icmpv6Packet(message), src, dst) == repr_
    assert isinstance(str(repr_), str)


@settings(max_examples=200)
@given(data=st.binary(max_size=64), verify=st.booleans())
def test_fuzz_raises_only_wire_errors(data: bytes, verify: bool) -> None:
    try:
        parsed = parse_icmpv6(data, HOST, PEER, ChecksumCaps(verify=verify))
    except WireError:
        return
    str(parsed)


@settings(max_examples=200)
@given(body=st.binary(max_size=60), msg_type=st.sampled_from([1, 2, 3, 4, 128, 129]))
def test_fuzz_known_types(body: bytes, msg_type: int) -> None:
    parsed = parse_icmpv6(bytes([msg_type]) + body.ljust(7, b"\0"), HOST, PEER, NO_VERIFY)
    str(parsed)
    if isinstance(parsed, Icmpv6DestUnreachable | Icmpv6TimeExceeded | Icmpv6ParamProblem):
        parsed.quoted_ipv6_header()
