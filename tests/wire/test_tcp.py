"""TCP codec: RFC 9293 §3.1 header, RFC 7323 / RFC 2018 options."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.wire.checksum import (
    CHECKSUM_SOFTWARE,
    ChecksumCaps,
    TxChecksum,
    checksum,
    ones_sum,
)
from ethox_asyncio.stack.wire.errors import BadChecksum, Malformed, Truncated, WireError
from ethox_asyncio.stack.wire.tcp import TcpFlags, TcpRepr, TcpSegment, parse_tcp_fast

Address = IPv4Address | IPv6Address
V4_SRC, V4_DST = IPv4Address("192.0.2.1"), IPv4Address("198.51.100.2")
V6_SRC, V6_DST = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")
NO_VERIFY = ChecksumCaps(verify=False)

# A Linux SYN: options mss 1460, sackOK + TS val 1 ecr 0, nop, wscale 7.
# Checksums (c44b over IPv4, 550e over IPv6) confirmed "good" by tshark.
SYN_OPTIONS = bytes.fromhex("020405b4 0402080a 00000001 00000000 01030307")
SYN_V4 = bytes.fromhex("9c40 0050 fffffffa 00000000 a002 faf0 c44b 0000") + SYN_OPTIONS
SYN_V6 = bytes.fromhex("9c40 0050 fffffffa 00000000 a002 faf0 550e 0000") + SYN_OPTIONS
SYN_REPR = TcpRepr(40000, 80, 4294967290, None, TcpFlags.SYN, 64240, mss=1460, window_scale=7,
                   sack_permitted=True, timestamp=(1, 0))
SYN_CASES = [(SYN_V4, V4_SRC, V4_DST), (SYN_V6, V6_SRC, V6_DST)]
DATA_REPR = TcpRepr(1234, 80, 100, 200, TcpFlags.PSH | TcpFlags.ACK, 500, timestamp=(5, 6),
                    payload_len=3)


def emitted(repr_: TcpRepr, src: Address, dst: Address, payload: bytes = b"",
            caps: ChecksumCaps = CHECKSUM_SOFTWARE, fill: int = 0xA5) -> bytearray:
    """Emit into a buffer pre-filled with ``fill`` that already holds the payload."""
    assert len(payload) == repr_.payload_len
    buf = bytearray(bytes([fill]) * repr_.header_len + payload)
    repr_.emit(buf, src, dst, caps)
    return buf


def segment_with_options(options: bytes, payload: bytes = b"") -> bytes:
    """A checksummed (IPv4 V4_SRC > V4_DST) ACK segment carrying ``options`` verbatim."""
    assert len(options) % 4 == 0 and len(options) <= 40
    header_len = 20 + len(options)
    segment = TcpSegment(bytearray(header_len + len(payload)))
    segment.src_port, segment.dst_port, segment.seq, segment.ack = 1, 2, 3, 4
    segment.header_len = header_len
    segment.flags = TcpFlags.ACK
    segment.window = 1000
    segment.buf[20:] = options + payload
    segment.fill_checksum(int(V4_SRC), int(V4_DST))
    return bytes(segment.buf)


def parse_options(options: bytes) -> TcpRepr:
    return TcpRepr.parse(segment_with_options(options), V4_SRC, V4_DST)


# -- known bytes -----------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "src", "dst"), SYN_CASES)
def test_parse_linux_syn(data: bytes, src: Address, dst: Address) -> None:
    assert TcpRepr.parse(data, src, dst) == SYN_REPR
    segment = TcpSegment.checked(data)
    assert (segment.src_port, segment.dst_port) == (40000, 80)
    assert (segment.seq, segment.ack, segment.header_len) == (4294967290, 0, 40)
    assert segment.flags == TcpFlags.SYN and isinstance(segment.flags, TcpFlags)
    assert (segment.window, segment.urgent) == (64240, 0)
    assert bytes(segment.options) == SYN_OPTIONS
    assert bytes(segment.payload) == b""
    assert segment.verify_checksum(int(src), int(dst))
    assert parse_tcp_fast(data) == (40000, 80, 4294967290, 0, 0x02, 64240, 40)


@pytest.mark.parametrize(("data", "src", "dst"), SYN_CASES)
def test_emit_linux_syn(data: bytes, src: Address, dst: Address) -> None:
    assert SYN_REPR.header_len == SYN_REPR.buffer_len == 40
    assert emitted(SYN_REPR, src, dst) == data


def test_str() -> None:
    assert str(SYN_REPR) == (
        "TCP 40000 > 80 [S], seq 4294967290, win 64240, "
        "options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0"
    )
    assert str(DATA_REPR) == (
        "TCP 1234 > 80 [P.], seq 100, ack 200, win 500, "
        "options [nop,nop,TS val 5 ecr 6], length 3"
    )
    everything = TcpRepr(1, 2, 3, 4, TcpFlags(0xFF), 5, urgent=6,
                         sack_blocks=((10, 20), (30, 40)))
    assert str(everything) == (
        "TCP 1 > 2 [FSRP.UEW], seq 3, ack 4, win 5, urg 6, "
        "options [nop,nop,sack 2 {10:20}{30:40}], length 0"
    )
    assert str(TcpRepr(1, 2, 3, None, TcpFlags(0), 0)) == "TCP 1 > 2 [none], seq 3, win 0, length 0"


def test_emit_writes_header_in_front_of_payload() -> None:
    buf = emitted(DATA_REPR, V4_SRC, V4_DST, b"xyz")
    assert DATA_REPR.header_len == 32
    assert buf[32:] == b"xyz"
    assert buf[20:32] == bytes.fromhex("0101080a 00000005 00000006")
    assert TcpRepr.parse(buf, V4_SRC, V4_DST) == DATA_REPR
    assert bytes(TcpSegment.checked(buf).payload) == b"xyz"


def test_tx_none_writes_zero() -> None:
    full = emitted(DATA_REPR, V6_SRC, V6_DST, b"xyz")
    none = emitted(DATA_REPR, V6_SRC, V6_DST, b"xyz", ChecksumCaps(tx=TxChecksum.NONE))
    assert TcpSegment(none).checksum == 0
    assert none[:16] == full[:16] and none[18:] == full[18:]


# -- lengths and checksums -------------------------------------------------------------------

def test_truncated_at_every_offset() -> None:
    data = bytes(emitted(DATA_REPR, V4_SRC, V4_DST, b"xyz"))
    for cut in range(len(data)):
        expected: type[WireError] = Truncated if cut < 32 else BadChecksum
        with pytest.raises(expected):
            TcpRepr.parse(data[:cut], V4_SRC, V4_DST)
        if cut < 32:
            with pytest.raises(Truncated):
                TcpSegment.checked(data[:cut])
            with pytest.raises(Truncated):
                parse_tcp_fast(data[:cut])


@pytest.mark.parametrize("data_offset", range(5))
def test_data_offset_below_five_is_malformed(data_offset: int) -> None:
    data = bytearray(SYN_V4)
    data[12] = data_offset << 4
    with pytest.raises(Malformed):
        TcpRepr.parse(data, V4_SRC, V4_DST, NO_VERIFY)
    with pytest.raises(Malformed):
        TcpSegment.checked(data)
    with pytest.raises(Malformed):
        parse_tcp_fast(data)


@pytest.mark.parametrize(("data", "src", "dst"), SYN_CASES)
def test_bad_checksum(data: bytes, src: Address, dst: Address) -> None:
    corrupted = bytearray(data)
    corrupted[4] ^= 0x80
    with pytest.raises(BadChecksum):
        TcpRepr.parse(corrupted, src, dst)
    assert not TcpSegment(corrupted).verify_checksum(int(src), int(dst))
    assert TcpRepr.parse(corrupted, src, dst, NO_VERIFY).seq == 4294967290 ^ 0x80000000
    with pytest.raises(BadChecksum):  # right bytes, wrong pseudo-header
        TcpRepr.parse(data, src, src)


def test_view_setters_and_fill_checksum() -> None:
    segment = TcpSegment(bytearray(SYN_V4))
    segment.seq, segment.ack, segment.window, segment.urgent = 7, 8, 9, 10
    segment.src_port, segment.dst_port = 11, 12
    segment.flags = TcpFlags.SYN | TcpFlags.ACK
    segment.checksum = 0xDEAD
    assert not segment.verify_checksum(int(V4_SRC), int(V4_DST))
    segment.fill_checksum(int(V4_SRC), int(V4_DST))
    parsed = TcpRepr.parse(segment, V4_SRC, V4_DST)
    assert (parsed.src_port, parsed.dst_port, parsed.seq, parsed.ack) == (11, 12, 7, 8)
    assert (parsed.flags, parsed.window, parsed.urgent) == (TcpFlags.SYN | TcpFlags.ACK, 9, 10)
    segment.header_len = 20
    assert bytes(segment.options) == b"" and len(segment.payload) == 20
    with pytest.raises(ValueError):
        segment.header_len = 22


# -- options ---------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    pytest.param(b"\x01\x01\x01\x02", id="no-length-byte"),
    pytest.param(b"\x02\x00\x00\x00", id="length-0"),
    pytest.param(b"\x1e\x01\x00\x00", id="unknown-length-1"),
    pytest.param(b"\x02\x08\x05\xb4", id="mss-runs-past-header"),
    pytest.param(b"\x1e\x06\x00\x00", id="unknown-runs-past-header"),
    pytest.param(b"\x02\x03\x05\x01", id="mss-length-3"),
    pytest.param(b"\x02\x05\x05\xb4\x00\x01\x01\x01", id="mss-length-5"),
    pytest.param(b"\x03\x04\x07\x00", id="wscale-length-4"),
    pytest.param(b"\x04\x03\x00\x00", id="sackok-length-3"),
    pytest.param(b"\x08\x08" + bytes(6), id="ts-length-8"),
    pytest.param(b"\x05\x02\x00\x00", id="sack-no-blocks"),
    pytest.param(b"\x05\x09" + bytes(10), id="sack-length-9"),
])
def test_malformed_options(options: bytes) -> None:
    data = segment_with_options(options)
    with pytest.raises(Malformed):
        TcpRepr.parse(data, V4_SRC, V4_DST)


def test_unknown_options_skipped_and_eol_ends() -> None:
    # Kind 30 (MPTCP) and 254 (experimental), then MSS: the unknown ones are skipped.
    options = b"\x1e\x04\xab\xcd" + b"\xfe\x06\x00\x00\x00\x00" + b"\x02\x04\x05\xb4\x00\x00"
    assert parse_options(options).mss == 1460
    # Anything after EOL is padding, even bytes that would be malformed.
    assert parse_options(b"\x01\x00\x02\x00") == TcpRepr(1, 2, 3, 4, TcpFlags.ACK, 1000)
    assert parse_options(b"\x01" * 40) == TcpRepr(1, 2, 3, 4, TcpFlags.ACK, 1000)


def test_repeated_option_last_wins() -> None:
    assert parse_options(b"\x02\x04\x00\x01\x02\x04\x00\x02").mss == 2


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_sack_blocks(count: int) -> None:
    blocks = tuple((1000 * i, 1000 * i + 500) for i in range(count))
    option = bytes((1, 1, 5, 2 + 8 * count)) + b"".join(
        left.to_bytes(4, "big") + right.to_bytes(4, "big") for left, right in blocks
    )
    parsed = parse_options(option)
    assert parsed.sack_blocks == blocks
    repr_ = TcpRepr(1, 2, 3, 4, TcpFlags.ACK, 1000, sack_blocks=blocks)
    assert emitted(repr_, V4_SRC, V4_DST) == segment_with_options(option)


@pytest.mark.parametrize(("raw", "shift"), [(0, 0), (7, 7), (14, 14), (15, 14), (255, 14)])
def test_window_scale_clamped_to_14(raw: int, shift: int) -> None:
    parsed = parse_options(bytes((1, 3, 3, raw)))
    assert parsed.window_scale == raw  # kept as received, so the stack can log it
    assert parsed.window_shift == shift  # RFC 7323 §2.3
    assert TcpRepr(1, 2, 3, None, TcpFlags.SYN, 0).window_shift == 0


def test_inconsistent_repr_rejected() -> None:
    with pytest.raises(ValueError, match="ack"):
        TcpRepr(1, 2, 3, 4, TcpFlags.SYN, 0)
    with pytest.raises(ValueError, match="ack"):
        TcpRepr(1, 2, 3, None, TcpFlags.ACK, 0)
    with pytest.raises(ValueError, match="SACK"):
        TcpRepr(1, 2, 3, 4, TcpFlags.ACK, 0, sack_blocks=((1, 2),) * 5)


def test_options_that_do_not_fit_raise() -> None:
    repr_ = TcpRepr(1, 2, 3, 4, TcpFlags.ACK, 0, mss=1460, window_scale=7, timestamp=(1, 2),
                    sack_blocks=((1, 2),) * 3)
    with pytest.raises(ValueError, match="40"):
        _ = repr_.header_len
    with pytest.raises(ValueError, match="40"):
        repr_.emit(bytearray(60), V4_SRC, V4_DST)


def test_packed_options_parse_and_print_but_do_not_re_emit() -> None:
    # MSS + TS + 3 SACK blocks fill 40 bytes without NOPs; our aligned layout needs 44.
    sack = bytes((5, 26)) + b"".join(i.to_bytes(4, "big") for i in range(6))
    options = b"\x02\x04\x05\xb4" + b"\x08\x0a" + bytes(8) + sack
    parsed = parse_options(options)
    assert (parsed.mss, parsed.timestamp, parsed.sack_blocks) == (1460, (0, 0),
                                                                   ((0, 1), (2, 3), (4, 5)))
    assert "sack 3 {0:1}{2:3}{4:5}" in str(parsed)
    with pytest.raises(ValueError, match="40"):
        _ = parsed.header_len


# -- property-based --------------------------------------------------------------------------

addresses = st.one_of(
    st.tuples(st.ip_addresses(v=4), st.ip_addresses(v=4)),
    st.tuples(st.ip_addresses(v=6), st.ip_addresses(v=6)),
)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def tcp_reprs(draw: st.DrawFn) -> TcpRepr:
    flags = TcpFlags(draw(st.integers(0, 0xFF)))
    repr_ = TcpRepr(
        src_port=draw(u16), dst_port=draw(u16), seq=draw(u32),
        ack=draw(u32) if flags & TcpFlags.ACK else None,
        flags=flags, window=draw(u16),
        mss=draw(st.none() | u16),
        window_scale=draw(st.none() | st.integers(0, 0xFF)),
        sack_permitted=draw(st.booleans()),
        sack_blocks=tuple(draw(st.lists(st.tuples(u32, u32), max_size=4))),
        timestamp=draw(st.none() | st.tuples(u32, u32)),
        urgent=draw(u16),
        payload_len=draw(st.integers(0, 40)),
    )
    try:
        _ = repr_.header_len
    except ValueError:
        assume(False)  # options that need more than 40 bytes
    return repr_


@settings(max_examples=200)
@given(tcp_reprs(), addresses, st.data())
def test_round_trip(repr_: TcpRepr, pair: tuple[Address, Address], data: st.DataObject) -> None:
    src, dst = pair
    payload = data.draw(st.binary(min_size=repr_.payload_len, max_size=repr_.payload_len))
    buf = emitted(repr_, src, dst, payload)
    # Every header byte is written: the prefill does not show through.
    assert emitted(repr_, src, dst, payload, fill=0x00) == buf
    assert TcpRepr.parse(buf, src, dst) == repr_
    assert bytes(TcpSegment.checked(buf).payload) == payload
    header_len = repr_.header_len
    assert header_len % 4 == 0 and header_len <= 60
    assert parse_tcp_fast(buf) == (repr_.src_port, repr_.dst_port, repr_.seq, repr_.ack or 0,
                                   int(repr_.flags), repr_.window, header_len)
    assert str(repr_).startswith(f"TCP {repr_.src_port} > {repr_.dst_port} [")


@settings(max_examples=200)
@given(tcp_reprs(), addresses, st.data())
def test_partial_stores_pseudo_header_sum(repr_: TcpRepr, pair: tuple[Address, Address],
                                          data: st.DataObject) -> None:
    src, dst = pair
    payload = data.draw(st.binary(min_size=repr_.payload_len, max_size=repr_.payload_len))
    full = emitted(repr_, src, dst, payload)
    partial = emitted(repr_, src, dst, payload, ChecksumCaps(tx=TxChecksum.PARTIAL))
    assert partial[:16] == full[:16] and partial[18:] == full[18:]
    assert TcpSegment(partial).checksum == ones_sum(b"", int(src) + int(dst) + 6 + len(partial))
    # The device (virtio NEEDS_CSUM) checksums from the TCP header on, pseudo-header excluded.
    assert checksum(partial) == TcpSegment(full).checksum


@settings(max_examples=200)
@given(st.binary(max_size=80), addresses, st.booleans())
def test_fuzz_raises_only_wire_errors(data: bytes, pair: tuple[Address, Address],
                                      verify: bool) -> None:
    src, dst = pair
    try:
        TcpRepr.parse(data, src, dst, ChecksumCaps(verify=verify))
    except WireError:
        pass


@settings(max_examples=200)
@given(st.integers(0, 10).flatmap(lambda words: st.binary(min_size=4 * words,
                                                          max_size=4 * words)))
def test_fuzz_options_raise_only_malformed(options: bytes) -> None:
    try:
        repr_ = parse_options(options)
    except Malformed:
        return
    assert str(repr_).startswith("TCP 1 > 2 [")  # whatever was parsed can be logged
