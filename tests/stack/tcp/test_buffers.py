"""SendBuffer (zero-copy, O(1) amortised) and OutOfOrderQueue (RFC 9293 §3.10.7.4, RFC 2018 §4)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.tcp.buffers import OutOfOrderQueue, SendBuffer
from ethox_asyncio.stack.tcp.seq import SEQ_MOD, seq_add, seq_sub

NEAR_WRAP = SEQ_MOD - 5


# --- SendBuffer --------------------------------------------------------------------------

def filled(*chunks: bytes | bytearray | memoryview) -> SendBuffer:
    buf = SendBuffer()
    for chunk in chunks:
        buf.append(chunk)
    return buf


def test_empty_buffer() -> None:
    buf = SendBuffer()
    assert len(buf) == 0
    assert buf.peek(0, 100) == b""
    buf.consume(0)
    with pytest.raises(ValueError):
        buf.peek(1, 1)
    with pytest.raises(ValueError):
        buf.consume(1)


def test_append_and_len() -> None:
    buf = filled(b"hello", b"", b" world")
    assert len(buf) == 11
    assert bytes(buf.peek(0, 11)) == b"hello world"


def test_peek_inside_one_chunk_is_a_zero_copy_view() -> None:
    data = b"0123456789"
    buf = filled(data)
    view = buf.peek(2, 5)
    assert isinstance(view, memoryview) and view.readonly
    assert view.obj is data  # references the application's bytes
    assert bytes(view) == b"23456"


def test_peek_across_chunks_joins() -> None:
    buf = filled(b"abc", b"def", b"ghi")
    out = buf.peek(1, 7)
    assert isinstance(out, bytes) and out == b"bcdefgh"
    assert buf.peek(2, 4) == b"cdef"
    assert bytes(buf.peek(3, 3)) == b"def"


def test_peek_clamps_length_and_rejects_bad_offsets() -> None:
    buf = filled(b"abc", b"def")
    assert bytes(buf.peek(4, 100)) == b"ef"
    assert buf.peek(6, 10) == b""
    with pytest.raises(ValueError):
        buf.peek(7, 1)
    with pytest.raises(ValueError):
        buf.peek(-1, 1)
    with pytest.raises(ValueError):
        buf.peek(0, -1)


def test_bytearray_is_copied() -> None:
    data = bytearray(b"mutable")
    buf = filled(data)
    data[:] = b"CHANGED"
    assert bytes(buf.peek(0, 7)) == b"mutable"


def test_writable_memoryview_is_copied() -> None:
    data = bytearray(b"abcdef")
    buf = filled(memoryview(data)[1:4])
    data[1:4] = b"XYZ"
    assert bytes(buf.peek(0, 3)) == b"bcd"


def test_read_only_view_of_bytearray_is_copied() -> None:
    data = bytearray(b"abcdef")
    buf = filled(memoryview(data).toreadonly())
    data[0:1] = b"Z"
    assert bytes(buf.peek(0, 6)) == b"abcdef"


def test_memoryview_over_bytes_is_referenced() -> None:
    data = b"0123456789"
    buf = filled(memoryview(data)[3:8])
    view = buf.peek(1, 3)
    assert isinstance(view, memoryview) and view.obj is data
    assert bytes(view) == b"456"


def test_non_byte_memoryview_is_flattened() -> None:
    import array

    arr = array.array("H", [0x0102, 0x0304])
    buf = filled(memoryview(arr))
    assert len(buf) == 4
    assert bytes(buf.peek(0, 4)) == arr.tobytes()


def test_consume_moves_the_front() -> None:
    buf = filled(b"abc", b"def", b"ghi")
    buf.consume(2)
    assert len(buf) == 7 and bytes(buf.peek(0, 3)) == b"cde"
    buf.consume(1)
    assert bytes(buf.peek(0, 3)) == b"def"
    buf.consume(4)
    assert len(buf) == 2 and bytes(buf.peek(0, 2)) == b"hi"
    with pytest.raises(ValueError):
        buf.consume(3)
    with pytest.raises(ValueError):
        buf.consume(-1)
    buf.consume(2)
    assert len(buf) == 0
    buf.append(b"again")
    assert bytes(buf.peek(0, 5)) == b"again"


def test_clear() -> None:
    buf = filled(b"abc", b"def")
    buf.consume(1)
    buf.clear()
    assert len(buf) == 0 and buf.peek(0, 10) == b""
    buf.append(b"x")
    assert bytes(buf.peek(0, 1)) == b"x"


def test_read_into_copies_across_chunks() -> None:
    buf = filled(b"abc", b"def", b"ghi")
    buf.consume(1)
    frame = bytearray(b"\xa5" * 10)
    n = buf.read_into(1, memoryview(frame)[2:7])
    assert n == 5 and frame == b"\xa5\xa5cdefg\xa5\xa5\xa5"
    assert buf.read_into(7, bytearray(4)) == 1
    assert buf.read_into(8, bytearray(4)) == 0
    with pytest.raises(ValueError):
        buf.read_into(9, bytearray(1))


def test_many_small_chunks_stay_linear() -> None:
    # A stream of small writes consumed as it goes: internal lists are compacted.
    buf = SendBuffer()
    expect = bytearray()
    for i in range(5000):
        chunk = bytes([i & 0xFF]) * 3
        buf.append(chunk)
        expect += chunk
        if i % 3 == 2:
            buf.consume(7)
            del expect[:7]
    assert bytes(buf.peek(0, len(buf))) == bytes(expect)
    # Dead chunks at the front never outnumber live ones (beyond a small batch).
    dead = buf._head
    assert dead < 64 or dead < len(buf._chunks) - dead


@given(st.lists(st.binary(max_size=40), max_size=30), st.data())
def test_matches_a_bytearray_model(chunks: list[bytes], data: st.DataObject) -> None:
    buf = SendBuffer()
    model = bytearray()
    for chunk in chunks:
        if data.draw(st.booleans()):
            buf.append(bytearray(chunk))
        else:
            buf.append(chunk)
        model += chunk
        if model and data.draw(st.booleans()):
            n = data.draw(st.integers(0, len(model)))
            buf.consume(n)
            del model[:n]
        assert len(buf) == len(model)
        off = data.draw(st.integers(0, len(model)))
        length = data.draw(st.integers(0, len(model) + 3))
        assert bytes(buf.peek(off, length)) == bytes(model[off : off + length])
        dest = bytearray(length)
        n = buf.read_into(off, dest)
        assert dest[:n] == model[off : off + length]


@given(st.lists(st.tuples(st.integers(0, 1), st.binary(max_size=30), st.integers(0, 40)),
                max_size=60))
def test_empty_buffers_share_lists_that_nothing_fills(
        steps: list[tuple[int, bytes, int]]) -> None:
    # While empty a buffer holds the shared _NO_VIEWS/_NO_STARTS (no lists of its own):
    # two buffers used in turn must never see each other's bytes through them.
    from ethox_asyncio.stack.tcp import buffers

    bufs = [SendBuffer(), SendBuffer()]
    models = [bytearray(), bytearray()]
    assert bufs[0]._chunks is buffers._NO_VIEWS and bufs[1]._starts is buffers._NO_STARTS
    for which, chunk, eat in steps:
        buf, model = bufs[which], models[which]
        buf.append(chunk)
        model += chunk
        n = min(eat, len(model))
        buf.consume(n)
        del model[:n]
        for b, m in zip(bufs, models, strict=True):
            assert bytes(b.peek(0, len(m) + 1)) == bytes(m)
            assert (b._chunks is buffers._NO_VIEWS) == (not m)
            assert (b._starts is buffers._NO_STARTS) == (not m)
        assert buffers._NO_VIEWS == [] and buffers._NO_STARTS == []
    for b in bufs:
        b.clear()
        assert b._chunks is buffers._NO_VIEWS and len(b) == 0


# --- OutOfOrderQueue ---------------------------------------------------------------------

def test_add_and_take_in_one_range() -> None:
    q = OutOfOrderQueue(1000)
    rcv_nxt = NEAR_WRAP
    assert q.add(seq_add(rcv_nxt, 10), b"klmno", rcv_nxt)
    assert q.bytes_held == 5 and len(q) == 1
    assert q.take(rcv_nxt) == []
    # The hole is filled by the caller (in order), then the queue continues.
    rcv_nxt = seq_add(rcv_nxt, 10)
    assert b"".join(q.take(rcv_nxt)) == b"klmno"
    assert q.bytes_held == 0 and len(q) == 0


def test_adjacent_segments_merge_across_the_wrap() -> None:
    q = OutOfOrderQueue(1000)
    rcv_nxt = NEAR_WRAP - 3
    base = seq_add(rcv_nxt, 2)  # NEAR_WRAP - 1
    assert q.add(base, b"abcd", rcv_nxt)  # crosses 2**32
    assert q.add(seq_add(base, 8), b"ijkl", rcv_nxt)
    assert len(q) == 2
    assert q.add(seq_add(base, 4), b"efgh", rcv_nxt)  # fills the gap exactly
    assert len(q) == 1 and q.bytes_held == 12
    assert q.ranges(rcv_nxt) == [(base, seq_add(base, 12))]
    assert b"".join(q.take(seq_add(rcv_nxt, 2))) == b"abcdefghijkl"


def test_overlap_stores_only_new_bytes_and_keeps_old_ones() -> None:
    q = OutOfOrderQueue(1000)
    rcv_nxt = NEAR_WRAP
    assert q.add(seq_add(rcv_nxt, 10), b"AAAA", rcv_nxt)  # 10..14
    assert q.add(seq_add(rcv_nxt, 20), b"BBBB", rcv_nxt)  # 20..24
    assert q.add(seq_add(rcv_nxt, 8), b"xxxxxxxxxxxxxxxxxxx", rcv_nxt)  # 8..27
    assert len(q) == 1 and q.bytes_held == 19
    assert b"".join(q.take(seq_add(rcv_nxt, 8))) == b"xxAAAAxxxxxxBBBBxxx"


def test_duplicate_returns_true_and_stores_nothing() -> None:
    q = OutOfOrderQueue(1000)
    assert q.add(100, b"abcdef", 50)
    assert q.add(101, b"bcd", 50)
    assert q.bytes_held == 6 and len(q) == 1


def test_data_before_rcv_nxt_is_trimmed() -> None:
    q = OutOfOrderQueue(1000)
    rcv_nxt = 2
    assert q.add(NEAR_WRAP, b"0123456789", rcv_nxt)  # 2**32-5 .. 5: 7 bytes old
    assert q.bytes_held == 3
    assert q.take(rcv_nxt) == [b"789"]
    assert q.add(seq_add(rcv_nxt, -10), b"old", rcv_nxt)  # entirely old: nothing new
    assert q.bytes_held == 0


def test_ranges_overtaken_by_rcv_nxt_are_dropped_or_trimmed() -> None:
    q = OutOfOrderQueue(1000)
    rcv_nxt = NEAR_WRAP
    q.add(seq_add(rcv_nxt, 10), b"abcdef", rcv_nxt)  # 10..16
    q.add(seq_add(rcv_nxt, 20), b"uvwxyz", rcv_nxt)  # 20..26
    # In-order data covering up to 13 arrived meanwhile.
    rcv_nxt = seq_add(rcv_nxt, 13)
    assert q.take(rcv_nxt) == [b"def"]
    assert q.bytes_held == 6
    # Then in-order data up to 30 overtakes everything.
    rcv_nxt = seq_add(rcv_nxt, 17)
    assert q.take(rcv_nxt) == []
    assert q.bytes_held == 0 and len(q) == 0


def test_limit_refuses_whole_segment() -> None:
    q = OutOfOrderQueue(10)
    assert q.add(100, b"abcdef", 0)
    assert not q.add(200, b"ghijk", 0)  # 6 + 5 > 10: nothing stored
    assert q.bytes_held == 6 and len(q) == 1
    assert q.add(106, b"ghij", 0)  # exactly fits, merges
    assert not q.add(110, b"k", 0)
    # Overlap counts only the new bytes against the limit.
    assert q.add(98, b"..abcdefghij", 0) is False  # 2 new bytes do not fit
    q.limit = 12
    assert q.add(98, b"..abcdefghij", 0)
    assert q.bytes_held == 12


def test_max_ranges_bounds_holes() -> None:
    q = OutOfOrderQueue(1000, max_ranges=2)
    assert q.add(10, b"a", 0) and q.add(20, b"b", 0)
    assert not q.add(30, b"c", 0)
    assert q.add(21, b"c", 0)  # extends a range: fine
    assert q.add(11, b"x", 0)
    assert len(q) == 2


def test_sack_blocks_newest_first() -> None:
    q = OutOfOrderQueue(10000)
    rcv_nxt = NEAR_WRAP
    s = [seq_add(rcv_nxt, k) for k in (10, 30, 50, 70, 90)]
    for start in s:
        q.add(start, b"x" * 5, rcv_nxt)
    blocks = q.sack_blocks(rcv_nxt, 4)
    assert blocks == [(start, seq_add(start, 5)) for start in reversed(s[1:])]
    # A segment extending the first range moves it to the front (RFC 2018 §4).
    q.add(seq_add(s[0], 5), b"y" * 5, rcv_nxt)
    assert q.sack_blocks(rcv_nxt, 3) == [
        (s[0], seq_add(s[0], 10)),
        (s[4], seq_add(s[4], 5)),
        (s[3], seq_add(s[3], 5)),
    ]
    # A duplicate inside a block also triggers an ACK whose first block holds it.
    q.add(seq_add(s[2], 1), b"x", rcv_nxt)
    assert q.sack_blocks(rcv_nxt, 1) == [(s[2], seq_add(s[2], 5))]
    assert q.sack_blocks(rcv_nxt, 0) == []
    assert len(q.sack_blocks(rcv_nxt, 10)) == 5


def test_sack_blocks_after_merge_and_take() -> None:
    q = OutOfOrderQueue(10000)
    q.add(10, b"aa", 0)
    q.add(20, b"bb", 0)
    q.add(12, b"cccccccc", 0)  # merges both
    assert q.sack_blocks(0, 3) == [(10, 22)]
    assert q.take(10) and q.sack_blocks(22, 3) == []


def test_copies_the_frame_buffer() -> None:
    frame = bytearray(b"payload!")
    q = OutOfOrderQueue(100)
    q.add(5, memoryview(frame), 0)
    frame[:] = b"\xa5" * 8
    assert q.take(5) == [b"payload!"]


def test_clear_and_bad_arguments() -> None:
    q = OutOfOrderQueue(100)
    q.add(5, b"abc", 0)
    q.clear()
    assert len(q) == 0 and q.bytes_held == 0 and q.take(5) == []
    assert q.add(5, b"", 0)
    with pytest.raises(ValueError):
        OutOfOrderQueue(-1)
    with pytest.raises(ValueError):
        OutOfOrderQueue(10, max_ranges=0)


def reassemble(stream: bytes, start: int, order: list[tuple[int, int]], limit: int) -> bytes:
    """Play segments as a connection would: in-order data delivered, the rest queued."""
    q = OutOfOrderQueue(limit)
    rcv_nxt = start
    out = bytearray()
    for off, length in order:
        seq = seq_add(start, off)
        data = memoryview(stream)[off : off + length]
        ahead = seq_sub(seq, rcv_nxt)
        if ahead <= 0 < ahead + length:
            out += data[-ahead:]
            rcv_nxt = seq_add(rcv_nxt, length + ahead)
            chunks = q.take(rcv_nxt)
            for chunk in chunks:
                out += chunk
            rcv_nxt = seq_add(rcv_nxt, sum(map(len, chunks)))
        elif ahead > 0:
            assert q.add(seq, data, rcv_nxt)
        # Invariants: nothing held before rcv_nxt, ranges disjoint, in order.
        ranges = q.ranges(rcv_nxt)
        held = 0
        prev_end = 0
        for left, right in ranges:
            lo, hi = seq_sub(left, rcv_nxt), seq_sub(right, rcv_nxt)
            assert prev_end < lo < hi if prev_end else 0 < lo < hi
            prev_end = hi
            held += hi - lo
        assert held == q.bytes_held
    return bytes(out)


@settings(max_examples=300)
@given(
    st.binary(min_size=1, max_size=300),
    st.integers(SEQ_MOD - 400, SEQ_MOD - 1) | st.integers(0, SEQ_MOD - 1),
    st.data(),
)
def test_random_arrival_orders_reassemble(stream: bytes, start: int, data: st.DataObject) -> None:
    # Random segmentation, retransmissions with other boundaries, random order;
    # every byte is sent at least once.
    segments: list[tuple[int, int]] = []
    for _ in range(data.draw(st.integers(1, 3))):
        off = 0
        while off < len(stream):
            length = data.draw(st.integers(1, 40))
            segments.append((off, min(length, len(stream) - off)))
            off += length
    extra = data.draw(st.lists(st.tuples(st.integers(0, len(stream) - 1), st.integers(1, 50)),
                               max_size=5))
    segments += [(o, min(n, len(stream) - o)) for o, n in extra]
    order = data.draw(st.permutations(segments))
    assert reassemble(stream, start, order, limit=len(stream)) == stream


def test_reordered_window_reassembles() -> None:
    rng = random.Random(7)
    stream = bytes(rng.randrange(256) for _ in range(200_000))
    segs = [(off, min(1448, len(stream) - off)) for off in range(0, len(stream), 1448)]
    first = segs.pop(0)
    rng.shuffle(segs)
    order = [*segs, first]  # the first segment is "lost" and arrives last
    assert reassemble(stream, NEAR_WRAP, order, limit=len(stream)) == stream


def test_trim_spanning_several_chunks() -> None:
    q = OutOfOrderQueue(100)
    for k, piece in enumerate((b"ab", b"cd", b"ef")):
        q.add(10 + 2 * k, piece, 0)
    assert len(q) == 1 and q.bytes_held == 6
    assert q.take(13) == [b"d", b"ef"]


@given(
    st.lists(st.tuples(st.integers(1, 200), st.integers(1, 30)), max_size=40),
    st.integers(0, 60),
    st.integers(SEQ_MOD - 100, SEQ_MOD - 1),
)
def test_limit_is_never_exceeded_and_refusal_changes_nothing(
    segments: list[tuple[int, int]], limit: int, rcv_nxt: int
) -> None:
    q = OutOfOrderQueue(limit, max_ranges=4)
    for off, length in segments:
        before = (q.ranges(rcv_nxt), q.bytes_held)
        payload = bytes((off + i) & 0xFF for i in range(length))  # content = position
        if not q.add(seq_add(rcv_nxt, off), payload, rcv_nxt):
            assert (q.ranges(rcv_nxt), q.bytes_held) == before
        assert q.bytes_held <= limit and len(q) <= 4
    # Whatever was stored is the right content at the right place.
    for left, right in q.ranges(rcv_nxt):
        start = seq_sub(left, rcv_nxt)
        q2 = q.take(left)  # pops the first range, which starts at `left`
        assert b"".join(q2) == bytes((start + i) & 0xFF for i in range(seq_sub(right, left)))


def test_caller_releasing_its_view_does_not_break_the_buffer() -> None:
    data = b"0123456789"
    view = memoryview(data)
    buf = filled(view)
    view.release()
    assert bytes(buf.peek(0, 10)) == data
