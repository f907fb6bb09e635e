"""Internet checksum (RFC 1071), incremental update (RFC 1624), pseudo-header sums."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st

from ethox_asyncio.stack.wire.checksum import (
    checksum,
    fold,
    ones_sum,
    pseudo_header,
    update16,
    verify,
)


def reference_sum(data: bytes) -> int:
    """RFC 1071 §4.1 literally: 16-bit words with end-around carry."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


@given(st.binary(max_size=300))
def test_ones_sum_matches_rfc1071_loop(data: bytes) -> None:
    assert ones_sum(data) == reference_sum(data)


def test_rfc1071_example() -> None:
    # RFC 1071 §3 numerical example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    assert ones_sum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_all_zero_data_has_checksum_ffff_and_verifies() -> None:
    assert checksum(bytes(20)) == 0xFFFF
    assert verify(bytes(18) + b"\xff\xff")
    assert not verify(bytes(20))


@given(st.binary(min_size=2, max_size=200).map(lambda b: b if len(b) % 2 == 0 else b + b"\0"))
def test_checksum_then_verify(data: bytes) -> None:
    body = bytearray(data)
    body[0:2] = b"\0\0"
    body[0:2] = checksum(body).to_bytes(2, "big")
    assert verify(body)


@given(st.binary(min_size=8, max_size=64).filter(lambda b: len(b) % 2 == 0),
       st.integers(0, 0xFFFF), st.integers(1, 100))
def test_update16_agrees_with_recomputation(data: bytes, new_word: int, index: int) -> None:
    words = bytearray(data)
    words[0:2] = b"\0\0"
    words[0:2] = checksum(words).to_bytes(2, "big")
    position = 2 + 2 * (index % ((len(words) - 2) // 2)) if len(words) > 2 else 0
    old_word = int.from_bytes(words[position:position + 2], "big")
    updated = update16(int.from_bytes(words[0:2], "big"), old_word, new_word)
    words[position:position + 2] = new_word.to_bytes(2, "big")
    words[0:2] = updated.to_bytes(2, "big")
    assert verify(words)


def test_update16_never_yields_negative_zero_that_fails() -> None:
    # ICMP echo request id 0 seq 0 no data -> reply: all-zero message needs 0xFFFF.
    request_checksum = checksum(bytes.fromhex("08000000") + bytes(4))
    assert update16(request_checksum, 0x0800, 0x0000) == 0xFFFF


def test_pseudo_header_sums_match_byte_layouts() -> None:
    src4, dst4 = ipaddress.IPv4Address("198.18.0.1"), ipaddress.IPv4Address("198.18.0.2")
    layout4 = src4.packed + dst4.packed + bytes([0, 17]) + (28).to_bytes(2, "big")
    assert fold(pseudo_header(int(src4), int(dst4), 17, 28)) == ones_sum(layout4)
    src6, dst6 = ipaddress.IPv6Address("fd00::1"), ipaddress.IPv6Address("fd00::ffff:2")
    layout6 = src6.packed + dst6.packed + (70000).to_bytes(4, "big") + bytes([0, 0, 0, 6])
    assert fold(pseudo_header(int(src6), int(dst6), 6, 70000)) == ones_sum(layout6)
