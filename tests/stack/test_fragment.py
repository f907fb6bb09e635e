"""Reassembler (RFC 791/815, RFC 8200 §4.5, RFC 5722) and fragment_sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ethox_asyncio.stack.fragment import (
    FRAGMENT_OVERHEAD,
    Expired,
    Reassembler,
    fragment_sizes,
)

KEY = ("198.18.0.1", "198.18.0.2", 17, 0x1234)


def payload(n: int) -> bytes:
    return bytes((i * 7 + i // 256) & 0xFF for i in range(n))


def pieces(data: bytes, size: int) -> list[tuple[int, bytes, bool]]:
    return [(off, data[off:off + n], more) for off, n, more in fragment_sizes(len(data), size)]


def feed(r: Reassembler, frags: list[tuple[int, bytes, bool]], now: float = 0.0,
         key: object = KEY) -> list[bytes | None]:
    return [r.add(key, off, more, chunk, now) for off, chunk, more in frags]


def test_in_order() -> None:
    data = payload(3000)
    r = Reassembler(timeout=30)
    results = feed(r, pieces(data, 1480))
    assert results[:-1] == [None, None] and results[-1] == data
    assert len(r) == 0 and r.stats.completed == 1 and r.stats.in_progress == 0
    assert r.buffered_bytes == 0 and r.poll_at() is None


def test_reverse_order() -> None:
    data = payload(5001)
    r = Reassembler(timeout=30)
    results = feed(r, pieces(data, 512)[::-1])
    assert results[-1] == data and all(x is None for x in results[:-1])


@given(st.data())
def test_random_permutation_reassembles(draw: st.DataObject) -> None:
    size = draw.draw(st.integers(min_value=1, max_value=4000))
    mtu = draw.draw(st.integers(min_value=8, max_value=1500))
    data = payload(size)
    frags = draw.draw(st.permutations(pieces(data, mtu)))
    r = Reassembler(timeout=30)
    results = feed(r, list(frags))
    assert results[-1] == data
    assert all(x is None for x in results[:-1])
    assert len(r) == 0 and r.buffered_bytes == 0


@given(st.data())
def test_interleaved_datagrams(draw: st.DataObject) -> None:
    datas = {k: payload(300 + 97 * k) for k in range(4)}
    frags = [(k, f) for k, d in datas.items() for f in pieces(d, 64)]
    order = draw.draw(st.permutations(frags))
    r = Reassembler(timeout=30)
    done: dict[int, bytes] = {}
    for k, (off, chunk, more) in order:
        out = r.add(k, off, more, chunk, 0.0)
        if out is not None:
            done[k] = out
    assert done == datas


def test_data_is_copied() -> None:
    r = Reassembler(timeout=30)
    buf = bytearray(b"A" * 16)
    head = bytearray(b"H" * 20)
    r.add(KEY, 0, True, memoryview(buf), 0.0, first_header=memoryview(head))
    buf[:] = b"B" * 16  # the device reuses its buffers
    head[:] = b"X" * 20
    assert r.add(KEY, 16, False, memoryview(buf)[:5], 0.0) == b"A" * 16 + b"B" * 5
    # first_header is copied as well.
    r.add("k", 0, True, bytes(8), 0.0, first_header=memoryview(head))
    head[:] = b"Z" * 20
    assert r.expire(100.0) == [Expired("k", b"X" * 20)]


def test_atomic_fragment_passes_through() -> None:
    r = Reassembler(timeout=30)
    r.add(KEY, 8, True, bytes(8), 0.0)
    assert r.add(KEY, 0, False, b"whole", 0.0) == b"whole"
    assert len(r) == 1 and r.stats.overlaps == 0


@pytest.mark.parametrize("second", [
    (0, 16, True),     # full overlap, different content
    (8, 16, True),     # partial overlap at the end of the first
    (0, 8, True),      # inside the first
    (16, 16, False),   # starts inside, final
])
def test_overlap_discards_datagram(second: tuple[int, int, bool]) -> None:
    r = Reassembler(timeout=30)
    assert r.add(KEY, 0, True, b"a" * 24, 0.0) is None
    off, n, more = second
    assert r.add(KEY, off, more, b"b" * n, 1.0) is None
    assert r.stats.overlaps == 1 and len(r) == 0 and r.buffered_bytes == 0
    # Later fragments of it are dropped until the original deadline (0 + 30).
    assert r.add(KEY, 0, True, b"a" * 24, 2.0) is None
    assert r.add(KEY, 24, False, b"z", 2.0) is None
    assert r.stats.dropped_discarded == 2 and r.stats.completed == 0
    assert r.poll_at() == 30.0
    assert r.expire(29.9) == []
    assert r.expire(30.0) == []  # tombstones are not reported as timeouts
    assert r.stats.timeouts == 0 and r.poll_at() is None
    # After the timeout the key is usable again.
    r.add(KEY, 0, True, b"a" * 24, 31.0)
    assert r.add(KEY, 24, False, b"z", 31.0) == b"a" * 24 + b"z"


def test_overlap_with_later_fragment() -> None:
    r = Reassembler(timeout=30)
    r.add(KEY, 16, True, b"x" * 16, 0.0)
    r.add(KEY, 8, True, b"y" * 16, 0.0)  # 8..24 runs into 16..32
    assert r.stats.overlaps == 1 and len(r) == 0


def test_exact_duplicates_are_ignored() -> None:
    r = Reassembler(timeout=30)
    data = payload(100)
    frags = pieces(data, 40)
    assert feed(r, [frags[0], frags[0], frags[2], frags[2]]) == [None] * 4
    assert r.stats.duplicates == 2 and r.stats.overlaps == 0
    assert r.add(KEY, frags[1][0], True, frags[1][1], 0.0) == data
    # Same offset and length but different bytes is an overlap.
    r.add(KEY, 0, True, b"a" * 8, 0.0)
    r.add(KEY, 0, True, b"b" * 8, 0.0)
    assert r.stats.overlaps == 1


def test_conflicting_final_fragments_discard() -> None:
    r = Reassembler(timeout=30)
    r.add(KEY, 16, False, b"x" * 4, 0.0)
    r.add(KEY, 32, False, b"y" * 4, 0.0)  # a second, different end
    assert r.stats.overlaps == 1 and len(r) == 0
    r2 = Reassembler(timeout=30)
    r2.add(KEY, 32, True, b"x" * 8, 0.0)
    r2.add(KEY, 8, False, b"y" * 4, 0.0)  # ends before data already received
    assert r2.stats.overlaps == 1
    r3 = Reassembler(timeout=30)
    r3.add(KEY, 8, False, b"y" * 4, 0.0)
    r3.add(KEY, 16, True, b"x" * 8, 0.0)  # beyond the known end
    assert r3.stats.overlaps == 1
    r4 = Reassembler(timeout=30)
    r4.add(KEY, 8, False, b"y" * 8, 0.0)
    r4.add(KEY, 8, True, b"y" * 8, 0.0)  # same bytes, but now "more": inconsistent
    assert r4.stats.overlaps == 1 and r4.stats.duplicates == 0


@pytest.mark.parametrize(("offset", "length", "more"), [
    (0, 12, True),       # non-final not a multiple of 8
    (8, 0, True),        # empty non-final
    (4, 8, True),        # offset not a multiple of 8
    (-8, 8, True),       # negative
    (65528, 16, False),  # beyond max_datagram_len
    (65536, 8, False),
])
def test_invalid_fragments_dropped(offset: int, length: int, more: bool) -> None:
    r = Reassembler(timeout=30)
    r.add(KEY, 0, True, bytes(8), 0.0)
    assert r.add(KEY, offset, more, bytes(length), 0.0) is None
    assert r.stats.dropped_invalid == 1 and r.stats.overlaps == 0
    assert len(r) == 1  # the datagram itself is kept
    assert r.add(KEY, 8, False, b"end", 0.0) == bytes(8) + b"end"


def test_max_datagram_len_exact_fit() -> None:
    r = Reassembler(timeout=30, max_datagram_len=2000)
    data = payload(2000)
    assert feed(r, pieces(data, 1000)) == [None, data]
    assert r.add(KEY, 1000, False, payload(1001), 0.0) is None
    assert r.stats.dropped_invalid == 1


def test_timeout_reports_first_header_only_with_offset_zero() -> None:
    r = Reassembler(timeout=30)
    assert r.poll_at() is None
    r.add("a", 0, True, bytes(8), 10.0, first_header=b"hdr-a")
    r.add("b", 8, False, bytes(8), 11.0, first_header=b"ignored: not offset 0")
    r.add("c", 8, True, bytes(8), 12.0)
    r.add("a", 16, False, bytes(3), 20.0)  # later fragments do not refresh the timer
    assert r.poll_at() == 40.0
    assert r.expire(39.99) == []
    assert r.expire(40.0) == [Expired("a", b"hdr-a")]
    assert r.poll_at() == 41.0
    assert r.expire(100.0) == [Expired("b", None), Expired("c", None)]
    assert r.stats.timeouts == 3 and len(r) == 0 and r.poll_at() is None
    assert r.buffered_bytes == 0 and r.stats.in_progress == 0
    # The offset-0 fragment arriving late still provides the header.
    r.add("d", 8, True, bytes(8), 200.0)
    r.add("d", 0, True, bytes(8), 201.0, first_header=b"hdr-d")
    assert r.expire(230.0) == [Expired("d", b"hdr-d")]


def test_eviction_by_max_datagrams() -> None:
    r = Reassembler(timeout=30, max_datagrams=3)
    for i in range(5):
        r.add(i, 0, True, bytes(8), float(i))
    assert len(r) == 3 and r.stats.evictions == 2 and r.stats.in_progress == 3
    assert r.poll_at() == 32.0  # 0 and 1 were evicted, oldest first
    # A fragment for one still held completes it; a new one is not refused.
    assert r.add(2, 8, False, b"x", 5.0) == bytes(8) + b"x"
    assert r.add(9, 8, True, bytes(8), 6.0) is None
    assert len(r) == 3 and r.stats.evictions == 2
    assert [e.key for e in r.expire(100.0)] == [3, 4, 9]


def test_eviction_by_max_bytes() -> None:
    per = 1000 + FRAGMENT_OVERHEAD
    r = Reassembler(timeout=30, max_bytes=3 * per + 10)
    for i in range(3):
        r.add(i, 0, True, bytes(1000), float(i))
    assert r.stats.evictions == 0 and r.buffered_bytes == 3 * per
    r.add(3, 0, True, bytes(1000), 3.0)
    assert r.stats.evictions == 1 and len(r) == 3 and r.buffered_bytes == 3 * per
    # Growing the oldest datagram (1) evicts another one, not itself.
    r.add(1, 1000, True, bytes(1000), 4.0)
    assert r.stats.evictions == 2 and len(r) == 2
    assert r.add(1, 2000, False, b"!", 5.0) is not None  # needs room again: evicts 3
    assert r.stats.evictions == 3 and len(r) == 0 and r.buffered_bytes == 0


def test_datagram_larger_than_max_bytes_evicts_itself() -> None:
    r = Reassembler(timeout=30, max_bytes=2 * (1000 + FRAGMENT_OVERHEAD))
    r.add(1, 0, True, bytes(1000), 0.0)
    r.add(1, 1000, True, bytes(1000), 0.0)
    assert r.add(1, 2000, True, bytes(1000), 0.0) is None
    assert len(r) == 0 and r.stats.evictions == 1 and r.buffered_bytes == 0
    assert r.add(2, 0, True, bytes(4096), 0.0) is None  # could never fit
    assert r.stats.dropped_invalid == 1 and len(r) == 0


def test_small_fragment_flood_is_bounded() -> None:
    r = Reassembler(timeout=30, max_bytes=64 * 1024)
    for i in range(10_000):
        r.add(i % 50, (i // 50) * 16, True, bytes(8), 0.0)
    assert r.buffered_bytes <= 64 * 1024
    assert r.stats.evictions > 0


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        Reassembler(timeout=0)
    with pytest.raises(ValueError):
        Reassembler(timeout=1, max_datagrams=0)
    with pytest.raises(ValueError):
        Reassembler(timeout=1, max_bytes=10)


@given(st.integers(min_value=0, max_value=70000), st.integers(min_value=8, max_value=9000))
def test_fragment_sizes_cover_exactly(payload_len: int, max_payload: int) -> None:
    plan = fragment_sizes(payload_len, max_payload)
    expected = 0
    for i, (offset, length, more) in enumerate(plan):
        assert offset == expected and offset % 8 == 0
        assert 0 <= length <= max_payload
        last = i == len(plan) - 1
        assert more is not last
        if more:
            assert length % 8 == 0 and length > 0
        expected += length
    assert expected == payload_len
    if payload_len > max_payload:
        assert len(plan) == -(-payload_len // (max_payload & ~7))


def test_fragment_sizes_examples() -> None:
    assert fragment_sizes(100, 1480) == [(0, 100, False)]
    assert fragment_sizes(0, 1480) == [(0, 0, False)]
    assert fragment_sizes(3000, 1480) == [(0, 1480, True), (1480, 1480, True), (2960, 40, False)]
    assert fragment_sizes(20, 13) == [(0, 8, True), (8, 8, True), (16, 4, False)]
    assert fragment_sizes(16, 8) == [(0, 8, True), (8, 8, False)]
    with pytest.raises(ValueError):
        fragment_sizes(100, 7)
    with pytest.raises(ValueError):
        fragment_sizes(-1, 100)
