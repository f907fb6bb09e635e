"""Segment codec of the connection engine (RFC 9293 §3.1-3.2, RFC 7323, RFC 2018) and
reset_for (RFC 9293 §3.10.7.1)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ethox_asyncio.stack.tcp.segment import ACK, FIN, PSH, RST, SYN, Segment, reset_for
from ethox_asyncio.stack.wire.errors import Malformed, Truncated, WireError
from ethox_asyncio.stack.wire.tcp import TcpRepr

from .harness import flags_of


def raw(options: bytes = b"", *, flags: int = ACK, payload: bytes = b"",
        offset: int | None = None) -> bytes:
    header_len = 20 + len(options)
    words = (offset if offset is not None else header_len // 4) << 4
    return struct.pack("!HHIIBBHHH", 1234, 80, 0xFFFFFFFE, 7, words, flags, 512, 0, 0) \
        + options + payload


def test_parse_plain_header() -> None:
    s = Segment.parse(memoryview(raw(payload=b"abc")))
    assert (s.src_port, s.dst_port, s.seq, s.ack, s.flags, s.window) == \
        (1234, 80, 0xFFFFFFFE, 7, ACK, 512)
    assert bytes(s.payload) == b"abc" and isinstance(s.payload, memoryview)
    assert s.mss is None and s.wscale is None and not s.sack_permitted
    assert s.ts_val is None and s.ts_ecr is None and s.sack_blocks == ()
    assert s.seg_len == 3


def test_parse_linux_syn_options() -> None:
    # What Linux sends on a SYN: mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7.
    options = bytes.fromhex("020405b4" "0402080a0000000100000000" "01030307")
    s = Segment.parse(memoryview(raw(options, flags=SYN)))
    assert (s.mss, s.sack_permitted, s.ts_val, s.ts_ecr, s.wscale) == (1460, True, 1, 0, 7)
    assert s.seg_len == 1


def test_parse_timestamps_fast_path_and_sack() -> None:
    options = bytes.fromhex("0101080a0000000200000003")
    s = Segment.parse(memoryview(raw(options, payload=b"x")))
    assert (s.ts_val, s.ts_ecr) == (2, 3) and bytes(s.payload) == b"x"
    sack = bytes.fromhex("0101050a" "00000010" "00000020")
    s = Segment.parse(raw(options + sack))
    assert s.sack_blocks == ((16, 32),) and s.ts_val == 2


def test_unknown_options_skipped_eol_ends() -> None:
    options = bytes((0xFE, 4, 1, 2)) + b"\x01" + bytes((2, 4, 0x02, 0x18)) + b"\x00\x02\x04"
    s = Segment.parse(raw(options + b"\x00" * (-len(options) % 4), flags=SYN))
    assert s.mss == 0x218  # parsed before EOL; what follows EOL is padding


@pytest.mark.parametrize("options, error", [
    (b"\x02", Malformed),  # no length byte
    (b"\x02\x01\x00\x00", Malformed),  # length < 2
    (b"\x02\x08\x00\x00", Malformed),  # past the header
    (b"\x02\x05\x00\x00\x00\x01\x01\x01", Malformed),  # MSS of length 5
    (b"\x03\x04\x07\x01", Malformed),  # window scale of length 4
    (b"\x08\x06\x00\x00\x00\x00", Malformed),  # timestamps of length 6
    (b"\x05\x02\x01\x01", Malformed),  # SACK with no block
    (b"\x05\x05\x00\x00\x00\x00\x00\x00", Malformed),  # SACK not 2 + 8n
])
def test_bad_options_raise_wire_errors(options: bytes, error: type[WireError]) -> None:
    padded = options + b"\x00" * (-len(options) % 4)
    with pytest.raises(error):
        Segment.parse(raw(padded))


def test_bad_lengths() -> None:
    with pytest.raises(Truncated):
        Segment.parse(b"\x00" * 19)
    with pytest.raises(Malformed):
        Segment.parse(raw(offset=4))
    with pytest.raises(Truncated):
        Segment.parse(raw(offset=6))


@pytest.mark.parametrize("cut", range(0, 32))
def test_truncated_at_every_offset_never_raises_other(cut: int) -> None:
    frame = raw(bytes.fromhex("0101080a0000000200000003"))[:cut]
    with pytest.raises(WireError):
        Segment.parse(frame)


def test_emit_layout_matches_linux_and_wire_codec() -> None:
    syn = Segment(80, 1234, 5, 0, SYN, 65535, b"", 1460, 7, True, (), 10, 0)
    header = syn.header_bytes()
    assert header[20:] == bytes.fromhex("020405b4" "0402080a0000000a00000000" "01030307")
    assert len(header) == syn.header_len == 40
    repr_ = TcpRepr.parse(header + b"", _addr(1), _addr(2), _no_verify())
    assert (repr_.mss, repr_.window_scale, repr_.sack_permitted, repr_.timestamp) == \
        (1460, 7, True, (10, 0))
    data = Segment(80, 1234, 5, 9, ACK | PSH, 100, b"hi", None, None, False,
                   ((1, 2), (3, 4)), 11, 12)
    header = data.header_bytes()
    assert header[20:] == bytes.fromhex("0101080a0000000b0000000c" "01010512"
                                        "0000000100000002" "0000000300000004")
    assert header[16:18] == b"\x00\x00"


def test_emit_into_prefilled_buffer_and_offset() -> None:
    s = Segment(1, 2, 3, 4, ACK, 5, b"", ts_val=6, ts_ecr=7)
    buf = bytearray(b"\xa5" * 50)
    assert s.emit_header(buf, 10) == 32
    assert buf[:10] == b"\xa5" * 10 and buf[42:] == b"\xa5" * 8
    back = Segment.parse(bytes(buf[10:42]))
    assert (back.seq, back.ack, back.window, back.ts_val, back.ts_ecr) == (3, 4, 5, 6, 7)


def test_emit_too_many_options_is_our_bug() -> None:
    s = Segment(1, 2, 3, 4, ACK, 5, b"", 1460, 7, True, ((1, 2), (3, 4), (5, 6)), 1, 2)
    with pytest.raises(ValueError):
        s.header_bytes()


def test_reset_for_segment_with_ack() -> None:
    r = reset_for(Segment(1234, 80, 100, 555, ACK | PSH, 10, b"data"))
    assert r is not None
    assert (r.src_port, r.dst_port, r.seq, r.flags) == (80, 1234, 555, RST)


def test_reset_for_segment_without_ack_covers_syn_fin_and_text() -> None:
    r = reset_for(Segment(1234, 80, 0xFFFFFFFF, 0, SYN, 10))
    assert r is not None and (r.seq, r.ack, flags_of(r)) == (0, 0, "R.")
    r = reset_for(Segment(1234, 80, 100, 0, FIN, 10, b"abc"))
    assert r is not None and r.ack == 104


def test_reset_for_never_answers_a_reset() -> None:
    assert reset_for(Segment(1234, 80, 100, 5, RST | ACK, 0)) is None
    assert reset_for(Segment(1234, 80, 100, 5, RST, 0)) is None


_u32 = st.integers(0, 0xFFFFFFFF)


@given(seq=_u32, ack=_u32, flags=st.integers(0, 255), window=st.integers(0, 0xFFFF),
       payload=st.binary(max_size=64), mss=st.none() | st.integers(0, 0xFFFF),
       wscale=st.none() | st.integers(0, 255), sack_permitted=st.booleans(),
       ts=st.none() | st.tuples(_u32, _u32),
       blocks=st.lists(st.tuples(_u32, _u32), max_size=3))
def test_round_trip(seq: int, ack: int, flags: int, window: int, payload: bytes,
                    mss: int | None, wscale: int | None, sack_permitted: bool,
                    ts: tuple[int, int] | None, blocks: list[tuple[int, int]]) -> None:
    ts_val, ts_ecr = ts if ts else (None, None)
    s = Segment(1, 2, seq, ack, flags, window, payload, mss, wscale, sack_permitted,
                tuple(blocks), ts_val, ts_ecr)
    try:
        header = s.header_bytes()
    except ValueError:
        return  # more than 40 bytes of options: refused, never emitted
    back = Segment.parse(memoryview(header + payload))
    for name in ("seq", "ack", "flags", "window", "mss", "wscale", "sack_permitted",
                 "sack_blocks", "ts_val", "ts_ecr"):
        assert getattr(back, name) == getattr(s, name), name
    assert bytes(back.payload) == payload


@given(st.binary(max_size=80))
def test_any_bytes_parse_or_raise_wire_error(data: bytes) -> None:
    try:
        Segment.parse(memoryview(data))
    except WireError:
        pass


def _addr(n: int):  # type: ignore[no-untyped-def]
    from ipaddress import IPv4Address
    return IPv4Address(0xC6120000 + n)


def _no_verify():  # type: ignore[no-untyped-def]
    from ethox_asyncio.stack.wire.checksum import ChecksumCaps
    return ChecksumCaps(verify=False)
