"""ICMPv4 codec (RFC 792, RFC 1191): parse, emit, round trips, checksums, in-place echo reply."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.wire.checksum import CHECKSUM_SOFTWARE, ChecksumCaps, TxChecksum
from ethox_asyncio.stack.wire.errors import (
    BadChecksum,
    Malformed,
    Truncated,
    Unsupported,
    WireError,
)
from ethox_asyncio.stack.wire.icmpv4 import (
    HEADER_LEN,
    Icmpv4DestUnreachable,
    Icmpv4DestUnreachableCode,
    Icmpv4EchoReply,
    Icmpv4EchoRequest,
    Icmpv4Packet,
    Icmpv4ParamProblem,
    Icmpv4Repr,
    Icmpv4TimeExceeded,
    Icmpv4TimeExceededCode,
    QuotedIpv4Header,
    parse_icmpv4,
    parse_quoted_ipv4,
)

NO_VERIFY = ChecksumCaps(verify=False)


def rfc1071(data: bytes) -> int:
    """Reference checksum, written from RFC 1071 §4.1 independently of checksum.py."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def with_checksum(message: bytes) -> bytes:
    """``message`` (checksum field zero) with its checksum filled in."""
    return message[:2] + struct.pack("!H", rfc1071(message)) + message[4:]


def emitted(repr_: Icmpv4Repr, caps: ChecksumCaps = CHECKSUM_SOFTWARE) -> bytes:
    buf = bytearray(b"\xa5" * repr_.buffer_len)
    repr_.emit(buf, caps)
    return bytes(buf)


# A UDP datagram 198.18.0.2:1234 -> 198.18.0.1:9 as an ICMP error quotes it: the
# 20-octet IPv4 header (RFC 791 §3.1) and the first 8 octets of its payload.
QUOTED_UDP = bytes.fromhex("45000024abcd400040110000c6120002c6120001") + struct.pack(
    "!HHHH", 1234, 9, 16, 0
)

# Echo request, id 1, seq 2, 56 octets of "x": checksum 0xcacf, confirmed by tshark.
ECHO_REQUEST = bytes.fromhex("0800cacf00010002") + b"x" * 56


def test_parse_echo_request_known_bytes() -> None:
    assert parse_icmpv4(ECHO_REQUEST) == Icmpv4EchoRequest(1, 2, b"x" * 56)
    packet = Icmpv4Packet.checked(ECHO_REQUEST)
    assert (packet.msg_type, packet.code, packet.checksum) == (8, 0, 0xCACF)
    assert (packet.echo_ident, packet.echo_seq_no) == (1, 2)
    assert bytes(packet.payload) == b"x" * 56


def test_emit_echo_request_known_bytes() -> None:
    assert emitted(Icmpv4EchoRequest(1, 2, b"x" * 56)) == ECHO_REQUEST


def test_parse_echo_reply_known_bytes() -> None:
    message = with_checksum(bytes.fromhex("00000000beef0007") + b"ping")
    assert parse_icmpv4(message) == Icmpv4EchoReply(0xBEEF, 7, b"ping")


def test_parse_port_unreachable_known_bytes() -> None:
    message = with_checksum(bytes.fromhex("0303000000000000") + QUOTED_UDP)
    parsed = parse_icmpv4(message)
    assert parsed == Icmpv4DestUnreachable(Icmpv4DestUnreachableCode.PORT_UNREACHABLE, QUOTED_UDP)
    assert isinstance(parsed, Icmpv4DestUnreachable)
    assert parsed.quoted_ipv4_header() == QuotedIpv4Header(
        IPv4Address("198.18.0.2"), IPv4Address("198.18.0.1"), 17, 1234, 9
    )
    assert str(parsed) == "ICMP 198.18.0.1 udp port 9 unreachable, length 36"
    assert emitted(parsed) == message


def test_frag_needed_carries_next_hop_mtu() -> None:
    # RFC 1191 §4: unused(16) then next-hop MTU(16) after the checksum.
    message = with_checksum(bytes.fromhex("0304000000000578") + QUOTED_UDP)
    parsed = parse_icmpv4(message)
    assert parsed == Icmpv4DestUnreachable(
        Icmpv4DestUnreachableCode.FRAG_NEEDED, QUOTED_UDP, next_hop_mtu=1400
    )
    assert Icmpv4Packet(message).next_hop_mtu == 1400
    assert str(parsed) == "ICMP 198.18.0.1 unreachable - need to frag (mtu 1400), length 36"
    assert emitted(parsed) == message


def test_parse_time_exceeded_known_bytes() -> None:
    message = with_checksum(bytes.fromhex("0b00000000000000") + QUOTED_UDP)
    parsed = parse_icmpv4(message)
    assert parsed == Icmpv4TimeExceeded(Icmpv4TimeExceededCode.TTL_EXCEEDED, QUOTED_UDP)
    assert str(parsed) == "ICMP time exceeded in-transit, length 36"
    assert emitted(parsed) == message


def test_parse_param_problem_known_bytes() -> None:
    message = with_checksum(bytes.fromhex("0c00000014000000") + QUOTED_UDP)
    parsed = parse_icmpv4(message)
    assert parsed == Icmpv4ParamProblem(20, QUOTED_UDP)
    assert str(parsed) == "ICMP parameter problem - octet 20, length 36"
    assert emitted(parsed) == message


def test_unknown_code_stays_int() -> None:
    parsed = parse_icmpv4(with_checksum(bytes.fromhex("0363000000000000")))
    assert parsed == Icmpv4DestUnreachable(99)
    assert isinstance(parsed, Icmpv4DestUnreachable)
    assert type(parsed.code) is int
    assert str(parsed) == "ICMP unreachable, code 99, length 8"


@pytest.mark.parametrize("msg_type", [5, 13, 14, 42])  # redirect, timestamp, reply, unassigned
def test_unsupported_types(msg_type: int) -> None:
    with pytest.raises(Unsupported):
        parse_icmpv4(with_checksum(bytes([msg_type]) + bytes(7)))


def test_str_echo() -> None:
    assert str(Icmpv4EchoRequest(1, 2, bytes(56))) == "ICMP echo request, id 1, seq 2, length 64"
    assert str(Icmpv4EchoReply(1, 2, bytes(56))) == "ICMP echo reply, id 1, seq 2, length 64"


def test_str_unreachable_variants() -> None:
    assert str(Icmpv4DestUnreachable(0, QUOTED_UDP)).startswith("ICMP net 198.18.0.1 unreachable")
    assert str(Icmpv4DestUnreachable(13, QUOTED_UDP)) == (
        "ICMP 198.18.0.1 unreachable - admin prohibited filter, length 36"
    )
    assert str(Icmpv4DestUnreachable(7, QUOTED_UDP)) == (
        "ICMP 198.18.0.1 unreachable, code 7, length 36"
    )


# --- quoted header ---------------------------------------------------------------------


def test_quoted_header_needs_whole_ipv4_header() -> None:
    assert parse_quoted_ipv4(QUOTED_UDP[:19]) is None
    assert parse_quoted_ipv4(b"\x65" + QUOTED_UDP[1:]) is None  # version 6
    assert parse_quoted_ipv4(b"\x44" + QUOTED_UDP[1:]) is None  # IHL 4 < 5
    assert parse_quoted_ipv4(b"\x46" + QUOTED_UDP[1:20]) is None  # IHL 6, 20 octets


def test_quoted_header_ports_when_available() -> None:
    header = parse_quoted_ipv4(QUOTED_UDP[:22])  # ports cut short
    assert header is not None
    assert (header.protocol, header.src_port, header.dst_port) == (17, None, None)
    later_fragment = QUOTED_UDP[:6] + b"\x00\x10" + QUOTED_UDP[8:]
    header = parse_quoted_ipv4(later_fragment)
    assert header is not None and header.src_port is None
    icmp = QUOTED_UDP[:9] + b"\x01" + QUOTED_UDP[10:]
    header = parse_quoted_ipv4(icmp)
    assert header is not None and (header.protocol, header.dst_port) == (1, None)


def test_quoted_header_with_options_finds_ports_after_them() -> None:
    quoted = b"\x46" + QUOTED_UDP[1:20] + b"\x01\x01\x01\x00" + struct.pack("!HH", 7, 8)
    header = parse_quoted_ipv4(quoted)
    assert header is not None and (header.src_port, header.dst_port) == (7, 8)


# --- checksums -------------------------------------------------------------------------


def test_bad_checksum() -> None:
    for index in range(len(ECHO_REQUEST)):
        corrupted = bytearray(ECHO_REQUEST)
        corrupted[index] ^= 0x01
        with pytest.raises(BadChecksum):
            parse_icmpv4(corrupted)
        if index > 0:  # the type still says echo request
            parse_icmpv4(corrupted, NO_VERIFY)  # the device vouched for it


@pytest.mark.parametrize("tx", [TxChecksum.PARTIAL, TxChecksum.NONE])
def test_emit_without_full_checksum_leaves_zero(tx: TxChecksum) -> None:
    # ICMPv4 has no pseudo-header, so the partial sum is 0.
    message = emitted(Icmpv4EchoRequest(1, 2, b"x" * 56), ChecksumCaps(tx=tx))
    assert message[2:4] == b"\x00\x00"
    assert message[4:] == ECHO_REQUEST[4:]


def test_truncated_at_every_offset() -> None:
    message = emitted(Icmpv4EchoRequest(0x1234, 0x5678, bytes(range(1, 57))))
    for length in range(len(message)):
        with pytest.raises(Truncated if length < HEADER_LEN else BadChecksum):
            parse_icmpv4(message[:length])
    for length in range(HEADER_LEN):
        with pytest.raises(Truncated):
            Icmpv4Packet.checked(message[:length])


# --- echo request -> reply in place ----------------------------------------------------


@settings(max_examples=200)
@given(ident=st.integers(0, 0xFFFF), seq_no=st.integers(0, 0xFFFF), data=st.binary(max_size=80))
def test_echo_reply_in_place_matches_fresh_reply(ident: int, seq_no: int, data: bytes) -> None:
    buf = bytearray(emitted(Icmpv4EchoRequest(ident, seq_no, data)))
    Icmpv4Packet(buf).echo_request_to_reply()
    fresh = bytearray(emitted(Icmpv4EchoReply(ident, seq_no, data)))
    if fresh[2:4] == b"\x00\x00":
        # A fresh computation may give +0 (0x0000) where the incremental update
        # gives 0xFFFF (-0); both verify for a message that is not all zero.
        fresh[2:4] = b"\xff\xff"
    assert bytes(buf) == bytes(fresh)
    assert parse_icmpv4(buf) == Icmpv4EchoReply(ident, seq_no, data)


def test_echo_reply_in_place_all_zero_reply() -> None:
    # RFC 1624 eqn. 3 yields 0x0000 here; all-zero data must carry 0xFFFF.
    buf = bytearray(emitted(Icmpv4EchoRequest(0, 0, bytes(8))))
    Icmpv4Packet(buf).echo_request_to_reply()
    assert bytes(buf) == b"\x00\x00\xff\xff" + bytes(12)
    assert parse_icmpv4(buf) == Icmpv4EchoReply(0, 0, bytes(8))


def test_echo_reply_in_place_keeps_nonzero_code() -> None:
    buf = bytearray(with_checksum(bytes.fromhex("0805000000010001") + b"abc"))
    Icmpv4Packet(buf).echo_request_to_reply()
    assert buf[:2] == b"\x00\x05"
    assert Icmpv4Packet(buf).verify_checksum()


def test_echo_reply_in_place_refuses_other_types() -> None:
    buf = bytearray(emitted(Icmpv4EchoReply(1, 1)))
    with pytest.raises(Malformed):
        Icmpv4Packet(buf).echo_request_to_reply()


def test_view_setters_edit_in_place() -> None:
    buf = bytearray(ECHO_REQUEST)
    packet = Icmpv4Packet(buf)
    packet.echo_ident = 9
    packet.echo_seq_no = 10
    packet.fill_checksum()
    assert parse_icmpv4(buf) == Icmpv4EchoRequest(9, 10, b"x" * 56)
    packet.msg_type, packet.code, packet.next_hop_mtu = 3, 4, 1280
    packet.fill_checksum()
    parsed = parse_icmpv4(buf)
    assert isinstance(parsed, Icmpv4DestUnreachable) and parsed.next_hop_mtu == 1280


# --- round trips and fuzz --------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
quotes = st.binary(max_size=64)

echoes = st.builds(Icmpv4EchoRequest, u16, u16, st.binary(max_size=64)) | st.builds(
    Icmpv4EchoReply, u16, u16, st.binary(max_size=64)
)
unreachables = st.builds(
    Icmpv4DestUnreachable,
    st.sampled_from(list(Icmpv4DestUnreachableCode)) | st.integers(16, 0xFF),
    quotes,
    u16,
)
time_exceeded = st.builds(
    Icmpv4TimeExceeded, st.sampled_from(list(Icmpv4TimeExceededCode)) | st.integers(2, 0xFF), quotes
)
param_problems = st.builds(Icmpv4ParamProblem, u8, quotes, u8)


@settings(max_examples=200)
@given(repr_=echoes | unreachables | time_exceeded | param_problems)
def test_round_trip(repr_: Icmpv4Repr) -> None:
    message = emitted(repr_)
    assert len(message) == repr_.buffer_len
    assert repr_.header_len == HEADER_LEN
    assert rfc1071(message) == 0  # the stored checksum makes the whole message sum to -0
    assert parse_icmpv4(message) == repr_
    assert parse_icmpv4(Icmpv4Packet(message)) == repr_
    assert isinstance(str(repr_), str)


@settings(max_examples=200)
@given(data=st.binary(max_size=64), verify=st.booleans())
def test_fuzz_raises_only_wire_errors(data: bytes, verify: bool) -> None:
    try:
        parsed = parse_icmpv4(data, ChecksumCaps(verify=verify))
    except WireError:
        return
    str(parsed)
    if isinstance(parsed, Icmpv4DestUnreachable | Icmpv4TimeExceeded | Icmpv4ParamProblem):
        parsed.quoted_ipv4_header()


@settings(max_examples=200)
@given(body=st.binary(max_size=60), msg_type=st.sampled_from([0, 3, 8, 11, 12]))
def test_fuzz_known_types(body: bytes, msg_type: int) -> None:
    parsed = parse_icmpv4(bytes([msg_type]) + body.ljust(7, b"\0"), NO_VERIFY)
    str(parsed)
