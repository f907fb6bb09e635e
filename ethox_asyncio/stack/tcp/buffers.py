"""Send buffer and out-of-order receive queue of one TCP connection.

Contract, :class:`SendBuffer` (RFC 9293 §3.3.1 "send sequence space"): the bytes
the application wrote that are not yet acknowledged. Byte 0 is the one at
SND.UNA; the buffer knows nothing of sequence numbers (the connection maps
``offset = seq - snd_una``), of SYN/FIN (which occupy sequence space but no
buffer space) or of limits (the transport applies the write-buffer limits).
- :meth:`SendBuffer.append` keeps immutable data by reference: ``bytes`` and
  read-only, C-contiguous memoryviews whose underlying object is ``bytes``.
  Anything mutable (``bytearray``, a writable memoryview, a read-only view of a
  ``bytearray``) is copied, because the application may reuse it.
- :meth:`SendBuffer.peek` returns bytes ``[offset, offset + length)``, clamped to
  what is held (``length`` larger than available is fine, ``offset`` past the
  end is a ``ValueError``). Inside one chunk the result is a read-only
  ``memoryview`` slice (zero-copy, valid forever: the chunk is immutable);
  across chunks it is a new ``bytes``. :meth:`SendBuffer.read_into` copies the
  same range straight into a destination (a frame buffer) with one copy.
- :meth:`SendBuffer.consume` drops acknowledged bytes from the front. Append and
  consume are O(1) amortised; peek is O(log chunks).

Contract, :class:`OutOfOrderQueue` (RFC 9293 §3.10.7.4 "segments with higher
beginning sequence numbers may be held for later processing"; RFC 2018 §4):
data received beyond RCV.NXT, as disjoint, non-adjacent ranges of sequence
space (adjacent and overlapping ranges are merged), all within 2**31 ahead of
RCV.NXT. Every method takes the caller's current ``rcv_nxt`` and first discards
whatever now lies before it (data that arrived in order in the meantime), so
the queue never holds a byte the connection already has.
- :meth:`OutOfOrderQueue.add` stores a *copy* of only the new bytes of a
  segment (the frame buffer is reused), or refuses the whole segment (returns
  ``False``, stores nothing) when the new bytes would exceed ``limit`` or the
  segment would need a new range beyond ``max_ranges``. A segment with nothing
  new (duplicate, or entirely before ``rcv_nxt``) returns ``True``.
- :meth:`OutOfOrderQueue.take` pops the range starting exactly at ``rcv_nxt``
  (after the trimming above) as a list of ``bytes`` chunks; the caller delivers
  them and advances RCV.NXT by their total length. Ranges are merged, so one
  call returns everything now contiguous.
- :meth:`OutOfOrderQueue.sack_blocks` lists ranges as ``(left_edge,
  right_edge)`` — right edge is the sequence number *after* the last byte, as on
  the wire (RFC 2018 §3) — most recently updated first: the first block is the
  one holding the segment most recently passed to :meth:`add` (RFC 2018 §4,
  duplicates included), the rest in the order they were last updated, which is
  the order RFC 2018 §4 asks for when each ACK reports the newest blocks.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from operator import attrgetter

__all__ = ["OutOfOrderQueue", "SendBuffer"]

_MASK = 0xFFFFFFFF
_HALF = 0x80000000
_Data = bytes | bytearray | memoryview
# Dead chunks at the front of SendBuffer's lists are deleted in bulk once there
# are this many and they are at least half the list (amortised O(1)).
_COMPACT_AT = 64
# What an empty SendBuffer holds instead of its two lists (made by the first append,
# dropped when it empties: an idle connection's memory). Shared, so never mutated.
_NO_VIEWS: list[memoryview] = []
_NO_STARTS: list[int] = []


def _own_view(data: _Data) -> memoryview:
    """A 1-D unsigned-byte view we may keep: by reference if immutable, else a copy."""
    if isinstance(data, bytes):
        return memoryview(data)
    if isinstance(data, memoryview):
        if data.readonly and isinstance(data.obj, bytes) and data.c_contiguous:
            # Our own view object (a slice or cast shares the buffer, not the
            # view), so the caller releasing its memoryview cannot break ours.
            if data.ndim == 1 and data.format == "B":
                return data[:]
            return data.cast("B")
        return memoryview(data.tobytes())
    return memoryview(bytes(data))


class SendBuffer:
    """Unacknowledged application bytes, byte 0 at SND.UNA (see module docstring).

    Chunks live in a list with a head index; ``_starts[i]`` is the position of
    chunk ``i`` in a private stream coordinate (reset to 0 whenever the buffer
    empties), so a peek is one ``bisect``. While the buffer is empty both lists are
    the shared empty ``_NO_VIEWS`` / ``_NO_STARTS`` (never appended to: ``append``
    makes new lists, ``clear`` puts the shared ones back), so they are non-empty
    exactly when bytes are held.
    """

    __slots__ = ("_base", "_chunks", "_end", "_head", "_starts")

    def __init__(self) -> None:
        self._chunks: list[memoryview] = _NO_VIEWS
        self._starts: list[int] = _NO_STARTS
        self._head = 0  # index of the first chunk holding unacknowledged bytes
        self._base = 0  # stream position of SND.UNA
        self._end = 0  # stream position after the last byte

    def __len__(self) -> int:
        return self._end - self._base

    def __repr__(self) -> str:
        return f"<SendBuffer {self._end - self._base} bytes in {len(self._chunks) - self._head}>"

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` after the bytes already held (empty data is ignored)."""
        view = _own_view(data)
        n = view.nbytes
        if n:
            end = self._end
            chunks = self._chunks
            if chunks is _NO_VIEWS:  # the first bytes since the buffer was empty
                self._chunks = [view]
                self._starts = [end]
            else:
                chunks.append(view)
                self._starts.append(end)
            self._end = end + n

    def peek(self, offset: int, length: int) -> bytes | memoryview:
        """Bytes ``[offset, offset + length)`` from SND.UNA, clamped to what is held."""
        base = self._base
        avail = self._end - base
        if offset < 0 or length < 0 or offset > avail:
            raise ValueError(f"peek({offset}, {length}) outside a send buffer of {avail} bytes")
        if length > avail - offset:
            length = avail - offset
        if not length:
            return b""
        pos = base + offset
        stop = pos + length
        chunks = self._chunks
        starts = self._starts
        i = bisect_right(starts, pos, self._head) - 1
        chunk = chunks[i]
        start = starts[i]
        if stop <= start + len(chunk):
            return chunk[pos - start : stop - start]
        parts = [chunk[pos - start :]]
        i += 1
        while True:
            chunk = chunks[i]
            start = starts[i]
            if stop <= start + len(chunk):
                parts.append(chunk[: stop - start])
                return b"".join(parts)
            parts.append(chunk)
            i += 1

    def read_into(self, offset: int, dest: bytearray | memoryview) -> int:
        """Copy bytes from ``offset`` into ``dest`` (at most ``len(dest)``); return the count.

        One copy per chunk touched, no intermediate ``bytes``: for writing a
        segment's payload straight into a frame buffer.
        """
        base = self._base
        avail = self._end - base
        if offset < 0 or offset > avail:
            raise ValueError(f"read_into({offset}) outside a send buffer of {avail} bytes")
        length = min(len(dest), avail - offset)
        if not length:
            return 0
        pos = base + offset
        stop = pos + length
        chunks = self._chunks
        starts = self._starts
        i = bisect_right(starts, pos, self._head) - 1
        done = 0
        while done < length:
            chunk = chunks[i]
            start = starts[i]
            lo = pos - start
            hi = min(stop - start, len(chunk))
            n = hi - lo
            dest[done : done + n] = chunk[lo:hi]
            done += n
            pos += n
            i += 1
        return length

    def consume(self, n: int) -> None:
        """Drop ``n`` acknowledged bytes from the front (``0 <= n <= len(self)``)."""
        base = self._base + n
        if n < 0 or base > self._end:
            raise ValueError(f"consume({n}) from a send buffer of {self._end - self._base} bytes")
        if base == self._end:
            self.clear()
            return
        self._base = base
        chunks = self._chunks
        starts = self._starts
        head = self._head
        # Stops before the end: base < _end, so the last chunk still holds bytes.
        while starts[head] + len(chunks[head]) <= base:
            head += 1
        if head >= _COMPACT_AT and head * 2 >= len(chunks):
            del chunks[:head]
            del starts[:head]
            head = 0
        self._head = head

    def clear(self) -> None:
        """Drop everything (abort, or all data acknowledged)."""
        self._chunks = _NO_VIEWS
        self._starts = _NO_STARTS
        self._head = 0
        self._base = 0
        self._end = 0


class _Range:
    """One contiguous range of out-of-order data: ``length`` bytes from ``start``."""

    __slots__ = ("chunks", "length", "stamp", "start")

    def __init__(self, start: int, length: int, chunks: list[bytes], stamp: int) -> None:
        self.start = start  # sequence number of the first byte, 0 .. 2**32 - 1
        self.length = length
        self.chunks = chunks  # in sequence order, summing to length
        self.stamp = stamp  # value of the queue's update counter when last touched


_BY_STAMP = attrgetter("stamp")


def _copy(data: _Data, lo: int, hi: int) -> bytes:
    piece = data[lo:hi]
    return piece if isinstance(piece, bytes) else bytes(piece)


class OutOfOrderQueue:
    """Received data beyond RCV.NXT, bounded (see module docstring)."""

    __slots__ = ("_ranges", "_stamp", "bytes_held", "limit", "max_ranges")

    def __init__(self, limit: int, *, max_ranges: int = 1024) -> None:
        if limit < 0:
            raise ValueError(f"OutOfOrderQueue limit must be >= 0, got {limit}")
        if max_ranges < 1:
            raise ValueError(f"OutOfOrderQueue max_ranges must be >= 1, got {max_ranges}")
        # Bytes of out-of-order data we hold at most; the connection may change
        # it (e.g. to the free receive space) at any time.
        self.limit = limit
        # Bound on the number of holes a peer can make us track (each range costs
        # memory and list work whatever its size; Linux bounds this by truesize).
        self.max_ranges = max_ranges
        self._ranges: list[_Range] = []  # sorted by sequence number from rcv_nxt
        # Total bytes held, over all ranges (read-only for callers; 0 exactly when no
        # range is held — a plain attribute, so the hot path asks without a call).
        self.bytes_held = 0
        self._stamp = 0

    def __len__(self) -> int:
        """Number of disjoint ranges held (so ``if queue:`` means "holes exist")."""
        return len(self._ranges)

    def __repr__(self) -> str:
        blocks = ", ".join(f"{r.start}+{r.length}" for r in self._ranges)
        return f"<OutOfOrderQueue {self.bytes_held}/{self.limit} bytes [{blocks}]>"

    def clear(self) -> None:
        self._ranges.clear()
        self.bytes_held = 0

    def _discard_before(self, rcv_nxt: int) -> None:
        """Drop or trim what now lies before ``rcv_nxt`` (it arrived in order)."""
        ranges = self._ranges
        while ranges:
            r = ranges[0]
            behind = ((rcv_nxt - r.start + _HALF) & _MASK) - _HALF  # seq_sub(rcv_nxt, start)
            if behind <= 0:
                return
            if behind >= r.length:
                del ranges[0]
                self.bytes_held -= r.length
                continue
            self.bytes_held -= behind
            r.length -= behind
            r.start = rcv_nxt & _MASK
            chunks = r.chunks
            k = 0
            while behind >= len(chunks[k]):
                behind -= len(chunks[k])
                k += 1
            del chunks[:k]
            if behind:
                chunks[0] = chunks[0][behind:]
            return

    def add(self, seq: int, data: bytes | memoryview, rcv_nxt: int) -> bool:
        """Store the new part of segment data ``data`` starting at ``seq``.

        Returns ``False`` (storing nothing) when the new bytes do not fit the
        limits, else ``True`` (including when nothing was new).
        """
        n = len(data)
        if not n:
            return True
        self._discard_before(rcv_nxt)
        # RFC 9293 §3.10.7.4: trim what lies before RCV.NXT; work in offsets from it.
        d = ((seq - rcv_nxt + _HALF) & _MASK) - _HALF
        if d < 0:
            if d + n <= 0:
                return True
            data = data[-d:]
            n += d
            d = 0
        ranges = self._ranges
        self._stamp += 1
        stamp = self._stamp
        end = d + n
        # Fast paths: empty queue, or the segment lies at or after the end of the
        # last range (the usual case after one loss: the rest keeps arriving).
        if ranges:
            last = ranges[-1]
            last_off = (last.start - rcv_nxt) & _MASK
            last_end = last_off + last.length
            if d == last_end:
                if self.bytes_held + n > self.limit:
                    return False
                last.chunks.append(_copy(data, 0, n))
                last.length += n
                last.stamp = stamp
                self.bytes_held += n
                return True
            if d > last_end:
                return self._insert(len(ranges), d, data, rcv_nxt, stamp)
        else:
            return self._insert(0, d, data, rcv_nxt, stamp)
        # General case: find the first range ending at or after d; every range
        # from there that starts at or before ``end`` overlaps or touches the
        # segment and merges with it (RFC 9293 §3.10.7.4 leaves overlap policy to
        # us: the bytes we already hold win, the segment fills the gaps).
        base = rcv_nxt

        def end_key(r: _Range) -> int:
            return ((r.start - base) & _MASK) + r.length

        i = bisect_left(ranges, d, key=end_key)
        k = i
        pos = d
        new = 0
        count = len(ranges)
        while k < count:
            r = ranges[k]
            r_off = (r.start - rcv_nxt) & _MASK
            if r_off > end:
                break
            if r_off > pos:
                new += r_off - pos
            r_end = r_off + r.length
            if r_end > pos:
                pos = r_end
            k += 1
        if pos < end:
            new += end - pos
        if k == i:  # touches nothing: a range of its own
            return self._insert(i, d, data, rcv_nxt, stamp)
        if not new:  # duplicate inside one range: it still goes first in SACK
            ranges[i].stamp = stamp
            return True
        if self.bytes_held + new > self.limit:
            return False
        chunks: list[bytes] = []
        pos = d
        first_off = (ranges[i].start - rcv_nxt) & _MASK
        for r in ranges[i:k]:
            r_off = (r.start - rcv_nxt) & _MASK
            if r_off > pos:
                chunks.append(_copy(data, pos - d, r_off - d))
            chunks.extend(r.chunks)
            r_end = r_off + r.length
            if r_end > pos:
                pos = r_end
        if pos < end:
            chunks.append(_copy(data, pos - d, end - d))
            pos = end
        if d < first_off:
            first_off = d
        merged = ranges[i]
        merged.start = (rcv_nxt + first_off) & _MASK
        merged.length = pos - first_off
        merged.chunks = chunks
        merged.stamp = stamp
        del ranges[i + 1 : k]
        self.bytes_held += new
        return True

    def _insert(self, index: int, d: int, data: _Data, rcv_nxt: int, stamp: int) -> bool:
        n = len(data)
        if self.bytes_held + n > self.limit or len(self._ranges) >= self.max_ranges:
            return False
        chunk = _copy(data, 0, n)
        self._ranges.insert(index, _Range((rcv_nxt + d) & _MASK, n, [chunk], stamp))
        self.bytes_held += n
        return True

    def overlap(self, seq: int, n: int, rcv_nxt: int) -> tuple[int, int] | None:
        """The first part of ``n`` bytes at ``seq`` that is held already, as
        ``(left_edge, right_edge)``, or None (for RFC 2883 §4's D-SACK of data above
        RCV.NXT that arrived again)."""
        ranges = self._ranges
        if not ranges or n <= 0:
            return None
        d = ((seq - rcv_nxt + _HALF) & _MASK) - _HALF
        end = d + n
        for r in ranges:
            start = (r.start - rcv_nxt) & _MASK
            if start >= end:
                return None
            stop = start + r.length
            if stop > d:
                lo = start if start > d else d
                hi = stop if stop < end else end
                return ((rcv_nxt + lo) & _MASK, (rcv_nxt + hi) & _MASK)
        return None

    def take(self, rcv_nxt: int) -> list[bytes]:
        """Pop the data now contiguous at ``rcv_nxt`` (``[]`` when there is none)."""
        self._discard_before(rcv_nxt)
        ranges = self._ranges
        if ranges and ranges[0].start == rcv_nxt & _MASK:
            r = ranges.pop(0)
            self.bytes_held -= r.length
            return r.chunks
        return []

    def sack_blocks(self, rcv_nxt: int, max_blocks: int) -> list[tuple[int, int]]:
        """Up to ``max_blocks`` ``(left_edge, right_edge)`` pairs, newest first (RFC 2018 §4)."""
        self._discard_before(rcv_nxt)
        ranges = self._ranges
        if max_blocks <= 0 or not ranges:
            return []
        if len(ranges) == 1:
            r = ranges[0]
            return [(r.start, (r.start + r.length) & _MASK)]
        newest = sorted(ranges, key=_BY_STAMP, reverse=True)
        return [(r.start, (r.start + r.length) & _MASK) for r in newest[:max_blocks]]

    def ranges(self, rcv_nxt: int) -> list[tuple[int, int]]:
        """All ranges in sequence order as ``(left_edge, right_edge)`` (for tests, stats)."""
        self._discard_before(rcv_nxt)
        return [(r.start, (r.start + r.length) & _MASK) for r in self._ranges]
